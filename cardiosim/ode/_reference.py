"""Plain NumPy twins of the kernels in ``_kernels.py`` (same names, same arguments).

Written independently of the loops (vectorised where the kernel loops) and used as the
test oracle; also the fallback to read when checking what a kernel computes.
"""

from __future__ import annotations

import numpy as np

TWO_PI = 2.0 * np.pi


def phase_kernel(r_times, t0, fs, out):
    t = t0 + np.arange(out.shape[0]) / fs
    k = np.clip(np.searchsorted(r_times, t, side="right") - 1, 0, len(r_times) - 2)
    out[:] = TWO_PI * (k + (t - r_times[k]) / (r_times[k + 1] - r_times[k]))


def gaussian_sum_kernel(phase, centres, widths, amps, chans, cutoff, out):
    for c, b, a, ch in zip(centres, widths, amps, chans):
        lo, hi = np.searchsorted(phase, [c - cutoff * b, c + cutoff * b], side="left")
        out[ch, lo:hi] += a * np.exp(-0.5 * ((phase[lo:hi] - c) / b) ** 2)


def gaussian_sum_parallel_kernel(phase, centres, widths, amps, chans, cutoff, out):
    gaussian_sum_kernel(phase, centres, widths, amps, chans, cutoff, out)


def batch_dipole_kernel(r_times, r_offsets, t0, fs, centres, widths, amps, chans, g_offsets, cutoff,
                        phase, out):
    for i in range(out.shape[0]):
        phase_kernel(r_times[r_offsets[i]:r_offsets[i + 1]], t0, fs, phase[i])
        sl = slice(g_offsets[i], g_offsets[i + 1])
        gaussian_sum_kernel(phase[i], centres[sl], widths[sl], amps[sl], chans[sl], cutoff, out[i])


def _deriv(t, s, w, ti, ai, bi, z0_amp, z0_freq):
    x, y, z = s
    a0 = 1.0 - np.hypot(x, y)
    d = np.arctan2(y, x) - ti
    d = d - np.round(d / TWO_PI) * TWO_PI
    dz = -np.sum(ai * d * np.exp(-0.5 * (d / bi) ** 2)) - (z - z0_amp * np.sin(TWO_PI * z0_freq * t))
    return np.array([a0 * x - w * y, a0 * y + w * x, dz])


def ecgsyn_kernel(omega, fs_int, ti, ai, bi, x0, z0_amp, z0_freq, fs_out, out):
    h = 1.0 / fs_int
    s = np.array(x0, dtype=float)
    zs = np.empty(omega.shape[0] + 1)
    zs[0] = s[2]
    for n, w in enumerate(omega):
        t = n * h
        k1 = _deriv(t, s, w, ti, ai, bi, z0_amp, z0_freq)
        k2 = _deriv(t + h / 2, s + h / 2 * k1, w, ti, ai, bi, z0_amp, z0_freq)
        k3 = _deriv(t + h / 2, s + h / 2 * k2, w, ti, ai, bi, z0_amp, z0_freq)
        k4 = _deriv(t + h, s + h * k3, w, ti, ai, bi, z0_amp, z0_freq)
        s = s + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        zs[n + 1] = s[2]
    t_int = np.arange(zs.shape[0]) * h
    out[:] = np.interp(np.arange(out.shape[0]) / fs_out, t_int, zs)


def tachogram_walk_kernel(rr_t, fs_rr, out):
    grid = np.arange(rr_t.shape[0]) / fs_rr
    t = 0.0
    for k in range(out.shape[0]):
        out[k] = np.interp(t, grid, rr_t)
        t += out[k]
