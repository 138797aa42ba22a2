"""Typed API in front of the dipole kernels: validate, allocate, call numba or NumPy twin.

Why this is fast: in the Gaussian-wave dipole ODE (Sameni 2007) ``dx/dt = ω f(θ)`` and
``dθ/dt = ω``, so ``dx/dθ = f(θ)``: the direct form ``x(θ) = Σ α exp(-Δθ²/2b²)`` is the
exact solution whatever ω(t) is (PHYSICS.md §5). Only the phase needs integrating, and
with ω constant between R peaks (as ECGSYN's ``rrn``) that integral is exact and
piecewise linear; the Gaussians are then evaluated only at the output samples within
``cutoff`` widths of their centres. No fixed-step ODE solver, no internal-rate
resampling error: the output at any rate equals the ODE solution sampled at that rate.

:func:`render_dipole` takes Gaussians in phase (any R-peak schedule);
:func:`render_gaussians` takes them in time (s), the form ``synthesize`` uses: its phase
is linear in time, so the window of each Gaussian is found by arithmetic, not search.
"""

from __future__ import annotations

import numba
import numpy as np

from ..errors import ConfigError, SignalError
from . import _kernels, _reference

DEFAULT_CUTOFF = 5.0  # Gaussians skipped beyond 5 b: truncation exp(-12.5) = 3.7e-6 of a wave


def _backend(name):
    if name == "numba":
        return _kernels
    if name == "numpy":
        return _reference
    raise ConfigError(f"unknown backend {name!r}; expected 'numba' or 'numpy'")


def phase_from_r_peaks(r_times, n_samples, fs, t0=0.0, backend="numba"):
    """Unwrapped phase ``Θ(t)`` (rad) at ``t = t0 + arange(n_samples) / fs`` with
    ``Θ(r_times[k]) = 2πk``. r_times: (K >= 2,) strictly increasing, s."""
    r = np.ascontiguousarray(r_times, dtype=np.float64)
    if r.ndim != 1 or r.size < 2 or np.any(np.diff(r) <= 0):
        raise SignalError(f"r_times must be >= 2 strictly increasing times, got {r!r}")
    out = np.empty(int(n_samples))
    _backend(backend).phase_kernel(r, float(t0), float(fs), out)
    return out


def _check_rate_and_cutoff(fs, cutoff):
    if not (np.isfinite(fs) and fs > 0):
        raise ConfigError(f"fs must be positive, got {fs!r}")
    if not (np.isfinite(cutoff) and cutoff > 0):
        raise ConfigError(f"cutoff must be positive, got {cutoff!r}")


def _check_gaussians(centres, widths, amps, chans, n_ch):
    centres = np.ascontiguousarray(centres, np.float64)
    widths = np.ascontiguousarray(widths, np.float64)
    amps = np.ascontiguousarray(amps, np.float64)
    chans = np.ascontiguousarray(chans, np.int64)
    if not (centres.ndim == 1 and centres.shape == widths.shape == amps.shape == chans.shape):
        raise SignalError(f"centres {centres.shape}, widths {widths.shape}, amps {amps.shape}, "
                          f"chans {chans.shape} must be equal 1-D shapes")
    for name, x in (("centres", centres), ("widths", widths), ("amps", amps)):
        if not np.all(np.isfinite(x)):
            raise SignalError(f"Gaussian {name} must be finite, got {int(np.sum(~np.isfinite(x)))} NaN/inf")
    if widths.size and widths.min() <= 0:
        raise SignalError(f"Gaussian widths must be positive, got min {widths.min()}")
    if chans.size and (chans.min() < 0 or chans.max() >= n_ch):
        raise SignalError(f"channel indices must be in [0, {n_ch}), got {chans.min()}..{chans.max()}")
    return centres, widths, amps, chans


def render_dipole(r_times, centres, widths, amps, chans, n_samples, fs, t0=0.0, n_channels=3,
                  cutoff=DEFAULT_CUTOFF, backend="numba"):
    """Direct-form Gaussian-wave dipole sampled at ``fs``.

    Parameters
    ----------
    r_times : ndarray (K,), s — R peaks (phase 2πk)
    centres, widths : ndarray (G,), rad — Gaussian centres (unwrapped phase) and widths
    amps : ndarray (G,), mV;  chans : ndarray (G,) int — channel (Frank axis) of each
    n_samples : int;  fs : float, Hz;  t0 : float, s — time of the first sample
    cutoff : float — skip samples beyond ``cutoff`` widths of a centre
    backend : "numba" or "numpy" (the test twin)

    Returns
    -------
    ndarray (n_channels, n_samples) float64, mV
    """
    _check_rate_and_cutoff(fs, cutoff)
    centres, widths, amps, chans = _check_gaussians(centres, widths, amps, chans, n_channels)
    phase = phase_from_r_peaks(r_times, n_samples, fs, t0, backend)
    out = np.zeros((int(n_channels), int(n_samples)))
    kern = _backend(backend)
    # long records: channels on separate threads; short ones: thread start-up costs more
    fn = kern.gaussian_sum_parallel_kernel if n_samples > 100_000 else kern.gaussian_sum_kernel
    fn(phase, centres, widths, amps, chans, float(cutoff), out)
    return out


def render_dipole_batch(records, n_samples, fs, t0=0.0, cutoff=DEFAULT_CUTOFF, backend="numba"):
    """Many records at once, in parallel over records (numba ``prange``).

    records : list of (r_times, centres, widths, amps, chans) as in :func:`render_dipole`.
    Returns ndarray (n_records, 3, n_samples) float64, mV.
    """
    _check_rate_and_cutoff(fs, cutoff)
    n = len(records)
    r_off = np.zeros(n + 1, np.int64)
    g_off = np.zeros(n + 1, np.int64)
    for i, (r, c, w, a, ch) in enumerate(records):
        if len(r) < 2 or np.any(np.diff(r) <= 0):
            raise SignalError(f"record {i}: r_times must be >= 2 strictly increasing times")
        _check_gaussians(c, w, a, ch, 3)
        r_off[i + 1] = r_off[i] + len(r)
        g_off[i + 1] = g_off[i] + len(c)
    cat = [np.concatenate([np.asarray(rec[j], dt) for rec in records]) for j, dt in
           enumerate((np.float64, np.float64, np.float64, np.float64, np.int64))]
    phase = np.empty((n, int(n_samples)))
    out = np.zeros((n, 3, int(n_samples)))
    _backend(backend).batch_dipole_kernel(cat[0], r_off, float(t0), float(fs), cat[1], cat[2], cat[3],
                                          cat[4], g_off, float(cutoff), phase, out)
    return out


def render_gaussians(centres, widths, amps, chans, n_samples, fs, t0=0.0, n_channels=3,
                     cutoff=DEFAULT_CUTOFF, backend="numba"):
    """Sum of Gaussians in time sampled at ``t = t0 + arange(n_samples) / fs``.

    Parameters
    ----------
    centres, widths : ndarray (G,), s;  amps : ndarray (G,), mV
    chans : ndarray (G,) int — row (Frank axis) of each Gaussian
    n_samples : int;  fs : float, Hz;  t0 : float, s
    cutoff : float — skip samples beyond ``cutoff`` widths of a centre
    backend : "numba" or "numpy" (the test twin)

    Returns
    -------
    ndarray (n_channels, n_samples) float64, mV
    """
    _check_rate_and_cutoff(fs, cutoff)
    centres, widths, amps, chans = _check_gaussians(centres, widths, amps, chans, n_channels)
    out = np.zeros((int(n_channels), int(n_samples)))
    kern = _backend(backend)
    # long records: chunks of the time axis on separate threads; short ones: thread
    # start-up costs more than it saves
    if n_samples > 100_000:
        kern.gaussian_time_parallel_kernel(float(t0), float(fs), centres, widths, amps, chans, float(cutoff),
                                           2 * numba.get_num_threads(), out)
    else:
        kern.gaussian_time_kernel(float(t0), float(fs), centres, widths, amps, chans, float(cutoff), out)
    return out


def render_gaussians_batch(records, n_samples, fs, t0=0.0, cutoff=DEFAULT_CUTOFF, backend="numba"):
    """Many records at once, in parallel over records (numba ``prange``).

    records : list of (centres, widths, amps, chans) as in :func:`render_gaussians`.
    Returns ndarray (n_records, 3, n_samples) float64, mV.
    """
    _check_rate_and_cutoff(fs, cutoff)
    g_off = np.zeros(len(records) + 1, np.int64)
    checked = []
    for i, rec in enumerate(records):
        checked.append(_check_gaussians(*rec, 3))
        g_off[i + 1] = g_off[i] + checked[-1][0].shape[0]
    cat = [np.concatenate([rec[j] for rec in checked]) if checked else np.empty(0, dt)
           for j, dt in enumerate((np.float64, np.float64, np.float64, np.int64))]
    out = np.zeros((len(records), 3, int(n_samples)))
    _backend(backend).gaussian_time_batch_kernel(float(t0), float(fs), *cat, g_off, float(cutoff), out)
    return out
