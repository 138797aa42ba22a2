"""Numba kernels of the motion module, each with a plain NumPy twin (the test oracle)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def upsample_linear_add_kernel(x, ratio, out):  # pragma: no cover - compiled
    """``out[r, t] += x[r, t / ratio]`` (linear interpolation), ``x [rows, m]`` sampled
    ``ratio`` times more slowly than ``out [rows, n]``; needs ``m >= (n - 1) / ratio + 2``."""
    rows, n = out.shape
    for t in range(n):
        p = t / ratio
        i = int(p)
        w = p - i
        for r in range(rows):
            out[r, t] += x[r, i] * (1.0 - w) + x[r, i + 1] * w


def upsample_linear_add_ref(x, ratio, out):
    """NumPy twin of :func:`upsample_linear_add_kernel` (returns the new ``out``)."""
    n = out.shape[1]
    p = np.arange(n) / ratio
    i = p.astype(np.intp)
    w = p - i
    return out + x[:, i] * (1.0 - w) + x[:, i + 1] * w


KERNELS = {"upsample_linear_add": (upsample_linear_add_kernel, upsample_linear_add_ref)}
