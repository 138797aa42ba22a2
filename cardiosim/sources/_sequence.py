"""Lazy, indexable sequences of recordings shared by every reader."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from ..errors import CardiosimError, ConfigError
from .labels import LabelMap


class RecordingSequence(Sequence):
    """A lazy sequence of :class:`~cardiosim.sources.recording.Recording`.

    ``len(seq)`` is known without reading signals; ``seq[i]`` reads record ``i`` from disk.

    Attributes
    ----------
    classes : tuple of str
        Target classes of the active label map (the ``class`` coordinate of datasets).
    label_map : LabelMap
    unmapped : dict
        ``{source_id: tuple of codes}`` for every record read so far whose codes were not
        all mapped (also warned about with ``LabelMappingWarning``).
    failed : dict
        ``{record id: error message}`` of records :meth:`iter_records` skipped.
    """

    def __init__(self, ids, reader, label_map: LabelMap, name: str):
        self._ids = tuple(ids)
        self._reader = reader
        self.label_map = label_map
        self.classes = label_map.classes
        self.name = name
        self.unmapped: dict[str, tuple[str, ...]] = {}
        self.failed: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        n = len(self)
        k = int(i)
        if not -n <= k < n:
            raise IndexError(f"{self.name}: record index {i} out of range for {n} records")
        rec, unmapped = self._reader(self._ids[k % n])
        if unmapped:
            self.unmapped[rec.source_id] = unmapped
        return rec

    def iter_records(self, on_error: str = "raise") -> Iterator[tuple[int, "object"]]:
        """Yield ``(index, Recording)``; with ``on_error='report'`` a record that fails to read
        (any :class:`CardiosimError`: truncated file, NaN, missing lead...) is skipped and
        recorded in :attr:`failed` with its message, so callers write nothing for it."""
        if on_error not in ("raise", "report"):
            raise ConfigError(f"on_error must be 'raise' or 'report', got {on_error!r}")
        for k in range(len(self)):
            try:
                rec = self[k]
            except CardiosimError as exc:
                if on_error == "raise":
                    raise
                self.failed[str(self._ids[k])] = f"{type(exc).__name__}: {exc}"
                continue
            yield k, rec

    @property
    def ids(self) -> tuple:
        """Per-record identifiers (paths or database ids), without reading anything."""
        return self._ids

    def __repr__(self) -> str:
        return f"<RecordingSequence {self.name!r}: {len(self)} records, classes {list(self.classes)}>"
