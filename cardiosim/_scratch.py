"""Per-thread scratch buffers for the simulation's hot path.

A fresh ~1-MB temporary per record costs its page faults again on every record; the hot path
(leads and twin in :mod:`cardiosim.simulate`, the artefact grades' band-pass in
:mod:`cardiosim.noise.textile`, the motion basis in :mod:`cardiosim.motion.simulate`) takes them
from here instead. Rule: a scratch array never leaves the function that took it (nothing a
returned record holds may be a view of one), since the thread's next call overwrites it.
"""

from __future__ import annotations

import threading

import numpy as np

_LOCAL = threading.local()


def scratch(name: str, shape: tuple, dtype=np.float64) -> np.ndarray:
    """The calling thread's buffer ``name`` (callers prefix it with their module, e.g.
    ``"motion.basis"``) of ``shape`` and ``dtype``, reused while those stay the same; its
    contents are undefined: the caller overwrites it before reading."""
    bufs = getattr(_LOCAL, "bufs", None)
    if bufs is None:
        bufs = _LOCAL.bufs = {}
    buf = bufs.get(name)
    if buf is None or buf.shape != tuple(shape) or buf.dtype != np.dtype(dtype):
        buf = bufs[name] = np.empty(shape, dtype=dtype)
    return buf


def _madvise_toggle():
    """NumPy's switch for advising transparent huge pages on its large arrays
    (``multiarray._set_madvise_hugepage``: sets it, returns the previous setting), or None
    where this NumPy has none. (Only the tests use it now: :func:`empty_without_huge_pages`
    maps its own memory and leaves NumPy's setting alone.)"""
    core = getattr(np, "_core", None) or getattr(np, "core", None)
    return getattr(getattr(core, "multiarray", None), "_set_madvise_hugepage", None)


#: NumPy advises huge pages from this size on (``npy_alloc_cache``'s 4-MiB threshold); smaller
#: arrays come from ``np.empty`` as they are.
_HUGEPAGE_MIN_BYTES = 4 << 20


def empty_without_huge_pages(shape: tuple, dtype=np.float64) -> np.ndarray:
    """``np.empty(shape, dtype)`` whose memory the kernel maps in 4-KiB pages.

    NumPy advises the kernel to back every array of >= 4 MiB with transparent huge pages
    (``madvise(MADV_HUGEPAGE)``). Where the kernel's THP defrag setting is ``madvise`` (the
    default of common distributions), the first touch of such an array waits for memory
    compaction when no free huge page is left: on this project's VM (up 17 h) a fresh 61-MB
    float32 array took 0.88 s to fill the first time in a process, then 0.01 s; with 4-KiB pages
    0.04-0.06 s every time. A dataset block's signal buffers (tens of MB, filled sequentially)
    are allocated once per process: a bounded 4-KiB-fault cost instead of a possible stall of a
    second at the start of every worker and every short run.

    The array lives in a private anonymous mapping of its own (``mmap``, unmapped when the
    array and every view of it are gone), so no advice can reach it. Switching NumPy's advice
    off around ``np.empty`` (the first form of this function) was not enough: the allocator
    may hand back address space an earlier, advised array occupied, and the flag stays with
    that range (seen once in a full test run, 2026-12-07). Private, so a forked worker gets
    its own copy on write, as with ``np.empty``. Where ``mmap`` has no private anonymous
    mappings (Windows), or for arrays under 4 MiB (never advised), ``np.empty``."""
    import mmap

    dtype = np.dtype(dtype)
    shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(n) for n in shape)
    if any(n < 0 for n in shape):
        return np.empty(shape, dtype=dtype)   # NumPy's own error for a negative dimension
    count = int(np.prod(shape, dtype=np.int64))
    nbytes = count * dtype.itemsize
    flags = getattr(mmap, "MAP_PRIVATE", None), getattr(mmap, "MAP_ANONYMOUS", None)
    if nbytes < _HUGEPAGE_MIN_BYTES or None in flags:
        return np.empty(shape, dtype=dtype)
    buf = mmap.mmap(-1, nbytes, flags=flags[0] | flags[1])
    return np.frombuffer(buf, dtype=dtype, count=count).reshape(shape)
