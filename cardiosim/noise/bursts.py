"""Artefact bursts: non-Gaussian, non-stationary noise as a slowly varying envelope times
stationary shaped noise.

Real electrode-motion and muscle noise is not Gaussian and not stationary: it comes in
bursts (PHYSICS.md section 6; NSTDB and textile recordings have excess kurtosis of about
1-5 after a 1-Hz high-pass, and their 10-s RMS varies by 20-40 %). A stationary Gaussian
process times a positive envelope ``e(t)`` keeps the spectral shape (the envelope is slow
next to the noise) while giving heavy tails (for a log-normal envelope the kurtosis is
``3 E[e^4] / E[e^2]^2 = 3 exp(4 sigma^2)``) and a varying local RMS.

API (small and stable; used by :mod:`cardiosim.noise.fit` and free for other noise models)
--------------------------------------------------------------------------------------------
``BurstParams(sigma_fast, tau_fast_s, sigma_slow, tau_slow_s, burst_rate_hz, burst_duration_s,
burst_gain)``
    The envelope: ``log e = sigma_fast u_f + sigma_slow u_s`` with ``u_f``, ``u_s``
    independent unit Ornstein-Uhlenbeck processes of correlation times ``tau_fast_s`` and
    ``tau_slow_s`` (log-normal amplitude), optionally times a two-state Markov (on/off)
    burst gate: bursts start at ``burst_rate_hz`` (Poisson), last ``burst_duration_s`` on
    average (exponential), and multiply the amplitude by ``burst_gain`` (0.05-s raised-
    cosine edges). ``BurstParams()`` is the identity (stationary) envelope.
``burst_envelope(params, n, fs, rng, n_rows=1) -> ndarray [n_rows, n]``
    Positive float64 envelope normalised so that ``E[e^2] = 1``: multiplying unit-variance
    noise by it keeps the noise's mean power (its RMS on average), and rows are independent.
``modulate(noise, params, fs, rng) -> ndarray``
    ``noise [..., n]`` times an independent envelope per row (same dtype).
``lognormal_sigma(kurtosis_excess) -> float``
    The total log-amplitude SD ``sigma`` that gives Gaussian noise times a log-normal
    envelope the requested excess kurtosis (``3 exp(4 sigma^2) - 3``).

Motion artefacts of an activity, for example: ``modulate(em_noise, BurstParams(
sigma_fast=0.5, tau_fast_s=0.4, burst_rate_hz=0.2, burst_duration_s=0.8, burst_gain=4), fs, rng)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, SignalError

_EDGE_S = 0.05     # raised-cosine edge of a Markov burst (s): no step discontinuities


@dataclass(frozen=True)
class BurstParams:
    """Envelope of non-stationary noise (see module docstring).

    Attributes
    ----------
    sigma_fast, sigma_slow : float >= 0
        SD of the natural log of the amplitude, fast and slow components.
    tau_fast_s, tau_slow_s : float > 0, s
        Correlation times of the two Ornstein-Uhlenbeck log-amplitude processes.
    burst_rate_hz : float >= 0
        Rate of Markov bursts (0: none).
    burst_duration_s : float > 0, s
        Mean burst duration (exponentially distributed).
    burst_gain : float > 0
        Amplitude factor inside a burst.
    """

    sigma_fast: float = 0.0
    tau_fast_s: float = 0.5
    sigma_slow: float = 0.0
    tau_slow_s: float = 20.0
    burst_rate_hz: float = 0.0
    burst_duration_s: float = 1.0
    burst_gain: float = 1.0

    def __post_init__(self):
        for name in ("sigma_fast", "sigma_slow", "burst_rate_hz"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v >= 0):
                raise ConfigError(f"BurstParams.{name} must be a finite number >= 0, got {v!r}")
        for name in ("tau_fast_s", "tau_slow_s", "burst_duration_s", "burst_gain"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v > 0):
                raise ConfigError(f"BurstParams.{name} must be a finite number > 0, got {v!r}")
        if self.sigma_fast > 3 or self.sigma_slow > 3:
            raise ConfigError(f"BurstParams: log-amplitude SDs above 3 (a factor e^3 = 20 per SD) are not "
                              f"noise models, got sigma_fast={self.sigma_fast}, sigma_slow={self.sigma_slow}")

    def to_dict(self) -> dict:
        return {k: float(getattr(self, k)) for k in self.__dataclass_fields__}


def lognormal_sigma(kurtosis_excess: float) -> float:
    """Total log-amplitude SD giving Gaussian noise times a slow log-normal envelope the
    excess kurtosis ``kurtosis_excess``: ``3 exp(4 sigma^2) = kurtosis_excess + 3``
    (0 for a kurtosis at or below Gaussian)."""
    if not np.isfinite(kurtosis_excess):
        raise ConfigError(f"kurtosis_excess must be finite, got {kurtosis_excess!r}")
    return float(np.sqrt(max(0.0, np.log((kurtosis_excess + 3.0) / 3.0) / 4.0)))


def _ou(n, fs, tau, rng, n_rows):
    """Unit-variance Ornstein-Uhlenbeck rows ``[n_rows, n]`` with correlation time ``tau``:
    an AR(1) at a rate resolving ``tau`` (>= 8 points per tau), linearly interpolated to fs."""
    from scipy.signal import lfilter
    fe = min(fs, max(8.0 / tau, 1.0))
    m = int(np.ceil(n * fe / fs)) + 2
    phi = np.exp(-1.0 / (tau * fe))
    e = rng.standard_normal((n_rows, m))
    e[:, 1:] *= np.sqrt(1 - phi ** 2)          # stationary from the first point (e[0] ~ N(0, 1))
    u = lfilter([1.0], [1.0, -phi], e, axis=1)
    if fe == fs:
        return u[:, :n]
    t = np.arange(n) * (fe / fs)
    return np.stack([np.interp(t, np.arange(m), row) for row in u])


def _markov_gate(n, fs, rng, rate, dur, gain, n_rows):
    """Amplitude factor of on/off bursts ``[n_rows, n]`` and its mean square (for normalising)."""
    out = np.ones((n_rows, n))
    edge = max(1, int(round(_EDGE_S * fs)))
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, edge))
    for i in range(n_rows):
        t = rng.exponential(1.0 / rate)
        while t * fs < n:
            d = rng.exponential(dur)
            a, b = int(t * fs), min(n, int((t + d) * fs) + 1)
            seg = np.full(b - a, gain)
            k = min(edge, (b - a) // 2)
            if k > 0:
                seg[:k] = 1 + (gain - 1) * ramp[np.linspace(0, edge - 1, k).astype(int)]
                seg[b - a - k:] = seg[:k][::-1]
            out[i, a:b] = np.maximum(out[i, a:b], seg) if gain >= 1 else np.minimum(out[i, a:b], seg)
            t += d + rng.exponential(1.0 / rate)
    p = rate * dur / (1 + rate * dur)          # fraction of time in a burst (alternating renewal)
    return out, (1 - p) + p * gain ** 2


def burst_envelope(params: BurstParams, n: int, fs: float, rng: np.random.Generator, n_rows: int = 1) -> np.ndarray:
    """Positive envelope ``[n_rows, n]`` float64 with ``E[e^2] = 1`` (see module docstring).

    Parameters
    ----------
    params : BurstParams
    n : int, samples
    fs : float, Hz
    rng : numpy.random.Generator
    n_rows : int, independent rows

    Returns
    -------
    ndarray [n_rows, n], float64, dimensionless
    """
    if not isinstance(params, BurstParams):
        raise ConfigError(f"params must be a BurstParams, got {type(params).__name__}")
    if not isinstance(rng, np.random.Generator):
        raise ConfigError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    if int(n) != n or n < 1 or int(n_rows) != n_rows or n_rows < 1:
        raise ConfigError(f"n and n_rows must be positive integers, got {n!r}, {n_rows!r}")
    if not (np.isfinite(fs) and fs > 0):
        raise ConfigError(f"fs must be a positive number of Hz, got {fs!r}")
    n, n_rows = int(n), int(n_rows)
    log_e = np.zeros((n_rows, n))
    s2 = 0.0
    for sigma, tau in ((params.sigma_fast, params.tau_fast_s), (params.sigma_slow, params.tau_slow_s)):
        if sigma > 0:
            log_e += sigma * _ou(n, fs, tau, rng, n_rows)
            s2 += sigma ** 2
    # E[exp(2 (X - s2))] = 1 for X ~ N(0, s2): unit mean square
    env = np.exp(log_e - s2)
    if params.burst_rate_hz > 0 and params.burst_gain != 1:
        gate, ms = _markov_gate(n, fs, rng, params.burst_rate_hz, params.burst_duration_s, params.burst_gain, n_rows)
        env *= gate / np.sqrt(ms)
    return env


def modulate(noise, params: BurstParams, fs: float, rng: np.random.Generator) -> np.ndarray:
    """``noise [..., n]`` times an independent :func:`burst_envelope` per row (dtype kept)."""
    x = np.asarray(noise)
    if x.ndim == 0 or x.shape[-1] == 0:
        raise SignalError(f"noise must have shape [..., n] with n > 0, got {x.shape}")
    rows = int(np.prod(x.shape[:-1], dtype=np.int64))
    env = burst_envelope(params, x.shape[-1], fs, rng, n_rows=max(rows, 1)).reshape(x.shape)
    out = x * env
    return out.astype(x.dtype, copy=False) if np.issubdtype(x.dtype, np.floating) else out
