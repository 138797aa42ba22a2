"""ShirtTransform: online physical augmentation through cardiosim.simulate."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from cardiosim import simulate  # noqa: E402  (the project's own module: never skipped)

from cardiosim.errors import ConfigError, LeadError
from cardiosim.torch import ShirtTransform


@pytest.fixture(scope="module")
def context():
    return simulate.make_context(forward="infinite")


@pytest.fixture(scope="module")
def source(context):
    from cardiosim.inverse import dipole_from_vcg
    from cardiosim.ode import synthesize
    from cardiosim.sources import CardiacSource

    beats = synthesize(3.0, 500.0, np.random.default_rng(11), rhythm="SR", morphology="NORM")
    p = dipole_from_vcg(beats.vcg, context.forward, context.frank_layout)
    return CardiacSource(dipole=p, fs=500.0, source_id="ode:test", labels=tuple(beats.labels))


def test_new_variant_each_call_and_reproducible(context, source):
    t1 = ShirtTransform(123, context=context)
    a, b = t1(source), t1(source)
    assert a.dtype == torch.float32 and a.shape == (12, int(3.0 * context.device.fs))
    assert not torch.equal(a, b)
    t2 = ShirtTransform(123, context=context)
    assert torch.equal(t2(source), a) and torch.equal(t2(source), b)
    assert not torch.equal(ShirtTransform(124, context=context)(source), a)


def test_generators_and_explicit_rng_reach_simulate_record(context, source):
    rec = ShirtTransform(np.random.default_rng(5), context=context, output="record")(
        source, rng=np.random.default_rng(99))
    ref = simulate.simulate_record(source, np.random.default_rng(99), context=context)
    np.testing.assert_array_equal(rec.ecg, ref.ecg)
    assert rec.params == ref.params and rec.labels == ("SR", "NORM")
    tg = ShirtTransform(torch.Generator().manual_seed(4), context=context, leads=["V2", "II"])
    out = tg(source)
    assert out.shape[0] == 2 and tg.leads == ("V2", "II")


def test_noiseless_static_config_reproduces_the_projection(context, source):
    cfg = simulate.SimulationConfig.noiseless()
    t = ShirtTransform(0, context=context, config=cfg)
    # no random physics left: every call gives the same record, equal to the simulator's
    a, b = t(source), t(source)
    torch.testing.assert_close(a, b)
    ref = simulate.simulate_record(source, np.random.default_rng(1), context=context, config=cfg)
    np.testing.assert_allclose(a.numpy(), ref.ecg, atol=1e-6)


class _Sources(torch.utils.data.Dataset):
    def __init__(self, source, transform):
        self.source, self.transform = source, transform

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return self.transform(self.source)


def test_dataloader_workers_draw_different_variants_reproducibly(context, source):
    def run():
        torch.manual_seed(7)
        ds = _Sources(source, ShirtTransform(1, context=context))
        loader = torch.utils.data.DataLoader(ds, batch_size=1, num_workers=2)
        return [x[0] for x in loader]

    first, second = run(), run()
    # items 0 and 1 come from different workers, each on its first call: they must differ
    assert not torch.equal(first[0], first[1])
    for a, b in zip(first, second):
        assert torch.equal(a, b)


def test_online_dataset_labels_and_fresh_variants(context, source):
    from cardiosim.torch import OnlineShirtDataset

    ds = OnlineShirtDataset([source, source], ShirtTransform(3, context=context), classes=("AF", "NORM", "SR"))
    (x1, y1), (x2, y2) = ds[0], ds[0]
    assert torch.equal(y1, torch.tensor([0.0, 1.0, 1.0])) and torch.equal(y1, y2)
    assert not torch.equal(x1, x2)                     # a new physical variant per access
    with pytest.raises(ConfigError, match="'SR'"):
        OnlineShirtDataset([source], ShirtTransform(3, context=context), classes=("AF", "NORM"))[0]


def test_bad_arguments(context):
    with pytest.raises(ConfigError, match="explicit generator"):
        ShirtTransform(None, context=context)
    with pytest.raises(ConfigError, match="float"):
        ShirtTransform(1.5, context=context)
    with pytest.raises(LeadError, match="V9"):
        ShirtTransform(1, context=context, leads=["V9"])
    with pytest.raises(ConfigError, match="array"):
        ShirtTransform(1, context=context, output="array")
