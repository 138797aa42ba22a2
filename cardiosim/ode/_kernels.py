"""Numba kernels of the beat models (small loops writing into ``out``).

Every kernel has a plain NumPy twin of the same name in ``_reference.py`` (the test
oracle) and is called only through the typed API in ``dipole.py`` / ``ecgsyn.py``,
which validates and allocates. Random numbers are drawn by the caller and passed in.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

TWO_PI = 2.0 * math.pi


@njit(cache=True, nogil=True)
def phase_kernel(r_times, t0, fs, out):
    """Unwrapped phase ``Θ(t_n)``, ``t_n = t0 + n / fs``, with ``Θ(r_times[k]) = 2πk``.

    ``dΘ/dt = ω`` is constant (``2π / RR_k``) between consecutive R peaks, as in
    ECGSYN's ``rrn`` (McSharry 2003), so the phase integrates exactly to a piecewise
    linear function; before the first / after the last R peak the first / last
    interval's rate is continued.
    """
    n_r = r_times.shape[0]
    k = 0
    for n in range(out.shape[0]):
        t = t0 + n / fs
        while k < n_r - 2 and t >= r_times[k + 1]:
            k += 1
        out[n] = TWO_PI * (k + (t - r_times[k]) / (r_times[k + 1] - r_times[k]))


@njit(cache=True, nogil=True)
def _lower_bound(x, v):
    lo = 0
    hi = x.shape[0]
    while lo < hi:
        mid = (lo + hi) >> 1
        if x[mid] < v:
            lo = mid + 1
        else:
            hi = mid
    return lo


RUN = 64  # samples per exp-recurrence run before an exact restart


@njit(cache=True, nogil=True)
def gaussian_sum_kernel(phase, centres, widths, amps, chans, cutoff, out):
    """Add the direct-form dipole ``Σ_g a_g exp(-(Θ - Θ_g)² / 2 b_g²)`` to ``out``.

    phase (T,) monotone unwrapped phase, rad; centres, widths (G,) rad;
    amps (G,) mV; chans (G,) int channel of each Gaussian (Sameni's per-axis sums);
    out (C, T) mV, accumulated. Samples farther than ``cutoff * b_g`` from a centre are
    skipped (found by bisection on the monotone phase).

    Between R peaks (phase multiples of 2π) the phase is linear in the sample index, so
    the Gaussian obeys ``g[n+1] = g[n] r[n]``, ``r[n+1] = r[n] exp(-δ²)`` (δ the phase
    step in widths): two multiplications replace an ``exp`` per sample. Runs restart
    exactly at every R peak and every ``RUN`` samples (bounding rounding growth).
    """
    for g in range(centres.shape[0]):
        c = centres[g]
        b = widths[g]
        a = amps[g]
        row = out[chans[g]]
        lo = _lower_bound(phase, c - cutoff * b)
        hi = _lower_bound(phase, c + cutoff * b)
        inv = 1.0 / b
        n = lo
        seg_end = lo
        while n < hi:
            if n >= seg_end:  # first sample at or past the next R peak
                seg_end = _lower_bound(phase, (math.floor(phase[n] / TWO_PI) + 1.0) * TWO_PI)
                if seg_end <= n:
                    seg_end = n + 1
            m_end = min(hi, seg_end, n + RUN)
            d = (phase[n] - c) * inv
            e = math.exp(-0.5 * d * d)
            if m_end - n > 1:
                delta = (phase[n + 1] - phase[n]) * inv
                r = math.exp(-d * delta - 0.5 * delta * delta)
                q = math.exp(-delta * delta)
                for j in range(n, m_end):
                    row[j] += a * e
                    e *= r
                    r *= q
            else:
                row[n] += a * e
            n = m_end


@njit(cache=True, parallel=True)
def gaussian_sum_parallel_kernel(phase, centres, widths, amps, chans, cutoff, out):
    """:func:`gaussian_sum_kernel` with the channels in parallel (each thread owns rows of
    ``out``, so no write races): for one long record."""
    for ch in prange(out.shape[0]):
        sel = np.flatnonzero(chans == ch)
        gaussian_sum_kernel(phase, centres[sel], widths[sel], amps[sel], chans[sel], cutoff, out)


@njit(cache=True, parallel=True)
def batch_dipole_kernel(r_times, r_offsets, t0, fs, centres, widths, amps, chans, g_offsets, cutoff,
                        phase, out):
    """Records in parallel: record ``i`` uses ``r_times[r_offsets[i]:r_offsets[i+1]]`` and
    Gaussians ``g_offsets[i]:g_offsets[i+1]``; phase (n_rec, T) scratch; out (n_rec, C, T)."""
    for i in prange(out.shape[0]):
        r = r_times[r_offsets[i]:r_offsets[i + 1]]
        phase_kernel(r, t0, fs, phase[i])
        g0 = g_offsets[i]
        g1 = g_offsets[i + 1]
        gaussian_sum_kernel(phase[i], centres[g0:g1], widths[g0:g1], amps[g0:g1], chans[g0:g1], cutoff,
                            out[i])


@njit(cache=True, nogil=True)
def _ecgsyn_deriv(t, x, y, z, w, ti, ai, bi, z0_amp, z0_freq):
    a0 = 1.0 - math.sqrt(x * x + y * y)
    dx = a0 * x - w * y
    dy = a0 * y + w * x
    ta = math.atan2(y, x)
    s = 0.0
    for i in range(ti.shape[0]):
        d = ta - ti[i]
        d = d - round(d / TWO_PI) * TWO_PI  # wrap to [-π, π] like ECGSYN/NeuroKit2
        s += ai[i] * d * math.exp(-0.5 * (d / bi[i]) ** 2)
    zb = z0_amp * math.sin(TWO_PI * z0_freq * t)
    dz = -s - (z - zb)
    return dx, dy, dz


@njit(cache=True, nogil=True)
def ecgsyn_kernel(omega, fs_int, ti, ai, bi, x0, z0_amp, z0_freq, fs_out, out):
    """Fixed-step RK4 of McSharry's ECGSYN ODE (IEEE TBME 2003;50:289).

    omega (N,) rad/s, the angular rate for each internal step (piecewise constant);
    fs_int internal rate, Hz; ti, ai, bi (K,) angles rad, amplitudes, widths rad;
    x0 (3,) initial state; baseline ``z0 = z0_amp sin(2π z0_freq t)``; out (M,) receives
    ``z`` at ``t_m = m / fs_out`` by linear interpolation between internal steps.
    """
    h = 1.0 / fs_int
    x = x0[0]
    y = x0[1]
    z = x0[2]
    m = 0
    n_out = out.shape[0]
    t = 0.0
    for n in range(omega.shape[0]):
        t = n * h
        if m >= n_out:
            return
        w = omega[n]
        k1x, k1y, k1z = _ecgsyn_deriv(t, x, y, z, w, ti, ai, bi, z0_amp, z0_freq)
        k2x, k2y, k2z = _ecgsyn_deriv(t + 0.5 * h, x + 0.5 * h * k1x, y + 0.5 * h * k1y,
                                      z + 0.5 * h * k1z, w, ti, ai, bi, z0_amp, z0_freq)
        k3x, k3y, k3z = _ecgsyn_deriv(t + 0.5 * h, x + 0.5 * h * k2x, y + 0.5 * h * k2y,
                                      z + 0.5 * h * k2z, w, ti, ai, bi, z0_amp, z0_freq)
        k4x, k4y, k4z = _ecgsyn_deriv(t + h, x + h * k3x, y + h * k3y, z + h * k3z,
                                      w, ti, ai, bi, z0_amp, z0_freq)
        xn = x + h / 6.0 * (k1x + 2 * k2x + 2 * k3x + k4x)
        yn = y + h / 6.0 * (k1y + 2 * k2y + 2 * k3y + k4y)
        zn = z + h / 6.0 * (k1z + 2 * k2z + 2 * k3z + k4z)
        # output samples in [t, t + h): linear interpolation between the steps
        while m < n_out and m / fs_out < t + h:
            f = (m / fs_out - t) * fs_int
            out[m] = z + f * (zn - z)
            m += 1
        x = xn
        y = yn
        z = zn
    while m < n_out:  # caller sizes omega to cover the output; guard anyway
        out[m] = z
        m += 1


@njit(cache=True, nogil=True)
def tachogram_walk_kernel(rr_t, fs_rr, out):
    """Beat-by-beat RR: ``out[k] = RR(t_k)`` (linear interpolation of ``rr_t`` sampled at
    ``fs_rr``), ``t_{k+1} = t_k + out[k]``, ``t_0 = 0``; held at the last value beyond."""
    t = 0.0
    n = rr_t.shape[0]
    for k in range(out.shape[0]):
        x = t * fs_rr
        i = int(x)
        if i >= n - 1:
            v = rr_t[n - 1]
        else:
            f = x - i
            v = rr_t[i] + f * (rr_t[i + 1] - rr_t[i])
        out[k] = v
        t += v
