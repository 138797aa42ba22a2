"""Classic augmentations."""

from __future__ import annotations

import numpy as np
import pytest

from cardiosim.errors import ConfigError, SignalError
from cardiosim.noise.augment import amplitude_scale, lead_dropout, lead_mixing, time_warp


@pytest.fixture
def x(rng):
    t = np.arange(2000) / 500
    return (np.sin(2 * np.pi * 1.2 * t)[None, None] * rng.uniform(0.5, 2, (4, 12, 1))).astype(np.float32)


def test_amplitude_scale(x, rng):
    y, p = amplitude_scale(x, rng, (0.5, 2.0))
    assert y.dtype == np.float32 and y.shape == x.shape
    ratio = y[..., 100] / x[..., 100]
    np.testing.assert_allclose(ratio, ratio[:, :1].repeat(12, 1), rtol=1e-5)    # one factor per record
    assert np.all((p["scale"] >= 0.5) & (p["scale"] <= 2.0))
    y, p = amplitude_scale(x, rng, per_lead=True)
    assert p["scale"].shape == (4, 12)


def test_time_warp(x, rng):
    y, p = time_warp(x, rng, max_warp=0.1)
    tau = p["warped_time"]
    assert tau[0] == 0 and tau[-1] == pytest.approx(x.shape[-1] - 1)
    assert np.all(np.diff(tau) > 0.85) and np.all(np.diff(tau) < 1.15)
    np.testing.assert_allclose(y[..., 0], x[..., 0]) and np.testing.assert_allclose(y[..., -1], x[..., -1], atol=1e-5)
    y0, _ = time_warp(x, rng, max_warp=0.0)
    np.testing.assert_allclose(y0, x, atol=1e-6)
    assert np.abs(y - x).max() > 0.01


def test_lead_dropout(x, rng):
    y, p = lead_dropout(x, rng, p=0.5)
    d = p["dropped"]
    assert np.all(y[d] == 0) and np.all(y[~d] == x[~d])
    assert 0.3 < d.mean() < 0.7
    y, p = lead_dropout(x, rng, p=1.0, min_keep=2)
    assert np.all((~p["dropped"]).sum(axis=-1) == 2)


def test_lead_mixing(x, rng):
    y, p = lead_mixing(x, rng, alpha=0.0)
    np.testing.assert_allclose(y, x)
    y, p = lead_mixing(x, rng, alpha=0.2)
    np.testing.assert_allclose(y, np.matmul(p["mixing"], x.astype(np.float64)), rtol=1e-5, atol=1e-6)
    assert np.allclose(np.diagonal(p["mixing"], axis1=-2, axis2=-1), 1.0)


def test_errors(x, rng):
    with pytest.raises(SignalError):
        amplitude_scale(np.ones(5), rng)
    with pytest.raises(ConfigError):
        lead_dropout(x, rng, p=1.5)
    with pytest.raises(ConfigError):
        time_warp(x, 3)
