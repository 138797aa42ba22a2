"""glibc's ``exp`` inline in numba kernels, used only where it reproduces the C library here.

A numba kernel's ``math.exp`` goes through numba's helper and glibc's compatibility wrapper
(~10 ns a call); NumPy's ``np.exp`` on float64 without AVX-512 calls the same C function
per element. :func:`_exp` is glibc's algorithm inline; :func:`exp_table` hands kernels its
table only after a bitwise check against ``math.exp`` in this process, and
:func:`np_exp_table` only after one against ``np.exp`` (on AVX-512 machines NumPy has its
own SIMD exp), so a kernel replacing either gives the same numbers or falls back to it.

Where NumPy has its own SIMD functions (AVX-512: its exp, SVML's log10), kernels call NumPy's
loops themselves (:func:`_ufunc_loop` on the addresses :func:`_ufunc_table_loop` reads from
the ufunc's table): :func:`np_log10_loop` hands NumPy's ``log10`` loop out only after it
reproduced ``np.log10`` bit for bit in this process (once). (The motion stage's exp of a
few 10^4 values needs no such loop: where :func:`np_exp_table` is empty it calls ``np.exp``,
whose dispatch is ~1 % of the work.)

Used by the ODE renderer and planner (``cardiosim.ode``), the motion stage's contact
pressure (``cardiosim.motion``) and the SNR bookkeeping (``cardiosim.noise.snr``); rank 0
(imports nothing of cardiosim).
"""

from __future__ import annotations

import ctypes
import math

import llvmlite.ir as ir
import numpy as np
from numba import njit, types
from numba.core import cgutils
from numba.core.extending import intrinsic

# --- the C library's exp, inline --------------------------------------------------------
# The renderer's exp calls (two per run of samples, ~1,000 a 10-s record) went through
# numba's helper and glibc's compatibility wrapper to glibc's exp: ~10 ns each, a third
# of the segment builder. :func:`_exp` is glibc's algorithm (table of 2^(k/128), degree-5
# polynomial, the FMA variant the x86-64 libm selects on FMA machines: the same operations
# and fused steps as its machine code) inline; the kernels use it only with the table of
# :func:`exp_table`, which is non-empty only where it reproduced ``math.exp`` bit for bit
# on this machine (checked once per process), and call ``math.exp`` outside its main
# range (|x| < 2^-54 or >= 512) or without the table.
EXP_INV_LN2_N = float.fromhex("0x1.71547652b82fep7")  # 128 / ln 2
EXP_NEG_LN2_HI_N = float.fromhex("-0x1.62e42fefa0000p-8")  # -ln 2 / 128, high and low parts
EXP_NEG_LN2_LO_N = float.fromhex("-0x1.cf79abc9e3b3ap-47")
EXP_SHIFT = float.fromhex("0x1.8p52")
EXP_C2, EXP_C3, EXP_C4, EXP_C5 = (float.fromhex(h) for h in (
    "0x1.ffffffffffdbdp-2", "0x1.555555555543cp-3", "0x1.55555cf172b91p-5", "0x1.1111167a4d017p-7"))


@intrinsic
def _f2u(typingctx, x):
    """The bits of a float64 as uint64."""
    if not isinstance(x, types.Float):
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.uint64(types.float64), codegen


@intrinsic
def _u2f(typingctx, u):
    """The float64 of 64 bits."""
    if not isinstance(u, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.uint64), codegen


@intrinsic
def _fma(typingctx, a, b, c):
    """``a * b + c`` rounded once (``llvm.fma``)."""
    if not all(isinstance(v, types.Float) for v in (a, b, c)):
        return None

    def codegen(context, builder, signature, args):
        d = ir.DoubleType()
        fn = builder.module.declare_intrinsic("llvm.fma", [d], ir.FunctionType(d, [d, d, d]))
        return builder.call(fn, [builder.fpext(v, d) if v.type != d else v for v in args])

    return types.float64(types.float64, types.float64, types.float64), codegen


@njit(nogil=True, inline="always")
def _exp_main(x, tab):
    """:func:`_exp`'s inline path (glibc's ``exp`` on ``tab``) without its range test:
    ``math.exp(x)`` bit for bit for ``2^-54 <= |x| < 512`` when ``tab`` is :func:`exp_table`
    (non-empty); any other ``x`` gives a finite value to discard (the table index is masked,
    so it never reads outside ``tab``). The ODE renderer's vector lanes run the same steps."""
    kd = _fma(x, EXP_INV_LN2_N, EXP_SHIFT)  # k = round(x 128 / ln 2), in kd's low bits
    ki = _f2u(kd)
    kd = kd - EXP_SHIFT
    r = _fma(kd, EXP_NEG_LN2_HI_N, x)  # x - k ln 2 / 128
    r = _fma(kd, EXP_NEG_LN2_LO_N, r)
    idx = np.intp((ki & np.uint64(0x7F)) << np.uint64(1))
    tail = _u2f(tab[idx])
    scale = _u2f(tab[idx + 1] + (ki << np.uint64(45)))  # 2^(k / 128) ~ scale (1 + tail)
    r2 = r * r
    tmp = _fma(_fma(r, EXP_C3, EXP_C2), r2, r + tail)
    tmp = _fma(r2 * r2, _fma(r, EXP_C5, EXP_C4), tmp)
    return _fma(scale, tmp, scale)


@njit(nogil=True, inline="always")
def _exp(x, tab):
    """``math.exp(x)``; inline (:func:`_exp_main`) when ``tab`` is not empty and
    ``2^-54 <= |x| < 512``."""
    ux = _f2u(x)
    if tab.shape[0] == 0 or ((ux >> np.uint64(52)) & np.uint64(0x7FF)) - np.uint64(0x3C9) > np.uint64(0x3E):
        return math.exp(x)
    return _exp_main(x, tab)


@njit(cache=True, nogil=True)
def exp_kernel(x, tab, out):
    """``out[i] = _exp(x[i], tab)`` (the check's and the tests' entry)."""
    for i in range(x.shape[0]):
        out[i] = _exp(x[i], tab)


@njit(cache=True, nogil=True)
def math_exp_kernel(x, out):
    """``out[i] = math.exp(x[i])`` as the kernels call it."""
    for i in range(x.shape[0]):
        out[i] = math.exp(x[i])


def exp_table_values():
    """glibc's ``exp`` table for ``N = 128`` as uint64 (256,): ``tab[2k]`` the bits of ``T_k``
    and ``tab[2k + 1]`` those of ``H_k`` minus ``k << 45``, ``H_k`` the double nearest
    ``2^(k/128)`` and ``T_k`` the double nearest ``2^(k/128) / H_k - 1`` (50 digits)."""
    from decimal import Decimal, localcontext

    tab = np.empty(256, np.uint64)
    with localcontext() as ctx:
        ctx.prec = 50
        for k in range(128):
            v = Decimal(2) ** (Decimal(k) / Decimal(128))
            h = float(v)  # (Decimal -> float rounds to nearest)
            t = float((v - Decimal(h)) / Decimal(h))
            hb = int(np.float64(h).view(np.uint64))
            tab[2 * k] = np.float64(t).view(np.uint64)
            tab[2 * k + 1] = (hb - (k << 45)) % (1 << 64)
    return tab


def exp_check_args(rng):
    """Arguments of the check: uniform over the renderer's range and far beyond, the
    underflow edge, tiny ones, every table slot and its boundaries."""
    parts = [rng.uniform(-15.0, 0.0, 200_000), rng.uniform(-745.2, 709.7, 100_000),
             rng.uniform(-1e-12, 1e-12, 2_000), -np.abs(rng.standard_normal(50_000)) * 0.03,
             np.array([0.0, -0.0, 2.0 ** -54, -(2.0 ** -54), 2.0 ** -55, 511.9, -511.9, 512.0, -512.0,
                       -745.13, -745.14, -750.0, 709.78, 710.0, np.inf, -np.inf, np.nan])]
    k = np.arange(-2000, 2000)
    edge = (k + 0.5) * (math.log(2.0) / 128)
    parts += [edge, np.nextafter(edge, np.inf), np.nextafter(edge, -np.inf)]
    return np.concatenate(parts)


_EXP_TABLE = []


def exp_table():
    """The table :func:`_exp` runs on: :func:`exp_table_values` if :func:`exp_kernel`
    reproduced :func:`math_exp_kernel` bit for bit on :func:`exp_check_args` here (the C
    library's exp is this algorithm with FMA), else an empty array (the kernels then call
    ``math.exp``). Checked once per process (read-only result)."""
    if not _EXP_TABLE:
        empty = np.empty(0, np.uint64)
        try:
            tab = exp_table_values()
            x = exp_check_args(np.random.default_rng(20261206))
            got, want = np.empty_like(x), np.empty_like(x)
            exp_kernel(x, tab, got)
            math_exp_kernel(x, want)
            if got.tobytes() != want.tobytes():
                tab = empty
        except Exception:  # pragma: no cover - a numba failure: math.exp it is
            tab = empty
        tab.flags.writeable = False
        _EXP_TABLE.append(tab)
    return _EXP_TABLE[0]


_NP_EXP_TABLE = []


def np_exp_table():
    """:func:`exp_table` where :func:`exp_kernel` also reproduces NumPy's ``np.exp`` bit for
    bit on :func:`exp_check_args` (and on the range of a log contact pressure), else an empty
    array: the table for kernels that replace ``np.exp`` (checked once per process)."""
    if not _NP_EXP_TABLE:
        tab = exp_table()
        if tab.shape[0]:
            rng = np.random.default_rng(20261207)
            x = np.concatenate([exp_check_args(rng), rng.normal(0.0, 0.5, 100_000)])
            got = np.empty_like(x)
            exp_kernel(x, tab, got)
            with np.errstate(over="ignore", under="ignore"):   # the check's edge arguments overflow on purpose
                want = np.exp(x)
            if got.tobytes() != want.tobytes():
                tab = np.empty(0, np.uint64)
                tab.flags.writeable = False
        _NP_EXP_TABLE.append(tab)
    return _NP_EXP_TABLE[0]


@njit(cache=True, nogil=True)
def exp_rows_inplace_kernel(x, tab):
    """``x[:] = np.exp(x)`` for a 2-D float64 array, by :func:`_exp` on ``tab``
    (:func:`np_exp_table`; empty: ``math.exp``). Twin: ``np.exp(x, out=x)``."""
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            x[i, j] = _exp(x[i, j], tab)


# --- NumPy's own ufunc loops, called from kernels --------------------------------------
# Where NumPy's float64 exp / log10 are its own SIMD code (AVX-512: NumPy's exp, SVML's
# log10), neither glibc's algorithm above nor the C library reproduces them. Their loops
# are plain C functions ``loop(char **args, npy_intp *dims, npy_intp *steps, void *data)``
# in the ufunc's table (the variant NumPy's CPU dispatch chose at import): a kernel calls
# them with the arguments NumPy's iterator passes for 1-D contiguous operands, the same
# function on the same numbers, so the same bits (used only where the once-per-process
# checks below confirmed it; ``cardiosim.ode._plan_kernels.ufunc_loops`` does the same for
# the planner's exp, power and irfft).
@intrinsic
def _ufunc_loop(typingctx, fn, data, a0, a1, a2, n, s0, s1, s2):
    """Call the ufunc loop at address ``fn`` on one 1-D run of ``n`` elements: operands at
    addresses ``a0, a1, a2`` with byte steps ``s0, s1, s2`` (a 1-in-1-out loop reads only
    the first two), its ``data`` (an address, may be 0)."""
    if not all(isinstance(v, types.Integer) for v in (fn, data, a0, a1, a2, n, s0, s1, s2)):
        return None
    sig = types.void(fn, data, a0, a1, a2, n, s0, s1, s2)

    def codegen(context, builder, signature, args):
        vp = ir.IntType(8).as_pointer()
        i64 = ir.IntType(64)
        fn_v, data_v, p0, p1, p2, n_v, t0, t1, t2 = args
        ptrs = cgutils.alloca_once(builder, vp, size=3)
        steps = cgutils.alloca_once(builder, i64, size=3)
        dims = cgutils.alloca_once(builder, i64, size=1)
        for k, (p, st) in enumerate(((p0, t0), (p1, t1), (p2, t2))):
            builder.store(builder.inttoptr(p, vp), builder.gep(ptrs, [ir.Constant(i64, k)]))
            builder.store(builder.sext(st, i64) if st.type.width < 64 else st,
                          builder.gep(steps, [ir.Constant(i64, k)]))
        builder.store(builder.sext(n_v, i64) if n_v.type.width < 64 else n_v, dims)
        fnty = ir.FunctionType(ir.VoidType(), (vp.as_pointer(), i64.as_pointer(), i64.as_pointer(), vp))
        builder.call(builder.inttoptr(fn_v, fnty.as_pointer()), (ptrs, dims, steps, builder.inttoptr(data_v, vp)))
        return context.get_dummy_value()

    return sig, codegen


def _ufunc_table_loop(ufunc, signature):
    """(function, data) addresses of ``ufunc``'s loop for ``signature`` (e.g. ``"d->d"``)
    from its ``PyUFuncObject`` (NumPy 2's layout: ``nin, nout, nargs, identity`` after the
    object header, then ``functions``, ``data``, ``ntypes``, ``reserved1``, ``name``),
    after checking the fields it can against the ufunc's attributes; None otherwise."""
    addr = id(ufunc)
    head = ctypes.sizeof(ctypes.c_ssize_t) + ctypes.sizeof(ctypes.c_void_p)
    nin, nout, nargs, _ = (ctypes.c_int * 4).from_address(addr + head)
    if (nin, nout, nargs) != (ufunc.nin, ufunc.nout, ufunc.nargs):
        return None
    functions = ctypes.c_void_p.from_address(addr + head + 16).value
    data = ctypes.c_void_p.from_address(addr + head + 24).value
    ntypes = ctypes.c_int.from_address(addr + head + 32).value
    name = ctypes.c_char_p.from_address(addr + head + 40).value
    if ntypes != ufunc.ntypes or name != ufunc.__name__.encode() or not functions or signature not in ufunc.types:
        return None
    k = ufunc.types.index(signature)
    fn = ctypes.c_void_p.from_address(functions + k * ctypes.sizeof(ctypes.c_void_p)).value
    d = ctypes.c_void_p.from_address(data + k * ctypes.sizeof(ctypes.c_void_p)).value if data else 0
    return (fn, d or 0) if fn else None


def ufunc_loop_array(ufunc, signature):
    """:func:`_ufunc_table_loop` as the read-only ``uint64[2]`` (function, data) the kernels
    take, or None."""
    fd = _ufunc_table_loop(ufunc, signature)
    if fd is None:
        return None
    loop = np.array(fd, np.uint64)
    loop.flags.writeable = False
    return loop


@njit(nogil=True, inline="always")
def unary_loop_inplace(loop, addr, m):
    """``f(v, out=v)`` for the ``m`` float64 at address ``addr`` (contiguous) by the
    1-in-1-out loop ``loop`` (``uint64[2]``: function, data; :func:`np_log10_loop`)."""
    if m > 0:
        _ufunc_loop(loop[0], loop[1], addr, addr, 0, m, 8, 8, 0)


@njit(cache=True, nogil=True)
def unary_loop_kernel(loop, v):
    """``f(v, out=v)`` (1-D contiguous float64) by ``loop`` (the checks' and tests' entry)."""
    unary_loop_inplace(loop, v.ctypes.data, v.shape[0])


def _checked_loop(ufunc, args):
    """``ufunc``'s ``d->d`` loop as ``uint64[2]`` (read-only) if :func:`unary_loop_kernel`
    with it gives ``ufunc(x)`` bit for bit on ``args`` whole and on every slice
    ``args[n:2 n]``, ``n < 300`` (every SIMD tail and alignment), else None."""
    try:
        loop = ufunc_loop_array(ufunc, "d->d")
        if loop is None:
            return None
        with np.errstate(all="ignore"):   # the edge arguments overflow / divide by zero on purpose
            got = args.copy()
            unary_loop_kernel(loop, got)
            if got.tobytes() != ufunc(args).tobytes():
                return None
            for n in range(1, 300):
                got = args[n:2 * n].copy()
                unary_loop_kernel(loop, got)
                if got.tobytes() != ufunc(args[n:2 * n]).tobytes():
                    return None
        return loop
    except Exception:  # pragma: no cover - another NumPy layout, or numba: NumPy's calls it is
        return None


_NP_LOG10_LOOP = []


def np_log10_loop():
    """NumPy's float64 ``log10`` loop (``uint64[2]``) if called from kernels it reproduced
    ``np.log10`` bit for bit here (ratios over 40 decades, subnormals, 0, negative, inf, nan
    and powers of ten), else None. Checked once per process."""
    if not _NP_LOG10_LOOP:
        rng = np.random.default_rng(20261208)
        x = np.concatenate([10.0 ** rng.uniform(-20.0, 20.0, 200_000), rng.uniform(0.0, 2.0, 50_000),
                            10.0 ** np.arange(-30.0, 31.0), np.nextafter(10.0 ** np.arange(-30.0, 31.0), 0.0),
                            np.array([0.0, -0.0, -1.0, 5e-324, 1e-310, 1.0, np.nextafter(1.0, 2.0),
                                      np.nextafter(1.0, 0.0), 1.7e308, np.inf, -np.inf, np.nan])])
        _NP_LOG10_LOOP.append(_checked_loop(np.log10, x))
    return _NP_LOG10_LOOP[0]
