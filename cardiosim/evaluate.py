"""Evaluation helpers: does a synthetic set look like a real one, and copy none of it?

* :func:`detect_r_peaks` -- the Pan-Tompkins style QRS detector of :mod:`cardiosim.qrs`
  (Pan & Tompkins, IEEE TBME 1985;32:230): 5-15 Hz band-pass, derivative, squaring,
  150 ms moving-window integration, adaptive threshold with a 200 ms refractory period
  and search-back (the same detector the NSTDB SNR definition uses).
* :func:`heart_rates` -- mean heart rate per record from the detected RR intervals.
* :func:`rmssd` -- short-term heart-rate variability of one window (RMSSD of its NN intervals).
* :func:`beat_amplitudes` / :func:`amplitude_variation` -- each beat's R amplitude against its
  own PR baseline, and their beat-to-beat coefficient of variation in a window (respiration
  turning the heart's axis and moving the electrodes, the body's motion).
* :func:`measure_intervals` / :func:`interval_table` -- PR, QRS and QT by wavelet
  delineation (NeuroKit2's ``ecg_delineate(method="dwt")``, Makowski et al. 2021;
  optional dependency).
* :func:`average_psd` -- Welch spectrum averaged over records (per lead).
* :func:`compare_samples` -- two-sample Kolmogorov-Smirnov test and 1-Wasserstein distance.
* :func:`compare_sets` -- heart-rate and spectral comparison of two ECG sets.
* :func:`nearest_source_distances` / :func:`check_near_copies` -- for every synthetic
  record, the normalised distance to the closest source record after the best time
  shift; a near-copy is a distance far below what the recipe's physics produces.

All ECG arrays are ``(n_records, n_leads, T)`` in mV.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import qrs as _qrs
from .config import check_fs
from .errors import ConfigError, SignalError


def _check_set(x, name):
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 3:
        raise SignalError(f"{name} must have shape (n_records, n_leads, T), got {x.shape}")
    if x.shape[0] == 0 or x.shape[2] < 2:
        raise SignalError(f"{name} is empty: shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise SignalError(f"{name} contains NaN or infinite samples")
    return x


# --------------------------------------------------------------------------- R peaks
def detect_r_peaks(signal, fs: float, *, refractory: float = 0.2) -> np.ndarray:
    """Sample indices of QRS complexes (R peaks): :func:`cardiosim.qrs.detect_r_peaks`, the
    one detector of cardiosim (Pan-Tompkins style, see the module docstring).

    Parameters
    ----------
    signal : array, shape (T,) (one lead) or (n_leads, T), mV
    fs : float, Hz (>= 50)
    refractory : float, s
        Minimum distance between two beats.

    Returns
    -------
    ndarray of int, shape (n_beats,)
        Index of the largest absolute deflection (after baseline removal) within
        +-60 ms of each detection (of the most energetic lead).
    """
    return _qrs.detect_r_peaks(signal, fs, refractory=refractory)


def heart_rates(ecg, fs: float, *, lead: int = 1) -> np.ndarray:
    """Mean heart rate (bpm) of each record, from R peaks detected in ``lead``.

    Parameters
    ----------
    ecg : array, shape (n_records, n_leads, T), mV
    fs : float, Hz
    lead : int
        Row used for detection (default 1, lead II in the standard order).

    Returns
    -------
    ndarray, shape (n_records,), bpm; NaN where fewer than two beats were found.
    """
    ecg = _check_set(ecg, "ecg")
    if not 0 <= lead < ecg.shape[1]:
        raise ConfigError(f"lead index {lead} out of range for {ecg.shape[1]} leads")
    out = np.full(ecg.shape[0], np.nan)
    for i, rec in enumerate(ecg):
        peaks = detect_r_peaks(rec[lead], fs)
        if peaks.size >= 2:
            out[i] = 60.0 * fs / np.median(np.diff(peaks))
    return out


def rmssd(r_peaks, fs: float, *, edit: float = 0.2) -> float:
    """RMSSD (ms) of the RR intervals between successive R peaks of one window.

    ``edit``: the usual NN editing of short-term HRV -- a window with an interval more than
    this fraction away from the window's median interval (a missed or extra beat, an unmarked
    ectopic) is not read (NaN), as is a window of fewer than 5 intervals.
    """
    check_fs(fs)
    r = np.asarray(r_peaks, dtype=np.float64)
    if r.ndim != 1 or not np.all(np.isfinite(r)) or np.any(np.diff(r) <= 0):
        raise SignalError(f"r_peaks must be finite, increasing sample positions (1-D), got shape {r.shape}")
    rr = np.diff(r) / fs * 1000.0
    if rr.size < 5 or np.any(np.abs(rr / np.median(rr) - 1.0) > edit):
        return float("nan")
    return float(np.sqrt(np.mean(np.diff(rr) ** 2)))


# --------------------------------------------------------------------------- beat amplitudes
def beat_amplitudes(signal, fs: float, r_peaks=None) -> np.ndarray:
    """R amplitude of each beat of one lead, mV: the largest deflection within +-40 ms of the
    R peak, measured from the beat's own baseline (median over 120-60 ms before the peak), after
    a zero-phase 0.5-40 Hz band-pass (2nd-order Butterworth), so that baseline wander does not
    count as a change of the beat.

    Parameters
    ----------
    signal : array, shape (T,), mV
    fs : float, Hz
    r_peaks : array of int, optional
        R-peak samples (e.g. a record's annotations); detected (:func:`detect_r_peaks`) when
        not given. Beats too close to either end are skipped.

    Returns
    -------
    ndarray, shape (n_beats,), mV (signed: negative where the QRS is mainly negative)
    """
    from scipy.signal import butter, filtfilt

    x = np.asarray(signal, dtype=np.float64)
    if x.ndim != 1 or x.size < 2:
        raise SignalError(f"signal must be one lead of shape (T,), got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise SignalError("signal contains NaN or infinite samples")
    check_fs(fs)
    if x.size <= 9 * 3:
        raise SignalError(f"signal of {x.size} samples is too short for the band-pass")
    b, a = butter(2, [0.5, min(40.0, 0.45 * fs)], btype="band", fs=fs)
    y = filtfilt(b, a, x)
    r = detect_r_peaks(x, fs) if r_peaks is None else np.asarray(r_peaks, dtype=np.int64)
    w, b0, b1 = int(round(0.04 * fs)), int(round(0.12 * fs)), int(round(0.06 * fs))
    out = []
    for k in r:
        if k - b0 < 0 or k + w >= y.size:
            continue
        base = np.median(y[k - b0:k - b1])
        seg = y[k - w:k + w + 1] - base
        out.append(seg[np.argmax(np.abs(seg))])
    return np.asarray(out)


def amplitude_variation(signal, fs: float, r_peaks=None, *, min_beats: int = 6) -> float:
    """Beat-to-beat coefficient of variation (SD / mean) of the R amplitude in one lead
    (:func:`beat_amplitudes`, absolute values); NaN with fewer than ``min_beats`` beats."""
    amp = np.abs(beat_amplitudes(signal, fs, r_peaks))
    if amp.size < min_beats or amp.mean() <= 0:
        return float("nan")
    return float(amp.std() / amp.mean())


# --------------------------------------------------------------------------- intervals
def measure_intervals(signal, fs: float) -> dict:
    """Median PR, QRS and QT intervals (s) of one lead by wavelet delineation.

    Uses NeuroKit2 (``ecg_delineate``, discrete wavelet method) on the R peaks of
    :func:`detect_r_peaks`. PR = P onset to QRS onset, QRS = QRS onset to offset,
    QT = QRS onset to T offset. NaN where a wave was not delineated.

    Raises
    ------
    ImportError
        If neurokit2 is not installed (``pip install neurokit2``).
    """
    try:
        import neurokit2 as nk
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("interval measurement needs neurokit2: pip install neurokit2") from None
    import warnings

    x = np.asarray(signal, dtype=np.float64)
    peaks = detect_r_peaks(x, fs)
    nan = {"pr": np.nan, "qrs": np.nan, "qt": np.nan}
    if peaks.size < 3:
        return nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NeuroKit warns on edge beats it cannot delineate
        try:
            _, waves = nk.ecg_delineate(x, {"ECG_R_Peaks": peaks}, sampling_rate=round(fs), method="dwt")
        except (ValueError, IndexError, KeyError):
            return nan

    def get(key):
        a = np.asarray(waves.get(key, []), dtype=float)
        return np.sort(a[np.isfinite(a)])

    p_on, r_on, r_off, t_off = get("ECG_P_Onsets"), get("ECG_R_Onsets"), get("ECG_R_Offsets"), get("ECG_T_Offsets")

    # pair each QRS onset with the nearest P onset before it / offsets after it (the
    # delineator's lists need not be aligned beat by beat), within physiological limits
    def paired(before, after, limit_s, reverse=False):
        out = []
        for r in r_on:
            if reverse:
                i = np.searchsorted(before, r) - 1
                d = r - before[i] if i >= 0 else np.inf
            else:
                i = np.searchsorted(after, r, side="right")
                d = after[i] - r if i < after.size else np.inf
            if 0 < d <= limit_s * fs:
                out.append(d)
        return float(np.median(out) / fs) if out else np.nan

    return {"pr": paired(p_on, None, 0.40, reverse=True), "qrs": paired(None, r_off, 0.25),
            "qt": paired(None, t_off, 0.70)}


def interval_table(ecg, fs: float, *, lead: int = 1) -> dict:
    """:func:`measure_intervals` of every record: ``{"pr", "qrs", "qt"}`` -> ndarray (n_records,) s."""
    ecg = _check_set(ecg, "ecg")
    if not 0 <= lead < ecg.shape[1]:
        raise ConfigError(f"lead index {lead} out of range for {ecg.shape[1]} leads")
    rows = [measure_intervals(rec[lead], fs) for rec in ecg]
    return {k: np.array([r[k] for r in rows]) for k in ("pr", "qrs", "qt")}


# --------------------------------------------------------------------------- spectra
def average_psd(ecg, fs: float, *, seconds: float = 4.0):
    """Welch PSD averaged over records, per lead.

    Returns
    -------
    f : ndarray, shape (F,), Hz
    psd : ndarray, shape (n_leads, F), mV**2/Hz
    """
    from scipy.signal import welch

    ecg = _check_set(ecg, "ecg")
    check_fs(fs)
    nper = min(ecg.shape[2], int(seconds * fs))
    f, p = welch(ecg, fs=fs, nperseg=nper, axis=-1)
    return f, p.mean(axis=0)


def log_spectral_distance(psd_a, psd_b, f, band=(0.5, 40.0)) -> float:
    """RMS difference of the PSDs in dB over ``band``, averaged over leads (``[..., freq]``).

    Uses :func:`cardiosim.noise.log_spectral_distance` (log-spaced grid, absolute levels)
    per lead, so the two modules measure spectra the same way.
    """
    from .noise import log_spectral_distance as _lsd

    f = np.asarray(f, dtype=np.float64)
    if not np.any((f >= band[0]) & (f <= band[1])):
        raise ConfigError(f"band {band} Hz holds no frequency bins")
    a = np.asarray(psd_a, dtype=np.float64).reshape(-1, f.size)
    b = np.asarray(psd_b, dtype=np.float64).reshape(-1, f.size)
    return float(np.mean([_lsd(f, x, y, band=band, normalize=False) for x, y in zip(a, b)]))


# --------------------------------------------------------------------------- statistics
def compare_samples(synthetic, real) -> dict:
    """Two-sample comparison of a scalar feature.

    Returns
    -------
    dict with ``ks`` (Kolmogorov-Smirnov statistic), ``p_value``, ``wasserstein``
    (1-Wasserstein distance, feature units), ``synthetic_mean/std``, ``real_mean/std``,
    ``n_synthetic``, ``n_real``. NaNs are not allowed (drop them explicitly first).
    """
    from scipy.stats import ks_2samp, wasserstein_distance

    a = np.asarray(synthetic, dtype=float).ravel()
    b = np.asarray(real, dtype=float).ravel()
    for name, v in (("synthetic", a), ("real", b)):
        if v.size == 0:
            raise SignalError(f"{name} sample is empty")
        if not np.all(np.isfinite(v)):
            raise SignalError(f"{name} sample contains {int((~np.isfinite(v)).sum())} NaN/inf values")
    ks = ks_2samp(a, b)
    return {"ks": float(ks.statistic), "p_value": float(ks.pvalue),
            "wasserstein": float(wasserstein_distance(a, b)),
            "synthetic_mean": float(a.mean()), "synthetic_std": float(a.std()),
            "real_mean": float(b.mean()), "real_std": float(b.std()),
            "n_synthetic": int(a.size), "n_real": int(b.size)}


def compare_sets(synthetic, real, fs: float, *, lead: int = 1, band=(0.5, 40.0), intervals: bool = False) -> dict:
    """Heart-rate and spectral comparison of a synthetic and a real ECG set.

    Parameters
    ----------
    synthetic, real : array, shape (n, n_leads, T), mV, same leads and ``fs``
    fs : float, Hz
    lead : int
        Lead used for R-peak detection.

    Returns
    -------
    dict with ``heart_rate`` (:func:`compare_samples` of the per-record rates, records
    without two detected beats dropped and counted in ``heart_rate_undetected``),
    ``psd`` (``f``, ``synthetic``, ``real`` averaged PSDs) and ``log_spectral_distance_db``;
    with ``intervals=True`` also ``pr``, ``qrs``, ``qt`` (:func:`compare_samples` of the
    per-record intervals in seconds, undelineated records dropped; needs neurokit2).
    """
    synthetic = _check_set(synthetic, "synthetic")
    real = _check_set(real, "real")
    if synthetic.shape[1] != real.shape[1]:
        raise SignalError(f"synthetic has {synthetic.shape[1]} leads, real has {real.shape[1]}")
    hs, hr = heart_rates(synthetic, fs, lead=lead), heart_rates(real, fs, lead=lead)
    seconds = min(synthetic.shape[2], real.shape[2], int(4 * fs)) / fs   # same frequency grid
    f, ps = average_psd(synthetic, fs, seconds=seconds)
    _, pr = average_psd(real, fs, seconds=seconds)
    out = {"heart_rate": compare_samples(hs[np.isfinite(hs)], hr[np.isfinite(hr)]),
           "heart_rate_undetected": {"synthetic": int((~np.isfinite(hs)).sum()),
                                     "real": int((~np.isfinite(hr)).sum())},
           "psd": {"f": f, "synthetic": ps, "real": pr},
           "log_spectral_distance_db": log_spectral_distance(ps, pr, f, band)}
    if intervals:
        it_s, it_r = interval_table(synthetic, fs, lead=lead), interval_table(real, fs, lead=lead)
        for k in ("pr", "qrs", "qt"):
            a, b = it_s[k][np.isfinite(it_s[k])], it_r[k][np.isfinite(it_r[k])]
            out[k] = compare_samples(a, b) if a.size and b.size else None
    return out


# --------------------------------------------------------------------------- near copies
def _standardise(x):
    x = x - x.mean(axis=-1, keepdims=True)
    s = x.std(axis=-1, keepdims=True)
    return np.divide(x, s, out=np.zeros_like(x), where=s > 0)


@dataclass(frozen=True)
class NearestSource:
    """Result of :func:`nearest_source_distances` (arrays of shape (n_synthetic,)).

    distance : normalised distance ``sqrt(2 (1 - rho))`` to the nearest source, where
        ``rho`` is the lead-averaged correlation of the z-scored records at the best lag;
        0 for an exact (shifted, rescaled) copy, about sqrt(2) for unrelated records.
    index : index of that source record.
    lag : its best shift in samples (positive: the synthetic record lags the source).
    """

    distance: np.ndarray
    index: np.ndarray
    lag: np.ndarray


def nearest_source_distances(synthetic, sources, *, max_lag: int = 0, exclude=None) -> NearestSource:
    """Nearest source record of each synthetic record, after alignment and normalisation.

    Each lead of each record is z-scored (removing gain and offset), then the
    correlation ``rho(lag) = mean over leads and samples of x(t) y(t - lag)`` is
    maximised over ``|lag| <= max_lag`` (circular shifts, via FFT).

    Parameters
    ----------
    synthetic : array, shape (N, n_leads, T)
    sources : array, shape (M, n_leads, T), same leads and length
    max_lag : int, samples
    exclude : sequence of int or None, length N
        Source index to ignore for each synthetic record (the source the recipe
        derived it from), or -1 / None for none.

    Returns
    -------
    NearestSource
    """
    s = _standardise(_check_set(synthetic, "synthetic"))
    r = _standardise(_check_set(sources, "sources"))
    if s.shape[1:] != r.shape[1:]:
        raise SignalError(f"synthetic records {s.shape[1:]} and sources {r.shape[1:]} differ in leads/length")
    n, nl, t = s.shape
    if not 0 <= max_lag < t:
        raise ConfigError(f"max_lag must be in [0, {t}), got {max_lag}")
    if exclude is not None:
        exclude = np.asarray([-1 if e is None else e for e in exclude], dtype=np.int64)
        if exclude.shape != (n,):
            raise ConfigError(f"exclude must have one entry per synthetic record ({n}), got {exclude.shape}")
    fr = np.conj(np.fft.rfft(r, axis=-1))                       # (M, L, F)
    lags = np.r_[0:max_lag + 1, t - max_lag:t] if max_lag else np.array([0])
    dist = np.empty(n)
    idx = np.empty(n, dtype=np.int64)
    lag = np.empty(n, dtype=np.int64)
    for i in range(n):
        cc = np.fft.irfft((np.fft.rfft(s[i], axis=-1)[None] * fr).sum(axis=1), n=t, axis=-1)  # (M, t)
        rho = cc[:, lags] / (nl * t)
        best = rho.max(axis=1)
        if exclude is not None and exclude[i] >= 0:
            best[exclude[i]] = -np.inf
        j = int(np.argmax(best))
        k = int(np.argmax(rho[j]))
        idx[i], dist[i] = j, np.sqrt(max(0.0, 2.0 * (1.0 - best[j])))
        lag[i] = lags[k] if lags[k] <= max_lag else lags[k] - t
    return NearestSource(dist, idx, lag)


def check_near_copies(synthetic, sources, *, threshold: float, max_lag: int = 0, exclude=None) -> np.ndarray:
    """Indices of synthetic records closer than ``threshold`` to a source record.

    ``threshold`` is the normalised distance (see :class:`NearestSource`) below which a
    record counts as a near-copy; set it from what the recipe intends, e.g. below the
    distances produced by the smallest electrode displacement and noise of the recipe.
    Pass ``exclude`` to ignore each record's own source. Returns an empty array when no
    record is a near-copy.
    """
    if not threshold > 0:
        raise ConfigError(f"threshold must be positive, got {threshold!r}")
    res = nearest_source_distances(synthetic, sources, max_lag=max_lag, exclude=exclude)
    return np.flatnonzero(res.distance < threshold)
