"""Every example runs at small size (subprocess, as a user would run it) and does what it says.

The PTB-XL example gets a native PTB-XL folder built in tmp from the real PTB-XL
signals of the CinC 2021 records and the first rows of PTB-XL's real database table
(the conftest fixture ptbxl_folder); it is skipped without the shared data.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import PROJECT_ROOT, PTBXL_FIXTURE_RECORDS

EXAMPLES = PROJECT_ROOT / "examples"


def run_example(name, *args, cwd, timeout=300):
    env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT), MPLBACKEND="Agg", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(EXAMPLES / name), *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_every_example_has_a_test():
    tested = {"displacement.py", "ptbxl_to_shirt.py", "synthetic_classes.py", "train_resnet_se.py",
              "patch_128hz.py", "distributed.py", "my_device_noise.py", "my_holter_rhythm.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


def _png_ok(path, min_std=0.02):
    from matplotlib.image import imread
    img = imread(path)
    assert img.shape[0] > 200 and img.shape[1] > 200
    assert img[..., :3].mean(axis=-1).std() > min_std


def test_displacement(tmp_path):
    out = run_example("displacement.py", "--small", "--out", tmp_path / "fig", cwd=tmp_path)
    for name in ("ecg_standard.png", "ecg_displaced.png", "overlay.png", "torso_electrodes.png"):
        _png_ok(tmp_path / "fig" / name)
    rows = {line.split("|")[0].strip(): line for line in out.splitlines() if line.count("|") == 2}
    # moving V1/V2 up two spaces changes V1/V2 only; limb leads are untouched (exact 1.000)
    assert rows["I"].split("|")[1].split() == ["1.000", "1.00"]
    assert float(rows["V2"].split("|")[1].split()[0]) < 0.99
    assert float(rows["V4"].split("|")[1].split()[0]) == 1.0


def test_synthetic_classes(tmp_path):
    import cardiosim
    from cardiosim.dataset import open_dataset
    from cardiosim.sources import load_label_map

    out = tmp_path / "syn.nc"
    run_example("synthetic_classes.py", "--small", "--out", out, cwd=tmp_path)
    tm = load_label_map("ten_class")
    with open_dataset(out) as ds:
        assert ds.sizes["record"] == 30 and ds["ecg"].dtype == np.float32
        assert tuple(str(c) for c in ds["class"].values) == tm.classes
        lab = ds["label"].values
        # every record carries the ten-class labels of its ODE class (sinus rhythm maps to none)
        raw = cardiosim.parameters(ds)["source_ode_class"]
        for k, combo in enumerate(raw):
            assert tuple(c for c, v in zip(tm.classes, lab[k]) if v) == tm.map_codes(combo.split("+"), "ode").labels
        assert set(ds["split"].values.astype(str)) <= {"train", "val", "test"}


@pytest.mark.slow
def test_train_resnet_se_beats_chance(tmp_path):
    out = run_example("train_resnet_se.py", "--small", "--workdir", tmp_path / "run", cwd=tmp_path)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test_macro_auroc"] > 0.8, out        # chance is 0.5
    assert metrics["seconds"] < 120
    # the fine-tuning path (lower LR, gradual unfreezing, device weighting) on the same file
    data = tmp_path / "run" / "synthetic.nc"
    out2 = run_example("train_resnet_se.py", "--small", "--data", data, "--finetune", data, "--real", data,
                       "--epochs", "1", "--workdir", tmp_path / "ft", cwd=tmp_path)
    m2 = json.loads((tmp_path / "ft" / "metrics.json").read_text())
    assert "trainable stages 2" in out2 and m2["device_test_macro_auroc_after"] > 0.5


def test_patch_128hz(tmp_path):
    from cardiosim.dataset import open_dataset

    out = tmp_path / "patch.nc"
    run_example("patch_128hz.py", "--small", "--out", out, cwd=tmp_path)
    with open_dataset(out) as ds:  # decodes the CF form write_netcdf gave the file

        assert ds.attrs["sampling_rate"] == 128.0 and ds.sizes["lead"] == 1
        assert ds.sizes["time"] == 1280 and ds.sizes["window"] == 6
        assert set(ds["activity"].values.astype(str)) == {"rest", "walking"}
        acc = ds["accelerometer"].values
        walking = ds["activity"].values.astype(str) == "walking"
        # gravity is there, and walking shakes the chest far more than rest
        assert 8 < np.linalg.norm(acc.mean(axis=2), axis=1).mean() < 11.5
        assert acc[walking].std(axis=2).sum(axis=1).mean() > 5 * acc[~walking].std(axis=2).sum(axis=1).mean()
        # same patient in every window: mean beats stay highly correlated
        assert np.nanmin(ds["beat_correlation"].values) > 0.8


@pytest.mark.slow
def test_distributed_matches_single_process(tmp_path):
    pytest.importorskip("dask.distributed")
    out = run_example("distributed.py", "--small", "--out", tmp_path / "dist", "--check", cwd=tmp_path)
    assert "identical to the single-process run: True" in out


@pytest.mark.shared_records(*PTBXL_FIXTURE_RECORDS)
def test_ptbxl_to_shirt(ptbxl_folder, tmp_path):
    import pandas as pd

    folder = ptbxl_folder  # conftest: native PTB-XL layout built from real signals
    db = pd.read_csv(folder / "ptbxl_database.csv")
    out_dir = tmp_path / "shirt"
    run_example("ptbxl_to_shirt.py", folder, "--small", "--out", out_dir, cwd=tmp_path)
    from cardiosim.dataset import open_dataset
    ds = open_dataset(out_dir).load()
    assert ds.sizes["record"] == 10 and len(list(out_dir.glob("shard-*.nc"))) == 3
    assert (out_dir / "manifest.json").is_file()
    folds = dict(zip(db["ecg_id"], db["strat_fold"]))
    for i in range(10):
        ecg_id = int(str(ds["source_id"].values[i]).split(":")[-1])
        assert int(ds["fold"].values[i]) == folds[ecg_id]
        split = str(ds["split"].values[i])
        assert split == {9: "val", 10: "test"}.get(folds[ecg_id], "train")
    # two shirt variants of each ECG: same source and labels, different recordings
    assert (ds["variant"].values == np.tile([0, 1], 5)).all() or sorted(ds["variant"].values) == [0] * 5 + [1] * 5
    ids = ds["source_id"].values.astype(str)
    first, second = [np.flatnonzero(ids == ids[0])[j] for j in (0, 1)]
    assert np.array_equal(ds["label"].values[first], ds["label"].values[second])
    assert not np.array_equal(ds["ecg"].values[first], ds["ecg"].values[second])
    assert ds["label"].values.sum() >= 5


def test_my_device_noise_fits_generates_and_compares(tmp_path):
    """--demo: stand-in recordings 3x (rest) and 2x (walk) the shipped gel level are fitted cell
    by cell into one file, a recipe pins it, and the generated records are compared per activity."""
    from cardiosim.dataset import Recipe
    from cardiosim.noise import textile

    out = tmp_path / "mine"
    stdout = run_example("my_device_noise.py", "--demo", "--small", "--out", out, cwd=tmp_path)
    assert "| rest |" in stdout and "| walk |" in stdout
    fit = json.loads((out / "my_noise.json").read_text())
    textile.check_fit(fit)
    assert set(fit["user_cells"]) == {"gel/rest", "gel/walk"}
    shipped = textile.load_fit()["table"]
    for cell in ("gel/rest", "gel/walk"):        # louder recordings -> a higher fitted level
        lvl = fit["table"][cell]["log_level_mean"] + fit["table"][cell]["log_level_calibration"]
        ref = shipped[cell]["log_level_mean"] + shipped[cell]["log_level_calibration"]
        assert lvl > ref + np.log(1.3), cell
    recipe = Recipe.read(out / "recipe.toml")
    assert recipe.simulation.noise.textile_fit == str((out / "my_noise.json").resolve())
    comp = json.loads((out / "comparison.json").read_text())
    assert set(comp) == {"rest", "walk"}
    assert all(np.isfinite(v["generated"]) and v["n_generated"] > 0 for v in comp.values())


def test_my_holter_rhythm_fits_generates_and_compares(tmp_path):
    """--demo: stand-in annotated records of a slow, fairly regular AF population (65-85 bpm, RR CV
    0.10-0.14) are fitted by ``cardiosim prior rhythm``, a recipe draws AF from that prior, and the
    generated records' rate and irregularity follow the recordings', not the shipped prior's
    (whose AF median is about 93 bpm, CV 0.22)."""
    from cardiosim.dataset import Recipe

    out = tmp_path / "mine"
    stdout = run_example("my_holter_rhythm.py", "--demo", "--small", "--out", out, cwd=tmp_path)
    assert "| recordings |" in stdout and "| generated |" in stdout
    prior = json.loads((out / "rhythm.json").read_text())
    assert prior["af"]["n_windows"] >= 20 and prior["command"].startswith("cardiosim prior rhythm")
    assert Recipe.read(out / "recipe.toml").source.rhythm_prior == str((out / "rhythm.json").resolve())
    comp = json.loads((out / "comparison.json").read_text())
    assert 65.0 <= comp["generated"]["rate_median"] <= 90.0
    assert comp["generated"]["cv_median"] <= 0.16
