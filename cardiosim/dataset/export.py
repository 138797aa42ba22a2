"""Export a cardiosim dataset to the field's formats: one WFDB record per dataset record.

Each record ``r`` becomes ``<prefix><r>.hea/.dat`` (16-bit, per-lead gain from the
record's range, units mV) with two annotation files beside it:

* ``.atr`` -- one beat annotation at each R peak (``N``, ``V``, ``A``, ``Q``; MIT-BIH symbols);
* ``.wave`` -- waveform boundaries in the QT Database / ``ecgpuwave`` style: ``(`` onset,
  ``p`` / ``N`` / ``t`` peak, ``)`` offset (P offset and T onset are not annotated by the
  generator, so a P wave reads ``( p`` and a T wave ``t )``).

``wfdb.rdrecord`` / ``wfdb.rdann`` and NeuroKit2 read them; a ``RECORDS`` file lists the
records as on PhysioNet. The directory is written under a temporary name and renamed into
place at the end, so an interrupted export leaves no partial output.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataFormatError
from .schema import ANNOTATION_KEYS, annotation_variable

FORMATS = ("wfdb",)
# annotation key -> symbol in the .wave file (QT Database convention)
_WAVE_SYMBOLS = {"P_onset": "(", "P_peak": "p", "QRS_onset": "(", "QRS_offset": ")", "T_peak": "t",
                 "T_offset": ")"}


def export_dataset(path, output, *, format: str = "wfdb", prefix: str = "rec", overwrite: bool = False) -> list[str]:
    """Write every record of the dataset at ``path`` to ``output`` in ``format``.

    Parameters
    ----------
    path : str or Path
        A dataset file or shard directory (:func:`cardiosim.dataset.open_dataset`).
    output : str or Path
        Directory to create (must not exist, or be empty; ``overwrite`` replaces it).
    format : {'wfdb'}
    prefix : str
        Record names are ``f"{prefix}{record:06d}"`` with the dataset's record index.

    Returns
    -------
    list of str
        The record names written.
    """
    from .io import open_dataset

    if format not in FORMATS:
        raise ConfigError(f"unknown export format {format!r}; expected one of {FORMATS}")
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise ConfigError(f"export output {str(output)!r} exists and is not a directory")
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        raise ConfigError(f"export output {str(output)!r} is not empty; pass --overwrite to replace it")
    if not output.parent.is_dir():
        raise ConfigError(f"folder {str(output.parent)!r} does not exist")
    ds = open_dataset(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        names = _write_wfdb(ds, tmp, prefix)
        (tmp / "RECORDS").write_text("".join(f"{n}\n" for n in names))
        if output.exists():
            shutil.rmtree(output)
        os.replace(tmp, output)
    finally:
        ds.close()
        if tmp.exists():
            shutil.rmtree(tmp)
    return names


def _write_wfdb(ds, directory: Path, prefix: str) -> list[str]:
    import wfdb

    fs = float(ds.attrs["sampling_rate"])
    leads = [str(x) for x in ds["lead"].values]
    names = []
    for k in range(ds.sizes["record"]):
        rec = ds.isel(record=k)
        index = int(rec["record"].values)
        name = f"{prefix}{index:06d}"
        sig = np.asarray(rec["ecg"].values, dtype=np.float64).T  # (T, n_leads)
        if not np.all(np.isfinite(sig)):
            raise DataFormatError(f"record {index} holds non-finite samples; WFDB cannot store them")
        gain, baseline = _adc(sig)
        comments = [f"cardiosim record {index}", f"source_id {rec['source_id'].values}",
                    f"labels {' '.join(c for c, v in zip(map(str, ds['class'].values), rec['label'].values) if v)}"]
        wfdb.wrsamp(name, fs=fs, units=["mV"] * len(leads), sig_name=leads, p_signal=sig, fmt=["16"] * len(leads),
                    adc_gain=list(gain), baseline=list(baseline), comments=comments, write_dir=str(directory))
        beats = _beats(rec)
        if beats["R_peak"].size:
            wfdb.wrann(name, "atr", beats["R_peak"], symbol=list(beats["type"]), write_dir=str(directory))
            samples, symbols = _wave_marks(beats)
            wfdb.wrann(name, "wave", samples, symbol=symbols, write_dir=str(directory))
        names.append(name)
    return names


def _adc(sig: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-lead gain (ADC units per mV) and baseline using the 16-bit range symmetrically."""
    lo, hi = sig.min(axis=0), sig.max(axis=0)
    span = np.maximum(hi - lo, 1e-6)
    gain = (2 ** 16 - 4) / span                       # leave the invalid-sample code free
    baseline = np.round(-(hi + lo) / 2 * gain).astype(np.int64)
    return gain, baseline


def _beats(rec) -> dict:
    """Annotated beats of one record: sample indices per key (only beats that exist)."""
    types = np.asarray(rec["beat_type"].values).astype(str) if "beat_type" in rec else np.array([], str)
    n = int((types != "").sum())
    out = {"type": types[:n]}
    for key in ANNOTATION_KEYS:
        var = annotation_variable(key)
        out[key] = np.asarray(rec[var].values[:n], dtype=np.int64) if var in rec else np.full(n, -1)
    keep = out["R_peak"] >= 0
    return {k: v[keep] for k, v in out.items()}


def _wave_marks(beats: dict) -> tuple[np.ndarray, list]:
    marks = [(int(beats["R_peak"][i]), str(beats["type"][i])) for i in range(beats["R_peak"].size)]
    for key, sym in _WAVE_SYMBOLS.items():
        marks += [(int(s), sym) for s in beats[key] if s >= 0]
    # onsets before peaks before offsets at the same sample
    order = {"(": 0, ")": 2}
    marks.sort(key=lambda m: (m[0], order.get(m[1], 1)))
    return np.array([m[0] for m in marks], dtype=np.int64), [m[1] for m in marks]
