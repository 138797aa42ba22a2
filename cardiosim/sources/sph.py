"""Reader of the SPH 12-lead database (Liu et al., Sci Data 9, 272, 2022; CC BY 4.0).

Layout: ``records/<ECG_ID>.h5`` with dataset ``ecg`` of shape (12, N), standard lead order
I, II, III, aVR, aVL, aVF, V1..V6, 500 Hz, mV; ``metadata.csv`` with columns ``ECG_ID``,
``AHA_Code``, ``Patient_ID``, ``Age``, ``Sex``, ``N``. ``AHA_Code`` lists AHA/ACC/HRS
statements separated by ``;``; a modifier is attached to its statement with ``+``
(``'22;146+381'``). Primary statements are mapped (code system ``aha``); modifiers stay in
``metadata['aha_code']``.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from ..errors import DataFormatError
from ..leads import STANDARD_LEADS
from ._sequence import RecordingSequence
from .labels import load_label_map
from .recording import Recording, check_fs, check_limb_consistency

SPH_FS = 500.0
_COLUMNS = ("ECG_ID", "AHA_Code", "Patient_ID", "Age", "Sex", "N")


def parse_aha_code(text) -> tuple[str, ...]:
    """Primary AHA statement codes of an SPH ``AHA_Code`` string (``'22;146+381'`` -> ``('22', '146')``)."""
    if not isinstance(text, str):
        return ()
    return tuple(s.split("+")[0].strip() for s in text.split(";") if s.split("+")[0].strip())


def read_sph(folder, *, label_map="ten_class", expected_fs=None) -> RecordingSequence:
    """Lazy sequence of SPH records as :class:`Recording` (12 leads, 500 Hz, mV).

    Parameters
    ----------
    folder : str or Path
        Holds ``metadata.csv`` and ``records/*.h5``.
    label_map : str, Path or LabelMap
        Maps primary AHA codes (system ``aha``). Default ``'ten_class'``.
    expected_fs : float, optional
        Raise :class:`SamplingRateError` unless 500.

    Returns
    -------
    RecordingSequence
        ``metadata``: ``patient_id``, ``age``, ``sex``, ``aha_code`` (raw string), ``ecg_id``.
    """
    folder = Path(folder)
    check_fs(SPH_FS, expected_fs, f"sph:{folder}")
    meta_path = folder / "metadata.csv"
    try:
        table = pd.read_csv(meta_path, dtype={"ECG_ID": str, "AHA_Code": str, "Patient_ID": str})
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataFormatError(f"cannot read SPH metadata {str(meta_path)!r}: {exc}") from None
    missing = [c for c in _COLUMNS if c not in table.columns]
    if missing:
        raise DataFormatError(f"{str(meta_path)!r} lacks SPH columns {missing}")
    table = table.set_index("ECG_ID")
    lmap = load_label_map(label_map)

    def reader(ecg_id):
        row = table.loc[ecg_id]
        sid = f"sph:{ecg_id}"
        path = folder / "records" / f"{ecg_id}.h5"
        try:
            with h5py.File(path, "r") as f:
                if "ecg" not in f:
                    raise DataFormatError(f"{str(path)!r} has no dataset 'ecg' (has {list(f)})")
                sig = np.asarray(f["ecg"][()], dtype=np.float64)
        except OSError as exc:
            raise DataFormatError(f"cannot read SPH record {str(path)!r}: {exc}") from None
        if sig.ndim != 2 or sig.shape[0] != 12:
            raise DataFormatError(f"{str(path)!r}: dataset 'ecg' has shape {sig.shape}, expected (12, N)")
        if pd.notna(row["N"]) and int(row["N"]) != sig.shape[1]:
            raise DataFormatError(f"{str(path)!r}: {sig.shape[1]} samples but metadata.csv says N={int(row['N'])}")
        codes = parse_aha_code(row["AHA_Code"])
        res = lmap.map_codes(codes, "aha", sid)
        meta = {"ecg_id": str(ecg_id), "patient_id": str(row["Patient_ID"]), "format": "sph",
                "aha_code": str(row["AHA_Code"])}
        if pd.notna(row["Age"]):
            meta["age"] = float(row["Age"])
        if pd.notna(row["Sex"]):
            meta["sex"] = str(row["Sex"])
        rec = Recording(sig, SPH_FS, STANDARD_LEADS, res.labels, codes, sid, meta)
        check_limb_consistency(rec.signal, rec.leads, sid)
        return rec, res.unmapped

    return RecordingSequence(list(table.index), reader, lmap, f"sph:{folder}")
