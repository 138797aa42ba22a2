"""NumPy's pairwise summation as numba kernels (rank 0: every layer's kernels may use them).

``numpy.add.reduce`` of a contiguous float64 array (and so ``np.sum`` / ``np.mean`` along its
last axis) adds in a fixed tree: blocks of at most 128 values with eight accumulators, halves
rounded to multiples of 8 above that, a plain loop below 8. Kernels that must give NumPy's sums
bit for bit (the noise stage's SNR chunks and grades, the ODE's RR-series centring) call these.
``tests/test_noise_kernels.py`` compares them with ``np.add.reduce``.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def pairwise_sum(a, lo, n):  # pragma: no cover - compiled
    """``numpy.add.reduce`` of ``a[lo:lo + n]`` (float64, contiguous) in NumPy's order: its
    pairwise summation (blocks of at most 128 with eight accumulators, split in halves
    rounded to multiples of 8 above that; a plain loop below 8), added to 0.0 -- the sum
    NumPy gives along the last axis of an array, bit for bit (``tests/test_noise_kernels.py``)."""
    if n <= 128:
        return pairwise_leaf(a, lo, n)
    n2 = n // 2
    n2 -= n2 % 8
    return pairwise_sum(a, lo, n2) + pairwise_sum(a, lo + n2, n - n2)


@njit(cache=True, nogil=True)
def pairwise_leaf(a, lo, n):  # pragma: no cover - compiled
    """A leaf of NumPy's pairwise sum: at most 128 values, eight accumulators (a plain loop
    below 8), no split; :func:`pairwise_sum` and :func:`pairwise_sum_flat` both end in it."""
    if n < 8:
        res = 0.0
        for i in range(n):
            res += a[lo + i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = 8
    stop = n - n % 8
    while i < stop:
        r0 += a[lo + i]
        r1 += a[lo + i + 1]
        r2 += a[lo + i + 2]
        r3 += a[lo + i + 3]
        r4 += a[lo + i + 4]
        r5 += a[lo + i + 5]
        r6 += a[lo + i + 6]
        r7 += a[lo + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@njit(cache=True, nogil=True)
def pairwise_sum_flat(a, lo, n):  # pragma: no cover - compiled
    """:func:`pairwise_sum` without recursion (the same tree of additions, walked with an
    explicit stack): numba cannot load from its cache a kernel that calls the recursive one
    ("unresolved symbol"), and kernels here are cached."""
    if n <= 128:
        return pairwise_leaf(a, lo, n)
    task_lo = np.empty(128, dtype=np.int64)
    task_n = np.empty(128, dtype=np.int64)
    task_join = np.empty(128, dtype=np.bool_)
    vals = np.empty(128)
    nt, nv = 1, 0
    task_lo[0], task_n[0], task_join[0] = lo, n, False
    while nt > 0:
        nt -= 1
        tl, tn, join = task_lo[nt], task_n[nt], task_join[nt]
        if join:                      # both halves summed: left + right, as the recursion adds them
            right = vals[nv - 1]
            left = vals[nv - 2]
            nv -= 2
            vals[nv] = left + right
            nv += 1
        elif tn <= 128:
            vals[nv] = pairwise_leaf(a, tl, tn)
            nv += 1
        else:
            n2 = tn // 2
            n2 -= n2 % 8
            task_lo[nt], task_n[nt], task_join[nt] = tl, tn, True
            task_lo[nt + 1], task_n[nt + 1], task_join[nt + 1] = tl + n2, tn - n2, False
            task_lo[nt + 2], task_n[nt + 2], task_join[nt + 2] = tl, n2, False
            nt += 3
    return vals[0]
