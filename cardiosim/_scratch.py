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
