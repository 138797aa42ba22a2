"""The generator's write path: shortcuts that must write exactly what the longer way writes
(issue 16, a batched engine: the dataset assembly and netCDF writing of a block)."""

import hashlib

import netCDF4
import numpy as np
import pytest

from cardiosim.dataset import Recipe, simulate_block
from cardiosim.dataset.io import _direct_plan, _direct_plan_cf, _encoded_names, _put_whole, write_netcdf
from cardiosim.dataset.schema import _parameter_columns, encode_cf, encoding_for

BASE = {"records": 5, "duration": 2.0, "seed": 11}


@pytest.fixture(scope="module")
def blocks():
    """A packed block (the default) and a float32 one with clean_ecg."""
    packed = simulate_block(Recipe.from_dict(BASE), 0, 5)
    clean = simulate_block(Recipe.from_dict({**BASE, "output": {"pack_int16": False, "store_clean": True}}), 0, 3)
    return {"packed": (packed, True), "clean": (clean, False)}


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True) and np.asarray(a).dtype == np.asarray(b).dtype
    if isinstance(a, (float, np.floating)) and isinstance(b, (float, np.floating)) and np.isnan(a) and np.isnan(b):
        return type(a) is type(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("which", ["packed", "clean"])
@pytest.mark.parametrize("compression", ["zstd", "zlib"])
def test_plan_without_the_renamed_dataset_is_the_plan_of_it(blocks, which, compression):
    """_direct_plan_cf(ds) plans, variable by variable and in the same order, what
    _direct_plan plans for encode_cf(ds): names, dimensions, types, fill values, filters,
    attributes (``coordinates`` included), packing and the very arrays written."""
    ds, pack = blocks[which]
    enc = encoding_for(ds, compression=compression, complevel=1, pack_int16=pack, full_scale_mv=400.0)
    out = encode_cf(ds)
    want = _direct_plan(out, _encoded_names(enc, out))
    got = _direct_plan_cf(ds, enc)
    assert want is not None and got is not None
    assert _same(got[1], want[1])
    assert [p[0] for p in got[0]] == [p[0] for p in want[0]]
    for g, w in zip(got[0], want[0]):
        name = g[0]
        assert g[1] == w[1], name                      # dims on disk
        assert g[2].shape == w[2].shape and np.array_equal(g[2].values, w[2].values), name
        for k in range(3, 8):                          # datatype, fill, kwargs, attrs, pack
            assert _same(g[k], w[k]), (name, k)


def test_plan_without_the_renamed_dataset_steps_aside_on_a_name_clash(blocks, tmp_path):
    """A dataset holding a variable named like a renamed one is left to encode_cf (which
    renames it as before), and is still written."""
    ds, _ = blocks["clean"]
    odd = ds.assign(elapsed_time=("record", np.arange(ds.sizes["record"], dtype=np.float64)))
    assert _direct_plan_cf(odd, {}) is None
    with pytest.raises(ValueError):   # xarray's own complaint, as before this shortcut
        write_netcdf(odd, tmp_path / "odd.nc")
    write_netcdf(ds, tmp_path / "ok.nc")
    with netCDF4.Dataset(tmp_path / "ok.nc") as nc:
        assert "elapsed_time" in nc.dimensions and "lead_name" in nc.variables


def _write(path, use_put: bool):
    data = {
        "f4": np.linspace(-1, 1, 24, dtype=np.float32).reshape(2, 3, 4),
        "i2": np.arange(-6, 6, dtype=np.int16).reshape(2, 6),
        "f8": np.array([1.5, np.nan], dtype=np.float64),
        "s": np.array(["a", "", "beta"], dtype=object),
        "t": np.arange(12, dtype=np.float32).reshape(2, 3, 2).transpose(0, 2, 1),  # not C-contiguous
        "e": np.zeros((0, 3), dtype=np.int32),
    }
    dims = {"f4": ("r", "a", "b"), "i2": ("r", "c"), "f8": ("r",), "s": ("a",), "t": ("r", "d", "a"),
            "e": ("z", "a")}
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        nc.set_auto_maskandscale(False)
        for d, n in {"r": 2, "a": 3, "b": 4, "c": 6, "d": 2, "z": 0}.items():
            nc.createDimension(d, n)
        vs = {k: nc.createVariable(k, str if a.dtype == object else a.dtype, dims[k],
                                   **({"zlib": True, "chunksizes": (1,) + a.shape[1:]} if k == "f4" else {}))
              for k, a in data.items()}
        for k, a in data.items():
            if use_put:
                _put_whole(vs[k], a)
            else:
                vs[k][...] = a
    with netCDF4.Dataset(path) as nc:
        back = {k: nc[k][...] for k in data if k != "e"}
    return hashlib.sha256(path.read_bytes()).hexdigest(), back, data


def test_whole_variable_put_writes_the_file_setitem_writes(tmp_path):
    """_put_whole (netCDF4's _put with start 0, count shape) gives the same file, byte for byte,
    as ``v[...] = data``: numbers, strings, a non-contiguous array and an empty one."""
    h_put, back, data = _write(tmp_path / "put.nc", True)
    h_set, _, _ = _write(tmp_path / "set.nc", False)
    assert h_put == h_set
    for k, v in back.items():
        if data[k].dtype == object:
            assert list(np.asarray(v)) == list(data[k])
        else:
            np.testing.assert_array_equal(np.asarray(v), data[k])


def test_parameter_columns_of_mixed_key_sets():
    """Records with different parameter keys (several rhythms in a block): every key gets one
    value per record, None where a record lacks it, the values the records' own objects."""
    flats = [{"a": 1.0, "b": "x"}, {"a": 2.0, "c": 3}, {"a": 4.0, "b": "y"}, {"c": True}]
    cols = _parameter_columns(flats, 4)
    assert cols == {"a": [1.0, 2.0, 4.0, None], "b": ["x", None, "y", None], "c": [None, 3, None, True]}
    assert type(cols["c"][1]) is int and type(cols["c"][3]) is bool
    assert _parameter_columns(flats[:1] * 3, 3) == {"a": [1.0] * 3, "b": ["x"] * 3}
