"""Numba kernels of the QRS detector, each with a plain NumPy/SciPy twin (the test oracle)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _df2t_order4_lanes(b, a, zi, v):  # pragma: no cover - compiled
    """In-place direct-form-II-transposed IIR pass (4th order, SciPy's ``lfilter`` operation
    order) down the rows of ``v [T, lanes]``, each column an independent signal started from
    ``zi * v[0, lane]``. Columns side by side let the CPU overlap the recursions."""
    ne, nl = v.shape
    z0 = np.empty(nl)
    z1 = np.empty(nl)
    z2 = np.empty(nl)
    z3 = np.empty(nl)
    for j in range(nl):
        z0[j] = zi[0] * v[0, j]
        z1[j] = zi[1] * v[0, j]
        z2[j] = zi[2] * v[0, j]
        z3[j] = zi[3] * v[0, j]
    b0, b1, b2, b3, b4 = b[0], b[1], b[2], b[3], b[4]
    a1, a2, a3, a4 = a[1], a[2], a[3], a[4]
    for i in range(ne):
        for j in range(nl):
            xn = v[i, j]
            yn = z0[j] + b0 * xn
            z0[j] = z1[j] + xn * b1 - yn * a1
            z1[j] = z2[j] + xn * b2 - yn * a2
            z2[j] = z3[j] + xn * b3 - yn * a3
            z3[j] = xn * b4 - yn * a4
            v[i, j] = yn


@njit(cache=True, nogil=True)
def filtfilt_kernel(b, a, zi, x, pad, out):  # pragma: no cover - compiled
    """Zero-phase IIR filtering of each row of ``x [rows, T]`` into ``out [rows, T]``, as
    ``scipy.signal.filtfilt(b, a, x, axis=-1, padtype="odd", padlen=pad)`` does: odd
    extension by ``pad`` samples at each end, a forward and a backward direct-form-II-
    transposed pass (SciPy's operation order) started from the step-response steady state
    ``zi`` (``scipy.signal.lfilter_zi``) scaled by the first sample of each pass.
    ``b``, ``a`` of length 5 (4th order) with ``a[0] == 1``; ``zi`` of length 4; ``0 < pad < T``."""
    rows, n = x.shape
    ne = n + 2 * pad
    fwd = np.empty((ne, rows))
    for r in range(rows):
        x0 = x[r, 0]
        x1 = x[r, n - 1]
        for i in range(pad):
            fwd[i, r] = 2 * x0 - x[r, pad - i]
            fwd[pad + n + i, r] = 2 * x1 - x[r, n - 2 - i]
        for i in range(n):
            fwd[pad + i, r] = x[r, i]
    _df2t_order4_lanes(b, a, zi, fwd)
    bwd = np.empty((ne, rows))
    for i in range(ne):
        for r in range(rows):
            bwd[i, r] = fwd[ne - 1 - i, r]
    _df2t_order4_lanes(b, a, zi, bwd)
    for r in range(rows):
        for i in range(n):
            out[r, i] = bwd[ne - 1 - pad - i, r]


def filtfilt_ref(b, a, zi, x, pad):
    """SciPy twin of :func:`filtfilt_kernel` (``zi`` is SciPy's own ``lfilter_zi``)."""
    from scipy import signal as _signal  # lazy: scipy.signal costs ~1.5 s to import

    return _signal.filtfilt(b, a, x, axis=-1, padtype="odd", padlen=pad)


KERNELS = {"filtfilt": (filtfilt_kernel, filtfilt_ref)}
