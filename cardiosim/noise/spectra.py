"""Spectral shapes of the noise kinds and Gaussian noise synthesis with a given PSD.

Shapes are one-sided power spectral densities up to a constant (the amplitude is set
separately). They follow the NSTDB measurements in PHYSICS.md section 6 (Moody et al.
1984 records; spectra quoted there):

* ``bw`` -- baseline wander: 98 % of the power below 0.5 Hz, a steep fall from ~0.1 Hz
  and a floor about 55-60 dB down from 10 to 40 Hz (the shape of NSTDB ``bw``).
* ``em`` -- electrode motion: above 1 Hz median frequency about 2 Hz, 90 % of the power
  below 7-13 Hz, PSD falling as f^-1.2...-1.9 from 1 to 20 Hz: ``f^-1.8`` above a 0.5-Hz
  corner with an 8th-order roll-off at 25 Hz (median 2.3 Hz, 90 % below 9.7 Hz, fitted
  1-20 Hz slope -1.79).
* ``emg`` -- muscle: flat from 1 to 20 Hz, median 22-28 Hz and 90 % below 42-48 Hz above
  1 Hz: flat band with a 4th-order low-pass at 45 Hz and a 2nd-order high-pass at 1 Hz.
* ``white`` -- flat (amplifier voltage noise).
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.fft as _fft

from ..errors import ConfigError, SignalError
from ._kernels import standard_normal, upsample_cubic_kernel

_trapz = getattr(np, "trapezoid", None) or np.trapz

# bw shape knots (Hz, dB): log-log interpolation; slope continues beyond the last knot.
_BW_KNOTS = np.array([
    (0.01, -6.0), (0.05, 0.0), (0.1, 0.0), (0.2, -9.0), (0.3, -14.0), (0.5, -22.0), (1.0, -29.0),
    (2.0, -40.0), (5.0, -50.0), (10.0, -56.0), (20.0, -58.5), (40.0, -58.0), (60.0, -61.0), (100.0, -69.0),
])


def _interp_db(f, knots):
    lf = np.log10(np.maximum(f, 1e-6))
    kx, ky = np.log10(knots[:, 0]), knots[:, 1]
    y = np.interp(lf, kx, ky)
    hi = lf > kx[-1]
    slope = (ky[-1] - ky[-2]) / (kx[-1] - kx[-2])
    y[hi] = ky[-1] + slope * (lf[hi] - kx[-1])
    lo = lf < kx[0]
    slope0 = (ky[1] - ky[0]) / (kx[1] - kx[0])
    y[lo] = ky[0] + slope0 * (lf[lo] - kx[0])
    return 10 ** (y / 10)


def psd_shape(kind: str, f: np.ndarray) -> np.ndarray:
    """Relative one-sided PSD of noise ``kind`` at frequencies ``f`` (Hz)."""
    f = np.asarray(f, dtype=np.float64)
    if kind == "white":
        return np.ones_like(f)
    if kind == "bw":
        return _interp_db(f, _BW_KNOTS)
    if kind == "em":
        fp = np.maximum(f, 1e-3)
        return (1.0 / (1.0 + (fp / 0.5) ** 1.8)) / (1.0 + (fp / 25.0) ** 8)
    if kind == "emg":
        hp = (f / 1.0) ** 4 / (1.0 + (f / 1.0) ** 4)
        return hp / (1.0 + (f / 45.0) ** 8)
    raise ConfigError(f"unknown noise spectrum kind {kind!r}; expected 'white', 'bw', 'em' or 'emg'")


#: Upper frequency (Hz) beyond which a kind's synthesis draws no random numbers: the
#: shape there is more than 30 dB below its peak and carries < 0.02 % of the power
#: (bw 0.014 %, em 0.0003 %, emg 0.015 %).
BAND_LIMIT_HZ = {"bw": 60.0, "em": 50.0, "emg": 120.0}


def shaped_noise(psd: np.ndarray, n_rows: int, n: int, rng: np.random.Generator, *,
                 dtype=np.float64) -> np.ndarray:
    """Gaussian noise ``[n_rows, n]`` with one-sided PSD proportional to ``psd`` and unit
    expected variance, by spectral synthesis (random complex amplitudes, inverse real FFT).

    ``psd`` has ``n // 2 + 1`` values on the ``rfftfreq(n, 1/fs)`` grid; the DC bin is
    dropped (zero-mean noise). Random numbers are drawn only up to the last bin with
    non-zero PSD. ``dtype`` float32 halves the work (complex64 spectra).
    """
    psd = np.asarray(psd, dtype=np.float64).copy()
    nf = n // 2 + 1
    if psd.shape != (nf,):
        raise SignalError(f"psd must have n // 2 + 1 = {nf} values, got {psd.shape}")
    psd[0] = 0.0
    nz = np.flatnonzero(psd > 0)
    cdt = np.complex64 if np.dtype(dtype) == np.float32 else np.complex128
    spec = np.zeros((n_rows, nf), dtype=cdt)
    if nz.size:
        k = int(nz[-1]) + 1                     # bins 1 .. k-1 carry power
        amp = np.sqrt(psd[1:k] / 2.0)
        if n % 2 == 0 and k == nf:
            amp[-1] *= np.sqrt(2.0)             # the Nyquist bin is real: keep its power
        z = standard_normal(rng, (n_rows, 2 * (k - 1)), dtype=np.dtype(dtype)).view(cdt)
        z *= amp.astype(np.dtype(dtype))
        spec[:, 1:k] = z
    # expected variance of irfft(spec) for a Hermitian spectrum of these bin powers
    w = np.full(nf, 2.0)
    w[0] = 1.0
    if n % 2 == 0:
        w[-1] = 1.0
    var = np.sum(w * psd) / n ** 2
    x = _fft.irfft(spec, n, axis=1, overwrite_x=True)
    if var > 0:
        x *= np.asarray(1.0 / np.sqrt(var), dtype=x.dtype)
    return x


def decimation_factor(fs: float, f_max: float) -> int:
    """Largest integer ``D`` with ``fs / D`` at least 2.5 ``f_max``, so that cubic
    interpolation back to ``fs`` keeps the band's images more than 60 dB down (1 if none)."""
    return max(1, int(fs / (2.5 * f_max))) if f_max > 0 else 1


@functools.lru_cache(maxsize=64)
def _synthesis_plan(kind: str, n: int, fs: float):
    """(decimation D, low-rate length m, number of bins k drawn + 1, float32 amplitudes of
    bins 1..k-1 scaled for unit variance) of one kind's spectral synthesis of n samples at fs."""
    d = decimation_factor(fs, BAND_LIMIT_HZ.get(kind, fs / 2))
    # low-rate length: an FFT-friendly m with m * d >= n (the periodic result is cropped)
    m = n if d == 1 else _fft.next_fast_len(-(-n // d), real=True)
    psd = shape_on_grid(kind, m, fs / d)
    nf = m // 2 + 1
    w = np.full(nf, 2.0)
    w[0] = 1.0
    if m % 2 == 0:
        w[-1] = 1.0
    var = np.sum(w[1:] * psd[1:]) / m ** 2
    nz = np.flatnonzero(psd[1:] > 0)
    if not nz.size:
        return d, m, 1, None
    k = int(nz[-1]) + 2
    amp = np.sqrt(psd[1:k] / 2.0) / np.sqrt(var)
    if m % 2 == 0 and k == nf:
        amp[-1] *= np.sqrt(2.0)              # the Nyquist bin is real: keep its power
    amp = amp.astype(np.float32)
    amp.setflags(write=False)
    return d, m, k, amp


def normals_needed(kinds, n_rows: int, n: int, fs: float) -> int:
    """How many standard normal values :func:`shaped_noise_multi` consumes."""
    return sum(n_rows * 2 * (_synthesis_plan(k, n, float(fs))[2] - 1) for k in kinds)


def shaped_noise_multi(kinds, n_rows: int, n: int, fs: float, rng: np.random.Generator,
                       normals: np.ndarray | None = None) -> list:
    """Unit-variance Gaussian noise ``[n_rows, n]`` float32 for each of ``kinds`` ('bw', 'em',
    'emg') with its :func:`band_limited_shape` PSD.

    Each kind is synthesised (random complex amplitudes, inverse real FFT) at the lowest
    rate ``fs / D`` that carries its band (:func:`decimation_factor`), on an FFT-friendly
    length ``m >= n / D``, and, when ``D > 1``, brought back to ``fs`` by periodic cubic
    interpolation (the synthesis is periodic, so the wrap-around is exact) and cropped to
    ``n``. Kinds with the same ``(D, m)`` share one inverse FFT. Random numbers are drawn
    kind by kind in the given order, from ``normals`` (float32, at least
    :func:`normals_needed` values) when given, else from ``rng``.
    """
    if normals is None:
        normals = standard_normal(rng, normals_needed(kinds, n_rows, n, fs))
    used = 0
    out = {}
    groups: dict[int, list] = {}
    plans = {kind: _synthesis_plan(kind, n, float(fs)) for kind in kinds}
    for kind in kinds:
        groups.setdefault(plans[kind][:2], []).append(kind)
    draws = {}
    for kind in kinds:                                     # fixed draw order, whatever the grouping
        d, m, k, amp = plans[kind]
        if k > 1:
            size = n_rows * 2 * (k - 1)
            z = normals[used:used + size].reshape(n_rows, 2 * (k - 1)).view(np.complex64)
            used += size
            z *= amp
            draws[kind] = (k, z)
        else:
            draws[kind] = (1, None)
    for (d, m), group in groups.items():
        spec = np.zeros((len(group) * n_rows, m // 2 + 1), dtype=np.complex64)
        for j, kind in enumerate(group):
            k, z = draws[kind]
            if z is not None:
                spec[j * n_rows:(j + 1) * n_rows, 1:k] = z
        x = _fft.irfft(spec, m, axis=1, overwrite_x=True)
        for j, kind in enumerate(group):
            xj = x[j * n_rows:(j + 1) * n_rows]
            if d > 1:
                y = np.empty((n_rows, n), dtype=np.float32)
                upsample_cubic_kernel(np.ascontiguousarray(xj), d, y)
                xj = y
            out[kind] = xj
    return [out[k] for k in kinds]


@functools.lru_cache(maxsize=64)
def shape_on_grid(kind: str, n: int, fs: float) -> np.ndarray:
    """:func:`band_limited_shape` on the ``rfftfreq(n, 1/fs)`` grid (cached, read-only)."""
    p = band_limited_shape(kind, np.fft.rfftfreq(n, 1.0 / fs))
    p.setflags(write=False)
    return p


def band_limited_shape(kind: str, f: np.ndarray) -> np.ndarray:
    """:func:`psd_shape` set to zero above :data:`BAND_LIMIT_HZ` (what the simulator draws)."""
    p = psd_shape(kind, f)
    if kind in BAND_LIMIT_HZ:
        p = np.where(f <= BAND_LIMIT_HZ[kind], p, 0.0)
    return p


def welch_psd(x, fs, nperseg=None):
    """Welch PSD of ``x [..., T]`` (mean removed), Hann window, 50 % overlap; returns (f, P)."""
    from scipy import signal as _signal
    x = np.asarray(x, dtype=np.float64)
    nperseg = int(min(x.shape[-1], nperseg or x.shape[-1]))
    return _signal.welch(x, fs, nperseg=nperseg, detrend="constant")


def log_spectral_distance(f, p1, p2, band=(0.05, 40.0), *, normalize=True, n_points=200) -> float:
    """RMS difference in dB between two PSDs over ``band``, on a log-spaced frequency grid.

    Both spectra are interpolated (log-log) onto ``n_points`` log-spaced frequencies in
    ``band`` so each decade weighs the same; with ``normalize`` each is first divided by
    its total power in the band (shape comparison, independent of amplitude).
    """
    f = np.asarray(f, dtype=np.float64)
    grid = np.logspace(np.log10(band[0]), np.log10(band[1]), n_points)
    ok = f > 0

    def on_grid(p):
        p = np.asarray(p, dtype=np.float64)
        return 10 ** np.interp(np.log10(grid), np.log10(f[ok]), np.log10(np.maximum(p[ok], 1e-300)))

    a, b = on_grid(p1), on_grid(p2)
    if normalize:
        a, b = a / _trapz(a, grid), b / _trapz(b, grid)
    return float(np.sqrt(np.mean((10 * np.log10(a / b)) ** 2)))
