"""Synthesised noise against the real MIT-BIH Noise Stress Test Database records, and
noise models fitted to recordings.

Log-spectral distance (LSD): RMS difference in dB of the band-normalised Welch PSDs on a
log-spaced grid over 0.05-40 Hz (:func:`cardiosim.noise.log_spectral_distance`).

Bound: 6 dB. Justification, measured on the records themselves (printed by the tests):
the LSD between 5-minute pieces of the same NSTDB bw record reaches 5.7 dB (median
4.5 dB) and between its two channels 2.4 dB -- natural variability of one kind of real
noise; the LSD between the bw and ma records (two different kinds) is 11.7 dB. A
synthetic spectrum within 6 dB of its target is as close as real pieces of that noise are
to each other, and about twice closer than the other kind; the tests also assert that
it is closer to its own kind than to the other one.
"""

from __future__ import annotations

import numpy as np
import pytest

from cardiosim.motion import simulate_motion
from cardiosim.noise import (NoiseConfig, fit_noise_model, log_spectral_distance, read_nstdb_noise,
                             simulate_electrode_noise, synthesize_noise, welch_psd)
from cardiosim.noise.fit import nstdb_noise_model

LSD_BOUND_DB = 6.0


@pytest.fixture(scope="module")
def nstdb(data_dir):
    if not (data_dir / "nstdb" / "bw.hea").is_file():
        pytest.skip("NSTDB records not found")
    bw, fs = read_nstdb_noise("bw", data_dir)
    ma, _ = read_nstdb_noise("ma", data_dir)
    n = int(600 * fs)   # first 10 minutes
    return {"bw": bw[:, :n], "ma": ma[:, :n], "fs": fs}


def _corr_se_independent(a, b):
    """Bartlett's standard error of the sample correlation of two independent stationary
    series: ``sqrt((1 + 2 sum_k rho_a(k) rho_b(k)) / n)``, lags up to n / 10."""
    n = a.size
    ac = []
    for v in (a - a.mean(), b - b.mean()):
        f = np.fft.rfft(v, 2 * n)
        r = np.fft.irfft(np.abs(f) ** 2, 2 * n)[:n // 10]
        ac.append(r / r[0])
    return float(np.sqrt(max(1 + 2 * np.sum(ac[0][1:] * ac[1][1:]), 1.0) / n))


def _psd(x, fs):
    return welch_psd(x, fs, int(40 * fs))


def test_real_variability_supports_bound(nstdb):
    fs = nstdb["fs"]
    f, pbw = _psd(nstdb["bw"], fs)
    _, pma = _psd(nstdb["ma"], fs)
    cross = log_spectral_distance(f, pbw.mean(0), pma.mean(0))
    chan = log_spectral_distance(f, pbw[0], pbw[1])
    print(f"\nLSD bw ch0 vs ch1 {chan:.2f} dB; bw vs ma {cross:.2f} dB")
    assert chan < LSD_BOUND_DB < cross


def test_baseline_wander_vs_nstdb_bw(nstdb, rng):
    fs = nstdb["fs"]
    n = nstdb["bw"].shape[1]
    m = simulate_motion(n / fs, fs, rng, activity="rest", n_electrodes=2)
    en = simulate_electrode_noise(2, n, fs, rng, NoiseConfig(kinds=("bw",)), motion=m)
    lead = en.by_kind["bw"][0] - en.by_kind["bw"][1]        # a bipolar channel, like NSTDB's
    f, p = _psd(lead, fs)
    _, pbw = _psd(nstdb["bw"], fs)
    _, pma = _psd(nstdb["ma"], fs)
    d = log_spectral_distance(f, p, pbw.mean(0))
    d_other = log_spectral_distance(f, p, pma.mean(0))
    print(f"\nLSD synthetic bw vs NSTDB bw {d:.2f} dB (vs ma {d_other:.2f} dB)")
    assert d < LSD_BOUND_DB
    assert d < d_other


def test_muscle_noise_vs_nstdb_ma(nstdb, rng):
    """NSTDB ma was recorded on active, moving subjects: 77 % of its power is below 0.5 Hz
    (measured on the record), the rest is muscle. The synthetic counterpart is the emg kind
    of a walking wearer plus the bw kind at that one measured power ratio."""
    fs = nstdb["fs"]
    n = nstdb["ma"].shape[1]
    f, pma = _psd(nstdb["ma"], fs)
    low = pma.mean(0)[(f > 0) & (f < 0.5)].sum() / pma.mean(0)[f > 0].sum()
    m = simulate_motion(n / fs, fs, rng, activity="walking", n_electrodes=2)
    en = simulate_electrode_noise(2, n, fs, rng, NoiseConfig(kinds=("bw", "emg")), motion=m)
    emg = en.by_kind["emg"][0] - en.by_kind["emg"][1]
    bw = en.by_kind["bw"][0] - en.by_kind["bw"][1]
    lead = emg / emg.std() * np.sqrt(1 - low) + bw / bw.std() * np.sqrt(low)
    _, p = _psd(lead, fs)
    _, pbw = _psd(nstdb["bw"], fs)
    d = log_spectral_distance(f, p, pma.mean(0))
    d_other = log_spectral_distance(f, p, pbw.mean(0))
    # above 1 Hz the muscle kind alone carries the shape (PHYSICS.md section 6: flat 1-20 Hz)
    _, pe = _psd(emg, fs)
    print(f"\nLSD synthetic muscle vs NSTDB ma {d:.2f} dB (vs bw {d_other:.2f} dB); low-frequency share {low:.2f}")
    assert d < LSD_BOUND_DB
    assert d < d_other


@pytest.mark.parametrize("name", ["bw", "ma"])
def test_psd_model_reproduces_recording(nstdb, rng, name):
    """Bound 2 dB: two independent Welch estimates with ~29 averaged 40-s segments differ by
    about 4.34 dB * sqrt(2 / 29) = 1.1 dB RMS per bin from estimation noise alone."""
    fs = nstdb["fs"]
    x = nstdb[name]
    # the Gaussian PSD model (bursts=False): its spectrum is the point here; bursts make the
    # level of one realisation random (tests/test_noise_fit.py checks them)
    model = fit_noise_model(x, fs, method="psd", nperseg_s=40, bursts=False)
    y = synthesize_noise(model, x.shape[1], rng)
    assert y.shape == x.shape
    f, p = _psd(y, fs)
    _, px = _psd(x, fs)
    for ch in range(2):
        d = log_spectral_distance(f, p[ch], px[ch], normalize=False)
        print(f"\n{name} ch{ch}: LSD PSD-model synthesis vs recording {d:.2f} dB")
        assert d < 2.0
    np.testing.assert_allclose(y.std(axis=1), x.std(axis=1), rtol=0.15)


def test_ar_model_reproduces_ma(nstdb, rng):
    """Time-varying AR(12) on 20-s pieces at 90 Hz (FECGSYN's recipe, PHYSICS.md section 6).
    Bound 4 dB: the LSD between 5-minute pieces of ma itself reaches 4.1 dB."""
    fs = nstdb["fs"]
    x = nstdb["ma"][:, : int(300 * fs)]
    model = fit_noise_model(x, fs, method="ar", order=12, segment_s=20, fit_fs=90, bursts=False)
    assert model.ar.shape == (2, 15, 12)
    y = synthesize_noise(model, x.shape[1], rng, fs=fs)
    f, p = _psd(y, fs)
    _, px = _psd(x, fs)
    d = log_spectral_distance(f, p[0], px[0], normalize=False)
    print(f"\nma: LSD AR(12) synthesis vs recording {d:.2f} dB")
    assert d < 4.0


def test_nstdb_model_at_device_rate(data_dir, rng):
    if not (data_dir / "nstdb" / "bw.hea").is_file():
        pytest.skip("NSTDB records not found")
    model = nstdb_noise_model("bw", data_dir)
    y = synthesize_noise(model, 5000, rng, fs=500.0)
    assert y.shape == (2, 5000)
    f, p = welch_psd(y, 500.0, 5000)
    p = p.sum(0)
    assert p[(f > 0) & (f < 1.0)].sum() / p[f > 0].sum() > 0.9


def test_recorded_kind_from_nstdb(nstdb, data_dir, rng, monkeypatch):
    """The 'recorded' kind draws each electrode's noise from a model of an NSTDB record;
    its spectrum matches the record's and it takes part in SNR scaling like any kind."""
    monkeypatch.setenv("CARDIOSIM_DATA", str(data_dir))
    fs = 360.0
    # 900 s: the ma model's bursts modulate its low and high bands apart, so one 300-s
    # realisation's spectral shape varies (its worst electrode over 2.5 dB in 23-43 % of
    # random streams, previous and present Gaussian generator alike; 3 % at 900 s)
    n = int(900 * fs)
    cfg = NoiseConfig(kinds=("recorded",), recorded_source="nstdb:ma", snr_db={"recorded": (6.0, 6.0)})
    en = simulate_electrode_noise(3, n, fs, rng, cfg)
    x = en.by_kind["recorded"]
    assert x.shape == (3, n) and x.dtype == np.float32
    f, p = _psd(x.astype(np.float64), fs)
    _, pma = _psd(nstdb["ma"], fs)
    for e in range(3):
        ch = int(en.params[f"recorded_channel.e{e}"])
        d = log_spectral_distance(f, p[e], pma[ch])
        assert d < 2.5, (e, d)
    # independent per electrode: the sample correlation of the series and of their first
    # differences (nearly white: a sensitive check) within 4 standard errors of zero for two
    # independent series (Bartlett's, from their autocorrelations: ma noise is low-passed and
    # bursty, so the raw series' correlation has an sd of ~0.05 at 300 s, ~0.025 at 900 s)
    for a, b in ((x[0], x[1]), (np.diff(x[0]), np.diff(x[1]))):
        a = a.astype(np.float64)
        b = b.astype(np.float64)
        assert abs(np.corrcoef(a, b)[0, 1]) < 4 * _corr_se_independent(a, b)
    assert en.snr_targets == {"recorded": 6.0}
