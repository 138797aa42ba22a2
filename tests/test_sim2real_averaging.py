"""The sim-to-real trainer's weight averaging (2026-12-06, docs/sim2real/rerun_e53052c/README.md).

``train.fit`` keeps the mean of the weights at the end of the epochs of the second half of
training, with batch-norm statistics measured again on the training windows, instead of the
last epoch's weights. Checked here on small synthetic windows (no real data): the kept weights
are exactly that mean, the batch-norm statistics are plain means over the training windows,
``average_from=None`` keeps the last epoch, and bad settings are ConfigErrors.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cardiosim.errors import ConfigError  # noqa: E402
from cardiosim.sim2real import train  # noqa: E402


def _data(n=32, t=200, seed=0):
    """Two-lead windows: noisy sines, label 1 when the sine is fast."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 2).astype(np.float32)
    f = np.where(y == 1, 6.0, 1.5)[:, None, None]
    s = np.arange(t)[None, None, :] / 100.0
    x = np.sin(2 * np.pi * f * s + rng.uniform(0, 6.3, (n, 2, 1))) + 0.3 * rng.standard_normal((n, 2, t))
    return x.astype(np.float32), np.stack([y, np.full(n, np.nan, np.float32)], axis=1)


def _budget(**kw):
    return dataclasses.replace(train.get_budget("quick").for_task("af"), batch=8, **kw)


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()
            if v.is_floating_point() and "running" not in k}


def test_fit_keeps_the_mean_of_the_second_half_epochs_weights():
    """Weights after fit(epochs=4, average_from=0.5) are the mean of the last-epoch weights of
    runs stopped after 3 and 4 epochs (the trainer is deterministic given the seed), and differ
    from the 4-epoch run's own weights."""
    x, y = _data()
    snaps = []
    for e in (3, 4):
        m = train.make_model("af", 2, 2, _budget(epochs=e), 5)
        train.fit(m, x, y, _budget(epochs=e, average_from=None), 5, "cpu")
        snaps.append(_weights(m))
    m = train.make_model("af", 2, 2, _budget(epochs=4), 5)
    train.fit(m, x, y, _budget(epochs=4, average_from=0.5), 5, "cpu")
    got = _weights(m)
    assert got.keys() == snaps[0].keys()
    for k in got:
        torch.testing.assert_close(got[k], (snaps[0][k] + snaps[1][k]) / 2, rtol=1e-5, atol=1e-6)
    assert any(not torch.allclose(got[k], snaps[1][k]) for k in got)


def test_averaged_model_batchnorm_statistics_are_plain_means_over_the_training_windows():
    """The stem's batch-norm running mean equals the mean of its input (the stem convolution of
    the z-scored windows, averaged weights) over all training windows, not a momentum average."""
    x, y = _data(n=32)
    b = _budget(epochs=3, average_from=0.5)
    m = train.make_model("af", 2, 2, b, 1)
    train.fit(m, x, y, b, 1, "cpu")
    xt = torch.as_tensor(x)
    with torch.no_grad():
        z = (xt - xt.mean(dim=-1, keepdim=True)) / (xt.std(dim=-1, keepdim=True) + 1e-3)
        h = m.stem[0](z)  # the convolution before the stem's batch norm
    torch.testing.assert_close(m.stem[1].running_mean, h.mean(dim=(0, 2)), rtol=1e-4, atol=1e-5)
    assert m.stem[1].momentum == torch.nn.BatchNorm1d(1).momentum  # restored after the recount
    assert not m.training


def test_without_averaging_the_last_epoch_is_kept_with_its_momentum_statistics():
    x, y = _data(n=32)
    b = _budget(epochs=2, average_from=None)
    m = train.make_model("af", 2, 2, b, 1)
    train.fit(m, x, y, b, 1, "cpu")
    xt = torch.as_tensor(x)
    with torch.no_grad():
        z = (xt - xt.mean(dim=-1, keepdim=True)) / (xt.std(dim=-1, keepdim=True) + 1e-3)
        h = m.stem[0](z)
    assert not torch.allclose(m.stem[1].running_mean, h.mean(dim=(0, 2)), rtol=1e-3, atol=1e-4)


def test_beat_detector_is_averaged_too():
    """BeatNet goes through the same averaging (every task and condition shares fit)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 1, 320)).astype(np.float32)
    peaks = [np.arange(20, 320, 80) for _ in range(16)]
    runs = []
    for avg in (None, 0.5):
        b = dataclasses.replace(train.get_budget("quick").for_task("beats"), epochs=2, batch=8, average_from=avg)
        m = train.make_model("beats", 1, 1, b, 2)
        train.fit(m, x, None, b, 2, "cpu", peaks=peaks)
        runs.append(m.body.stem[1].running_var.clone())
    assert not torch.allclose(runs[0], runs[1])


@pytest.mark.parametrize("bad", [1.0, -0.1, 2])
def test_bad_average_from_is_a_config_error(bad):
    x, y = _data(n=8)
    b = _budget(epochs=2, average_from=bad)
    with pytest.raises(ConfigError, match="average_from"):
        train.fit(train.make_model("af", 2, 2, b, 0), x, y, b, 0, "cpu")


def test_full_budget_averages_the_second_half_of_twelve_epochs():
    full = train.get_budget("full")
    assert full.epochs == 12 and full.average_from == 0.5
    assert train._average_start(full) == 6
    assert train._average_start(train.get_budget("quick")) == 1  # the last of its 2 epochs
