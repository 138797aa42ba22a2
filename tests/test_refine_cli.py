"""``cardiosim refine train / apply`` and ``generate`` with a ``[refine]`` recipe (issue 18).

Tiny datasets, two training steps: these check the plumbing and the one-line errors;
what training achieves is checked in tests/test_refine_pretrain.py and the sim-to-real
benchmark.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from cardiosim.cli import main  # noqa: E402
from cardiosim.dataset import Recipe, generate, open_dataset  # noqa: E402
from cardiosim.torch.refine import record_r_peaks, load_refiner, refine_records  # noqa: E402


class Out:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def run(capsys, monkeypatch):
    """The command line in this process (``python -m cardiosim`` itself: tests/test_cli.py)."""
    def call(*args, cwd):
        monkeypatch.chdir(cwd)
        code = main(list(args))
        cap = capsys.readouterr()
        return Out(code, cap.out, cap.err)
    return call


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    folder = tmp_path_factory.mktemp("refine_cli")
    base = {"records": 2, "duration": 2.0, "output": {"store_clean": True, "pack_int16": False}}
    generate(Recipe.from_dict({**base, "seed": 1}), folder / "sim.nc", progress=False)
    (folder / "device").mkdir()
    # stand-in "device recordings": another simulated dataset read as netCDF recordings
    generate(Recipe.from_dict({**base, "seed": 2, "duration": 4.0}), folder / "device" / "rec.nc", progress=False)
    return folder


def test_train_apply_and_generate_from_the_command_line(datasets, run):
    f = datasets
    out = run("refine", "train", "--dataset", "sim.nc", "--recordings", "device", "--output", "r.pt",
              "--steps", "2", "--batch", "2", "--seed", "3", "--lambda-beat", "1.5", cwd=f)
    assert out.returncode == 0, out.stderr
    assert "wrote r.pt" in out.stdout and "physics" in out.stdout and "beat" in out.stdout
    model, settings = load_refiner(f / "r.pt", fs=500.0, n_leads=12)
    assert settings["steps"] == 2 and settings["lambda_physics"] > 0 and settings["n_real"] == 4  # 2 x (4 s / 2 s)
    assert settings["lambda_beat"] == 1.5 and settings["keep_average_beat"] is True   # the default
    assert settings["mode"] == model.config["mode"] == "record"        # the default (README)
    assert settings["max_slope_fraction"] == model.config["max_slope_fraction"] == 0.25  # the default bound
    out = run("refine", "train", "--dataset", "sim.nc", "--recordings", "device", "--output", "r0.pt",
              "--steps", "1", "--batch", "2", "--max-slope-fraction", "0.1", cwd=f)
    assert out.returncode == 0, out.stderr
    assert load_refiner(f / "r0.pt")[0].config["max_slope_fraction"] == 0.1
    assert load_refiner(f / "r0.pt")[0].config["max_amplitude_fraction"] == 0.05   # the default
    out = run("refine", "train", "--dataset", "sim.nc", "--recordings", "device", "--output", "rr.pt",
              "--steps", "1", "--batch", "2", "--mode", "residual", cwd=f)
    assert out.returncode == 0, out.stderr
    assert load_refiner(f / "rr.pt")[0].config["mode"] == "residual"
    bad = run("refine", "train", "--dataset", "sim.nc", "--recordings", "device", "--output", "r1.pt",
              "--steps", "1", "--batch", "2", "--max-slope-fraction", "-1", cwd=f)
    assert bad.returncode == 2 and "max-slope-fraction" in bad.stderr
    again = run("refine", "train", "--dataset", "sim.nc", "--recordings", "device", "--output", "r.pt",
                "--steps", "2", "--batch", "2", cwd=f)
    assert again.returncode == 2 and "exists" in again.stderr
    # apply: the refiner on every record, the input kept as ecg_simulated
    out = run("refine", "apply", "--dataset", "sim.nc", "--refiner", "r.pt", "--output", "refined.nc", cwd=f)
    assert out.returncode == 0, out.stderr
    ds, sim = open_dataset(f / "refined.nc"), open_dataset(f / "sim.nc")
    assert np.array_equal(ds["ecg"].values, refine_records(model, sim["ecg"].values, r_peaks=record_r_peaks(sim),
                                                           fs=500.0))
    assert np.array_equal(ds["ecg_simulated"].values, sim["ecg"].values)
    # generate with a [refine] recipe: routed through generate_refined
    (f / "r.toml").write_text('records = 2\nduration = 2.0\nseed = 1\n[output]\nstore_clean = true\n'
                              'pack_int16 = false\n[refine]\nmodel = "r.pt"\n')
    out = run("generate", "--recipe", "r.toml", "--output", "gen.nc", "--no-progress", cwd=f)
    assert out.returncode == 0, out.stderr
    assert np.array_equal(open_dataset(f / "gen.nc")["ecg"].values, ds["ecg"].values)


@pytest.mark.parametrize("args, needle", [
    (("refine", "train", "--dataset", "none.nc", "--recordings", "device", "--output", "x.pt"), "does not exist"),
    (("refine", "train", "--dataset", "sim.nc", "--recordings", "nowhere", "--output", "x.pt"), "does not exist"),
    (("refine", "apply", "--dataset", "sim.nc", "--refiner", "none.pt", "--output", "x.nc"), "does not exist"),
    (("refine", "apply", "--dataset", "sim.nc", "--refiner", "r100.pt", "--output", "x.nc"), "100.0 Hz"),
    (("refine",), "train or apply"),
])
def test_errors_are_one_line_and_write_nothing(datasets, run, args, needle):
    from cardiosim.torch.refine import Refiner, save_refiner

    save_refiner(Refiner(12, channels=4, blocks=1), datasets / "r100.pt", settings={"fs": 100.0})
    out = run(*args, cwd=datasets)
    assert out.returncode == 2, out.stderr
    assert needle in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert not (datasets / "x.pt").exists() and not (datasets / "x.nc").exists()
