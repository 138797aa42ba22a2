"""Atomic file writes: the one place where cardiosim writes a file (temporary file, then rename).

A reader never sees a half-written output: the content goes to a temporary file beside
the target, which is renamed onto it only when complete (``os.replace`` is atomic within
a file system); on any error the temporary file is removed and the target is untouched.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(final, *, suffix: str = ".tmp"):
    """Yield a temporary path beside ``final``; rename it onto ``final`` only on success.

    The file gets the mode ``open()`` would give it (``0666 & ~umask``), not mkstemp's 0600.
    The parent folder must exist.
    """
    final = Path(final)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=suffix, dir=final.parent)
    os.fchmod(fd, 0o666 & ~umask())
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def umask() -> int:
    """This process's umask, read without changing it where the OS allows (Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (the only portable way to read it)
    os.umask(mask)
    return mask
