"""QRS (R-peak) detection: the one detector of cardiosim.

:func:`detect_r_peaks` is a Pan-Tompkins style detector (Pan & Tompkins, IEEE TBME
1985;32:230) that takes one lead or several: 5-15 Hz band-pass, derivative, squaring
(summed over leads, so every lead votes with its QRS energy), 150-ms moving-window
integration, adaptive signal/noise thresholds with a refractory period and search-back;
each detection is then moved to the largest absolute deflection of the most energetic
lead around it, after removing a 0.6-s moving-average baseline.

It serves both the NSTDB signal-to-noise definition (:mod:`cardiosim.noise.snr`, on the
clean simulated leads) and the evaluation helpers (:mod:`cardiosim.evaluate`, on one lead
of real or synthetic records). On MIT-BIH Arrhythmia record 100 (both channels, all
30 min) it finds the reference beats with sensitivity and positive predictivity above
99.5 % within 150 ms (tests/test_rpeaks.py).

The band-pass runs forward and backward in :func:`~cardiosim.qrs._kernels.filtfilt_kernel`
(bit for bit ``scipy.signal.filtfilt``, all leads at once). Layer: bottom (imports only
:mod:`cardiosim.errors`), so every layer may use it.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..errors import SignalError
from ._kernels import filtfilt_kernel

MIN_FS = 50.0  # Hz: below this the 5-15 Hz QRS band cannot be resolved
_NEAR_TIE = 1e-9  # relative: deflections this close count as equal; the earliest wins


@lru_cache(maxsize=32)
def _qrs_bandpass(fs: float):
    """Second-order Butterworth 5-15 Hz band-pass (the Pan-Tompkins QRS band) at ``fs``:
    ``(b, a, zi)`` with ``zi`` the steady state of its step response (``lfilter_zi``)."""
    from scipy import signal as _signal  # lazy (here and below): ~1.5 s of a worker's start-up

    b, a = _signal.butter(2, [5.0 / (fs / 2), min(15.0 / (fs / 2), 0.99)], btype="band")
    b, a = b / a[0], a / a[0]
    return b, a, _signal.lfilter_zi(b, a)


def bandpass_filtfilt(x, fs: float) -> np.ndarray:
    """The detector's zero-phase 5-15 Hz band-pass of ``x`` (``(T,)`` or ``(n_leads, T)``,
    T > 15 samples), float64: ``scipy.signal.filtfilt(b, a, x, axis=-1)`` of the
    second-order Butterworth band-pass, computed by a numba kernel."""
    b, a, zi = _qrs_bandpass(float(fs))
    x = np.asarray(x, dtype=np.float64)
    rows = np.ascontiguousarray(x.reshape(-1, x.shape[-1]))
    pad = 3 * max(len(a), len(b))
    if rows.shape[1] <= pad:
        raise SignalError(f"the band-pass needs more than {pad} samples, got {rows.shape[1]}")
    out = np.empty_like(rows)
    filtfilt_kernel(b, a, zi, rows, pad, out)
    return out.reshape(x.shape)


def _moving_average(x, w: int):
    """``np.convolve(x, ones(w) / w, mode="same")`` along the last axis (zeros outside the
    record) in O(T) per row."""
    if w <= 1:
        return np.array(x, dtype=np.float64)
    from scipy.ndimage import uniform_filter1d

    # both cover [i - w // 2, i + (w - 1) // 2] (to rounding, about 1e-15 relative)
    return uniform_filter1d(np.asarray(x, dtype=np.float64), w, axis=-1, mode="constant", cval=0.0)


def detect_r_peaks(ecg, fs: float, *, refractory: float = 0.2) -> np.ndarray:
    """Sample indices of the QRS complexes (R peaks) of an ECG.

    Parameters
    ----------
    ecg : array, shape (T,) or (n_leads, T), mV
        One lead, or several leads of the same record (detection pools their QRS energy).
    fs : float, Hz (>= 50)
    refractory : float, s
        Minimum distance between two beats (> 0).

    Returns
    -------
    ndarray of int64, shape (n_beats,), increasing
        For each beat, the index of the largest absolute deflection (after removing a
        0.6-s moving-average baseline) of the most energetic lead within 60 ms after,
        and half the integration window plus 60 ms before, the detection (near-equal
        deflections, within 1e-9 relative, go to the earliest: the R before the S of a
        symmetric biphasic complex). Empty for records shorter than one second.

    Raises
    ------
    SignalError
        For arrays that are not 1-D or 2-D, empty, or hold NaN or inf, and for ``fs`` below 50 Hz.
    """
    x = np.asarray(ecg, dtype=np.float64)
    if not (np.isfinite(fs) and fs > 0):
        raise SignalError(f"sampling rate must be positive, got {fs!r}")
    if fs < MIN_FS:
        raise SignalError(f"sampling rate {fs} Hz is too low for QRS detection (need >= {MIN_FS:g} Hz)")
    if not (np.isfinite(refractory) and refractory > 0):
        raise SignalError(f"refractory must be a positive number of seconds, got {refractory!r}")
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[0] == 0:
        raise SignalError(f"ecg must have shape (T,) or (n_leads, T), got {np.shape(ecg)}")
    if not np.all(np.isfinite(x)):
        raise SignalError("ecg contains NaN or infinite samples")
    n = x.shape[1]
    if n < int(fs):
        return np.zeros(0, dtype=np.int64)
    y = bandpass_filtfilt(x, fs)
    d = np.gradient(y, axis=-1) * fs
    d2 = d * d
    energy = d2.sum(axis=0)
    w = max(1, round(0.15 * fs))
    integ = np.convolve(energy, np.ones(w) / w, mode="same")
    dist = max(1, round(refractory * fs))
    from scipy.signal import find_peaks

    cand, _ = find_peaks(integ, distance=dist)
    if cand.size == 0:
        return np.zeros(0, dtype=np.int64)
    beats = _adaptive_threshold(integ, cand, fs, dist)
    if beats.size == 0:
        return beats
    # refine to the R peak on the baseline-free most energetic lead; the integrator lags the
    # QRS by about w / 2
    lead = int(np.argmax(d2.sum(axis=1)))
    base = x[lead] - _moving_average(x[lead], int(fs * 0.6))
    half = round(0.06 * fs)
    out = np.empty(beats.size, dtype=np.int64)
    for j, c in enumerate(beats):
        lo, hi = max(0, c - w // 2 - half), min(n, c + half)
        mag = np.abs(base[lo:hi])
        out[j] = lo + int(np.argmax(mag >= mag.max() * (1.0 - _NEAR_TIE)))
    out = np.unique(out)
    if out.size > 1:  # two refinements landing on one QRS
        keep = np.concatenate([[True], np.diff(out) > dist // 2])
        out = out[keep]
    return out


def _adaptive_threshold(integ, cand, fs, dist) -> np.ndarray:
    """Pan-Tompkins decision on the integrator peaks ``cand``.

    Signal and noise peak levels are initialised on the first 2 s (signal: a quarter of
    the largest integrator value, at most the median candidate peak above the noise level;
    noise: half the mean) and updated with weight 1/8; the threshold lies a quarter of the
    way from the noise to the signal level. A gap over 1.66 x the mean RR interval of the
    (up to 8) beats before it is searched again at half the threshold, after each detection and at the
    end of the record.
    """
    init = integ[: int(2 * fs)]
    spk, npk = 0.25 * init.max(), 0.5 * np.mean(init)
    # one ectopic beat 10x the others in the first 2 s would set the signal level above every
    # normal beat, and a beat under threshold never lowers it: cap it at the median peak
    first = integ[cand[cand < init.size]]
    first = first[first > npk]
    if first.size:
        spk = min(spk, float(np.median(first)))
    level = integ[cand].tolist()
    beats: list[int] = []
    thr = npk + 0.25 * (spk - npk)
    for c, v in zip(cand.tolist(), level):
        thr = npk + 0.25 * (spk - npk)
        if v <= thr:
            npk = 0.125 * v + 0.875 * npk
            continue
        beats.append(c)
        spk = 0.125 * v + 0.875 * spk
        if len(beats) >= 3 and beats[-1] - beats[-2] > 1.66 * _mean_rr(beats[:-1]):
            beats[-1:-1] = _search_back(integ, cand, beats[-2] + dist, beats[-1] - dist, 0.5 * thr)
    # no beat for over 1.66 mean RR before the end of the record: search the tail
    if len(beats) >= 3 and integ.size - beats[-1] > 1.66 * _mean_rr(beats):
        beats += _search_back(integ, cand, beats[-1] + dist, integ.size, 0.5 * thr)
    return np.unique(np.asarray(beats, dtype=np.int64))


def _mean_rr(beats) -> float:
    """Mean of the RR intervals among the last (up to 8) ``beats`` (len >= 2; the diffs telescope)."""
    last = beats[-8:]
    return (last[-1] - last[0]) / (len(last) - 1)


def _search_back(integ, cand, start, stop, level) -> list[int]:
    """Candidates strictly between ``start`` and ``stop`` whose integrator peak exceeds ``level``."""
    lo = np.searchsorted(cand, start, side="right")
    hi = np.searchsorted(cand, stop, side="left")
    return [int(m) for m in cand[lo:hi] if integ[m] > level]
