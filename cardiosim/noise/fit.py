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

Channels are modelled independently (cross-channel coherence is not kept).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
from scipy import linalg as _linalg
from scipy import signal as _signal

from ..errors import ConfigError, DataFormatError, SignalError
from . import _kernels
from .spectra import shaped_noise


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


def _resample(x, fs_in, fs_out):
    if fs_in == fs_out:
        return x
    r = Fraction(fs_out / fs_in).limit_denominator(1000)
    return _signal.resample_poly(x, r.numerator, r.denominator, axis=-1)


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
                    nperseg_s: float = 20.0) -> NoiseModel:
    """Fit a noise model to ``recording`` ([T] or [c, T], mV) sampled at ``fs`` Hz.

    Parameters
    ----------
    method : 'psd' or 'ar'
    order : AR order (method 'ar')
    segment_s : seconds per AR segment for a time-varying model (None: one segment)
    fit_fs : rate at which to fit the AR model (None: ``fs``)
    nperseg_s : Welch segment length in seconds (method 'psd'); sets the lowest frequency
        resolved (1 / nperseg_s Hz)
    """
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

    A time-varying AR model cycles through its segments from a random starting segment.
    """
    if not isinstance(rng, np.random.Generator):
        raise ConfigError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    if int(n_samples) != n_samples or n_samples < 1:
        raise ConfigError(f"n_samples must be a positive integer, got {n_samples!r}")
    fs = float(fs or model.fs)
    n_model = int(np.ceil(n_samples * model.fs / fs)) + 8
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
    out = _resample(out, model.fs, fs)
    return out[:, :n_samples]


def _default_data_dir() -> Path:
    # An installed package cannot know where the user keeps PhysioNet data: ask for it.
    env = os.environ.get("CARDIOSIM_DATA")
    if not env:
        raise ConfigError("no data_dir given and CARDIOSIM_DATA is not set; pass the folder that holds nstdb/")
    return Path(env)


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
    import wfdb
    rec = wfdb.rdrecord(str(path))
    return np.asarray(rec.p_signal.T, dtype=np.float64), float(rec.fs)


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
    the user's own noise (physical units taken as mV)."""
    if source.startswith("nstdb:"):
        return nstdb_noise_model(source.split(":", 1)[1], method=method)
    if source.startswith("wfdb:"):
        path = source.split(":", 1)[1]
        if not Path(path + ".hea").is_file():
            raise DataFormatError(f"WFDB noise record not found: {path}.hea")
        import wfdb
        rec = wfdb.rdrecord(path)
        x = np.asarray(rec.p_signal.T, dtype=np.float64)
        m = fit_noise_model(x, float(rec.fs), method=method)
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
        sigma=None if model.sigma is None else model.sigma[ch])
