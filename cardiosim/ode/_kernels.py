"""Numba kernels of the beat models (small loops writing into ``out``).

Every kernel has a plain NumPy twin of the same name in ``_reference.py`` (the test
oracle) and is called only through the typed API in ``dipole.py`` / ``ecgsyn.py``,
which validates and allocates. Random numbers are drawn by the caller and passed in.
"""

from __future__ import annotations

import math

import llvmlite.ir as ir
import numpy as np
from numba import njit, prange, types
from numba.core.extending import intrinsic

# glibc's exp inline, and the bit helpers the kernels below use, live in cardiosim._exp_kernels
from .._exp_kernels import (  # noqa: F401 - re-exported: the ODE kernels' and tests' names
    EXP_C2, EXP_C3, EXP_C4, EXP_C5, EXP_INV_LN2_N, EXP_NEG_LN2_HI_N, EXP_NEG_LN2_LO_N, EXP_SHIFT, _exp, _f2u,
    _fma, _u2f, exp_check_args, exp_kernel, exp_table, exp_table_values, math_exp_kernel)

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


RUN = 256  # samples per exp-recurrence run before an exact restart (multiple of 4)
MAX_CUTOFF = 30.0  # widths; the kernels treat a Gaussian as zero beyond (< 1e-195 of its peak)
RUN_PHASE = 64  # the same for the single-chain recurrence of gaussian_sum_kernel


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
    exactly at every R peak and every ``RUN_PHASE`` samples (bounding rounding growth).
    """
    cut = min(cutoff, MAX_CUTOFF)  # as add_gaussian: keeps the recurrence's factors normal
    for g in range(centres.shape[0]):
        c = centres[g]
        b = widths[g]
        a = amps[g]
        row = out[chans[g]]
        lo = _lower_bound(phase, c - cut * b)
        hi = _lower_bound(phase, c + cut * b)
        inv = 1.0 / b
        n = lo
        seg_end = lo
        while n < hi:
            if n >= seg_end:  # first sample at or past the next R peak
                seg_end = _lower_bound(phase, (math.floor(phase[n] / TWO_PI) + 1.0) * TWO_PI)
                if seg_end <= n:
                    seg_end = n + 1
            m_end = min(hi, seg_end, n + RUN_PHASE)
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


@intrinsic
def _lanes_run(typingctx, row, start, steps, e, r, big_q):
    """The exp recurrence of :func:`add_gaussian` over ``steps`` groups of ``L = len(e)``
    samples from ``row[start]``: ``row[start + L j + l] += e_l`` then ``e_l *= r_l`` and
    ``r_l *= big_q``, for ``j < steps``; returns the lanes' ``e`` after the run.

    Written as LLVM vector operations (``<L x double>`` loads, ``fadd``, ``fmul``, stores)
    because numba runs LLVM without its SLP vectorizer, so the lanes of the scalar loop
    were never packed. Every lane does the scalar loop's IEEE operations in its order (no
    fast-math flags, no contraction into FMA): the same bits. ``row`` must be a
    contiguous 1-D float64 array and ``row[start:start + L steps]`` inside it (the caller's
    window arithmetic guarantees it; there is no bounds check, as in the loop it
    replaces)."""
    if not (isinstance(row, types.Array) and row.ndim == 1 and row.layout == "C"
            and row.dtype == types.float64 and isinstance(e, types.UniTuple) and isinstance(r, types.UniTuple)
            and e.count == r.count):
        return None
    lanes = e.count
    tup = types.UniTuple(types.float64, lanes)
    sig = tup(row, types.intp, types.intp, tup, tup, types.float64)

    def codegen(context, builder, signature, args):
        row_v, start_v, steps_v, e_v, r_v, q_v = args
        data = context.make_array(signature.args[0])(context, builder, row_v).data
        vty = ir.VectorType(ir.DoubleType(), lanes)
        i32 = ir.IntType(32)
        ity = start_v.type

        def vector(values):
            v = ir.Constant(vty, ir.Undefined)
            for k, x in enumerate(values):
                v = builder.insert_element(v, x, ir.Constant(i32, k))
            return v

        e0 = vector([builder.extract_value(e_v, k) for k in range(lanes)])
        r0 = vector([builder.extract_value(r_v, k) for k in range(lanes)])
        qv = vector([q_v] * lanes)
        base = builder.gep(data, [start_v])
        pre = builder.block
        loop = builder.append_basic_block("lanes.loop")
        done = builder.append_basic_block("lanes.done")
        builder.cbranch(builder.icmp_signed(">", steps_v, ir.Constant(ity, 0)), loop, done)
        builder.position_at_end(loop)
        j = builder.phi(ity)
        ev = builder.phi(vty)
        rv = builder.phi(vty)
        ptr = builder.bitcast(builder.gep(base, [builder.mul(j, ir.Constant(ity, lanes))]), vty.as_pointer())
        builder.store(builder.fadd(builder.load(ptr, align=8), ev), ptr, align=8)
        e_next = builder.fmul(ev, rv)
        r_next = builder.fmul(rv, qv)
        j_next = builder.add(j, ir.Constant(ity, 1))
        for phi, first, nxt in ((j, ir.Constant(ity, 0), j_next), (ev, e0, e_next), (rv, r0, r_next)):
            phi.add_incoming(first, pre)
            phi.add_incoming(nxt, loop)
        builder.cbranch(builder.icmp_signed("<", j_next, steps_v), loop, done)
        builder.position_at_end(done)
        e_out = builder.phi(vty)
        e_out.add_incoming(e0, pre)
        e_out.add_incoming(e_next, loop)
        return context.make_tuple(builder, tup, [builder.extract_element(e_out, ir.Constant(i32, k))
                                                 for k in range(lanes)])

    return sig, codegen


SCREEN_CUTOFF = 5.0  # waves rendered within ±5 widths, as records are (dipole.DEFAULT_CUTOFF)


@njit(cache=True, nogil=True)
def add_gaussian(row, al, c, sig, start, delta, cutoff):
    """Add ``al exp(-(t - c)² / 2 sig²)`` at ``t = start + i delta`` to ``row`` within
    ``cutoff`` widths of ``c`` (the window is found by arithmetic: the grid is uniform).

    Exact exp recurrence in four interleaved lanes: with ``δ = delta / sig`` and ``d_i``
    the sample's distance in widths, ``g[i+4] = g[i] R[i]`` and ``R[i+4] = R[i] exp(-16δ²)``
    where ``R[i] = exp(-4 d_i δ - 8 δ²)``. Four independent multiply chains (instead of
    an ``exp`` per sample, or one latency-bound chain) keep the FPU busy; each run of
    RUN samples restarts from two exact ``exp`` calls, bounding rounding growth to a few
    hundred ulp. The lanes run as one vector (:func:`_lanes_run`): bit for bit the scalar
    loop, 35 -> 25 µs for a 10-s record's 561 Gaussians."""
    if al == 0.0:
        return
    n = row.shape[0]
    inv = 1.0 / sig
    # beyond 30 widths a Gaussian is < 1e-195 of its peak: zero for any signal, and the
    # clamp keeps every factor of the recurrence inside float64's normal range
    cut = min(cutoff, MAX_CUTOFF)
    lo = max(math.ceil((c - cut * sig - start) / delta), 0)
    hi = min(math.floor((c + cut * sig - start) / delta) + 1, n)
    dd = delta * inv
    if dd > 0.5:  # under 2 samples per width: few samples, the recurrence's factors are extreme
        for i in range(lo, hi):
            d = (start + i * delta - c) * inv
            row[i] += al * math.exp(-0.5 * d * d)
        return
    q = math.exp(-dd * dd)
    q4 = q * q
    q4 = q4 * q4
    big_q = q4 * q4
    big_q = big_q * big_q  # exp(-16 δ²)
    i = lo
    e0 = e1 = e2 = 0.0
    started = False
    while hi - i >= 4:
        m = min(RUN, (hi - i) & ~3)
        d = (start + i * delta - c) * inv
        e0 = al * math.exp(-0.5 * d * d)
        r = math.exp(-d * dd - 0.5 * dd * dd)  # g[i+1] / g[i]
        e1 = e0 * r
        e2 = e1 * r * q
        e3 = e2 * r * q * q
        r2 = r * r
        big_r0 = r2 * r2 * q4 * q * q  # exp(-4 d δ - 8 δ²) = r⁴ q⁶
        big_r1 = big_r0 * q4
        big_r2 = big_r1 * q4
        big_r3 = big_r2 * q4
        # the four lanes as one 4-wide vector (numba leaves LLVM's SLP vectorizer off, so
        # the scalar loop ran a lane at a time): the same products and sums per lane
        e0, e1, e2, e3 = _lanes_run(row, i, m >> 2, (e0, e1, e2, e3), (big_r0, big_r1, big_r2, big_r3),
                                    big_q)
        i += m
        started = True
    # the last 1-3 samples: the lanes already hold them (a window of < 4 samples, rare,
    # is evaluated directly)
    if i < hi and not started:
        d = (start + i * delta - c) * inv
        e0 = al * math.exp(-0.5 * d * d)
        r = math.exp(-d * dd - 0.5 * dd * dd)
        e1 = e0 * r
        e2 = e1 * r * q
    if i < hi:
        row[i] += e0
    if i + 1 < hi:
        row[i + 1] += e1
    if i + 2 < hi:
        row[i + 2] += e2


@njit(cache=True, nogil=True)
def gaussian_time_kernel(t0, fs, centres, widths, amps, chans, cutoff, out):
    """Add ``Σ_g a_g exp(-(t - c_g)² / 2 w_g²)`` at ``t = t0 + n / fs`` to ``out``.

    centres, widths (G,) s; amps (G,) mV; chans (G,) int row of ``out`` (C, T);
    samples beyond ``cutoff`` widths of a centre are skipped (:func:`add_gaussian`)."""
    delta = 1.0 / fs
    for g in range(centres.shape[0]):
        add_gaussian(out[chans[g]], amps[g], centres[g], widths[g], t0, delta, cutoff)


@intrinsic
def _rows_run3(typingctx, flat, seg_i, seg_f, starts, sents):
    """Run three rows' segment lists (:func:`_row_segments`) side by side in one loop.

    Stream ``s`` works through segments ``starts[s]`` .. ``sents[s] - 1`` then sits on its
    sentinel ``sents[s]`` (adds of +0.0 to a scratch slot) until all three do. A segment
    (``seg_i[k] = (pos, groups, tail)``, ``seg_f[k] = (e0..e3, r0..r3, big_q)``) is
    :func:`_lanes_run` over ``groups`` groups of four from ``flat[pos]``; with ``tail > 0``
    its last group adds only lanes ``< tail`` (the others add +0.0). Per lane these are
    :func:`add_gaussian`'s operations in its order; each row's segments in its Gaussians'
    order. Three independent multiply chains in one loop instead of one: the single chain
    waits a multiply's latency every four samples. Each stream takes two groups a step
    (half the loop's bookkeeping: 8.7 -> 6.7 µs for a 10-s record); a segment with an odd
    number of groups ends on a step whose second group adds +0.0 to the four samples after
    it (at most 7 past a row's end: the next row's first samples, or the 8 slack slots
    after the record, which also hold the sentinels: ``pos = 3 n``). Adds of +0.0 leave
    every value as it was (the record never holds -0.0), whenever they come."""
    f64, i64 = types.float64, types.int64
    if not (all(isinstance(a, types.Array) and a.layout == "C" for a in (flat, seg_i, seg_f))
            and flat.ndim == 1 and flat.dtype == f64 and seg_i.ndim == 2 and seg_i.dtype == i64
            and seg_f.ndim == 2 and seg_f.dtype == f64):
        return None
    sig = types.intp(flat, seg_i, seg_f, types.UniTuple(types.intp, 3), types.UniTuple(types.intp, 3))

    def codegen(context, builder, signature, args):
        flat_v, si_v, sf_v, starts_v, sents_v = args
        fdata = context.make_array(signature.args[0])(context, builder, flat_v).data
        idata = context.make_array(signature.args[1])(context, builder, si_v).data
        gdata = context.make_array(signature.args[2])(context, builder, sf_v).data
        dbl = ir.DoubleType()
        vty = ir.VectorType(dbl, 4)
        i32 = ir.IntType(32)
        ity = ir.IntType(64)
        c = lambda v: ir.Constant(ity, v)  # noqa: E731
        zero_v = ir.Constant(vty, [0.0] * 4)
        lane_idx = ir.Constant(ir.VectorType(ity, 4), [0, 1, 2, 3])
        all_v = ir.Constant(ir.VectorType(ir.IntType(1), 4), [1, 1, 1, 1])
        none_v = ir.Constant(ir.VectorType(ir.IntType(1), 4), [0, 0, 0, 0])

        def load_segment(k):
            pi = builder.gep(idata, [builder.mul(k, c(3))])
            pos = builder.load(pi)
            groups = builder.load(builder.gep(pi, [c(1)]))
            tail = builder.load(builder.gep(pi, [c(2)]))
            pf = builder.gep(gdata, [builder.mul(k, c(9))])
            e = builder.load(builder.bitcast(pf, vty.as_pointer()), align=8)
            r = builder.load(builder.bitcast(builder.gep(pf, [c(4)]), vty.as_pointer()), align=8)
            q = builder.load(builder.gep(pf, [c(8)]))
            qv = ir.Constant(vty, ir.Undefined)
            t_eff = builder.select(builder.icmp_signed(">", tail, c(0)), tail, c(4))
            splat = ir.Constant(ir.VectorType(ity, 4), ir.Undefined)
            for l in range(4):
                qv = builder.insert_element(qv, q, ir.Constant(i32, l))
                splat = builder.insert_element(splat, t_eff, ir.Constant(i32, l))
            # the lanes the segment's last group adds (all four unless it has a tail): the
            # first of the last step's two groups when the segment has an odd number of
            # groups (the second then adds none), else the second
            tail_mask = builder.icmp_signed("<", lane_idx, splat)
            odd = builder.trunc(builder.and_(groups, c(1)), ir.IntType(1))
            mask_a = builder.select(odd, tail_mask, all_v)
            mask_b = builder.select(odd, none_v, tail_mask)
            steps = builder.ashr(builder.add(groups, c(1)), c(1))
            return [k, pos, steps, mask_a, mask_b, e, r, qv]

        sents = [builder.extract_value(sents_v, s) for s in range(3)]
        init = [load_segment(builder.extract_value(starts_v, s)) for s in range(3)]
        all_done = builder.and_(builder.and_(builder.icmp_signed("==", init[0][0], sents[0]),
                                             builder.icmp_signed("==", init[1][0], sents[1])),
                                builder.icmp_signed("==", init[2][0], sents[2]))
        pre = builder.block
        loop = builder.append_basic_block("rows3.loop")
        done = builder.append_basic_block("rows3.done")
        builder.cbranch(all_done, done, loop)
        builder.position_at_end(loop)
        # state phis: per stream (k, pos, steps_left, mask_a, mask_b, e, r, q)
        mty = ir.VectorType(ir.IntType(1), 4)
        tys = [ity, ity, ity, mty, mty, vty, vty, vty]
        phis = [[builder.phi(t) for t in tys] for _ in range(3)]
        for s in range(3):
            for ph, v in zip(phis[s], init[s]):
                ph.add_incoming(v, pre)
        outs = []
        for s in range(3):
            k, pos, left, mask_a, mask_b, e, r, qv = phis[s]
            last = builder.icmp_signed("==", left, c(1))
            ptr = builder.bitcast(builder.gep(fdata, [pos]), vty.as_pointer())
            ptr_b = builder.bitcast(builder.gep(fdata, [builder.add(pos, c(4))]), vty.as_pointer())
            # two groups a step: a segment's steps before its last add all four lanes of
            # both (no mask on the common path); its last one adds the lanes of its masks,
            # then the next segment loads
            body = builder.append_basic_block(f"rows3.body{s}")
            nxt = builder.append_basic_block(f"rows3.next{s}")
            merge = builder.append_basic_block(f"rows3.merge{s}")
            builder.cbranch(last, nxt, body)
            builder.position_at_end(body)
            builder.store(builder.fadd(builder.load(ptr, align=8), e), ptr, align=8)
            e1 = builder.fmul(e, r)
            r1 = builder.fmul(r, qv)
            builder.store(builder.fadd(builder.load(ptr_b, align=8), e1), ptr_b, align=8)
            cont = [k, builder.add(pos, c(8)), builder.sub(left, c(1)), mask_a, mask_b, builder.fmul(e1, r1),
                    builder.fmul(r1, qv), qv]
            here = builder.block
            builder.branch(merge)
            builder.position_at_end(nxt)
            builder.store(builder.fadd(builder.load(ptr, align=8), builder.select(mask_a, e, zero_v)), ptr, align=8)
            e1 = builder.fmul(e, r)
            builder.store(builder.fadd(builder.load(ptr_b, align=8), builder.select(mask_b, e1, zero_v)), ptr_b,
                          align=8)
            k_next = builder.select(builder.icmp_signed("<", k, sents[s]), builder.add(k, c(1)), k)
            loaded = load_segment(k_next)
            nxt_end = builder.block
            builder.branch(merge)
            builder.position_at_end(merge)
            merged = []
            for t, a, b in zip(tys, cont, loaded):
                ph = builder.phi(t)
                ph.add_incoming(a, here)
                ph.add_incoming(b, nxt_end)
                merged.append(ph)
            outs.append(merged)
        fin = builder.and_(builder.and_(builder.icmp_signed("==", outs[0][0], sents[0]),
                                        builder.icmp_signed("==", outs[1][0], sents[1])),
                           builder.icmp_signed("==", outs[2][0], sents[2]))
        end = builder.block
        for s in range(3):
            for ph, v in zip(phis[s], outs[s]):
                ph.add_incoming(v, end)
        builder.cbranch(fin, done, loop)
        builder.position_at_end(done)
        return c(0)

    return sig, codegen


@njit(cache=True, nogil=True)
def _unit_lanes(seg_f, k, used):
    """Segment ``k``'s lanes from ``used`` on: ``e = 0``, ``r = q = 1`` (a one-group
    segment's unused lanes: masked, but kept finite)."""
    for l in range(used, 4):
        seg_f[k, l] = 0.0
    for l in range(4, 9):
        seg_f[k, l] = 1.0


@njit(cache=True, nogil=True)
def _row_segments(t0, delta, centres, widths, amps, chans, cutoff, n, tab):
    """:func:`add_gaussian`'s work on a (3, n) record (row ``r`` at ``flat[r n:]``) as
    segments for :func:`_rows_run3`, grouped by row in Gaussian order, each row's list
    ended by a sentinel (``pos = 3 n``: the scratch slots after the record, no lanes
    to add). The same ``exp`` values (``_exp`` on ``tab``, :func:`exp_table`) and products
    as :func:`add_gaussian`. Returns (seg_i, seg_f, starts, sentinels)."""
    ng = centres.shape[0]
    cut = min(cutoff, MAX_CUTOFF)
    los = np.empty(ng, np.int64)
    his = np.empty(ng, np.int64)
    invs = np.empty(ng)
    count = np.ones(4, np.int64)  # a sentinel per row
    count[0] = 0
    for g in range(ng):
        c = centres[g]
        sig = widths[g]
        reach = cut * sig
        # a window wholly before or after the record (the padding beats') skips the two
        # divisions: x < -2 delta gives floor(x / delta) + 1 <= -1, y > (n + 1) delta gives
        # ceil(y / delta) >= n + 1, an empty window either way
        if amps[g] == 0.0 or c + reach - t0 < -2.0 * delta or c - reach - t0 > (n + 1) * delta:
            los[g] = 0
            his[g] = 0
            continue
        lo = max(math.ceil((c - reach - t0) / delta), 0)
        hi = min(math.floor((c + reach - t0) / delta) + 1, n)
        if hi <= lo:
            hi = lo
        los[g] = lo
        his[g] = hi
        invs[g] = 1.0 / sig  # (divisions off the second pass's chains)
        if hi > lo:  # a segment a sample (direct evaluation) or a run (RUN samples) each, + 1
            count[chans[g] + 1] += (hi - lo) if delta * (1.0 / sig) > 0.5 else (hi - lo) // RUN + 1
    for r in range(3):
        count[r + 1] += count[r]
    total = count[3]
    seg_i = np.empty((total, 3), np.int64)
    seg_f = np.empty((total, 9))
    nxt = count[:3].copy()
    # exp(-dd²) depends on the width only, and the beats repeat their widths (all but the
    # ST-T slots, which scale with RR): the last one per slot of a small table (same value)
    q_sig = np.zeros(64)
    q_val = np.empty(64)
    for g in range(ng):
        lo = los[g]
        hi = his[g]
        if hi <= lo:
            continue
        row = chans[g]
        k = nxt[row]
        al = amps[g]
        c = centres[g]
        inv = invs[g]
        start = t0
        base = row * n
        dd = delta * inv
        if dd > 0.5:
            for i in range(lo, hi):
                d = (start + i * delta - c) * inv
                seg_i[k, 0] = base + i
                seg_i[k, 1] = 1
                seg_i[k, 2] = 1
                seg_f[k, 0] = al * _exp(-0.5 * d * d, tab)
                _unit_lanes(seg_f, k, 1)
                k += 1
            nxt[row] = k
            continue
        w = widths[g]
        # (a multiplicative hash of the width's bits: the float modulo it replaces was a
        # libm fmod call in the chain to q)
        slot = np.intp((_f2u(w) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(58))
        if q_sig[slot] == w:
            q = q_val[slot]
        else:
            q = _exp(-dd * dd, tab)
            q_sig[slot] = w
            q_val[slot] = q
        q4 = q * q
        q4 = q4 * q4
        big_q = q4 * q4
        big_q = big_q * big_q
        i = lo
        started = False
        while hi - i >= 4:
            m = min(RUN, (hi - i) & ~3)
            d = (start + i * delta - c) * inv
            e0 = al * _exp(-0.5 * d * d, tab)
            r = _exp(-d * dd - 0.5 * dd * dd, tab)
            e1 = e0 * r
            e2 = e1 * r * q
            e3 = e2 * r * q * q
            r2 = r * r
            big_r0 = r2 * r2 * q4 * q * q
            big_r1 = big_r0 * q4
            big_r2 = big_r1 * q4
            big_r3 = big_r2 * q4
            seg_i[k, 0] = base + i
            seg_i[k, 1] = m >> 2
            seg_i[k, 2] = 0
            seg_f[k, 0] = e0
            seg_f[k, 1] = e1
            seg_f[k, 2] = e2
            seg_f[k, 3] = e3
            seg_f[k, 4] = big_r0
            seg_f[k, 5] = big_r1
            seg_f[k, 6] = big_r2
            seg_f[k, 7] = big_r3
            seg_f[k, 8] = big_q
            k += 1
            i += m
            started = True
        tl = hi - i
        if started:  # the last run's lanes carry on over the last 0-3 samples (no branch)
            seg_i[k - 1, 1] += np.int64(tl > 0)
            seg_i[k - 1, 2] = tl
        elif tl > 0:
            d = (start + i * delta - c) * inv
            e0 = al * _exp(-0.5 * d * d, tab)
            r = _exp(-d * dd - 0.5 * dd * dd, tab)
            seg_i[k, 0] = base + i
            seg_i[k, 1] = 1
            seg_i[k, 2] = hi - i
            seg_f[k, 0] = e0
            seg_f[k, 1] = e0 * r
            seg_f[k, 2] = e0 * r * r * q
            _unit_lanes(seg_f, k, 3)
            k += 1
        nxt[row] = k
    for r in range(3):  # sentinels: one group of +0.0 on the scratch slots, again and again
        k = nxt[r]
        seg_i[k, 0] = 3 * n
        seg_i[k, 1] = 1
        seg_i[k, 2] = 0
        _unit_lanes(seg_f, k, 0)
    return seg_i, seg_f, (count[0], count[1], count[2]), (nxt[0], nxt[1], nxt[2])


@njit(cache=True, nogil=True)
def gaussian_time_rows_kernel(t0, fs, centres, widths, amps, chans, cutoff, flat, n, tab):
    """:func:`gaussian_time_kernel` into a (3, n) record held in ``flat[:3 n]`` (``flat``
    has at least ``3 n + 8`` elements, all +0.0 past ``3 n``; chans 0-2), bit for bit: each
    row's Gaussians added in their order as :func:`add_gaussian` adds them, the three rows'
    recurrences run side by side (:func:`_rows_run3`). The slack takes adds of +0.0 (a
    partial last group's unused lanes, idle streams), which leave every value as it was
    (the record never holds -0.0: it starts at +0.0 and IEEE sums are -0.0 only of two
    -0.0). ``tab``: :func:`exp_table` (empty: ``math.exp`` throughout; the same values)."""
    seg_i, seg_f, starts, sents = _row_segments(t0, 1.0 / fs, centres, widths, amps, chans, cutoff, n, tab)
    _rows_run3(flat, seg_i, seg_f, starts, sents)


@njit(cache=True, parallel=True)
def gaussian_time_parallel_kernel(t0, fs, centres, widths, amps, chans, cutoff, n_chunks, out):
    """:func:`gaussian_time_kernel` for one long record, its time axis cut into chunks
    rendered on separate threads (each thread owns a sample range of ``out``: no write
    races, and balanced work whatever the number of channels). A Gaussian straddling a
    chunk border is evaluated in each chunk on that chunk's samples only: the same
    values, since :func:`add_gaussian` places its window and runs by arithmetic on the
    sample grid (runs restart at the border, a rounding-level difference)."""
    n = out.shape[1]
    size = (n + n_chunks - 1) // n_chunks
    delta = 1.0 / fs
    for k in prange(n_chunks):
        s0 = k * size
        s1 = min(n, s0 + size)
        if s0 >= s1:
            continue
        start = t0 + s0 * delta
        for g in range(centres.shape[0]):
            reach = MAX_CUTOFF * widths[g] if cutoff > MAX_CUTOFF else cutoff * widths[g]
            # skip Gaussians whose window misses this chunk (cheap test before the call)
            if centres[g] + reach < start - delta or centres[g] - reach > t0 + s1 * delta:
                continue
            add_gaussian(out[chans[g], s0:s1], amps[g], centres[g], widths[g], start, delta, cutoff)


@njit(cache=True, parallel=True)
def gaussian_time_batch_kernel(t0, fs, centres, widths, amps, chans, g_offsets, cutoff, out):
    """Records in parallel: record ``i`` adds Gaussians ``g_offsets[i]:g_offsets[i+1]``
    to ``out[i]`` (n_rec, C, T)."""
    for i in prange(out.shape[0]):
        g0 = g_offsets[i]
        g1 = g_offsets[i + 1]
        gaussian_time_kernel(t0, fs, centres[g0:g1], widths[g0:g1], amps[g0:g1], chans[g0:g1], cutoff,
                             out[i])


@njit(cache=True, nogil=True)
def _render_group(tau, sigma, amp, w0, w1, fs):
    """One wave group (slots ``w0:w1``) of one beat at RR = 1 s on the grid
    ``np.arange(min(tau - 5 sigma), max(tau + 5 sigma), 1 / fs)`` of ``Patient.span``.

    Returns (start s, grid step s, v (3, n) mV, max |amp| mV) (:func:`add_gaussian`)."""
    start = np.inf
    stop = -np.inf
    amax = 0.0
    for a in range(3):
        for w in range(w0, w1):
            start = min(start, tau[a, w] - 5.0 * sigma[a, w])
            stop = max(stop, tau[a, w] + 5.0 * sigma[a, w])
            amax = max(amax, abs(amp[a, w]))
    step = 1.0 / fs
    n = max(math.ceil((stop - start) / step), 0)
    delta = (start + step) - start  # numpy.arange's step
    v = np.zeros((3, n))
    for a in range(3):
        for w in range(w0, w1):
            add_gaussian(v[a], amp[a, w], tau[a, w], sigma[a, w], start, delta, SCREEN_CUTOFF)
    return start, delta, v, amax


@njit(cache=True, nogil=True)
def _norm3(v, i):
    return math.sqrt(v[0, i] * v[0, i] + v[1, i] * v[1, i] + v[2, i] * v[2, i])


@njit(cache=True, nogil=True)
def _speed2(v, fs):
    """Squared spatial velocity |dV/dt|² ((mV/s)²) with numpy.gradient's differences
    (central inside, one-sided at the ends); squared, so thresholds compare squares."""
    n = v.shape[1]
    out = np.empty(n)
    f = 0.5 * fs
    for i in range(1, n - 1):
        d0 = (v[0, i + 1] - v[0, i - 1]) * f
        d1 = (v[1, i + 1] - v[1, i - 1]) * f
        d2 = (v[2, i + 1] - v[2, i - 1]) * f
        out[i] = d0 * d0 + d1 * d1 + d2 * d2
    for i, j in ((0, 1), (n - 1, n - 2)):
        d0 = (v[0, i] - v[0, j]) * fs
        d1 = (v[1, i] - v[1, j]) * fs
        d2 = (v[2, i] - v[2, j]) * fs
        out[i] = d0 * d0 + d1 * d1 + d2 * d2
    return out


@njit(cache=True, nogil=True)
def _speed(v, fs):
    """Spatial velocity |dV/dt| (mV/s), numpy.gradient's differences."""
    return np.sqrt(_speed2(v, fs))


@njit(cache=True, nogil=True)
def _tangent_end(m, i0, i1, fs, start, delta):
    """Time (s; sample 0 at ``start``) of a wave's end by the tangent method on ``m[i0:i1]``: where
    the steepest descent after the peak, extended as a tangent, meets zero (the last sample
    when the wave never descends)."""
    k = i0
    for i in range(i0, i1):
        if m[i] > m[k]:
            k = i
    j = k
    dj = np.inf
    for i in range(k, i1):
        lo = max(i - 1, i0)
        hi = min(i + 1, i1 - 1)
        d = (m[hi] - m[lo]) * fs / (hi - lo)
        if d < dj:
            dj = d
            j = i
    return start + j * delta + m[j] / -dj if dj < 0 else start + (i1 - 1) * delta


@njit(cache=True, nogil=True)
def _first_last(x, thr):
    i0 = -1
    i1 = -1
    for i in range(x.shape[0]):
        if x[i] >= thr:
            if i0 < 0:
                i0 = i
            i1 = i
    return i0, i1


# robust delineation of the whole beat (_robust): thresholds of a delineator moved so
# beat-to-beat jitter (3 % per wave), respiration, f-waves and a previous T cannot move
# the measured intervals out of the class criteria
ROBUST_REL = 1.25  # upper QRS threshold 15 % x 1.25 of the peak spatial velocity
ROBUST_LO = 1.4  # lower QRS threshold 15 % / 1.4: T-on-QRS and f-waves add velocity
ROBUST_GAP = 0.03  # s, longest pause of the QRS velocity above threshold
ROBUST_PEAK = 0.85  # the T peak stands above any other repolarisation maximum by 1/0.85
ROBUST_TEND = 0.015  # s, spread of T ends from tangents at least 80 % as steep
ROBUST_AREA = 0.15  # |QRS area vector| / area of |V| (a cancelling R and S has no axis)
P_REL = 1.2  # P onset threshold 5 % x/÷ P_REL of the P peak
P_MIN_MV = 0.03  # P peak, mV (delineators look for P above ~0.02 mV)
RR_PREV = 0.8  # s: P is delineable after RR >= 0.8 s (P on T at shorter RR is allowed)


@njit(cache=True, nogil=True)
def _robust(tau, sigma, amp, lims, fs, q0):
    """Whole-beat delineation (all 11 slots summed, RR = 1 s) stays inside the bounds
    under perturbed thresholds, so a threshold delineator of the generated record, where
    beat-to-beat amplitude jitter, f-waves and overlapping slow waves move the signal a
    little, measures intervals inside the class criteria ``lims[7:13]`` (QRS, PR, QTc
    low/high): QRS width (spatial velocity) at 15 % / ROBUST_LO and x ROBUST_REL of its
    peak, with no pause >= ROBUST_GAP, and a QRS area vector (the class axis) of at least
    ROBUST_AREA of the area under |V| pointing the same way (20°) at either threshold; one
    dominant T peak after the QRS and a T end (tangent method) that does not jump between
    descents, QT from every QRS onset; a P peak >= P_MIN_MV with PR at P-onset thresholds
    5 % x/÷ P_REL, the previous beat's ST-T (RR = RR_PREV, scaled about the QRS onset
    ``q0`` s, ``model.scaled_timing``) included. Returns 0 if robust, else 1 (QRS), 2 (T),
    3 (P)."""
    start, delta, v, _ = _render_group(tau, sigma, amp, 0, 11, fs)
    n = v.shape[1]
    if n < 4:
        return 1
    sp = _speed(v, fs)
    m = np.empty(n)
    for i in range(n):
        m[i] = _norm3(v, i)
    w0 = max(math.ceil((-0.15 - start) / delta), 0)
    w1 = min(math.floor((0.20 - start) / delta) + 1, n)
    if w1 - w0 < 4:
        return 1
    smax = sp[w0:w1].max()
    on_min = np.inf
    on_max = -np.inf
    off_min = np.inf
    off_max = -np.inf
    for thr in (0.15 / ROBUST_LO, 0.15 * ROBUST_REL):
        first = -1
        last = -1
        for i in range(w0, w1):
            if sp[i] >= thr * smax:
                if first >= 0 and (i - last) * delta >= ROBUST_GAP:
                    return 1
                if first < 0:
                    first = i
                last = i
        width = (last - first) * delta
        if not (lims[7] <= width <= lims[8]):
            return 1
        on = start + first * delta
        on_min = min(on_min, on)
        on_max = max(on_max, on)
        off_min = min(off_min, start + last * delta)
        off_max = max(off_max, start + last * delta)
    # the QRS area (mean QRS) vector, the axis ST shift and T inversion refer to, is
    # well defined: not a near-cancellation of R and S, same direction in both windows
    area = np.zeros((2, 3))
    for k in range(2):
        ia = round(((on_max if k == 0 else on_min) - start) / delta)
        ib = round(((off_min if k == 0 else off_max) - start) / delta)
        tot = 0.0
        for i in range(ia, ib + 1):
            tot += m[i]
            for c in range(3):
                area[k, c] += v[c, i]
        an = math.sqrt(area[k, 0] ** 2 + area[k, 1] ** 2 + area[k, 2] ** 2)
        if an < ROBUST_AREA * tot:
            return 1
    cosang = (area[0, 0] * area[1, 0] + area[0, 1] * area[1, 1] + area[0, 2] * area[1, 2])
    if cosang < math.cos(math.radians(20.0)) * math.sqrt((area[0] ** 2).sum() * (area[1] ** 2).sum()):
        return 1
    # T: one dominant peak of |V| between J + 30 ms and R + 600 ms, not at the window start
    a = max(math.ceil((off_min + 0.03 - start) / delta), 0)
    z = min(math.floor((0.6 - start) / delta) + 1, n)
    if z - a < 4:
        return 2
    kt = a
    for i in range(a, z):
        if m[i] > m[kt]:
            kt = i
    if m[a] >= ROBUST_PEAK * m[kt]:
        return 2
    inside = False
    runs = 0
    for i in range(a, z):
        hot = m[i] >= ROBUST_PEAK * m[kt]
        if hot and not inside:
            runs += 1
        inside = hot
    if runs != 1:
        return 2
    # steepest descent after the peak; other descents nearly as steep must agree
    dmin = 0.0
    j = -1
    for i in range(kt, z):
        d = (m[min(i + 1, n - 1)] - m[i - 1]) * fs / (min(i + 1, n - 1) - i + 1)
        if d < dmin:
            dmin = d
            j = i
    if j < 0:
        return 2
    t_end = start + j * delta + m[j] / -dmin
    for i in range(kt, z):
        d = (m[min(i + 1, n - 1)] - m[i - 1]) * fs / (min(i + 1, n - 1) - i + 1)
        if d <= 0.8 * dmin and abs(start + i * delta + m[i] / -d - t_end) > ROBUST_TEND:
            return 2
    if not (lims[11] <= t_end - on_max and t_end - on_min <= lims[12]):
        return 2
    # P: main peak of |V| 280-30 ms before the QRS onset, onset at 5 % x/÷ P_REL of it, with
    # the previous beat's ST-T (at RR_PREV, the shortest RR at which P is delineated)
    # under it
    f = RR_PREV ** (1.0 / 3.0)
    for c in range(3):
        for w in range(8, 11):
            add_gaussian(v[c], amp[c, w], (tau[c, w] * f + q0 * (1.0 - f)) - RR_PREV, sigma[c, w] * f, start,
                         delta, SCREEN_CUTOFF)
    for i in range(n):
        m[i] = _norm3(v, i)
    p0 = max(math.ceil((on_min - 0.28 - start) / delta), 0)
    p1 = min(math.floor((on_max - 0.03 - start) / delta) + 1, n)
    if p1 - p0 < 4:
        return 3
    kp = p0
    for i in range(p0, p1):
        if m[i] > m[kp]:
            kp = i
    if m[kp] < P_MIN_MV or kp == p0 or kp == p1 - 1:
        return 3
    for rel in (0.05 / P_REL, 0.05 * P_REL):
        i = kp
        while i >= 0 and m[i] >= rel * m[kp]:
            i -= 1
        if i < 0:
            return 3
        onset = start + i * delta
        if not (lims[9] <= on_min - onset and on_max - onset <= lims[10]):
            return 3
    return 0


@njit(cache=True, nogil=True)
def _screen_qrs(tb, sb, ab, lims, fs, row):
    """Stage 1 of the screen (QRS width of the QRS slots alone); only the QRS slots of
    ``tb, sb, ab`` are read. Returns (passed, QRS onset s, squared peak velocity)."""
    row[3] = 1.0
    start, delta, v, amax = _render_group(tb, sb, ab, 2, 8, fs)
    if amax < 1e-6 or v.shape[1] < 2:
        return False, 0.0, 0.0
    sq = _speed2(v, fs)  # squared: no square roots on the hot path
    vq2 = sq.max()
    i0, i1 = _first_last(sq, 0.15 * 0.15 * vq2)  # QRS_VELOCITY_REL
    q0 = start + i0 * delta
    qrs = (start + i1 * delta) - q0
    row[0] = qrs
    return lims[0] <= qrs <= lims[1], q0, vq2


@njit(cache=True, nogil=True)
def _screen_rest(tb, sb, ab, lims, fs, q0, vq2, row):
    """Stages 2-5 of the screen (PR, QTc, slow waves, whole beat); True if accepted."""
    row[3] = 2.0
    start, delta, v, amax = _render_group(tb, sb, ab, 0, 2, fs)
    if amax < 1e-6 or v.shape[1] < 2:
        return False
    n = v.shape[1]
    m = np.empty(n)
    for i in range(n):
        m[i] = v[0, i] * v[0, i] + v[1, i] * v[1, i] + v[2, i] * v[2, i]
    i0, i1 = _first_last(m, 0.05 * 0.05 * m.max())  # squared magnitudes
    pr = q0 - (start + i0 * delta)
    row[1] = pr
    if not (lims[2] <= pr <= lims[3] and start + i1 * delta < q0):
        return False
    vp2 = _speed2(v, fs).max()
    row[3] = 3.0
    start, delta, v, amax = _render_group(tb, sb, ab, 8, 11, fs)
    if amax < 1e-6 or v.shape[1] < 2:
        return False
    n = v.shape[1]
    m = np.empty(n)
    for i in range(n):
        m[i] = _norm3(v, i)
    i0, i1 = _first_last(m, 0.001 * m.max())
    # T end by the tangent method on the samples [i0, i1) (Patient.t_end)
    t_end = _tangent_end(m, i0, i1, fs, start, delta)
    qt = t_end - q0
    row[2] = qt
    if not (lims[4] <= qt <= lims[5]):
        return False
    row[3] = 4.0
    if not (vp2 < lims[6] ** 2 * vq2 and _speed2(v, fs).max() < lims[6] ** 2 * vq2):
        return False
    # one-humped repolarisation: after its peak the ST-T magnitude never rises again by
    # more than lims[13] of the peak (a notched T or a late narrow wave)
    kp = int(np.argmax(m))
    low, rise = m[kp], 0.0
    for i in range(kp, n):
        low = min(low, m[i])
        rise = max(rise, m[i] - low)
    if rise > lims[13] * m[kp]:
        row[3] = 9.0
        return False
    rc = _robust(tb, sb, ab, lims, fs, q0)
    if rc:
        row[3] = 4.0 + rc
        return False
    row[3] = 0.0
    return True


@njit(cache=True, nogil=True)
def screen_kernel(tau, sigma, amp, lims, fs, first_only, out):
    """Normal-beat screen of candidate patients (``prior.screen_candidates``, RR = 1 s).

    tau, sigma (B, 3, 11) s, amp (B, 3, 11) mV; lims (14,) = QRS, PR, QTc (low, high) s,
    the slow-wave velocity ratio, the class criteria QRS, PR, QTc (low, high) s, then the
    largest rise of the ST-T magnitude after its peak (share of the peak);
    fs Hz, the delineation grid. ``out`` (B, 4) receives QRS,
    PR, QT (s; nan where not reached) and a code: 0 accepted, 1 QRS, 2 PR / P after QRS
    onset, 3 QTc, 4 P or ST-T slope too steep, 5/6/7 whole beat not robustly delineable
    at its QRS / T / P (:func:`_robust`), 9 ST-T magnitude rising again after its peak by
    more than ``lims[13]`` of it, -1 not screened. Slots: P 0:2, QRS 2:8,
    ST-T 8:11 (``model.P_WAVES, QRS_WAVES, REPOL``). With ``first_only`` stops at the first
    accepted candidate. Returns its index, or -1.
    """
    for b in range(tau.shape[0]):
        out[b, 0] = np.nan
        out[b, 1] = np.nan
        out[b, 2] = np.nan
        out[b, 3] = -1.0
    for b in range(tau.shape[0]):
        out[b, 0] = np.nan
        out[b, 1] = np.nan
        out[b, 2] = np.nan
        out[b, 3] = -1.0
    for b in range(tau.shape[0]):
        ok, q0, vq2 = _screen_qrs(tau[b], sigma[b], amp[b], lims, fs, out[b])
        if ok and _screen_rest(tau[b], sigma[b], amp[b], lims, fs, q0, vq2, out[b]) and first_only:
            return b
    for b in range(tau.shape[0]):
        if out[b, 3] == 0.0:
            return b
    return -1


@njit(cache=True, nogil=True, fastmath=True)
def _affine(z, mean, sqrt_cov, idx, x):
    """``x[k] = mean[k] + sqrt_cov[k] · z`` for the vector entries ``idx`` (fastmath: the
    dot products are vectorised, summation order free, ~1e-16 relative)."""
    for k in idx:
        s = 0.0
        for j in range(z.shape[0]):
            s += sqrt_cov[k, j] * z[j]
        x[k] = mean[k] + s


@njit(cache=True, nogil=True)
def _unpack(x, idx, tau_b, sig_b, tb, sb, ab):
    """Vector entries ``idx`` of ``[tau, log sigma, amp]`` (3 x 11 each) into the patient
    arrays, timing clipped onto the slots' support ``tau_b, sig_b`` (11, 2)."""
    for k in idx:
        blk = k // 33
        a = (k % 33) // 11
        w = k % 11
        if blk == 0:
            tb[a, w] = min(max(x[k], tau_b[w, 0]), tau_b[w, 1])
        elif blk == 1:
            sb[a, w] = min(max(math.exp(x[k]), sig_b[w, 0]), sig_b[w, 1])
        else:
            ab[a, w] = x[k]


@njit(cache=True, nogil=True)
def draw_screen_kernel(z, mean, sqrt_cov, tau_b, sig_b, qrs_idx, rest_idx, lims, fs, x, out):
    """Prior draws ``mean + sqrt_cov z[b]`` screened one by one until one is accepted.

    z (B, 99) standard normals; mean (99,), sqrt_cov (99, 99); tau_b, sig_b (11, 2) slot
    support; qrs_idx / rest_idx: vector entries of the QRS slots / all others. Only the
    QRS entries are computed before stage 1 of the screen (which rejects most draws), the
    rest only for draws that pass it. x (99,) receives the accepted vector (timing not
    yet clipped); out (B, 4) as in :func:`screen_kernel`. Returns the accepted index or -1.
    """
    no = np.zeros(1)
    return _draw_screen(z, mean, sqrt_cov, tau_b, sig_b, qrs_idx, rest_idx, lims, fs, np.zeros((1, 3)),
                        np.zeros((1, 2)), np.zeros(0, np.int64), np.zeros(5), no, 0.0, False, x, out)


@njit(cache=True, nogil=True)
def _gsum(tau, sigma, amp, f, a, t):
    """Axis ``a`` of one candidate's Gaussian sum at time ``t`` (ST/T timing scaled by ``f``)."""
    s = 0.0
    for i in range(tau.shape[1]):
        d = (t - tau[a, i] * f[i]) / (sigma[a, i] * f[i])
        s += amp[a, i] * math.exp(-0.5 * d * d)
    return s


LEAD_CUTOFF = 8.0  # widths: the 12-lead screen's Gaussians (exp(-32) ~ 1e-14 of the peak)


@njit(cache=True, nogil=True)
def _grid_sum(tb, sb, ab, w0, w1, f, t0, dt, v):
    """``v[a, k] = sum over slots w0:w1 of ab exp(-(t - tb f)^2 / 2 (sb f)^2)`` on the grid
    ``t = t0 + k dt`` (exp recurrence, :func:`add_gaussian`)."""
    v[:] = 0.0
    for a in range(3):
        for i in range(w0, w1):
            add_gaussian(v[a], ab[a, i], tb[a, i] * f[i], sb[a, i] * f[i], t0, dt, LEAD_CUTOFF)


@njit(cache=True, nogil=True)
def _lead_violation_one(tb, sb, ab, M, st_lims, t_leads, lims, rrs, qrs_rel, early=False):
    """12-lead normal-limit violation (mV, 0 = all hold) of one candidate (3, 11); see
    :func:`lead_violation_kernel`. ``early``: return as soon as one limit fails (the
    returned excess is then a lower bound; sampling only needs the verdict)."""
    nw = tb.shape[1]
    one = np.ones(nw)
    worst = 0.0
    # P wave in lead lims[5] (cheapest, first): upright, at least lims[3], at most lims[4]
    # (mV), one hump (local maxima above 30 % of the peak at most lims[8] s apart),
    # rising from 10 % to its peak within lims[9] s, no initial negative part deeper
    # than lims[10] of its peak; its PR (QRS onset - P onset in this lead) in lims[11:13]
    pm = _p_lead(tb, sb, ab, M, int(lims[5]))
    worst = max(worst, _p_ok(pm, lims))
    if early and worst > 0.0:
        return worst
    nq = 200
    v = np.empty((3, nq))
    _grid_sum(tb, sb, ab, 2, 8, one, -0.1, 1e-3, v)  # QRS slots
    vel = np.empty(nq - 1)
    base = np.empty(M.shape[0])
    x = np.empty(3)
    vmax = 0.0
    hi_i, lo_i, hi_f, lo_f = -1e300, 1e300, -1e300, 1e300
    for k in range(nq):  # QRS voltage: no lead beyond the normal upper limit
        for L in range(M.shape[0]):
            worst = max(worst, abs(M[L, 0] * v[0, k] + M[L, 1] * v[1, k] + M[L, 2] * v[2, k]) - lims[2])
        yi = M[0, 0] * v[0, k] + M[0, 1] * v[1, k] + M[0, 2] * v[2, k]  # lead I
        yf = M[5, 0] * v[0, k] + M[5, 1] * v[1, k] + M[5, 2] * v[2, k]  # aVF
        hi_i, lo_i, hi_f, lo_f = max(hi_i, yi), min(lo_i, yi), max(hi_f, yf), min(lo_f, yf)
    # frontal QRS axis from the net QRS in I and aVF, inside lims[13:15] degrees (0.01 mV/deg)
    ax = math.degrees(math.atan2(hi_f + lo_f, hi_i + lo_i))
    worst = max(worst, (lims[13] - ax) * 0.01, (ax - lims[14]) * 0.01)
    # fragmentation as a 0.5-40 Hz display shows it (the real records' criterion is read
    # band-passed): the QRS slots widened by the low-pass, as in _qrs12_band
    vb = np.empty((3, nq))
    _band_grid(tb, sb, ab, 2, 8, one, lims[7], -0.1, 1e-3, vb)
    worst = max(worst, _fragmented(vb, M, lims[15]))
    for k in range(nq - 1):
        d0, d1, d2 = v[0, k + 1] - v[0, k], v[1, k + 1] - v[1, k], v[2, k + 1] - v[2, k]
        vel[k] = math.sqrt(d0 * d0 + d1 * d1 + d2 * d2)
        vmax = max(vmax, vel[k])
    k0, k1 = 0, nq - 2
    while k0 < nq - 1 and vel[k0] < qrs_rel * vmax:
        k0 += 1
    while k1 > 0 and vel[k1] < qrs_rel * vmax:
        k1 -= 1
    q0 = -0.1 + k0 * 1e-3
    q1 = -0.1 + (k1 + 1) * 1e-3
    for a in range(3):
        x[a] = _gsum(tb, sb, ab, one, a, q0 - 0.01)
    for L in range(M.shape[0]):
        base[L] = M[L, 0] * x[0] + M[L, 1] * x[1] + M[L, 2] * x[2]
        worst = max(worst, abs(base[L]) - lims[0])
    pr = q0 - pm[3]
    worst = max(worst, (lims[11] - pr) * 10.0, (pr - lims[12]) * 10.0)
    if early and worst > 0.0:
        return worst
    ts = np.empty_like(tb)
    ss = np.empty_like(sb)
    for r in range(rrs.shape[0]):
        g = rrs[r] ** (1.0 / 3.0)
        # ST, T1, T2 scale with RR^(1/3), their centres about the QRS onset q0
        # (model.scaled_timing: tau g + q0 (1 - g), exactly tau at g = 1), the others not
        for a in range(3):
            for i in range(nw):
                if i >= nw - 3:
                    ts[a, i] = tb[a, i] * g + q0 * (1.0 - g)
                    ss[a, i] = sb[a, i] * g
                else:
                    ts[a, i] = tb[a, i]
                    ss[a, i] = sb[a, i]
        for a in range(3):
            x[a] = _gsum(ts, ss, ab, one, a, q1 + 0.06)
        # ST at J + 60 ms against the PR baseline, inside each lead's own (low, high)
        for L in range(M.shape[0]):
            st = M[L, 0] * x[0] + M[L, 1] * x[1] + M[L, 2] * x[2] - base[L]
            worst = max(worst, st_lims[L, 0] - st, st - st_lims[L, 1])
        # T peak: the largest spatial magnitude on a 4-ms grid from J + 80 ms
        n_t = int(math.ceil((0.45 * g - 0.08) / 0.004 - 1e-9))
        vt = np.empty((3, n_t))
        _grid_sum(ts, ss, ab, 0, nw, one, q1 + 0.08, 0.004, vt)
        best, kb = -1.0, 0
        for k in range(n_t):
            m = vt[0, k] * vt[0, k] + vt[1, k] * vt[1, k] + vt[2, k] * vt[2, k]
            if m > best:
                best, kb = m, k
        for j in range(t_leads.shape[0]):
            L = t_leads[j]
            tl = M[L, 0] * vt[0, kb] + M[L, 1] * vt[1, kb] + M[L, 2] * vt[2, kb] - base[L]
            worst = max(worst, lims[1] - tl)
            if L != int(lims[17]):
                # the lead's T peaks with the spatial T (a narrow T loop): at the spatial
                # peak it reads at least lims[16] of its own largest T value
                mx = -1e300
                for k in range(n_t):
                    mx = max(mx, M[L, 0] * vt[0, k] + M[L, 1] * vt[1, k] + M[L, 2] * vt[2, k] - base[L])
                worst = max(worst, lims[16] * mx - tl)
        if early and worst > 0.0:
            return worst
        # global QRS duration as a band-limited 12-lead delineator sees it
        worst = max(worst, (_qrs12_band(ts, ss, ab, one, M, qrs_rel, lims[7]) - lims[6]) * 10.0)
        if early and worst > 0.0:
            return worst
    return worst


@njit(cache=True, nogil=True)
def _fragmented(v, M, rel):
    """Deepest notch (mV) splitting a positive QRS deflection in leads I-aVF, V3-V6 (rows 0-5,
    8-11 of ``M``): two local maxima of the lead, each >= max(0.1 mV, 0.3 x its R), with the
    lowest value between them under ``rel`` x the smaller one; the excess below that level
    (0 where no lead is notched). ``v`` (3, n): the QRS slots on a uniform grid."""
    n = v.shape[1]
    y = np.empty(n)
    worst = 0.0
    for L in range(M.shape[0]):
        if L == 6 or L == 7:  # V1, V2: an rSr' is a normal variant there
            continue
        r = 0.0
        for k in range(n):
            y[k] = M[L, 0] * v[0, k] + M[L, 1] * v[1, k] + M[L, 2] * v[2, k]
            r = max(r, y[k])
        floor = max(0.1, 0.3 * r)
        prev = -1  # last qualifying local maximum
        low = 1e300  # lowest value since it
        for k in range(1, n - 1):
            if prev >= 0:
                low = min(low, y[k])
            if y[k] >= floor and y[k] >= y[k - 1] and y[k] > y[k + 1]:
                if prev >= 0:
                    worst = max(worst, rel * min(y[k], y[prev]) - low)
                prev, low = k, 1e300
    return worst


@njit(cache=True, nogil=True)
def _p_lead(tb, sb, ab, M, L):
    """The P slots in lead ``L`` on a 2-ms grid over [-0.45, 0.10) s (their support, ±3.5
    widths): (largest value mV, largest magnitude mV, time s between the first and last
    local maxima above 30 % of the largest value, onset s (last sample before the peak
    under 10 % of it), rise s (onset to peak), deepest value before the peak mV)."""
    n = 275
    v = np.empty((3, n))
    _grid_sum(tb, sb, ab, 0, 2, np.ones(tb.shape[1]), -0.45, 0.002, v)
    y = np.empty(n)
    pmax, pabs, kp = -1e300, 0.0, 0
    for k in range(n):
        y[k] = M[L, 0] * v[0, k] + M[L, 1] * v[1, k] + M[L, 2] * v[2, k]
        if y[k] > pmax:
            pmax, kp = y[k], k
        pabs = max(pabs, abs(y[k]))
    first, last = -1, -1
    for k in range(1, n - 1):
        if y[k] > 0.3 * pmax and y[k] >= y[k - 1] and y[k] > y[k + 1]:
            if first < 0:
                first = k
            last = k
    j = kp
    while j > 0 and y[j] >= 0.1 * pmax:
        j -= 1
    neg = 0.0
    for k in range(kp):
        neg = min(neg, y[k])
    return (pmax, pabs, (last - first) * 0.002 if first >= 0 else 0.0, -0.45 + j * 0.002,
            (kp - j) * 0.002, neg)


@njit(cache=True, nogil=True)
def _p_ok(pm, lims):
    """The QRS-onset-independent lead-II P limits (amplitude, one hump, rise, no initial
    negativity) on :func:`_p_lead`'s measures ``pm``: their largest excess (mV; times at
    10 mV/s, the negative part beyond its share of the peak)."""
    pmax, pabs, sep, _, rise, neg = pm
    return max(lims[3] - pmax, pabs - lims[4], (sep - lims[8]) * 10.0, (rise - lims[9]) * 10.0,
               -neg - lims[10] * max(pmax, 0.0))


@njit(cache=True, nogil=True)
def _band_grid(tb, sb, ab, w0, w1, f, sig_f, t0, dt, v):
    """:func:`_grid_sum` of slots w0:w1 seen through a Gaussian low-pass of width ``sig_f``
    s: each Gaussian widens to sqrt((sb f)^2 + sig_f^2) at equal area."""
    nw = tb.shape[1]
    te = np.zeros((3, nw))
    se = np.ones((3, nw))
    ae = np.zeros((3, nw))
    for a in range(3):
        for i in range(w0, w1):
            s0 = sb[a, i] * f[i]
            s1 = math.sqrt(s0 * s0 + sig_f * sig_f)
            te[a, i] = tb[a, i] * f[i]
            se[a, i] = s1
            ae[a, i] = ab[a, i] * s0 / s1
    _grid_sum(te, se, ae, w0, w1, np.ones(nw), t0, dt, v)


@njit(cache=True, nogil=True)
def _qrs12_band(tb, sb, ab, f, M, qrs_rel, sig_f):
    """Global QRS duration (s) of the whole beat (every slot, ST-T timing scaled by ``f``)
    seen through a Gaussian low-pass of width ``sig_f`` s (each Gaussian widens to
    sqrt(sigma^2 + sig_f^2) at equal area): the connected run (gaps <= 30 ms) around the
    peak of the 12-lead spatial velocity ``|M dV/dt|`` above ``qrs_rel`` of it, 1-kHz grid
    over [-0.15, 0.25) s."""
    n = 400
    nw = tb.shape[1]
    G = np.zeros((3, 3))  # M^T M: |M d|^2 = d^T G d
    for a in range(3):
        for c in range(3):
            for L in range(M.shape[0]):
                G[a, c] += M[L, a] * M[L, c]
    v = np.empty((3, n))
    _band_grid(tb, sb, ab, 0, nw, f, sig_f, -0.15, 1e-3, v)
    vel = np.empty(n - 1)
    for k in range(n - 1):
        d0, d1, d2 = v[0, k + 1] - v[0, k], v[1, k + 1] - v[1, k], v[2, k + 1] - v[2, k]
        q = (G[0, 0] * d0 * d0 + G[1, 1] * d1 * d1 + G[2, 2] * d2 * d2
             + 2.0 * (G[0, 1] * d0 * d1 + G[0, 2] * d0 * d2 + G[1, 2] * d1 * d2))
        vel[k] = math.sqrt(max(q, 0.0))
    k0 = int(np.argmax(vel))
    thr = qrs_rel * vel[k0]
    lo = k0
    for j in range(k0 - 1, -1, -1):
        if vel[j] >= thr:
            if lo - j > 30:
                break
            lo = j
    hi = k0
    for j in range(k0 + 1, n - 1):
        if vel[j] >= thr:
            if j - hi > 30:
                break
            hi = j
    return (hi - lo) * 1e-3


@njit(cache=True, nogil=True)
def lead_violation_kernel(tau, sigma, amp, M, st_lims, t_leads, lims, rrs, qrs_rel, out):
    """12-lead normal-limit violation (mV, 0 = all hold) of candidates (B, 3, 11) at RR = 1 s
    (NumPy twin: ``_reference.lead_violation_kernel``; see ``prior.lead_violation``).

    ``M`` (12, 3) VCG -> leads; ``st_lims`` (12, 2) each lead's ST limits (low, high, mV
    at J + 60 ms against the PR baseline; -inf, inf exempt a lead); ``t_leads`` rows whose
    T peak must be upright; ``lims`` = (PR max, T min, QRS max, P min, P max (mV), P lead
    index, band-limited 12-lead QRS duration max (s), low-pass width (s), largest
    separation of P peaks (s), longest P rise (s), deepest initial negative P (share of its
    peak), PR in the P lead low/high (s), frontal QRS axis low/high (deg, net QRS of leads
    I and aVF, rows 0 and 5), notch depth of a fragmented QRS (:func:`_fragmented`), least
    share of its own largest T value a T lead reads at the spatial T peak, the T lead
    exempt from that (row)); ``rrs`` intervals (s) at which ST (J + 60 ms), the T peak and
    the band-limited QRS duration (:func:`_qrs12_band`; its excess counts 10 mV/s) are
    checked; the QRS bounds for ST are the spatial-velocity ``qrs_rel`` crossings on a
    1-kHz grid over [-0.1, 0.1) s; the P slots' largest value in lead ``lims[5]`` must lie
    in [P min, P max], their largest magnitude below P max, and their peaks (local maxima
    above 30 %) at most ``lims[8]`` apart (excess counts 10 mV/s).
    """
    for b in range(tau.shape[0]):
        out[b] = _lead_violation_one(tau[b], sigma[b], amp[b], M, st_lims, t_leads, lims, rrs, qrs_rel)


@njit(cache=True, nogil=True)
def draw_screen_leads_kernel(z, mean, sqrt_cov, tau_b, sig_b, qrs_idx, rest_idx, lims, fs, M, st_lims,
                             t_leads, llims, rrs, qrs_rel, x, out):
    """:func:`draw_screen_kernel` whose accepted draws must also meet the 12-lead normal
    limits (:func:`lead_violation_kernel` with ``M, st_lims, t_leads, llims, rrs,
    qrs_rel``); a draw failing them gets code 8 in ``out[b, 3]`` (checked after the QRS
    stage and before the others: a draw failing both has code 8). The accepted index and
    ``x`` are those of the NumPy twin (``_reference.draw_screen_leads_kernel``)."""
    return _draw_screen(z, mean, sqrt_cov, tau_b, sig_b, qrs_idx, rest_idx, lims, fs, M, st_lims, t_leads,
                        llims, rrs, qrs_rel, True, x, out)


@njit(cache=True, nogil=True)
def _draw_screen(z, mean, sqrt_cov, tau_b, sig_b, qrs_idx, rest_idx, lims, fs, M, st_lims, t_leads, llims,
                 rrs, qrs_rel, use_leads, x, out):
    tb = np.empty((3, 11))
    sb = np.empty((3, 11))
    ab = np.empty((3, 11))
    for b in range(z.shape[0]):
        out[b, 0] = np.nan
        out[b, 1] = np.nan
        out[b, 2] = np.nan
        out[b, 3] = -1.0
    for b in range(z.shape[0]):
        zb = z[b]
        _affine(zb, mean, sqrt_cov, qrs_idx, x)
        _unpack(x, qrs_idx, tau_b, sig_b, tb, sb, ab)
        ok, q0, vq2 = _screen_qrs(tb, sb, ab, lims, fs, out[b])
        if not ok:
            continue
        _affine(zb, mean, sqrt_cov, rest_idx, x)
        _unpack(x, rest_idx, tau_b, sig_b, tb, sb, ab)
        # the 12-lead limits (their early exit: the lead-II P first) before the whole-beat
        # stages: they reject about twice as many of the draws that reach them and cost less
        # than _screen_rest's delineation. A draw is accepted when both pass, so the order
        # decides only a rejected draw's code (8 where both would fail), not the index.
        if use_leads and _lead_violation_one(tb, sb, ab, M, st_lims, t_leads, llims, rrs, qrs_rel, True) > 0.0:
            out[b, 3] = 8.0
            continue
        if _screen_rest(tb, sb, ab, lims, fs, q0, vq2, out[b]):
            return b
    return -1


@njit(cache=True, nogil=True)
def fiducials_kernel(tau, sigma, amp, fs, out):
    """Fiducial times (s from R, RR = 1 s) of a beat template: P onset, P peak, QRS onset,
    R peak, QRS offset, T peak, T offset (``synth.ANNOTATION_KEYS``) into ``out`` (7,),
    inf where the group is silent (NumPy twin: ``_reference.fiducials_kernel``, built on
    ``Patient.track / span_of / t_end``).

    Each group (P 0:2, QRS 2:8, ST-T 8:11) on its ``Patient.track`` grid: P and ST-T span
    where the spatial magnitude is >= 5 % of its peak, the QRS where the spatial velocity
    is >= 15 %; peaks where the magnitude is largest from the onset up to (not including)
    the end; the T offset by the tangent method on the samples above 0.1 %.
    """
    for i in range(out.shape[0]):
        out[i] = np.inf
    for g in range(3):
        w0 = 0 if g == 0 else (2 if g == 1 else 8)
        w1 = 2 if g == 0 else (8 if g == 1 else 11)
        start, delta, v, amax = _render_group(tau, sigma, amp, w0, w1, fs)
        n = v.shape[1]
        if amax < 1e-6 or n < 2:
            continue
        mag = np.empty(n)
        for i in range(n):
            mag[i] = _norm3(v, i)
        crit = _speed(v, fs) if g == 1 else mag
        i0, i1 = _first_last(crit, (0.15 if g == 1 else 0.05) * crit.max())
        on_i = 0 if g == 0 else (2 if g == 1 else -1)
        pk_i = 1 if g == 0 else (3 if g == 1 else 5)
        off_i = 4 if g == 1 else (6 if g == 2 else -1)
        if on_i >= 0:
            out[on_i] = start + i0 * delta
        if off_i >= 0:
            out[off_i] = start + i1 * delta
        if i1 > i0:
            k = i0
            for i in range(i0, i1):
                if mag[i] > mag[k]:
                    k = i
            out[pk_i] = start + k * delta
        if g == 2:  # T offset: tangent method on the samples [j0, j1) above 0.1 %
            j0, j1 = _first_last(mag, 0.001 * mag.max())
            out[6] = _tangent_end(mag, j0, j1, fs, start, delta)


@njit(cache=True, nogil=True)
def lu3_solve_kernel(lu, perm, v, out):
    """``out = A^-1 v`` for a 3x3 ``A`` from its LAPACK ``getrf`` factors (``lu``: unit lower
    L below the diagonal, U on and above it; ``perm``: row order after the pivoting), column
    by column of ``v (3, T)``, with the operations in the order and rounding of OpenBLAS's
    ``dgesv`` (``getrs``: forward substitution whose two-term update is a GEMM dot product
    -- one FMA, then one subtraction --, back substitution multiplying by the reciprocal of
    each pivot). Its oracle is ``numpy.linalg.solve`` itself: callers check the two agree bit
    for bit on this machine before using it (:func:`cardiosim.sources.synthetic._frank_matrix`),
    since another BLAS kernel may round differently. ~60x faster on (3, 5000): ``getrs`` with
    5,000 right-hand sides of three rows spends its time packing."""
    l10, l20, l21 = lu[1, 0], lu[2, 0], lu[2, 1]
    u01, u02, u12 = lu[0, 1], lu[0, 2], lu[1, 2]
    i00, i11, i22 = 1.0 / lu[0, 0], 1.0 / lu[1, 1], 1.0 / lu[2, 2]
    p0, p1, p2 = perm[0], perm[1], perm[2]
    for t in range(v.shape[1]):
        y0 = v[p0, t]
        y1 = v[p1, t] - l10 * y0
        y2 = v[p2, t] - _fma(l21, y1, l20 * y0)
        x2 = y2 * i22
        x1 = (y1 - u12 * x2) * i11
        out[0, t] = ((y0 - u02 * x2) - u01 * x1) * i00
        out[1, t] = x1
        out[2, t] = x2


@njit(cache=True, nogil=True)
def all_finite_kernel(x):
    """``np.all(np.isfinite(x))`` of a C-contiguous float64 array (twin:
    ``_reference.all_finite_kernel``): a value is finite unless its exponent bits are all
    ones, so the largest exponent field over the array decides (an integer max the compiler
    vectorises; ~4x NumPy's isfinite and all on a 10-s dipole, without the boolean
    temporary)."""
    u = x.reshape(-1).view(np.uint64)
    mask = np.uint64(0x7FF0000000000000)
    top = np.uint64(0)
    for i in range(u.shape[0]):
        top = max(top, u[i] & mask)
    return top != mask


@njit(cache=True, nogil=True)
def lu3_solve_fma_kernel(lu, perm, v, out):
    """:func:`lu3_solve_kernel` in the rounding of OpenBLAS's SkylakeX (AVX-512) ``dgesv``,
    which fuses two more updates: the first forward step ``y1 = v1 - l10 y0`` is one FMA, and
    the first row's back substitution subtracts ``u02 x2`` unfused, then ``u01 x1`` in an FMA
    (found by trying the orderings against ``numpy.linalg.solve`` on such a CPU; the Haswell
    kernel rounds those two steps otherwise). Same contract: callers use it only after checking
    it against ``numpy.linalg.solve`` bit for bit on this machine
    (:func:`cardiosim.sources.synthetic._fast_solver`)."""
    l10, l20, l21 = lu[1, 0], lu[2, 0], lu[2, 1]
    u01, u02, u12 = lu[0, 1], lu[0, 2], lu[1, 2]
    i00, i11, i22 = 1.0 / lu[0, 0], 1.0 / lu[1, 1], 1.0 / lu[2, 2]
    p0, p1, p2 = perm[0], perm[1], perm[2]
    for t in range(v.shape[1]):
        y0 = v[p0, t]
        y1 = _fma(-l10, y0, v[p1, t])
        y2 = v[p2, t] - _fma(l21, y1, l20 * y0)
        x2 = y2 * i22
        x1 = (y1 - u12 * x2) * i11
        out[0, t] = _fma(-u01, x1, y0 - u02 * x2) * i00
        out[1, t] = x1
        out[2, t] = x2


@njit(cache=True, nogil=True)
def unpack_patient_kernel(x, e, tau_b, sig_b, tau, sigma, amp):
    """One prior vector ``x`` (99,) as a patient's (3, 11) arrays, timing projected onto the
    slots' support as ``prior._unpacked`` does (``np.clip``: ``min(max(v, lo), hi)`` with
    NumPy's comparisons): ``tau`` from ``x[:33]``, ``sigma`` from ``e = np.exp(x[33:66])``
    (NumPy's exp, computed by the caller), ``amp`` = ``x[66:]`` (NumPy twin:
    ``prior._unpacked(x[None])``; finite ``x``, as a screened draw is)."""
    for a in range(3):
        for w in range(11):
            k = 11 * a + w
            v = x[k]
            v = v if v > tau_b[w, 0] else tau_b[w, 0]
            tau[a, w] = v if v < tau_b[w, 1] else tau_b[w, 1]
            v = e[k]
            v = v if v > sig_b[w, 0] else sig_b[w, 0]
            sigma[a, w] = v if v < sig_b[w, 1] else sig_b[w, 1]
            amp[a, w] = x[66 + k]
