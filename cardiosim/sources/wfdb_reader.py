"""Reader of WFDB records (PhysioNet), including the PhysioNet/CinC 2021 ``.hea`` + ``.mat`` format."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import wfdb

from ..errors import DataFormatError, LeadError
from ..leads import normalize_lead_name
from ._sequence import RecordingSequence
from .labels import load_label_map
from .recording import check_fs, check_leads, check_limb_consistency, Recording

_BYTES_PER_SAMPLE = {"8": 1, "16": 2, "61": 2, "24": 3, "32": 4, "80": 1, "160": 2, "212": 1.5,
                     "310": 4 / 3, "311": 4 / 3}
_TO_MV = {"MV": 1.0, "UV": 1e-3, "V": 1e3}


def _record_base(path) -> Path:
    p = Path(path)
    if p.suffix in (".hea", ".dat", ".mat", ".xyz"):
        p = p.with_suffix("")
    if not p.with_suffix(".hea").is_file():
        raise DataFormatError(f"WFDB header {str(p.with_suffix('.hea'))!r} not found")
    return p


def _check_file_sizes(header, base: Path) -> None:
    """Compare each signal file's size with what the header says it holds.

    A truncated file, or a header that lists fewer channels than the file interleaves,
    would otherwise be read as garbage or fail deep inside wfdb.
    """
    files: dict[str, list[int]] = {}
    for k, fname in enumerate(header.file_name or []):
        files.setdefault(fname, []).append(k)
    for fname, chans in files.items():
        fmt = str(header.fmt[chans[0]])
        if fmt not in _BYTES_PER_SAMPLE:
            continue  # compressed (FLAC) or exotic formats: leave it to wfdb
        path = base.parent / fname
        if not path.is_file():
            raise DataFormatError(f"record {str(base)!r}: signal file {str(path)!r} is missing")
        offset = (header.byte_offset[chans[0]] or 0) if header.byte_offset else 0
        need = offset + int(np.ceil(len(chans) * header.sig_len * _BYTES_PER_SAMPLE[fmt]))
        have = os.path.getsize(path)
        if have < need:
            raise DataFormatError(f"record {str(base)!r}: signal file {fname!r} is truncated: {have} bytes, "
                                  f"header needs {need} ({len(chans)} channels x {header.sig_len} samples, "
                                  f"format {fmt})")
        if have > need:
            raise DataFormatError(f"record {str(base)!r}: signal file {fname!r} has {have} bytes but the header "
                                  f"describes {need} ({len(chans)} channels x {header.sig_len} samples, "
                                  f"format {fmt}); header lists fewer channels or samples than the file holds")


def _dx_codes(comments) -> tuple[str, ...]:
    codes: list[str] = []
    for c in comments or []:
        key, _, val = c.partition(":")
        if key.strip().lower() == "dx":
            codes += [x.strip() for x in val.split(",") if x.strip()]
    return tuple(codes)


def _comment_value(comments, key):
    for c in comments or []:
        k, _, v = c.partition(":")
        if k.strip().lower() == key:
            return v.strip()
    return None


def read_wfdb_signal(path, expected_fs=None, *, required_leads=None, leads=None, channels=None,
                     lead_names: bool = True, require_volts: bool = True):
    """Signals of a WFDB record in mV, checked; no labels (used by every WFDB-based reader).

    ``lead_names=False`` keeps the header's channel names as they are (records whose
    channels are not ECG leads, e.g. noise recordings). ``require_volts=False`` passes
    channels in other units (e.g. ADC units, ``adu``) through unscaled, for measures that use
    only ratios; by default they are a DataFormatError.

    Returns
    -------
    signal : ndarray, shape (n_leads, T), float64, mV
    fs : float, Hz
    leads : list of str, canonical names
    record : wfdb.Record (header fields and comments)
    """
    base = _record_base(path)
    sid = str(base)
    # One header parse on the good path (wfdb's parser dominates read time); the header is
    # parsed again only to explain a failure.
    try:
        rec = wfdb.rdrecord(str(base))
    except Exception as exc:  # wfdb raises bare ValueError/IndexError on bad headers or files
        try:
            header = wfdb.rdheader(str(base))
        except Exception as hexc:
            raise DataFormatError(f"record {sid!r}: cannot parse header: {hexc}") from None
        _check_file_sizes(header, base)
        raise DataFormatError(f"record {sid!r}: cannot read signals: {exc}") from None
    check_fs(rec.fs, expected_fs, sid)
    _check_file_sizes(rec, base)
    if channels is not None:
        names = list(rec.sig_name or [])
        missing = [c for c in channels if c not in names]
        if missing:
            raise LeadError(f"record {sid!r} has no channels {missing}; it has {names}")
        idx = [names.index(c) for c in channels]
        rec.p_signal = rec.p_signal[:, idx]
        rec.sig_name = [rec.sig_name[k] for k in idx]
        rec.units = [rec.units[k] for k in idx]
    sig = np.asarray(rec.p_signal, dtype=np.float64).T
    scale = []
    for name, unit in zip(rec.sig_name, rec.units):
        u = (unit or "mV").strip().upper()
        if u not in _TO_MV and not require_volts:
            scale.append(1.0)
            continue
        if u not in _TO_MV:
            raise DataFormatError(f"record {sid!r}: channel {name!r} has units {unit!r}; expected mV, uV or V")
        scale.append(_TO_MV[u])
    sig = sig * np.asarray(scale)[:, None]
    names = lead_names
    lead_names = list(leads) if leads is not None else list(rec.sig_name)
    if not names:
        return sig, float(rec.fs), lead_names, rec
    if len(lead_names) != sig.shape[0]:
        raise LeadError(f"record {sid!r}: {len(lead_names)} lead names given for {sig.shape[0]} channels")
    try:
        lead_names = [normalize_lead_name(n) for n in lead_names]
    except LeadError as exc:
        raise LeadError(f"record {sid!r}: {exc}; pass leads=[...] to name the channels") from None
    if required_leads is not None:
        check_leads(lead_names, [normalize_lead_name(x) for x in required_leads], sid)
    return sig, float(rec.fs), lead_names, rec


def read_wfdb(path, expected_fs=None, *, label_map="ten_class", required_leads=None, leads=None,
              channels=None, warn_unmapped=True, _return_unmapped=False):
    """Read one WFDB record (``.hea`` + ``.dat``/``.mat``/``.xyz``) as a :class:`Recording` in mV.

    SNOMED CT codes from a ``# Dx:`` header comment (PhysioNet/CinC 2021) become
    ``codes`` and are mapped to ``labels`` with ``label_map`` (code system ``snomed``).

    Parameters
    ----------
    path : str or Path
        Record path with or without extension (``.../HR06000`` or ``.../HR06000.hea``).
    expected_fs : float, optional
        Raise :class:`SamplingRateError` if the record's rate differs.
    label_map : str, Path or LabelMap
        Default ``'ten_class'``.
    required_leads : sequence of str, optional
        Raise :class:`LeadError` if any is missing.
    leads : sequence of str, optional
        Lead names to use instead of the header's (for records with names like ``ECG 1``).
    channels : sequence of str, optional
        Header signal names to read (default: all).

    Raises
    ------
    DataFormatError
        Missing, truncated or corrupt files; units that are not volts.
    LeadError, SignalError, SamplingRateError
        Unknown or missing leads; NaN samples; unexpected sampling rate.

    Warns
    -----
    ConsistencyWarning
        Lead III differs from II - I.
    LabelMappingWarning
        Dx codes the label map does not map.
    """
    lmap = load_label_map(label_map)
    sig, fs, lead_names, rec = read_wfdb_signal(path, expected_fs, required_leads=required_leads,
                                                leads=leads, channels=channels)
    sid = str(_record_base(path))
    codes = _dx_codes(rec.comments)
    res = lmap.map_codes(codes, "snomed", sid, warn=warn_unmapped)
    meta = {"record_name": str(rec.record_name), "format": "wfdb"}
    for key in ("age", "sex"):
        v = _comment_value(rec.comments, key)
        if v is not None:
            meta[key] = v
    out = Recording(sig, fs, tuple(lead_names), res.labels, codes, sid, meta)
    check_limb_consistency(out.signal, out.leads, sid)
    return (out, res.unmapped) if _return_unmapped else out


def wfdb_records(path) -> list[Path]:
    """Record bases (without extension) of a WFDB file or of every ``.hea`` under a folder, sorted."""
    p = Path(path)
    if p.is_dir():
        bases = sorted(h.with_suffix("") for h in p.rglob("*.hea"))
        if not bases:
            raise DataFormatError(f"no WFDB headers (*.hea) under {str(p)!r}")
        return bases
    return [_record_base(p)]


def open_wfdb(path, expected_fs=None, *, label_map="ten_class", required_leads=None) -> RecordingSequence:
    """Lazy sequence of the WFDB records at ``path`` (one record, or a folder searched recursively)."""
    lmap = load_label_map(label_map)

    def reader(base):
        return read_wfdb(base, expected_fs, label_map=lmap, required_leads=required_leads,
                         _return_unmapped=True)

    return RecordingSequence(wfdb_records(path), reader, lmap, f"wfdb:{path}")
