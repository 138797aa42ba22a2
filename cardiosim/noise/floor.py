"""The noise floor between beats, measured the same way on real and simulated records.

Between the end of the T wave and the next QRS a clean ECG is nearly flat, so what a
device records there is its noise floor. Per lead: R peaks by
:func:`cardiosim.qrs.detect_r_peaks`; inter-beat segments from R + 350 ms to the next
R - 120 ms (at least 150 ms long); each segment linearly detrended, Hann-windowed and
zero-padded to 1 s; their power spectra summed (weighted by length). Measures:

* ``share_30_40``: power in 30-40 Hz as a share of the power in 1-40 Hz;
* ``share_mains``: power within +-2 Hz of the mains frequency (50 or 60 Hz, whichever is
  larger, where the rate carries it) as a share of the 1-40 Hz power;
* ``level_re_qrs``: RMS of the 1-40 Hz band-passed signal in the segments over the median
  QRS peak-to-peak (R -60 ... +80 ms of the band-passed signal);
* ``hf_re_qrs``: RMS of the segments' 30-40 Hz content (from the same windowed spectra, by
  Parseval) over the same QRS peak-to-peak: the broadband floor's level, which (unlike the
  share) does not depend on how much slow cardiac signal (T-wave tail, P wave) the
  segments hold. (A 30-40 Hz band-pass of the whole record would read the QRS's ringing
  instead: 0.003 of the QRS on noiseless simulated records.)

A steady broadband floor (white amplifier noise, muscle noise at rest, a fitted noise
spectrum that carries QRS-misfit energy) raises ``share_30_40``; real handheld and
ambulatory devices are mostly clean between beats, where the inter-beat power is slow
(baseline, T-U tail, P wave) and the 30-40 Hz share is small.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import signal as _signal

from ..errors import SignalError

SEGMENT_AFTER_R_S = 0.35
SEGMENT_BEFORE_R_S = 0.12
MIN_SEGMENT_S = 0.15


@dataclass(frozen=True)
class FloorMeasures:
    """Inter-beat floor of one lead (see the module docstring); NaN where not measurable."""

    share_30_40: float
    share_mains: float
    mains_hz: float
    level_re_qrs: float
    hf_re_qrs: float
    n_segments: int


@functools.lru_cache(maxsize=8)
def _band(fs: float):
    return _signal.butter(2, (1.0, min(40.0, 0.45 * fs)), "bandpass", fs=fs, output="sos")




def interbeat_floor(x, fs: float, *, r_peaks=None, mains_hz: tuple = (50.0, 60.0)) -> FloorMeasures:
    """Inter-beat floor measures of one lead ``x`` [T] at ``fs`` Hz (any units).

    ``r_peaks`` (sample indices) default to :func:`cardiosim.qrs.detect_r_peaks` on ``x``.
    ``share_mains`` sums the bands around every frequency of ``mains_hz`` below 0.48 fs.
    """
    from ..qrs import detect_r_peaks

    x = np.asarray(x, dtype=np.float64)
    if not (np.isfinite(fs) and fs > 0):
        raise SignalError(f"sampling rate must be a positive number of Hz, got {fs}")
    if x.ndim != 1 or x.size < 2 * fs:
        raise SignalError(f"need one lead of at least 2 s, got shape {x.shape} at {fs} Hz")
    bad = ~np.isfinite(x)
    if bad.any():
        raise SignalError(f"{int(bad.sum())} NaN/inf samples (first at index {int(np.argmax(bad))}); "
                          "the floor of a record with gaps is not defined")
    fs = float(fs)
    r = detect_r_peaks(x, fs) if r_peaks is None else np.asarray(r_peaks, dtype=np.int64)
    nan = FloorMeasures(np.nan, np.nan, np.nan, np.nan, np.nan, 0)
    if r.size < 2:
        return nan
    a, b = int(round(SEGMENT_AFTER_R_S * fs)), int(round(SEGMENT_BEFORE_R_S * fs))
    nfft = int(2 ** np.ceil(np.log2(fs)))
    f = np.fft.rfftfreq(nfft, 1.0 / fs)
    psd = np.zeros(f.size)
    y = _signal.sosfiltfilt(_band(fs), x - np.median(x))
    sq, n_in, n_seg = 0.0, 0, 0
    for r0, r1 in zip(r[:-1], r[1:]):
        lo, hi = r0 + a, r1 - b
        if hi - lo < MIN_SEGMENT_S * fs or lo < 0 or hi > x.size:
            continue
        s = _signal.detrend(x[lo:hi])
        w = np.hanning(s.size)
        psd += np.abs(np.fft.rfft(s * w, nfft)) ** 2 / np.sum(w ** 2) * s.size
        sq += float(np.sum(y[lo:hi] ** 2))
        n_in += hi - lo
        n_seg += 1
    if n_seg == 0:
        return nan
    band = (f >= 1.0) & (f <= 40.0)
    p_band = psd[band].sum()
    if not p_band > 0:
        p_band = np.nan                  # a perfectly flat floor: no share to speak of
    hi_band = (f >= 30.0) & (f <= 40.0)
    mains = [m for m in mains_hz if m + 2.0 < 0.48 * fs]
    m_mask = np.zeros(f.size, dtype=bool)
    for m in mains:
        m_mask |= np.abs(f - m) <= 2.0
    pre, post = int(round(0.06 * fs)), int(round(0.08 * fs))
    pp = [np.ptp(y[i - pre: i + post]) for i in r if i - pre >= 0 and i + post <= y.size]
    qrs = float(np.median(pp)) if pp else np.nan
    return FloorMeasures(share_30_40=float(psd[hi_band].sum() / p_band),
                         share_mains=float(psd[m_mask].sum() / p_band) if mains else np.nan,
                         mains_hz=float(max(mains)) if mains else np.nan,
                         level_re_qrs=float(np.sqrt(sq / n_in) / qrs) if qrs > 0 else np.nan,
                         # one-sided spectra: mean square in the band = 2 sum |X|^2 / (nfft sum w^2)
                         hf_re_qrs=float(np.sqrt(2.0 * psd[hi_band].sum() / (nfft * n_in)) / qrs)
                         if qrs > 0 else np.nan,
                         n_segments=n_seg)
