"""Numba kernels of the motion module, each with a plain NumPy twin (the test oracle).

Every kernel takes its random numbers already drawn (``numpy.random.Generator`` calls
stay in :mod:`cardiosim.motion.simulate`, in the order they always had), and performs the
same floating-point operations in the same order as its twin, so kernel and twin agree
bit for bit (the tests allow 1e-12 relative for other platforms' ``cos``).

Kernels (name -> (kernel, twin) in :data:`KERNELS`):

* ``ou`` -- the exact AR(1) discretisation of a stationary Ornstein-Uhlenbeck process
  (what ``scipy.signal.lfilter([c], [1, -a], e)`` computes, with ``e[:, 0]`` divided by ``c``
  so the process starts in its stationary distribution), scaled by ``sd``;
* ``upsample_linear_add`` -- linear interpolation from the slow grid, added to ``out`` (the
  f76115c kernel, loops swapped; :func:`interpolation_table` holds the same weights);
* ``slow_ou_affine`` -- an affine combination of a few basis signals (e.g. garment rotation,
  breathing stretch, vertical slip for the electrode offsets) plus ``ou`` on the slow grid
  interpolated to the output rate, one output row at a time so it stays in cache: the
  electrode offsets, contact pressure and every slow process in one kernel call each;
* ``breathing`` -- the breathing waveform from the rate-variability process;
* ``breathing_finish`` -- what the batched motion makes of that waveform (chest expansion,
  its centred copy, heart rotation angles, breathing strain and rise), two passes;
* ``slow_ou_affine_sampled`` -- ``slow_ou_affine`` keeping only chosen samples and the row
  sums (the electrode offsets where the lead field is evaluated, and their mean);
* ``add_outer`` -- the log contact pressure's step term, one pass;
* ``accel_finish`` -- the accelerometer's sensor noise added and the float32 cast, one pass;
* ``exp_centred_rows`` -- ``exp`` of rows less their means (the contact pressure), one pass.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from scipy import signal as _signal

from .._exp_kernels import _exp
from .._pairwise_kernels import pairwise_sum_flat


# --- Ornstein-Uhlenbeck recursion ----------------------------------------------------------

@njit(cache=True, nogil=True)
def ou_kernel(e, a, c, sd, out):  # pragma: no cover - compiled
    """``out[r] = sd * y`` with ``y[0] = c * (e[r, 0] / c)``, ``y[t] = c * e[r, t] + a * y[t - 1]``:
    the stationary AR(1) process with pole ``a`` and input gain ``c = sqrt(1 - a^2)`` driven by
    the standard normals ``e [rows, m]`` (not modified). ``out`` may be ``e``."""
    rows, m = e.shape
    for r in range(rows):
        y = c * (e[r, 0] / c)
        out[r, 0] = sd * y
        for t in range(1, m):
            y = c * e[r, t] + a * y
            out[r, t] = sd * y


def ou_ref(e, a, c, sd):
    """NumPy twin of :func:`ou_kernel` (the pre-numba code path, ``scipy.signal.lfilter``)."""
    e = np.array(e, dtype=np.float64)
    e[:, 0] /= c
    return sd * _signal.lfilter([c], [1.0, -a], e, axis=1)


@njit(cache=True, nogil=True)
def upsample_linear_add_kernel(x, ratio, out):  # pragma: no cover - compiled
    """``out[r, t] += x[r, t / ratio]`` (linear interpolation), ``x [rows, m]`` sampled
    ``ratio`` times more slowly than ``out [rows, n]``; needs ``m >= (n - 1) / ratio + 2``."""
    rows, n = out.shape
    for r in range(rows):
        for t in range(n):
            p = t / ratio
            i = int(p)
            w = p - i
            out[r, t] += x[r, i] * (1.0 - w) + x[r, i + 1] * w


def upsample_linear_add_ref(x, ratio, out):
    """NumPy twin of :func:`upsample_linear_add_kernel` (returns the new ``out``)."""
    n = out.shape[1]
    p = np.arange(n) / ratio
    i = p.astype(np.intp)
    w = p - i
    return out + (x[:, i] * (1.0 - w) + x[:, i + 1] * w)


def interpolation_table(n, ratio):
    """``(idx, w0, w1)`` of the linear interpolation from a grid ``ratio`` times coarser to
    ``n`` samples: sample ``t`` lies at ``p = t / ratio``, between slow samples ``idx = int(p)``
    and ``idx + 1`` with weights ``w0 = 1 - w1`` and ``w1 = p - idx`` (the values
    :func:`upsample_linear_add_kernel` computes on the fly). Empty arrays for ``ratio <= 0``
    (no interpolation)."""
    if ratio <= 0:
        return np.zeros(0, dtype=np.intp), np.zeros(0), np.zeros(0)
    p = np.arange(n) / ratio
    idx = p.astype(np.intp)
    w1 = p - idx
    return idx, 1.0 - w1, w1


@njit(cache=True, nogil=True)
def slow_ou_affine_kernel(coef, basis, e, a, c, sd, idx, w0, w1, fill, out):  # pragma: no cover - compiled
    """Affine combination of basis signals plus an Ornstein-Uhlenbeck process, one output
    row at a time in one pass::

        out[r, t] = (((out[r, t] or 0) + coef[r, 0] basis[0, t]) + ... + coef[r, K-1] basis[K-1, t])
                    + (x[idx[t]] w0[t] + x[idx[t] + 1] w1[t]),   x = ou(e[r], a, c, sd)

    summed left to right, zero coefficients skipped. ``out [rows, n]`` starts from 0 if
    ``fill`` else from its values; ``coef [rows, K]``, ``basis [K, n]`` (``K`` may be 0);
    ``e [rows, m]`` standard normals on the slow grid, turned into the process by the
    :func:`ou_kernel` recursion and interpolated with the :func:`interpolation_table`
    ``idx, w0, w1`` (``idx[-1] + 1 < m``); empty tables add the process sample by sample
    (``m == n``)."""
    rows, m = e.shape
    n = out.shape[1]
    n_basis = coef.shape[1]
    direct = idx.size == 0
    # The recursion y <- c e + a y of one row is a chain of dependent multiply-adds (latency
    # bound); advancing all rows together lets the rows' chains overlap. Each row still does
    # the same operations in the same order as ou_kernel.
    x = np.empty((rows, m))
    y = np.empty(rows)
    for r in range(rows):
        y[r] = c * (e[r, 0] / c)
        x[r, 0] = sd * y[r]
    for t in range(1, m):
        for r in range(rows):
            yr = c * e[r, t] + a * y[r]
            y[r] = yr
            x[r, t] = sd * yr
    ks = np.empty(n_basis, dtype=np.intp)
    for r in range(rows):
        nk = 0
        for k in range(n_basis):
            if coef[r, k] != 0.0:  # a zero term is skipped, as the NumPy code it replaces never added it
                ks[nk] = k
                nk += 1
        o = out[r]
        xr = x[r]
        # one pass over the row (not a zeroing pass, a pass per term and an interpolation
        # pass); each sample is still summed left to right from 0.0 (not dropped: 0.0 + -0.0
        # is +0.0) or from its old value
        if nk == 0:
            _affine_row0(o, xr, idx, w0, w1, fill, direct)
        elif nk == 1:
            _affine_row1(o, coef[r, ks[0]], basis[ks[0]], xr, idx, w0, w1, fill, direct)
        elif nk == 2:
            _affine_row2(o, coef[r, ks[0]], basis[ks[0]], coef[r, ks[1]], basis[ks[1]], xr, idx, w0, w1, fill,
                         direct)
        else:
            for t in range(n):
                v = 0.0 if fill else o[t]
                for j in range(nk):
                    v += coef[r, ks[j]] * basis[ks[j], t]
                if direct:
                    v += xr[t]
                else:
                    i = idx[t]
                    v += xr[i] * w0[t] + xr[i + 1] * w1[t]
                o[t] = v


@njit(cache=True, nogil=True, inline="always")
def _affine_row0(o, xr, idx, w0, w1, fill, direct):  # pragma: no cover - compiled
    """Row of :func:`slow_ou_affine_kernel` without basis terms."""
    n = o.size
    if direct:
        for t in range(n):
            v = 0.0 if fill else o[t]
            o[t] = v + xr[t]
    else:
        for t in range(n):
            v = 0.0 if fill else o[t]
            i = idx[t]
            o[t] = v + (xr[i] * w0[t] + xr[i + 1] * w1[t])


@njit(cache=True, nogil=True, inline="always")
def _affine_row1(o, ck, b, xr, idx, w0, w1, fill, direct):  # pragma: no cover - compiled
    """Row of :func:`slow_ou_affine_kernel` with one basis term ``ck * b``."""
    n = o.size
    if direct:
        for t in range(n):
            v = 0.0 if fill else o[t]
            o[t] = (v + ck * b[t]) + xr[t]
    else:
        for t in range(n):
            v = 0.0 if fill else o[t]
            i = idx[t]
            o[t] = (v + ck * b[t]) + (xr[i] * w0[t] + xr[i + 1] * w1[t])


@njit(cache=True, nogil=True, inline="always")
def _affine_row2(o, ck, b, cj, bj, xr, idx, w0, w1, fill, direct):  # pragma: no cover - compiled
    """Row of :func:`slow_ou_affine_kernel` with two basis terms ``ck * b`` then ``cj * bj``."""
    n = o.size
    if direct:
        for t in range(n):
            v = 0.0 if fill else o[t]
            o[t] = ((v + ck * b[t]) + cj * bj[t]) + xr[t]
    else:
        for t in range(n):
            v = 0.0 if fill else o[t]
            i = idx[t]
            o[t] = ((v + ck * b[t]) + cj * bj[t]) + (xr[i] * w0[t] + xr[i + 1] * w1[t])


def slow_ou_affine_ref(coef, basis, e, a, c, sd, idx, w0, w1, fill, out):
    """NumPy twin of :func:`slow_ou_affine_kernel` (updates and returns ``out``)."""
    if fill:
        out[...] = 0.0
    for k in range(coef.shape[1]):
        rows = coef[:, k] != 0.0
        out[rows] += coef[rows, k, None] * basis[k][None, :]
    x = ou_ref(e, a, c, sd)
    if idx.size == 0:
        out += x
    else:
        out += x[:, idx] * w0 + x[:, idx + 1] * w1
    return out


# --- the electrode offsets at the trajectory samples only ---------------------------------------

def pairwise_plan(n):
    """The tree of NumPy's pairwise sum of ``n`` values (``numpy/_core/src/umath/loops_utils.h.src``:
    leaves of at most 128 values; above that the first half is ``n // 2`` rounded down to a
    multiple of 8): ``(leaf_lo, leaf_n, program)``, the leaves in order and the post-order
    program that joins their sums -- ``program[j] >= 0`` pushes leaf ``program[j]``'s sum,
    ``-1`` pops the right then the left sum and pushes ``left + right``."""
    leaf_lo, leaf_n, program = [], [], []

    def walk(lo, m):
        if m <= 128:
            program.append(len(leaf_lo))
            leaf_lo.append(lo)
            leaf_n.append(m)
            return
        m2 = m // 2
        m2 -= m2 % 8
        walk(lo, m2)
        walk(lo + m2, m - m2)
        program.append(-1)

    walk(0, int(n))
    return (np.array(leaf_lo, dtype=np.intp), np.array(leaf_n, dtype=np.intp), np.array(program, dtype=np.intp))


@njit(cache=True, nogil=True)
def slow_ou_affine_sampled_kernel(coef_t, basis, e, a, c, sd, idx, w0, w1, leaf_lo, leaf_n, program, at,
                                  out_at, sums):  # pragma: no cover - compiled
    """:func:`slow_ou_affine_kernel` (``fill=True``, three basis signals) keeping only what
    the caller reads of its ``[rows, n]`` result ``y``: the samples ``out_at[j, r] = y[r, at[j]]``
    (``at`` increasing sample indices, ``out_at [len(at), rows]``) and the row sums
    ``sums[r] = numpy.add.reduce(y[r])`` in NumPy's pairwise order (``leaf_lo, leaf_n,
    program``: :func:`pairwise_plan` ``(n)``). Returns 0, or 1 without results when a basis
    value or coefficient is not finite (the caller then uses :func:`slow_ou_affine_kernel`).

    ``coef_t [3, rows]`` is the transposed ``coef``. The samples are made one pairwise leaf
    (<= 128 samples) at a time into a small ``[samples, rows]`` block, all rows of a sample
    in one vectorised loop (rows padded to a multiple of 8 with zero coefficients), and the leaf is
    summed the same way (eight accumulators per row, as NumPy) while it is in cache: the
    ``[rows, n]`` array (1.2 MB for 10 electrodes x 3 axes x 5,000 samples) and the second
    pass of ``mean`` are never made (0.21 -> 0.09 ms for 9 electrodes x 5,000 samples). A
    row's value at a sample is ``0.0 + coef[r, 0] basis[0, t] + ...`` with all three terms,
    where :func:`slow_ou_affine_kernel` skips zero coefficients: the same bits for finite
    values, since a sum that starts as ``0.0 + x`` is never -0.0, and adding a +-0.0 term to
    a value that is not -0.0 leaves it unchanged."""
    rows = coef_t.shape[1]
    m = e.shape[1]
    n = basis.shape[1]
    direct = idx.size == 0
    for k in range(3):
        for r in range(rows):
            if not np.isfinite(coef_t[k, r]):
                return 1
        for t in range(n):
            if not np.isfinite(basis[k, t]):
                return 1
    rp = (rows + 7) // 8 * 8
    c0 = np.zeros(rp)
    c1 = np.zeros(rp)
    c2 = np.zeros(rp)
    for r in range(rows):
        c0[r], c1[r], c2[r] = coef_t[0, r], coef_t[1, r], coef_t[2, r]
    # the Ornstein-Uhlenbeck recursion of every row (ou_kernel's operations), [slow grid, rows]
    xt = np.zeros((m, rp))
    y = np.empty(rows)
    for r in range(rows):
        y[r] = c * (e[r, 0] / c)
        xt[0, r] = sd * y[r]
    for t in range(1, m):
        for r in range(rows):
            yr = c * e[r, t] + a * y[r]
            y[r] = yr
            xt[t, r] = sd * yr
    blk = np.empty((128, rp))
    acc = np.empty((8, rp))
    n_leaf = leaf_lo.shape[0]
    leaf_sum = np.empty((n_leaf, rp))
    j_at = 0
    for q in range(n_leaf):
        lo, ln = leaf_lo[q], leaf_n[q]
        # (loops over all rows at once vectorise; loops over groups of 8 rows did not)
        for tt in range(ln):
            t = lo + tt
            b0, b1, b2 = basis[0, t], basis[1, t], basis[2, t]
            if direct:
                for r in range(rp):
                    blk[tt, r] = (((0.0 + c0[r] * b0) + c1[r] * b1) + c2[r] * b2) + xt[t, r]
            else:
                i = idx[t]
                a0, a1 = w0[t], w1[t]
                for r in range(rp):
                    blk[tt, r] = (((0.0 + c0[r] * b0) + c1[r] * b1) + c2[r] * b2) + (xt[i, r] * a0 + xt[i + 1, r] * a1)
        # the leaf's sum per row: NumPy's leaf (a plain loop below 8 values, else eight
        # accumulators over samples j, j + 8, ..., joined pairwise, then the tail)
        if ln < 8:
            for r in range(rp):
                leaf_sum[q, r] = 0.0
            for tt in range(ln):
                for r in range(rp):
                    leaf_sum[q, r] += blk[tt, r]
        else:
            for j in range(8):
                for r in range(rp):
                    acc[j, r] = blk[j, r]
            stop = ln - ln % 8
            tt = 8
            while tt < stop:
                for j in range(8):
                    for r in range(rp):
                        acc[j, r] += blk[tt + j, r]
                tt += 8
            for r in range(rp):
                leaf_sum[q, r] = ((acc[0, r] + acc[1, r]) + (acc[2, r] + acc[3, r])) + \
                    ((acc[4, r] + acc[5, r]) + (acc[6, r] + acc[7, r]))
            while tt < ln:
                for r in range(rp):
                    leaf_sum[q, r] += blk[tt, r]
                tt += 1
        while j_at < at.shape[0] and at[j_at] < lo + ln:
            tt = at[j_at] - lo
            for r in range(rows):
                out_at[j_at, r] = blk[tt, r]
            j_at += 1
    # join the leaves' sums as the recursion does (left + right), every row at once
    stack = np.empty((program.shape[0], rp))
    depth = 0
    for op in program:
        if op >= 0:
            for r in range(rp):
                stack[depth, r] = leaf_sum[op, r]
            depth += 1
        else:
            depth -= 1
            for r in range(rp):
                stack[depth - 1, r] = stack[depth - 1, r] + stack[depth, r]
    for r in range(rows):
        sums[r] = 0.0 + stack[0, r]
    return 0


def slow_ou_affine_sampled_ref(coef_t, basis, e, a, c, sd, idx, w0, w1, at):
    """NumPy twin of :func:`slow_ou_affine_sampled_kernel`: ``(out_at, sums)`` of the whole
    ``[rows, n]`` result of :func:`slow_ou_affine_ref` (no pairwise plan: NumPy's own sum)."""
    coef = np.ascontiguousarray(np.asarray(coef_t).T)
    full = slow_ou_affine_ref(coef, basis, e, a, c, sd, idx, w0, w1, True, np.empty((coef.shape[0], basis.shape[1])))
    return np.ascontiguousarray(full[:, at].T), np.add.reduce(full, axis=1)


# --- contact pressure and accelerometer: the passes after the draws ---------------------------

@njit(cache=True, nogil=True)
def add_outer_kernel(x, h, sig, k):  # pragma: no cover - compiled
    """``x[r, t] += (h[r] * sig[t]) * k`` in place, one pass (NumPy's
    ``x += h[:, None] * sig[None, :] * k`` makes two ``x``-sized temporaries): the log contact
    pressure's step term."""
    rows, n = x.shape
    for r in range(rows):
        hr = h[r]
        for t in range(n):
            x[r, t] = x[r, t] + (hr * sig[t]) * k


def add_outer_ref(x, h, sig, k):
    """NumPy twin of :func:`add_outer_kernel` (updates and returns ``x``)."""
    x += h[:, None] * sig[None, :] * k
    return x


@njit(cache=True, nogil=True)
def accel_finish_kernel(acc, noise, scale, out):  # pragma: no cover - compiled
    """``out = float32(acc + noise * scale)`` in one pass (``noise *= scale; acc += noise;
    acc.astype(float32)`` without the three passes); ``acc``, ``noise`` ``[3, T]`` float64
    are not modified."""
    rows, n = acc.shape
    for r in range(rows):
        for t in range(n):
            out[r, t] = np.float32(acc[r, t] + noise[r, t] * scale)


def accel_finish_ref(acc, noise, scale):
    """NumPy twin of :func:`accel_finish_kernel` (returns the float32 array)."""
    return (acc + noise * scale).astype(np.float32)


@njit(cache=True, nogil=True)
def exp_centred_rows_kernel(x, mean, tab):  # pragma: no cover - compiled
    """``x[r] = exp(x[r] - mean[r])`` in place, one pass (``x -= mean[:, None]; np.exp(x, out=x)``
    without the subtraction's pass), by :func:`cardiosim._exp_kernels._exp` on ``tab``
    (:func:`~cardiosim._exp_kernels.np_exp_table`; empty: ``math.exp``): the contact
    pressure from its log. ``np.exp``'s numbers only with a non-empty table (the batch then
    calls it; with an empty one it runs the NumPy twin, as on AVX-512 machines)."""
    rows, n = x.shape
    for r in range(rows):
        m = mean[r]
        for t in range(n):
            x[r, t] = _exp(x[r, t] - m, tab)


def exp_centred_rows_ref(x, mean, tab=None):
    """NumPy twin of :func:`exp_centred_rows_kernel` (returns the new array; ``tab`` unused)."""
    y = x - np.asarray(mean)[:, None]
    return np.exp(y, out=y)


# --- breathing waveform ------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def breathing_finish_kernel(b01, depth, rot_amp, strain, rise, breath, bc, heart, basis):  # pragma: no cover - compiled
    """One record's arrays made from its breathing waveform ``b01 [n]`` in two passes (the
    batched motion's nine NumPy passes over ``[records, n]`` arrays, and its two reductions)::

        breath = depth * b01
        bc = breath - breath.mean()                  # NumPy's pairwise sum, / n
        heart[i] = rot_amp[i] * ((2.0 * b01) - 1.0)  # i = 0, 1, 2
        basis[1] = (breath - breath.min()) * strain  # min: NaN if any value is NaN
        basis[2] = basis[2] + rise * breath

    ``breath``, ``bc`` ``[n]``, ``heart [3, n]`` and ``basis [3, n]`` (row 2 read) are written."""
    n = b01.shape[0]
    mn = depth * b01[0]
    nan = False
    for t in range(n):
        v = depth * b01[t]
        breath[t] = v
        if v < mn:
            mn = v
        elif v != v:
            nan = True
    if nan:
        mn = np.nan
    mean = (0.0 + pairwise_sum_flat(breath, 0, n)) / n
    r0, r1, r2 = rot_amp[0], rot_amp[1], rot_amp[2]
    for t in range(n):
        v = breath[t]
        bc[t] = v - mean
        tb = 2.0 * b01[t] - 1.0
        heart[0, t] = r0 * tb
        heart[1, t] = r1 * tb
        heart[2, t] = r2 * tb
        basis[1, t] = (v - mn) * strain
        basis[2, t] = basis[2, t] + rise * v


def breathing_finish_ref(b01, depth, rot_amp, strain, rise, basis):
    """NumPy twin of :func:`breathing_finish_kernel` (the batched motion's passes, on one
    record's ``[1, n]`` rows): returns ``(breath, bc, heart, basis)``, ``basis`` a new array."""
    b01 = np.asarray(b01, dtype=np.float64)[None, :]
    breath = np.multiply(np.array([depth])[:, None], b01)
    bc = breath - breath.mean(axis=1, keepdims=True)
    two_b = np.multiply(2, b01)
    two_b -= 1
    heart = np.asarray(rot_amp)[:, None] * two_b[0][None, :]
    basis = np.array(basis, dtype=np.float64)
    basis[1] = (breath - breath.min(axis=1, keepdims=True))[0]
    basis[1] *= strain
    basis[2] += np.multiply(rise, breath)[0]
    return breath[0], bc[0], heart, basis



@njit(cache=True, nogil=True)
def breathing_kernel(rv, rate_hz, fs, phase0, ti, b, cyc):  # pragma: no cover - compiled
    """Breathing waveform: instantaneous rate ``rate_hz * max(0.2, 1 + rv[t])``, cycle count
    ``cyc[t] = cumsum(rate)[t] / fs + phase0``, and ``b[t]`` in [0, 1] a half-cosine rise over
    the first ``ti`` of each cycle and a half-cosine fall over the rest."""
    s = 0.0
    for t in range(rv.size):
        s += rate_hz * max(0.2, 1.0 + rv[t])
        q = s / fs + phase0
        cyc[t] = q
        u = q % 1.0
        if u < ti:
            b[t] = 0.5 * (1 - np.cos(np.pi * u / ti))
        else:
            b[t] = 0.5 * (1 + np.cos(np.pi * (u - ti) / (1 - ti)))


def breathing_ref(rv, rate_hz, fs, phase0, ti):
    """NumPy twin of :func:`breathing_kernel`; returns ``(b, cyc)``."""
    inst = rate_hz * np.maximum(0.2, 1.0 + rv)
    cyc = np.cumsum(inst) / fs + phase0
    u = cyc % 1.0
    b = np.where(u < ti, 0.5 * (1 - np.cos(np.pi * u / ti)), 0.5 * (1 + np.cos(np.pi * (u - ti) / (1 - ti))))
    return b, cyc


KERNELS = {
    "ou": (ou_kernel, ou_ref),
    "upsample_linear_add": (upsample_linear_add_kernel, upsample_linear_add_ref),
    "slow_ou_affine": (slow_ou_affine_kernel, slow_ou_affine_ref),
    "breathing": (breathing_kernel, breathing_ref),
    "slow_ou_affine_sampled": (slow_ou_affine_sampled_kernel, slow_ou_affine_sampled_ref),
    "add_outer": (add_outer_kernel, add_outer_ref),
    "accel_finish": (accel_finish_kernel, accel_finish_ref),
    "breathing_finish": (breathing_finish_kernel, breathing_finish_ref),
    "exp_centred_rows": (exp_centred_rows_kernel, exp_centred_rows_ref),
}
