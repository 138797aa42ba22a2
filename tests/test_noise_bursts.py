"""Burst envelopes against their analytic moments (log-normal and Markov on/off)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from cardiosim.errors import ConfigError
from cardiosim.noise.bursts import BurstParams, burst_envelope, lognormal_sigma, modulate

FS = 100.0


def test_identity_envelope(rng):
    np.testing.assert_array_equal(burst_envelope(BurstParams(), 1000, FS, rng), 1.0)


def test_lognormal_moments_and_kurtosis(rng):
    p = BurstParams(sigma_fast=0.4, tau_fast_s=0.3, sigma_slow=0.3, tau_slow_s=5.0)
    e = burst_envelope(p, 400_000, FS, rng, n_rows=4)
    assert e.shape == (4, 400_000) and np.all(e > 0)
    assert np.mean(e ** 2) == pytest.approx(1.0, rel=0.05)
    log_e = np.log(e[0])
    assert np.var(log_e) == pytest.approx(0.4 ** 2 + 0.3 ** 2, rel=0.1)
    # fast component: autocorrelation of log e at lag tau_fast drops by ~ sigma_f^2 (1 - 1/e)
    d = log_e - log_e.mean()
    lag = int(0.3 * FS)
    cov = np.mean(d[:-lag] * d[lag:])
    expected = 0.4 ** 2 * np.exp(-1) + 0.3 ** 2 * np.exp(-0.3 / 5.0)
    assert cov == pytest.approx(expected, rel=0.15)
    # Gaussian noise times a slow log-normal envelope: excess kurtosis 3 exp(4 s^2) - 3
    x = modulate(rng.standard_normal((4, 400_000)), p, FS, rng)
    k = np.mean(stats.kurtosis(x, axis=1))
    assert k == pytest.approx(3 * np.exp(4 * (0.4 ** 2 + 0.3 ** 2)) - 3, rel=0.2)
    assert lognormal_sigma(k) == pytest.approx(0.5, rel=0.1)


def test_markov_bursts_fraction(rng):
    p = BurstParams(burst_rate_hz=0.25, burst_duration_s=1.0, burst_gain=5.0)
    e = burst_envelope(p, 2_000_000, FS, rng)[0]
    frac = np.mean(e > 0.5 * e.max())
    assert frac == pytest.approx(0.25 / 1.25, abs=0.03)           # rate * dur / (1 + rate * dur)
    assert np.mean(e ** 2) == pytest.approx(1.0, rel=0.05)
    # float32 noise stays float32
    assert modulate(np.ones((2, 50), np.float32), p, FS, rng).dtype == np.float32


def test_errors(rng):
    with pytest.raises(ConfigError):
        BurstParams(sigma_fast=-1)
    with pytest.raises(ConfigError):
        BurstParams(tau_slow_s=0)
    with pytest.raises(ConfigError):
        burst_envelope(BurstParams(), 10, FS, np.random.default_rng(0).bit_generator)
