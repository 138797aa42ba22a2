"""Storage: compression filters, int16 quantisation, file modes, dask-free and random-access
reading, corrupt shards named (issue 16 part 2; issue 17 first-hour failures 2, 3 and 6)."""

import os
import subprocess
import sys
import textwrap

import netCDF4
import numpy as np
import pytest
import xarray as xr

from cardiosim.dataset import Recipe, generate, open_dataset, simulate_block, summarize
from cardiosim.dataset.io import RecordReader, read_manifest, write_json_atomic, write_netcdf
from cardiosim.dataset.schema import encoding_for
from cardiosim.dataset.storage import (COMPRESSIONS, CompressionFallbackWarning, filter_available, quantise,
                                       resolve_compression)
from cardiosim.device import load_device
from cardiosim.errors import ConfigError, DataFormatError, SignalError
from conftest import PROJECT_ROOT

BASE = {"records": 6, "duration": 1.0, "seed": 5, "output": {"shard_size": 2}}


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    out = tmp_path_factory.mktemp("st") / "ds"
    generate(Recipe.from_dict(BASE), out, progress=False)
    return out


@pytest.fixture(scope="module")
def float_block():
    """A block simulated without int16 packing (the float32 reference)."""
    r = Recipe.from_dict({**BASE, "records": 2, "output": {"pack_int16": False}})
    return simulate_block(r, 0, 2)


def _shirt_quantum_mv():
    dev = load_device("shirt12_500hz")
    return dev.adc_range_mv / dev.gain / 32767  # body-referred input range / int16 max


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_every_compression_round_trips_and_plain_netcdf4_reads_it(float_block, tmp_path, compression):
    if not filter_available(compression):
        pytest.skip(f"this netCDF4 build has no {compression} filter")
    path = tmp_path / f"{compression}.nc"
    enc = encoding_for(float_block, compression=compression, complevel=1)
    write_netcdf(float_block, path, enc)
    with netCDF4.Dataset(path) as nc:  # a plain reader, no cardiosim
        filters = nc.variables["ecg"].filters()
        ecg = nc.variables["ecg"][:]
    expect = {"zstd": "zstd", "blosc_lz4": "blosc", "zlib": "zlib"}.get(compression)
    if expect:
        assert filters[expect], filters
    else:
        assert not any(filters[k] for k in ("zlib", "zstd", "blosc"))
    np.testing.assert_array_equal(np.asarray(ecg), float_block["ecg"].values)  # lossless for float32


def test_missing_filter_falls_back_to_zlib_with_a_warning(monkeypatch):
    import cardiosim.dataset.storage as storage

    monkeypatch.setattr(storage, "filter_available", lambda c: c in ("zlib", "none"))
    with pytest.warns(CompressionFallbackWarning, match="zstd"):
        assert storage.resolve_compression("zstd") == "zlib"
    assert resolve_compression("none") == "none"
    with pytest.raises(ConfigError, match="output.compression"):
        resolve_compression("lzma")
    with pytest.raises(ConfigError, match="output.compression"):
        Recipe.from_dict({"output": {"compression": "gzip"}})


def test_int16_packing_is_lossless_within_half_a_step_and_decodes_bit_for_bit(sharded, float_block):
    q = _shirt_quantum_mv()
    assert q * 1e3 == pytest.approx(12.208, abs=1e-3)  # the documented 12.2 uV of shirt12_500hz
    packed = simulate_block(Recipe.from_dict(BASE), 0, 2)
    diff = np.abs(packed["ecg"].values.astype(np.float64) - float_block["ecg"].values)
    assert diff.max() <= q / 2 * (1 + 1e-5) + 1e-7
    assert diff.max() > q / 10, "values were not quantised at all"
    # On disk: int16 codes round(x / q) with scale_factor q; decoded == the block, bit for bit.
    with netCDF4.Dataset(sharded / "shard-00000.nc") as nc:
        var = nc.variables["ecg"]
        assert var.dtype == np.int16 and float(var.scale_factor) == pytest.approx(q, rel=1e-6)
        var.set_auto_maskandscale(False)
        codes = var[:]
    np.testing.assert_array_equal(codes, np.rint(float_block["ecg"].values / np.float32(q)).astype(np.int16))
    on_disk = open_dataset(sharded)
    np.testing.assert_array_equal(on_disk["ecg"].values[:2], packed["ecg"].values)
    acc_q = 16 * 9.80665 / 32767
    np.testing.assert_allclose(on_disk["accelerometer"].values[:2], float_block["accelerometer"].values,
                               atol=acc_q / 2 * (1 + 1e-5))
    on_disk.close()


def test_quantise_refuses_out_of_range_and_non_finite():
    q = 0.01
    np.testing.assert_array_equal(quantise(np.array([0.004, 0.006, -0.015]), q),
                                  np.array([0.0, 0.01, -0.02], dtype=np.float32))
    with pytest.raises(SignalError, match="beyond the int16 packing range"):
        quantise(np.array([0.0, 32767.6 * q]), q)
    with pytest.raises(SignalError, match="non-finite"):
        quantise(np.array([np.nan]), q)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_quantise_kernel_matches_its_numpy_twin(dtype):
    """The one-pass numba packing equals the NumPy code path bit for bit, ties and rails included."""
    from cardiosim.dataset._kernels import quantise_ref
    from cardiosim.dataset.storage import quantise_codes

    q = 400.0 / 32767
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((3, 4, 501)) * 5).astype(dtype)
    grid = np.float64(np.float32(q))
    x.flat[::7] = ((np.round(x.flat[::7] / grid) + 0.5) * grid).astype(dtype)     # exact ties
    x.flat[:2] = [32767 * grid, -32767 * grid]
    codes, out, peak, finite = quantise_ref(x, q)
    assert finite and peak == 32767
    np.testing.assert_array_equal(quantise_codes(x, q), codes)
    got = quantise(x, q)
    assert got.dtype == np.float32 and got.shape == x.shape
    np.testing.assert_array_equal(got.view(np.int32), out.view(np.int32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", ["in_range", "beyond", "non_finite", "both"])
def test_quantise_kernel_peak_and_finiteness_match_the_twin(dtype, case):
    """The vectorised kernel's integer peak, its second pass beyond int16 and its
    non-finite count give the twin's ``(codes, out, peak, finite)`` exactly."""
    from cardiosim.dataset._kernels import quantise_kernel, quantise_ref

    q = 800.0 / 32767
    rng = np.random.default_rng(11)
    x = (rng.standard_normal(1003) * 3).astype(dtype)
    if case in ("beyond", "both"):
        x[5], x[700] = 1e4, -2e4
    if case in ("non_finite", "both"):
        x[7], x[9], x[1002] = np.nan, -np.inf, np.inf
    codes, out = np.empty(x.size, np.int16), np.empty(x.size, np.float32)
    peak, finite = quantise_kernel(x, np.float64(np.float32(q)), np.float32(q), codes, out)
    ref_codes, ref_out, ref_peak, ref_finite = quantise_ref(x, q)
    assert (peak, finite) == (ref_peak, ref_finite)
    np.testing.assert_array_equal(codes, ref_codes)
    np.testing.assert_array_equal(out.view(np.int32), ref_out.view(np.int32))


def test_quantise_in_place_and_without_codes_equal_the_default(float_block):
    """The block's in-place quantisation (no codes kept) gives the values of the default,
    which leaves the caller's dataset as it was."""
    from cardiosim.dataset._kernels import quantise_kernel, quantise_ref
    from cardiosim.dataset.storage import quantise_signals

    full_scale = _shirt_quantum_mv() * 32767
    ref, steps = quantise_signals(float_block, full_scale)
    assert not np.array_equal(ref["ecg"].values, float_block["ecg"].values)     # left as it was
    mine = float_block.copy(deep=True)
    got, steps2 = quantise_signals(mine, full_scale, inplace=True)
    assert steps2 == steps
    for name in steps:
        np.testing.assert_array_equal(got[name].values.view(np.int32), ref[name].values.view(np.int32))
        assert np.shares_memory(got[name].values, mine[name].values)
    x = float_block["ecg"].values.reshape(-1).copy()
    q = steps["ecg"]
    out = np.empty(x.size, np.float32)
    peak, finite = quantise_kernel(x, np.float64(np.float32(q)), np.float32(q), np.empty(0, np.int16), out)
    _, ref_out, ref_peak, ref_finite = quantise_ref(x, q)
    assert (peak, finite) == (ref_peak, ref_finite)
    np.testing.assert_array_equal(out.view(np.int32), ref_out.view(np.int32))


def test_known_int16_codes_are_used_for_exactly_their_array(float_block):
    """Inside known_int16_codes the packer returns the caller's codes for that very array
    (same memory, shape, strides, scale and fill) and computes them for anything else;
    the caller's codes from quantise_into equal what xarray's encoder derives."""
    from cardiosim.dataset.storage import INT16_FILL, known_int16_codes, pack_int16_like_xarray, quantise_into

    q = _shirt_quantum_mv()
    x = float_block["ecg"].values.copy()
    packed, codes = np.empty_like(x), np.empty(x.shape, np.int16)
    assert quantise_into(x, q, packed, codes) == (float(np.abs(codes).max()), True)
    sf = np.float32(q)
    np.testing.assert_array_equal(pack_int16_like_xarray(packed, sf, INT16_FILL), codes)
    marker = np.full(x.shape, 7, np.int16)                           # not the real codes: shows which is used
    with known_int16_codes([(packed, sf, INT16_FILL, marker)]):
        assert pack_int16_like_xarray(packed, sf, INT16_FILL) is marker
        np.testing.assert_array_equal(pack_int16_like_xarray(packed[:1], sf, INT16_FILL), codes[:1])
        np.testing.assert_array_equal(pack_int16_like_xarray(packed.copy(), sf, INT16_FILL), codes)
        assert pack_int16_like_xarray(packed, np.float32(2 * q), INT16_FILL) is not marker
    np.testing.assert_array_equal(pack_int16_like_xarray(packed, sf, INT16_FILL), codes)


def test_write_block_file_equals_writing_the_simulated_block(tmp_path):
    """write_block hands the writer the codes of the signals it packed (and skips their range
    scan): the file is byte for byte the one written from simulate_block's dataset."""
    import importlib

    from cardiosim.dataset.io import sha256_file, write_netcdf

    gen = importlib.import_module("cardiosim.dataset.generate")
    r = Recipe.from_dict({**BASE, "records": 3})
    entry = gen.write_block(r, 0, 3, str(tmp_path / "a.nc"))
    ds = simulate_block(r, 0, 3)
    st = gen._block_state(r)
    write_netcdf(ds, tmp_path / "b.nc", gen._encoding(st.recipe, ds, st.ref))
    assert entry["sha256"] == sha256_file(tmp_path / "b.nc")


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_output_files_honour_the_umask(tmp_path, umask, float_block):
    """Issue 17 #6: files were 0600 (mkstemp's mode) whatever the umask."""
    old = os.umask(umask)
    try:
        write_netcdf(float_block, tmp_path / "a.nc", {})
        write_json_atomic({"a": 1}, tmp_path / "m.json")
    finally:
        os.umask(old)
    for name in ("a.nc", "m.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


def test_folder_dataset_reads_without_dask(sharded):
    """Issue 17 #2: after `pip install .` (no dask) folder datasets could not be opened."""
    code = textwrap.dedent(f"""
        import sys
        sys.modules["dask"] = None  # as if not installed: import fails, find_spec gives None
        from cardiosim.dataset import open_dataset, summarize
        ds = open_dataset({str(sharded)!r})
        print(ds.sizes["record"], float(abs(ds["ecg"].values).sum()))
        print(summarize({str(sharded)!r}).splitlines()[1])
        assert sys.modules["dask"] is None
    """)
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    n, total = res.stdout.splitlines()[0].split()
    ref = open_dataset(sharded)
    assert int(n) == 6 and float(total) == pytest.approx(float(abs(ref["ecg"].values).sum()), rel=1e-6)
    ref.close()
    assert "records       6" in res.stdout


def test_lazy_folder_dataset_equals_xarray_concat_and_reads_only_needed_shards(sharded):
    files = sorted(sharded.glob("shard-*.nc"))
    parts = [xr.open_dataset(f).load() for f in files]
    ds = open_dataset(sharded)
    lazy = ds["ecg"].variable._data
    while not hasattr(lazy, "shards"):  # down to the _ShardedArray under xarray's lazy wrappers
        lazy = lazy.array
    # Opening reads shard 0's layout (and the header of any shard adding per-record parameters).
    before = set(lazy.shards._handles)
    one = ds["ecg"].isel(record=3).values  # record 3 lives in shard 1
    assert set(lazy.shards._handles) == before | {1}, "reading one record opens only the shard holding it"
    np.testing.assert_array_equal(one, parts[1]["ecg"].values[1])
    ref = xr.concat(parts, dim="record", data_vars="minimal", coords="minimal", compat="override",
                    join="override", combine_attrs="override")
    loaded = ds.load()
    for name in ("ecg", "label", "accelerometer", "displacement", "heart_rate"):
        np.testing.assert_array_equal(loaded[name].values, ref[name].values, err_msg=name)
    assert list(loaded["record"].values) == list(range(6))
    # fancy, reversed and strided selections across shards
    np.testing.assert_array_equal(ds["ecg"].isel(record=[5, 0, 3]).values, ref["ecg"].values[[5, 0, 3]])
    np.testing.assert_array_equal(ds["ecg"].isel(record=slice(None, None, -2), lead=[0, 6]).values,
                                  ref["ecg"].values[::-2][:, [0, 6]])
    ds.close()


def test_record_reader_returns_the_same_records_as_open_dataset(sharded):
    ds = open_dataset(sharded).load()
    rng = np.random.default_rng(0)
    with RecordReader(sharded, variables=("ecg", "label", "heart_rate")) as reader:
        assert len(reader) == 6 and list(reader.record) == list(range(6))
        for i in rng.permutation(6):
            rec = reader[int(i)]
            np.testing.assert_array_equal(rec["ecg"], ds["ecg"].values[i])
            np.testing.assert_array_equal(rec["label"], ds["label"].values[i])
            assert rec["heart_rate"] == ds["heart_rate"].values[i]
        with pytest.raises(IndexError):
            reader[6]


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_truncated_shard_is_named_by_info_and_open(sharded, tmp_path):
    """Issue 17 #3: a corrupted shard passed `cardiosim info`; reading it then failed with a
    raw netCDF error that did not name the file."""
    bad = _copy(sharded, tmp_path / "bad")
    shard = bad / "shard-00001.nc"
    shard.write_bytes(shard.read_bytes()[:-500])
    with pytest.raises(DataFormatError, match="shard-00001.nc.*corrupt"):
        open_dataset(bad)
    with pytest.raises(DataFormatError, match="shard-00001.nc"):
        summarize(bad)
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    res = subprocess.run([sys.executable, "-m", "cardiosim", "info", str(bad)], capture_output=True, text=True,
                         env=env, timeout=120)
    assert res.returncode == 2 and "shard-00001.nc" in res.stderr and "Traceback" not in res.stderr


def test_same_size_corruption_is_named_on_read_and_caught_by_verify(sharded, tmp_path):
    bad = _copy(sharded, tmp_path / "bad")
    shard = bad / "shard-00002.nc"
    data = bytearray(shard.read_bytes())
    data[8:] = bytes(len(data) - 8)  # keep the size and the HDF5 signature, destroy the rest
    shard.write_bytes(bytes(data))
    with pytest.raises(DataFormatError, match="checksum"):
        open_dataset(bad, verify=True)
    with pytest.raises(DataFormatError, match="shard-00002.nc.*checksum"):
        summarize(bad)  # `cardiosim info` checks checksums when the shards are small (here)
    with pytest.raises(DataFormatError, match="shard-00002.nc"):
        # named when its header is read (opening scans headers) or at the latest on first read
        open_dataset(bad)["ecg"].isel(record=5).values
    with pytest.raises(DataFormatError, match="shard-00002.nc"):
        RecordReader(bad)[4]


def test_manifest_records_size_and_compression(sharded):
    m = read_manifest(sharded)
    assert m["compression"] in COMPRESSIONS
    for name, info in m["shards"].items():
        assert info["bytes"] == (sharded / name).stat().st_size


def test_write_netcdf_matches_plain_to_netcdf(float_block, tmp_path):
    """write_netcdf defines every variable before writing data (one define-mode pass, not one
    per variable); the file must hold what xarray's own to_netcdf writes: same variables,
    attributes, values and on-disk encodings (int16 packing, fill values, filters, chunks)."""
    from cardiosim.dataset.io import _encoded_names
    from cardiosim.dataset.schema import encode_cf

    block = float_block
    enc = encoding_for(block, compression="zlib", complevel=1, pack_int16=True,
                       full_scale_mv=_shirt_quantum_mv() * 32767)
    write_netcdf(block, tmp_path / "ours.nc", enc)
    out = encode_cf(block)
    out.to_netcdf(tmp_path / "plain.nc", engine="netcdf4", format="NETCDF4", encoding=_encoded_names(enc, out))
    with xr.open_dataset(tmp_path / "ours.nc", mask_and_scale=False) as a, \
            xr.open_dataset(tmp_path / "plain.nc", mask_and_scale=False) as b:
        xr.testing.assert_identical(a, b)
        assert a["ecg"].dtype == np.int16
        for name in b.variables:
            ea = {k: v for k, v in a[name].encoding.items() if k != "source"}
            eb = {k: v for k, v in b[name].encoding.items() if k != "source"}
            assert ea.keys() == eb.keys(), name
            for k in eb:
                assert np.array_equal(ea[k], eb[k], equal_nan=True) if isinstance(eb[k], np.floating) \
                    else ea[k] == eb[k], (name, k, ea[k], eb[k])


def _nc_layout(path) -> dict:
    """Everything netCDF4 reports of a file, raw: dimensions, global and variable attributes
    (in order, with their types), variable order, dtypes, chunking, filters, endianness and the
    stored bytes (int16 codes, not decoded values)."""
    def attr(v):
        return (type(v).__name__, np.asarray(v).dtype.str, np.asarray(v).tobytes()) \
            if not isinstance(v, str) else ("str", v)

    out = {}
    with netCDF4.Dataset(path) as nc:
        nc.set_auto_maskandscale(False)
        out["dims"] = [(d, len(v), v.isunlimited()) for d, v in nc.dimensions.items()]
        out["attrs"] = [(k, attr(nc.getncattr(k))) for k in nc.ncattrs()]
        for name, v in nc.variables.items():
            v.set_auto_maskandscale(False)
            data = v[...]
            raw = (data.dtype.str, data.tobytes()) if data.dtype != object else np.asarray(data).tolist()
            out[name] = (v.dimensions, str(v.dtype), v.chunking(), v.filters(), v.endian(),
                         [(k, attr(v.getncattr(k))) for k in v.ncattrs()], raw)
    return out


@pytest.mark.parametrize("compression,pack", [("zstd", True), ("zlib", False), ("blosc_lz4", True), ("none", False)])
def test_direct_writer_writes_what_xarray_writes(float_block, tmp_path, compression, pack):
    """write_netcdf writes cardiosim's datasets with netCDF4 directly (no xarray encoding per
    variable, no dask lock): the file holds exactly what xarray's to_netcdf writes -- same
    dimensions, variable order, dtypes, chunking, filters, attributes (order and types) and
    stored bytes -- and plain xarray.open_dataset reads it identically."""
    from cardiosim.dataset.io import _direct_plan, _encoded_names
    from cardiosim.dataset.schema import encode_cf
    from cardiosim.dataset.storage import quantise_signals

    if not filter_available(compression):
        pytest.skip(f"{compression} filter missing")
    full = _shirt_quantum_mv() * 32767
    block = quantise_signals(float_block, full)[0] if pack else float_block
    enc = encoding_for(block, compression=compression, complevel=1, pack_int16=pack, full_scale_mv=full)
    out = encode_cf(block)
    assert _direct_plan(out, _encoded_names(enc, out)) is not None, "the direct writer must take this dataset"
    write_netcdf(block, tmp_path / "direct.nc", enc)
    out.to_netcdf(tmp_path / "xarray.nc", engine="netcdf4", format="NETCDF4", encoding=_encoded_names(enc, out))
    a, b = _nc_layout(tmp_path / "direct.nc"), _nc_layout(tmp_path / "xarray.nc")
    assert list(a) == list(b)
    for name in b:
        if compression == "zstd" and name not in ("dims", "attrs") and (b[name][3] or {}).get("zstd"):
            # the one deliberate difference: netCDF4-python drops the byte shuffle asked for with
            # zstd, the direct writer restores it (io._add_shuffle); everything else identical
            assert a[name][3]["shuffle"] and not b[name][3]["shuffle"], name
            a_f, b_f = dict(a[name][3], shuffle=False), b[name][3]
            assert a[name][:3] + (a_f,) + a[name][4:] == b[name][:3] + (b_f,) + b[name][4:], name
            continue
        assert a[name] == b[name], name
    with xr.open_dataset(tmp_path / "direct.nc") as x, xr.open_dataset(tmp_path / "xarray.nc") as y:
        xr.testing.assert_identical(x, y)
        for name in y.variables:
            assert x[name].encoding.keys() == y[name].encoding.keys()


def test_direct_writer_leaves_other_datasets_to_xarray(float_block, tmp_path):
    """Datasets outside what the direct writer reproduces (here: a bool variable, an encoding
    key it does not know) go through xarray and are still written."""
    from cardiosim.dataset.io import _direct_plan

    ds = float_block.copy()
    ds["flag"] = ("record", np.array([True, False]))
    assert _direct_plan(ds, {}) is None
    assert _direct_plan(float_block, {"ecg": {"least_significant_digit": 3}}) is None
    write_netcdf(ds, tmp_path / "x.nc")
    with xr.open_dataset(tmp_path / "x.nc") as back:
        assert back["flag"].dtype == bool


@pytest.mark.parametrize("n", [0, 1, 1001])
def test_pack_int16_kernel_matches_xarrays_steps(n):
    """The writer's int16 codes (one numba pass) equal xarray's CF encoding steps bit for bit:
    ties, NaN -> fill, and values off the int16 range (handed to the NumPy twin)."""
    from cardiosim.dataset._kernels import pack_int16_ref
    from cardiosim.dataset.storage import pack_int16_like_xarray

    sf = np.float32(400.0 / 32767)
    rng = np.random.default_rng(n)
    x = (rng.standard_normal(n) * 50).astype(np.float32)
    x[::5] = ((np.rint(x[::5] / sf) + np.float32(0.5)) * sf).astype(np.float32)
    if n:
        x[0] = np.nan
    fill = np.int16(-32768)
    np.testing.assert_array_equal(pack_int16_like_xarray(x, sf, fill), pack_int16_ref(x, sf, fill))
    if n:
        y = x.copy()
        y[-1] = 40000 * sf  # beyond int16: the twin decides, as xarray would
        np.testing.assert_array_equal(pack_int16_like_xarray(y, sf, fill), pack_int16_ref(y, sf, fill))


def test_info_says_what_shaped_the_noise(tmp_path):
    """`cardiosim info` named the noise kinds only; a reader could not tell wearers at rest
    from runners. It now counts activities, electrode types and artefact grades as stored."""
    import xarray as xr

    recipe = Recipe.from_dict({"records": 6, "duration": 4.0, "seed": 3,
                               "simulation": {"activities": {"walk": 1, "run": 1}, "noise": {"electrode": "dry"}}})
    generate(recipe, tmp_path / "d.nc", progress=False)
    text = summarize(tmp_path / "d.nc")
    with xr.open_dataset(tmp_path / "d.nc") as ds:
        acts, n = np.unique(ds["param_activity"].values.astype(str), return_counts=True)
        grades, m = np.unique(ds["artefact_grade"].values.astype(int), return_counts=True)
    assert "  activities    " + ", ".join(f"{a} {k}" for a, k in zip(acts, n)) in text
    assert set(acts) <= {"walk", "run"} and n.sum() == 6
    assert "  electrodes    dry 6" in text
    assert "  grades        " + ", ".join(f"{g}: {k}" for g, k in zip(grades, m)) in text
    assert "failures" not in text      # none configured: no line
