"""The one R-peak detector (cardiosim.qrs) against reference beat annotations: MIT-BIH
Arrhythmia record 100 (cardiologists' annotations), the ODE's own R-peak annotations on
12-lead projections, and its band-pass kernel against SciPy's filtfilt."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from cardiosim import evaluate, noise, qrs
from cardiosim.errors import SignalError
from cardiosim.noise import snr
from cardiosim.qrs._kernels import KERNELS

# MIT-BIH beat annotation symbols (wfdb's ann_label_table; non-beat annotations excluded)
BEATS = set("NLRBAaJSVrFejnE/fQ?")

# Dower-style 12 leads from Frank X, Y, Z (rows I, II, III, aVR, aVL, aVF, V1..V6;
# same matrix as benchmarks/bench_ode.py, PHYSICS.md section 1)
_D = np.array([[-0.515, 0.157, -0.917], [0.044, 0.164, -1.387], [0.882, 0.098, -1.277],
               [1.213, 0.127, -0.601], [1.125, 0.127, -0.086], [0.831, 0.076, 0.230],
               [0.632, -0.235, 0.059], [0.235, 1.066, -0.132]])
DOWER12 = np.vstack([_D[6], _D[7], _D[7] - _D[6], -(_D[6] + _D[7]) / 2, _D[6] - _D[7] / 2, _D[7] - _D[6] / 2, _D[:6]])


def _se_ppv(found, ref, tol):
    """Sensitivity and positive predictivity with one-to-one matching within ``tol`` samples
    (greedy by distance, as beat-by-beat comparison in ANSI/AAMI EC57)."""
    pairs = sorted((abs(int(f) - int(r)), i, j) for i, f in enumerate(found) for j, r in enumerate(ref)
                   if abs(int(f) - int(r)) <= tol)
    used_f, used_r = set(), set()
    for _, i, j in pairs:
        if i not in used_f and j not in used_r:
            used_f.add(i)
            used_r.add(j)
    tp = len(used_r)
    return tp / len(ref), tp / max(len(found), 1)


def test_mitdb_100_sensitivity_and_ppv(data_dir):
    wfdb = pytest.importorskip("wfdb")
    processing = pytest.importorskip("wfdb.processing")
    path = data_dir / "mitdb" / "100"
    if not (path.with_suffix(".atr").is_file() and path.with_suffix(".dat").is_file()):
        pytest.skip(f"MIT-BIH record 100 (100.dat, 100.atr) not found under {data_dir / 'mitdb'}")
    rec = wfdb.rdrecord(str(path))
    ann = wfdb.rdann(str(path), "atr")
    ref = np.array([s for s, c in zip(ann.sample, ann.symbol) if c in BEATS])
    tol = int(0.15 * rec.fs)  # 150 ms matching window
    for ch in range(rec.n_sig):
        found = qrs.detect_r_peaks(rec.p_signal[:, ch], rec.fs)
        cmp = processing.compare_annotations(ref, found, tol)
        assert cmp.sensitivity >= 0.99 and cmp.positive_predictivity >= 0.99, \
            (rec.sig_name[ch], cmp.sensitivity, cmp.positive_predictivity)
        # record 100 is clean: the detector does better than the 99 % floor
        assert cmp.sensitivity > 0.998 and cmp.positive_predictivity > 0.998
    # both channels together (QRS energy pooled) work as well
    found = qrs.detect_r_peaks(rec.p_signal.T, rec.fs)
    cmp = processing.compare_annotations(ref, found, tol)
    assert cmp.sensitivity > 0.998 and cmp.positive_predictivity > 0.998


def test_ode_12_lead_beats_found():
    """The SNR call site (clean 12-lead projections, 0.3-s refractory) against the ODE's own
    R-peak annotations, over rhythms and morphologies. Wide LBBB beats beside PVCs with 15x
    their QRS energy are the hard case (the PVCs raise the adaptive threshold; the capped
    initial signal level and the search-back recover them)."""
    from cardiosim.ode import synthesize

    fs, edge = 500.0, 50
    total = np.zeros(4)
    for rhythm in ["SR", "SB", "STACH", "AF", "PVC", "IAVB"]:
        counts = np.zeros(4)  # matched ref, ref, matched found, found
        for seed, morph in enumerate(["NORM", "LBBB", "RBBB", "LVH"]):
            beats = synthesize(10.0, fs, np.random.default_rng(seed), rhythm=rhythm, morphology=morph)
            x = DOWER12 @ beats.vcg
            ref = beats.annotations["R_peak"]
            ref = ref[(ref >= edge) & (ref < x.shape[1] - edge)]
            found = snr.detect_r_peaks(x, fs)
            found = found[(found >= edge) & (found < x.shape[1] - edge)]
            se, ppv = _se_ppv(found, ref, int(0.15 * fs))
            counts += [se * ref.size, ref.size, ppv * found.size, found.size]
        assert counts[0] / counts[1] >= 0.97 and counts[2] / counts[3] >= 0.97, (rhythm, counts)
        total += counts
    assert total[0] / total[1] >= 0.99 and total[2] / total[3] >= 0.99, total


def test_public_names_are_the_one_detector(rng):
    from cardiosim.ode import synthesize

    fs = 360.0
    x = DOWER12 @ synthesize(8.0, fs, rng).vcg
    x = x + 0.02 * rng.standard_normal(x.shape)
    np.testing.assert_array_equal(evaluate.detect_r_peaks(x[1], fs), qrs.detect_r_peaks(x[1], fs))
    np.testing.assert_array_equal(evaluate.detect_r_peaks(x[1], fs, refractory=0.3),
                                  qrs.detect_r_peaks(x[1], fs, refractory=0.3))
    np.testing.assert_array_equal(snr.detect_r_peaks(x, fs), qrs.detect_r_peaks(x, fs, refractory=0.3))
    np.testing.assert_array_equal(noise.detect_r_peaks(x, fs, min_rr_s=0.25), qrs.detect_r_peaks(x, fs, refractory=0.25))
    np.testing.assert_array_equal(qrs.detect_r_peaks(x[1:2], fs), qrs.detect_r_peaks(x[1], fs))


@pytest.mark.parametrize("fs", [50.0, 128.0, 360.0, 500.0, 1000.0])
@pytest.mark.parametrize("rows", [1, 3, 12])
def test_filtfilt_kernel_matches_scipy(fs, rows, rng):
    kernel, twin = KERNELS["filtfilt"]
    b, a = signal.butter(2, [5.0 / (fs / 2), min(15.0 / (fs / 2), 0.99)], btype="band")
    zi = signal.lfilter_zi(b, a)
    x = rng.standard_normal((rows, int(3 * fs))).cumsum(axis=1) + 5.0
    out = np.empty_like(x)
    kernel(b, a, zi, x, 15, out)
    ref = twin(b, a, zi, x, 15)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max())
    np.testing.assert_allclose(qrs.bandpass_filtfilt(x, fs), signal.filtfilt(b, a, x, axis=-1),
                               rtol=1e-12, atol=1e-12 * np.abs(ref).max())


def test_short_and_bad_inputs():
    assert qrs.detect_r_peaks(np.zeros(100), 200.0).size == 0      # under one second
    assert qrs.detect_r_peaks(np.zeros(2000), 200.0).size == 0     # flat line: no beats
    with pytest.raises(SignalError, match="too low"):
        qrs.detect_r_peaks(np.zeros(1000), 20.0)
    with pytest.raises(SignalError, match="NaN"):
        qrs.detect_r_peaks(np.full(1000, np.nan), 250.0)
    with pytest.raises(SignalError, match="shape"):
        qrs.detect_r_peaks(np.zeros((2, 2, 1000)), 250.0)
    with pytest.raises(SignalError, match="refractory"):
        qrs.detect_r_peaks(np.zeros(1000), 250.0, refractory=0.0)
    with pytest.raises(SignalError, match="clean_leads"):
        snr.detect_r_peaks(np.zeros((2, 0)), 250.0)
