"""Signal-to-noise ratio: definitions, measurement and scaling.

Two definitions, both pooled over leads (``SNR = 10 log10(sum_k S_k / sum_k N_k)``, so one
gain per noise kind keeps the montage consistent; FECGSYN likewise sets SNR against the
mean ECG power over channels, PHYSICS.md section 6):

``'nstdb'`` -- the MIT-BIH Noise Stress Test Database definition (Moody, Muldrow & Mark
    1984; PHYSICS.md section 6): ``S = (mean QRS peak-to-peak amplitude)^2 / 8`` (the power
    of a sine of that peak-to-peak amplitude), QRS peak-to-peak measured in a window of
    ``qrs_window_s`` centred on each R peak; ``N`` = the square of the trimmed mean
    (``trim`` = 5 % cut at each end) of the RMS of the noise in consecutive 1-s chunks.
``'power'`` -- mean power: ``S = mean(clean^2)`` (after removing each lead's mean),
    ``N = mean(noise^2)``.
"""

from __future__ import annotations

import numpy as np

from .. import qrs as _qrs
from ..errors import ConfigError, SignalError

DEFINITIONS = ("nstdb", "power")


def _as_leads(x, name) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[-1] == 0:
        raise SignalError(f"{name} must have shape [n_leads, T] with T > 0, got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise SignalError(f"{name} contains NaN or inf samples")
    return x


def detect_r_peaks(clean_leads, fs: float, *, min_rr_s: float = 0.3) -> np.ndarray:
    """R peaks of clean (simulated) leads, used when no annotation is given: the one
    detector of cardiosim, :func:`cardiosim.qrs.detect_r_peaks` (Pan-Tompkins style, QRS
    energy pooled over the leads), with ``min_rr_s`` as its refractory period.

    Parameters
    ----------
    clean_leads : array [n_leads, T] or [T], mV
    fs : float, Hz (>= 50)
    min_rr_s : float, s
        Minimum distance between two beats.

    Returns
    -------
    ndarray of int64, sample indices (empty for records shorter than 1 s).
    """
    x = _as_leads(clean_leads, "clean_leads")
    return _qrs.detect_r_peaks(x, fs, refractory=min_rr_s)


def signal_power(clean_leads, *, definition: str = "nstdb", fs: float | None = None,
                 r_peaks=None, qrs_window_s: float = 0.1) -> np.ndarray:
    """Per-lead signal power ``S_k`` (mV^2) under ``definition`` (see module docstring).

    ``r_peaks`` (sample indices) is used by 'nstdb'; when ``None`` they are found with
    :func:`detect_r_peaks`.
    """
    x = _as_leads(clean_leads, "clean_leads")
    _check_def(definition)
    if definition == "power":
        return np.mean((x - x.mean(axis=1, keepdims=True)) ** 2, axis=1)
    fs = _check_fs(fs)
    r = detect_r_peaks(x, fs) if r_peaks is None else np.asarray(r_peaks, dtype=np.int64).ravel()
    if r.size == 0:
        raise SignalError("no R peaks given or found in clean_leads; the 'nstdb' SNR needs QRS complexes")
    if np.any((r < 0) | (r >= x.shape[1])):
        raise SignalError(f"r_peaks outside [0, {x.shape[1]}): {r[(r < 0) | (r >= x.shape[1])][:5]}")
    h = max(1, int(round(qrs_window_s * fs / 2)))
    # windows [r - h, r + h] clipped to the record: one gather instead of a loop over beats;
    # window offset on the middle axis, so max/min run as fast elementwise passes
    idx = np.clip(np.arange(-h, h + 1)[:, None] + r[None, :], 0, x.shape[1] - 1)
    seg = x[:, idx]                                               # [n_leads, 2h+1, n_beats]
    pp = seg.max(axis=1).astype(np.float64) - seg.min(axis=1)
    return pp.mean(axis=1) ** 2 / 8.0


def noise_power(noise_leads, *, definition: str = "nstdb", fs: float | None = None,
                trim: float = 0.05) -> np.ndarray:
    """Per-lead noise power ``N_k`` (mV^2) under ``definition`` (see module docstring)."""
    n = _as_leads(noise_leads, "noise_leads")
    _check_def(definition)
    return _noise_power(n, definition, None if definition == "power" else _check_fs(fs), trim)


def _noise_power(n, definition, fs, trim=0.05):
    """:func:`noise_power` on ``[..., n_leads, T]`` without validation -> ``[..., n_leads]``."""
    if definition == "power":
        return np.mean(np.square(n), axis=-1, dtype=np.float64)
    c = int(round(fs))
    k = n.shape[-1] // c
    if k == 0:
        raise SignalError(f"the 'nstdb' noise power needs at least one 1-s chunk ({c} samples), got {n.shape[-1]}")
    sq = np.square(n[..., :k * c]).reshape(n.shape[:-1] + (k, c))
    # chunk sums by a matrix product (BLAS): much faster than a reduction over the last axis
    rms = np.sqrt((sq @ np.ones(c, dtype=sq.dtype)).astype(np.float64) / c)
    return trimmed_mean(rms, trim) ** 2


def trimmed_mean(a, trim: float = 0.05) -> np.ndarray:
    """Mean along the last axis after cutting ``int(trim * n)`` values at each end (as
    ``scipy.stats.trim_mean``, without its per-call overhead)."""
    a = np.sort(np.asarray(a, dtype=np.float64), axis=-1)
    n = a.shape[-1]
    cut = int(trim * n)
    if 2 * cut >= n:
        raise ConfigError(f"trim = {trim} leaves no values out of {n}")
    return a[..., cut:n - cut].mean(axis=-1)


def measure_snr(noise_leads, clean_leads, *, definition: str = "nstdb", fs: float | None = None,
                r_peaks=None, per_lead: bool = False, qrs_window_s: float = 0.1, trim: float = 0.05):
    """SNR in dB of ``noise_leads`` against ``clean_leads`` (both ``[n_leads, T]`` mV).

    Returns the pooled SNR ``10 log10(sum S / sum N)`` (float), or per lead when
    ``per_lead``. Zero noise gives ``inf``.
    """
    s = signal_power(clean_leads, definition=definition, fs=fs, r_peaks=r_peaks, qrs_window_s=qrs_window_s)
    nz = noise_power(noise_leads, definition=definition, fs=fs, trim=trim)
    if s.shape != nz.shape:
        raise SignalError(f"noise_leads has {nz.size} leads, clean_leads {s.size}")
    with np.errstate(divide="ignore"):
        if per_lead:
            return 10 * np.log10(s / nz)
        return float(10 * np.log10(s.sum() / nz.sum()))


def snr_gain(noise_leads, clean_leads, snr_db: float, *, definition: str = "nstdb", fs=None,
             r_peaks=None, qrs_window_s: float = 0.1, trim: float = 0.05) -> float:
    """The factor ``g`` such that ``g * noise_leads`` has SNR ``snr_db`` (both definitions
    are quadratic in the noise amplitude, so the target is met exactly). Zero noise -> ``nan``."""
    if not np.isfinite(snr_db):
        raise ConfigError(f"snr_db must be finite, got {snr_db!r}")
    cur = measure_snr(noise_leads, clean_leads, definition=definition, fs=fs, r_peaks=r_peaks,
                      qrs_window_s=qrs_window_s, trim=trim)
    if not np.isfinite(cur):
        return float("nan")
    return float(10 ** ((cur - snr_db) / 20.0))


def scale_to_snr(noise_leads, clean_leads, snr_db: float, definition: str = "nstdb", *, fs=None,
                 r_peaks=None, return_gain: bool = False, qrs_window_s: float = 0.1, trim: float = 0.05):
    """Scale ``noise_leads`` [n_leads, T] mV so its SNR against ``clean_leads`` is ``snr_db``.

    Returns the scaled noise (float64), and the gain when ``return_gain``.

    Raises
    ------
    SignalError
        If the noise is identically zero (no gain can reach a finite SNR).
    """
    g = snr_gain(noise_leads, clean_leads, snr_db, definition=definition, fs=fs, r_peaks=r_peaks,
                 qrs_window_s=qrs_window_s, trim=trim)
    if not np.isfinite(g):
        raise SignalError("noise_leads is identically zero; it cannot be scaled to a finite SNR")
    out = np.asarray(noise_leads, dtype=np.float64) * g
    return (out, g) if return_gain else out


def _check_def(definition):
    if definition not in DEFINITIONS:
        raise ConfigError(f"unknown SNR definition {definition!r}; expected one of {DEFINITIONS}")


def _check_fs(fs):
    if fs is None:
        raise ConfigError("the 'nstdb' SNR definition needs the sampling rate fs (Hz)")
    if not (np.isfinite(fs) and fs > 0):
        raise ConfigError(f"fs must be a positive number of Hz, got {fs!r}")
    return float(fs)
