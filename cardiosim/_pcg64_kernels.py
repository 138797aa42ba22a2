"""``Generator.standard_normal`` bit for bit, faster: PCG64 stepped inline in a numba kernel.

Every record draws its randomness from its own ``numpy.random.Generator`` (PCG64, seeded by
record: :func:`cardiosim.dataset.plan.record_rng`). The motion and activity-noise stages take
~40,000 standard normals a record from it; NumPy's ziggurat costs ~9 ns a number on this
project's machine (the bit generator is reached through a function pointer, the sign by a
branch that mispredicts half the time; here the sign is a product). Here the same PCG64 stream is stepped in the kernel
itself -- the 128-bit LCG step and XSL-RR output of ``numpy/random/src/pcg64/pcg64.h``
(O'Neill 2014; multiplier ``PCG_DEFAULT_MULTIPLIER_128``), on the generator's own state,
read and written back through its ``ctypes`` interface -- and NumPy's ziggurat
(``random_standard_normal`` of ``numpy/random/src/distributions/distributions.c``, its tables
as numba ships them) runs on it: the same numbers, in the same order, leaving the stream
where ``Generator.standard_normal`` leaves it.

:func:`pcg64_draws_match` checks that on this machine once per process (10^5 normals from
two seeds: the ziggurat's wedge and tail branches included, and the stream's position
after them); :func:`standard_normal` uses the kernel only then and only for a PCG64 bit
generator, and calls NumPy otherwise. It holds the bit generator's lock while it draws, as
NumPy's method does.

API: ``standard_normal(rng, shape) -> float64 ndarray`` (= ``rng.standard_normal(shape)``),
``standard_normal_into(rng, out)`` (in place, 1-D or 2-D, any strides), ``pcg64_draws_match() -> bool``; in kernels ``pcg64_load`` / ``pcg64_store`` /
``pcg64_step`` and ``ziggurat_normal``.
"""

from __future__ import annotations

import ctypes
import math
from functools import lru_cache
from typing import NamedTuple

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core.extending import intrinsic

try:  # NumPy's ziggurat tables, as numba ships them (numba.np.random)
    from numba.np.random._constants import (fi_double as _FI, ki_double as _KI, wi_double as _WI,
                                            ziggurat_nor_inv_r as _NOR_INV_R, ziggurat_nor_r as _NOR_R)
except Exception:  # pragma: no cover - another numba layout: the draws do not match, NumPy draws
    _KI = np.zeros(256, np.uint64)
    _WI = _FI = np.zeros(256)
    _NOR_R = _NOR_INV_R = 0.0
KI = np.ascontiguousarray(_KI, dtype=np.uint64)
WI = np.ascontiguousarray(_WI, dtype=np.float64)
FI = np.ascontiguousarray(_FI, dtype=np.float64)
NOR_R = float(_NOR_R)
NOR_INV_R = float(_NOR_INV_R)

# PCG_DEFAULT_MULTIPLIER_128 (pcg64.h): high and low 64 bits
_MULT = (2549297995355413924 << 64) | 4865540595714422341
_U64x4 = types.UniTuple(types.uint64, 4)


@intrinsic
def pcg64_load(typingctx, addr):
    """``(state_lo, state_hi, inc_lo, inc_hi)`` of the ``pcg64_random_t`` at ``addr``."""
    if not isinstance(addr, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        p = builder.inttoptr(args[0], ir.IntType(64).as_pointer())
        vals = [builder.load(builder.gep(p, [ir.Constant(ir.IntType(64), k)]), align=8) for k in range(4)]
        return context.make_tuple(builder, _U64x4, vals)

    return _U64x4(addr), codegen


@intrinsic
def pcg64_store(typingctx, addr, lo, hi):
    """Write the state ``(lo, hi)`` back to the ``pcg64_random_t`` at ``addr``."""
    if not all(isinstance(a, types.Integer) for a in (addr, lo, hi)):
        return None

    def codegen(context, builder, signature, args):
        p = builder.inttoptr(args[0], ir.IntType(64).as_pointer())
        builder.store(args[1], p, align=8)
        builder.store(args[2], builder.gep(p, [ir.Constant(ir.IntType(64), 1)]), align=8)
        return context.get_dummy_value()

    return types.none(addr, lo, hi), codegen


_U64x3 = types.UniTuple(types.uint64, 3)


@intrinsic
def pcg64_step(typingctx, lo, hi, inc_lo, inc_hi):
    """One PCG64 draw: ``state = state * MULT + inc`` (mod 2^128), then the XSL-RR output
    ``rotr64(hi ^ lo, hi >> 58)`` of the new state. Returns ``(new_lo, new_hi, output)``."""
    if not all(isinstance(a, types.Integer) for a in (lo, hi, inc_lo, inc_hi)):
        return None

    def codegen(context, builder, signature, args):
        i64, i128 = ir.IntType(64), ir.IntType(128)
        s_lo, s_hi, c_lo, c_hi = args

        def wide(a, b):
            return builder.or_(builder.zext(a, i128), builder.shl(builder.zext(b, i128), ir.Constant(i128, 64)))

        new = builder.add(builder.mul(wide(s_lo, s_hi), ir.Constant(i128, _MULT)), wide(c_lo, c_hi))
        n_lo = builder.trunc(new, i64)
        n_hi = builder.trunc(builder.lshr(new, ir.Constant(i128, 64)), i64)
        x = builder.xor(n_hi, n_lo)
        rot = builder.lshr(n_hi, ir.Constant(i64, 58))
        left = builder.and_(builder.neg(rot), ir.Constant(i64, 63))
        out = builder.or_(builder.lshr(x, rot), builder.shl(x, left))
        return context.make_tuple(builder, _U64x3, [n_lo, n_hi, out])

    return _U64x3(lo, hi, inc_lo, inc_hi), codegen


@njit(nogil=True, inline="always")
def _to_double(u):
    """NumPy's ``next_double`` of a PCG64: the top 53 bits scaled to [0, 1)."""
    return float(u >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(nogil=True, inline="always")
def ziggurat_normal(lo, hi, ilo, ihi):
    """One ``Generator.standard_normal()`` from the PCG64 state ``(lo, hi)`` with increment
    ``(ilo, ihi)``: NumPy's ziggurat step for step (``random_standard_normal``), the sign
    applied as a product, ``x * (1 - 2 sign)``, which is ``-x`` exactly (``-0.0`` included): a
    branch on the random sign bit mispredicts half the time, 4.3 against 1.6 ns a number
    (measured 2026-12-07). Returns ``(lo, hi, x)``, the state advanced past the draw."""
    while True:
        lo, hi, r = pcg64_step(lo, hi, ilo, ihi)
        idx = np.intp(r & np.uint64(0xFF))
        r = r >> np.uint64(8)
        rabs = (r >> np.uint64(1)) & np.uint64(0x000FFFFFFFFFFFFF)
        x = (float(rabs) * WI[idx]) * (1.0 - 2.0 * float(r & np.uint64(1)))
        if rabs < KI[idx]:
            return lo, hi, x  # 99.3 % of the draws
        if idx == 0:
            while True:  # the tail (1 - U: no log(0))
                lo, hi, u1 = pcg64_step(lo, hi, ilo, ihi)
                lo, hi, u2 = pcg64_step(lo, hi, ilo, ihi)
                xx = -NOR_INV_R * math.log1p(-_to_double(u1))
                yy = -math.log1p(-_to_double(u2))
                if yy + yy > xx * xx:
                    return lo, hi, (-(NOR_R + xx) if (rabs >> np.uint64(8)) & np.uint64(1) else NOR_R + xx)
        lo, hi, u = pcg64_step(lo, hi, ilo, ihi)
        if (FI[idx - 1] - FI[idx]) * _to_double(u) + FI[idx] < math.exp(-0.5 * x * x):
            return lo, hi, x


@njit(cache=True, nogil=True)
def fill_normal_pcg64_rows_kernel(addr, out):
    """``out[...] = rng.standard_normal(out.shape)`` for a 2-D float64 ``out`` of any strides
    (C order: row by row), for the PCG64 whose ``pcg64_random_t`` is at ``addr``
    (:func:`ziggurat_normal` on the inline stream); the state is written back at the end."""
    lo, hi, ilo, ihi = pcg64_load(addr)
    for row in range(out.shape[0]):
        o = out[row]
        for i in range(out.shape[1]):
            lo, hi, o[i] = ziggurat_normal(lo, hi, ilo, ihi)
    pcg64_store(addr, lo, hi)


def _pcg64_address(rng) -> int | None:
    """Address of the ``pcg64_random_t`` behind ``rng`` (a ``Generator`` on ``PCG64``), else None."""
    bg = getattr(rng, "bit_generator", None)
    if type(bg) is not np.random.PCG64:
        return None
    try:
        # bit_generator.ctypes.state -> pcg64_state {pcg64_random_t *pcg_state; ...}
        return ctypes.c_uint64.from_address(bg.ctypes.state.value).value or None
    except Exception:  # pragma: no cover - no ctypes interface
        return None


def standard_normal(rng, shape) -> np.ndarray:
    """``rng.standard_normal(shape)`` (float64, C order), the same numbers; through
    :func:`standard_normal_into` (the kernel, checked against NumPy once per process) when
    ``rng`` is a ``Generator`` on ``PCG64``, through NumPy otherwise."""
    out = np.empty(shape)
    if out.size == 0:
        return rng.standard_normal(shape)
    return standard_normal_into(rng, out.reshape(-1, out.shape[-1]) if out.ndim >= 2 else out.reshape(-1)) \
        .reshape(out.shape)


@lru_cache(maxsize=1)
def pcg64_draws_match() -> bool:
    """Whether :func:`fill_normal_pcg64_rows_kernel` draws what ``Generator.standard_normal``
    draws and leaves the stream where it does (two seeds, runs of 1, 3, 1,000 and 10^5 normals:
    ~1,000 wedge and ~30 tail draws, and a strided 2-D target); once per process."""
    try:
        for seed in (20261206, 7):
            a, b = np.random.default_rng(seed), np.random.default_rng(seed)
            addr = _pcg64_address(a)
            if addr is None:
                return False
            for n in (1, 3, 1000, 100_000):
                got = np.empty((1, n))
                fill_normal_pcg64_rows_kernel(addr, got)
                if got.tobytes() != b.standard_normal(n).tobytes():
                    return False
            got = np.zeros((3, 130))[:, 2:-1]
            fill_normal_pcg64_rows_kernel(addr, got)
            if got.tobytes() != b.standard_normal(got.shape).tobytes():
                return False
            if a.random() != b.random() or a.integers(1 << 62) != b.integers(1 << 62):
                return False
        return True
    except Exception:  # pragma: no cover - a numba failure: NumPy draws
        return False


_LAST_ADDRESS: tuple = (None, None)


def _pcg64_address_last(rng) -> int | None:
    """:func:`_pcg64_address`, remembered for the last bit generator asked about (its
    ``pcg64_random_t`` stays where it is for the generator's life; the ``ctypes`` walk costs
    about a microsecond, and a record draws from one generator several times)."""
    global _LAST_ADDRESS
    bg = getattr(rng, "bit_generator", None)
    last = _LAST_ADDRESS
    if bg is not None and last[0] is bg:
        return last[1]
    addr = _pcg64_address(rng)
    if addr is not None:
        _LAST_ADDRESS = (bg, addr)
    return addr


def standard_normal_into(rng, out) -> np.ndarray:
    """``out[...] = rng.standard_normal(out.shape)`` (``out`` float64, 1-D or 2-D, any strides:
    e.g. the real and imaginary parts of a slice of a complex spectrum, filled in place), the
    same numbers as :func:`standard_normal`; through :func:`fill_normal_pcg64_rows_kernel` when
    ``rng`` is a ``Generator`` on ``PCG64`` and :func:`pcg64_draws_match` holds, through
    NumPy otherwise. Returns ``out``."""
    addr = _pcg64_address_last(rng)
    if addr is None or out.dtype != np.float64 or out.ndim not in (1, 2) or not pcg64_draws_match():
        out[...] = rng.standard_normal(out.shape)
        return out
    with rng.bit_generator.lock:
        fill_normal_pcg64_rows_kernel(addr, out if out.ndim == 2 else out[None, :])   # a view, never a copy
    return out


# --- several generators' draws in one call (the block engine's scalar and bulk draws) -------

#: Draw kinds of a :func:`draw_program`: ``Generator.random()`` (53 bits of one word, NumPy's
#: ``next_double``), ``Generator.standard_normal()`` (the ziggurat), ``bit_generator.random_raw()``
#: (one 64-bit word) and ``Generator.poisson(lam)`` for ``lam < 10`` (NumPy's multiplication
#: method, ``random_poisson_mult``; the record's ``lam`` of that step from ``lams``).
RANDOM, NORMAL, RAW, POISSON = 0, 1, 2, 3
_POISSON_MULT_MAX = 10.0      # NumPy's random_poisson switches to PTRS at lam >= 10


class Draws(NamedTuple):
    """What :func:`draw_program` drew, ``[records, ...]`` per kind, each in program order."""

    u: np.ndarray     #: float64 ``random()`` values
    z: np.ndarray     #: float64 standard normals
    raw: np.ndarray   #: uint64 raw words
    k: np.ndarray     #: int64 Poisson counts


@njit(nogil=True, inline="always")
def _poisson_mult(lo, hi, ilo, ihi, lam, enlam):  # pragma: no cover - compiled
    """NumPy's ``random_poisson`` for ``0 <= lam < 10``: 0 without a draw at ``lam == 0``,
    else ``random_poisson_mult`` (multiply uniforms until the product is at most
    ``enlam = exp(-lam)``); returns ``(lo, hi, count)``."""
    x = 0
    if lam != 0.0:
        prod = 1.0
        while True:
            lo, hi, w = pcg64_step(lo, hi, ilo, ihi)
            prod *= _to_double(w)
            if prod > enlam:
                x += 1
            else:
                break
    return lo, hi, x


@njit(cache=True, nogil=True)
def draw_program_kernel(addrs, kinds, counts, lams, u_out, z_out, r_out, k_out):  # pragma: no cover - compiled
    """For each generator ``b`` (its ``pcg64_random_t`` at ``addrs[b]``), the draws of the
    program ``(kinds[k], counts[k])`` in order, appended per kind to ``u_out[b]`` (:data:`RANDOM`),
    ``z_out[b]`` (:data:`NORMAL`), ``r_out[b]`` (:data:`RAW`) or ``k_out[b]`` (:data:`POISSON`,
    the ``j``-th Poisson step at ``lams[b, j]``, which must be in ``[0, 10)``); each state is
    written back after its draws. One call for a sub-block: the records' streams are
    independent, so record after record is each one's own order."""
    for b in range(addrs.shape[0]):
        lo, hi, ilo, ihi = pcg64_load(addrs[b])
        ju = 0
        jz = 0
        jr = 0
        jk = 0
        jp = 0
        zb = z_out[b]
        ub = u_out[b]
        for k in range(kinds.shape[0]):
            c = counts[k]
            kind = kinds[k]
            if kind == 0:
                for _ in range(c):
                    lo, hi, w = pcg64_step(lo, hi, ilo, ihi)
                    ub[ju] = _to_double(w)
                    ju += 1
            elif kind == 1:
                for _ in range(c):
                    lo, hi, zb[jz] = ziggurat_normal(lo, hi, ilo, ihi)
                    jz += 1
            elif kind == 2:
                for _ in range(c):
                    lo, hi, w = pcg64_step(lo, hi, ilo, ihi)
                    r_out[b, jr] = w
                    jr += 1
            else:
                lam = lams[b, jp]
                jp += 1
                # random_poisson: 0 without a draw at lam == 0, else random_poisson_mult
                enlam = math.exp(-lam)
                for _ in range(c):
                    lo, hi, k_out[b, jk] = _poisson_mult(lo, hi, ilo, ihi, lam, enlam)
                    jk += 1
        pcg64_store(addrs[b], lo, hi)


def _program_arrays(program) -> tuple:
    """``(kinds, counts, totals per kind [4], Poisson steps)`` of a program (checked)."""
    kinds = np.array([k for k, _ in program], dtype=np.int64)
    counts = np.array([int(c) for _, c in program], dtype=np.int64)
    if kinds.size and (kinds.min() < RANDOM or kinds.max() > POISSON or counts.min() < 0):
        from .errors import ConfigError
        raise ConfigError(f"a draw program is (kind, count) pairs with kind RANDOM, NORMAL, RAW or POISSON and "
                          f"count >= 0, got {list(program)!r}")
    totals = [int(counts[kinds == kind].sum()) for kind in (RANDOM, NORMAL, RAW, POISSON)]
    return kinds, counts, totals, int(np.count_nonzero(kinds == POISSON))


def _checked_lams(lams, n_rec: int, n_p: int) -> np.ndarray:
    out = np.zeros((n_rec, n_p)) if lams is None and n_p == 0 else np.asarray(lams, dtype=np.float64)
    if out.shape != (n_rec, n_p):
        from .errors import ConfigError
        raise ConfigError(f"lams must be [records, Poisson steps] = ({n_rec}, {n_p}), got {out.shape}")
    return np.ascontiguousarray(out)


def _empty_draws(n_rec: int, totals) -> Draws:
    return Draws(np.empty((n_rec, totals[0])), np.empty((n_rec, totals[1])),
                 np.empty((n_rec, totals[2]), dtype=np.uint64), np.empty((n_rec, totals[3]), dtype=np.int64))


def draw_program_ref(rngs, program, lams=None) -> Draws:
    """NumPy twin of :func:`draw_program`: ``rng.random(c)``, ``rng.standard_normal(c)``,
    ``rng.bit_generator.random_raw(c)`` or ``rng.poisson(lam, c)`` per step of ``program``,
    generator after generator."""
    kinds, counts, totals, n_p = _program_arrays(program)
    lams = _checked_lams(lams, len(rngs), n_p)
    out = _empty_draws(len(rngs), totals)
    for b, rng in enumerate(rngs):
        at = [0, 0, 0, 0]
        jp = 0
        for k, c in zip(kinds.tolist(), counts.tolist()):
            j = at[k]
            if k == RANDOM:
                out.u[b, j:j + c] = rng.random(c)
            elif k == NORMAL:
                out.z[b, j:j + c] = rng.standard_normal(c)
            elif k == RAW:
                out.raw[b, j:j + c] = rng.bit_generator.random_raw(c)
            else:
                out.k[b, j:j + c] = rng.poisson(float(lams[b, jp]), c)
                jp += 1
            at[k] = j + c
    return out


@lru_cache(maxsize=1)
def draw_program_matches() -> bool:
    """Whether :func:`draw_program_kernel` draws what NumPy draws (three generators, a program
    mixing every kind, Poisson rates from 0 to 9.9, twice, then each stream's next words);
    once per process."""
    try:
        if not pcg64_draws_match():
            return False
        program = ((RANDOM, 3), (NORMAL, 1), (RAW, 2), (POISSON, 40), (RANDOM, 1), (NORMAL, 20_000), (POISSON, 7),
                   (RANDOM, 17), (POISSON, 0), (NORMAL, 5), (POISSON, 300))
        lams = np.array([[0.0, 9.9, 2.5, 0.03], [0.4, 0.0, 1e-6, 7.0], [3.0, 5.0, 0.0, 0.0]])
        kinds, counts, totals, _ = _program_arrays(program)
        for seeds in ((1, 2, 3), (20261207, 0, 99)):
            mine = [np.random.default_rng(s) for s in seeds]
            ref = [np.random.default_rng(s) for s in seeds]
            addrs = np.array([_pcg64_address(g) for g in mine], dtype=np.uint64)
            for _ in range(2):
                got = _empty_draws(3, totals)
                draw_program_kernel(addrs, kinds, counts, lams, *got)
                want = draw_program_ref(ref, program, lams)
                if any(a.tobytes() != b.tobytes() for a, b in zip(got, want)):
                    return False
            if any(a.integers(1 << 62) != b.integers(1 << 62) for a, b in zip(mine, ref)):
                return False
        return True
    except Exception:  # pragma: no cover - a numba failure: NumPy draws
        return False


def draw_program(rngs, program, lams=None) -> Draws:
    """The draws of ``program`` from each generator of ``rngs``, in one kernel call.

    Parameters
    ----------
    rngs : sequence of numpy.random.Generator
        One per record; each draws the whole program, in order, from its own stream.
    program : sequence of (kind, count)
        ``(RANDOM, c)``: ``rng.random(c)``; ``(NORMAL, c)``: ``rng.standard_normal(c)``;
        ``(RAW, c)``: ``rng.bit_generator.random_raw(c)``; ``(POISSON, c)``:
        ``rng.poisson(lam, c)``.
    lams : array_like (len(rngs), number of POISSON steps), optional
        Each record's rate of each Poisson step.

    Returns
    -------
    Draws
        ``u``, ``z``, ``raw``, ``k``: ``[len(rngs), total count of the kind]`` each.

    The same numbers as :func:`draw_program_ref` (NumPy), leaving every stream where NumPy
    leaves it; through :func:`draw_program_kernel` when every generator is a ``Generator``
    on ``PCG64``, every Poisson rate is in ``[0, 10)`` (above, NumPy's PTRS method) and
    :func:`draw_program_matches` holds (each generator's lock held while drawing), through
    NumPy otherwise.
    """
    kinds, counts, totals, n_p = _program_arrays(program)
    lams = _checked_lams(lams, len(rngs), n_p)
    addrs = [_pcg64_address(g) for g in rngs]
    if (not rngs or any(a is None for a in addrs) or not (np.all(lams >= 0) and np.all(lams < _POISSON_MULT_MAX))
            or not draw_program_matches()):
        return draw_program_ref(rngs, program, lams)
    out = _empty_draws(len(rngs), totals)
    from contextlib import ExitStack

    with ExitStack() as locks:
        for g in {id(g): g for g in rngs}.values():
            locks.enter_context(g.bit_generator.lock)
        draw_program_kernel(np.array(addrs, dtype=np.uint64), kinds, counts, lams, *out)
    return out
