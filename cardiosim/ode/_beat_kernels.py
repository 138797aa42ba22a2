"""Numba kernels of the beat template's own measures (``model.Patient.render`` and
``Patient.span_of``), bit for bit with their NumPy twins.

Drawing a patient of a non-normal class re-renders its template a dozen times (spans,
peak vectors, the QRS axis); in NumPy each render costs a few hundred microseconds of
array temporaries and call overhead. These kernels do the same arithmetic in the same
order — ``exp(-0.5 * ((t - tau) / sigma) ** 2)`` summed over the slots as ``np.einsum``
sums them (``0 + a_0 g_0 + a_1 g_1 + ...``), ``np.gradient``'s differences divided by
``2 dx`` / ``dx``, ``np.linalg.norm``'s ``sqrt((x0² + x1²) + x2²)`` — so their results are
the NumPy twins' bit for bit *where the C library's ``exp`` is NumPy's* (NumPy's own SIMD
``exp`` is used on AVX-512 machines). ``model`` therefore uses them only after
:func:`matches_numpy` has checked them against the twins on this machine (once per
process); else the NumPy code runs as before. Where only ``exp`` differs (NumPy's SIMD
``exp`` on AVX-512 machines is Intel's SVML, not the C library's), :func:`render_hybrid`
keeps NumPy's ``exp`` and does the rest in kernels: :func:`gauss_arg_kernel` writes the
exponents ``-0.5 * d²`` (the same IEEE operations NumPy's ufuncs do), ``np.exp`` runs in
place, :func:`weighted_sum_kernel` sums the slots in ``np.einsum``'s order. The twins are :func:`render_numpy`,
:func:`speed_numpy`, :func:`magnitude_numpy` (``Patient``'s own code) and
``tests/test_ode_beat_kernels.py`` asserts equality.

API (typed, small; callers validate): ``render_kernel(t, tau, sigma, amp, idx, f_repol,
repol, out, q=0.0)``, ``render_exp_kernel(t, tau, sigma, amp, idx, f_repol, repol, out, q,
tab)`` (the same with glibc's ``exp`` inline, :func:`render_exp_kernel`; ``tab`` may also be
NumPy's own ``exp`` loop as ``(function, data)``, see :func:`_exp_add`), ``render_hybrid(t,
tau, sigma, amp, idx, f_repol, repol, q=0.0) -> (3, n)``, ``bounds_kernel(tau, sigma, amp,
idx, f_repol, repol, q=0.0) -> (lo, hi, max |amp|)`` (``q``: the time, s from R, the scaled ST-T slots' centres are scaled about,
the patient's QRS onset), ``speed_kernel(v, dx, out)``, ``magnitude_kernel(v, out)``,
``first_last_kernel(m, rel) -> (i0, i1)``.
"""

from __future__ import annotations

import math

import llvmlite.ir as ir
import numpy as np
from numba import njit, types
from numba.core import cgutils
from numba.core.extending import intrinsic, overload

from ._kernels import (EXP_C2, EXP_C3, EXP_C4, EXP_C5, EXP_INV_LN2_N, EXP_NEG_LN2_HI_N, EXP_NEG_LN2_LO_N,
                       EXP_SHIFT, _first_last, exp_table)
from .._exp_kernels import _exp_main, _fma, _ufunc_loop


@njit(cache=True, nogil=True)
def render_kernel(t, tau, sigma, amp, idx, f_repol, repol, out, q=0.0):
    """``out (3, n) = einsum("ai,ait->at", amp[:, idx], exp(-0.5 * ((t - tau_s) / sigma_s) ** 2))``
    with ``sigma_s = sigma f`` and ``tau_s = tau f + q (1 - f)`` (the centre scaled about
    ``q``, the patient's QRS onset, ``model.scaled_timing``), ``f = f_repol`` on the slots
    where ``repol`` is true, else 1.0 (exact: ``tau * 1.0 + q * 0.0 == tau``)."""
    n = t.shape[0]
    for a in range(3):
        for k in range(n):
            out[a, k] = 0.0
        for j in range(idx.shape[0]):
            i = idx[j]
            f = f_repol if repol[i] else 1.0
            c = tau[a, i] * f + q * (1.0 - f)
            s = sigma[a, i] * f
            w = amp[a, i]
            for k in range(n):
                d = (t[k] - c) / s
                out[a, k] = out[a, k] + w * math.exp(-0.5 * (d * d))


EXP_LANES = 4


@intrinsic
def _exp_main_run(typingctx, xs, g, n4, tab):
    """``g[k] = _exp_main(xs[k], tab)`` for ``k < 4 n4``, four lanes at a time as LLVM
    vector operations (numba's loop vectoriser left the scalar loop scalar: the table
    look-ups are gathers). Each lane does the scalar code's IEEE operations in its order
    (``llvm.fma`` where it fuses, no fast-math flags): the same bits. ``xs``, ``g``:
    contiguous float64 arrays of at least ``4 n4``; ``tab``: contiguous uint64 of 256
    (indices are masked to it)."""
    arr = types.Array(types.float64, 1, "C")
    if not (xs == arr and g == arr and isinstance(n4, types.Integer)
            and isinstance(tab, types.Array) and tab.dtype == types.uint64 and tab.ndim == 1):
        return None
    sig = types.void(xs, g, types.intp, tab)

    def codegen(context, builder, signature, args):
        xs_v, g_v, n_v, tab_v = args
        xp = context.make_array(signature.args[0])(context, builder, xs_v).data
        gp = context.make_array(signature.args[1])(context, builder, g_v).data
        tp = context.make_array(signature.args[3])(context, builder, tab_v).data
        d = ir.DoubleType()
        i64 = ir.IntType(64)
        i32 = ir.IntType(32)
        vd = ir.VectorType(d, EXP_LANES)
        vi = ir.VectorType(i64, EXP_LANES)
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vd, [vd, vd, vd]),
                                             f"llvm.fma.v{EXP_LANES}f64")

        def splat(c, ty):
            return ir.Constant(ty, [ir.Constant(ty.element, c)] * EXP_LANES)

        c_inv, c_shift = splat(EXP_INV_LN2_N, vd), splat(EXP_SHIFT, vd)
        c_hi, c_lo = splat(EXP_NEG_LN2_HI_N, vd), splat(EXP_NEG_LN2_LO_N, vd)
        c2, c3, c4, c5 = (splat(c, vd) for c in (EXP_C2, EXP_C3, EXP_C4, EXP_C5))
        m7f, one, s45 = splat(0x7F, vi), splat(1, vi), splat(45, vi)
        n = builder.sext(n_v, i64) if n_v.type.width < 64 else n_v
        pre = builder.block
        loop = builder.append_basic_block("exp4.loop")
        done = builder.append_basic_block("exp4.done")
        builder.cbranch(builder.icmp_signed(">", n, ir.Constant(i64, 0)), loop, done)
        builder.position_at_end(loop)
        j = builder.phi(i64)
        off = builder.mul(j, ir.Constant(i64, EXP_LANES))
        x = builder.load(builder.bitcast(builder.gep(xp, [off]), vd.as_pointer()), align=8)
        kd = builder.call(fma, [x, c_inv, c_shift])
        ki = builder.bitcast(kd, vi)
        kd = builder.fsub(kd, c_shift)
        r = builder.call(fma, [kd, c_hi, x])
        r = builder.call(fma, [kd, c_lo, r])
        idx = builder.shl(builder.and_(ki, m7f), one)
        tail = ir.Constant(vi, ir.Undefined)
        sc = ir.Constant(vi, ir.Undefined)
        for lane in range(EXP_LANES):
            k = builder.extract_element(idx, ir.Constant(i32, lane))
            tail = builder.insert_element(tail, builder.load(builder.gep(tp, [k])), ir.Constant(i32, lane))
            k1 = builder.add(k, ir.Constant(i64, 1))
            sc = builder.insert_element(sc, builder.load(builder.gep(tp, [k1])), ir.Constant(i32, lane))
        tail = builder.bitcast(tail, vd)
        scale = builder.bitcast(builder.add(sc, builder.shl(ki, s45)), vd)
        r2 = builder.fmul(r, r)
        tmp = builder.call(fma, [builder.call(fma, [r, c3, c2]), r2, builder.fadd(r, tail)])
        tmp = builder.call(fma, [builder.fmul(r2, r2), builder.call(fma, [r, c5, c4]), tmp])
        out = builder.call(fma, [scale, tmp, scale])
        builder.store(out, builder.bitcast(builder.gep(gp, [off]), vd.as_pointer()), align=8)
        j_next = builder.add(j, ir.Constant(i64, 1))
        j.add_incoming(ir.Constant(i64, 0), pre)
        j.add_incoming(j_next, loop)
        builder.cbranch(builder.icmp_signed("<", j_next, n), loop, done)
        builder.position_at_end(done)
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, nogil=True)
def exp_lanes_kernel(x, tab, out):
    """``out[k] = math.exp(x[k])`` through :func:`_exp_main_run` (the lanes) and
    :func:`_exp_main` (the tail) where ``2^-54 <= |x[k]| < 512``, ``math.exp`` elsewhere:
    the tests' entry to the vector form."""
    n = x.shape[0]
    xs = np.ascontiguousarray(x)
    n4 = n // EXP_LANES
    _exp_main_run(xs, out, n4, tab)
    for k in range(n4 * EXP_LANES, n):
        out[k] = _exp_main(xs[k], tab)
    for k in range(n):
        if not (EXP_TINY <= abs(xs[k]) < 512.0):
            out[k] = math.exp(xs[k])


EXP_TINY = 2.0 ** -54  # below this magnitude (and from 512 up) _kernels._exp calls math.exp
EXP_ZERO = -746.0  # math.exp is +0.0 below -745.14: adding w * 0.0 leaves a sum unchanged


# --- the exp source of the fused renders -----------------------------------------------
# The kernels below that render (``_render_exp``, ``_slot_exps``) take their ``exp`` from
# ``ex``: either glibc's table (uint64[256], ``_kernels.exp_table()``: the C library's
# ``exp`` inline, where it is NumPy's) or NumPy's own ``exp`` loop as a tuple ``(function,
# data)`` of addresses (``_plan_kernels.ufunc_loops()[:2]``: on AVX-512 machines NumPy's
# ``exp`` is its SIMD loop, not the C library's; the loop is called on each slot's row of
# exponents, elementwise the same numbers as ``np.exp`` of the whole array). numba compiles
# one specialisation per source; ``model._render_exp_table`` checks the one it hands out.
def _exp_add(xs, g, n, ex, out, a, w):  # pragma: no cover - numba overload below
    """``out[a, :n] += w * exp(xs[:n])`` as the render's NumPy twin sums it (``g``: work)."""


@overload(_exp_add, inline="always")
def _exp_add_ov(xs, g, n, ex, out, a, w):
    if isinstance(ex, types.BaseTuple):
        def impl(xs, g, n, ex, out, a, w):
            if n > 0:
                _ufunc_loop(ex[0], ex[1], xs.ctypes.data, g.ctypes.data, 0, n, 8, 8, 0)
            for k in range(n):
                out[a, k] = out[a, k] + w * g[k]
        return impl

    def impl_tab(xs, g, n, ex, out, a, w):
        n4 = n // EXP_LANES
        _exp_main_run(xs, g, n4, ex)
        for k in range(n4 * EXP_LANES, n):
            g[k] = _exp_main(xs[k], ex)
        for k in range(n):
            x = xs[k]
            if not (-512.0 < x <= -EXP_TINY):  # (a NaN exponent lands here too: math.exp)
                if x < EXP_ZERO:
                    continue
                g[k] = math.exp(x)
            out[a, k] = out[a, k] + w * g[k]
    return impl_tab


def _exp_fill(x, y, n, ex):  # pragma: no cover - numba overload below
    """``y[:n] = exp(x[:n])``, except that ``y`` is +0.0 where ``x < EXP_ZERO`` (the table
    form leaves those to ``math.exp``'s +0.0; NumPy's loop gives +0.0 there, which
    ``model._render_exp_table`` checks before handing the loop out)."""


@overload(_exp_fill, inline="always")
def _exp_fill_ov(x, y, n, ex):
    if isinstance(ex, types.BaseTuple):
        def impl(x, y, n, ex):
            if n > 0:
                _ufunc_loop(ex[0], ex[1], x.ctypes.data, y.ctypes.data, 0, n, 8, 8, 0)
        return impl

    def impl_tab(x, y, n, ex):
        n4 = n // EXP_LANES
        _exp_main_run(x, y, n4, ex)
        for k in range(n4 * EXP_LANES, n):
            y[k] = _exp_main(x[k], ex)
        for k in range(n):
            xk = x[k]
            if not (-512.0 < xk <= -EXP_TINY):
                y[k] = 0.0 if xk < EXP_ZERO else math.exp(xk)
    return impl_tab


@njit(nogil=True, inline="always")
def _render_exp(t, tau, sigma, amp, idx, f_repol, repol, out, q, tab, xs, g):
    """:func:`render_exp_kernel`'s body (``xs``, ``g``: work arrays of ``len(t)``).

    A slot whose amplitude is zero on an axis is skipped there when its Gaussian is finite
    on every sample (no NaN time, a finite centre, a positive width: ``g`` in [0, 1]): it
    would add ``±0.0`` to sums that are never ``-0.0``, leaving them as they are (the
    bundle-branch blocks and ectopic beats silence half their slots)."""
    n = t.shape[0]
    t_ok = True
    for k in range(n):
        if t[k] != t[k]:
            t_ok = False
            break
    for a in range(3):
        for k in range(n):
            out[a, k] = 0.0
        for j in range(idx.shape[0]):
            i = idx[j]
            f = f_repol if repol[i] else 1.0
            c = tau[a, i] * f + q * (1.0 - f)
            s = sigma[a, i] * f
            w = amp[a, i]
            if w == 0.0 and t_ok and s > 0.0 and -math.inf < c < math.inf:
                continue
            for k in range(n):
                d = (t[k] - c) / s
                xs[k] = -0.5 * (d * d)
            _exp_add(xs, g, n, tab, out, a, w)


@njit(cache=True, nogil=True)
def render_exp_kernel(t, tau, sigma, amp, idx, f_repol, repol, out, q, tab):
    """:func:`render_kernel` bit for bit with ``math.exp`` as glibc computes it, inline
    (``tab``: ``_kernels.exp_table()``, which is non-empty only where that algorithm gave
    ``math.exp`` bit for bit here; callers pass it only then). Per slot the exponents go
    into a buffer, the table path of every sample runs branch-free, and a second pass
    takes ``math.exp`` where the exponent is outside the table's range and skips
    exponents whose ``exp`` is +0.0 (the sum starts at +0.0, so it is never -0.0 and
    adding a zero leaves it as it is): the same products and sums in the same order as
    :func:`render_kernel`."""
    n = t.shape[0]
    _render_exp(t, tau, sigma, amp, idx, f_repol, repol, out, q, tab, np.empty(n), np.empty(n))


@njit(cache=True, nogil=True, inline="always")
def _grid(lo, step, n):
    """``np.arange(lo, lo + n step, step)``'s ``n >= 2`` samples as NumPy fills them
    (``lo + i * (t[1] - t[0])`` with ``t[1] = lo + step``)."""
    t = np.empty(n)
    t[0] = lo
    t[1] = lo + step
    delta = t[1] - t[0]
    for i in range(2, n):
        t[i] = lo + i * delta
    return t


@njit(cache=True, nogil=True)
def span_kernel(tau, sigma, amp, idx, f_repol, repol, q, fs, rel, qrs, tab):
    """``Patient.span`` of the slots ``idx`` in one call: its ``Patient.track`` (bounds as
    :func:`bounds_kernel`, the grid as ``np.arange(lo, hi, 1 / fs)`` fills it: ``lo``,
    ``lo + step``, then ``lo + i (t[1] - t[0])``), the render as :func:`render_exp_kernel`
    (``tab`` as there), and ``Patient.span_of``: the spatial velocity (``qrs``,
    :func:`speed_kernel`) or magnitude (:func:`magnitude_kernel`) and the first and last
    samples at ``rel`` of its peak (:func:`first_last_kernel`).

    Returns ``(status, start s, end s)``: status 0, the span; 1, a silent group (max |amp|
    below 1e-6 mV: ``Patient.span``'s (nan, nan)); 2, a grid of fewer than 2 samples (the
    caller's NumPy path decides)."""
    lo, hi, amax = bounds_kernel(tau, sigma, amp, idx, f_repol, repol, q)
    if amax < 1e-6:
        return 1, np.nan, np.nan
    step = 1.0 / fs
    span = (hi - lo) / step
    if not span > 1.0:  # (NumPy's length is ceil(span): fewer than 2 samples, or NaN)
        return 2, np.nan, np.nan
    n = int(math.ceil(span))
    t = _grid(lo, step, n)
    v = np.empty((3, n))
    _render_exp(t, tau, sigma, amp, idx, f_repol, repol, v, q, tab, np.empty(n), np.empty(n))
    m = np.empty(n)
    if qrs:
        speed_kernel(v, step, m)
    else:
        magnitude_kernel(v, m)
    i0, i1 = first_last_kernel(m, rel)
    return 0, t[i0], t[i1]


@njit(cache=True, nogil=True)
def peak_kernel(tau, sigma, amp, idx, repol, lo, stop, step, tab, out):
    """``Patient.peak_vector``'s render and pick in one call: the slots ``idx`` at RR = 1 s
    on ``np.arange(lo, stop, step)`` (filled as :func:`span_kernel` fills it), rendered as
    :func:`render_exp_kernel`, and into ``out`` (3,) the sample where the magnitude
    (:func:`magnitude_kernel`) first reaches its largest value (``np.argmax``). Returns
    False (``out`` untouched) where the grid has fewer than 2 samples or no length (the
    caller's NumPy path decides)."""
    span = (stop - lo) / step
    if not span > 1.0:
        return False
    n = int(math.ceil(span))
    t = _grid(lo, step, n)
    v = np.empty((3, n))
    _render_exp(t, tau, sigma, amp, idx, 1.0, repol, v, 0.0, tab, np.empty(n), np.empty(n))
    k = 0
    best = -1.0
    for i in range(n):
        m = math.sqrt((v[0, i] * v[0, i] + v[1, i] * v[1, i]) + v[2, i] * v[2, i])
        if m > best:
            best = m
            k = i
    for a in range(3):
        out[a] = v[a, k]
    return True


@njit(cache=True, nogil=True)
def gauss_arg_kernel(t, tau, sigma, idx, f_repol, repol, out, q=0.0):
    """``out (3, len(idx), n) = -0.5 * ((t - tau_s) / sigma_s) ** 2``: the exponents
    :func:`render_numpy` hands to ``np.exp`` (subtraction, division, square and product
    each rounded once, as NumPy's element-wise ufuncs round them)."""
    n = t.shape[0]
    for a in range(3):
        for j in range(idx.shape[0]):
            i = idx[j]
            f = f_repol if repol[i] else 1.0
            c = tau[a, i] * f + q * (1.0 - f)
            s = sigma[a, i] * f
            for k in range(n):
                d = (t[k] - c) / s
                out[a, j, k] = -0.5 * (d * d)


@njit(cache=True, nogil=True)
def weighted_sum_kernel(amp, idx, g, out):
    """``out (3, n) = einsum("ai,ait->at", amp[:, idx], g)`` summed as ``np.einsum`` sums
    it (``0 + a_0 g_0 + a_1 g_1 + ...``, each product and sum rounded)."""
    n = g.shape[2]
    for a in range(3):
        for k in range(n):
            out[a, k] = 0.0
        for j in range(idx.shape[0]):
            w = amp[a, idx[j]]
            for k in range(n):
                out[a, k] = out[a, k] + w * g[a, j, k]


def render_hybrid(t, tau, sigma, amp, idx, f_repol, repol, q=0.0):
    """:func:`render_numpy` with its ``exp`` still NumPy's (``np.exp`` in place on the
    exponents of :func:`gauss_arg_kernel`) and the rest in kernels: bit for bit where the
    kernels' arithmetic is NumPy's, whatever ``exp`` NumPy dispatches to."""
    g = np.empty((3, idx.shape[0], t.shape[0]))
    gauss_arg_kernel(t, tau, sigma, idx, f_repol, repol, g, q)
    np.exp(g, out=g)
    out = np.empty((3, t.shape[0]))
    weighted_sum_kernel(amp, idx, g, out)
    return out


@njit(cache=True, nogil=True)
def bounds_kernel(tau, sigma, amp, idx, f_repol, repol, q=0.0):
    """``Patient.track``'s grid bounds and silence test: ``(min(tau_s - 5 sigma_s),
    max(tau_s + 5 sigma_s), max |amp|)`` over the slots ``idx`` (scaled as in
    :func:`render_kernel`)."""
    lo = np.inf
    hi = -np.inf
    amax = 0.0
    for a in range(3):
        for j in range(idx.shape[0]):
            i = idx[j]
            f = f_repol if repol[i] else 1.0
            c = tau[a, i] * f + q * (1.0 - f)
            s = sigma[a, i] * f
            lo = min(lo, c - 5.0 * s)
            hi = max(hi, c + 5.0 * s)
            amax = max(amax, abs(amp[a, i]))
    return lo, hi, amax


@njit(cache=True, nogil=True)
def speed_kernel(v, dx, out):
    """``np.linalg.norm(np.gradient(v, dx, axis=1), axis=0)`` of a (3, n >= 2) waveform."""
    n = v.shape[1]
    two = 2.0 * dx
    for k in range(n):
        if k == 0:
            g0 = (v[0, 1] - v[0, 0]) / dx
            g1 = (v[1, 1] - v[1, 0]) / dx
            g2 = (v[2, 1] - v[2, 0]) / dx
        elif k == n - 1:
            g0 = (v[0, k] - v[0, k - 1]) / dx
            g1 = (v[1, k] - v[1, k - 1]) / dx
            g2 = (v[2, k] - v[2, k - 1]) / dx
        else:
            g0 = (v[0, k + 1] - v[0, k - 1]) / two
            g1 = (v[1, k + 1] - v[1, k - 1]) / two
            g2 = (v[2, k + 1] - v[2, k - 1]) / two
        out[k] = math.sqrt((g0 * g0 + g1 * g1) + g2 * g2)


@njit(cache=True, nogil=True)
def magnitude_kernel(v, out):
    """``np.linalg.norm(v, axis=0)`` of a (3, n) waveform."""
    for k in range(v.shape[1]):
        out[k] = math.sqrt((v[0, k] * v[0, k] + v[1, k] * v[1, k]) + v[2, k] * v[2, k])


@njit(cache=True, nogil=True)
def first_last_kernel(m, rel):
    """First and last index of ``m >= rel * m.max()`` (``np.flatnonzero``'s ends)."""
    top = m[0]
    for k in range(1, m.shape[0]):
        if m[k] > top:
            top = m[k]
    return _first_last(m, rel * top)


@njit(cache=True, nogil=True)
def tangent_end_kernel(t, v, i0, i1, dx):
    """``Patient.t_end``'s tangent method on the samples ``[i0, i1)`` (``i1 - i0 >= 2``) of a
    (3, n) track on the grid ``t``: the magnitude ``m`` as ``np.linalg.norm(axis=0)``, its
    ``np.gradient(m, dx)`` ``d``, ``k`` the first maximum of ``m``, ``j`` the first minimum
    of ``d`` from ``k``; ``t[j] + m[j] / -d[j]`` if ``d[j] < 0``, else the last time
    (NumPy twin: :func:`tangent_end_numpy`)."""
    n = i1 - i0
    m = np.empty(n)
    for k in range(n):
        a = i0 + k
        m[k] = math.sqrt((v[0, a] * v[0, a] + v[1, a] * v[1, a]) + v[2, a] * v[2, a])
    return _tangent(t, i0, m, 0, n, dx, t[i1 - 1])


@njit(nogil=True, inline="always")
def _tangent(t, t0, m, m0, n, dx, t_last):
    """The tangent method on ``n >= 2`` magnitude samples ``m[m0:m0 + n]`` at times ``t[t0:t0 +
    n]``: ``k`` the first maximum, ``d`` as ``np.gradient(m, dx)``, ``j`` its first minimum
    from ``k``; ``t[t0 + j] + m[m0 + j] / -d[j]`` if ``d[j] < 0``, else ``t_last``."""
    k = 0
    for i in range(1, n):
        if m[m0 + i] > m[m0 + k]:
            k = i
    two = 2.0 * dx
    j = -1
    dj = 0.0
    for i in range(k, n):
        if i == 0:
            d = (m[m0 + 1] - m[m0]) / dx
        elif i == n - 1:
            d = (m[m0 + i] - m[m0 + i - 1]) / dx
        else:
            d = (m[m0 + i + 1] - m[m0 + i - 1]) / two
        if j < 0 or d < dj:  # (the first minimum, as np.argmin; the differences are finite)
            j = i
            dj = d
    return t[t0 + j] + m[m0 + j] / -dj if dj < 0 else t_last


@njit(nogil=True, inline="always")
def _lead_magnitudes(M, v, n, m):
    """``m[:n] = np.linalg.norm(M @ v, axis=0)`` as NumPy rounds it: each lead as OpenBLAS's
    ``dgemm`` rounds a three-term product (``fma(m2, v2, fma(m1, v1, m0 v0))``), the squares
    added lead by lead from 0.0 (``add.reduce`` over the outer axis), the square root.
    Computed lead by lead over all samples (the sample loop vectorises; per sample the same
    operations in the same order)."""
    for k in range(n):
        m[k] = 0.0
    for i in range(M.shape[0]):
        r0, r1, r2 = M[i, 0], M[i, 1], M[i, 2]
        for k in range(n):
            x = _fma(r2, v[2, k], _fma(r1, v[1, k], r0 * v[0, k]))
            m[k] = m[k] + x * x
    for k in range(n):
        m[k] = math.sqrt(m[k])


@njit(cache=True, nogil=True)
def lead_magnitude_kernel(M, v, out):
    """``out = np.linalg.norm(M @ v, axis=0)`` for ``M (L, 3)``, ``v (3, n >= 2)`` in
    OpenBLAS's ``dgemm`` rounding (:func:`_lead_magnitudes`); callers check it against NumPy on this
    machine first (``model._lead_kernels``)."""
    _lead_magnitudes(M, v, v.shape[1], out)


@njit(cache=True, nogil=True)
def t_end12_kernel(tau, sigma, amp, idx, repol, fs, M, tab):
    """``model._t_end12`` at RR = 1 s in one call: ``Patient.track`` of the slots ``idx``
    (the grid and render of :func:`span_kernel`), the 12-lead magnitude ``np.linalg.norm(M @
    v, axis=0)`` (:func:`lead_magnitude_kernel`), its samples from the first to before the
    last at 0.1 % of its peak, and the tangent method on them (as
    :func:`tangent_end_kernel`). Returns ``(status, end s)``: status 0, the end; else
    (a silent group, a grid or run of fewer than 2 samples) the caller's NumPy code decides."""
    lo, hi, amax = bounds_kernel(tau, sigma, amp, idx, 1.0, repol, 0.0)
    if amax < 1e-6:
        return 1, np.nan
    dx = 1.0 / fs
    span = (hi - lo) / dx
    if not span > 1.0:
        return 2, np.nan
    n = int(math.ceil(span))
    t = _grid(lo, dx, n)
    v = np.empty((3, n))
    _render_exp(t, tau, sigma, amp, idx, 1.0, repol, v, 0.0, tab, np.empty(n), np.empty(n))
    m = np.empty(n)
    _lead_magnitudes(M, v, n, m)
    i0, i1 = first_last_kernel(m, 0.001)
    if i1 - i0 < 2:
        return 3, np.nan
    # the tangent on m[i0:i1] (tangent_end_kernel's steps on the magnitude already made)
    return 0, _tangent(t, i0, m, i0, i1 - i0, dx, t[i1 - 1])


@njit(nogil=True, inline="always")
def _axis_exps(t, tau, sigma, idx, tab, a, xs, g):
    """:func:`_slot_exps` of axis ``a`` into ``xs``, ``g`` (len(idx), n)."""
    n = t.shape[0]
    for j in range(idx.shape[0]):
        i = idx[j]
        c = tau[a, i] * 1.0 + 0.0 * (1.0 - 1.0)  # (render_kernel's centre at f = 1, q = 0)
        s = sigma[a, i] * 1.0
        x = xs[j]
        y = g[j]
        for k in range(n):
            d = (t[k] - c) / s
            x[k] = -0.5 * (d * d)
        _exp_fill(x, y, n, tab)


@njit(nogil=True, inline="always")
def _axis_sum(xs, g, amp, idx, a, out):
    """:func:`_slot_sum` of axis ``a`` from :func:`_axis_exps`' ``xs``, ``g`` into ``out[a]``."""
    n = xs.shape[1]
    for k in range(n):
        out[a, k] = 0.0
    for j in range(idx.shape[0]):
        w = amp[a, idx[j]]
        for k in range(n):
            if xs[j, k] < EXP_ZERO:
                continue
            out[a, k] = out[a, k] + w * g[j, k]


@njit(nogil=True, inline="always")
def _slot_exps(t, tau, sigma, idx, tab, xs, g):
    """:func:`slot_exps_kernel`'s body."""
    for a in range(3):
        _axis_exps(t, tau, sigma, idx, tab, a, xs[a], g[a])


@njit(cache=True, nogil=True)
def slot_exps_kernel(t, tau, sigma, idx, tab, xs, g):
    """The Gaussians of :func:`render_exp_kernel` at RR = 1 s, kept: into ``xs (3, len(idx),
    n)`` the exponents ``-0.5 ((t - tau) / sigma) ** 2`` and into ``g`` their ``exp`` exactly
    as the render takes it (``tab`` as there; where the render skips a sample, exponent
    below EXP_ZERO, ``g`` is left 0.0 and :func:`slot_sum_kernel` skips it too). Renders of
    the same slots with other amplitudes then cost a weighted sum."""
    _slot_exps(t, tau, sigma, idx, tab, xs, g)


@njit(nogil=True, inline="always")
def _slot_sum(xs, g, amp, idx, out):
    """``out (3, n)``: the render of :func:`render_exp_kernel` from :func:`slot_exps_kernel`'s
    ``xs``, ``g`` with amplitudes ``amp``: ``0 + w_0 g_0 + w_1 g_1 + ...`` in slot order,
    samples whose exponent is below EXP_ZERO skipped."""
    n = xs.shape[2]
    for a in range(3):
        for k in range(n):
            out[a, k] = 0.0
        for j in range(idx.shape[0]):
            w = amp[a, idx[j]]
            for k in range(n):
                if xs[a, j, k] < EXP_ZERO:
                    continue
                out[a, k] = out[a, k] + w * g[a, j, k]


@njit(cache=True, nogil=True)
def slot_sum_kernel(xs, g, amp, idx, out):
    """:func:`_slot_sum` (the render of the slots ``idx`` with amplitudes ``amp`` from the
    Gaussians :func:`slot_exps_kernel` kept)."""
    _slot_sum(xs, g, amp, idx, out)


@njit(nogil=True, inline="always")
def _pair_lead(rows, i, v, k):
    """``(rows @ v)[i, k]`` of ``rows (L, 3)`` as OpenBLAS's ``dgemm`` rounds a three-term
    product (as :func:`_lead_magnitudes`)."""
    return _fma(rows[i, 2], v[2, k], _fma(rows[i, 1], v[1, k], rows[i, 0] * v[0, k]))


@njit(cache=True, nogil=True)
def pair_leads_kernel(rows, v, out):
    """``out = rows @ v`` (``rows (L, 3)``, ``v (3, n)``) in :func:`_pair_lead`'s rounding
    (what ``model._tinv_kernels`` checks against NumPy)."""
    for i in range(rows.shape[0]):
        for k in range(v.shape[1]):
            out[i, k] = _pair_lead(rows, i, v, k)


#: ``u @ v`` forms of two 3-vectors (:func:`_dot3`), by the OpenBLAS ``ddot`` they reproduce:
#: the Haswell/Zen (AVX2) kernel's tail sums plain products, the SkylakeX (AVX-512) one fuses them.
DOT3_PLAIN, DOT3_FMA = 0, 1


@njit(nogil=True, inline="always")
def _dot3(u, v, form):
    """``u @ v`` (``u.dot(v)``) of two 3-vectors as OpenBLAS's ``ddot`` rounds it here
    (``model._dot3_form`` checks which): :data:`DOT3_PLAIN` ``(u0 v0 + u1 v1) + u2 v2``, no
    FMA; :data:`DOT3_FMA` ``fma(u2, v2, fma(u1, v1, u0 v0))``."""
    if form == DOT3_FMA:
        return _fma(u[2], v[2], _fma(u[1], v[1], u[0] * v[0]))
    return (u[0] * v[0] + u[1] * v[1]) + u[2] * v[2]


@njit(cache=True, nogil=True)
def dot3_kernel(u, v, form=DOT3_PLAIN):
    """:func:`_dot3` (what ``model._dot3_form`` checks against NumPy)."""
    return _dot3(u, v, form)


@njit(cache=True, nogil=True)
def tinv_turn_kernel(t_pk, u, need, u_pk, n_pk, repol, amp, xs, g, idx, rows, rows_u, depth, v, res,
                     dot=DOT3_PLAIN):
    """One turn of ``model._territorial_t_inversion`` and its shortfall in one call: ``t_new =
    t_pk - need u``, the turn ``model._rotation(u_pk, t_new / |t_new|)`` (Rodrigues' formula
    in NumPy's order: ``(eye + s K) + (1 - c) (K @ K)``, ``|.|`` and ``@`` of 3-vectors as
    :func:`_dot3`, ``K @ K`` as :func:`_pair_lead`) scaled by ``|t_new| / n_pk``, the ST-T
    slots ``idx`` of ``amp`` set to it times ``repol`` (3, 3), and
    :func:`tinv_shortfall_kernel` of the result. ``res`` = (shortfall, ``|t_new|``); ``dot``:
    the 3-vector dot's form (:data:`DOT3_PLAIN`, :data:`DOT3_FMA`).
    Returns the shortfall kernel's status (0, 1 silent), or 2 (nothing written) where the
    two directions are parallel (``s < 1e-12``: ``_rotation``'s own branch decides)."""
    tn = np.empty(3)
    for i in range(3):
        tn[i] = t_pk[i] - need * u[i]
    nt = math.sqrt(_dot3(tn, tn, dot))
    ut = np.empty(3)
    for i in range(3):
        ut[i] = tn[i] / nt
    c = _dot3(u_pk, ut, dot)
    u0, u1, u2 = u_pk[0], u_pk[1], u_pk[2]
    v0, v1, v2 = ut[0], ut[1], ut[2]
    w = np.empty(3)
    w[0] = u1 * v2 - u2 * v1
    w[1] = u2 * v0 - u0 * v2
    w[2] = u0 * v1 - u1 * v0
    sw = math.sqrt(_dot3(w, w, dot))
    if sw < 1e-12:
        return 2
    k0, k1, k2 = w[0] / sw, w[1] / sw, w[2] / sw
    K = np.empty((3, 3))
    K[0, 0], K[0, 1], K[0, 2] = 0.0, -k2, k1
    K[1, 0], K[1, 1], K[1, 2] = k2, 0.0, -k0
    K[2, 0], K[2, 1], K[2, 2] = -k1, k0, 0.0
    one_c = 1.0 - c
    scale = nt / n_pk
    rot = np.empty((3, 3))
    for i in range(3):
        for j in range(3):
            e = 1.0 if i == j else 0.0
            rot[i, j] = ((e + sw * K[i, j]) + one_c * _pair_lead(K, i, K, j)) * scale
    for i in range(3):
        for j in range(3):
            amp[i, idx[j]] = _pair_lead(rot, i, repol, j)
    st, short = tinv_shortfall_kernel(xs, g, amp, idx, rows, rows_u, depth, v)
    res[0] = short
    res[1] = nt
    return st


@njit(cache=True, nogil=True)
def tinv_shortfall_kernel(xs, g, amp, idx, rows, rows_u, depth, v):
    """``model._tinv_shortfall_numpy`` from kept Gaussians: the slots ``idx`` with amplitudes
    ``amp`` rendered on the samples :func:`slot_exps_kernel` took (``v`` (3, n >= 2) work
    array), the two leads ``rows (2, 3)`` of them as OpenBLAS's ``dgemm`` rounds ``rows @ v``
    (``fma(r2, v2, fma(r1, v1, r0 v0))``), each lead's largest deflection (the first sample of
    largest ``|w|``, as ``np.argmax``), and ``max((ext + depth) / rows_u)`` (NaN if either
    is NaN, as ``np.max``). Returns ``(status, shortfall)``: status 1 where the slots are
    silent (largest ``|amp|`` below 1e-6 mV: ``Patient.track`` gives None)."""
    amax = 0.0
    for a in range(3):
        for j in range(idx.shape[0]):
            amax = max(amax, abs(amp[a, idx[j]]))
    if amax < 1e-6:
        return 1, np.nan
    _slot_sum(xs, g, amp, idx, v)
    n = v.shape[1]
    res = np.empty(2)
    for i in range(2):
        best = -1.0
        ext = 0.0
        for k in range(n):
            w = _pair_lead(rows, i, v, k)
            aw = abs(w)
            if aw != aw:  # (np.argmax stops at the first NaN)
                ext = w
                break
            if aw > best:
                best = aw
                ext = w
        res[i] = (ext + depth) / rows_u[i]
    if res[0] != res[0] or res[1] != res[1]:
        return 0, np.nan
    return 0, max(res[0], res[1])


@njit(cache=True, nogil=True)
def t_end12_pair_kernel(tau, sigma, amp, amp2, idx, repol, fs, M, tab, out):
    """:func:`t_end12_kernel` of two beats that differ only in their amplitudes ``amp``,
    ``amp2`` (the same grid; its Gaussians computed once, :func:`_slot_exps`, each render a
    weighted sum, :func:`_slot_sum`). Into ``out`` (2,) the two ends; returns the two
    statuses as :func:`t_end12_kernel`'s (``10 * status + status2``)."""
    lo, hi, amax = bounds_kernel(tau, sigma, amp, idx, 1.0, repol, 0.0)
    _, _, amax2 = bounds_kernel(tau, sigma, amp2, idx, 1.0, repol, 0.0)
    out[0] = np.nan
    out[1] = np.nan
    dx = 1.0 / fs
    span = (hi - lo) / dx
    if not span > 1.0:
        return 22
    n = int(math.ceil(span))
    t = _grid(lo, dx, n)
    # the Gaussians an axis at a time, both renders summed from them (the same operations per
    # sample as _slot_exps / _slot_sum; the work arrays stay small: a 2-kHz ST-T grid's
    # (3, slots, n) pair is past malloc's mmap threshold, fresh pages each call)
    ns = idx.shape[0]
    xs = np.empty((ns, n))
    g = np.empty((ns, n))
    v = np.empty((3, n))
    v2 = np.empty((3, n))
    for a in range(3):
        _axis_exps(t, tau, sigma, idx, tab, a, xs, g)
        _axis_sum(xs, g, amp, idx, a, v)
        _axis_sum(xs, g, amp2, idx, a, v2)
    m = np.empty(n)
    status = 0
    for b in range(2):
        if (amax if b == 0 else amax2) < 1e-6:
            st = 1
        else:
            _lead_magnitudes(M, v if b == 0 else v2, n, m)
            i0, i1 = first_last_kernel(m, 0.001)
            if i1 - i0 < 2:
                st = 3
            else:
                st = 0
                out[b] = _tangent(t, i0, m, i0, i1 - i0, dx, t[i1 - 1])
        status = status * 10 + st
    return status


@njit(cache=True, nogil=True)
def trough_rel_kernel(vel, rel):
    """``model._trough_rel_numpy``: the lowest ``vel`` between its first and last local
    maxima (``vel[k - 1] < vel[k] >= vel[k + 1]``) that reach ``rel`` of its peak, relative to
    the peak; 1.0 with fewer than two such maxima (also where ``vel`` holds a NaN: NumPy's
    peak is NaN and no sample compares)."""
    n = vel.shape[0]
    top = -math.inf
    for k in range(n):
        x = vel[k]
        if x != x:
            return 1.0
        if x > top:
            top = x
    thr = rel * top
    first = -1
    last = -1
    for k in range(1, n - 1):
        if vel[k] > vel[k - 1] and vel[k] >= vel[k + 1] and vel[k] >= thr:
            if first < 0:
                first = k
            last = k
    if first < 0 or last == first:
        return 1.0
    low = vel[first]
    for k in range(first + 1, last + 1):
        if vel[k] < low:
            low = vel[k]
    return low / top


@njit(cache=True, nogil=True)
def velocity_trough_kernel(tau, sigma, amp, band2, idx, repol, t, M, tab, vel):
    """``model._velocity_trough``'s velocity in one call: the slots ``idx`` with widths
    ``se = sqrt(sigma^2 + band2)`` and amplitudes ``amp sigma / se`` (``band2``: the band's
    sigma squared) rendered at RR = 1 s on ``t`` (as :func:`render_exp_kernel`), and into
    ``vel (len(t) - 1)`` the 12-lead velocity ``np.linalg.norm(np.diff(M @ v, axis=1),
    axis=0)`` (``M @ v`` as :func:`lead_magnitude_kernel` rounds it)."""
    se = np.empty((3, tau.shape[1]))
    ab = np.empty((3, tau.shape[1]))
    for a in range(3):
        for i in range(tau.shape[1]):
            s = sigma[a, i]
            e = math.sqrt(s * s + band2)
            se[a, i] = e
            ab[a, i] = amp[a, i] * s / e
    n = t.shape[0]
    v = np.empty((3, n))
    _render_exp(t, tau, se, ab, idx, 1.0, repol, v, 0.0, tab, np.empty(n), np.empty(n))
    # per sample the leads' squared differences summed in lead order from 0.0, as the
    # per-sample loop did; lead by lead over all samples (the sample loops vectorise)
    x = np.empty(n)
    for k in range(n - 1):
        vel[k] = 0.0
    for i in range(M.shape[0]):
        r0, r1, r2 = M[i, 0], M[i, 1], M[i, 2]
        for k in range(n):
            x[k] = _fma(r2, v[2, k], _fma(r1, v[1, k], r0 * v[0, k]))
        for k in range(1, n):
            d = x[k] - x[k - 1]
            vel[k - 1] = vel[k - 1] + d * d
    for k in range(n - 1):
        vel[k] = math.sqrt(vel[k])


@njit(cache=True, nogil=True)
def _finite2(arr):
    for a in range(arr.shape[0]):
        for w in range(arr.shape[1]):
            if not math.isfinite(arr[a, w]):
                return False
    return True


@njit(cache=True, nogil=True)
def patient_check_kernel(tau, sigma, amp):
    """``Patient``'s value checks on its (3, 11) arrays: 0 if every value is finite and every
    width positive, 1 if a value is not finite, 2 if a width is <= 0 (the caller's NumPy
    checks then raise with their messages)."""
    if not (_finite2(tau) and _finite2(sigma) and _finite2(amp)):
        return 1
    for a in range(sigma.shape[0]):
        for w in range(sigma.shape[1]):
            if sigma[a, w] <= 0.0:
                return 2
    return 0


# --- NumPy twins (the oracle) --------------------------------------------------------
def render_numpy(t, tau, sigma, amp, idx, f_repol, repol, q=0.0):
    """The twin of :func:`render_kernel`: ``Patient.render``'s NumPy code."""
    f = np.ones(repol.shape[0])
    f[repol] = f_repol
    tau, sigma = tau * f + q * (1.0 - f), sigma * f
    idx = list(idx)
    g = np.exp(-0.5 * ((t[None, None, :] - tau[:, idx, None]) / sigma[:, idx, None]) ** 2)
    return np.einsum("ai,ait->at", amp[:, idx], g)


def speed_numpy(v, dx):
    return np.linalg.norm(np.gradient(v, dx, axis=1), axis=0)


def magnitude_numpy(v):
    return np.linalg.norm(v, axis=0)


def first_last_numpy(m, rel):
    above = np.flatnonzero(m >= rel * m.max())
    return int(above[0]), int(above[-1])


def bounds_numpy(tau, sigma, amp, idx, f_repol, repol, q=0.0):
    f = np.ones(repol.shape[0])
    f[repol] = f_repol
    tau, sigma, idx = tau * f + q * (1.0 - f), sigma * f, list(idx)
    return ((tau[:, idx] - 5 * sigma[:, idx]).min(), (tau[:, idx] + 5 * sigma[:, idx]).max(),
            np.abs(amp[:, idx]).max())


def matches_numpy(cases, render="kernel", ex=None) -> bool:
    """Whether the kernels give the twins' results bit for bit on ``cases``: an iterable of
    ``(t, tau, sigma, amp, idx, f_repol, repol, dx)`` or ``(..., dx, q)`` (``q`` the pivot of
    the scaled slots, 0.0 when absent). ``render``: the form of the render
    checked, ``"kernel"`` (:func:`render_kernel`, the C library's ``exp``), ``"exp"``
    (:func:`render_exp_kernel`, that ``exp`` inline; False without its table), ``"loop"``
    (:func:`render_exp_kernel` on the exp source ``ex``, NumPy's ``exp`` loop ``(function,
    data)``) or ``"hybrid"`` (:func:`render_hybrid`, NumPy's ``exp``)."""
    for case in cases:
        t, tau, sigma, amp, idx, f_repol, repol, dx = case[:8]
        q = float(case[8]) if len(case) > 8 else 0.0
        got_b = bounds_kernel(tau, sigma, amp, idx, f_repol, repol, q)
        want_b = bounds_numpy(tau, sigma, amp, idx, f_repol, repol, q)
        if np.array(got_b).tobytes() != np.array(want_b, dtype=np.float64).tobytes():
            return False
        want = render_numpy(t, tau, sigma, amp, idx, f_repol, repol, q)
        if render == "hybrid":
            got = render_hybrid(t, tau, sigma, amp, idx, f_repol, repol, q)
        elif render in ("exp", "loop"):
            tab = exp_table() if render == "exp" else ex
            if render == "exp" and tab.shape[0] == 0:
                return False
            got = np.empty((3, t.shape[0]))
            render_exp_kernel(t, tau, sigma, amp, idx, f_repol, repol, got, q, tab)
        else:
            got = np.empty((3, t.shape[0]))
            render_kernel(t, tau, sigma, amp, idx, f_repol, repol, got, q)
        if got.tobytes() != want.tobytes():
            return False
        if t.shape[0] >= 2:
            m = np.empty(t.shape[0])
            speed_kernel(want, dx, m)
            if m.tobytes() != speed_numpy(want, dx).tobytes():
                return False
            for rel in (0.05, 0.15, 0.001):
                if first_last_kernel(m, rel) != first_last_numpy(m, rel):
                    return False
        m = np.empty(t.shape[0])
        magnitude_kernel(want, m)
        if m.tobytes() != magnitude_numpy(want).tobytes():
            return False
    return True


def tangent_end_numpy(t, v, i0, i1, dx):
    """The twin of :func:`tangent_end_kernel`: ``Patient.t_end``'s NumPy code."""
    t, m = t[i0:i1], np.linalg.norm(v[:, i0:i1], axis=0)
    k = int(np.argmax(m))
    d = np.gradient(m, dx)
    j = k + int(np.argmin(d[k:]))
    return float(t[j] + m[j] / -d[j]) if d[j] < 0 else float(t[-1])
