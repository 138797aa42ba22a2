"""``_scratch.empty_without_huge_pages``: the dataset block buffers' allocation without NumPy's
transparent-huge-page advice (a first touch of advised memory can wait for compaction)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from cardiosim import _scratch


def _advised_huge(a: np.ndarray) -> bool:
    """Whether any memory mapping overlapping ``a``'s data carries the kernel's ``hg`` flag
    (``madvise(MADV_HUGEPAGE)``), read from ``/proc/self/smaps``."""
    lo = a.__array_interface__["data"][0]
    hi = lo + a.nbytes
    advised, overlap = False, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split(maxsplit=1)[0]
        if "-" in head and ":" not in head:
            start, end = (int(x, 16) for x in head.split("-"))
            overlap = start < hi and end > lo
        elif overlap and line.startswith("VmFlags:"):
            advised = advised or "hg" in line.split()[1:]
    return advised


needs_proc = pytest.mark.skipif(not sys.platform.startswith("linux") or not Path("/proc/self/smaps").exists(),
                                reason="reads the kernel's per-mapping flags in /proc/self/smaps (Linux)")


def test_shape_dtype_and_writable():
    a = _scratch.empty_without_huge_pages((3, 4, 5), np.int16)
    assert a.shape == (3, 4, 5) and a.dtype == np.int16 and a.flags.c_contiguous and a.flags.writeable
    a[...] = 7
    assert int(a.sum()) == 7 * 60


@pytest.mark.parametrize("before", [True, False])
def test_numpys_setting_is_left_alone(before):
    """The function maps its own memory: NumPy's process-wide huge-page switch is never
    touched (the first form of the function switched it off around ``np.empty``)."""
    toggle = _scratch._madvise_toggle()
    if toggle is None:
        pytest.skip("this NumPy has no huge-page switch")
    original = toggle(before)
    try:
        _scratch.empty_without_huge_pages((1 << 21,), np.float32)
        assert toggle(before) is before  # (toggle returns the setting it replaces)
        with pytest.raises(ValueError):
            _scratch.empty_without_huge_pages((-1,), np.float32)   # NumPy's own error
        assert toggle(before) is before
    finally:
        toggle(original)


def test_large_arrays_are_private_mappings_freed_with_their_views():
    """Over 4 MiB the array is a view of a private anonymous mapping of its own: written
    through, kept alive by any view of it, and (being private) not shared with a fork."""
    import gc
    import mmap

    a = _scratch.empty_without_huge_pages((8, 1 << 18), np.float32)   # 8 MiB
    owner = a.base
    while isinstance(owner, (np.ndarray, memoryview)):
        owner = owner.base if isinstance(owner, np.ndarray) else owner.obj
    assert isinstance(owner, mmap.mmap)
    del owner
    view = a[3]
    del a
    gc.collect()
    view[...] = 2.5          # the mapping outlives the array it was made for
    assert float(view.sum()) == 2.5 * (1 << 18)
    small = _scratch.empty_without_huge_pages((1 << 10,), np.float64)   # never advised: np.empty's own
    assert small.base is None and small.flags.owndata


@needs_proc
def test_memory_is_not_advised_for_huge_pages():
    """64 MB from the function carry no ``hg`` flag; the same np.empty with NumPy's advice on
    does (the control: without it the check could not fail). Repeated after freeing advised
    arrays of the same size, whose address space the allocator may hand out again (the first
    form of the function failed this once in a full test run)."""
    toggle = _scratch._madvise_toggle()
    if toggle is None:
        pytest.skip("this NumPy has no huge-page switch")
    original = toggle(True)
    try:
        ours = _scratch.empty_without_huge_pages((16 << 20,), np.float32)
        control = np.empty((16 << 20,), np.float32)
        if not _advised_huge(control):
            pytest.skip("this kernel or NumPy build does not advise huge pages (no MADV_HUGEPAGE)")
        assert not _advised_huge(ours)
        for _ in range(3):
            del control
            ours = _scratch.empty_without_huge_pages((16 << 20,), np.float32)
            control = np.empty((16 << 20,), np.float32)
            assert not _advised_huge(ours) and _advised_huge(control)
    finally:
        toggle(original)


def test_block_buffers_use_it(monkeypatch):
    """The dataset's per-thread block buffers are allocated through it."""
    import importlib

    # (the module: ``cardiosim.dataset.generate`` as an attribute is the function of that name)
    gen = importlib.import_module("cardiosim.dataset.generate")
    calls = []
    monkeypatch.setattr(gen, "empty_without_huge_pages",
                        lambda shape, dtype: calls.append((shape, np.dtype(dtype))) or np.empty(shape, dtype))
    gen._release_block_buffers()
    try:
        buf = gen._block_buffer("test", (2, 3, 4), np.float32)
        assert buf.shape == (2, 3, 4) and calls == [((2, 3, 4), np.dtype(np.float32))]
        gen._block_buffer("test", (2, 3, 4), np.float32)   # reused: no second allocation
        assert len(calls) == 1
    finally:
        gen._release_block_buffers()
