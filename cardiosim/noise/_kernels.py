"""Numba kernels of the noise module, each with a plain NumPy twin (the test oracle).

Kernels write into an ``out`` argument; the public wrappers in :mod:`cardiosim.noise`
validate and allocate. ``KERNELS`` pairs every kernel with its reference so tests and
benchmarks share one table.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numba import njit
from scipy import signal as _signal

from .._exp_kernels import unary_loop_inplace
from .._pairwise_kernels import pairwise_sum, pairwise_sum_flat  # noqa: F401 - re-exported
from ..errors import LeadError


@njit(cache=True, nogil=True)
def ar_filter_kernel(e, a, seg_len, out):  # pragma: no cover - compiled
    """Time-varying all-pole (AR) synthesis ``out[t] = e[t] - sum_k a[s, k] out[t-1-k]``.

    e : float64 [T] innovations (already scaled); a : float64 [n_seg, p] AR coefficients
    (``1 + a1 z^-1 + ...`` convention, as scipy.signal.lfilter's ``a[1:]``); segment ``s``
    covers samples ``[s*seg_len, (s+1)*seg_len)``; the last segment extends to the end.
    """
    n = e.shape[0]
    n_seg, p = a.shape
    for t in range(n):
        s = t // seg_len
        if s >= n_seg:
            s = n_seg - 1
        acc = e[t]
        for k in range(p):
            j = t - 1 - k
            if j < 0:
                break
            acc -= a[s, k] * out[j]
        out[t] = acc


def ar_filter_ref(e, a, seg_len):
    """NumPy/SciPy twin of :func:`ar_filter_kernel` (lfilter per segment, state carried over)."""
    e = np.asarray(e, dtype=np.float64)
    a = np.asarray(a, dtype=np.float64)
    n = e.shape[0]
    n_seg, p = a.shape
    out = np.zeros(n)
    zi = np.zeros(p)
    for s in range(n_seg):
        lo = s * seg_len
        hi = n if s == n_seg - 1 else min(n, (s + 1) * seg_len)
        if lo >= n:
            break
        den = np.concatenate([[1.0], a[s]])
        # Rebuild the direct-form-II-transposed state from the last p outputs so the
        # recursion continues across coefficient changes exactly as the kernel does.
        past = out[max(0, lo - p):lo][::-1]
        past = np.concatenate([past, np.zeros(p - past.size)])
        zi = np.array([-np.dot(den[k + 1:], past[:p - k]) for k in range(p)])
        out[lo:hi], _ = _signal.lfilter([1.0], den, e[lo:hi], zi=zi)
    return out


@njit(cache=True, nogil=True)
def contact_kernel(starts, durations, levels, taus, fs, ramp_s, mask, offset):  # pragma: no cover
    """Contact loss / pop waveforms of one electrode; events sorted by ``starts``.

    For event ``i``: during ``[starts[i], starts[i]+durations[i])`` (samples) the contact
    ``mask`` is 0 and ``offset`` is ``levels[i]`` mV (flat: the electrode keeps a held
    half-cell offset; saturated: a rail-size value). After it, contact returns over
    ``ramp_s`` seconds (linear) and the offset decays as ``levels[i] * exp(-dt / taus[i])``
    (re-equilibration of the half-cell potential, an RC recovery). A new event resets the
    electrode: it ends the previous one (and its recovery) where it starts.
    ``mask`` must start at 1 and ``offset`` at 0.
    """
    n = mask.shape[0]
    ramp = max(1, int(ramp_s * fs))
    m_ev = starts.shape[0]
    for i in range(m_ev):
        s0 = max(0, starts[i])
        nxt = n
        if i + 1 < m_ev:
            nxt = min(n, starts[i + 1])
        s1 = min(nxt, starts[i] + durations[i])
        for t in range(s0, s1):
            mask[t] = 0.0
            offset[t] = levels[i]
        tau = taus[i] * fs
        t_end = min(nxt, s1 + int(14.0 * tau) + 1)
        # exponential tail by recursion (one multiply per sample instead of an exp);
        # re-anchored every 256 samples so rounding cannot accumulate
        step = np.exp(-1.0 / tau)
        v = levels[i]
        for t in range(s1, t_end):
            dt = t - s1
            if dt % 256 == 0:
                v = levels[i] * np.exp(-dt / tau)
            offset[t] = v
            v *= step
            if dt < ramp:
                mask[t] = dt / ramp


def contact_ref(starts, durations, levels, taus, fs, ramp_s, n):
    """NumPy twin of :func:`contact_kernel`; returns ``(mask, offset)`` of length ``n``."""
    t = np.arange(n)
    mask = np.ones(n)
    offset = np.zeros(n)
    ramp = max(1, int(ramp_s * fs))
    starts = np.asarray(starts)
    for i, (s0, d, lev, tau) in enumerate(zip(starts, durations, levels, taus)):
        nxt = min(n, starts[i + 1]) if i + 1 < len(starts) else n
        s1 = min(nxt, s0 + d)
        during = (t >= s0) & (t < s1)
        mask[during] = 0.0
        offset[during] = lev
        tau_n = tau * fs
        t_end = min(nxt, s1 + int(14.0 * tau_n) + 1)
        after = (t >= s1) & (t < t_end)
        dt = t[after] - s1
        offset[after] = lev * np.exp(-dt / tau_n)
        r = after & (t - s1 < ramp)
        mask[r] = (t[r] - s1) / ramp
    return mask, offset


# --- Gaussian random numbers: Marsaglia & Tsang's ziggurat on the caller's raw bits -------
#
# numpy's Generator.standard_normal is the bottleneck of noise synthesis (about 8 ns per
# float32 value); this ziggurat (Marsaglia & Tsang, J Stat Softw 2000;5(8), "RNOR", 128
# layers) reads the 32-bit halves of the caller's bit generator's raw 64-bit outputs
# (``rng.bit_generator.random_raw``), so every draw still comes from the caller's Generator
# and is reproducible from its state.

def _ziggurat_tables(layers: int, r: float, v: float, m: float):
    """Marsaglia & Tsang's ziggurat tables ``(k, w, f)`` for ``layers`` layers, tail start
    ``r``, layer area ``v`` and magnitude scale ``m`` (2**31 or 2**23 for the bits a draw has)."""
    dn = tn = r
    k = np.zeros(layers, np.int64)
    w = np.zeros(layers)
    f = np.zeros(layers)
    q = v / np.exp(-0.5 * dn * dn)
    k[0] = int((dn / q) * m)
    w[0], w[layers - 1] = q / m, dn / m
    f[0], f[layers - 1] = 1.0, np.exp(-0.5 * dn * dn)
    for i in range(layers - 2, 0, -1):
        dn = np.sqrt(-2 * np.log(v / dn + np.exp(-0.5 * dn * dn)))
        k[i + 1] = int((dn / tn) * m)
        tn = dn
        f[i] = np.exp(-0.5 * dn * dn)
        w[i] = dn / m
    return k, w, f


ZIG_R = 3.442619855899
ZIG_KN, ZIG_WN, ZIG_FN = _ziggurat_tables(128, ZIG_R, 9.91256303526217e-3, 2147483648.0)
_U32 = 4294967296.0


@njit(cache=True, nogil=True)
def ziggurat_kernel(u, out, start, kn, wn, fn):  # pragma: no cover - compiled
    """Fill ``out[start:]`` with standard normal values from the uint32 stream ``u``.

    Returns ``(filled, used)``: ``filled == out.size`` when done; otherwise the stream ran
    out and the sample at index ``filled`` must be redrawn from a new stream.
    """
    n_u = u.shape[0]
    n = out.shape[0]
    i = start
    pos = 0
    while i < n:
        if pos >= n_u:
            return i, pos
        hz = np.int64(np.int32(u[pos]))
        pos += 1
        iz = hz & 127
        if abs(hz) < kn[iz]:
            out[i] = hz * wn[iz]
            i += 1
            continue
        while True:                                   # slow path: wedges and the tail
            x = hz * wn[iz]
            if iz == 0:                               # tail beyond R (Marsaglia 1964)
                while True:
                    if pos + 2 > n_u:
                        return i, pos
                    x = -np.log((u[pos] + 0.5) / 4294967296.0) / 3.442619855899
                    y = -np.log((u[pos + 1] + 0.5) / 4294967296.0)
                    pos += 2
                    if y + y >= x * x:
                        break
                x = 3.442619855899 + x if hz > 0 else -3.442619855899 - x
                break
            if pos + 2 > n_u:
                return i, pos
            uu = (u[pos] + 0.5) / 4294967296.0
            pos += 1
            if fn[iz] + uu * (fn[iz - 1] - fn[iz]) < np.exp(-0.5 * x * x):
                break
            hz = np.int64(np.int32(u[pos]))
            pos += 1
            iz = hz & 127
            if abs(hz) < kn[iz]:
                x = hz * wn[iz]
                break
        out[i] = x
        i += 1
    return i, pos


def ziggurat_ref(u, n):
    """Pure-Python twin of :func:`ziggurat_kernel` (same stream -> same values); returns
    ``(values float64 [<= n], used)``."""
    u = [int(v) for v in np.asarray(u, dtype=np.uint32)]
    kn, wn, fn = ZIG_KN, ZIG_WN, ZIG_FN
    out, pos = [], 0

    def s32(v):
        return v - (1 << 32) if v >= (1 << 31) else v

    while len(out) < n:
        if pos >= len(u):
            break
        hz = s32(u[pos]); pos += 1
        iz = hz & 127
        if abs(hz) < kn[iz]:
            out.append(hz * wn[iz]); continue
        while True:
            x = hz * wn[iz]
            if iz == 0:
                while True:
                    if pos + 2 > len(u):
                        return np.array(out), pos
                    x = -np.log((u[pos] + 0.5) / _U32) / ZIG_R
                    y = -np.log((u[pos + 1] + 0.5) / _U32)
                    pos += 2
                    if y + y >= x * x:
                        break
                x = ZIG_R + x if hz > 0 else -ZIG_R - x
                break
            if pos + 2 > len(u):
                return np.array(out), pos
            uu = (u[pos] + 0.5) / _U32; pos += 1
            if fn[iz] + uu * (fn[iz - 1] - fn[iz]) < np.exp(-0.5 * x * x):
                break
            hz = s32(u[pos]); pos += 1
            iz = hz & 127
            if abs(hz) < kn[iz]:
                x = hz * wn[iz]
                break
        out.append(x)
    return np.array(out), pos


# --- Gaussian numbers from a per-call seed: xoshiro256++ and a 256-layer ziggurat in one kernel ---
#
# ``random_raw`` costs ~5 ns per 64-bit word through the Generator's Python interface, and the
# 128-layer ziggurat above sends 2.7 % of its candidates down the slow path (an exp, branches),
# which in a loop costs more than the fast path itself. Here the caller's Generator gives one
# 64-bit seed per call (results stay reproducible from its state; how many numbers a call
# draws does not shift the numbers of any other call), SplitMix64 expands it into two
# xoshiro256++ states (Blackman & Vigna, ACM TOMS 2021, seeded as they recommend), and a
# 256-layer ziggurat for single precision (Marsaglia & Tsang 2000, laid out as numpy's
# ``random_standard_normal_f``: 8 bits pick the layer, 1 the sign, 23 the magnitude) turns
# each 32-bit value of the first stream (the low then the high half of each output) into one
# number; the 0.7 % that fall outside their layer's rectangle finish the ziggurat's slow path
# (wedge test, Marsaglia's 1964 tail beyond R) with values of the second stream (the high
# half of each output), in the order of the samples. The values are mapped as they are drawn
# (the state in registers); the rejected ones of a row are finished after it.

ZIG256_R = 3.6541528853610088
# 23-bit magnitude
ZIG256_KI, ZIG256_WI, ZIG256_FI = _ziggurat_tables(256, ZIG256_R, 4.92867323399e-3, float(1 << 23))
_BLOCK = 2048                                # uint32 values per block of the first stream
_SECOND_STREAM = 0x5851F42D4C957F2D          # the second state's seed: seed ^ this


@njit(cache=True, nogil=True)
def _splitmix64_state(seed, st):  # pragma: no cover - compiled
    x = np.uint64(seed)
    for i in range(4):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        z = x
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        st[i] = z ^ (z >> np.uint64(31))


@njit(cache=True, nogil=True, inline="always")
def _xoshiro_step(s0, s1, s2, s3):  # pragma: no cover - compiled
    """One xoshiro256++ step on the state words: ``(output, s0, s1, s2, s3)`` (uint64).
    Words in and out, not an array, so a loop keeps the state in registers."""
    a = s0 + s3
    r = ((a << np.uint64(23)) | (a >> np.uint64(41))) + s0
    t = s1 << np.uint64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = (s3 << np.uint64(45)) | (s3 >> np.uint64(19))
    return r, s0, s1, s2, s3


@njit(cache=True, nogil=True)
def _xoshiro_fill(st, u):  # pragma: no cover - compiled
    """Fill the uint32 array ``u`` (even length) with the next xoshiro256++ outputs of the
    state ``st`` (uint64 [4], advanced), the low then the high half of each."""
    s0, s1, s2, s3 = st[0], st[1], st[2], st[3]
    lo_mask = np.uint64(0xFFFFFFFF)
    for j in range(0, u.shape[0] - 1, 2):
        r, s0, s1, s2, s3 = _xoshiro_step(s0, s1, s2, s3)
        u[j] = np.uint32(r & lo_mask)
        u[j + 1] = np.uint32(r >> np.uint64(32))
    st[0], st[1], st[2], st[3] = s0, s1, s2, s3


@njit(cache=True, nogil=True)
def _xoshiro_hi32(st):  # pragma: no cover - compiled
    """The high 32 bits of the next xoshiro256++ output of ``st`` (advanced)."""
    r, st[0], st[1], st[2], st[3] = _xoshiro_step(st[0], st[1], st[2], st[3])
    return np.uint32(r >> np.uint64(32))


@njit(cache=True, nogil=True)
def _zig256_slow(v, st2, ki, wi, fi):  # pragma: no cover - compiled
    """Finish the 256-layer ziggurat for the candidate ``v`` (uint32) that fell outside its
    layer's rectangle, drawing further values from the second stream ``st2``."""
    while True:
        idx = v & np.uint32(0xFF)
        sign = (v >> np.uint32(8)) & np.uint32(1)
        rabs = np.int64(v >> np.uint32(9))
        x = rabs * wi[idx]
        if rabs < ki[idx]:
            return -x if sign else x
        if idx == 0:                                   # the tail beyond R (Marsaglia 1964)
            while True:
                xx = -np.log((_xoshiro_hi32(st2) + 0.5) / 4294967296.0) / 3.6541528853610088
                yy = -np.log((_xoshiro_hi32(st2) + 0.5) / 4294967296.0)
                if yy + yy > xx * xx:
                    break
            x = 3.6541528853610088 + xx
            return -x if sign else x
        uu = (_xoshiro_hi32(st2) + 0.5) / 4294967296.0
        if fi[idx] + uu * (fi[idx - 1] - fi[idx]) < np.exp(-0.5 * x * x):
            return -x if sign else x
        v = _xoshiro_hi32(st2)                          # rejected: a new candidate


@njit(cache=True, nogil=True, inline="always")
def _zig256_fast(v, wi):  # pragma: no cover - compiled
    """The ziggurat's fast-path value of the candidate ``v`` (uint32), float64: the layer's
    rectangle value (valid when ``v``'s magnitude is below ``ki`` of its layer)."""
    idx = v & np.uint32(0xFF)
    rabs = np.int64(v >> np.uint32(9))
    # the sign as a product, not a select: x86 LLVM turned ``-x if sign else x`` into a
    # branch that mispredicts half the time (4.3 -> 1.4 ns a number measured, 2026-12-06);
    # (1.0 - 2.0 * sign bit) * x is -x exactly, -0.0 included, and negation commutes with
    # the caller's scaling (IEEE rounding is symmetric), so the values are the same bit for bit
    return (rabs * wi[idx]) * (1.0 - 2.0 * np.float64((v >> np.uint32(8)) & np.uint32(1)))


@njit(cache=True, nogil=True, inline="always")
def _zig256_reject(v, ki):  # pragma: no cover - compiled
    """Whether the candidate ``v`` (uint32) falls outside its layer's rectangle."""
    return np.int64(v >> np.uint32(9)) >= ki[v & np.uint32(0xFF)]


@njit(cache=True, nogil=True)
def seeded_normal_kernel(seed, row_scale, col_scale, out, ki, wi, fi):  # pragma: no cover - compiled
    """``out[r, c] = row_scale[r] * col_scale[c] * z`` for ``c < col_scale.size``: standard
    normals ``z`` from the seed (uint64) as described above, row by row (the scaling in
    float64, rounded once to ``out``'s precision; columns beyond ``col_scale.size`` are not
    written). ``ki, wi, fi``: :data:`ZIG256_KI`, :data:`ZIG256_WI`, :data:`ZIG256_FI`.

    The first stream's outputs are mapped as they are drawn, two samples (the low, then the
    high half) per step with the state in registers; a row that ends on a low half leaves
    the high half for the next row's first sample, so samples take the stream's 32-bit
    values in row-major order. A row's rejected candidates are noted (a well-predicted
    branch) and finished after the row, in sample order, from the second stream: the values
    of the earlier block-wise kernel (2,048 values drawn, then mapped) bit for bit."""
    rows = out.shape[0]
    ncol = col_scale.shape[0]
    st = np.empty(4, dtype=np.uint64)
    _splitmix64_state(seed, st)
    st2 = np.empty(4, dtype=np.uint64)
    _splitmix64_state(np.uint64(seed) ^ np.uint64(_SECOND_STREAM), st2)
    s0, s1, s2, s3 = st[0], st[1], st[2], st[3]
    lo_mask = np.uint64(0xFFFFFFFF)
    rej_c = np.empty(ncol + 1, dtype=np.int64)      # a row's rejected samples: column, value
    rej_v = np.empty(ncol + 1, dtype=np.uint32)
    have = False                                    # the high half of the last output is unused
    pend = np.uint32(0)
    unit = True                 # a column scale of ones: x * rs, the values of x * (rs * 1.0)
    for c in range(ncol):
        if col_scale[c] != 1.0:
            unit = False
            break
    for r in range(rows):
        rs = np.float64(row_scale[r])
        orow = out[r]
        nr = 0
        c = 0
        if have and ncol > 0:
            v = pend
            have = False
            orow[0] = _zig256_fast(v, wi) * (rs if unit else rs * col_scale[0])
            if _zig256_reject(v, ki):
                rej_c[nr] = 0
                rej_v[nr] = v
                nr += 1
            c = 1
        while c + 1 < ncol:
            x, s0, s1, s2, s3 = _xoshiro_step(s0, s1, s2, s3)
            v = np.uint32(x & lo_mask)
            orow[c] = _zig256_fast(v, wi) * (rs if unit else rs * col_scale[c])
            if _zig256_reject(v, ki):
                rej_c[nr] = c
                rej_v[nr] = v
                nr += 1
            v = np.uint32(x >> np.uint64(32))
            orow[c + 1] = _zig256_fast(v, wi) * (rs if unit else rs * col_scale[c + 1])
            if _zig256_reject(v, ki):
                rej_c[nr] = c + 1
                rej_v[nr] = v
                nr += 1
            c += 2
        if c < ncol:                                # one sample left: a low half
            x, s0, s1, s2, s3 = _xoshiro_step(s0, s1, s2, s3)
            v = np.uint32(x & lo_mask)
            pend = np.uint32(x >> np.uint64(32))
            have = True
            orow[c] = _zig256_fast(v, wi) * (rs if unit else rs * col_scale[c])
            if _zig256_reject(v, ki):
                rej_c[nr] = c
                rej_v[nr] = v
                nr += 1
        for q in range(nr):                         # slow path, in sample order
            c = rej_c[q]
            orow[c] = _zig256_slow(rej_v[q], st2, ki, wi, fi) * (rs if unit else rs * col_scale[c])


@njit(cache=True, nogil=True)
def seeded_normal_split_kernel(seed, row_scale, col_scale, out, ki, wi, fi):  # pragma: no cover - compiled
    """:func:`seeded_normal_kernel`'s values bit for bit, faster (2.1 against 2.4 ns a number
    for 9 x 5,000, measured 2026-12-07): row by row, a scalar loop steps the first stream
    (the state in registers), keeps each 32-bit candidate, looks up its layer's width
    ``wi[v & 255]`` and notes the candidates outside their layer's rectangle; then a branch-free
    loop maps the row, ``(magnitude * width) * (1 - 2 sign) * scale`` in float64 rounded once
    to ``out``'s precision, which LLVM vectorises (the table look-up, a gather, is what kept the
    one-loop kernel scalar); then the noted candidates finish the ziggurat's slow path from
    the second stream in sample order, as there. The stream's 32-bit values go to the samples
    in row-major order as in :func:`seeded_normal_kernel` (a row that ends on a low half leaves
    the high half for the next row's first sample)."""
    rows = out.shape[0]
    ncol = col_scale.shape[0]
    st = np.empty(4, dtype=np.uint64)
    _splitmix64_state(seed, st)
    st2 = np.empty(4, dtype=np.uint64)
    _splitmix64_state(np.uint64(seed) ^ np.uint64(_SECOND_STREAM), st2)
    s0, s1, s2, s3 = st[0], st[1], st[2], st[3]
    lo_mask = np.uint64(0xFFFFFFFF)
    b8 = np.uint64(0xFF)
    m23 = np.uint64(0x7FFFFF)
    cand = np.empty(ncol + 1, dtype=np.uint32)      # the row's candidates
    width = np.empty(ncol + 1)                      # and their layers' widths
    rej_c = np.empty(ncol + 1, dtype=np.int64)      # the row's rejected samples (columns)
    have = False                                    # the high half of the last output is unused
    pend = np.uint32(0)
    unit = True                 # a column scale of ones: x * rs, the values of x * (rs * 1.0)
    for c in range(ncol):
        if col_scale[c] != 1.0:
            unit = False
            break
    for r in range(rows):
        rs = np.float64(row_scale[r])
        orow = out[r]
        nr = 0
        c = 0
        if have and ncol > 0:
            v = pend
            have = False
            cand[0] = v
            width[0] = wi[v & np.uint32(0xFF)]
            if _zig256_reject(v, ki):
                rej_c[nr] = 0
                nr += 1
            c = 1
        while c + 1 < ncol:
            x, s0, s1, s2, s3 = _xoshiro_step(s0, s1, s2, s3)
            i0 = x & b8
            i1 = (x >> np.uint64(32)) & b8
            cand[c] = np.uint32(x & lo_mask)
            cand[c + 1] = np.uint32(x >> np.uint64(32))
            width[c] = wi[i0]
            width[c + 1] = wi[i1]
            if np.int64((x >> np.uint64(9)) & m23) >= ki[i0]:
                rej_c[nr] = c
                nr += 1
            if np.int64(x >> np.uint64(41)) >= ki[i1]:
                rej_c[nr] = c + 1
                nr += 1
            c += 2
        if c < ncol:                                # one sample left: a low half
            x, s0, s1, s2, s3 = _xoshiro_step(s0, s1, s2, s3)
            v = np.uint32(x & lo_mask)
            pend = np.uint32(x >> np.uint64(32))
            have = True
            cand[c] = v
            width[c] = wi[v & np.uint32(0xFF)]
            if _zig256_reject(v, ki):
                rej_c[nr] = c
                nr += 1
        # the fast-path values of the whole row (the rejected ones overwritten below); the
        # magnitude (< 2^23) through int32, whose conversion to float64 vectorises
        if unit:
            for c in range(ncol):
                v = cand[c]
                orow[c] = ((np.float64(np.int32(v >> np.uint32(9))) * width[c])
                           * (1.0 - 2.0 * np.float64(np.int32((v >> np.uint32(8)) & np.uint32(1))))) * rs
        else:
            for c in range(ncol):
                v = cand[c]
                orow[c] = ((np.float64(np.int32(v >> np.uint32(9))) * width[c])
                           * (1.0 - 2.0 * np.float64(np.int32((v >> np.uint32(8)) & np.uint32(1))))) \
                    * (rs * col_scale[c])
        for q in range(nr):                         # slow path, in sample order
            c = rej_c[q]
            orow[c] = _zig256_slow(cand[c], st2, ki, wi, fi) * (rs if unit else rs * col_scale[c])


class _XoshiroRef:
    """Pure-Python xoshiro256++ seeded by SplitMix64 (the kernels' generator)."""

    M64 = (1 << 64) - 1

    def __init__(self, seed):
        x = int(seed) & self.M64
        self.s = []
        for _ in range(4):
            x = (x + 0x9E3779B97F4A7C15) & self.M64
            z = x
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & self.M64
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & self.M64
            self.s.append(z ^ (z >> 31))

    def next64(self):
        s, m = self.s, self.M64

        def rotl(v, k):
            return ((v << k) | (v >> (64 - k))) & m
        r = (rotl((s[0] + s[3]) & m, 23) + s[0]) & m
        t = (s[1] << 17) & m
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return r


def seeded_normal_ref(seed, row_scale, col_scale, dtype=np.float32):
    """Pure-Python oracle of :func:`seeded_normal_kernel` (sample by sample: the first
    stream's 32-bit values in order, a rejected candidate finished at once from the second
    stream -- the kernel's block order gives the same values), ``[rows, ncol]`` in ``dtype``."""
    row_scale = np.asarray(row_scale, dtype=np.float64)
    col_scale = np.asarray(col_scale, dtype=np.float64)
    first, second = _XoshiroRef(seed), _XoshiroRef(int(seed) ^ _SECOND_STREAM)
    ki, wi, fi, r_ = ZIG256_KI, ZIG256_WI, ZIG256_FI, ZIG256_R
    pending = []

    def first32():
        if not pending:
            w = first.next64()
            pending.extend([w >> 32, w & 0xFFFFFFFF])
        return pending.pop()

    def second32():
        return second.next64() >> 32

    def sample():
        v = first32()
        while True:
            idx, sign, rabs = v & 0xFF, (v >> 8) & 1, v >> 9
            x = rabs * wi[idx]
            if rabs < ki[idx]:
                return -x if sign else x
            if idx == 0:
                while True:
                    xx = -np.log((second32() + 0.5) / _U32) / r_
                    yy = -np.log((second32() + 0.5) / _U32)
                    if yy + yy > xx * xx:
                        break
                return -(r_ + xx) if sign else r_ + xx
            if fi[idx] + (second32() + 0.5) / _U32 * (fi[idx - 1] - fi[idx]) < np.exp(-0.5 * x * x):
                return -x if sign else x
            v = second32()

    # the kernel takes the first stream's values in row-major sample order (a row may end
    # on the low half of an output; the next row starts with its high half)
    z = np.array([[sample() for _ in range(col_scale.size)] for _ in range(row_scale.size)])
    return (z * (row_scale[:, None] * col_scale[None, :])).astype(dtype)


def draw_seed(rng) -> np.uint64:
    """One 64-bit seed from the caller's numpy Generator (its bit generator's next raw output)."""
    return np.uint64(rng.bit_generator.random_raw())


def normals_scaled(rng, row_scale, col_scale, out) -> np.ndarray:
    """Fill ``out[:, :len(col_scale)]`` with ``row_scale[r] * col_scale[c] * N(0, 1)`` from one
    seed taken from ``rng`` (:func:`seeded_normal_kernel`'s values, by
    :func:`seeded_normal_split_kernel`); returns ``out``."""
    seeded_normal_split_kernel(draw_seed(rng), np.asarray(row_scale, dtype=np.float64),
                               np.asarray(col_scale, dtype=np.float64), out, ZIG256_KI, ZIG256_WI, ZIG256_FI)
    return out


_ONE = np.ones(1)


@functools.lru_cache(maxsize=16)
def ones(n: int) -> np.ndarray:
    """Read-only float64 ones of length ``n`` (cached: a column scale of 1)."""
    a = np.ones(n)
    a.setflags(write=False)
    return a


def standard_normal(rng, shape, dtype=np.float32) -> np.ndarray:
    """Standard normal array of ``shape`` (float32 by default) from one seed taken from ``rng``
    (a numpy.random.Generator): :func:`seeded_normal_kernel`'s values, by
    :func:`seeded_normal_split_kernel`."""
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    n = 1
    for s_ in shape:
        n *= int(s_)
    out = np.empty((1, n), dtype=dtype)
    seeded_normal_split_kernel(draw_seed(rng), _ONE, ones(n), out, ZIG256_KI, ZIG256_WI, ZIG256_FI)
    return out.reshape(shape)


# --- periodic cubic (Catmull-Rom) upsampling by an integer factor ----------------------

@njit(cache=True, nogil=True)
def upsample_cubic_kernel(x, factor, out):  # pragma: no cover - compiled
    """Upsample each row of the periodic signal ``x [rows, m]`` by ``factor`` into
    ``out [rows, n]`` (``n <= m * factor``; the tail beyond ``n`` is not written) with
    Catmull-Rom cubic interpolation; indices wrap around, as the spectral synthesis it
    serves produces periodic signals."""
    rows, m = x.shape
    n = out.shape[1]
    # Catmull-Rom weights of the four neighbours at each fractional position u = q / factor
    w = np.empty((factor, 4))
    for q in range(factor):
        u = q / factor
        u2 = u * u
        u3 = u2 * u
        w[q, 0] = -0.5 * u3 + u2 - 0.5 * u
        w[q, 1] = 1.5 * u3 - 2.5 * u2 + 1.0
        w[q, 2] = -1.5 * u3 + 2.0 * u2 + 0.5 * u
        w[q, 3] = 0.5 * u3 - 0.5 * u2
    for r in range(rows):
        for j in range(m):
            base = j * factor
            if base >= n:
                break
            p0 = x[r, j - 1] if j >= 1 else x[r, m - 1]
            p1 = x[r, j]
            p2 = x[r, j + 1] if j + 1 < m else x[r, j + 1 - m]
            p3 = x[r, j + 2] if j + 2 < m else x[r, j + 2 - m]
            qmax = min(factor, n - base)
            for q in range(qmax):
                out[r, base + q] = w[q, 0] * p0 + w[q, 1] * p1 + w[q, 2] * p2 + w[q, 3] * p3


def upsample_cubic_ref(x, factor, n=None):
    """NumPy twin of :func:`upsample_cubic_kernel` (returns ``[rows, n]``, default ``m * factor``)."""
    x = np.asarray(x)
    p0, p1, p2, p3 = (np.roll(x, s, axis=1) for s in (1, 0, -1, -2))
    a = -0.5 * p0 + 1.5 * p1 - 1.5 * p2 + 0.5 * p3
    b = p0 - 2.5 * p1 + 2.0 * p2 - 0.5 * p3
    c = -0.5 * p0 + 0.5 * p2
    u = (np.arange(factor) / factor)[None, None, :]
    y = ((a[..., None] * u + b[..., None]) * u + c[..., None]) * u + p1[..., None]
    y = y.reshape(x.shape[0], -1)
    return y if n is None else y[:, :n]


KERNELS = {"ar_filter": (ar_filter_kernel, ar_filter_ref), "contact": (contact_kernel, contact_ref),
           "ziggurat": (ziggurat_kernel, ziggurat_ref),
           "seeded_normal": (seeded_normal_kernel, seeded_normal_ref),
           "seeded_normal_split": (seeded_normal_split_kernel, seeded_normal_ref),
           "upsample_cubic": (upsample_cubic_kernel, upsample_cubic_ref)}


# --- envelope of the fitted activity noise (noise.textile) ------------------------------

@njit(cache=True, nogil=True, error_model="numpy")
def _envelope_processes(w_slow, a_slow, sd_slow, w_fast, a_fast, sd_fast, z_knots, q_knots):  # pragma: no cover
    """The envelope kernels' two processes at their own rates: ``(s, y_f, shift)`` -- the slow
    log-level (``sd_slow * y_s``, or ``y_s`` mapped through the copula knots), the fast unit
    AR(1) series (one zero when there is none) and the mean correction ``sd_fast**2`` (0 then)."""
    m_s = w_slow.shape[0]
    m_f = w_fast.shape[0]
    n_q = z_knots.shape[0]
    y_s = np.empty(m_s)
    y_s[0] = w_slow[0]
    c_s = np.sqrt(1.0 - a_slow * a_slow)
    for k in range(1, m_s):
        y_s[k] = a_slow * y_s[k - 1] + c_s * w_slow[k]
    if n_q > 0:
        for k in range(m_s):
            z = y_s[k]
            if z <= z_knots[0]:
                y_s[k] = q_knots[0]
            elif z >= z_knots[n_q - 1]:
                y_s[k] = q_knots[n_q - 1]
            else:
                j = np.searchsorted(z_knots, z) - 1
                y_s[k] = q_knots[j] + (z - z_knots[j]) / (z_knots[j + 1] - z_knots[j]) * (q_knots[j + 1] - q_knots[j])
    y_f = np.zeros(max(m_f, 1))
    if m_f > 0:
        y_f[0] = w_fast[0]
        c_f = np.sqrt(1.0 - a_fast * a_fast)
        for k in range(1, m_f):
            y_f[k] = a_fast * y_f[k - 1] + c_f * w_fast[k]
    shift = sd_fast * sd_fast if m_f > 0 else 0.0
    if n_q == 0:
        for k in range(m_s):
            y_s[k] *= sd_slow
    return y_s, y_f, shift


@njit(cache=True, nogil=True, error_model="numpy")
def activity_envelope_kernel(w_slow, a_slow, rate_slow, sd_slow, w_fast, a_fast, rate_fast, sd_fast, fs, scale,
                             z_knots, q_knots, out):  # pragma: no cover - compiled
    """``out[t] = scale * exp(s(t) + sd_fast * y_f(t) - sd_fast**2)``: two unit-variance
    AR(1) (sampled Ornstein-Uhlenbeck) series ``y[0] = w[0]``, ``y[k] = a y[k-1] +
    sqrt(1 - a^2) w[k]`` at ``rate_slow`` / ``rate_fast`` Hz, linearly interpolated to the
    samples ``t / fs``. The slow log-level ``s`` is ``sd_slow * y_s`` when ``z_knots`` is
    empty; otherwise each slow value is first mapped through the piecewise-linear ``q(z)``
    through ``(z_knots, q_knots)`` (increasing ``z_knots``, held flat outside them) -- a
    Gaussian copula: the OU's time correlation with the marginal of the table -- and the
    mapped series is interpolated. ``w_fast`` may be empty (no fast part)."""
    m_s = w_slow.shape[0]
    m_f = w_fast.shape[0]
    y_s, y_f, shift = _envelope_processes(w_slow, a_slow, sd_slow, w_fast, a_fast, sd_fast, z_knots, q_knots)
    # the log-envelope is linear between knots of either process, so its exponential is
    # geometric there: one exp at each interval's first sample and one for the interval's
    # per-sample ratio, products in between (equal to an exp per sample within ~1e-15)
    i_s_prev = -1
    i_f_prev = -1
    e = 0.0
    step = 1.0
    for t in range(out.shape[0]):
        u_s = t / fs * rate_slow
        i_s = min(int(u_s), m_s - 2)
        i_f = 0
        u_f = 0.0
        if m_f > 0:
            u_f = t / fs * rate_fast
            i_f = min(int(u_f), m_f - 2)
        if i_s != i_s_prev or i_f != i_f_prev:
            d_s = y_s[i_s + 1] - y_s[i_s]
            env = y_s[i_s] + (u_s - i_s) * d_s
            slope = d_s * rate_slow
            if m_f > 0:
                d_f = sd_fast * (y_f[i_f + 1] - y_f[i_f])
                env += sd_fast * y_f[i_f] + (u_f - i_f) * d_f - shift
                slope += d_f * rate_fast
            e = scale * np.exp(env)
            step = np.exp(slope / fs)
            i_s_prev = i_s
            i_f_prev = i_f
        else:
            e *= step
        out[t] = e


def activity_envelope_ref(w_slow, a_slow, rate_slow, sd_slow, w_fast, a_fast, rate_fast, sd_fast, fs, scale,
                          z_knots, q_knots, n):
    """NumPy/SciPy twin of :func:`activity_envelope_kernel` (lfilter and np.interp), length ``n``."""
    t = np.arange(n) / fs

    def ou(w, a, rate, knots=None):
        y = np.empty(w.size)
        y[0] = w[0]
        y[1:] = _signal.lfilter([np.sqrt(1 - a * a)], [1.0, -a], w[1:], zi=[a * w[0]])[0]
        if knots is not None:
            y = np.interp(y, *knots)
        return np.interp(t, np.arange(w.size) / rate, y)

    if len(z_knots):
        env = ou(np.asarray(w_slow, dtype=np.float64), a_slow, rate_slow, (z_knots, q_knots))
    else:
        env = sd_slow * ou(np.asarray(w_slow, dtype=np.float64), a_slow, rate_slow)
    if len(w_fast):
        env = env + sd_fast * ou(np.asarray(w_fast, dtype=np.float64), a_fast, rate_fast) - sd_fast ** 2
    return scale * np.exp(env)


KERNELS["activity_envelope"] = (activity_envelope_kernel, activity_envelope_ref)


@njit(cache=True, nogil=True)
def activity_envelope_starts_kernel(n, fs, rate_slow, rate_fast, m_s, m_f, out):  # pragma: no cover - compiled
    """The samples at which :func:`activity_envelope_kernel` starts a new interval (the knot
    interval of either process changes; sample 0 first), found with that kernel's own
    expressions, into ``out`` (int64, at least ``n + 1``), then ``n``; returns their number."""
    i_s_prev = -1
    i_f_prev = -1
    k = 0
    for t in range(n):
        u_s = t / fs * rate_slow
        i_s = min(int(u_s), m_s - 2)
        i_f = 0
        if m_f > 0:
            u_f = t / fs * rate_fast
            i_f = min(int(u_f), m_f - 2)
        if i_s != i_s_prev or i_f != i_f_prev:
            out[k] = t
            k += 1
            i_s_prev = i_s
            i_f_prev = i_f
    out[k] = n
    return k


@functools.lru_cache(maxsize=32)
def activity_envelope_starts(n: int, fs: float, rate_slow: float, rate_fast: float, m_s: int, m_f: int) -> np.ndarray:
    """:func:`activity_envelope_starts_kernel`'s interval starts and ``n`` (read-only, cached per
    layout: the same every record of a length and rate)."""
    out = np.empty(n + 1, dtype=np.int64)
    k = activity_envelope_starts_kernel(n, fs, rate_slow, rate_fast, m_s, m_f, out)
    starts = out[:k + 1].copy()
    starts.setflags(write=False)
    return starts


@njit(cache=True, nogil=True, error_model="numpy")
def activity_envelope_runs_kernel(w_slow, a_slow, rate_slow, sd_slow, w_fast, a_fast, rate_fast, sd_fast, fs,
                                  scale, z_knots, q_knots, starts, out):  # pragma: no cover - compiled
    """:func:`activity_envelope_kernel`'s envelope bit for bit, walked interval by interval
    over the starts of :func:`activity_envelope_starts` (``out.shape[0] == starts[-1]``):
    the same processes, the same ``exp`` at each interval's first sample and the same
    running product within it, without the per-sample divisions, integer conversions and
    interval test (24.6 -> 16.9 us for 5,000 samples, measured 2026-12-06; what is left is the
    running product, one dependent multiply a sample)."""
    m_s = w_slow.shape[0]
    m_f = w_fast.shape[0]
    y_s, y_f, shift = _envelope_processes(w_slow, a_slow, sd_slow, w_fast, a_fast, sd_fast, z_knots, q_knots)
    for q in range(starts.shape[0] - 1):
        t = starts[q]
        u_s = t / fs * rate_slow
        i_s = min(int(u_s), m_s - 2)
        i_f = 0
        u_f = 0.0
        if m_f > 0:
            u_f = t / fs * rate_fast
            i_f = min(int(u_f), m_f - 2)
        d_s = y_s[i_s + 1] - y_s[i_s]
        env = y_s[i_s] + (u_s - i_s) * d_s
        slope = d_s * rate_slow
        if m_f > 0:
            d_f = sd_fast * (y_f[i_f + 1] - y_f[i_f])
            env += sd_fast * y_f[i_f] + (u_f - i_f) * d_f - shift
            slope += d_f * rate_fast
        e = scale * np.exp(env)
        step = np.exp(slope / fs)
        out[t] = e
        for tt in range(t + 1, starts[q + 1]):
            e *= step
            out[tt] = e


# --- zero-phase second-order-section filtering (scipy.signal.sosfiltfilt, odd padding) -------

@njit(cache=True, nogil=True)
def sosfiltfilt_kernel(sos, zi, x, padlen, out):  # pragma: no cover - compiled
    """Forward-backward filtering of each row of ``x`` [rows, T] by the cascade ``sos``
    [n_sections, 6] (``a0 = 1``), exactly as ``scipy.signal.sosfiltfilt(sos, x, axis=1)``
    with its default odd extension of ``padlen`` samples and the steady-state initial
    conditions ``zi`` [n_sections, 2] (``scipy.signal.sosfilt_zi``) scaled by the first
    sample of each pass. out : float64 [rows, T].

    The recursion is serial in time, so all rows advance together (time-major scratch,
    the innermost loop over rows is independent and vectorises)."""
    rows, n = x.shape
    sosfiltfilt_scratch_kernel(sos, zi, x, padlen, out, np.empty((n + 2 * padlen, rows)))


@njit(cache=True, nogil=True)
def sosfiltfilt_scratch_kernel(sos, zi, x, padlen, out, ext):  # pragma: no cover - compiled
    """:func:`sosfiltfilt_kernel` with its time-major scratch ``ext`` float64
    [T + 2 padlen, rows] given by the caller (its contents are overwritten), so that a
    caller filtering every record reuses one buffer: a fresh 1-MB array per record costs
    its page faults again each time (0.28 vs 0.72 ms for 24 rows of 5,000 samples)."""
    rows, n = x.shape
    m = n + 2 * padlen
    for r in range(rows):
        x0 = float(x[r, 0])
        x1 = float(x[r, n - 1])
        for i in range(padlen):
            ext[i, r] = 2.0 * x0 - x[r, padlen - i]
            ext[padlen + n + i, r] = 2.0 * x1 - x[r, n - 2 - i]
    for i in range(n):
        for r in range(rows):
            ext[padlen + i, r] = x[r, i]
    _filtfilt_into(sos, zi, ext, m, rows, n, padlen, out)


@njit(cache=True, nogil=True)
def sosfiltfilt_diff_kernel(sos, zi, rec, cl, padlen, out, ext):  # pragma: no cover - compiled
    """:func:`sosfiltfilt_scratch_kernel` of the rows ``[rec - cl; cl]`` (``rec``, ``cl``
    [n_l, T] of one float dtype; the difference rounded in that dtype, as ``np.subtract``
    into an array of it) without forming them: each sample goes straight into the
    time-major ``ext`` [T + 2 padlen, 2 n_l], whose odd extension is then taken from those
    values (``float(x)`` of the same numbers). ``out`` float64 [2 n_l, T]."""
    n_l, n = rec.shape
    rows = 2 * n_l
    m = n + 2 * padlen
    for i in range(n):
        e = ext[padlen + i]
        for r in range(n_l):
            e[r] = rec[r, i] - cl[r, i]
            e[n_l + r] = cl[r, i]
    for r in range(rows):
        x0 = ext[padlen, r]
        x1 = ext[padlen + n - 1, r]
        for i in range(padlen):
            ext[i, r] = 2.0 * x0 - ext[2 * padlen - i, r]
            ext[padlen + n + i, r] = 2.0 * x1 - ext[padlen + n - 2 - i, r]
    _filtfilt_into(sos, zi, ext, m, rows, n, padlen, out)


def sosfiltfilt_diff_ref(sos, rec, cl):
    """NumPy twin of :func:`sosfiltfilt_diff_kernel`: scipy.signal.sosfiltfilt of the stacked
    rows ``[rec - cl; cl]`` (the difference in their dtype)."""
    rows = np.concatenate([np.subtract(rec, cl), cl])
    return _signal.sosfiltfilt(sos, rows.astype(np.float64), axis=1)


KERNELS["sosfiltfilt_diff"] = (sosfiltfilt_diff_kernel, sosfiltfilt_diff_ref)


@njit(cache=True, nogil=True, inline="always")
def _filtfilt_into(sos, zi, ext, m, rows, n, padlen, out):  # pragma: no cover - compiled
    """Both passes over the extended time-major ``ext`` (the two-section form for the
    measurement band-pass), then its middle ``n`` samples into ``out`` [rows, n]: the tail
    shared by :func:`sosfiltfilt_scratch_kernel` and :func:`sosfiltfilt_diff_kernel`."""
    if sos.shape[0] == 2:
        _filtfilt_two_sections(sos, zi, ext, m, rows)
    else:
        _filtfilt_sections(sos, zi, ext, m, rows)
    for r in range(rows):
        for i in range(n):
            out[r, i] = ext[padlen + i, r]


@njit(cache=True, nogil=True)
def _filtfilt_two_sections(sos, zi, ext, m, rows):  # pragma: no cover - compiled
    """The forward then backward pass of :func:`sosfiltfilt_scratch_kernel` over the
    time-major ``ext`` [m, rows] (in place) for a cascade of two sections (the measurement
    band-pass): both sections in one loop over the rows at each instant, so a sample is
    loaded and stored once instead of once per section and the intermediate is not stored
    (the same operations in the same order as :func:`_filtfilt_sections`; 0.34 -> 0.30 ms
    for 24 rows of 5,000 samples)."""
    b00, b01, b02, a01, a02 = sos[0, 0], sos[0, 1], sos[0, 2], sos[0, 4], sos[0, 5]
    b10, b11, b12, a11, a12 = sos[1, 0], sos[1, 1], sos[1, 2], sos[1, 4], sos[1, 5]
    z = np.empty((4, rows))
    p0, p1, q0, q1 = z[0], z[1], z[2], z[3]
    for direction in range(2):
        start = 0 if direction == 0 else m - 1
        for r in range(rows):
            p0[r] = zi[0, 0] * ext[start, r]
            p1[r] = zi[0, 1] * ext[start, r]
            q0[r] = zi[1, 0] * ext[start, r]
            q1[r] = zi[1, 1] * ext[start, r]
        for ii in range(m):
            e = ext[ii if direction == 0 else m - 1 - ii]
            for r in range(rows):
                xv = e[r]
                y = b00 * xv + p0[r]
                p0[r] = b01 * xv - a01 * y + p1[r]
                p1[r] = b02 * xv - a02 * y
                o = b10 * y + q0[r]
                q0[r] = b11 * y - a11 * o + q1[r]
                q1[r] = b12 * y - a12 * o
                e[r] = o


@njit(cache=True, nogil=True)
def _filtfilt_sections(sos, zi, ext, m, rows):  # pragma: no cover - compiled
    """The forward then backward pass of :func:`sosfiltfilt_scratch_kernel` over the
    time-major ``ext`` [m, rows] (in place), any number of sections."""
    n_sec = sos.shape[0]
    z0 = np.empty((n_sec, rows))
    z1 = np.empty((n_sec, rows))
    v = np.empty(rows)
    for direction in range(2):
        start = 0 if direction == 0 else m - 1
        for s_ in range(n_sec):
            for r in range(rows):
                z0[s_, r] = zi[s_, 0] * ext[start, r]
                z1[s_, r] = zi[s_, 1] * ext[start, r]
        for ii in range(m):
            i = ii if direction == 0 else m - 1 - ii
            for r in range(rows):
                v[r] = ext[i, r]
            for s_ in range(n_sec):
                b0, b1, b2, a1, a2 = sos[s_, 0], sos[s_, 1], sos[s_, 2], sos[s_, 4], sos[s_, 5]
                for r in range(rows):
                    xv = v[r]
                    y = b0 * xv + z0[s_, r]
                    z0[s_, r] = b1 * xv - a1 * y + z1[s_, r]
                    z1[s_, r] = b2 * xv - a2 * y
                    v[r] = y
            for r in range(rows):
                ext[i, r] = v[r]


def sosfiltfilt_padlen(sos) -> int:
    """scipy.signal.sosfiltfilt's default pad length for ``sos``."""
    sos = np.asarray(sos)
    ntaps = 2 * sos.shape[0] + 1
    ntaps -= min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum()))
    return 3 * ntaps


def sosfiltfilt_ref(sos, x):
    """The oracle of :func:`sosfiltfilt_kernel`: scipy.signal.sosfiltfilt along axis 1 (float64)."""
    return _signal.sosfiltfilt(sos, np.asarray(x, dtype=np.float64), axis=1)


KERNELS["sosfiltfilt"] = (sosfiltfilt_kernel, sosfiltfilt_ref)


# --- per-lead noise measurement of electrode-born noise (noise.snr) -------------------------

@njit(cache=True, nogil=True, fastmath=True, error_model="numpy", inline="always")
def _two_pass_var(v, c):  # pragma: no cover - compiled
    """Variance of ``v[:c]`` by two passes (mean, then squared deviations): the one
    reduction of both chunk-variance kernels, inlined into each at numba's IR level so they
    compile it alike and agree bit for bit (``fastmath`` vectorises the sums)."""
    s = 0.0
    for t in range(c):
        s += v[t]
    mu = s / c
    s = 0.0
    for t in range(c):
        d = v[t] - mu
        s += d * d
    return s / c


@njit(cache=True, nogil=True, fastmath=True, error_model="numpy")
def lead_chunk_var_kernel(matrix, x, c, out):  # pragma: no cover - compiled
    """Variance of each lead of ``matrix @ x`` in consecutive ``c``-sample chunks, each
    chunk's own mean removed (the NSTDB noise measure, ``sigamp``'s ``getrms``):
    ``matrix`` float64 [n_leads, n_e], ``x`` [n_e, T] (float32 or float64), ``out``
    float64 [n_leads, n_chunks] (``n_chunks * c <= T``).

    Chunk by chunk and lead by lead: the lead is formed in float64 from its non-zero
    weights only (a lead uses 2-4 of the electrodes), then two passes (mean, squared
    deviations). ``fastmath`` lets the sums be vectorised (reassociated: the result differs
    from a sequential sum by rounding only, ~1e-16 relative)."""
    n_l, n_e = matrix.shape
    k = out.shape[1]
    v = np.empty(c)
    for j in range(k):                    # chunk by chunk: the chunk's samples stay in cache
        base = j * c
        for l in range(n_l):
            first = True
            for e in range(n_e):
                w = matrix[l, e]
                if w != 0.0:
                    xe = x[e, base:base + c]
                    if first:
                        for t in range(c):
                            v[t] = w * xe[t]
                        first = False
                    else:
                        for t in range(c):
                            v[t] += w * xe[t]
            if first:
                out[l, j] = 0.0
                continue
            out[l, j] = _two_pass_var(v, c)


def lead_chunk_var_ref(matrix, x, c):
    """NumPy twin of :func:`lead_chunk_var_kernel`: leads formed in float64 by a matrix
    product, ``np.var`` of each chunk."""
    leads = np.asarray(matrix, dtype=np.float64) @ np.asarray(x, dtype=np.float64)
    k = leads.shape[1] // c
    return leads[:, :k * c].reshape(leads.shape[0], k, c).var(axis=-1)


KERNELS["lead_chunk_var"] = (lead_chunk_var_kernel, lead_chunk_var_ref)


@njit(cache=True, nogil=True, fastmath=True, error_model="numpy")
def _planned_chunk_var(term_e, term_w, n_terms, start, save, x, c, out, v, pre):  # pragma: no cover - compiled
    """:func:`lead_chunk_var_kernel` on one ``x`` with the lead plan of :func:`lead_plan`:
    a lead whose first terms equal those of the lead before it (``start[l] > 0``: the
    precordial leads' Wilson terminal) starts from the partial sum that lead saved in
    ``pre`` (after ``save[l]`` terms), so those terms are summed once per chunk, not once per
    lead. Every lead sample is the same float64 expression as in
    :func:`lead_chunk_var_kernel` (``v = w x``, then ``v += w x`` per further term, in
    electrode order), and the two reduction loops are that kernel's loops, so the result is
    that kernel's bit for bit (``tests/test_noise_kernels.py``)."""
    n_l = term_e.shape[0]
    k = out.shape[1]
    for j in range(k):                    # chunk by chunk: the chunk's samples stay in cache
        base = j * c
        for l in range(n_l):
            nt = n_terms[l]
            if nt == 0:
                out[l, j] = 0.0
                continue
            q0 = start[l]
            w = term_w[l, q0]
            xe = x[term_e[l, q0], base:base + c]
            if q0 > 0:
                for t in range(c):
                    v[t] = pre[t] + w * xe[t]
            else:
                for t in range(c):
                    v[t] = w * xe[t]
            if save[l] == q0 + 1:
                for t in range(c):
                    pre[t] = v[t]
            for q in range(q0 + 1, nt):
                w = term_w[l, q]
                xe = x[term_e[l, q], base:base + c]
                for t in range(c):
                    v[t] += w * xe[t]
                if save[l] == q + 1:
                    for t in range(c):
                        pre[t] = v[t]
            out[l, j] = _two_pass_var(v, c)


@njit(cache=True, nogil=True)
def lead_chunk_var_multi_kernel(term_e, term_w, n_terms, start, save, xs, c, out):  # pragma: no cover - compiled
    """:func:`lead_chunk_var_kernel` of every array of the tuple ``xs`` (each [n_e, T], one
    dtype) in one call, with the lead plan of :func:`lead_plan` (``term_e``, ``term_w``,
    ``n_terms``, ``start``, ``save``): ``out`` float64 [len(xs), n_leads, n_chunks]."""
    v = np.empty(c)
    pre = np.empty(c)
    for i in range(len(xs)):
        _planned_chunk_var(term_e, term_w, n_terms, start, save, xs[i], c, out[i], v, pre)


@functools.lru_cache(maxsize=16)
def _lead_plan_cached(key: bytes, shape: tuple) -> tuple:
    m = np.frombuffer(key, dtype=np.float64).reshape(shape)
    n_l, n_e = shape
    terms = [tuple((e, float(m[l, e])) for e in range(n_e) if m[l, e] != 0.0) for l in range(n_l)]
    term_e = np.zeros((n_l, max(n_e, 1)), dtype=np.int64)
    term_w = np.zeros((n_l, max(n_e, 1)))
    n_terms = np.array([len(t) for t in terms], dtype=np.int64)
    start = np.zeros(n_l, dtype=np.int64)
    save = np.zeros(n_l, dtype=np.int64)
    pre = None                                         # the terms whose partial sum ``pre`` holds
    for l, t in enumerate(terms):
        for q, (e, w) in enumerate(t):
            term_e[l, q], term_w[l, q] = e, w
        if pre is not None and len(pre) < len(t) and t[:len(pre)] == pre:
            start[l] = len(pre)
        elif l + 1 < n_l:
            nxt = terms[l + 1]
            p = 0
            while p < min(len(t), len(nxt)) and t[p] == nxt[p]:
                p += 1
            if 2 <= p < min(len(t), len(nxt)):         # worth it from two shared terms
                save[l] = p
                pre = t[:p]
    out = (term_e, term_w, n_terms, start, save)
    for a in out:
        a.setflags(write=False)
    return out


def lead_plan(matrix) -> tuple:
    """``(term_e, term_w, n_terms, start, save)`` of the lead matrix [n_leads, n_e] for
    :func:`lead_chunk_var_multi_kernel` (cached per matrix): each lead's non-zero weights in
    electrode order, and where a lead can start from the partial sum of the lead before it
    (``start``) or must save its partial sum for the next (``save``, number of terms)."""
    m = np.ascontiguousarray(matrix, dtype=np.float64)
    if m.ndim != 2:
        raise LeadError(f"matrix must be 2-D, got shape {m.shape}")
    return _lead_plan_cached(m.tobytes(), m.shape)


def lead_chunk_var_multi_ref(matrix, xs, c):
    """NumPy twin of :func:`lead_chunk_var_multi_kernel`: :func:`lead_chunk_var_ref` of each array."""
    return np.stack([lead_chunk_var_ref(matrix, x, c) for x in xs])


KERNELS["lead_chunk_var_multi"] = (lead_chunk_var_multi_kernel, lead_chunk_var_multi_ref)


@njit(cache=True, nogil=True, inline="always")
def _insertion_sort_into(v, n, buf):  # pragma: no cover - compiled
    """``v[:n]`` sorted ascending into ``buf[:n]`` by insertion (no allocation; small ``n``).
    Inlined into its callers: a call would incref and decref both arrays."""
    for i in range(n):
        x = v[i]
        j = i
        while j > 0 and buf[j - 1] > x:
            buf[j] = buf[j - 1]
            j -= 1
        buf[j] = x


@njit(cache=True, nogil=True)
def _trimmed_mean_sq(row, cut, buf):  # pragma: no cover - compiled
    """``trimmed_mean(row, trim) ** 2`` of :mod:`cardiosim.noise.snr` for one row of finite
    values (sorted here; ``cut`` values dropped at each end): NumPy's sort, sum and division.
    Short rows (a 10-s record's 10 chunks or 12 beats) are sorted by insertion into ``buf``
    (no allocation; a sort's result does not depend on the algorithm), longer ones by np.sort."""
    n = row.shape[0]
    if n <= buf.shape[0]:
        a = buf
        _insertion_sort_into(row, n, a)
    else:
        a = np.sort(row)
    m = n - 2 * cut
    # the flat walk of the same additions: a cached kernel that calls the recursive
    # pairwise_sum can fail to load from numba's cache in the next process
    mean = (0.0 + pairwise_sum_flat(a, cut, m)) / m
    return mean * mean


@njit(cache=True, nogil=True)
def _median_of(v, n, buf):  # pragma: no cover - compiled
    """``numpy.median`` of the ``n`` non-NaN values ``v[:n]`` (insertion sort into ``buf``):
    the middle value, or for even ``n`` the mean of the two middle ones as ``np.mean`` forms
    it, ``(0.0 + lo + hi) / 2``."""
    _insertion_sort_into(v, n, buf)
    h = n // 2
    if n % 2:
        return buf[h]
    return ((0.0 + buf[h - 1]) + buf[h]) / 2.0


@njit(cache=True, nogil=True, inline="always")
def _grades_from_ratio(ratio, n_seg, thr, grades, col, buf):  # pragma: no cover - compiled
    """Grade 1 + the number of thresholds ``thr`` each segment's noise-to-QRS ``ratio``
    exceeds, into ``grades``; returns the record's grade, that of the segments' median
    (``col``, ``buf``: work arrays of at least ``n_seg``)."""
    for k in range(n_seg):
        g = 1
        for j in range(thr.shape[0]):
            if ratio[k] > thr[j]:
                g += 1
        grades[k] = g
    for k in range(n_seg):
        col[k] = ratio[k]
    med = _median_of(col, n_seg, buf)
    g = 1
    for j in range(thr.shape[0]):
        if med > thr[j]:
            g += 1
    return g


@njit(cache=True, nogil=True)
def artefact_ratio_kernel(filt, n_l, n_seg, seg, thr, ratio, grades):  # pragma: no cover - compiled
    """The statistics of ``noise.textile.artefact_grades`` after its band-pass, in one pass:
    ``filt`` [2 n_l, T] float64 holds the band-passed noise (rows ``< n_l``) and clean leads;
    per lead the QRS size is the median over the ``n_seg`` segments of ``seg`` samples of the
    clean lead's peak-to-peak; per segment the noise-to-QRS ratio is the median over the
    leads of ``sqrt(mean(noise ** 2)) / qrs`` (inf where that is not finite: a lead without
    QRS is unreadable); ``grades`` (int8) = 1 + the number of thresholds ``thr`` exceeded.
    Writes ``ratio`` [n_seg] and ``grades`` [n_seg]; returns the record's grade (of the
    median ratio). NumPy's operations and order: ``np.ptp``, ``np.median`` (see
    :func:`_median_of`), ``np.mean`` as ``(0.0 + pairwise_sum_flat) / n``, IEEE ``sqrt`` and
    division; requires ``n_seg >= 1``, ``n_l >= 1`` and finite ``filt``."""
    qrs = np.empty(n_l)
    col = np.empty(max(n_l, n_seg))
    buf = np.empty(max(n_l, n_seg))
    sq = np.empty(seg)
    for l in range(n_l):
        c = filt[n_l + l]
        for k in range(n_seg):
            lo = c[k * seg]
            hi = lo
            for t in range(k * seg + 1, (k + 1) * seg):
                x = c[t]
                if x < lo:
                    lo = x
                if x > hi:
                    hi = x
            col[k] = hi - lo
        qrs[l] = _median_of(col, n_seg, buf)
    for k in range(n_seg):
        for l in range(n_l):
            x = filt[l]
            for t in range(seg):
                v = x[k * seg + t]
                sq[t] = v * v
            rms = np.sqrt((0.0 + pairwise_sum_flat(sq, 0, seg)) / seg)
            # NumPy's rms / 0 is inf or NaN, both read as inf (unreadable)
            r = rms / qrs[l] if qrs[l] != 0.0 else np.inf
            col[l] = r if np.isfinite(r) else np.inf
        ratio[k] = _median_of(col, n_l, buf)
    return _grades_from_ratio(ratio, n_seg, thr, grades, col, buf)


def artefact_ratio_ref(filt, n_l, n_seg, seg, thr):
    """NumPy twin of :func:`artefact_ratio_kernel` (the NumPy code of ``artefact_grades``):
    ``(ratio, grades, record_grade)``."""
    noise = filt[:n_l, : n_seg * seg].reshape(n_l, n_seg, seg)
    c = filt[n_l:2 * n_l, : n_seg * seg].reshape(n_l, n_seg, seg)
    qrs = np.median(np.ptp(c, axis=2), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.sqrt(np.mean(noise ** 2, axis=2)) / qrs[:, None]
    r = np.where(np.isfinite(r), r, np.inf)
    ratio = np.median(r, axis=0)
    thr = np.asarray(thr, dtype=np.float64)

    def grade(x):
        return (1 + (np.asarray(x)[..., None] > thr).sum(axis=-1)).astype(np.int8)
    return ratio, grade(ratio), int(grade(np.median(ratio)))


KERNELS["artefact_ratio"] = (artefact_ratio_kernel, artefact_ratio_ref)


# --- the artefact grades from the time-major band-pass buffer (noise.textile.artefact_grades) ----

@njit(cache=True, nogil=True)
def _sq_leaf_rows(flat, w, a, n, acc, res):  # pragma: no cover - compiled
    """``res[l]`` (``l < w``) = :func:`~cardiosim._pairwise_kernels.pairwise_leaf` of the squares of
    lane ``l`` of the rows ``a .. a + n - 1`` of ``flat`` (a C-contiguous ``[rows, w]`` array
    raveled): per lane the leaf's additions in its order (eight accumulators, then
    ``((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))``, then the rest one by one). The
    accumulators of all lanes of eight rows are the eight rows themselves, so each step is one
    contiguous loop over ``8 w`` values that vectorises. ``acc`` [8 w] scratch."""
    if n < 8:
        for l in range(w):
            res[l] = 0.0
        for i in range(n):
            row = flat[(a + i) * w:(a + i + 1) * w]
            for l in range(w):
                v = row[l]
                res[l] += v * v
        return
    b = 8 * w
    blk = flat[a * w:a * w + b]
    for q in range(b):
        v = blk[q]
        acc[q] = v * v
    i = 8
    stop = n - n % 8
    while i < stop:
        blk = flat[(a + i) * w:(a + i) * w + b]
        for q in range(b):
            v = blk[q]
            acc[q] += v * v
        i += 8
    for l in range(w):
        res[l] = (((acc[l] + acc[w + l]) + (acc[2 * w + l] + acc[3 * w + l]))
                  + ((acc[4 * w + l] + acc[5 * w + l]) + (acc[6 * w + l] + acc[7 * w + l])))
    while i < n:
        row = flat[(a + i) * w:(a + i + 1) * w]
        for l in range(w):
            v = row[l]
            res[l] += v * v
        i += 1


@njit(cache=True, nogil=True)
def _sq_sum_rows(flat, w, a, n, acc, vals, res):  # pragma: no cover - compiled
    """``res[l]`` = NumPy's pairwise sum of the squares of lane ``l`` of the rows ``a .. a + n - 1``
    (see :func:`_sq_leaf_rows`): the tree of :func:`~cardiosim._pairwise_kernels.pairwise_sum_flat`
    walked once for all lanes (blocks of at most 128 rows, halves rounded to multiples of 8,
    each join ``left + right``). ``acc`` [8 w] and ``vals`` [128, w] scratch."""
    if n <= 128:
        _sq_leaf_rows(flat, w, a, n, acc, res)
        return
    task_lo = np.empty(128, dtype=np.int64)
    task_n = np.empty(128, dtype=np.int64)
    task_join = np.empty(128, dtype=np.bool_)
    nt, nv = 1, 0
    task_lo[0], task_n[0], task_join[0] = a, n, False
    while nt > 0:
        nt -= 1
        tl, tn, join = task_lo[nt], task_n[nt], task_join[nt]
        if join:
            left, right = vals[nv - 2], vals[nv - 1]
            for l in range(w):
                left[l] = left[l] + right[l]
            nv -= 1
        elif tn <= 128:
            _sq_leaf_rows(flat, w, tl, tn, acc, vals[nv])
            nv += 1
        else:
            n2 = tn // 2
            n2 -= n2 % 8
            task_lo[nt], task_n[nt], task_join[nt] = tl, tn, True
            task_lo[nt + 1], task_n[nt + 1], task_join[nt + 1] = tl + n2, tn - n2, False
            task_lo[nt + 2], task_n[nt + 2], task_join[nt + 2] = tl, n2, False
            nt += 3
    for l in range(w):
        res[l] = vals[0, l]


@njit(cache=True, nogil=True)
def artefact_ratio_lanes_kernel(ext, t0, n_l, n_seg, seg, thr, ratio, grades):  # pragma: no cover - compiled
    """:func:`artefact_ratio_kernel` of the time-major ``ext`` [t0 + T + ..., 2 n_l] (C-contiguous):
    column ``l`` from row ``t0`` on is the band-passed noise of lead ``l`` (``l < n_l``) or the
    clean lead ``l - n_l`` -- the buffer the zero-phase band-pass leaves, read where it is
    instead of copied back to rows. Per segment, the pairwise sums of squares of every column
    (:func:`_sq_sum_rows`: each column's additions in NumPy's order) and the clean leads'
    peak-to-peak are taken for all leads side by side; the rest is ``artefact_ratio_kernel``'s
    arithmetic on those numbers. Writes ``ratio`` and ``grades`` [n_seg], returns the record's
    grade; requires ``n_seg >= 1``, ``n_l >= 1``.

    The peak-to-peak: when every sum of squares is finite (every value is), with
    ``np.minimum``/``np.maximum`` (they vectorise); the extremes of finite values are
    ``artefact_ratio_kernel``'s, but for the sign of a zero, and a peak-to-peak of zero of
    either sign grades the same (``qrs == 0``: unreadable). Otherwise with its comparisons
    (which pass over NaN), so that non-finite input gives its numbers too."""
    m, w = ext.shape
    flat = ext.reshape(m * w)
    ptp = np.empty((n_seg, n_l))
    ssq = np.empty((n_seg, w))
    lo_ = np.empty(n_l)
    hi_ = np.empty(n_l)
    acc = np.empty(8 * w)
    vals = np.empty((128, w))
    finite = True
    for k in range(n_seg):
        _sq_sum_rows(flat, w, t0 + k * seg, seg, acc, vals, ssq[k])
        for l in range(w):
            finite = finite and np.isfinite(ssq[k, l])
    for k in range(n_seg):
        a = t0 + k * seg
        e = ext[a][n_l:2 * n_l]
        for l in range(n_l):
            lo_[l] = e[l]
            hi_[l] = e[l]
        if finite:
            for t in range(a + 1, a + seg):
                e = ext[t][n_l:2 * n_l]
                for l in range(n_l):
                    x = e[l]
                    lo_[l] = np.minimum(lo_[l], x)
                    hi_[l] = np.maximum(hi_[l], x)
        else:
            for t in range(a + 1, a + seg):
                e = ext[t][n_l:2 * n_l]
                for l in range(n_l):
                    x = e[l]
                    if x < lo_[l]:
                        lo_[l] = x
                    if x > hi_[l]:
                        hi_[l] = x
        p = ptp[k]
        for l in range(n_l):
            p[l] = hi_[l] - lo_[l]
    qrs = np.empty(n_l)
    col = np.empty(max(n_l, n_seg))
    buf = np.empty(max(n_l, n_seg))
    for l in range(n_l):
        for k in range(n_seg):
            col[k] = ptp[k, l]
        qrs[l] = _median_of(col, n_seg, buf)
    for k in range(n_seg):
        for l in range(n_l):
            rms = np.sqrt((0.0 + ssq[k, l]) / seg)
            # NumPy's rms / 0 is inf or NaN, both read as inf (unreadable)
            r = rms / qrs[l] if qrs[l] != 0.0 else np.inf
            col[l] = r if np.isfinite(r) else np.inf
        ratio[k] = _median_of(col, n_l, buf)
    return _grades_from_ratio(ratio, n_seg, thr, grades, col, buf)


def artefact_ratio_lanes_ref(ext, t0, n_l, n_seg, seg, thr):
    """NumPy twin of :func:`artefact_ratio_lanes_kernel`: :func:`artefact_ratio_ref` of the rows
    ``ext[t0:, :2 n_l].T``."""
    return artefact_ratio_ref(np.ascontiguousarray(ext[t0:, :2 * n_l].T), n_l, n_seg, seg, thr)


KERNELS["artefact_ratio_lanes"] = (artefact_ratio_lanes_kernel, artefact_ratio_lanes_ref)


@njit(cache=True, nogil=True)
def artefact_grades_kernel(sos, zi, rec, cl, padlen, ext, n_seg, seg, thr, ratio, grades):  # pragma: no cover - compiled
    """The whole of ``noise.textile.artefact_grades`` after its checks: the zero-phase band-pass
    of the rows ``[rec - cl; cl]`` into the time-major ``ext`` [T + 2 padlen, 2 n_l] exactly as
    :func:`sosfiltfilt_diff_kernel` forms and filters them, then the statistics read from
    ``ext`` itself (:func:`artefact_ratio_lanes_kernel`), without the copy back to rows.
    Writes ``ratio`` and ``grades`` [n_seg], returns the record's grade."""
    n_l, n = rec.shape
    for i in range(n):
        e = ext[padlen + i]
        for r in range(n_l):
            e[r] = rec[r, i] - cl[r, i]
            e[n_l + r] = cl[r, i]
    return artefact_grades_lanes_kernel(sos, zi, ext, n_l, n, padlen, n_seg, seg, thr, ratio, grades)


@njit(cache=True, nogil=True)
def artefact_grades_lanes_kernel(sos, zi, ext, n_l, n, padlen, n_seg, seg, thr, ratio, grades):  # pragma: no cover - compiled
    """:func:`artefact_grades_kernel` whose rows ``ext[padlen:padlen + n]`` already hold
    ``[rec - cl, cl]`` time-major (as ``device._kernels.filter_adc_grade_lanes_kernel`` writes
    them while it records): the odd extension, the band-pass and the statistics."""
    rows = 2 * n_l
    m = n + 2 * padlen
    for r in range(rows):
        x0 = ext[padlen, r]
        x1 = ext[padlen + n - 1, r]
        for i in range(padlen):
            ext[i, r] = 2.0 * x0 - ext[2 * padlen - i, r]
            ext[padlen + n + i, r] = 2.0 * x1 - ext[padlen + n - 2 - i, r]
    if sos.shape[0] == 2:
        _filtfilt_two_sections(sos, zi, ext, m, rows)
    else:
        _filtfilt_sections(sos, zi, ext, m, rows)
    return artefact_ratio_lanes_kernel(ext, padlen, n_l, n_seg, seg, thr, ratio, grades)


def artefact_grades_ref(sos, rec, cl, n_seg, seg, thr):
    """NumPy/SciPy twin of :func:`artefact_grades_kernel`: :func:`sosfiltfilt_diff_ref` then
    :func:`artefact_ratio_ref` (``(ratio, grades, record_grade)``)."""
    return artefact_ratio_ref(sosfiltfilt_diff_ref(sos, rec, cl), rec.shape[0], n_seg, seg, thr)


KERNELS["artefact_grades"] = (artefact_grades_kernel, artefact_grades_ref)


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def all_finite_kernel(x):  # pragma: no cover - compiled
    """``numpy.isfinite(x).all()`` of a 2-D float array: the sum of ``x * 0`` (0 for a finite
    sample, NaN for NaN or inf) is 0 exactly when every sample is finite. Reassociation only
    (no ``nnan``/``ninf`` assumptions), so the sum vectorises and NaN still propagates."""
    s = x.dtype.type(0.0)
    zero = x.dtype.type(0.0)
    for i in range(x.shape[0]):
        for t in range(x.shape[1]):
            s += x[i, t] * zero
    return s == 0


def all_finite_ref(x):
    """NumPy twin of :func:`all_finite_kernel`."""
    return bool(np.isfinite(x).all())


KERNELS["all_finite"] = (all_finite_kernel, all_finite_ref)


@njit(cache=True, nogil=True)
def nstdb_powers_kernel(clean, r, h, cut_s, term_e, term_w, n_terms, start, save, xs, c, cut_p,
                        s_out, p_out):  # pragma: no cover - compiled
    """The NSTDB signal and noise powers of :func:`cardiosim.noise.snr.scale_electrode_noise`
    for kinds without a target, in one call: ``s_out[l]`` = ``signal_power`` of the clean
    leads ``clean`` [n_leads, T] (QRS peak-to-peak in ``[r - h, r + h]``, trimmed mean of
    ``cut_s``, squared, / 8) and ``p_out[i, l]`` = the 'nstdb' noise power of lead ``l`` of
    electrode noise ``xs[i]`` (chunk variances as :func:`lead_chunk_var_multi_kernel`, RMS,
    trimmed mean of ``cut_p``, squared). The same operations as the NumPy code, in its
    order. Returns 0, or 1 when ``clean`` is not finite (:func:`all_finite_kernel`), 2 when
    a beat is outside the record, 3 when a chunk variance is not finite (the caller then
    takes the NumPy path, which raises or measures as it does)."""
    if not all_finite_kernel(clean):
        return 1
    return nstdb_powers_finite_kernel(clean, r, h, cut_s, term_e, term_w, n_terms, start, save, xs, c, cut_p,
                                      s_out, p_out)


@njit(cache=True, nogil=True)
def nstdb_powers_finite_kernel(clean, r, h, cut_s, term_e, term_w, n_terms, start, save, xs, c, cut_p,
                               s_out, p_out):  # pragma: no cover - compiled
    """:func:`nstdb_powers_kernel` for clean leads known to be finite (the noise stage's, formed
    by :func:`stage_leads_kernel`, which checked them): everything but its pass over ``clean``
    that checks it. Returns 0, 2 or 3 as that kernel does."""
    n_l, n = clean.shape
    nb = r.shape[0]
    for b in range(nb):
        if r[b] < 0 or r[b] >= n:
            return 2
    pp = np.empty((n_l, nb))
    qrs_pp_kernel(clean, r, h, pp)
    buf = np.empty(32)
    for l in range(n_l):
        s_out[l] = _trimmed_mean_sq(pp[l], cut_s, buf) / 8.0
    k = p_out.shape[0]
    n_chunks = xs[0].shape[1] // c
    var = np.empty((k, n_l, n_chunks))
    v = np.empty(c)
    pre = np.empty(c)
    for i in range(k):
        _planned_chunk_var(term_e, term_w, n_terms, start, save, xs[i], c, var[i], v, pre)
    rms = np.empty(n_chunks)
    for i in range(k):
        for l in range(n_l):
            for j in range(n_chunks):
                w = var[i, l, j]
                if not (w - w == 0):
                    return 3
                rms[j] = np.sqrt(w)
            p_out[i, l] = _trimmed_mean_sq(rms, cut_p, buf)
    return 0


def nstdb_powers_ref(clean, r, h, trim, matrix, xs, c):
    """NumPy twin of :func:`nstdb_powers_kernel` (``cut = int(trim * count)``): ``(s, p)``."""
    from .snr import trimmed_mean
    s = trimmed_mean(qrs_pp_ref(clean, r, h), trim) ** 2 / 8.0
    p = trimmed_mean(np.sqrt(lead_chunk_var_multi_ref(matrix, xs, c)), trim) ** 2
    return s, p


KERNELS["nstdb_powers"] = (nstdb_powers_kernel, nstdb_powers_ref)
KERNELS["nstdb_powers_finite"] = (nstdb_powers_finite_kernel, nstdb_powers_ref)


@njit(nogil=True, inline="always")
def _snr_ratios(s, p, out):  # pragma: no cover - compiled
    """The ratios under the logarithms of :func:`snr_db_kernel`, in its order of keys: per kind
    ``sum s / sum p_k`` (NumPy's pairwise sums, added to 0.0) then ``s / p_k`` of every lead,
    into ``out``; False, with nothing written, unless every power is positive."""
    n_k, n_l = p.shape
    for l in range(n_l):
        if not s[l] > 0.0:
            return False
    for i in range(n_k):
        for l in range(n_l):
            if not p[i, l] > 0.0:
                return False
    s_sum = 0.0 + pairwise_sum_flat(s, 0, n_l)
    q = 0
    for i in range(n_k):
        out[q] = s_sum / (0.0 + pairwise_sum_flat(p[i], 0, n_l))
        q += 1
        for l in range(n_l):
            out[q] = s[l] / p[i, l]
            q += 1
    return True


@njit(cache=True, nogil=True)
def snr_db_kernel(s, p, out):  # pragma: no cover - compiled
    """The realised SNRs of :func:`cardiosim.noise.snr.scale_electrode_noise`'s measured kinds
    from the signal powers ``s`` [n_leads] and noise powers ``p`` [n_kinds, n_leads] (float64,
    C order), in its order of keys: for each kind the pooled ``10 log10(sum s / sum p_k)``,
    then ``10 log10(s / p_k)`` of every lead, into ``out`` [n_kinds (1 + n_leads)]. NumPy's
    operations: its pairwise sums (:func:`~cardiosim._pairwise_kernels.pairwise_sum_flat`,
    added to 0.0), IEEE division and ``log10`` (the C library's, as NumPy's float64 ``log10``
    without AVX-512; :func:`cardiosim.noise.snr._snr_db_kernel_matches` checks it once per
    process). Returns False, with nothing written, unless every power is positive (the caller
    then takes the NumPy path, which masks zero and NaN powers)."""
    if not _snr_ratios(s, p, out):
        return False
    for q in range(p.shape[0] * (1 + p.shape[1])):
        out[q] = 10.0 * np.log10(out[q])
    return True


def snr_db_ref(s, p):
    """NumPy twin of :func:`snr_db_kernel` (the expressions of ``scale_electrode_noise``):
    the flat values, or ``None`` unless every power is positive."""
    if not (s.min() > 0.0 and p.min() > 0.0):
        return None
    snr_lead = 10 * np.log10(s / p)
    pooled = 10 * np.log10(s.sum() / p.sum(axis=1))
    return np.concatenate([pooled[:, None], snr_lead], axis=1).ravel()


KERNELS["snr_db"] = (snr_db_kernel, snr_db_ref)


@njit(cache=True, nogil=True)
def snr_db_loop_kernel(s, p, out, loop):  # pragma: no cover - compiled
    """:func:`snr_db_kernel` with NumPy's own ``log10`` loop (``loop``:
    :func:`cardiosim._exp_kernels.np_log10_loop`; SVML's on AVX-512, where the C library's
    ``log10`` is not NumPy's): the ratios into ``out`` (C-contiguous), NumPy's loop over them
    in place, then times 10. The same values as :func:`snr_db_ref` where the loop reproduces
    ``np.log10`` (:func:`cardiosim.noise.snr._snr_db_form` checks it once per process).
    Returns False, with nothing written, unless every power is positive."""
    if not _snr_ratios(s, p, out):
        return False
    q = p.shape[0] * (1 + p.shape[1])
    unary_loop_inplace(loop, out.ctypes.data, q)
    for j in range(q):
        out[j] = 10.0 * out[j]
    return True


@njit(cache=True, nogil=True)
def qrs_pp_kernel(x, r, h, out):  # pragma: no cover - compiled
    """Peak-to-peak of each lead of ``x`` [n_leads, T] in ``[r - h, r + h]`` (both ends
    included, cut to the record) around every beat ``r`` (int64 samples, inside the
    record): ``out`` float64 [n_leads, n_beats] = float64(max) - float64(min)."""
    n_l, n = x.shape
    for b in range(r.shape[0]):
        lo = max(0, r[b] - h)
        hi = min(n - 1, r[b] + h)
        for l in range(n_l):
            mx = x[l, lo]
            mn = x[l, lo]
            for t in range(lo + 1, hi + 1):
                v = x[l, t]
                if v > mx:
                    mx = v
                if v < mn:
                    mn = v
            out[l, b] = np.float64(mx) - np.float64(mn)


def qrs_pp_ref(x, r, h):
    """NumPy twin of :func:`qrs_pp_kernel` (a loop over beats)."""
    x = np.asarray(x)
    out = np.empty((x.shape[0], len(r)))
    for b, i in enumerate(r):
        seg = x[:, max(0, i - h):min(x.shape[1] - 1, i + h) + 1]
        out[:, b] = seg.max(axis=1).astype(np.float64) - seg.min(axis=1)
    return out


KERNELS["qrs_pp"] = (qrs_pp_kernel, qrs_pp_ref)


# --- powerline by impedance mismatch (noise.electrode) -------------------------------------

@njit(cache=True, nogil=True, error_model="numpy")
def powerline_kernel(v, z, z_in, out):  # pragma: no cover - compiled
    """``out[e, t] = v[t] * (z[e, t] / (z[e, t] + z_in))`` in the precision of the arrays
    (float32: every operation rounded to float32 in this order, as NumPy does it), one
    pass instead of three. ``z`` [n_e, T] or [n_e, 1] (constant impedance)."""
    n_e, n = out.shape
    if z.shape[1] > 1:
        for e in range(n_e):
            for t in range(n):                # branch-free: vectorises
                ze = z[e, t]
                out[e, t] = v[t] * (ze / (ze + z_in))
    else:
        for e in range(n_e):
            ze = z[e, 0]
            f = ze / (ze + z_in)
            for t in range(n):
                out[e, t] = v[t] * f


def powerline_ref(v, z, z_in):
    """NumPy twin of :func:`powerline_kernel`."""
    return v[None, :] * (z / (z + z.dtype.type(z_in)))


KERNELS["powerline"] = (powerline_kernel, powerline_ref)


@njit(cache=True, nogil=True)
def mains_sum_kernel(coef, tables, mod_sin, depth, amp, out):  # pragma: no cover - compiled
    """The body's mains voltage in one pass, float32 throughout and in NumPy's order of
    operations: ``out[t] = sum_i coef[i] * tables[i, t]`` (accumulated from 0 in the order
    of ``i``), then ``out[t] *= amp * (1 + depth * mod_sin[t])``. ``coef`` float32 [m],
    ``tables`` float32 [m, T] (sin / cos of each harmonic), ``mod_sin`` float32 [T]."""
    m = coef.shape[0]
    n = out.shape[0]
    one = np.float32(1.0)
    # harmonic by harmonic over the record (each sample's sum still starts from 0 and adds
    # the harmonics in the order of ``i``: the same roundings), so the loops vectorise
    for t in range(n):
        out[t] = np.float32(0.0)
    for i in range(m):
        c = coef[i]
        for t in range(n):
            out[t] = out[t] + c * tables[i, t]
    for t in range(n):
        out[t] = out[t] * (amp * (one + depth * mod_sin[t]))


def mains_sum_ref(coef, tables, mod_sin, depth, amp):
    """NumPy twin of :func:`mains_sum_kernel` (the passes as :func:`~cardiosim.noise.electrode.common_mode_voltage` made them)."""
    v = np.zeros(tables.shape[1], dtype=np.float32)
    for c, tab in zip(coef, tables):
        v += c * tab
    v *= amp * (np.float32(1.0) + depth * mod_sin)
    return v


KERNELS["mains_sum"] = (mains_sum_kernel, mains_sum_ref)


@njit(cache=True, nogil=True)
def impedance_kernel(z_inf, dz, decay, out):  # pragma: no cover - compiled
    """``out[e, t] = z_inf[e] + dz[e] * decay[t]`` (float32, multiply then add, each
    rounded: NumPy's two passes in one)."""
    n_e, n = out.shape
    for e in range(n_e):
        a = z_inf[e]
        b = dz[e]
        for t in range(n):
            out[e, t] = a + b * decay[t]


def impedance_ref(z_inf, dz, decay):
    """NumPy twin of :func:`impedance_kernel`."""
    return z_inf[:, None] + dz[:, None] * decay[None, :]


KERNELS["impedance"] = (impedance_kernel, impedance_ref)


@njit(cache=True, nogil=True)
def impedance_decay_kernel(z0, z_inf, d0, shape, out):  # pragma: no cover - compiled
    """The impedance of :func:`cardiosim.noise.electrode._draw_impedance` in one pass:
    ``out[e, t] = float32(z_inf[e]) + float32(z0[e] - z_inf[e]) * (d0 * shape[t])`` with
    ``z0``, ``z_inf`` float64 [n_e], ``d0`` float32 (the decay at the record's start) and
    ``shape`` float32 [T] (the decay over the record): NumPy's float32 passes (the decay
    ``d0 * shape``, then :func:`impedance_kernel`) with each product and sum rounded in the
    same order."""
    n_e, n = out.shape
    for e in range(n_e):
        a = np.float32(z_inf[e])
        b = np.float32(z0[e] - z_inf[e])
        for t in range(n):
            out[e, t] = a + b * (d0 * shape[t])


def impedance_decay_ref(z0, z_inf, d0, shape):
    """NumPy twin of :func:`impedance_decay_kernel`."""
    return impedance_ref(z_inf.astype(np.float32), (z0 - z_inf).astype(np.float32), d0 * shape)


KERNELS["impedance_decay"] = (impedance_decay_kernel, impedance_decay_ref)


@njit(cache=True, nogil=True)
def add3_kernel(p, a, b, c, out):  # pragma: no cover - compiled
    """``out = ((p + a) + b) + c`` elementwise in the arrays' precision (float32: each sum
    rounded, in NumPy's order of ``out = p.copy(); out += a; out += b; out += c``), one pass
    instead of four. All ``[n_e, T]``."""
    n_e, n = out.shape
    for e in range(n_e):
        for t in range(n):
            out[e, t] = ((p[e, t] + a[e, t]) + b[e, t]) + c[e, t]


def add3_ref(p, a, b, c):
    """NumPy twin of :func:`add3_kernel`."""
    out = p.copy()
    out += a
    out += b
    out += c
    return out


KERNELS["add3"] = (add3_kernel, add3_ref)


@njit(cache=True, nogil=True)
def add4_kernel(p, a, b, c, d, out):  # pragma: no cover - compiled
    """``out = (((p + a) + b) + c) + d`` elementwise in the arrays' precision (NumPy's order of
    ``out = p.copy(); out += a; ... out += d``), one pass instead of five: the default kinds
    (white, activity, powerline, drift) in one. All ``[n_e, T]``."""
    n_e, n = out.shape
    for e in range(n_e):
        for t in range(n):
            out[e, t] = (((p[e, t] + a[e, t]) + b[e, t]) + c[e, t]) + d[e, t]


def add4_ref(p, a, b, c, d):
    """NumPy twin of :func:`add4_kernel`."""
    out = add3_ref(p, a, b, c)
    out += d
    return out


KERNELS["add4"] = (add4_kernel, add4_ref)


@njit(cache=True, nogil=True)
def burst_arg_kernel(lo, c, half_w, out):  # pragma: no cover - compiled
    """``out[i] = -0.5 * ((float32(lo + i) - c) / half_w) ** 2`` in float32 (``c``, ``half_w``
    float32), each operation rounded as NumPy's float32 passes round it (subtract, divide,
    square, multiply): the exponent of a muscle burst (:mod:`cardiosim.noise.electrode`)."""
    m = np.float32(-0.5)
    for i in range(out.shape[0]):
        d = (np.float32(lo + i) - c) / half_w
        out[i] = m * (d * d)


def burst_arg_ref(lo, c, half_w, n):
    """NumPy twin of :func:`burst_arg_kernel`."""
    return -0.5 * ((np.arange(lo, lo + n, dtype=np.float32) - c) / half_w) ** 2


KERNELS["burst_arg"] = (burst_arg_kernel, burst_arg_ref)


@njit(cache=True, nogil=True)
def add_scaled_kernel(env, lo, h, x):  # pragma: no cover - compiled
    """``env[lo:lo + x.size] += h * x`` in the arrays' precision (product, then sum, each rounded)."""
    for i in range(x.shape[0]):
        env[lo + i] = env[lo + i] + h * x[i]


def add_scaled_ref(env, lo, h, x):
    """NumPy twin of :func:`add_scaled_kernel` (returns the updated copy)."""
    env = env.copy()
    env[lo:lo + x.size] += h * x
    return env


KERNELS["add_scaled"] = (add_scaled_kernel, add_scaled_ref)


@njit(cache=True, nogil=True)
def sum_f32_as_f64_kernel(x):  # pragma: no cover - compiled
    """``np.add.reduce(x, dtype=np.float64)`` of a 1-D float32 ``x`` of at most 8,192 values
    (NumPy casts them into one buffer, then adds pairwise): the float64 values summed in
    NumPy's pairwise order, added to 0.0 (a Python float)."""
    n = x.shape[0]
    buf = np.empty(n)
    for i in range(n):
        buf[i] = np.float64(x[i])
    return 0.0 + pairwise_sum_flat(buf, 0, n)


def sum_f32_as_f64_ref(x):
    """NumPy twin of :func:`sum_f32_as_f64_kernel`."""
    return float(np.add.reduce(x, dtype=np.float64))


KERNELS["sum_f32_as_f64"] = (sum_f32_as_f64_kernel, sum_f32_as_f64_ref)


@njit(cache=True, nogil=True)
def scale_bins_kernel(z, amp, first):  # pragma: no cover - compiled
    """``z[:, first:first + amp.size] *= amp`` for complex ``z`` [rows, m] and real ``amp``,
    with NumPy's arithmetic: the real factor is taken as ``amp + 0j`` and multiplied as a
    complex number, ``(x + iy)(a + i0) = (x a - y 0) + i (x 0 + y a)`` (the products by zero
    kept: they fix the sign of a zero part as NumPy's loop does, fused or not)."""
    for r in range(z.shape[0]):
        for j in range(amp.shape[0]):
            w = z[r, first + j]
            a = amp[j]
            z[r, first + j] = complex(w.real * a - w.imag * 0.0, w.real * 0.0 + w.imag * a)


def scale_bins_ref(z, amp, first):
    """NumPy twin of :func:`scale_bins_kernel` (returns the scaled copy)."""
    z = z.copy()
    z[:, first:first + amp.size] *= amp
    return z


KERNELS["scale_bins"] = (scale_bins_kernel, scale_bins_ref)


@njit(cache=True, nogil=True, error_model="numpy")
def impedance_pressure_kernel(z0, z_inf, d0, shape, pressure, out):  # pragma: no cover - compiled
    """:func:`impedance_decay_kernel` divided by the contact pressure's square root in the
    same pass: ``out[e, t] = (float32(z_inf[e]) + float32(z0[e] - z_inf[e]) * (d0 * shape[t]))
    / sqrt(float32(pressure[e, t]))`` (``pressure`` float64 [n_e, T]), NumPy's
    ``z /= np.sqrt(pressure, dtype=float32)`` after the decay: the float32 cast, square
    root and division are correctly rounded IEEE operations, the same here as in NumPy
    (``error_model="numpy"``: no zero-division branch, so the loop vectorises; 0.030 ->
    0.018 ms for 9 x 5,000 samples)."""
    n_e, n = out.shape
    for e in range(n_e):
        a = np.float32(z_inf[e])
        b = np.float32(z0[e] - z_inf[e])
        for t in range(n):
            out[e, t] = (a + b * (d0 * shape[t])) / np.sqrt(np.float32(pressure[e, t]))


def impedance_pressure_ref(z0, z_inf, d0, shape, pressure):
    """NumPy twin of :func:`impedance_pressure_kernel`."""
    z = impedance_decay_ref(z0, z_inf, d0, shape)
    z /= np.sqrt(pressure, dtype=np.float32)
    return z


KERNELS["impedance_pressure"] = (impedance_pressure_kernel, impedance_pressure_ref)


@njit(cache=True, nogil=True)
def positive_finite_kernel(x):  # pragma: no cover - compiled
    """Whether every sample of a 2-D float array is positive and finite (``0 < x < inf``;
    NaN fails both comparisons): ``not (np.any(x <= 0) or not np.all(np.isfinite(x)))``
    without the temporary boolean arrays (a count of integer flags, so the loop vectorises)."""
    good = 0
    for i in range(x.shape[0]):
        for t in range(x.shape[1]):
            v = x[i, t]
            good += np.int64(v > 0.0) & np.int64(v < np.inf)
    return good == x.shape[0] * x.shape[1]


def positive_finite_ref(x):
    """NumPy twin of :func:`positive_finite_kernel`."""
    return not (np.any(x <= 0) or not np.all(np.isfinite(x)))


KERNELS["positive_finite"] = (positive_finite_kernel, positive_finite_ref)



@njit(cache=True, nogil=True)
def drift_kernel(y, starts, w1, scale, out):  # pragma: no cover - compiled
    """Write ``scale[r]`` times the slow-grid drift ``y[r]`` (float64 ``[rows, m]``), linearly
    interpolated, into ``out[r, t]`` (float32 ``[rows, n]``) (:mod:`cardiosim.noise.drift`): output
    sample ``t`` of slow interval ``k`` (``starts[k] <= t < starts[k + 1]``) is ``a + (b - a) w1[t]``
    with ``a = scale[r] y[k]``, ``b = scale[r] y[k + 1]`` (:func:`drift_table`: ``p = t * step``,
    ``w1 = p - int(p)``). Walking one slow interval at a time over precomputed weights leaves the
    inner loop one load, one multiply-add and a store, so it vectorises."""
    rows = y.shape[0]
    n = out.shape[1]
    m = starts.size
    for r in range(rows):
        s = scale[r]
        yr = y[r]
        o = out[r]
        for k in range(m - 1):
            t0 = starts[k]
            if t0 >= n:
                break
            t1 = min(starts[k + 1], n)
            a = s * yr[k]
            d = s * yr[k + 1] - a
            # 1-D slices: the loop then has no 2-D index arithmetic and vectorises (4x faster)
            oo = o[t0:t1]
            ww = w1[t0:t1]
            for t in range(t1 - t0):
                oo[t] = np.float32(a + d * ww[t])


def drift_table(n: int, step: float, m: int) -> tuple:
    """``(starts, w1)`` of :func:`drift_kernel` for ``n`` output samples at ``step`` slow
    samples each and ``m`` slow samples: ``starts[k]`` the first ``t`` with ``int(t * step) >= k``
    (``n`` where there is none), ``w1 = t * step - int(t * step)``."""
    p = np.arange(n) * step
    i = p.astype(np.intp)
    w1 = p - i
    starts = np.searchsorted(i, np.arange(m), side="left").astype(np.int64)
    return starts, w1


def drift_ref(y, step, scale, n):
    """NumPy twin of :func:`drift_kernel` (with :func:`drift_table`'s weights): the drift
    ``[rows, n]`` float32 it writes."""
    p = np.arange(n) * step
    i = p.astype(np.intp)
    w = p - i
    ys = np.asarray(scale, dtype=np.float64)[:, None] * y
    a = ys[:, i]
    return (a + (ys[:, i + 1] - a) * w).astype(np.float32)


KERNELS["drift"] = (drift_kernel, drift_ref)



# --- the noise stage's leads: noisy and noiseless in one pass (cardiosim.simulate) --------

_LEADS_CHUNK = 512     # samples per pass of the kind sums: every kind's chunk stays in L1


@njit(cache=True, nogil=True)
def _lead_rows_from(matrix, x, x0, a, b, out, row0):  # pragma: no cover - compiled
    """``out[row0 + k, a:b] = sum_e matrix[k, e] * x[e, x0 + t - a]`` over the non-zero
    weights, ``e`` ascending, summed from +0.0 in a register (``Montage.apply``'s ``einsum``
    sums on finite values; leads of 1-4 electrodes written out so each loop over time
    vectorises). The device's kernels use it too (they import this module, not the reverse)."""
    n_k, n_e = matrix.shape
    nz = np.empty(n_e, dtype=np.int64)
    cs = np.empty(n_e)
    d = x0 - a
    for k in range(n_k):
        m = 0
        for e in range(n_e):
            if matrix[k, e] != 0.0:
                nz[m] = e
                cs[m] = matrix[k, e]
                m += 1
        o = out[row0 + k]
        if m == 0:
            for t in range(a, b):
                o[t] = 0.0
        elif m == 1:
            c0, p0 = cs[0], x[nz[0]]
            for t in range(a, b):
                o[t] = 0.0 + c0 * p0[t + d]
        elif m == 2:
            c0, c1, p0, p1 = cs[0], cs[1], x[nz[0]], x[nz[1]]
            for t in range(a, b):
                o[t] = (0.0 + c0 * p0[t + d]) + c1 * p1[t + d]
        elif m == 3:
            c0, c1, c2 = cs[0], cs[1], cs[2]
            p0, p1, p2 = x[nz[0]], x[nz[1]], x[nz[2]]
            for t in range(a, b):
                o[t] = ((0.0 + c0 * p0[t + d]) + c1 * p1[t + d]) + c2 * p2[t + d]
        elif m == 4:
            c0, c1, c2, c3 = cs[0], cs[1], cs[2], cs[3]
            p0, p1, p2, p3 = x[nz[0]], x[nz[1]], x[nz[2]], x[nz[3]]
            for t in range(a, b):
                o[t] = (((0.0 + c0 * p0[t + d]) + c1 * p1[t + d]) + c2 * p2[t + d]) + c3 * p3[t + d]
        else:
            for t in range(a, b):
                acc = 0.0
                for j in range(m):
                    acc += cs[j] * x[nz[j], t + d]
                o[t] = acc


@njit(cache=True, nogil=True)
def stage_leads_kernel(matrix, phi, contact, unit_contact, kinds, which, consts, limit, rows,
                       stage):  # pragma: no cover - compiled
    """The noise stage's two sets of leads in one call: ``rows[:n_k]`` the noisy leads
    ``matrix @ (phi * contact + noise)`` and ``rows[n_k:2 n_k]`` the noiseless ``matrix @ phi``,
    each the device kernels' value bit for bit (``noisy_sum_montage_rows_kernel`` and
    ``montage_rows_kernel``: the operations of :func:`_lead_rows_from`). The noise is summed
    from its kinds as ``ElectrodeNoise.noise`` sums them (float32, kind by kind in order, each
    sum rounded; kind ``j`` is ``kinds[which[j]]`` or, where ``which[j] < 0``, the constant
    ``consts[j]``), up to four kinds in one loop, a chunk of time at a time; the noisy electrode
    values ``phi * contact + noise`` (float64, ``ElectrodeNoise.apply``'s operations) are
    staged in ``stage`` [n_e, T] (which may be ``rows[n_k:n_k + n_e]``: the noiseless leads
    are written after the noisy ones), then each set of leads is formed over the whole record
    in one pass per lead (a lead pass over 512-sample chunks ran at a third of the speed).
    Returns the number of electrode values (``phi`` and the noisy ones) that are not finite or
    exceed ``limit`` in magnitude: when it is 0 every lead of both sets is finite (``limit``
    from :func:`leads_limit`: no sum of the matrix's terms can overflow), so the caller checks
    neither; otherwise the caller takes the device kernels' path."""
    n_e, n = phi.shape
    n_k = matrix.shape[0]
    n_kinds = which.shape[0]
    ch = _LEADS_CHUNK
    s = np.empty(ch, dtype=np.float32)
    bad = 0
    zero = np.float32(0.0)
    for a in range(0, n, ch):
        b = min(n, a + ch)
        m = b - a
        for e in range(n_e):
            j = 0
            while j < n_kinds:
                g = min(4, n_kinds - j)
                j1 = min(j + 1, n_kinds - 1)
                j2 = min(j + 2, n_kinds - 1)
                j3 = min(j + 3, n_kinds - 1)
                w0, w1, w2, w3 = which[j], which[j1], which[j2], which[j3]
                r0 = kinds[max(w0, 0)][e, a:b]
                r1 = kinds[max(w1, 0)][e, a:b]
                r2 = kinds[max(w2, 0)][e, a:b]
                r3 = kinds[max(w3, 0)][e, a:b]
                f0, f1, f2, f3 = w0 >= 0, w1 >= 0, w2 >= 0, w3 >= 0
                c0, c1, c2, c3 = consts[j], consts[j1], consts[j2], consts[j3]
                if j == 0:
                    if g == 1:
                        for t in range(m):
                            s[t] = r0[t] if f0 else c0
                    elif g == 2:
                        for t in range(m):
                            s[t] = (r0[t] if f0 else c0) + (r1[t] if f1 else c1)
                    elif g == 3:
                        for t in range(m):
                            s[t] = ((r0[t] if f0 else c0) + (r1[t] if f1 else c1)) + (r2[t] if f2 else c2)
                    else:
                        for t in range(m):
                            s[t] = (((r0[t] if f0 else c0) + (r1[t] if f1 else c1)) + (r2[t] if f2 else c2)) \
                                + (r3[t] if f3 else c3)
                else:
                    if g == 1:
                        for t in range(m):
                            s[t] = s[t] + (r0[t] if f0 else c0)
                    elif g == 2:
                        for t in range(m):
                            s[t] = (s[t] + (r0[t] if f0 else c0)) + (r1[t] if f1 else c1)
                    elif g == 3:
                        for t in range(m):
                            s[t] = ((s[t] + (r0[t] if f0 else c0)) + (r1[t] if f1 else c1)) + (r2[t] if f2 else c2)
                    else:
                        for t in range(m):
                            s[t] = (((s[t] + (r0[t] if f0 else c0)) + (r1[t] if f1 else c1))
                                    + (r2[t] if f2 else c2)) + (r3[t] if f3 else c3)
                j += g
            if n_kinds == 0:
                for t in range(m):
                    s[t] = zero
            ve = stage[e, a:b]
            pe = phi[e, a:b]
            if unit_contact:
                for t in range(m):
                    p = pe[t]
                    x = p + np.float64(s[t])
                    bad += np.int64(not (abs(x) <= limit)) + np.int64(not (abs(p) <= limit))
                    ve[t] = x
            else:
                for t in range(m):
                    p = pe[t]
                    x = p * np.float64(contact[e, a + t]) + np.float64(s[t])
                    bad += np.int64(not (abs(x) <= limit)) + np.int64(not (abs(p) <= limit))
                    ve[t] = x
    _lead_rows_from(matrix, stage, 0, 0, n, rows, 0)
    _lead_rows_from(matrix, phi, 0, 0, n, rows, n_k)
    return bad


def stage_leads_ref(matrix, phi, contact, kinds):
    """NumPy twin of :func:`stage_leads_kernel`: ``(noisy, clean)`` leads -- the kinds summed
    as ``ElectrodeNoise.noise`` sums them (float32, in order), ``phi * contact`` plus that noise
    in float64 (``ElectrodeNoise.apply``), and ``Montage.apply``'s ``einsum`` of it and of ``phi``."""
    total32 = None
    for k in kinds:
        total32 = np.array(k, dtype=np.float32, copy=True) if total32 is None else total32 + k
    phi = np.asarray(phi, dtype=np.float64)
    m = np.asarray(matrix, dtype=np.float64)
    x = phi * contact + (0.0 if total32 is None else total32.astype(np.float64))
    return np.einsum("ke,et->kt", m, x), np.einsum("ke,et->kt", m, phi)


@functools.lru_cache(maxsize=16)
def _leads_limit_cached(key: bytes, shape: tuple) -> float:
    m = np.abs(np.frombuffer(key, dtype=np.float64).reshape(shape))
    return 1e300 / max(1.0, float(m.sum(axis=1).max()) if m.size else 1.0)


def leads_limit(matrix) -> float:
    """The magnitude below which every electrode value keeps every lead of ``matrix`` finite:
    a lead sums at most ``n_e`` terms ``w_e x_e`` (rounded each), so ``|lead| <= (1 + 2 n_e
    2^-53) sum_e |w_e| max|x|``; with ``max|x| <= 1e300 / max(1, max_k sum_e |w_ke|)`` that is far
    below the largest double (cached per matrix)."""
    m = np.ascontiguousarray(matrix, dtype=np.float64)
    return _leads_limit_cached(m.tobytes(), m.shape)


KERNELS["stage_leads"] = (stage_leads_kernel, stage_leads_ref)


# --- small passes of the noise stage's per-record Python (issue 16) ------------------------------

@njit(cache=True, nogil=True)
def affine_f32_kernel(t, a, b, out):  # pragma: no cover - compiled
    """``out = t * float32(a) + float32(b)`` of a float32 ``t`` [T], multiply then add, each
    rounded to float32: what ``np.multiply(t, float32(a))`` then ``+= float32(b)`` give, in one
    pass without their two ufunc calls (the common-mode voltage's modulation phase). ``a``,
    ``b`` may be Python floats (rounded to float32 here, as ``np.float32`` rounds them: a
    Python float is typed faster than a NumPy scalar when the kernel is called)."""
    a32 = np.float32(a)
    b32 = np.float32(b)
    for i in range(t.shape[0]):
        out[i] = t[i] * a32 + b32


def affine_f32_ref(t, a, b):
    """NumPy twin of :func:`affine_f32_kernel` (the two passes it replaces)."""
    out = np.multiply(t, np.float32(a))
    out += np.float32(b)
    return out


KERNELS["affine_f32"] = (affine_f32_kernel, affine_f32_ref)


@njit(cache=True, nogil=True)
def in_range_kernel(r, n, out):  # pragma: no cover - compiled
    """The values of the 1-D int64 ``r`` in ``[0, n)``, in order, into ``out[:k]`` (``out`` at
    least as long as ``r``); returns ``k``: ``out[:k]`` is ``r[(r >= 0) & (r < n)]`` (the beats
    inside the record) without NumPy's four passes. (Written into the caller's array: an array
    returned by a kernel costs numba's boxing of a new array, ~10 us in the stage.)"""
    k = 0
    for i in range(r.shape[0]):
        if 0 <= r[i] < n:
            out[k] = r[i]
            k += 1
    return k


def in_range_ref(r, n):
    """NumPy twin of :func:`in_range_kernel` (what ``out[:k]`` holds)."""
    return r[(r >= 0) & (r < n)]


KERNELS["in_range"] = (in_range_kernel, in_range_ref)


@njit(cache=True, nogil=True, error_model="numpy")
def impedance_pressure_checked_kernel(z0, z_inf, d0, shape, pressure, out):  # pragma: no cover - compiled
    """:func:`impedance_pressure_kernel`'s values, and :func:`positive_finite_kernel` of
    ``pressure`` from the same pass (one read of the pressure, not two): returns whether every
    pressure sample is positive and finite (when not, ``out`` holds whatever the division
    gave; the caller raises)."""
    n_e, n = out.shape
    good = 0
    for e in range(n_e):
        a = np.float32(z_inf[e])
        b = np.float32(z0[e] - z_inf[e])
        for t in range(n):
            p = pressure[e, t]
            good += np.int64(p > 0.0) & np.int64(p < np.inf)
            out[e, t] = (a + b * (d0 * shape[t])) / np.sqrt(np.float32(p))
    return good == n_e * n


def impedance_pressure_checked_ref(z0, z_inf, d0, shape, pressure):
    """NumPy twin of :func:`impedance_pressure_checked_kernel`: ``(impedance, all positive and finite)``."""
    return impedance_pressure_ref(z0, z_inf, d0, shape, pressure), positive_finite_ref(pressure)


KERNELS["impedance_pressure_checked"] = (impedance_pressure_checked_kernel, impedance_pressure_checked_ref)


@njit(cache=True, nogil=True)
def sum_as_f32_f64_kernel(x):  # pragma: no cover - compiled
    """:func:`sum_f32_as_f64_kernel` of ``x`` rounded to float32 first (1-D float32 or float64,
    at most 8,192 values): ``np.add.reduce(x.astype(np.float32), dtype=np.float64)`` without
    the float32 copy (the same buffer of float64 values, summed in NumPy's pairwise order)."""
    n = x.shape[0]
    buf = np.empty(n)
    for i in range(n):
        buf[i] = np.float64(np.float32(x[i]))
    return 0.0 + pairwise_sum_flat(buf, 0, n)


def sum_as_f32_f64_ref(x):
    """NumPy twin of :func:`sum_as_f32_f64_kernel`."""
    return float(np.add.reduce(np.asarray(x, dtype=np.float32), dtype=np.float64))


KERNELS["sum_as_f32_f64"] = (sum_as_f32_f64_kernel, sum_as_f32_f64_ref)


# --- the drift's spectrum drawn in one call (cardiosim.noise.drift) -----------------------------

from .._pcg64_kernels import _poisson_mult, _to_double, pcg64_load, pcg64_step, pcg64_store, ziggurat_normal  # noqa: E402


@njit(cache=True, nogil=True)
def drift_spectrum_pcg64_kernel(addr, amp, z):  # pragma: no cover - compiled
    """The draws and spectrum of :func:`cardiosim.noise.drift.simulate_drift` from the PCG64
    whose ``pcg64_random_t`` is at ``addr``, in one call: returns the level's standard normal
    (``rng.standard_normal()``), then fills the complex128 ``z`` [rows, m] with zeros and its
    bins ``1 .. k`` (``k = amp.size``) with ``rng.standard_normal((rows, 2 k))`` (real and
    imaginary parts, row by row) times ``amp`` as :func:`scale_bins_kernel` multiplies them
    (NumPy's complex product by ``amp + 0j``). The same numbers in the same order as the
    calls it replaces (``standard_normal_into`` and ``np.zeros``), the stream left where they
    leave it; the caller holds the generator's lock."""
    lo, hi, ilo, ihi = pcg64_load(addr)
    lo, hi, level = ziggurat_normal(lo, hi, ilo, ihi)
    rows, m = z.shape
    k = amp.shape[0]
    for r in range(rows):
        z[r, 0] = 0.0
        for j in range(k):
            lo, hi, x = ziggurat_normal(lo, hi, ilo, ihi)
            lo, hi, y = ziggurat_normal(lo, hi, ilo, ihi)
            a = amp[j]
            z[r, 1 + j] = complex(x * a - y * 0.0, x * 0.0 + y * a)
        for j in range(k + 1, m):
            z[r, j] = 0.0
    pcg64_store(addr, lo, hi)
    return level


def drift_spectrum_pcg64_ref(rng, amp, rows, m):
    """NumPy twin of :func:`drift_spectrum_pcg64_kernel`: ``(level normal, z)`` as
    ``simulate_drift`` drew and scaled them before (``rng`` a numpy Generator)."""
    level = float(rng.standard_normal())
    k = amp.size
    z = np.zeros((rows, m), dtype=np.complex128)
    z.view(np.float64)[:, 2:2 * k + 2] = rng.standard_normal((rows, 2 * k))
    z[:, 1:k + 1] *= amp
    return level, z


KERNELS["drift_spectrum_pcg64"] = (drift_spectrum_pcg64_kernel, drift_spectrum_pcg64_ref)


@njit(cache=True, nogil=True)
def normals_then_raw_pcg64_kernel(addr, out):  # pragma: no cover - compiled
    """``out[:] = rng.standard_normal(out.size)`` then ``rng.bit_generator.random_raw()``
    (returned: the next draw's seed, :func:`draw_seed`) from the PCG64 whose ``pcg64_random_t``
    is at ``addr``, in one call: the activity noise's envelope innovations and the seed of its
    spectrum's normals, the numbers of the two calls it replaces, the stream left where they
    leave it; the caller holds the generator's lock."""
    lo, hi, ilo, ihi = pcg64_load(addr)
    for i in range(out.shape[0]):
        lo, hi, out[i] = ziggurat_normal(lo, hi, ilo, ihi)
    lo, hi, w = pcg64_step(lo, hi, ilo, ihi)
    pcg64_store(addr, lo, hi)
    return w


def normals_then_raw_pcg64_ref(rng, size):
    """NumPy twin of :func:`normals_then_raw_pcg64_kernel`: ``(normals, raw word)``."""
    z = rng.standard_normal(size)
    return z, np.uint64(rng.bit_generator.random_raw())


KERNELS["normals_then_raw_pcg64"] = (normals_then_raw_pcg64_kernel, normals_then_raw_pcg64_ref)


@njit(cache=True, nogil=True)
def uniform_then_raw_pcg64_kernel(addr, low, high, scale, out):  # pragma: no cover - compiled
    """``out[:] = rng.uniform(low, high, out.size) * scale`` then ``rng.bit_generator.random_raw()``
    (returned) from the PCG64 whose ``pcg64_random_t`` is at ``addr``: NumPy's uniform is
    ``low + (high - low) * next_double`` (53 bits of one word), then the product by ``scale``
    as NumPy's multiply makes it; the white kind's amplitudes and its normals' seed in one
    call, the stream left where the two calls leave it; the caller holds the lock."""
    lo, hi, ilo, ihi = pcg64_load(addr)
    rng_range = high - low
    for i in range(out.shape[0]):
        lo, hi, w = pcg64_step(lo, hi, ilo, ihi)
        out[i] = (low + rng_range * _to_double(w)) * scale
    lo, hi, w = pcg64_step(lo, hi, ilo, ihi)
    pcg64_store(addr, lo, hi)
    return w


def uniform_then_raw_pcg64_ref(rng, low, high, scale, size):
    """NumPy twin of :func:`uniform_then_raw_pcg64_kernel`: ``(values, raw word)``."""
    u = rng.uniform(low, high, size) * scale
    return u, np.uint64(rng.bit_generator.random_raw())


KERNELS["uniform_then_raw_pcg64"] = (uniform_then_raw_pcg64_kernel, uniform_then_raw_pcg64_ref)


@njit(cache=True, nogil=True)
def poisson_pair_pcg64_kernel(addr, lam_a, lam_b, out_a, out_b):  # pragma: no cover - compiled
    """``out_a[:] = rng.poisson(lam_a, out_a.size)`` then ``out_b[:] = rng.poisson(lam_b,
    out_b.size)`` (int64) from the PCG64 at ``addr``, both rates in ``[0, 10)`` (NumPy's
    multiplication method; the caller checks the range, and ``draw_program_matches`` the
    method): the contact kind's loss and pop counts in one call; the caller holds the lock."""
    lo, hi, ilo, ihi = pcg64_load(addr)
    enlam = math.exp(-lam_a)
    for i in range(out_a.shape[0]):
        lo, hi, out_a[i] = _poisson_mult(lo, hi, ilo, ihi, lam_a, enlam)
    enlam = math.exp(-lam_b)
    for i in range(out_b.shape[0]):
        lo, hi, out_b[i] = _poisson_mult(lo, hi, ilo, ihi, lam_b, enlam)
    pcg64_store(addr, lo, hi)


def poisson_pair_pcg64_ref(rng, lam_a, lam_b, size):
    """NumPy twin of :func:`poisson_pair_pcg64_kernel`: ``(counts a, counts b)``."""
    return rng.poisson(lam_a, size), rng.poisson(lam_b, size)


KERNELS["poisson_pair_pcg64"] = (poisson_pair_pcg64_kernel, poisson_pair_pcg64_ref)


@njit(cache=True, nogil=True)
def mul_rows_kernel(x, v):  # pragma: no cover - compiled
    """``x *= v`` in place for ``x`` [rows, T] and ``v`` [T] of one float dtype: NumPy's
    broadcast product (each a correctly rounded IEEE product), one pass, no ufunc set-up."""
    for r in range(x.shape[0]):
        for t in range(x.shape[1]):
            x[r, t] = x[r, t] * v[t]


def mul_rows_ref(x, v):
    """NumPy twin of :func:`mul_rows_kernel` (returns the product)."""
    return x * v


KERNELS["mul_rows"] = (mul_rows_kernel, mul_rows_ref)
