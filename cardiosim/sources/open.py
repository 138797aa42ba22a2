"""``open_source("kind:PATH")``: one entry point for every reader."""

from __future__ import annotations

from ..errors import ConfigError
from ..leads import STANDARD_LEADS
from ._sequence import RecordingSequence
from .ptbxl import read_ptbxl
from .sph import read_sph
from .wfdb_reader import open_wfdb

SOURCE_KINDS: tuple[str, ...] = ("wfdb", "ptbxl", "sph")


def open_source(spec: str, *, label_map="ten_class", expected_fs=None, sampling_rate: int = 500,
                required_leads=STANDARD_LEADS) -> RecordingSequence:
    """Open a source of real recordings from a spec string.

    Parameters
    ----------
    spec : str
        ``"wfdb:PATH"`` (a record, or a folder searched recursively for ``*.hea``),
        ``"ptbxl:PATH"`` (PTB-XL folder), ``"sph:PATH"`` (SPH folder).
    label_map : str, Path or LabelMap
        Default ``'ten_class'``.
    expected_fs : float, optional
        For ``wfdb`` and ``sph``: raise :class:`SamplingRateError` on another rate.
    sampling_rate : {500, 100}
        For ``ptbxl``: which record set.
    required_leads : sequence of str or None
        For ``wfdb``: leads every record must have (default the standard 12).

    Returns
    -------
    RecordingSequence
        Lazy (``len``, indexing), with ``.classes``.
    """
    kind, sep, path = str(spec).partition(":")
    if not sep or kind not in SOURCE_KINDS or not path:
        raise ConfigError(f"source spec {spec!r} must be 'KIND:PATH' with KIND one of {SOURCE_KINDS}")
    if kind == "wfdb":
        return open_wfdb(path, expected_fs, label_map=label_map, required_leads=required_leads)
    if kind == "ptbxl":
        return read_ptbxl(path, sampling_rate, label_map=label_map)
    return read_sph(path, label_map=label_map, expected_fs=expected_fs)
