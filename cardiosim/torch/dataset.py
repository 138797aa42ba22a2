"""A map-style torch Dataset over cardiosim's netCDF outputs.

The files are those ``cardiosim.dataset`` writes (DESIGN.md "Output dataset"): either a
single netCDF file, or a directory of shards ``shard-*.nc`` with a ``manifest.json``.
Each holds ``ecg (record, lead, time)`` float32 mV, ``label (record, class)`` int8
multi-hot, and per-record metadata (``source_id``, ``heart_rate``, ``displacement``,
``snr_db``, ``split``).

Safe with ``DataLoader(num_workers > 0)``: handles live in a per-process registry
keyed by process id, so a worker (forked or spawned) never uses a handle its parent
opened; it opens its own on its first ``__getitem__``.

Handles are kept open for the life of the process rather than closed and reopened:
with the netCDF-C/HDF5 shipped in the netCDF4 1.7 wheels, closing the *second* handle
of a file whose string variables were read and then reopening the file segfaults
(reproduced here with netCDF4 alone), and a user who also opened the file with xarray
would hit exactly that. :func:`close_files` closes them explicitly.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataFormatError, LeadError
from ..leads import normalize_lead_name
from ._torch import torch

_REQUIRED = ("ecg", "label")
_SPLITS = ("train", "val", "test")


def _import_xarray():
    import xarray as xr
    return xr


_REGISTRY: dict[tuple, object] = {}


def _handle(path: Path):
    """This process's xarray handle on ``path`` (opened on first use, then reused).

    The key includes the file's inode and modification time, so a file replaced on disk
    (regenerated, renamed into place) is opened afresh instead of read through a stale handle.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise DataFormatError(f"dataset file {str(path)!r} does not exist") from None
    key = (os.getpid(), str(Path(path).resolve()), st.st_ino, st.st_mtime_ns)
    ds = _REGISTRY.get(key)
    if ds is None:
        ds = _open(path)
        _REGISTRY[key] = ds
    return ds


def close_files() -> None:
    """Close every dataset file this process opened through :class:`ShirtECGDataset`."""
    pid = os.getpid()
    for key in [k for k in _REGISTRY if k[0] == pid]:
        _REGISTRY.pop(key).close()


def _open(path: Path):
    xr = _import_xarray()
    try:
        ds = xr.open_dataset(path, engine="netcdf4", cache=False)
    except FileNotFoundError:
        raise DataFormatError(f"dataset file {str(path)!r} does not exist") from None
    except OSError as exc:
        raise DataFormatError(f"cannot open dataset file {str(path)!r}: {exc}") from exc
    from ..dataset.schema import decode_cf

    return decode_cf(ds)  # the on-disk CF form (lead_name, elapsed_time...) back to lead, time


def _shard_paths(directory: Path) -> list[Path]:
    """Shards of a directory dataset, in the manifest's order when it lists them."""
    manifest = directory / "manifest.json"
    listed: list[Path] = []
    if manifest.is_file():
        try:
            meta = json.loads(manifest.read_text())
        except json.JSONDecodeError as exc:
            raise DataFormatError(f"manifest {str(manifest)!r} is not valid JSON: {exc}") from exc
        shards = meta.get("shards", []) if isinstance(meta, dict) else meta
        if isinstance(shards, dict):        # cardiosim.dataset: {name: {"sha256": ...}}
            shards = sorted(shards)
        expected = meta.get("n_shards") if isinstance(meta, dict) else None
        if expected is not None and len(shards) != expected:
            raise DataFormatError(f"dataset {str(directory)!r} is incomplete: {len(shards)} of {expected} "
                                  f"shards finished")
        for item in shards:
            name = item if isinstance(item, str) else next(
                (item[k] for k in ("path", "file", "name", "filename") if k in item), None)
            if name is None:
                raise DataFormatError(f"manifest {str(manifest)!r}: shard entry {item!r} names no file")
            p = Path(name)
            listed.append(p if p.is_absolute() else directory / p)
        for p in listed:
            if not p.is_file():
                raise DataFormatError(f"manifest {str(manifest)!r} lists shard {str(p)!r}, which does not exist")
    found = sorted(directory.glob("shard-*.nc"))
    if listed:
        return listed
    if not found:
        raise DataFormatError(f"directory {str(directory)!r} holds no shard-*.nc files")
    return found


class ShirtECGDataset(torch.utils.data.Dataset):
    """Records of a cardiosim dataset as torch tensors.

    Parameters
    ----------
    path : str or Path
        A netCDF file, or a directory of ``shard-*.nc`` files (+ ``manifest.json``).
    leads : sequence of str, optional
        Leads to return, in this order (default: all, in file order).
    return_metadata : bool
        Also return a dict of per-record metadata.
    split : {"train", "val", "test"}, optional
        Keep only records whose ``split`` variable equals this value.
    label_dtype : torch.dtype
        dtype of the returned multi-hot label (float32 suits ``BCEWithLogitsLoss``).
    transform : callable, optional
        Applied to the ``ecg`` tensor of every item (cropping, scaling, ...); not to
        ``clean_ecg``, which comes as stored.
    return_clean : bool
        Also return ``clean_ecg`` (Tensor (n_leads, T), mV): the same record without
        electrode noise; the file must hold it (``[output] store_clean = true``).
    return_annotations : bool
        Also return ``annotations``: dict of ``P_onset, P_peak, QRS_onset, R_peak,
        QRS_offset, T_peak, T_offset`` -> LongTensor (n_beats,) of sample indices into
        ``ecg`` (-1: the beat lacks the wave), and ``beat_type`` (list of str).

    Item ``i`` is ``(ecg, label)`` or, when any ``return_*`` is set, ``(ecg, label, metadata)``:

    * ``ecg`` : Tensor, shape (n_leads, T), float32, mV
    * ``label`` : Tensor, shape (n_classes,), ``label_dtype``, multi-hot
    * ``metadata`` : dict with ``source_id`` (str), ``split`` (str), ``heart_rate``
      (float, bpm), ``fold`` and ``variant`` (int), ``displacement`` (Tensor
      (n_electrodes, 3), m), ``snr_db`` (Tensor (n_noise,), dB; NaN for a noise kind
      that was off), ``accelerometer`` (Tensor (3, T), m/s^2), ``record`` (int, index
      within its file), ``file`` (str); keys whose variable the file lacks are omitted.
      With ``return_clean`` / ``return_annotations`` it also holds ``clean_ecg`` /
      ``annotations`` and ``beat_type`` (only those when ``return_metadata`` is False).

    Attributes
    ----------
    leads, classes : tuple of str
    sampling_rate : float, Hz
    attrs : dict
        Global attributes of the first file (``device``, ``recipe``, ``seed``, ...).
    """

    def __init__(self, path, *, leads=None, return_metadata: bool = False, split: str | None = None,
                 label_dtype=torch.float32, transform=None, return_clean: bool = False,
                 return_annotations: bool = False):
        self.path = Path(path)
        if self.path.is_dir():
            self.files = _shard_paths(self.path)
        elif self.path.is_file():
            self.files = [self.path]
        else:
            raise DataFormatError(f"dataset path {str(self.path)!r} does not exist")
        if split is not None and split not in _SPLITS:
            raise ConfigError(f"unknown split {split!r}; expected one of {_SPLITS}")
        self.return_metadata = bool(return_metadata)
        self.return_clean = bool(return_clean)
        self.return_annotations = bool(return_annotations)
        self.label_dtype = label_dtype
        self.split = split
        self.transform = transform

        index_file, index_record = [], []
        file_leads = classes = None
        for k, f in enumerate(self.files):
            ds = _handle(f)
            needed = _REQUIRED + (("clean_ecg",) if return_clean else ()) + \
                (("beat_r_peak", "beat_type") if return_annotations else ())
            for name in needed:
                if name not in ds.variables:
                    hint = " (generate it with [output] store_clean = true)" if name == "clean_ecg" else ""
                    raise DataFormatError(f"dataset file {str(f)!r} has no variable {name!r}{hint}")
            these_leads = tuple(str(x) for x in ds["lead"].values)
            these_classes = tuple(str(x) for x in ds["class"].values) if "class" in ds.coords else ()
            if file_leads is None:
                file_leads, classes = these_leads, these_classes
                self.attrs = dict(ds.attrs)
                if "sampling_rate" not in ds.attrs:
                    raise DataFormatError(f"dataset file {str(f)!r} has no 'sampling_rate' attribute")
                self.sampling_rate = float(ds.attrs["sampling_rate"])
            elif these_leads != file_leads or these_classes != classes:
                raise DataFormatError(f"shard {str(f)!r} has leads {these_leads} / classes {these_classes}, "
                                      f"the first shard has {file_leads} / {classes}")
            n = ds.sizes["record"]
            keep = np.arange(n)
            if split is not None:
                if "split" not in ds.variables:
                    raise DataFormatError(f"split={split!r} requested but {str(f)!r} has no 'split' variable")
                keep = keep[np.asarray(ds["split"].values).astype(str) == split]
            index_file.append(np.full(len(keep), k, dtype=np.int64))
            index_record.append(keep.astype(np.int64))
        self._file_of = np.concatenate(index_file)
        self._record_of = np.concatenate(index_record)
        self.classes = classes

        if leads is None:
            self.leads = file_leads
            self._lead_idx = None
        else:
            wanted = []
            for name in leads:
                canon = name if name in file_leads else _try_normalize(name)
                if canon not in file_leads:
                    raise LeadError(f"lead {name!r} is not in dataset {str(self.path)!r}; it has {file_leads}")
                wanted.append(canon)
            self.leads = tuple(wanted)
            self._lead_idx = [file_leads.index(x) for x in wanted]

    def __len__(self) -> int:
        return len(self._record_of)

    def __getitem__(self, i: int):
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"record {i} out of range for a dataset of {n} records")
        i = int(i) % n
        k, r = int(self._file_of[i]), int(self._record_of[i])
        ds = _handle(self.files[k])
        ecg_var = ds["ecg"].isel(record=r)
        if self._lead_idx is not None:
            ecg_var = ecg_var.isel(lead=self._lead_idx)
        ecg = torch.from_numpy(np.ascontiguousarray(ecg_var.values, dtype=np.float32))
        if self.transform is not None:
            ecg = self.transform(ecg)
        label = torch.from_numpy(np.asarray(ds["label"].isel(record=r).values)).to(self.label_dtype)
        if not (self.return_metadata or self.return_clean or self.return_annotations):
            return ecg, label
        extra = {}
        if self.return_clean:
            clean = ds["clean_ecg"].isel(record=r)
            if self._lead_idx is not None:
                clean = clean.isel(lead=self._lead_idx)
            extra["clean_ecg"] = torch.from_numpy(np.ascontiguousarray(clean.values, dtype=np.float32))
        if self.return_annotations:
            extra.update(_annotations(ds, r))
        if not self.return_metadata:
            return ecg, label, extra
        meta = {"record": r, "file": str(self.files[k]), **extra}
        for name in ("source_id", "split"):
            if name in ds.variables:
                meta[name] = str(ds[name].isel(record=r).values)
        if "heart_rate" in ds.variables:
            meta["heart_rate"] = float(ds["heart_rate"].isel(record=r).values)
        for name in ("fold", "variant"):
            if name in ds.variables:
                meta[name] = int(ds[name].isel(record=r).values)
        for name in ("displacement", "snr_db", "accelerometer"):
            if name in ds.variables:
                meta[name] = torch.from_numpy(np.asarray(ds[name].isel(record=r).values, dtype=np.float32))
        return ecg, label, meta


def _annotations(ds, r: int) -> dict:
    """Ground-truth beats of record ``r``: the annotated beats only (``beat_type`` not empty)."""
    from ..dataset.schema import ANNOTATION_KEYS, annotation_variable

    types = np.asarray(ds["beat_type"].isel(record=r).values).astype(str)
    n = int((types != "").sum())
    ann = {}
    for key in ANNOTATION_KEYS:
        var = annotation_variable(key)
        if var in ds.variables:
            ann[key] = torch.from_numpy(np.asarray(ds[var].isel(record=r).values[:n], dtype=np.int64))
    return {"annotations": ann, "beat_type": [str(t) for t in types[:n]]}


def _try_normalize(name):
    try:
        return normalize_lead_name(name)
    except LeadError:
        return name
