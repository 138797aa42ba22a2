"""Noise models fitted to a recording of noise, and synthesis of new noise from them.

Two model families (FECGSYN fits AR(12) models to 20-s pieces of the NSTDB records with
slowly varying poles, PHYSICS.md section 6):

``'psd'`` -- the Welch power spectrum of each channel; synthesis draws Gaussian noise
    with exactly that spectrum (random phases, :func:`cardiosim.noise.spectra.shaped_noise`).
``'ar'`` -- an autoregressive model of order ``order`` per channel, fitted by Yule-Walker
    (Levinson-Durbin on the biased autocorrelation), optionally per segment of
    ``segment_s`` seconds (time-varying AR); synthesis runs the all-pole filter on
    Gaussian innovations with the per-segment innovation variance. ``fit_fs`` fits at a
    lower rate (after an anti-aliased ``resample_poly``) so that the low-frequency
    content of baseline wander falls inside the reach of a low-order model.

Bursts (``bursts=True``, the default): real noise is neither Gaussian nor stationary, so the
Gaussian process above is multiplied by a log-normal envelope of two time scales
(:mod:`cardiosim.noise.bursts`): ``x = e_s(t) (x_lo + e_f(t) x_hi)``, ``x_lo``/``x_hi``
the parts below/above ``split_hz`` (1 Hz). The slow envelope ``e_s`` (correlation time
``tau_slow_s``) sets how much the 10-s RMS varies; the fast one ``e_f`` (``tau_fast_s``)
sets the heavy tails of the artefacts. Their log-amplitude SDs are fitted, per channel,
by moment matching: the excess kurtosis after a 1-Hz high-pass and the coefficient of
variation of the 10-s RMS (:func:`noise_statistics`) of the synthesis are iterated onto
those of the recording (common random numbers, fixed seed: the fit is deterministic).
The spectrum is kept: the envelopes have unit mean square and are slow next to the band
they modulate.

Channels are modelled independently (cross-channel coherence is not kept).
Recordings are read with the project's WFDB reader
(:func:`cardiosim.sources.wfdb_reader.read_wfdb_signal`) and resampled with its one
resampler (:func:`cardiosim.sources.resample`).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.fft as _fft
from scipy import linalg as _linalg
from scipy import signal as _signal
from scipy import stats as _stats

from ..errors import ConfigError, DataFormatError, SignalError
from ..sources.recording import resample as _resample
from . import _kernels
from .bursts import BurstParams, burst_envelope
from .spectra import shaped_noise

#: The statistics fitted by the burst model (and checked in the tests): excess kurtosis
#: after a high-pass at STAT_HIGHPASS_HZ, variation of the RMS over STAT_WINDOW_S windows.
STAT_HIGHPASS_HZ = 1.0
STAT_WINDOW_S = 10.0
#: Fixed correlation times of the two envelope components (s).
TAU_FAST_S = 0.5
TAU_SLOW_S = 10.0
_CAL_FS = 100.0             # rate of the moment matching's draws (Hz)
_CAL_TOTAL_S = 6 * 3600.0   # their total duration (s)
_FIT_SEED = 20_140_101       # the moment-matching's own random numbers: a deterministic fit


@dataclass(frozen=True)
class NoiseModel:
    """A fitted noise model (see module docstring).

    Attributes
    ----------
    method : {'psd', 'ar'}
    fs : float, Hz -- rate of the fitted model
    n_channels : int
    freqs : ndarray [nf] Hz and psd : ndarray [c, nf] mV^2/Hz (method 'psd')
    ar : ndarray [c, n_seg, order] (lfilter ``a[1:]`` convention) and
    sigma : ndarray [c, n_seg] innovation SD in mV (method 'ar'); segment_len samples
    params : dict -- fit settings and source
    """

    method: str
    fs: float
    n_channels: int
    freqs: np.ndarray | None = None
    psd: np.ndarray | None = None
    ar: np.ndarray | None = None
    sigma: np.ndarray | None = None
    segment_len: int = 0
    params: dict = field(default_factory=dict)
    bursts: tuple = ()
    split_hz: float = STAT_HIGHPASS_HZ


def _highpass(x, fs, f_hz=STAT_HIGHPASS_HZ):
    sos = _signal.butter(4, f_hz, "highpass", fs=fs, output="sos")
    return _signal.sosfiltfilt(sos, x, axis=-1)


def _rms_variation(x, fs, window_s=STAT_WINDOW_S):
    c = int(round(window_s * fs))
    k = x.shape[-1] // c
    if k < 2:
        raise SignalError(f"the 10-s RMS variation needs at least two {window_s:g}-s windows, got "
                          f"{x.shape[-1] / fs:.1f} s")
    r = x[..., :k * c].reshape(x.shape[:-1] + (k, c)).std(axis=-1)
    return r.std(axis=-1) / r.mean(axis=-1)


def noise_statistics(x, fs: float, *, highpass_hz: float = STAT_HIGHPASS_HZ, window_s: float = STAT_WINDOW_S) -> dict:
    """Non-Gaussianity and non-stationarity of noise ``x`` ([T] or [c, T]) per channel.

    Returns ``{'kurtosis': [c], 'rms_variation': [c]}``: the excess (Fisher) kurtosis after
    a zero-phase 4th-order Butterworth high-pass at ``highpass_hz``, and the coefficient of
    variation (SD / mean) of the RMS of consecutive ``window_s`` windows (each window's
    mean removed). Gaussian stationary noise gives about 0 and a small variation.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[None]
    return {"kurtosis": _stats.kurtosis(_highpass(x, fs, highpass_hz), axis=-1),
            "rms_variation": _rms_variation(x, fs, window_s)}


def _split(x, fs, split_hz):
    """``x [..., n]`` -> parts below and above ``split_hz`` (FFT mask on a fast FFT length,
    zero-padded; the parts sum to x exactly)."""
    n = x.shape[-1]
    nf = _fft.next_fast_len(n, real=True)
    spec = _fft.rfft(x, nf, axis=-1)
    spec[..., _fft.rfftfreq(nf, 1.0 / fs) < split_hz] = 0.0
    x_hi = _fft.irfft(spec, nf, axis=-1)[..., :n]
    return x - x_hi, x_hi


def _zero_phase_highpass_gain(n, fs, f_hz=STAT_HIGHPASS_HZ):
    """|H|^2 of the 4th-order Butterworth high-pass on the rfft grid: what ``sosfiltfilt``
    applies away from the record's ends, as one FFT multiplication."""
    f = np.fft.rfftfreq(n, 1.0 / fs)
    with np.errstate(divide="ignore"):
        return 1.0 / (1.0 + (f_hz / np.maximum(f, 1e-12)) ** 8)


def _fit_bursts(model: "NoiseModel", x, fs, n_iter: int = 8, n_rows: int | None = None) -> tuple:
    """Per channel ``(lo, hi)`` BurstParams whose synthesis matches ``x``'s statistics.

    Moment matching with common random numbers (module docstring): ``n_rows`` Gaussian
    draws of the channel's spectrum, split at ``split_hz``, and unit log-amplitude
    processes are drawn once; each iteration rebuilds the synthesis for the current SDs
    and measures it exactly as the recording. Targets: excess kurtosis and 10-s RMS
    variation after the 1-Hz high-pass (the burst band ``hi``: its fast and slow SDs) and
    the 10-s RMS variation of the whole signal (``lo``: its slow SD). Updates use the
    log-normal closed forms (``kurtosis + 3 ~ 3 exp(4 s^2)``, ``1 + CV^2 ~ exp(s^2)``).
    """
    target = noise_statistics(x, fs)
    target_hp = _rms_variation(_highpass(x, fs), fs)
    rng = np.random.default_rng(_FIT_SEED)
    # The draws are made at <= 100 Hz: the statistics of envelope x Gaussian noise hardly
    # depend on the carrier's band, and a lower rate buys more draws (a steadier fit).
    fs_cal = min(float(fs), _CAL_FS)
    n = _fft.next_fast_len(int(round(x.shape[1] * fs_cal / fs)), real=True)
    if n_rows is None:     # about 6 hours of draws in all (a steady median), 8 to 64 of them
        n_rows = int(np.clip(np.ceil(_CAL_TOTAL_S * fs_cal / n), 8, 64))
    # float32 draws and filters: the statistics need no more, and it halves the work
    h2 = _zero_phase_highpass_gain(n, fs_cal).astype(np.float32)
    ramp = np.linspace(0.0, 1.0, n, dtype=np.float32)
    fast = BurstParams(sigma_fast=1.0, tau_fast_s=TAU_FAST_S)
    slow = BurstParams(sigma_slow=1.0, tau_slow_s=TAU_SLOW_S)
    out = []
    for ch in range(model.n_channels):
        one = dataclasses.replace(select_channels(model, [ch]), bursts=())
        g = np.stack([synthesize_noise(one, n, rng, fs=fs_cal)[0] for _ in range(n_rows)])
        lo, hi = (p.astype(np.float32) for p in _split(g, fs_cal, model.split_hz))
        # unit log-amplitude processes: burst_envelope(sigma s) = exp(s u - s^2)
        u_f, u_s, u_l = ((np.log(burst_envelope(b, n, fs_cal, rng, n_rows)) + 1.0).astype(np.float32)
                         for b in (fast, slow, slow))
        share_lo = lo.var() / (lo.var() + hi.var())
        k_t, v_t, vh_t = float(target["kurtosis"][ch]), float(target["rms_variation"][ch]), float(target_hp[ch])
        s2_tot = np.log(max(k_t + 3.0, 3.0) / 3.0) / 4.0
        s2_slow = s2_lo = 0.0
        for _ in range(n_iter):
            s2_fast = max(s2_tot - s2_slow, 0.0)
            f32 = np.float32
            y = (np.exp(f32(np.sqrt(s2_lo)) * u_l - f32(s2_lo)) * lo
                 + np.exp(f32(np.sqrt(s2_fast)) * u_f + f32(np.sqrt(s2_slow)) * u_s - f32(s2_fast + s2_slow)) * hi)
            # the FFT filter is circular: remove the ramp between the ends first, or the jump
            # from the last sample back to the first (large for baseline wander) rings as a spike
            yd = y - y[:, :1] - (y[:, -1:] - y[:, :1]) * ramp
            yh = _fft.irfft(_fft.rfft(yd, axis=-1) * h2, n, axis=-1)
            # the median over the draws: a single recording's kurtosis is a typical draw of a
            # strongly right-skewed statistic
            yh -= yh.mean(axis=-1, keepdims=True)
            sq = yh * yh
            k = float(np.median(np.mean(sq * sq, axis=-1, dtype=np.float64)
                                / np.mean(sq, axis=-1, dtype=np.float64) ** 2 - 3.0))
            v = float(np.median(_rms_variation(y, fs_cal)))
            vh = float(np.median(_rms_variation(yh, fs_cal)))
            s2_tot = float(np.clip(s2_tot + np.log((k_t + 3.0) / max(k + 3.0, 1e-3)) / 4.0, 0.0, 4.0))
            s2_slow = float(np.clip(s2_slow + np.log1p(vh_t ** 2) - np.log1p(vh ** 2), 0.0, s2_tot))
            if share_lo > 0.2:     # the whole-signal variation is the low band's to set
                s2_lo = float(np.clip(s2_lo + np.log1p(v_t ** 2) - np.log1p(v ** 2), 0.0, 4.0))
            else:                   # too little power below split_hz to tell: as the burst band
                s2_lo = s2_slow
        out.append((BurstParams(sigma_slow=float(np.sqrt(s2_lo)), tau_slow_s=TAU_SLOW_S),
                    BurstParams(sigma_fast=float(np.sqrt(max(s2_tot - s2_slow, 0.0))), tau_fast_s=TAU_FAST_S,
                                sigma_slow=float(np.sqrt(s2_slow)), tau_slow_s=TAU_SLOW_S)))
    return tuple(out)


def _yule_walker(x, order):
    x = x - x.mean()
    n = x.size
    # biased autocorrelation at lags 0..order (O(n p), not the O(n^2) of a full correlate)
    r = np.array([np.dot(x[:n - k], x[k:]) for k in range(order + 1)]) / n
    if r[0] <= 0:
        raise SignalError("cannot fit an AR model to a constant segment")
    phi = _linalg.solve_toeplitz(r[:order], r[1:order + 1])
    sigma2 = r[0] - np.dot(phi, r[1:order + 1])
    return -phi, np.sqrt(max(sigma2, 1e-30))


def fit_noise_model(recording, fs: float, *, method: str = "psd", order: int = 12,
                    segment_s: float | None = None, fit_fs: float | None = None,
                    nperseg_s: float = 20.0, bursts: bool = True) -> NoiseModel:
    """Fit a noise model to ``recording`` ([T] or [c, T], mV) sampled at ``fs`` Hz.

    Parameters
    ----------
    method : 'psd' or 'ar'
    order : AR order (method 'ar')
    segment_s : seconds per AR segment for a time-varying model (None: one segment)
    fit_fs : rate at which to fit the AR model (None: ``fs``)
    nperseg_s : Welch segment length in seconds (method 'psd'); sets the lowest frequency
        resolved (1 / nperseg_s Hz)
    bursts : fit the burst envelope (module docstring; needs >= 20 s of recording);
        ``False`` gives stationary Gaussian noise
    """
    model = _fit_gaussian(recording, fs, method=method, order=order, segment_s=segment_s, fit_fs=fit_fs,
                          nperseg_s=nperseg_s)
    if not bursts:
        return model
    x = np.asarray(recording, dtype=np.float64).reshape(model.n_channels, -1)
    b = _fit_bursts(model, x, float(fs))
    params = dict(model.params, bursts=True)
    for ch, (b_lo, b_hi) in enumerate(b):
        params.update({f"lo_sigma_slow.{ch}": b_lo.sigma_slow, f"hi_sigma_slow.{ch}": b_hi.sigma_slow,
                       f"hi_sigma_fast.{ch}": b_hi.sigma_fast})
    return dataclasses.replace(model, bursts=b, params=params)


def _fit_gaussian(recording, fs, *, method, order, segment_s, fit_fs, nperseg_s) -> NoiseModel:
    x = np.asarray(recording, dtype=np.float64)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[1] < 16:
        raise SignalError(f"recording must be [T] or [c, T] with T >= 16, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise SignalError("recording contains NaN or inf samples")
    if not (np.isfinite(fs) and fs > 0):
        raise ConfigError(f"fs must be a positive number of Hz, got {fs!r}")
    c = x.shape[0]
    if method == "psd":
        nper = int(min(x.shape[1], round(nperseg_s * fs)))
        f, p = _signal.welch(x, fs, nperseg=nper, detrend="constant", axis=-1)
        return NoiseModel("psd", float(fs), c, freqs=f, psd=p,
                          params={"method": "psd", "nperseg": nper, "fs": float(fs)})
    if method != "ar":
        raise ConfigError(f"method must be 'psd' or 'ar', got {method!r}")
    if int(order) != order or order < 1:
        raise ConfigError(f"order must be a positive integer, got {order!r}")
    mfs = float(fit_fs or fs)
    xm = _resample(x, fs, mfs)
    seg = xm.shape[1] if segment_s is None else int(round(segment_s * mfs))
    if seg < 4 * order:
        raise ConfigError(f"segment_s gives {seg} samples per segment, fewer than 4 x order = {4 * order}")
    n_seg = max(1, xm.shape[1] // seg)
    ar = np.zeros((c, n_seg, order))
    sg = np.zeros((c, n_seg))
    for ch in range(c):
        for s in range(n_seg):
            hi = xm.shape[1] if s == n_seg - 1 else (s + 1) * seg
            ar[ch, s], sg[ch, s] = _yule_walker(xm[ch, s * seg:hi], order)
    return NoiseModel("ar", mfs, c, ar=ar, sigma=sg, segment_len=seg,
                      params={"method": "ar", "order": int(order), "fs": mfs, "source_fs": float(fs),
                              "n_segments": n_seg})


def synthesize_noise(model: NoiseModel, n_samples: int, rng: np.random.Generator, *,
                     fs: float | None = None) -> np.ndarray:
    """New noise ``[n_channels, n_samples]`` (float64 mV) from ``model``, at ``fs`` Hz
    (default the model's rate; another rate is reached with ``resample_poly``).

    A time-varying AR model cycles through its segments from a random starting segment;
    a model with bursts multiplies the Gaussian noise by its envelopes (module docstring).
    """
    if not isinstance(rng, np.random.Generator):
        raise ConfigError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    if int(n_samples) != n_samples or n_samples < 1:
        raise ConfigError(f"n_samples must be a positive integer, got {n_samples!r}")
    fs = float(fs or model.fs)
    # a fast FFT length (the spectral synthesis is periodic over it; the result is cropped)
    n_model = _fft.next_fast_len(int(np.ceil(n_samples * model.fs / fs)) + 8, real=True)
    if model.method == "psd":
        f_new = np.fft.rfftfreq(n_model, 1.0 / model.fs)
        out = np.empty((model.n_channels, n_model))
        for ch in range(model.n_channels):
            p = np.interp(f_new, model.freqs, model.psd[ch])
            x = shaped_noise(p, 1, n_model, rng)[0]
            var = np.trapezoid(p, f_new) if hasattr(np, "trapezoid") else np.trapz(p, f_new)
            out[ch] = x * np.sqrt(var)
    else:
        order = model.ar.shape[2]
        burn = 20 * order + int(2 * model.fs)
        total = n_model + burn
        out = np.empty((model.n_channels, n_model))
        for ch in range(model.n_channels):
            n_seg = model.ar.shape[1]
            k = int(np.ceil(total / model.segment_len))
            idx = (rng.integers(n_seg) + np.arange(k)) % n_seg
            a = np.ascontiguousarray(model.ar[ch, idx])
            e = rng.standard_normal(total) * np.repeat(model.sigma[ch, idx], model.segment_len)[:total]
            y = np.zeros(total)
            _kernels.ar_filter_kernel(e, a, model.segment_len, y)
            out[ch] = y[burn:]
    out = _resample(out, model.fs, fs)[:, :n_samples]
    if model.bursts:
        lo, hi = _split(out, fs, model.split_hz)
        for ch, (b_lo, b_hi) in enumerate(model.bursts):
            out[ch] = (burst_envelope(b_lo, n_samples, fs, rng)[0] * lo[ch]
                       + burst_envelope(b_hi, n_samples, fs, rng)[0] * hi[ch])
    return out


def _default_data_dir() -> Path:
    # An installed package cannot know where the user keeps PhysioNet data: ask for it.
    env = os.environ.get("CARDIOSIM_DATA")
    if not env:
        raise ConfigError("no data_dir given and CARDIOSIM_DATA is not set; pass the folder that holds nstdb/")
    return Path(env)


def read_noise_record(path, *, expected_fs=None, channels=None) -> tuple[np.ndarray, float]:
    """A WFDB record of noise (the user's own, or NSTDB's) through the project's WFDB reader
    (:func:`cardiosim.sources.wfdb_reader.read_wfdb_signal`: checked file sizes, units to
    mV, sampling rate; channel names kept as they are). Returns ``(signal [c, T] mV
    float64, fs)``.

    Raises
    ------
    DataFormatError
        Missing, truncated or corrupt files; units that are not volts.
    SignalError
        NaN samples.
    """
    from ..sources.wfdb_reader import read_wfdb_signal
    sig, fs, _, rec = read_wfdb_signal(path, expected_fs, channels=channels, lead_names=False)
    if not np.all(np.isfinite(sig)):
        raise SignalError(f"noise record {str(path)!r} has NaN or invalid samples")
    return sig, fs


def read_nstdb_noise(name: str, data_dir=None) -> tuple[np.ndarray, float]:
    """Read an MIT-BIH Noise Stress Test Database noise record (``'bw'``, ``'em'``, ``'ma'``).

    Looks in ``data_dir/nstdb`` (default ``$CARDIOSIM_DATA``). Returns ``(signal [2, T] mV
    float64, fs)``.
    """
    if name not in ("bw", "em", "ma"):
        raise ConfigError(f"unknown NSTDB noise record {name!r}; expected 'bw', 'em' or 'ma'")
    base = Path(data_dir) if data_dir is not None else _default_data_dir()
    path = base / "nstdb" / name
    if not path.with_suffix(".hea").is_file():
        raise DataFormatError(f"NSTDB record not found: {path}.hea (set CARDIOSIM_DATA or pass data_dir)")
    return read_noise_record(path)


def nstdb_noise_model(name: str, data_dir=None, *, method: str = "psd", **kwargs) -> NoiseModel:
    """Fit a noise model to an NSTDB record (``'bw'``, ``'em'``, ``'ma'``) — the real
    noise of Moody et al. (1984) as a source for :func:`synthesize_noise`."""
    x, fs = read_nstdb_noise(name, data_dir)
    m = fit_noise_model(x, fs, method=method, **kwargs)
    m.params["source"] = f"nstdb/{name}"
    return m


@functools.lru_cache(maxsize=8)
def recorded_noise_model(source: str, method: str = "psd") -> NoiseModel:
    """The noise model of a ``NoiseConfig.recorded_source`` (fitted once, cached).

    ``'nstdb:<bw|em|ma>'`` reads the NSTDB record; ``'wfdb:<path>'`` reads a WFDB record of
    the user's own noise (:func:`read_noise_record`)."""
    if source.startswith("nstdb:"):
        return nstdb_noise_model(source.split(":", 1)[1], method=method)
    if source.startswith("wfdb:"):
        x, fs = read_noise_record(source.split(":", 1)[1])
        m = fit_noise_model(x, fs, method=method)
        m.params["source"] = source
        return m
    raise ConfigError(f"unknown recorded noise source {source!r}")


def select_channels(model: NoiseModel, channels) -> NoiseModel:
    """A model whose channel ``i`` is ``model``'s channel ``channels[i]`` (to give each
    electrode its own independent draw of one of the recorded channels)."""
    ch = np.asarray(channels, dtype=np.intp)
    return dataclasses.replace(
        model, n_channels=int(ch.size),
        psd=None if model.psd is None else model.psd[ch],
        ar=None if model.ar is None else model.ar[ch],
        sigma=None if model.sigma is None else model.sigma[ch],
        bursts=tuple(model.bursts[i] for i in ch) if model.bursts else ())
