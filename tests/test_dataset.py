"""The dataset builder: DESIGN schema, CF attributes, round trip, determinism, lead laws."""

import hashlib

import numpy as np
import pytest
import xarray as xr

from cardiosim.dataset import Recipe, generate, open_dataset, simulate_block
from cardiosim.errors import ConfigError, DataFormatError


def small_recipe(**changes) -> Recipe:
    data = {"records": 4, "duration": 2.0, "seed": 11}
    data.update(changes)
    return Recipe.from_dict(data)


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    path = tmp_path_factory.mktemp("ds") / "shirt.nc"
    recipe = small_recipe()
    generate(recipe, path, progress=False)
    return recipe, path


def test_schema_dims_dtypes_and_cf_attributes(written):
    recipe, path = written
    ds = open_dataset(path)
    n, fs = 4, float(ds.attrs["sampling_rate"])
    assert ds["ecg"].dims == ("record", "lead", "time") and ds["ecg"].dtype == np.float32
    assert ds["ecg"].shape == (n, 12, int(round(2.0 * fs)))
    assert ds["ecg"].attrs["units"] == "mV"
    assert ds["label"].dims == ("record", "class") and ds["label"].dtype == np.int8
    assert set(np.unique(ds["label"].values)) <= {0, 1}
    assert ds["label"].values.sum(axis=1).min() >= 1, "every record carries at least one label"
    assert ds["displacement"].dims == ("record", "electrode", "space") and ds["displacement"].attrs["units"] == "m"
    # UDUNITS spellings (issue 17): decibels are dimensionless, rates per minute.
    assert ds["snr_db"].dims == ("record", "noise") and ds["snr_db"].attrs["units"] == "1"
    assert ds["heart_rate"].attrs["units"] == "min-1"
    assert ds["time"].attrs["units"] == "s"
    np.testing.assert_allclose(np.diff(ds["time"].values), 1 / fs)
    assert list(ds["lead"].values) == ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    assert list(ds["space"].values) == ["x", "y", "z"]
    for key in ("sampling_rate", "device", "recipe", "seed", "cardiosim_version", "Conventions"):
        assert key in ds.attrs, key
    assert ds.attrs["Conventions"].startswith("CF-")
    assert ds.attrs["seed"] == 11
    assert Recipe.from_toml(ds.attrs["recipe"]) == recipe
    for value in ds.attrs.values():
        assert isinstance(value, (str, int, float, np.integer, np.floating))
    assert np.all(np.isfinite(ds["ecg"].values))
    ds.close()


def test_netcdf_round_trip_is_identical(written):
    recipe, path = written
    in_memory = simulate_block(recipe.to_toml(), 0, recipe.records)
    on_disk = open_dataset(path).load()
    xr.testing.assert_identical(in_memory, on_disk)


def test_same_seed_same_bytes_other_seed_other_data(written, tmp_path):
    recipe, path = written
    again = tmp_path / "again.nc"
    generate(recipe, again, progress=False)
    assert sha(again) == sha(path)
    other = tmp_path / "other.nc"
    generate(recipe.replace(seed=12), other, progress=False)
    a, b = open_dataset(path), open_dataset(other)
    assert not np.array_equal(a["ecg"].values, b["ecg"].values)
    a.close(), b.close()


@pytest.mark.parametrize("pack_int16", [False, True])
def test_noiseless_output_obeys_einthoven_and_goldberger(tmp_path, pack_int16):
    recipe = Recipe.from_dict({"records": 2, "duration": 2.0, "seed": 3, "simulation": {"add_noise": False},
                               "output": {"pack_int16": pack_int16}})
    ds = simulate_block(recipe.to_toml(), 0, 2)
    ecg = ds["ecg"]
    lead = {str(k): ecg.sel(lead=k).values.astype(np.float64) for k in ds["lead"].values}
    scale = np.abs(ecg.values).max()
    # Each lead is quantised by the ADC on its own, so the laws hold to a few LSB plus float32 rounding;
    # int16 storage rounds each lead to its 12.2 uV grid: three half steps at most in a sum of three leads.
    tol = 4 * scale * np.finfo(np.float32).eps + 2e-3 + (3 * 0.5 * 400.0 / 32767 if pack_int16 else 0.0)
    np.testing.assert_allclose(lead["II"], lead["I"] + lead["III"], atol=tol)
    np.testing.assert_allclose(lead["aVR"] + lead["aVL"] + lead["aVF"], 0.0, atol=tol)
    np.testing.assert_allclose(lead["aVF"], (lead["II"] + lead["III"]) / 2, atol=tol)
    assert scale > 0.2, "a noiseless ECG should still have a QRS of a few tenths of a mV"


def test_generate_refuses_bad_outputs(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        generate(small_recipe(), tmp_path / "missing" / "x.nc", progress=False)
    existing = tmp_path / "x.nc"
    existing.write_bytes(b"keep me")
    with pytest.raises(ConfigError, match="exists"):
        generate(small_recipe(), existing, progress=False)
    assert existing.read_bytes() == b"keep me"


def test_open_dataset_reports_corrupt_and_missing_files(tmp_path):
    bad = tmp_path / "bad.nc"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)
    with pytest.raises(DataFormatError, match="bad.nc"):
        open_dataset(bad)
    with pytest.raises(DataFormatError, match="no dataset"):
        open_dataset(tmp_path / "nothing.nc")


def _captured_block(records: int, seed: int):
    """The records (and keyword arguments) ``simulate_block`` hands to ``records_to_dataset``
    for a default recipe of ``records`` 2-s records."""
    import importlib

    gen = importlib.import_module("cardiosim.dataset.generate")
    captured = []
    real = gen.records_to_dataset
    try:
        gen.records_to_dataset = lambda recs, **kw: captured.append((recs, kw)) or real(recs, **kw)
        simulate_block(Recipe.from_dict({"records": records, "duration": 2.0, "seed": seed}), 0, records)
    finally:
        gen.records_to_dataset = real
    return captured[0]


def test_block_assembly_fast_paths_equal_the_record_by_record_paths():
    """records_to_dataset transposes the records' parameters with zip (per key set) and writes
    the beats with one masked assignment per wave; both equal the record-by-record loops they
    replace, with several key sets, a missing key, mixed int/float, and a record without a wave."""
    import copy

    from cardiosim.dataset.schema import (ANNOTATION_KEYS, _fill_annotations, _fill_annotations_at_once,
                                          _flat_params, _parameter_columns, beat_capacity)

    records = copy.deepcopy(_captured_block(4, 3)[0])
    del records[1].params["garment_slip_m"]
    records[2].params["extra_flag"] = True
    records[3].params["garment_slip_m"] = 3          # an int where the others are floats
    flats = [_flat_params(r.params) for r in records]
    naive: dict = {}
    for i, f in enumerate(flats):
        for k, v in f.items():
            naive.setdefault(k, [None] * len(records))[i] = v
    got = _parameter_columns(flats, len(records))
    assert got.keys() == naive.keys()
    for k in naive:
        assert got[k] == naive[k] and list(map(type, got[k])) == list(map(type, naive[k])), k

    n_t, fs = records[0].ecg.shape[1], records[0].fs
    cap = beat_capacity(n_t, fs)

    def fill(fn, recs):
        arrays = {k: np.full((len(recs), cap), -1, dtype=np.int32) for k in ANNOTATION_KEYS}
        types = np.full((len(recs), cap), "", dtype=object)
        return fn(recs, n_t, cap, arrays, types), arrays, types

    ok, a1, t1 = fill(_fill_annotations_at_once, records)
    _, a2, t2 = fill(_fill_annotations, records)
    assert ok and t1.tolist() == t2.tolist()
    for k in ANNOTATION_KEYS:
        np.testing.assert_array_equal(a1[k], a2[k])
    partial = copy.deepcopy(records)
    del partial[0].annotations["P_onset"]            # in some records only: record by record
    assert fill(_fill_annotations_at_once, partial)[0] is False


def test_block_arrays_equal_stacking_the_records():
    """simulate_block copies each record's ecg and accelerometer into the block's arrays as it
    goes; records_to_dataset given them builds the same dataset as stacking the records, the
    records' arrays are rows of them, and a record of another shape turns the name off."""
    import dataclasses
    import importlib

    import xarray as xr

    from cardiosim.errors import SignalError

    gen = importlib.import_module("cardiosim.dataset.generate")
    captured = []
    real = gen.records_to_dataset
    try:
        gen.records_to_dataset = lambda records, **kw: captured.append((records, kw)) or real(records, **kw)
        simulate_block(Recipe.from_dict({"records": 3, "duration": 2.0, "seed": 4}), 0, 3)
    finally:
        gen.records_to_dataset = real
    records, kw = captured[0]
    stacked = kw["stacked"]
    assert set(stacked) == {"ecg", "accelerometer"}
    for i, r in enumerate(records):
        assert np.shares_memory(r.ecg, stacked["ecg"][i]) and np.shares_memory(r.accelerometer, stacked["accelerometer"][i])
    plain = {k: v for k, v in kw.items() if k != "stacked"}
    copies = [dataclasses.replace(r, ecg=r.ecg.copy(), accelerometer=r.accelerometer.copy()) for r in records]
    xr.testing.assert_identical(real(records, **kw), real(copies, **plain))
    with pytest.raises(SignalError, match="stacked ecg"):
        real(records, **{**plain, "stacked": {"ecg": stacked["ecg"][:2]}})

    arrays = gen._BlockArrays(3)
    arrays.keep(copies[0], 0)
    arrays.keep(dataclasses.replace(copies[1], ecg=copies[1].ecg[:, :-5]), 1)   # another length
    arrays.keep(dataclasses.replace(copies[2], accelerometer=None), 2)
    assert arrays.stacked(3) == {}


def test_write_block_reuses_its_threads_buffers_and_simulate_block_never_does(tmp_path):
    """write_block packs into the calling thread's block buffers and reuses them for its next
    block (fresh tens-of-MB arrays cost page faults every block); simulate_block hands its
    dataset to the caller, so its arrays are never those buffers: a block returned earlier keeps
    its values through later write_block and simulate_block calls, and every shard reads back
    as the block simulated alone."""
    import importlib

    import xarray as xr

    gen = importlib.import_module("cardiosim.dataset.generate")
    recipe = Recipe.from_dict({"records": 12, "duration": 2.0, "seed": 8, "output": {"store_clean": True}})
    first = simulate_block(recipe, 0, 4)
    kept = {k: first[k].values.copy() for k in ("ecg", "clean_ecg", "accelerometer")}
    bufs = gen._CODES.__dict__.get("bufs", {})
    assert not any(np.shares_memory(first["ecg"].values, b) for b in bufs.values())
    paths = [tmp_path / f"b{i}.nc" for i in range(2)]
    gen.write_block(recipe, 4, 8, str(paths[0]))
    ecg_buf = gen._CODES.bufs[("ecg", np.dtype(np.float32).str)]
    gen.write_block(recipe, 8, 12, str(paths[1]))
    assert gen._CODES.bufs[("ecg", np.dtype(np.float32).str)] is ecg_buf       # reused, not reallocated
    again = simulate_block(recipe, 0, 4)
    assert not np.shares_memory(again["ecg"].values, ecg_buf)
    for k, v in kept.items():
        np.testing.assert_array_equal(first[k].values, v)
    for path, (a, b) in zip(paths, [(4, 8), (8, 12)]):
        with xr.open_dataset(path) as got:
            want = simulate_block(recipe, a, b)
            for k in kept:
                np.testing.assert_array_equal(got[k].values, want[k].values)
    generate(recipe, tmp_path / "all", progress=False)       # its end releases this thread's buffers
    assert "bufs" not in gen._CODES.__dict__


def test_block_packed_record_by_record_equals_packing_the_block():
    """simulate_block packs ecg, clean_ecg and the accelerometer record by record as it copies
    them into the block; the values are those of packing the float block whole, and an
    out-of-range record raises what packing the block raises."""
    import dataclasses
    import importlib

    import xarray as xr

    from cardiosim.dataset.storage import quantise_signals, signal_quanta
    from cardiosim.errors import SignalError

    gen = importlib.import_module("cardiosim.dataset.generate")
    base = {"records": 3, "duration": 2.0, "seed": 6, "output": {"store_clean": True}}
    packed = simulate_block(Recipe.from_dict(base), 0, 3)
    floats = simulate_block(Recipe.from_dict({**base, "output": {"store_clean": True, "pack_int16": False}}), 0, 3)
    assert {"ecg", "clean_ecg", "accelerometer"} <= set(packed.variables)
    full = gen._block_state(Recipe.from_dict(base)).ref.device.input_range_mv
    want, _ = quantise_signals(floats, full)
    xr.testing.assert_identical(packed.drop_attrs(), want.drop_attrs())

    captured = []
    real = gen.records_to_dataset
    try:
        gen.records_to_dataset = lambda records, **kw: captured.append(records) or real(records, **kw)
        simulate_block(Recipe.from_dict({**base, "output": {"store_clean": True, "pack_int16": False}}), 0, 2)
    finally:
        gen.records_to_dataset = real
    recs = [dataclasses.replace(r, ecg=r.ecg.copy()) for r in captured[0]]
    recs[1].ecg[3, 7] = 5e3                                         # beyond the int16 range
    arrays = gen._BlockArrays(2, signal_quanta(gen._BlockArrays.NAMES, full))
    kept = [arrays.keep(r, i) for i, r in enumerate(recs)]
    ds = xr.Dataset({"ecg": (("record", "lead", "time"), arrays.stacked(2)["ecg"])})
    with pytest.raises(SignalError) as got:
        arrays.check_quantised(ds)
    with pytest.raises(SignalError) as ref:
        quantise_signals(xr.Dataset({"ecg": (("record", "lead", "time"), np.stack([r.ecg for r in recs]))}), full)
    assert str(got.value) == str(ref.value) and "reaches" in str(got.value)
    assert np.shares_memory(kept[0].ecg, arrays.arrays["ecg"])


def test_a_record_with_more_beats_than_the_beat_axis_is_named():
    """A source annotating more beats than MAX_BEAT_RATE allows gets a SignalError naming the
    record and the count (the message used to reference an undefined name: a NameError)."""
    import dataclasses

    from cardiosim.dataset.schema import _annotation_variables, beat_capacity
    from cardiosim.errors import SignalError

    block = _captured_block(2, 3)[0]
    r = block[1]
    n_t = r.ecg.shape[1]
    cap = beat_capacity(n_t, r.fs)
    many = dataclasses.replace(r, beat_types=["N"] * (cap + 1), annotations={})
    with pytest.raises(SignalError, match=rf"{r.source_id!r} has {cap + 1} beats, more than the {cap}"):
        _annotation_variables([block[0], many], n_t, r.fs)
