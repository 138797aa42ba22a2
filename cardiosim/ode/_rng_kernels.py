"""Draws from a ``numpy.random.Generator``'s bit generator inside numba kernels, bit for
bit NumPy's ``Generator.random`` and ``Generator.standard_normal``.

A 10-s record's plan draws four times (a few hundred numbers); each ``Generator`` method
call costs 0.5-2.5 µs of argument handling, and passing the ``Generator`` itself to a
numba function costs ~6 µs a call (numba unboxes its ``ctypes`` interface every time).
Here the bit generator's state address and its ``next_double`` / ``next_uint64``
functions (``BitGenerator.ctypes``) are read once per bit generator
(:func:`bitgen_pointers`) and passed as three integers; :func:`next_double` and
:func:`next_uint64` call those C functions, which are the ones ``Generator`` calls:

* ``Generator.random(n)`` fills its output with ``next_double`` in order, so
  :func:`next_double` ``n`` times gives the same numbers and leaves the stream where
  ``random(n)`` leaves it;
* :func:`standard_normal` is NumPy's ziggurat (``random_standard_normal`` of
  ``numpy/random/src/distributions/distributions.c``, its tables as numba ships them
  for its own ``Generator`` support) with ``math.log1p`` / ``math.exp``, the C library's
  functions NumPy's C code calls; ``standard_normal(shape)`` fills C order.

:func:`draws_match` checks both against NumPy on this machine (once per process; the
tail and wedge branches of the ziggurat included) and the callers use the kernels only
then. Not thread-safe for one ``Generator`` shared by threads (NumPy's methods take the
bit generator's lock; callers here hold it around their kernels).

API: ``bitgen_pointers(rng) -> uint64[3] (state, next_double, next_uint64) | None``;
``next_double(bg)``, ``next_uint64(bg)``, ``standard_normal(bg)`` (in kernels);
``fill_random_kernel(bg, out)``, ``fill_normal_kernel(bg, out)`` (1-D, in order);
``draws_match() -> bool``.
"""

from __future__ import annotations

import ctypes
import math
from functools import lru_cache

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core.extending import intrinsic

# NumPy's ziggurat tables (as numba ships them), shared with the inline-PCG64 draws
from .._pcg64_kernels import FI, KI, NOR_INV_R, NOR_R, WI  # noqa: E402,F401


def _bitgen_call(ret):
    """An intrinsic ``f(fn, state) -> ret``: call the C function at address ``fn`` with
    the bit generator state pointer ``state`` (both integers)."""

    @intrinsic
    def call(typingctx, fn, state):
        if not (isinstance(fn, types.Integer) and isinstance(state, types.Integer)):
            return None
        sig = ret(fn, state)

        def codegen(context, builder, signature, args):
            fn_v, st_v = args
            vp = ir.IntType(8).as_pointer()
            fnty = ir.FunctionType(context.get_value_type(ret), (vp,))
            ptr = builder.inttoptr(fn_v, fnty.as_pointer())
            return builder.call(ptr, (builder.inttoptr(st_v, vp),))

        return sig, codegen

    return call


_call_double = _bitgen_call(types.float64)
_call_uint64 = _bitgen_call(types.uint64)


@njit(nogil=True, inline="always")
def next_double(bg):
    """The bit generator's next double in [0, 1) (``bg`` from :func:`bitgen_pointers`)."""
    return _call_double(bg[1], bg[0])


@njit(nogil=True, inline="always")
def next_uint64(bg):
    """The bit generator's next 64 random bits."""
    return _call_uint64(bg[2], bg[0])


@njit(nogil=True)
def standard_normal(bg):
    """One ``Generator.standard_normal()`` draw: NumPy's ziggurat, step for step."""
    while True:
        r = next_uint64(bg)
        idx = np.intp(r & np.uint64(0xFF))
        r = r >> np.uint64(8)
        sign = r & np.uint64(1)
        rabs = (r >> np.uint64(1)) & np.uint64(0x000FFFFFFFFFFFFF)
        # the sign as a product (exactly -x, -0.0 included): a branch on a random bit
        # mispredicts half the time (cardiosim._pcg64_kernels, 2026-12-07)
        x = float(rabs) * WI[idx] * (1.0 - 2.0 * float(sign))
        if rabs < KI[idx]:
            return x  # 99.3 % of the draws
        if idx == 0:
            while True:  # the tail (1 - U: no log(0))
                xx = -NOR_INV_R * math.log1p(-next_double(bg))
                yy = -math.log1p(-next_double(bg))
                if yy + yy > xx * xx:
                    if (rabs >> np.uint64(8)) & np.uint64(1):
                        return -(NOR_R + xx)
                    return NOR_R + xx
        else:
            if (FI[idx - 1] - FI[idx]) * next_double(bg) + FI[idx] < math.exp(-0.5 * x * x):
                return x


@njit(cache=True, nogil=True)
def fill_random_kernel(bg, out):
    """``out[:] = rng.random(out.size)`` (1-D)."""
    for i in range(out.shape[0]):
        out[i] = next_double(bg)


@njit(cache=True, nogil=True)
def fill_normal_kernel(bg, out):
    """``out[:] = rng.standard_normal(out.size)`` (1-D)."""
    for i in range(out.shape[0]):
        out[i] = standard_normal(bg)


# the last bit generator seen and its pointers (kept alive with them), as one tuple replaced
# whole: a thread reading it never pairs one generator with another's pointers
_LAST = (None, None)


def bitgen_pointers(rng):
    """``uint64[3]``: the state address and the ``next_double`` / ``next_uint64`` function
    addresses of ``rng.bit_generator`` (cached for the last bit generator: its state lives
    inside it, which the cache keeps alive); None if it has no ``ctypes`` interface.

    Read from the ``bitgen_t`` behind the bit generator's ``capsule``
    (:func:`_capsule_pointers`, ~5 µs) where that gave the ``ctypes`` interface's three
    addresses for the first bit generator of its type (checked once per type); else from
    the ``ctypes`` interface, whose first use builds five ``ctypes`` objects (~24 µs, every
    record: each record's generator is new)."""
    global _LAST
    bg = rng.bit_generator
    last = _LAST
    if bg is last[0]:
        return last[1]
    ok = _CAPSULE_OK.get(type(bg))
    ptrs = None
    if ok:
        try:
            ptrs = _capsule_pointers(bg)
        except Exception:  # pragma: no cover - a capsule of another kind: the ctypes interface
            ptrs = None
    if ptrs is None:
        try:
            ptrs = _ctypes_pointers(bg)
        except Exception:  # pragma: no cover - a bit generator without the ctypes interface
            return None
        if ok is None:  # the first of its type: may the capsule be read instead?
            try:
                _CAPSULE_OK[type(bg)] = _capsule_pointers(bg).tobytes() == ptrs.tobytes()
            except Exception:  # pragma: no cover - no capsule, or not a bitgen_t
                _CAPSULE_OK[type(bg)] = False
    ptrs.flags.writeable = False
    _LAST = (bg, ptrs)
    return ptrs


#: bit generator type -> whether :func:`_capsule_pointers` gave :func:`_ctypes_pointers`'s addresses
_CAPSULE_OK: dict = {}
# (a prototype of its own: setting restype / argtypes on ``ctypes.pythonapi``'s shared function
# would change them for every other user of it in the process)
_CAPSULE_GET = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)(
    ("PyCapsule_GetPointer", ctypes.pythonapi))


def _ctypes_pointers(bg) -> np.ndarray:
    """(state, next_double, next_uint64) addresses from ``bg.ctypes``."""
    ct = bg.ctypes
    return np.array([ct.state.value, ctypes.cast(ct.next_double, ctypes.c_void_p).value,
                     ctypes.cast(ct.next_uint64, ctypes.c_void_p).value], np.uint64)


def _capsule_pointers(bg) -> np.ndarray:
    """(state, next_double, next_uint64) addresses read from the ``bitgen_t`` of ``bg.capsule``
    (NumPy's ``numpy/random/bitgen.h``: ``state, next_uint64, next_uint32, next_double,
    next_raw``, five pointers), the struct ``bg.ctypes`` reads them from."""
    v = (ctypes.c_uint64 * 5).from_address(_CAPSULE_GET(bg.capsule, b"BitGenerator"))
    return np.array([v[0], v[3], v[1]], np.uint64)


@lru_cache(maxsize=1)
def draws_match() -> bool:
    """Whether :func:`fill_random_kernel` and :func:`fill_normal_kernel` draw what
    ``Generator.random`` / ``standard_normal`` draw, and leave the stream where they do
    (fixed seeds, 10^5 normals: ~1,000 in the ziggurat's wedges, ~30 in its tail); once
    per process."""
    try:
        for seed in (20261206, 7):
            a, b = np.random.default_rng(seed), np.random.default_rng(seed)
            bg = bitgen_pointers(a)
            if bg is None:
                return False
            for n in (1, 3, 257, 1000):
                got = np.empty(n)
                fill_random_kernel(bg, got)
                if got.tobytes() != b.random(n).tobytes():
                    return False
            got = np.empty(100_000)
            fill_normal_kernel(bg, got)
            if got.tobytes() != b.standard_normal(100_000).tobytes() or a.random() != b.random():
                return False
        return True
    except Exception:  # pragma: no cover - a numba failure: the NumPy draws it is
        return False


# ---------------------------------------------------------------------------------------------
# numpy.random.SeedSequence's hash (numpy/random/bit_generator.pyx), its constants
_SS_INIT_A = 0x43B0D7E5
_SS_MULT_A = 0x931E8875
_SS_INIT_B = 0x8B51F9DD
_SS_MULT_B = 0x58F38DED
_SS_MIX_L = 0xCA01F9DD
_SS_MIX_R = 0x4973F715


@njit(cache=True, nogil=True)
def _ss_hashmix(value, hc):
    """SeedSequence's ``hashmix``: (hashed value, next hash constant), uint32 in uint64."""
    m32 = np.uint64(0xFFFFFFFF)
    value = value ^ hc
    hc = (hc * np.uint64(_SS_MULT_A)) & m32
    value = (value * hc) & m32
    return value ^ (value >> np.uint64(16)), hc


@njit(cache=True, nogil=True)
def _ss_mix(x, y):
    m32 = np.uint64(0xFFFFFFFF)
    r = (((np.uint64(_SS_MIX_L) * x) & m32) - ((np.uint64(_SS_MIX_R) * y) & m32)) & m32
    return r ^ (r >> np.uint64(16))


@njit(cache=True, nogil=True)
def seed_state_kernel(entropy, out):
    """``SeedSequence(entropy).generate_state(out.shape[0], np.uint64)`` into ``out`` (uint64)
    for ``entropy`` a uint32 array (no spawn key, pool of 4 words): the pool mixed as
    ``SeedSequence.mix_entropy`` mixes it and the state words drawn from it as
    ``generate_state`` draws them, pairs of uint32 read little-endian as uint64 (32-bit
    integer arithmetic, exact; twin: :func:`seed_state_numpy`, NumPy's ``SeedSequence``)."""
    m32 = np.uint64(0xFFFFFFFF)
    pool = np.empty(4, np.uint64)
    hc = np.uint64(_SS_INIT_A)
    n = entropy.shape[0]
    for i in range(4):
        v, hc = _ss_hashmix(np.uint64(entropy[i]) if i < n else np.uint64(0), hc)
        pool[i] = v
    for i_src in range(4):
        for i_dst in range(4):
            if i_src != i_dst:
                h, hc = _ss_hashmix(pool[i_src], hc)
                pool[i_dst] = _ss_mix(pool[i_dst], h)
    for i_src in range(4, n):
        for i_dst in range(4):
            h, hc = _ss_hashmix(np.uint64(entropy[i_src]), hc)
            pool[i_dst] = _ss_mix(pool[i_dst], h)
    hc = np.uint64(_SS_INIT_B)
    lo = np.uint64(0)
    for i in range(2 * out.shape[0]):
        d = pool[i % 4] ^ hc
        hc = (hc * np.uint64(_SS_MULT_B)) & m32
        d = (d * hc) & m32
        d = d ^ (d >> np.uint64(16))
        if i % 2 == 0:
            lo = d
        else:
            out[i // 2] = lo | (d << np.uint64(32))


def seed_state_numpy(entropy, out):
    """Twin of :func:`seed_state_kernel`: NumPy's ``SeedSequence`` itself."""
    out[:] = np.random.SeedSequence(entropy).generate_state(out.shape[0], np.uint64)


KERNELS = {"seed_state": (seed_state_kernel, seed_state_numpy)}
