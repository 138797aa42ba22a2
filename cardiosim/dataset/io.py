"""netCDF I/O: atomic writes, sharded outputs with a manifest, lazy opening, summaries.

A dataset on disk is either one netCDF file (``shirt_ecg.nc``) or a directory of shards
``shard-00000.nc, shard-00001.nc, ...`` plus ``manifest.json``. A shard is written to a
temporary name and renamed into place, and is listed in the manifest (with its SHA-256)
only after the rename, so a crash never leaves a partial shard that reads as complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path

import xarray as xr

from ..errors import DataFormatError

MANIFEST = "manifest.json"
SHARD_GLOB = "shard-*.nc"


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.nc"


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def atomic_path(final: Path):
    """Yield a temporary path beside ``final``; rename it onto ``final`` only on success."""
    final = Path(final)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_netcdf(ds: xr.Dataset, path, encoding: dict | None = None) -> Path:
    """Write ``ds`` to ``path`` atomically (temporary file, then rename)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=encoding or {})
    return path


def write_json_atomic(obj, path) -> None:
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=1, sort_keys=True) + "\n")


def read_manifest(directory) -> dict | None:
    path = Path(directory) / MANIFEST
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataFormatError(f"manifest {str(path)!r} is unreadable or corrupt: {exc}") from None


def open_dataset(path, *, verify: bool = False) -> xr.Dataset:
    """Open a cardiosim dataset (one file or a shard directory) lazily as one ``xarray.Dataset``.

    Parameters
    ----------
    path : str or Path
        A ``.nc`` file or a directory written by :func:`cardiosim.dataset.generate`.
    verify : bool
        Check every shard's SHA-256 against the manifest first.

    Raises
    ------
    DataFormatError
        Missing path, corrupt file, or a directory whose shards are incomplete.
    """
    path = Path(path)
    if not path.exists():
        raise DataFormatError(f"no dataset at {str(path)!r}")
    if path.is_file():
        try:
            return xr.open_dataset(path, engine="netcdf4")
        except Exception as exc:  # netCDF4 raises OSError/RuntimeError variants for corrupt files
            raise DataFormatError(f"cannot read {str(path)!r} as netCDF: {exc}") from None
    manifest = read_manifest(path)
    if manifest is None:
        raise DataFormatError(f"{str(path)!r} is a directory without {MANIFEST}; not a cardiosim dataset")
    shards = manifest.get("shards", {})
    if len(shards) != manifest.get("n_shards"):
        raise DataFormatError(f"dataset {str(path)!r} is incomplete: {len(shards)} of {manifest.get('n_shards')} "
                              f"shards finished; rerun the same generate command to resume")
    files = [path / name for name in sorted(shards) if shards[name].get("sha256") is not None]
    if not files:
        raise DataFormatError(f"dataset {str(path)!r} holds no records (every source failed; see {MANIFEST})")
    for f in files:
        if not f.exists():
            raise DataFormatError(f"shard {str(f)!r} listed in the manifest is missing")
        if verify and sha256_file(f) != shards[f.name]["sha256"]:
            raise DataFormatError(f"shard {str(f)!r} does not match its checksum in the manifest")
    try:
        return xr.open_mfdataset(files, engine="netcdf4", combine="nested", concat_dim="record",
                                 data_vars="minimal", coords="minimal", compat="override",
                                 join="override", combine_attrs="override", parallel=False)
    except Exception as exc:
        raise DataFormatError(f"cannot open the shards of {str(path)!r}: {exc}") from None


def summarize(path) -> str:
    """A readable summary of a dataset: records, leads, rate, classes, splits, size."""
    path = Path(path)
    ds = open_dataset(path)
    try:
        size = path.stat().st_size if path.is_file() else sum(f.stat().st_size for f in path.glob(SHARD_GLOB))
        n_shards = 1 if path.is_file() else len(list(path.glob(SHARD_GLOB)))
        failed = 0 if path.is_file() else sum(len(e.get("failed", [])) for e in read_manifest(path)["shards"].values())
        labels = ds["label"].values
        classes = [str(c) for c in ds["class"].values]
        counts = labels.sum(axis=0)
        lines = [
            f"{path}",
            f"  records       {ds.sizes['record']}  ({n_shards} file{'s' if n_shards != 1 else ''}, {size / 1e6:.1f} MB)",
            f"  leads         {', '.join(map(str, ds['lead'].values))}",
            f"  sampling rate {float(ds.attrs['sampling_rate']):g} Hz, {ds.sizes['time']} samples "
            f"({ds.sizes['time'] / float(ds.attrs['sampling_rate']):g} s)",
            f"  device        {ds.attrs.get('device')}",
            f"  seed          {ds.attrs.get('seed')}   cardiosim {ds.attrs.get('cardiosim_version')}",
            "  classes       " + ", ".join(f"{c} {int(n)}" for c, n in zip(classes, counts)),
        ]
        if "split" in ds:
            splits, n = _value_counts(ds["split"].values)
            lines.append("  splits        " + ", ".join(f"{s} {k}" for s, k in zip(splits, n)))
        hr = ds["heart_rate"].values
        lines.append(f"  heart rate    {float(hr.min()):.0f}-{float(hr.max()):.0f} bpm (median {float(_median(hr)):.0f})")
        lines.append(f"  noise kinds   {', '.join(map(str, ds['noise'].values)) or 'none'}")
        if failed:
            lines.append(f"  skipped       {failed} records whose source failed (listed in {MANIFEST})")
        return "\n".join(lines)
    finally:
        ds.close()


def _value_counts(values):
    import numpy as np

    uniq, counts = np.unique(np.asarray(values, dtype=str), return_counts=True)
    return list(uniq), list(counts)


def _median(x):
    import numpy as np

    return np.nanmedian(x) if len(x) else float("nan")
