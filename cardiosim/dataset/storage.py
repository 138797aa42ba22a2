"""Storage encodings: HDF5 compression filters and int16 quantisation of the signals.

Compression (``[output] compression`` in the recipe):

* ``'zstd'`` (default) -- HDF5 byte shuffle + Zstandard level ``complevel``;
* ``'blosc_lz4'`` -- Blosc with LZ4 and its own byte shuffle (fastest to write, larger);
* ``'zlib'`` -- byte shuffle + deflate, readable by every netCDF-4 / HDF5 reader;
* ``'none'``.

zstd and Blosc are HDF5 plugin filters. The netCDF4 wheels on PyPI (1.6.4+) ship them,
so plain ``xarray.open_dataset`` / ``netCDF4.Dataset`` read such files wherever the
filter is present; a netCDF-C library built without them cannot read the ``ecg``
variable (h5py needs ``hdf5plugin``). When the netCDF4 library *writing* the file lacks
the filter, :func:`resolve_compression` falls back to ``'zlib'`` with a
:class:`CompressionFallbackWarning`, and the manifest records the compression used.

Quantisation (``[output] pack_int16``, default on): ``ecg`` and ``clean_ecg`` are stored as
int16 with CF ``scale_factor = q`` where ``q = input_range_mv / 32767`` -- the device's
body-referred input range (ADC range / gain), so no sample the device can record is ever
clipped, and ``q`` is the same in every shard: 12.2 uV for ``shirt12_500hz`` (+-400 mV),
6.1 uV for ``shirt3_250hz``, 0.31 uV for ``patch_128hz``. The generator quantises the
signals *in memory* before writing (:func:`quantise`), so what a block returns and what a
reader decodes are the same float32 numbers bit for bit, each within ``q / 2`` of the
simulated value. ``accelerometer`` is stored as int16 over +-16 g (the largest standard
range of MEMS accelerometers; 4.79 mm s-2 steps); a sample beyond it raises.
"""

from __future__ import annotations

import threading
import warnings
from contextlib import contextmanager

import numpy as np

from ..errors import ConfigError, SignalError

COMPRESSIONS = ("zstd", "blosc_lz4", "zlib", "none")
INT16_MAX = 32767
#: int16 fill value (never produced by :func:`quantise`, whose codes stay within +-32767).
INT16_FILL = np.int16(-32768)
STANDARD_GRAVITY = 9.80665
#: Full scale of the stored accelerometer, m s-2 (+-16 g).
ACCEL_FULL_SCALE = 16.0 * STANDARD_GRAVITY
#: ECG variables packed as int16 (``ecg_simulated``: the unrefined record of a refined dataset).
SIGNALS = ("ecg", "clean_ecg", "ecg_simulated")


class CompressionFallbackWarning(UserWarning):
    """The requested HDF5 filter is not available here; zlib was used instead."""


def filter_available(compression: str) -> bool:
    """Whether this netCDF4 library can write ``compression``."""
    if compression in ("zlib", "none"):
        return True
    import netCDF4

    probe = {"zstd": "has_zstd_filter", "blosc_lz4": "has_blosc_filter"}[compression]
    # The has_*_filter methods live on Dataset objects; a diskless dataset costs ~0.1 ms.
    with netCDF4.Dataset("cardiosim-filter-probe.nc", "w", diskless=True, persist=False) as nc:
        return bool(getattr(nc, probe)())


def resolve_compression(compression: str) -> str:
    """The compression that will actually be written: ``compression``, or ``'zlib'`` with a
    :class:`CompressionFallbackWarning` when its HDF5 filter is missing."""
    if compression not in COMPRESSIONS:
        raise ConfigError(f"output.compression must be one of {', '.join(COMPRESSIONS)}, got {compression!r}")
    if filter_available(compression):
        return compression
    warnings.warn(f"output.compression = {compression!r}: this netCDF4 library has no {compression} HDF5 filter; "
                  f"writing zlib instead (pip install -U netCDF4 for wheels that ship it)",
                  CompressionFallbackWarning, stacklevel=3)
    return "zlib"


#: Chunks smaller than this get zlib instead of Blosc: netCDF-C's Blosc filter fails the
#: whole write ("Buffer is uncompressible", HDF error) on small chunks it cannot shrink.
BLOSC_MIN_CHUNK = 4096


def filter_encoding(compression: str, complevel: int, chunk_nbytes: int | None = None) -> dict:
    """netCDF4 encoding keys (as xarray passes them) for one variable's filters.

    Byte shuffling groups the bytes of each sample by significance before compression:
    on int16 ECG the high bytes are nearly constant and compress to almost nothing.
    ``chunk_nbytes`` is the size of one per-record chunk; ``None`` marks a variable that is
    not chunked by record (per-record scalars): it is stored contiguous and unfiltered --
    filters on hundreds of such small variables cost more than they save (19 % larger
    files measured with them, on 48 default records).
    """
    if chunk_nbytes is None:
        return {"contiguous": True}
    if compression == "blosc_lz4" and chunk_nbytes < BLOSC_MIN_CHUNK:
        compression = "zlib"
    if compression == "none":
        return {"zlib": False}
    if compression == "zlib":
        return {"zlib": True, "complevel": int(complevel), "shuffle": True}
    if compression == "zstd":
        return {"compression": "zstd", "complevel": int(complevel), "shuffle": True}
    if compression == "blosc_lz4":
        # Blosc shuffles inside its own filter; complevel 1-9 (5 is Blosc's default balance).
        return {"compression": "blosc_lz4", "complevel": int(complevel), "blosc_shuffle": 1}
    raise ConfigError(f"output.compression must be one of {', '.join(COMPRESSIONS)}, got {compression!r}")


def quantum(full_scale: float) -> float:
    """int16 step for a signed range ``+-full_scale`` (``full_scale / 32767``)."""
    if not full_scale or not np.isfinite(full_scale) or full_scale <= 0:
        raise ConfigError(f"int16 packing needs a positive full-scale range, got {full_scale!r}")
    return float(full_scale) / INT16_MAX


def quantise(x: np.ndarray, q: float, *, name: str = "signal", unit: str = "mV") -> np.ndarray:
    """Round ``x`` to the int16 grid of step ``q`` and return it as float32, exactly as a CF
    reader decodes ``int16 * float32(q)``.

    Raises
    ------
    SignalError
        A sample lies beyond ``+-32767 q`` (it would be clipped) or is not finite.
    """
    return _quantise(x, q, name, unit, codes=False)[1]


def quantise_codes(x: np.ndarray, q: float, *, name: str = "signal", unit: str = "mV") -> np.ndarray:
    """int16 codes ``round(x / float32(q))`` (what netCDF4 stores for ``x``); see :func:`quantise`."""
    return _quantise(x, q, name, unit)[0]


def _quantise(x, q: float, name: str, unit: str, codes: bool = True,
              inplace: bool = False) -> tuple[np.ndarray | None, np.ndarray]:
    """``(codes int16, decoded float32)`` of ``x``, one numba pass (:mod:`cardiosim.dataset._kernels`,
    whose NumPy twin is the oracle); ``codes=False``: ``(None, decoded)``. ``inplace``: the
    decoded values overwrite ``x`` when it is a C-contiguous float32 array (on an error
    ``x`` is then partly overwritten)."""
    from ._kernels import quantise_kernel

    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    flat = np.ascontiguousarray(x).reshape(-1)
    codes_out = np.empty(flat.shape if codes else 0, dtype=np.int16)
    out = flat if inplace and flat.dtype == np.float32 and np.may_share_memory(flat, x) else \
        np.empty(flat.shape, dtype=np.float32)
    peak, finite = quantise_kernel(flat, np.float64(np.float32(q)), np.float32(q), codes_out, out) if flat.size \
        else (0.0, True)
    check_quantised(name, q, unit, peak, finite)
    return (codes_out.reshape(x.shape) if codes else None), out.reshape(x.shape)


def check_quantised(name: str, q: float, unit: str, peak: float, finite: bool) -> None:
    """Raise what packing a signal whose largest ``|code|`` is ``peak`` (``finite``: every
    sample finite) raises: :class:`SignalError` naming it and its peak."""
    if not finite:
        raise SignalError(f"{name} has non-finite samples; cannot pack it as int16")
    if peak > INT16_MAX:
        raise SignalError(f"{name} reaches {peak * q:.4g} {unit}, beyond the int16 packing range "
                          f"+-{INT16_MAX * q:.4g} {unit}; set [output] pack_int16 = false")


def quantise_into(x: np.ndarray, q: float, out: np.ndarray, codes: np.ndarray | None = None) -> tuple[float, bool]:
    """Write ``x`` (C-contiguous float32 or float64) on the int16 grid of step ``q`` into ``out``
    (C-contiguous float32 of its size; may be ``x``), the values :func:`quantise` returns,
    and their int16 codes into ``codes`` (optional, C-contiguous), without raising: returns
    ``(peak, finite)`` for :func:`check_quantised` (a block packs its records one at a time,
    while each is in cache, and raises once for the block)."""
    from ._kernels import quantise_kernel

    if not x.size:
        return 0.0, True
    return quantise_kernel(x.reshape(-1), np.float64(np.float32(q)), np.float32(q),
                           _NO_CODES if codes is None else codes.reshape(-1), out.reshape(-1))


_NO_CODES = np.empty(0, dtype=np.int16)


_KNOWN = threading.local()   # .codes: {array key: (array, its int16 codes)} inside known_int16_codes


def _array_key(x: np.ndarray, sf, fill) -> tuple:
    return (x.__array_interface__["data"][0], x.shape, x.strides, x.dtype.str, float(np.float32(sf)), int(fill))


@contextmanager
def known_int16_codes(entries):
    """Within this context :func:`pack_int16_like_xarray` returns ``codes`` for exactly the
    array ``x`` (the same memory, shape, strides and dtype) and the same ``sf`` and ``fill``
    of each ``(x, sf, fill, codes)`` of ``entries``, instead of computing them again.

    For a caller that packed ``x`` itself with :func:`quantise_into` (whose codes, for values
    on the grid, are those xarray's encoder derives from them: ``rint(x / sf)`` in float32
    recovers ``c`` from ``float32(c) * sf`` for ``|c| <= 32767``) and lets no other code touch
    ``x`` until the context ends; the entries hold their arrays alive meanwhile."""
    prev = getattr(_KNOWN, "codes", None)
    known = dict(prev or {})
    for x, sf, fill, codes in entries:
        known[_array_key(x, sf, fill)] = (x, codes)
    _KNOWN.codes = known
    try:
        yield
    finally:
        _KNOWN.codes = prev


def pack_int16_like_xarray(x: np.ndarray, sf: np.float32, fill: np.int16) -> np.ndarray:
    """The int16 array xarray's CF encoder stores for float32 ``x`` with ``scale_factor = sf``
    and ``_FillValue = fill`` (one numba pass; the NumPy twin where a value does not fit;
    the packer's own codes inside :func:`known_int16_codes`)."""
    from ._kernels import pack_int16_kernel, pack_int16_ref

    known = getattr(_KNOWN, "codes", None)
    if known and isinstance(x, np.ndarray):
        hit = known.get(_array_key(x, sf, fill))
        if hit is not None:
            return hit[1]
    x = np.ascontiguousarray(x, dtype=np.float32)
    codes = np.empty(x.shape, dtype=np.int16)
    if x.size == 0 or pack_int16_kernel(x.reshape(-1), np.float32(sf), np.float32(fill), codes.reshape(-1)):
        return codes
    return pack_int16_ref(x, sf, fill)


def pack_encoding(q: float) -> dict:
    """Encoding keys storing a variable as int16 with ``scale_factor = q``."""
    return {"dtype": "int16", "scale_factor": np.float32(q), "_FillValue": INT16_FILL}


def signal_quanta(names, signal_full_scale_mv: float) -> dict:
    """``{name: q}`` of the packed variables among ``names``, in the order they are packed."""
    steps = {name: quantum(signal_full_scale_mv) for name in SIGNALS if name in names}
    if "accelerometer" in names:
        steps["accelerometer"] = quantum(ACCEL_FULL_SCALE)
    return steps


def quantise_signals(ds, signal_full_scale_mv: float, *, inplace: bool = False, done=()):
    """``ds`` with ``ecg`` / ``clean_ecg`` / ``accelerometer`` on their int16 grids (in place
    of the float values; see the module docstring). Returns ``(ds, {name: q})``.

    ``inplace=True`` overwrites the float32 arrays of ``ds`` with their quantised values
    instead of allocating new ones (for a caller that owns them: a block that is about to be
    written); by default ``ds`` is left as it was. Names in ``done`` already hold quantised
    values (:func:`quantise_into`) and are left as they are."""
    steps = signal_quanta(ds.variables, signal_full_scale_mv)
    # A shallow copy whose variables get new data: the caller's dataset is left as it was, and
    # no Dataset.__setitem__ (a merge over every variable: 2 ms a record on a 64-record block).
    ds = ds.copy(deep=False)
    for name, q in steps.items():
        if name in done:
            continue
        unit = "m s-2" if name == "accelerometer" else "mV"
        var = ds.variables[name]
        var.data = _quantise(var.values, q, name, unit, codes=False, inplace=inplace)[1]
    return ds, steps
