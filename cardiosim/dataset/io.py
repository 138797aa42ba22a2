"""netCDF I/O: atomic writes, sharded outputs with a manifest, lazy opening, summaries.

A dataset on disk is either one netCDF file (``shirt_ecg.nc``) or a directory of shards
``shard-00000.nc, shard-00001.nc, ...`` plus ``manifest.json``. A shard is written to a
temporary name and renamed into place, and is listed in the manifest (with its SHA-256)
only after the rename, so a crash never leaves a partial shard that reads as complete.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import netCDF4
import numpy as np
import xarray as xr
from xarray.backends import BackendArray
from xarray.core import indexing

from .._atomic import atomic_path  # noqa: F401  (re-exported: the one atomic-write helper)
from ..errors import DataFormatError
from .schema import _INT_FILL, decode_cf, encode_cf

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


def write_netcdf(ds: xr.Dataset, path, encoding: dict | None = None) -> Path:
    """Write ``ds`` to ``path`` atomically (temporary file, then rename).

    The file is what ``Dataset.to_netcdf(engine="netcdf4", format="NETCDF4")`` writes, with
    every variable defined before any data is written (:func:`_to_netcdf_defined_first`).
    """
    path = Path(path)
    plan = _direct_plan_cf(ds, encoding or {})
    with atomic_path(path) as tmp:
        if plan is not None:
            _write_direct(plan, tmp)
        else:
            out = encode_cf(ds)
            enc = _encoded_names(encoding or {}, out)
            plan = _direct_plan(out, enc)
            if plan is not None:
                _write_direct(plan, tmp)
            elif not _to_netcdf_defined_first(out, tmp, enc):
                out.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=enc)
    return path


# --- the direct netCDF4 writer -------------------------------------------------------------
#
# xarray's to_netcdf spends about as much CPU on a shard's ~130 small variables (CF encoding
# each one, a lock per write, its file manager) as netCDF-C spends compressing the signals,
# and its first write imports dask.distributed to choose a lock (~1.2 s per process). For
# the datasets cardiosim writes (numbers and str, the encodings of schema.encoding_for) the
# file is written here with netCDF4 directly, reproducing what xarray 2024-2026 writes: the
# same dimensions, variables (in the same order), createVariable arguments, attributes (in
# the same order, ``coordinates`` included) and stored values (int16 packing with xarray's
# arithmetic). Anything else (other encodings, dtypes, attribute types, lazy arrays) goes
# through xarray (``_direct_plan`` returns None). tests/test_storage.py compares both files
# variable by variable, raw bytes and attributes.

_DIRECT_ENCODING_KEYS = {"zlib", "zstd", "compression", "complevel", "shuffle", "blosc_shuffle", "chunksizes",
                         "_FillValue", "dtype", "scale_factor", "contiguous"}
_DIRECT_DTYPES = {np.dtype(t) for t in ("f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8")}


def _attr_ok(v) -> bool:
    if isinstance(v, (str, int, float, np.number)) and not isinstance(v, (bool, np.bool_)):
        return True
    return isinstance(v, np.ndarray) and v.dtype in _DIRECT_DTYPES and v.ndim == 1


def _coordinates_attrs(dims_of: dict, coord_names: set) -> tuple[dict, list]:
    """The ``coordinates`` attribute xarray writes on each variable (non-dimension coordinates
    whose dimensions are a subset of the variable's) and the global ones left over.
    ``dims_of``: variable name -> its dimensions."""
    per_var: dict = {}
    for c in coord_names:
        target = set(dims_of[c])
        for k, dims in dims_of.items():
            if k not in coord_names and k not in dims and target <= set(dims):
                per_var.setdefault(k, set()).add(c)
    written = set()
    texts = {}
    for k, cs in per_var.items():
        texts[k] = " ".join(sorted(map(str, cs)))
        written.update(cs)
    return texts, sorted(map(str, coord_names - written))


def _direct_plan(out: xr.Dataset, enc: dict):
    """What :func:`_write_direct` writes for ``out`` with ``enc`` (on-disk names), or None when
    this dataset needs xarray's general writer."""
    variables = out.variables
    return _plan_of([(name, var.dims, var) for name, var in variables.items()], out.attrs,
                    set(out.coords) - set(out.dims), enc)


def _direct_plan_cf(ds: xr.Dataset, encoding: dict):
    """``_direct_plan(encode_cf(ds), _encoded_names(encoding, encode_cf(ds)))`` without building
    the renamed dataset (two renames copy every variable and rebuild the indexes: ~4 ms a
    64-record block): the same names, dimensions, order and encodings, worked out from
    ``ds``. None when the direct writer does not take the dataset, or when a renamed name
    would collide with another (the caller then goes through :func:`encode_cf`, which
    says what is wrong)."""
    from .schema import _STRING_AXES, ELAPSED_TIME

    variables = ds.variables
    ds_dims = ds.dims
    coords = set(ds.coords)
    new_name = {d: f"{d}_name" for d in _STRING_AXES if d in coords and d in ds_dims}
    new_dim = {}
    if "time" in ds_dims:
        new_dim["time"] = ELAPSED_TIME
        if "time" in variables:
            new_name["time"] = ELAPSED_TIME
    disk = [new_name.get(k, k) for k in variables]
    if len(set(disk)) != len(disk) or ELAPSED_TIME in variables or ELAPSED_TIME in ds_dims:
        return None
    items = []
    for (name, var), name_on_disk in zip(variables.items(), disk):
        dims = var.dims
        if new_dim and "time" in dims:
            dims = tuple(new_dim.get(d, d) for d in dims)
        items.append((name_on_disk, dims, var))
    dims_on_disk = {new_dim.get(d, d) for d in ds_dims}
    coord_names = {new_name.get(c, c) for c in coords} - dims_on_disk
    try:
        enc = _encoded_names(encoding, None, set(disk), new_name)
    except DataFormatError:
        return None
    return _plan_of(items, ds.attrs, coord_names, enc)


def _plan_of(items: list, global_attrs: dict, coord_names: set, enc: dict):
    """:func:`_direct_plan` of ``(name on disk, dims on disk, Variable)`` items (in the file's
    order), non-dimension coordinates ``coord_names`` and encodings ``enc`` (on-disk names)."""
    # a NumPy array is never chunked; anything else is asked (Variable.chunks: a Protocol
    # isinstance check, ~20 us a variable)
    if any(type(v._data) is not np.ndarray and v.chunks is not None for _, _, v in items):
        return None
    for k, v in global_attrs.items():
        if not isinstance(k, str) or not _attr_ok(v) or k == "coordinates":
            return None
    coord_text, global_coords = _coordinates_attrs({name: dims for name, dims, _ in items}, coord_names)
    plan = []
    for name, dims, var in items:
        if not isinstance(name, str) or "/" in name:
            return None
        e = enc.get(name, var.encoding)
        if set(e) - _DIRECT_ENCODING_KEYS:
            return None
        attrs = dict(var.attrs)
        if any(k in attrs for k in ("_FillValue", "coordinates", "scale_factor", "add_offset", "missing_value",
                                    "units" if np.issubdtype(var.dtype, np.datetime64) else "\0")):
            return None
        if not all(isinstance(k, str) and _attr_ok(v) for k, v in attrs.items()):
            return None
        if name in coord_text:
            attrs["coordinates"] = coord_text[name]
        dt = var.dtype
        pack = None
        if dt == object:
            if e.get("dtype") not in (None, str) or "_FillValue" in e or "scale_factor" in e:
                return None
            flat = var.values.ravel()
            if flat.size and set(map(type, flat)) != {str}:
                return None
            datatype, fill = str, None
        elif dt in _DIRECT_DTYPES:
            datatype = dt
            if "scale_factor" in e:
                # int16 packing as xarray does it: float32 / float32 scale, NaN -> fill, rint, cast
                sf, fill = e["scale_factor"], e.get("_FillValue")
                if (type(sf) is not np.float32 or dt != np.float32 or np.dtype(e.get("dtype", dt)) != np.int16
                        or fill is None):
                    return None
                attrs["scale_factor"] = sf
                datatype, pack = np.dtype(np.int16), (sf, np.int16(fill))
            elif "dtype" in e and np.dtype(e["dtype"]) != dt:
                return None
            if "_FillValue" in e:
                fill = e["_FillValue"]
            elif dt.kind == "f":
                fill = dt.type(np.nan)  # xarray's default fill value of float variables
            else:
                fill = None
        else:
            return None
        kwargs = dict(zlib=False, complevel=4, shuffle=True, fletcher32=False, contiguous=False, chunksizes=None,
                      endian="native", least_significant_digit=None)
        e = {k: v for k, v in e.items() if k not in ("_FillValue", "dtype", "scale_factor")}
        compression = None
        if e.pop("zlib", False):
            compression = "zlib"
        if e.pop("zstd", False):
            compression = "zstd"
        if compression is not None and e.get("compression") is None:
            e["compression"] = compression
        kwargs.update(e)
        plan.append((name, dims, var, datatype, fill, kwargs, attrs, pack))
    gattrs = dict(global_attrs)
    if global_coords:
        gattrs["coordinates"] = " ".join(global_coords)
    return plan, gattrs


@functools.lru_cache(maxsize=1)
def _nc_def_var_deflate():
    """netCDF-C's ``nc_def_var_deflate`` as the loaded netCDF4 module links it (ctypes), or None.

    netCDF4-python (1.7.5) drops ``shuffle=True`` when the compression is ``zstd`` (it sets the
    byte shuffle only together with deflate). A default 64-record file is 1.5 % smaller with it
    (the float parameters gain; the int16 ``ecg``, whose low byte is noise, compresses the same;
    a smooth int16 signal gains ~27 %). Calling the C library's ``nc_def_var_deflate(ncid, varid, shuffle=1, deflate=0, 0)``
    after ``createVariable`` adds it, ahead of zstd in the HDF5 filter pipeline (readers need
    nothing new: shuffle is built into HDF5). Resolved through the extension module, so it is the
    very library that wrote the file, wherever the wheel or conda put it."""
    import ctypes

    try:
        fn = ctypes.CDLL(netCDF4._netCDF4.__file__).nc_def_var_deflate
    except (OSError, AttributeError):
        return None
    fn.argtypes = (ctypes.c_int,) * 5
    fn.restype = ctypes.c_int
    return fn


def _add_shuffle(nc, v) -> None:
    """Byte shuffle on variable ``v`` of the open dataset ``nc`` where netCDF4 left it off
    (:func:`_nc_def_var_deflate`; where the C call is missing or refuses, the file is still
    correct, only larger)."""
    fn = _nc_def_var_deflate()
    if fn is not None and not v.filters().get("shuffle"):
        fn(nc._grpid, v._varid, 1, 0, 0)


def _write_direct(plan, path) -> None:
    from .storage import pack_int16_like_xarray

    variables, gattrs = plan
    dims: dict = {}
    for _, var_dims, var, *_ in variables:
        dims.update(zip(var_dims, var.shape))
    nc = netCDF4.Dataset(str(path), mode="w", format="NETCDF4")
    try:
        nc.set_auto_maskandscale(False)
        for k, v in gattrs.items():
            nc.setncattr(k, v)
        for d, n in dims.items():
            nc.createDimension(d, n)
        targets = []
        for name, var_dims, var, datatype, fill, kwargs, attrs, pack in variables:
            v = nc.createVariable(name, datatype, var_dims, fill_value=fill, **kwargs)
            if kwargs.get("shuffle") and kwargs.get("compression") == "zstd":
                _add_shuffle(nc, v)
            v.set_auto_maskandscale(False)
            if attrs:
                v.setncatts(attrs)
            targets.append(v)
        for (name, var_dims, var, datatype, fill, kwargs, attrs, pack), v in zip(variables, targets):
            data = var.values
            if pack is not None:
                data = pack_int16_like_xarray(data, *pack)
            _put_whole(v, data)
    finally:
        nc.close()


def _put_whole(v, data: np.ndarray) -> None:
    """``v[...] = data`` for a netCDF4 variable ``v`` with auto mask and scale off.

    Netcdf4's ``__setitem__`` works out start, count and stride from the index in Python
    (``_StartCountStride``: ~0.1 ms a call, 0.2 ms a record over a block's ~140 variables)
    and then calls ``Variable._put(data, start, count, stride)``; for the whole variable that
    is ``start = 0, count = shape, stride = 1``: the same ``nc_put_vara`` call, so the same
    file. Anything else (a scalar variable, a shape to broadcast, an older netCDF4 without
    ``_put``) goes through ``__setitem__``."""
    shape = v.shape
    put = getattr(v, "_put", None)
    if put is None or not shape or not isinstance(data, np.ndarray) or data.shape != shape:
        v[...] = data
        return
    if data.size == 0:   # __setitem__ writes nothing either
        return
    nd = len(shape)
    put(data, [0] * nd, list(shape), [1] * nd)


def _deferred_writer_class():
    """An xarray ``ArrayWriter`` that holds in-memory arrays until ``sync()`` (None if this
    xarray lacks the internals it needs)."""
    try:
        from xarray.backends.common import ArrayWriter
    except ImportError:  # pragma: no cover - other xarray layouts fall back to to_netcdf
        return None

    class _DeferredWriter(ArrayWriter):
        __slots__ = ()

        def add(self, source, target, region=None):
            self.sources.append(source)
            self.targets.append(target)
            self.regions.append(region)

        def sync(self, compute=True, chunkmanager_store_kwargs=None):
            for source, target, region in zip(self.sources, self.targets, self.regions):
                target[region if region else ...] = np.asarray(source)
            self.sources, self.targets, self.regions = [], [], []

    return _DeferredWriter


_DEFERRED_WRITER = _deferred_writer_class()


def _to_netcdf_defined_first(out: xr.Dataset, path, encoding: dict) -> bool:
    """Write ``out`` as ``to_netcdf`` would, but define every variable before writing data.

    xarray's writer stores each in-memory variable right after defining it, so netCDF-C
    leaves and re-enters define mode once per variable (a metadata flush each time): with
    the ~120 per-record parameter variables of a block that was 40 % of a shard's write
    (1.9 vs 1.1 s for 64 default records). Same variables, attributes, encodings and values
    (``tests/test_storage.py`` compares the two files). Returns False, having written
    nothing, if this xarray lacks the internals used (the caller then uses ``to_netcdf``).
    """
    # Variable.chunks looks at the wrapped array without loading a lazily opened variable
    if _DEFERRED_WRITER is None or any(v.chunks is not None for v in out.variables.values()):
        return False
    try:
        from xarray.backends import NetCDF4DataStore
        from xarray.backends.writers import _validate_attrs, _validate_dataset_names, dump_to_store
    except ImportError:  # pragma: no cover - other xarray layouts fall back to to_netcdf
        return False
    _validate_dataset_names(out)
    _validate_attrs(out, "netcdf4")
    store = NetCDF4DataStore.open(str(path), mode="w", format="NETCDF4")
    try:
        writer = _DEFERRED_WRITER()
        dump_to_store(out, store, writer, encoding=encoding)
        writer.sync()
    finally:
        store.close()
    return True


def _encoded_names(encoding: dict, out: xr.Dataset | None, names=None, renamed=None) -> dict:
    """``encoding`` keyed by the on-disk names :func:`encode_cf` gave the variables (those of
    ``out``, or the set ``names`` with ``renamed``: in-memory -> on-disk name)."""
    from . import schema

    names = out.variables if names is None else names
    if renamed is None:
        renamed = {"time": getattr(schema, "ELAPSED_TIME", "time")}
    enc = {}
    for name, e in encoding.items():
        for disk in (name, f"{name}_name", renamed.get(name)):
            if disk in names:
                enc[disk] = e
                break
        else:
            raise DataFormatError(f"encoding given for {name!r}, which the dataset does not hold")
    return enc


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

    Needs only the core dependencies (no dask). A shard directory becomes one dataset
    whose per-record variables are lazy: indexing them reads only the shards (and, with
    one chunk per record, only the records) asked for, through one handle per shard opened
    on first use -- a random record costs about as much as reading it with netCDF4 itself.
    Use :class:`RecordReader` for the fastest per-record access (training loops).

    Parameters
    ----------
    path : str or Path
        A ``.nc`` file or a directory written by :func:`cardiosim.dataset.generate`.
    verify : bool
        Check every shard's SHA-256 against the manifest first. Without it, every shard's
        size (against the manifest) and HDF5 signature are still checked: cheap, and it
        catches truncated and overwritten files.

    Raises
    ------
    DataFormatError
        Missing path, corrupt file (named), or a directory whose shards are incomplete.
    """
    path = Path(path)
    if not path.exists():
        raise DataFormatError(f"no dataset at {str(path)!r}")
    if path.is_file():
        check_file(path)
        return decode_cf(_open_file(path))
    files, indices = _shard_files(path, verify=verify)
    shards = _ShardSet(files, [len(ix) for ix in indices])
    try:
        return decode_cf(_combine_shards(shards, np.concatenate(indices)))
    except DataFormatError:
        shards.close()
        raise
    except Exception as exc:
        shards.close()
        raise DataFormatError(f"cannot open the shards of {str(path)!r}: {exc}") from None


_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def check_file(path, *, size: int | None = None, sha256: str | None = None) -> None:
    """Cheap integrity check of one netCDF-4 file: its size (when known) and its HDF5
    signature; its SHA-256 too when ``sha256`` is given.

    Raises
    ------
    DataFormatError
        Naming the file and what is wrong with it.
    """
    path = Path(path)
    try:
        actual = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(len(_HDF5_SIGNATURE))
    except FileNotFoundError:
        raise DataFormatError(f"file {str(path)!r} is missing") from None
    except OSError as exc:
        raise DataFormatError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    if size is not None and actual != size:
        raise DataFormatError(f"file {str(path)!r} is corrupt: {actual} bytes, the manifest says {size} "
                              f"(truncated or overwritten); regenerate it (delete it and rerun the same generate "
                              f"command)")
    if head != _HDF5_SIGNATURE:
        raise DataFormatError(f"file {str(path)!r} is corrupt: not a netCDF-4/HDF5 file (bad signature)")
    if sha256 is not None and sha256_file(path) != sha256:
        raise DataFormatError(f"file {str(path)!r} does not match its checksum in the manifest (corrupt); "
                              f"delete it and rerun the same generate command")


def _open_file(path: Path) -> xr.Dataset:
    try:
        return xr.open_dataset(path, engine="netcdf4", cache=False)
    except Exception as exc:  # netCDF4 raises OSError/RuntimeError variants for corrupt files
        raise DataFormatError(f"cannot read {str(path)!r} as netCDF: {exc}") from None


def _shard_files(path: Path, *, verify: bool) -> tuple[list, list]:
    """The finished shard files of a directory dataset, checked, and each one's record indices."""
    manifest = read_manifest(path)
    if manifest is None:
        raise DataFormatError(f"{str(path)!r} is a directory without {MANIFEST}; not a cardiosim dataset")
    shards = manifest.get("shards", {})
    if len(shards) != manifest.get("n_shards"):
        raise DataFormatError(f"dataset {str(path)!r} is incomplete: {len(shards)} of {manifest.get('n_shards')} "
                              f"shards finished; rerun the same generate command to resume")
    files, indices = [], []
    for name in sorted(shards):
        info = shards[name]
        if info.get("sha256") is None:
            continue  # every record of this block failed; nothing was written
        f = path / name
        if not f.exists():
            raise DataFormatError(f"shard {str(f)!r} listed in the manifest is missing")
        check_file(f, size=info.get("bytes"), sha256=info["sha256"] if verify else None)
        failed = {int(e["record"]) for e in info.get("failed", [])}
        ix = np.array([i for i in range(int(info["start"]), int(info["stop"])) if i not in failed], dtype=np.int64)
        if len(ix) != int(info.get("n_records", len(ix))):
            raise DataFormatError(f"manifest {str(path / MANIFEST)!r}: shard {name} lists {info.get('n_records')} "
                                  f"records but its range and failures give {len(ix)}")
        files.append(f)
        indices.append(ix)
    if not files:
        raise DataFormatError(f"dataset {str(path)!r} holds no records (every source failed; see {MANIFEST})")
    return files, indices


class _ShardSet:
    """Record position -> (shard, row), and one lazily opened xarray handle per shard.

    Handles stay open until :meth:`close` (closing and reopening netCDF4 handles of files
    whose string variables were read crashes some netCDF-C builds; xarray's file cache
    still bounds the number of OS-level open files).
    """

    def __init__(self, files: list, counts: list):
        self.files = list(files)
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._handles: dict = {}

    @property
    def n_records(self) -> int:
        return int(self.offsets[-1])

    def handle(self, k: int) -> xr.Dataset:
        ds = self._handles.get(k)
        if ds is None:
            ds = self._handles[k] = _open_file(self.files[k])
        return ds

    def locate(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(shard, row)`` arrays of record positions ``0 .. n_records-1``."""
        k = np.searchsorted(self.offsets, positions, side="right") - 1
        return k, positions - self.offsets[k]

    def names(self, k: int) -> set:
        """On-disk variable names of shard ``k`` (read from its header with netCDF4, cheaply)."""
        f = self.files[k]
        try:
            with netCDF4.Dataset(f) as nc:
                return set(nc.variables)
        except OSError as exc:
            raise DataFormatError(f"cannot read {str(f)!r} as netCDF: {exc}") from None

    def read(self, name: str, k: int, key: tuple, missing=None) -> np.ndarray:
        """``name[key]`` of shard ``k`` as a NumPy array (CF-decoded), naming the file on error.

        A shard without ``name`` (per-record parameters a shard's records never drew)
        gives ``missing(shape)`` when given."""
        try:
            ds = self.handle(k)
            if name not in ds.variables and missing is not None:
                return missing(ds, key)
            return np.asarray(ds.variables[name][key].values)
        except DataFormatError:
            raise
        except Exception as exc:
            raise DataFormatError(f"cannot read {name!r} from shard {str(self.files[k])!r} "
                                  f"(corrupt file?): {type(exc).__name__}: {exc}") from None

    def close(self) -> None:
        for ds in self._handles.values():
            ds.close()
        self._handles.clear()


class _ShardedArray(BackendArray):
    """One per-record variable of a shard directory, indexed lazily (outer indexing)."""

    def __init__(self, shards: _ShardSet, name: str, shape: tuple, dtype, int_fill=None):
        self.shards, self.name, self.shape, self.dtype = shards, name, shape, np.dtype(dtype)
        self.int_fill = int_fill  # an integer variable xarray decoded to float with NaN: give it back

    def __getitem__(self, key):
        return indexing.explicit_indexing_adapter(key, self.shape, indexing.IndexingSupport.OUTER, self._getitem)

    def _getitem(self, key: tuple) -> np.ndarray:
        rows = np.arange(self.shape[0])[key[0]]
        scalar = np.ndim(rows) == 0
        rows = np.atleast_1d(rows)
        rest = tuple(key[1:])
        k, local = self.shards.locate(rows)
        pieces = []
        # Consecutive runs of one shard are read with one call each (a slice when contiguous).
        cuts = np.flatnonzero(np.diff(k)) + 1
        for run_k, run_rows in zip(np.split(k, cuts), np.split(local, cuts)):
            if not len(run_k):
                continue
            sel = slice(int(run_rows[0]), int(run_rows[-1]) + 1) if np.all(np.diff(run_rows) == 1) else run_rows
            pieces.append(self.shards.read(self.name, int(run_k[0]), (sel,) + rest, self._missing))
        if not pieces:
            return np.empty((0,) + _indexed_shape(self.shape[1:], rest), dtype=self.dtype)
        out = np.concatenate(pieces, axis=0) if len(pieces) > 1 else pieces[0]
        if self.int_fill is not None:
            out = np.where(np.isnan(out), self.int_fill, out).astype(self.dtype)
        return out[0] if scalar else out


    def _missing(self, ds, key) -> np.ndarray:
        """Fill for a shard that lacks this variable: NaN, the integer fill, or ''."""
        rows = np.arange(ds.sizes["record"])[key[0]]
        shape = np.shape(rows) + _indexed_shape(self.shape[1:], key[1:])
        if self.dtype.kind == "f":
            return np.full(shape, np.nan, dtype=self.dtype)
        if self.int_fill is not None:
            return np.full(shape, np.nan)  # turned into the integer fill by the caller
        if self.dtype.kind in "OUS":   # xarray decodes netCDF strings as object or fixed-width str
            return np.full(shape, "", dtype=self.dtype)
        raise DataFormatError(f"shard {str(ds.encoding.get('source', '?'))!r} lacks variable {self.name!r}")


def _indexed_shape(shape: tuple, key: tuple) -> tuple:
    out = []
    for n, k in zip(shape, key):
        if isinstance(k, slice):
            out.append(len(range(*k.indices(n))))
        elif np.ndim(k):
            out.append(len(k))
    return tuple(out) + tuple(shape[len(key):])


def _combine_shards(shards: _ShardSet, record_index: np.ndarray) -> xr.Dataset:
    """One lazy dataset over all shards: per-record variables read on demand from the shard
    holding each record. The layout is the first shard's, plus variables that only later
    shards hold (per-record parameters drawn by none of the first shard's records), found
    from the shards' headers; records of shards without such a variable read as missing."""
    first = shards.handle(0)
    n = shards.n_records
    variables, coord_names = {}, set(first.coords)
    layout = dict(first.variables)
    known = set(layout)
    for k in range(1, len(shards.files)):
        extra = shards.names(k) - known
        if extra:
            other = shards.handle(k)
            for name in sorted(extra):
                if name in other.variables:  # netCDF dimension-only names are not variables here
                    layout[name] = other[name].variable
            known |= extra
    for name, var in layout.items():
        if name == "record":
            continue
        if "record" not in var.dims:
            variables[name] = var.load().copy()
            continue
        if var.dims[0] != "record":
            raise DataFormatError(f"shard {str(shards.files[0])!r}: variable {name!r} has dims {var.dims}; "
                                  f"'record' must come first")
        shape = (n,) + var.shape[1:]
        dtype, int_fill = var.dtype, None
        enc = var.encoding
        # Integers with a -1 fill come back as integers (schema.decode_cf's rule, applied per
        # read here so that opening does not read these variables from every shard).
        if (enc.get("dtype") is not None and np.dtype(enc["dtype"]).kind == "i" and var.dtype.kind == "f"
                and enc.get("_FillValue") == _INT_FILL and "scale_factor" not in enc):
            dtype, int_fill = np.dtype(enc["dtype"]), _INT_FILL
        lazy = indexing.LazilyIndexedArray(_ShardedArray(shards, name, shape, dtype, int_fill))
        variables[name] = xr.Variable(var.dims, lazy, attrs=dict(var.attrs), encoding=dict(var.encoding))
    rec = first["record"].variable
    variables["record"] = xr.Variable(("record",), record_index, attrs=dict(rec.attrs), encoding=dict(rec.encoding))
    ds = xr.Dataset({k: v for k, v in variables.items() if k not in coord_names},
                    coords={k: v for k, v in variables.items() if k in coord_names or k == "record"},
                    attrs=dict(first.attrs))
    ds.set_close(shards.close)
    return ds


class RecordReader:
    """Fast random access to single records of a dataset (a file or a shard directory).

    For shuffling training loops: ``reader[i]`` returns record position ``i``'s variables
    (default ``ecg`` and ``label``) as NumPy arrays, reading one chunk per variable from
    the shard that holds it through a handle opened once. Thread-compatible, not
    thread-safe; open one reader per DataLoader worker (handles are per process).

    Parameters
    ----------
    path : str or Path
    variables : sequence of str
        Per-record variables to return.
    """

    def __init__(self, path, variables=("ecg", "label")):
        path = Path(path)
        if not path.exists():
            raise DataFormatError(f"no dataset at {str(path)!r}")
        self.path, self.variables = path, tuple(variables)
        self._nc: dict = {}  # shard -> netCDF4.Dataset, opened on first use, kept open
        self._vars: dict = {}
        if path.is_file():
            check_file(path)
            n = len(self._handle_of(path, 0).dimensions["record"])
            self._index = _ShardSet([path], [n])
            self.record = None
        else:
            files, indices = _shard_files(path, verify=False)
            self._index = _ShardSet(files, [len(ix) for ix in indices])
            self.record = np.concatenate(indices)  # dataset record index of each position

    def __len__(self) -> int:
        return self._index.n_records

    def _handle_of(self, f: Path, k: int):
        nc = self._nc.get(k)
        if nc is None:
            try:
                nc = netCDF4.Dataset(f)
            except OSError as exc:
                raise DataFormatError(f"cannot read {str(f)!r} as netCDF: {exc}") from None
            nc.set_always_mask(False)  # plain arrays; CF scale_factor is still applied
            self._nc[k] = nc
        return nc

    def _variable(self, k: int, name: str):
        var = self._vars.get((k, name))
        if var is None:
            f = self._index.files[k]
            try:
                var = self._vars[(k, name)] = self._handle_of(f, k).variables[name]
            except KeyError:
                raise DataFormatError(f"{str(f)!r} has no variable {name!r}") from None
        return var

    def __getitem__(self, i: int) -> dict:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"record position {i} outside 0..{n - 1}")
        k, row = self._index.locate(np.array([int(i) % n]))
        k, row = int(k[0]), int(row[0])
        out = {}
        for name in self.variables:
            var = self._variable(k, name)
            try:
                # netCDF4 applies scale_factor (int16 * float32 -> float32) as xarray does.
                out[name] = np.asarray(var[row])
            except (OSError, RuntimeError, IndexError) as exc:
                raise DataFormatError(f"cannot read {name!r} of record position {i} from "
                                      f"{str(self._index.files[k])!r} (corrupt file?): {exc}") from None
        return out

    def close(self) -> None:
        self._vars.clear()
        for nc in self._nc.values():
            nc.close()
        self._nc.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


#: ``summarize`` checks SHA-256 checksums by default up to this many bytes (about 0.5 s).
VERIFY_BYTES = 256 * 2**20


def summarize(path, *, verify: bool | None = None) -> str:
    """A readable summary of a dataset: records, leads, rate, classes, splits, size.

    ``verify``: check every shard's SHA-256 (``None``: when the shards total at most
    :data:`VERIFY_BYTES`; sizes and signatures are always checked).
    """
    import numpy as np

    path = Path(path)
    if verify is None:
        verify = path.is_dir() and sum(f.stat().st_size for f in path.glob(SHARD_GLOB)) <= VERIFY_BYTES
    ds = open_dataset(path, verify=verify)
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
        # what shaped the noise, where the dataset stores it: a reader sees at once whether a
        # dataset is wearers at rest or running, on which electrodes, and how readable
        for label, var in (("activities", "param_activity"), ("electrodes", "param_noise_activity_noise_electrode"),
                           ("grades", "artefact_grade"), ("failures", "param_failure")):
            if var in ds and ds[var].dims == ("record",):
                vals = np.asarray(ds[var].values)
                if vals.dtype.kind == "f":
                    vals = vals[np.isfinite(vals)].astype(int)
                vals = vals.astype(str)
                if label == "failures":
                    vals = vals[(vals != "none") & (vals != "")]
                    if not vals.size:
                        continue
                if vals.size:
                    keys, n = _value_counts(vals)
                    sep = ": " if label == "grades" else " "   # artefact grade 1-4: records, "1: 14, 2: 2"
                    lines.append(f"  {label:13s} " + ", ".join(f"{k}{sep}{c}" for k, c in zip(keys, n)))
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
