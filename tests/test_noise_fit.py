"""Noise-model fitting on synthetic recordings with a known answer."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from cardiosim.errors import ConfigError, DataFormatError, SignalError
from cardiosim.noise import fit_noise_model, log_spectral_distance, read_nstdb_noise, synthesize_noise


def test_ar_recovers_known_coefficients(rng):
    a_true = np.array([-1.6, 0.8])                 # poles at 0.8 +- 0.4j, well inside the unit circle
    e = rng.standard_normal(200_000) * 0.3
    x = signal.lfilter([1.0], np.r_[1.0, a_true], e)
    m = fit_noise_model(x, 100.0, method="ar", order=2)
    np.testing.assert_allclose(m.ar[0, 0], a_true, atol=0.01)
    assert m.sigma[0, 0] == pytest.approx(0.3, rel=0.02)
    # synthesis reproduces the analytic AR spectrum
    y = synthesize_noise(m, 200_000, rng)[0]
    f, p = signal.welch(y, 100.0, nperseg=1024)
    w, h = signal.freqz([0.3], np.r_[1.0, a_true], worN=f, fs=100.0)
    p_true = 2 * np.abs(h) ** 2 / 100.0
    assert log_spectral_distance(f, p, p_true, band=(0.5, 45), normalize=False) < 0.5


def test_time_varying_ar_tracks_segments(rng):
    fs = 100.0
    a1, a2 = np.array([-0.9]), np.array([0.9])     # low-pass then high-pass segments
    x = np.concatenate([signal.lfilter([1], np.r_[1, a1], rng.standard_normal(5000)),
                        signal.lfilter([1], np.r_[1, a2], rng.standard_normal(5000))])
    m = fit_noise_model(x, fs, method="ar", order=1, segment_s=50)
    np.testing.assert_allclose(m.ar[0, :, 0], [-0.9, 0.9], atol=0.03)


def test_fit_errors():
    with pytest.raises(SignalError):
        fit_noise_model(np.full(100, np.nan), 100.0)
    with pytest.raises(ConfigError, match="method"):
        fit_noise_model(np.random.default_rng(0).standard_normal(1000), 100.0, method="wavelet")
    with pytest.raises(ConfigError):
        read_nstdb_noise("xx")
    with pytest.raises(DataFormatError):
        read_nstdb_noise("bw", "/nonexistent")


def test_noise_record_read_through_the_project_reader(tmp_path, rng):
    """A user's noise record: channel names that are not leads are kept, units scaled to mV,
    a truncated signal file refused (the project's WFDB reader's checks)."""
    import wfdb
    from cardiosim.noise import read_noise_record
    x = rng.standard_normal((2000, 2)) * 50.0                       # uV
    wfdb.wrsamp("mynoise", fs=250, units=["uV", "uV"], sig_name=["chest motion", "ref"], p_signal=x,
                fmt=["16", "16"], adc_gain=[100.0, 100.0], baseline=[0, 0], write_dir=str(tmp_path))
    y, fs = read_noise_record(tmp_path / "mynoise")
    assert fs == 250.0 and y.shape == (2, 2000)
    np.testing.assert_allclose(y, x.T / 1000.0, atol=1e-4)           # mV
    dat = tmp_path / "mynoise.dat"
    dat.write_bytes(dat.read_bytes()[:-100])
    with pytest.raises(DataFormatError, match="truncated"):
        read_noise_record(tmp_path / "mynoise")


def test_bursts_off_is_gaussian_and_on_is_not(rng):
    """bursts=False: stationary Gaussian (kurtosis ~ 0); bursts on, fitted to bursty noise
    (Gaussian times a known log-normal envelope), reproduces its kurtosis within 25 %."""
    from cardiosim.noise import BurstParams, modulate, noise_statistics
    fs = 100.0
    x = modulate(rng.standard_normal(int(1800 * fs)), BurstParams(sigma_fast=0.5, tau_fast_s=0.5), fs, rng)
    k_true = noise_statistics(x, fs)["kurtosis"][0]
    m0 = fit_noise_model(x, fs, bursts=False)
    m1 = fit_noise_model(x, fs)
    k0 = np.median([noise_statistics(synthesize_noise(m0, x.size, rng), fs)["kurtosis"][0] for _ in range(4)])
    k1 = np.median([noise_statistics(synthesize_noise(m1, x.size, rng), fs)["kurtosis"][0] for _ in range(4)])
    assert abs(k0) < 0.1
    assert k1 == pytest.approx(k_true, rel=0.25)
    assert 0.3 < m1.bursts[0][1].sigma_fast < 0.7
