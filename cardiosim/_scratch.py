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
    where this NumPy has none."""
    core = getattr(np, "_core", None) or getattr(np, "core", None)
    return getattr(getattr(core, "multiarray", None), "_set_madvise_hugepage", None)


_HUGEPAGE_LOCK = threading.Lock()


def empty_without_huge_pages(shape: tuple, dtype=np.float64) -> np.ndarray:
    """``np.empty(shape, dtype)`` whose memory the kernel maps in 4-KiB pages.

    NumPy advises the kernel to back every array of >= 4 MiB with transparent huge pages
    (``madvise(MADV_HUGEPAGE)``). Where the kernel's THP defrag setting is ``madvise`` (the
    default of common distributions), the first touch of such an array waits for memory
    compaction when no free huge page is left: on this project's VM (up 17 h) a fresh 61-MB
    float32 array took 0.88 s to fill the first time in a process, then 0.01 s; with 4-KiB pages
    0.04-0.06 s every time. A dataset block's signal buffers (tens of MB, filled sequentially)
    are allocated once per process: a bounded 4-KiB-fault cost instead of a possible stall of a
    second at the start of every worker and every short run. The switch is process-wide, so it
    is turned off only while this allocates (under a lock; another thread allocating meanwhile
    just gets no huge-page advice)."""
    toggle = _madvise_toggle()
    if toggle is None:
        return np.empty(shape, dtype=dtype)
    with _HUGEPAGE_LOCK:
        was = toggle(False)
        try:
            return np.empty(shape, dtype=dtype)
        finally:
            toggle(was)
