"""Non-Gaussian, non-stationary noise fitted to real recordings, checked on held-out data.

``fit_noise_model`` (bursts on) is fitted on the FIRST half of each recording; the
synthesis (median over several independent realisations of the same length) is compared
with the fitted half (does the model reproduce what it was fitted to?) and with the SECOND,
held-out half (does it generalise?). Statistics, computed here independently of
``cardiosim.noise.fit`` with scipy:

* excess kurtosis after a zero-phase 4th-order Butterworth 1-Hz high-pass;
* the coefficient of variation of the RMS of consecutive 10-s windows (mean removed);
* the log-spectral distance (shape, 1-20 Hz) of the Welch PSD against the held-out half.

Targets (issue 14): kurtosis and 10-s RMS variation within 25 %, spectrum within 2 dB.
Recordings: NSTDB ``bw`` and ``ma`` (both channels, 15-min halves) and an em-like motion
record: the non-cardiac residual of the textile-electrode chest recordings while running,
5 subjects, each record's first 30 s (fit) and last 30 s (held out), each divided by its
QRS peak-to-peak (gain unknown), written as a WFDB record and read back through the
project's reader like a user's own recording.

The real recordings' own halves differ (e.g. NSTDB ``ma`` channel 2's 10-s RMS variation
is 0.43 in the first half and 0.68 in the second): against the held-out half the bound is
25 % plus the real half-to-half difference, printed with every result.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal, stats

from cardiosim.noise import fit_noise_model, log_spectral_distance, read_nstdb_noise, synthesize_noise
from cardiosim.noise.fit import read_noise_record

N_SIMS = 16
#: The em-like record's kurtosis is about 9.5: the median over 16 realisations of its
#: synthesis still varies by +-20 % from one random stream to another (7.1-11.7 over 12
#: streams, measured with the previous and the present Gaussian generator alike), as much as
#: the 25 % tolerance; 48 realisations (2 s) measure the model rather than the stream.
N_SIMS_HEAVY = 48
TOL = 0.25


def _kurtosis_hp(x, fs):
    sos = signal.butter(4, 1.0, "highpass", fs=fs, output="sos")
    return stats.kurtosis(signal.sosfiltfilt(sos, x, axis=-1), axis=-1)


def _rms_cv(x, fs):
    c = int(round(10 * fs))
    k = x.shape[-1] // c
    r = np.array([np.std(x[..., i * c:(i + 1) * c], axis=-1) for i in range(k)])
    return r.std(axis=0) / r.mean(axis=0)


def _lsd(a, b, fs):
    f, pa = signal.welch(a, fs, nperseg=int(4 * fs), axis=-1)
    _, pb = signal.welch(b, fs, nperseg=int(4 * fs), axis=-1)
    return log_spectral_distance(f, pa, pb, band=(1.0, 20.0))


def _check(name, fit_half, held_half, fs, rng, n_sims=N_SIMS):
    model = fit_noise_model(fit_half, fs)
    n = fit_half.shape[-1]
    sims = np.stack([synthesize_noise(model, n, rng, fs=fs) for _ in range(n_sims)])   # [S, c, n]
    k_sim, v_sim = np.median(_kurtosis_hp(sims, fs), axis=0), np.median(_rms_cv(sims, fs), axis=0)
    k_fit, k_held = _kurtosis_hp(fit_half, fs), _kurtosis_hp(held_half, fs)
    v_fit, v_held = _rms_cv(fit_half, fs), _rms_cv(held_half, fs)
    fails = []
    for ch in range(fit_half.shape[0]):
        lsd = _lsd(sims[0, ch], held_half[ch], fs)
        lsd_real = _lsd(fit_half[ch], held_half[ch], fs)
        print(f"\n{name} ch{ch}: kurtosis sim {k_sim[ch]:.2f} fitted-half {k_fit[ch]:.2f} held-out {k_held[ch]:.2f}; "
              f"10-s RMS CV sim {v_sim[ch]:.3f} fitted {v_fit[ch]:.3f} held-out {v_held[ch]:.3f}; "
              f"LSD 1-20 Hz sim vs held-out {lsd:.2f} dB (real halves {lsd_real:.2f} dB)")
        for what, sim, fit, held in (("kurtosis", k_sim[ch], k_fit[ch], k_held[ch]),
                                     ("rms_cv", v_sim[ch], v_fit[ch], v_held[ch])):
            if abs(sim - fit) > TOL * abs(fit):
                fails.append(f"{name} ch{ch} {what}: sim {sim:.3f} vs fitted half {fit:.3f}")
            if abs(sim - held) > (TOL + abs(fit - held) / abs(held)) * abs(held):
                fails.append(f"{name} ch{ch} {what}: sim {sim:.3f} vs held-out {held:.3f}")
        if lsd > 2.0:
            fails.append(f"{name} ch{ch} LSD {lsd:.2f} dB")
    return fails


@pytest.fixture(scope="module")
def nstdb(data_dir):
    if not (data_dir / "nstdb" / "bw.hea").is_file():
        pytest.skip("NSTDB records not found")
    return {k: read_nstdb_noise(k, data_dir) for k in ("bw", "ma")}


@pytest.mark.parametrize("name", ["bw", "ma"])
def test_nstdb_bursts_fitted_on_first_half(nstdb, name, rng):
    x, fs = nstdb[name]
    h = x.shape[1] // 2
    fails = _check(name, x[:, :h], x[:, h:2 * h], fs, rng)
    assert not fails, fails


@pytest.fixture(scope="module")
def textile_run_wfdb(data_dir, tmp_path_factory):
    """The em-like record: 5 subjects' textile-electrode running residuals (module docstring),
    first 30 s of each (fit) then last 30 s of each (held out), as one 2-channel WFDB record."""
    textile = pytest.importorskip("cardiosim.noise.textile", reason="textile residual (issue 14 part 3) not available")
    import wfdb
    folder = data_dir / "textile"
    if not (folder / "01_textile_run.hea").is_file():
        pytest.skip("textile recordings not found")
    fs = 500.0
    n = int(30 * fs)
    first, last = [], []
    for s in ("01", "02", "03", "04", "05"):
        x = wfdb.rdrecord(str(folder / f"{s}_textile_run")).p_signal[:, 0]
        res, _, _, _, qrs_pp = textile.residual(x, fs)
        res = res / qrs_pp
        first.append(res[:n])
        last.append(res[-n:])
    sig = np.stack([np.concatenate(first), np.concatenate(last)], axis=1)
    out = tmp_path_factory.mktemp("em_like")
    wfdb.wrsamp("textile_run_residual", fs=fs, units=["mV", "mV"], sig_name=["first30s", "last30s"],
                p_signal=sig, fmt=["16", "16"], adc_gain=[2000.0, 2000.0], baseline=[0, 0], write_dir=str(out))
    return out / "textile_run_residual"


def test_em_like_textile_residual_through_wfdb_reader(textile_run_wfdb, rng):
    x, fs = read_noise_record(textile_run_wfdb)      # the project's reader, as a user's record
    assert x.shape == (2, 150 * 500) and fs == 500.0
    fails = _check("textile run residual", x[:1], x[1:], fs, rng, n_sims=N_SIMS_HEAVY)
    assert not fails, fails
