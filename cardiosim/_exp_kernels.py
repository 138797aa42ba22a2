"""glibc's ``exp`` inline in numba kernels, used only where it reproduces the C library here.

A numba kernel's ``math.exp`` goes through numba's helper and glibc's compatibility wrapper
(~10 ns a call); NumPy's ``np.exp`` on float64 without AVX-512 calls the same C function
per element. :func:`_exp` is glibc's algorithm inline; :func:`exp_table` hands kernels its
table only after a bitwise check against ``math.exp`` in this process, and
:func:`np_exp_table` only after one against ``np.exp`` (on AVX-512 machines NumPy has its
own SIMD exp), so a kernel replacing either gives the same numbers or falls back to it.
Used by the ODE renderer (``cardiosim.ode``) and the motion stage's contact pressure
(``cardiosim.motion``); rank 0 (imports nothing of cardiosim).
"""

from __future__ import annotations

import math

import llvmlite.ir as ir
import numpy as np
from numba import njit, types
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
