"""ShirtTransform(mode="batch"): blocks of records through numba kernels (issue 16, part 3).

References: the NumPy twins of the kernels (cardiosim.torch._kernels), the full per-record
simulator for the noiseless projection, and an independent NumPy re-computation of the
physics (lead field at the displaced electrodes, heart rotation, montage, apply_device)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cardiosim.errors import ConfigError, SamplingRateError, SignalError  # noqa: E402
from cardiosim.simulate import GarmentConfig, HeartConfig, SimulationConfig, make_context, simulate_record  # noqa: E402
from cardiosim.sources import CardiacSource  # noqa: E402
from cardiosim.torch import ShirtTransform  # noqa: E402
from cardiosim.torch import _kernels as K  # noqa: E402
from cardiosim.torch.transforms import default_batch_config  # noqa: E402

FS = 500.0


def _source(i: int, n: int = 1500, residual: bool = False) -> CardiacSource:
    t = np.arange(n) / FS
    p = np.zeros((3, n))
    for c in np.arange(0.2 + 0.01 * i, n / FS - 0.4, 0.75 + 0.02 * i):
        p += np.array([1e-4, 4e-5, -3e-5 * (1 + i % 3)])[:, None] * np.exp(-0.5 * ((t - c) / 0.012) ** 2)
        p += np.array([2e-5, 1e-5, 0.0])[:, None] * np.exp(-0.5 * ((t - c - 0.3) / 0.05) ** 2)
    kw = {}
    if residual:
        kw = dict(residual=0.05 * np.sin(2 * np.pi * 1.3 * t)[None].repeat(2, 0), residual_leads=("V1", "II"))
    return CardiacSource(dipole=p, fs=FS, source_id=f"toy{i}", **kw)


@pytest.fixture(scope="module")
def context():
    return make_context()          # reference torso, BEM, shirt12_500hz


@pytest.fixture(scope="module")
def sources():
    return [_source(i, residual=(i % 2 == 1)) for i in range(5)]


def test_batch_equals_per_record_bit_for_bit_and_is_reproducible(context, sources):
    t = ShirtTransform(3, context=context, mode="batch", leads=["V2", "I", "aVF"])
    seeds = np.array([11, 2 ** 63 - 5, 0, 7, 123456789], dtype=np.uint64)
    batch = t.batch(sources, seeds=seeds)
    assert batch.shape == (5, 3, 1500) and batch.dtype == torch.float32
    for j, s in enumerate(sources):
        assert torch.equal(t(s, seed=int(seeds[j])), batch[j])
    # any split of the batch, another transform object: the same records
    t2 = ShirtTransform(99, context=context, mode="batch", leads=["V2", "I", "aVF"])
    assert torch.equal(torch.cat([t2.batch(sources[:2], seeds=seeds[:2]), t2.batch(sources[2:], seeds=seeds[2:])]),
                       batch)
    # seeds drawn from the generator: reproducible from the transform's seed, new on each call
    a, b = ShirtTransform(5, context=context, mode="batch"), ShirtTransform(5, context=context, mode="batch")
    x1, x2 = a.batch(sources), a.batch(sources)
    assert torch.equal(x1, b.batch(sources)) and not torch.equal(x1, x2)
    assert not torch.equal(batch[0], batch[2][[0, 1, 2]]) and torch.isfinite(batch).all()


def test_kernels_match_their_numpy_twins(context):
    t = ShirtTransform(1, context=context, mode="batch")
    e = t._engine
    seeds = np.array([5, 2 ** 62 + 7, 31], dtype=np.uint64)
    p = K.draw_params(seeds, e.base, e.center, e.spec)
    for j, s in enumerate(seeds):
        q = K.params_numpy(int(s), e.base, e.center, e.spec)
        for name in ("offsets", "rot", "white", "pl", "divider", "breath", "bwe", "mains_src"):
            np.testing.assert_allclose(getattr(p, name)[j], getattr(q, name)[0], rtol=1e-12, atol=1e-15, err_msg=name)
    rng = np.random.default_rng(0)
    lf = rng.normal(0, 0.05, (3, 9, 3))
    np.testing.assert_allclose(K.transfer(lf, p.rot, 5), K.transfer_numpy(lf, p.rot, 5), rtol=1e-13)
    src, g = rng.normal(0, 1e-4, (1, 3, 1200)), rng.normal(0, 50, (1, 9, 3))
    res = rng.normal(0, 0.1, (1, 12, 1200))
    rows = np.array([0, 1, 6, 11])
    one = K.draw_params(seeds[:1], e.base, e.center, e.spec)
    flags = np.array([1.0, 1.0, 1.0, 1.2])             # all kinds, 60 Hz mains
    for dev in (None, e.device):
        fast = K.render(src, g, res, np.ones(1, bool), e.montage, rows, seeds[:1], one, flags, FS, dev)[0]
        slow = K.render_numpy(src[0], g[0], res[0], e.montage, rows, int(seeds[0]), one, flags, FS, dev)
        lsb = 0.0 if dev is None else dev[3] / dev[2]
        np.testing.assert_allclose(fast, slow, rtol=1e-6, atol=1e-9 + 1.01 * lsb)


def test_noiseless_in_place_equals_the_full_simulator(context, sources):
    still = SimulationConfig(garment=GarmentConfig(0.0, 0.0, 0.0, 0.0), heart=HeartConfig(0.0, False),
                             motion=False, add_noise=False)
    t = ShirtTransform(0, context=context, mode="batch", config=still)
    got = t.batch(sources).numpy()
    for j, s in enumerate(sources):
        ref = simulate_record(s, np.random.default_rng(j), context=context, config=still).ecg
        np.testing.assert_allclose(got[j], ref, rtol=0, atol=2e-6)


def test_displaced_and_rotated_physics_against_numpy(context, sources):
    """Garment fit and heart rotation on, noise off: the output is the device recording of
    montage @ (L(r) @ R @ p) at the displaced electrodes, recomputed here with NumPy and
    cardiosim.device.apply_device."""
    from cardiosim.device import apply_device
    from cardiosim.geometry import displace_on_surface

    cfg = SimulationConfig(garment=GarmentConfig(0.02, 5.0, 0.05, 0.008), heart=HeartConfig(8.0, False),
                           motion=False, add_noise=False)
    t = ShirtTransform(0, context=context, mode="batch", config=cfg)
    seeds = np.arange(1, 6, dtype=np.uint64)
    got = t.batch(sources, seeds=seeds).numpy()
    e = t._engine
    p = K.draw_params(seeds, e.base, e.center, e.spec)
    moved = 0.0
    for j, s in enumerate(sources):
        r = displace_on_surface(context.torso, e.base, p.offsets[j])
        moved = max(moved, float(np.linalg.norm(r - e.base, axis=1).max()))
        phi = 1e3 * context.forward.lead_field(r) @ p.rot[j] @ s.dipole
        leads = context.montage.apply(phi)
        if s.residual is not None:
            for row, name in enumerate(s.residual_leads):
                leads[context.montage.leads.index(name)] += s.residual[row]
        ref, _ = apply_device(context.device, leads, FS)
        np.testing.assert_allclose(got[j], ref, rtol=1e-6, atol=2e-6)
    assert moved > 0.005                                 # the electrodes did move (cm scale)


def test_white_noise_level_and_mains_reach_the_leads(context):
    """Only white noise, no device: lead I = LA - RA carries sqrt(w_LA^2 + w_RA^2) RMS; with
    only mains, lead I is a 50 Hz line of amplitude v_cm |d_LA - d_RA| (potential divider)."""
    zero = CardiacSource(dipole=np.zeros((3, 20000)), fs=FS, source_id="zero")
    from cardiosim.noise import NoiseConfig

    for kinds in (("white",), ("powerline",)):
        cfg = SimulationConfig(garment=GarmentConfig(0.0, 0.0, 0.0, 0.0), heart=HeartConfig(0.0, False),
                               motion=False, noise=NoiseConfig(kinds=kinds, powerline_harmonics=1))
        t = ShirtTransform(0, context=context, mode="batch", config=cfg, leads=["I"])
        e = t._engine
        seeds = np.arange(4, dtype=np.uint64)
        out, p, _ = e.run([zero] * 4, seeds, np.array([0]), device_stage=False)
        ra, la = context.montage.electrodes.index("RA"), context.montage.electrodes.index("LA")
        for j in range(4):
            x = out[j, 0].astype(np.float64)
            if kinds == ("white",):
                expect = np.hypot(p.white[j, la], p.white[j, ra])
                np.testing.assert_allclose(x.std(), expect, rtol=0.03)
            else:
                spec = np.abs(np.fft.rfft(x)) * 2 / x.size
                f = np.fft.rfftfreq(x.size, 1 / FS)
                assert f[np.argmax(spec)] == pytest.approx(50.0, abs=0.05)
                amp = p.pl[j, 0] * abs(p.divider[j, la] - p.divider[j, ra])
                depth = p.pl[j, 4]
                assert amp * (1 - depth) * 0.95 <= spec.max() <= amp * (1 + depth) * 1.05


def test_mains_common_mode_follows_the_ground_electrode_as_per_record(context):
    """issue 14: the batch kernel sets the mains common mode as the per-record simulation
    (cardiosim.noise.electrode.common_mode_voltage) does -- V_cm = i_d Z_ground, i_d drawn
    from displacement_current_ua, Z_ground the median electrode impedance at the start of the
    record -- and keeps the 'fixed' cm_voltage_mv option."""
    from scipy import stats

    from cardiosim.noise import NoiseConfig, simulate_electrode_noise

    seeds = np.arange(1000, dtype=np.uint64) * np.uint64(7919) + np.uint64(3)
    for electrode in ("textile", "dry"):
        nz = NoiseConfig(kinds=("powerline",), electrode=electrode)
        t = ShirtTransform(0, context=context, mode="batch", config=SimulationConfig(motion=False, noise=nz))
        e = t._engine
        p = K.draw_params(seeds, e.base, e.center, e.spec)
        # analytic, per record: the impedances recovered from the potential dividers
        z_start = e.spec.zin * p.divider / (1.0 - p.divider)
        i_d, zg = p.mains_src[:, 0], p.mains_src[:, 1]
        np.testing.assert_allclose(zg, np.median(z_start, axis=1), rtol=1e-9)
        np.testing.assert_allclose(p.pl[:, 0], i_d * 1e-6 * zg * 1e3, rtol=1e-12)
        lo, hi = nz.displacement_current_ua
        assert np.all((i_d >= lo) & (i_d <= hi)) and np.ptp(i_d) > 0.8 * (hi - lo)
        # the distribution of the amplitude against the per-record simulation's
        n_e = e.base.shape[0]
        ref = np.array([simulate_electrode_noise(n_e, 64, FS, np.random.default_rng(i), nz).params["cm_voltage_mv"]
                        for i in range(1000)])
        assert np.median(p.pl[:, 0]) == pytest.approx(np.median(ref), rel=0.1), electrode
        assert stats.ks_2samp(p.pl[:, 0], ref).pvalue > 0.01, electrode     # old fixed 20-200 mV: p ~ 1e-300
    # 'fixed' stays reachable: cm_voltage_mv, no displacement current
    nz = NoiseConfig(kinds=("powerline",), powerline_coupling="fixed", cm_voltage_mv=(20.0, 200.0))
    e = ShirtTransform(0, context=context, mode="batch", config=SimulationConfig(motion=False, noise=nz))._engine
    p = K.draw_params(seeds, e.base, e.center, e.spec)
    assert np.all((p.pl[:, 0] >= 20.0) & (p.pl[:, 0] <= 200.0)) and np.isnan(p.mains_src).all()
    q = K.params_numpy(int(seeds[3]), e.base, e.center, e.spec)
    np.testing.assert_allclose(p.pl[3], q.pl[0], rtol=1e-12)


def test_gel_electrodes_keep_their_start_impedance_as_per_record(context):
    """Wet gel does not hydrate further: the per-record simulation keeps each gel electrode's
    drawn start impedance for the whole record (``zinf = z0``,
    cardiosim.noise.electrode._draw_impedance), so its impedance is log-uniform on
    300-1000 Ohm whatever the wear time. The batch kernel drew a second, unused "worn"
    impedance and decayed towards it (a mixture that piles up mid-range: KS p = 8e-63 against
    the log-uniform on these seeds)."""
    from scipy import stats

    from cardiosim.noise import NoiseConfig

    seeds = np.arange(1000, dtype=np.uint64) * np.uint64(104729) + np.uint64(11)
    nz = NoiseConfig(kinds=("powerline",), electrode="gel")
    e = ShirtTransform(0, context=context, mode="batch", config=SimulationConfig(motion=False, noise=nz))._engine
    p = K.draw_params(seeds, e.base, e.center, e.spec)
    z = (e.spec.zin * p.divider / (1.0 - p.divider)).ravel()
    lo, hi = K.IMPEDANCE_OHM["gel"][0]
    assert z.min() >= lo * (1 - 1e-9) and z.max() <= hi * (1 + 1e-9)
    assert stats.kstest(np.log(z), stats.uniform(np.log(lo), np.log(hi) - np.log(lo)).cdf).pvalue > 0.01
    for j in (0, 7):
        q = K.params_numpy(int(seeds[j]), e.base, e.center, e.spec)
        for name in ("divider", "pl", "mains_src", "bwe"):
            np.testing.assert_allclose(getattr(p, name)[j], getattr(q, name)[0], rtol=1e-12, err_msg=name)


def test_refusals_name_what_is_wrong(context, sources):
    with pytest.raises(ConfigError, match=r"motion = true.*noise kinds \['activity', 'contact', 'drift'\]"):
        ShirtTransform(0, context=context, mode="batch", config=SimulationConfig())
    with pytest.raises(ConfigError, match="output='record' needs mode='full'"):
        ShirtTransform(0, context=context, mode="batch", output="record")
    t = ShirtTransform(0, context=context, mode="batch")
    assert t.config == default_batch_config()
    with pytest.raises(SamplingRateError, match="toy250"):
        t.batch([CardiacSource(dipole=np.zeros((3, 500)), fs=250.0, source_id="toy250")])
    with pytest.raises(SignalError, match="one length"):
        t.batch([sources[0], _source(9, n=1000)])
    with pytest.raises(ConfigError, match="seeds must be 2"):
        t.batch(sources[:2], seeds=[1])
    with pytest.raises(ConfigError, match="pass seed="):
        t(sources[0], rng=np.random.default_rng(0))


class _Items(torch.utils.data.Dataset):
    def __init__(self, sources):
        self.sources = sources

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return self.sources[i % len(self.sources)], torch.tensor(float(i))


@pytest.mark.parametrize("workers", [0, 2])
def test_dataloader_collate_is_reproducible(context, sources, workers):
    def run():
        torch.manual_seed(7)
        t = ShirtTransform(1, context=context, mode="batch")
        dl = torch.utils.data.DataLoader(_Items(sources), batch_size=4, num_workers=workers, collate_fn=t.collate)
        return [(x.clone(), y.clone()) for x, y in dl]

    a, b = run(), run()
    assert len(a) == 2 and a[0][0].shape == (4, 12, 1500)
    assert torch.equal(a[1][1], torch.arange(4.0, 8.0))
    for (x1, y1), (x2, y2) in zip(a, b):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(a[0][0][0], a[1][0][1])      # items 0 and 5 are both source 0: new variants


def test_transform_pickles_for_spawned_workers(context, sources):
    import pickle

    t = ShirtTransform(2, context=context, mode="batch")
    clone = pickle.loads(pickle.dumps(t))
    seeds = np.array([3, 4], dtype=np.uint64)
    assert torch.equal(clone.batch(sources[:2], seeds=seeds), t.batch(sources[:2], seeds=seeds))
    full = pickle.loads(pickle.dumps(ShirtTransform(2, context=context)))
    assert full(sources[0]).shape == (12, 1500)
