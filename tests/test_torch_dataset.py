"""ShirtECGDataset over netCDF files in the DESIGN.md "Output dataset" schema.

Fixtures are written here with xarray in that schema (and, when it exists, with
cardiosim.dataset's own writer); the oracle is xarray reading the same file directly.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
xr = pytest.importorskip("xarray")

from cardiosim.errors import ConfigError, DataFormatError, LeadError
from cardiosim.leads import STANDARD_LEADS
from cardiosim.torch import ShirtECGDataset

CLASSES = ("NORM", "MI", "STTC", "CD", "HYP")
ELECTRODES = ("RA", "LA", "LL", "V1", "V2", "V3", "V4", "V5", "V6")
NOISE = ("bw", "em", "ma", "pli")


def make_schema_dataset(n_records, rng, *, fs=100.0, n_time=250, start=0):
    splits = np.array(["train", "val", "test"])[rng.integers(0, 3, n_records)]
    ds = xr.Dataset(
        {
            "ecg": (("record", "lead", "time"), rng.normal(size=(n_records, 12, n_time)).astype(np.float32),
                    {"units": "mV", "long_name": "simulated device ECG"}),
            "label": (("record", "class"), rng.integers(0, 2, (n_records, len(CLASSES))).astype(np.int8)),
            "source_id": (("record",), np.array([f"ode:{start + i}" for i in range(n_records)], dtype=object)),
            "heart_rate": (("record",), rng.uniform(50, 120, n_records).astype(np.float32), {"units": "bpm"}),
            "displacement": (("record", "electrode", "space"),
                             rng.normal(scale=0.01, size=(n_records, len(ELECTRODES), 3)).astype(np.float32),
                             {"units": "m"}),
            "snr_db": (("record", "noise"), rng.uniform(0, 30, (n_records, len(NOISE))).astype(np.float32)),
            "split": (("record",), splits.astype(object)),
        },
        coords={"record": np.arange(start, start + n_records), "lead": list(STANDARD_LEADS),
                "time": np.arange(n_time) / fs, "class": list(CLASSES), "electrode": list(ELECTRODES),
                "space": ["x", "y", "z"], "noise": list(NOISE)},
        attrs={"sampling_rate": fs, "device": "shirt12", "recipe": "[x]\na = 1\n", "seed": 7},
    )
    return ds


@pytest.fixture
def single_file(tmp_path, rng):
    path = tmp_path / "data.nc"
    make_schema_dataset(13, rng).to_netcdf(path, engine="netcdf4")
    return path


@pytest.fixture
def shard_dir(tmp_path, rng):
    d = tmp_path / "shards"
    d.mkdir()
    sizes = (5, 7, 4)
    start = 0
    names = []
    for k, n in enumerate(sizes):
        name = f"shard-{k:05d}.nc"
        make_schema_dataset(n, rng, start=start).to_netcdf(d / name, engine="netcdf4")
        names.append({"path": name, "n_records": n})
        start += n
    (d / "manifest.json").write_text(json.dumps({"shards": names}))
    return d


def _direct(paths):
    """Concatenate all records by reading the netCDF files with xarray directly."""
    parts = [xr.open_dataset(p, engine="netcdf4").load() for p in paths]
    return xr.concat(parts, dim="record")


def test_single_file_yields_same_tensors_as_xarray(single_file):
    ds = ShirtECGDataset(single_file, return_metadata=True)
    ref = _direct([single_file])
    assert len(ds) == 13 and ds.leads == STANDARD_LEADS and ds.classes == CLASSES
    assert ds.sampling_rate == 100.0 and ds.attrs["device"] == "shirt12"
    for i in range(len(ds)):
        ecg, label, meta = ds[i]
        assert ecg.dtype == torch.float32 and ecg.shape == (12, 250)
        np.testing.assert_array_equal(ecg.numpy(), ref["ecg"].values[i])
        np.testing.assert_array_equal(label.numpy(), ref["label"].values[i].astype(np.float32))
        assert meta["source_id"] == str(ref["source_id"].values[i])
        assert meta["split"] == str(ref["split"].values[i])
        assert meta["heart_rate"] == pytest.approx(float(ref["heart_rate"].values[i]))
        np.testing.assert_array_equal(meta["displacement"].numpy(), ref["displacement"].values[i])
        np.testing.assert_array_equal(meta["snr_db"].numpy(), ref["snr_db"].values[i])


def test_shards_manifest_lead_selection_and_split(shard_dir):
    files = sorted(shard_dir.glob("shard-*.nc"))
    ref = _direct(files)
    ds = ShirtECGDataset(shard_dir, leads=["v2", "II", "aVR"])
    assert len(ds) == 16 and ds.leads == ("V2", "II", "aVR")
    cols = [STANDARD_LEADS.index(x) for x in ("V2", "II", "aVR")]
    for i in (0, 4, 5, 11, 12, 15, -1):
        ecg, label = ds[i]
        np.testing.assert_array_equal(ecg.numpy(), ref["ecg"].values[i][cols])
        np.testing.assert_array_equal(label.numpy(), ref["label"].values[i])
    test = ShirtECGDataset(shard_dir, split="test", return_metadata=True)
    want = np.flatnonzero(ref["split"].values.astype(str) == "test")
    assert len(test) == len(want) > 0
    for j, i in enumerate(want):
        ecg, _, meta = test[j]
        assert meta["split"] == "test" and meta["source_id"] == f"ode:{i}"
        np.testing.assert_array_equal(ecg.numpy(), ref["ecg"].values[i])
    with pytest.raises(IndexError, match="16"):
        ds[16]
    crop = ShirtECGDataset(shard_dir, transform=lambda x: 2 * x[:, 10:60])
    np.testing.assert_array_equal(crop[7][0].numpy(), 2 * ref["ecg"].values[7][:, 10:60])


def test_dataloader_with_two_workers_reads_every_record_once(shard_dir):
    ref = _direct(sorted(shard_dir.glob("shard-*.nc")))
    ds = ShirtECGDataset(shard_dir, return_metadata=True)
    loader = torch.utils.data.DataLoader(ds, batch_size=3, shuffle=True, num_workers=2,
                                         generator=torch.Generator().manual_seed(0))
    seen = {}
    for ecg, label, meta in loader:
        assert ecg.shape[1:] == (12, 250)
        for b, sid in enumerate(meta["source_id"]):
            seen[sid] = (ecg[b].numpy(), label[b].numpy())
    assert sorted(seen) == sorted(f"ode:{i}" for i in range(16))
    for i in range(16):
        np.testing.assert_array_equal(seen[f"ode:{i}"][0], ref["ecg"].values[i])
        np.testing.assert_array_equal(seen[f"ode:{i}"][1], ref["label"].values[i])


def test_dataset_generated_by_cardiosim_dataset(tmp_path):
    """End to end: shards written by cardiosim.dataset.generate, read back identically to
    cardiosim.dataset.open_dataset, also through two DataLoader workers."""
    import cardiosim.dataset as dsmod

    recipe = dsmod.Recipe(seed=3, records=6, duration=2.0, forward="infinite",
                          source=dsmod.SourceRecipe(kind="ode", classes={"SR+NORM": 1.0, "AF+NORM": 1.0}),
                          output=dsmod.OutputRecipe(shard_size=4, store_clean=True))
    out = tmp_path / "shards"
    dsmod.generate(recipe, out, progress=False)
    ref = dsmod.open_dataset(out).load()
    ds = ShirtECGDataset(out, return_metadata=True)
    assert len(ds) == 6 and len(ds.files) == 2 and ds.sampling_rate == ref.attrs["sampling_rate"]
    for i in range(6):
        ecg, label, meta = ds[i]
        np.testing.assert_array_equal(ecg.numpy(), ref["ecg"].values[i])
        np.testing.assert_array_equal(label.numpy(), ref["label"].values[i])
        assert meta["source_id"] == str(ref["source_id"].values[i]) and meta["fold"] == int(ref["fold"].values[i])
        np.testing.assert_array_equal(meta["accelerometer"].numpy(), ref["accelerometer"].values[i])
    loader = torch.utils.data.DataLoader(ShirtECGDataset(out), batch_size=6, num_workers=2)
    (ecg, label), = list(loader)
    np.testing.assert_array_equal(ecg.numpy(), ref["ecg"].values)
    assert label.sum(dim=1).min() >= 1
    # the clean signal and the ground-truth beats on request, as stored
    pairs = ShirtECGDataset(out, leads=["II", "V2"], return_clean=True, return_annotations=True)
    for i in range(6):
        ecg, label, extra = pairs[i]
        assert set(extra) == {"clean_ecg", "annotations", "beat_type"}
        np.testing.assert_array_equal(extra["clean_ecg"].numpy(), ref["clean_ecg"].values[i][[1, 7]])
        n = len(extra["beat_type"])
        assert n >= 1 and extra["beat_type"] == [str(t) for t in ref["beat_type"].values[i][:n]]
        np.testing.assert_array_equal(extra["annotations"]["R_peak"].numpy(), ref["beat_r_peak"].values[i][:n])
        np.testing.assert_array_equal(extra["annotations"]["QRS_onset"].numpy(), ref["beat_qrs_onset"].values[i][:n])
        assert np.all(ref["beat_r_peak"].values[i][n:] == -1)
    with pytest.raises(DataFormatError, match="store_clean"):
        ShirtECGDataset(_without_clean(tmp_path), return_clean=True)


def _without_clean(tmp_path):
    import cardiosim.dataset as dsmod

    out = tmp_path / "plain.nc"
    dsmod.generate(dsmod.Recipe(seed=3, records=1, duration=1.0, forward="infinite"), out, progress=False)
    return out


def test_file_replaced_on_disk_is_reread(tmp_path, rng):
    path = tmp_path / "regen.nc"
    make_schema_dataset(3, rng).to_netcdf(path, engine="netcdf4")
    first = ShirtECGDataset(path)[0][0]
    new = make_schema_dataset(3, rng)
    tmp = tmp_path / "tmp.nc"
    new.to_netcdf(tmp, engine="netcdf4")
    tmp.replace(path)                         # atomic regeneration, as cardiosim.dataset writes
    again = ShirtECGDataset(path)[0][0]
    np.testing.assert_array_equal(again.numpy(), new["ecg"].values[0])
    assert not torch.equal(first, again)


def test_bad_inputs_raise(tmp_path, single_file):
    with pytest.raises(DataFormatError, match="nope"):
        ShirtECGDataset(tmp_path / "nope.nc")
    with pytest.raises(LeadError, match="V7"):
        ShirtECGDataset(single_file, leads=["I", "V7"])
    with pytest.raises(ConfigError, match="holdout"):
        ShirtECGDataset(single_file, split="holdout")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataFormatError, match="shard"):
        ShirtECGDataset(empty)
    (empty / "manifest.json").write_text(json.dumps({"shards": ["shard-00009.nc"]}))
    with pytest.raises(DataFormatError, match="shard-00009"):
        ShirtECGDataset(empty)
    (empty / "manifest.json").write_text(json.dumps({"shards": {}, "n_shards": 2}))
    with pytest.raises(DataFormatError, match="incomplete"):
        ShirtECGDataset(empty)
    xr.Dataset({"ecg": (("record", "lead", "time"), np.zeros((1, 1, 3), np.float32))},
               coords={"lead": ["I"]}, attrs={"sampling_rate": 1.0}).to_netcdf(tmp_path / "nolabel.nc")
    with pytest.raises(DataFormatError, match="label"):
        ShirtECGDataset(tmp_path / "nolabel.nc")
