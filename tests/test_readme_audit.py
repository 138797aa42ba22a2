"""What a new user's walk through README.md found: the obvious mistakes give one clear line, and
the README's files and tables agree with the package (all cheap: no dataset is generated)."""

import os
import re
import subprocess
import sys

import pytest
from conftest import PROJECT_ROOT, run_in_process

README = (PROJECT_ROOT / "README.md").read_text()


def run(*args, cwd):
    return subprocess.run([sys.executable, "-m", "cardiosim", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})


def _one_error_line(res):
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 2 and len(lines) == 1, res.stderr
    return lines[0]


def test_mesh_without_units_names_the_flag(tmp_path, capsys, monkeypatch):
    # main in this process (generate's one-line errors from a new process: tests/test_cli.py)
    code, out, err = run_in_process(capsys, monkeypatch, "generate", "--mesh", "body.obj", "--records", "1",
                                    "--output", "m.nc", cwd=tmp_path)
    line = _one_error_line(subprocess.CompletedProcess((), code, out, err))
    assert "--mesh-units" in line and "body.obj" in line
    assert not (tmp_path / "m.nc").exists()


def test_noise_fit_lead_by_index_or_name():
    from cardiosim.cli import _device_lead_index
    from cardiosim.errors import LeadError

    assert _device_lead_index("holter3_200hz", "II") == 1
    assert _device_lead_index("shirt12_500hz", "V1") == 6
    assert _device_lead_index("patch_128hz", "0") == 0
    with pytest.raises(LeadError, match="V1, V2"):
        _device_lead_index("shirt12_500hz", "V9")
    with pytest.raises(LeadError, match="out of range.*ECG"):
        _device_lead_index("patch_128hz", "3")


def test_noise_fit_unknown_lead_is_one_line_before_reading_anything(tmp_path):
    line = _one_error_line(run("noise", "fit", "walk_01.hea", "--electrode", "textile", "--activity", "walk",
                               "--device", "shirt12_500hz", "--lead", "V9", "-o", "n.json", cwd=tmp_path))
    assert "'V9'" in line and "aVF" in line
    assert not (tmp_path / "n.json").exists()


def test_generate_given_a_recipe_file_name_points_to_recipe_read(tmp_path):
    from cardiosim.dataset import generate
    from cardiosim.errors import ConfigError

    (tmp_path / "recipe.toml").write_text("records = 1\n")
    with pytest.raises(ConfigError, match=r"Recipe\.read\('.*recipe\.toml'\)"):
        generate(str(tmp_path / "recipe.toml"), tmp_path / "out.nc", progress=False)
    with pytest.raises(ConfigError, match="not valid TOML"):  # a broken recipe text keeps its own message
        generate("records = \n", tmp_path / "out.nc", progress=False)
    assert not (tmp_path / "out.nc").exists()


def test_readme_body_snippet_writes_every_electrode_of_the_shirt(tmp_path, monkeypatch):
    """The electrode file the README writes is the one its --mesh/--electrodes command line needs."""
    from cardiosim.device import load_device
    from cardiosim.geometry import make_layout, make_torso

    block = next(b for b in re.findall(r"```python\n(.*?)```", README, flags=re.S) if "read_electrodes(" in b)
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    exec(compile(block, "README.md", "exec"), ns)  # noqa: S102 - our own documentation
    device = load_device("shirt12_500hz")
    assert set(ns["electrodes"].electrodes) == set(make_layout(device.layout, make_torso()).electrodes)
    assert "--mesh body.obj --mesh-units mm --electrodes shirt.csv" in README


def test_readme_device_table_lists_every_shipped_device():
    from cardiosim.device import device_names

    table = README.split("Devices (`--device`, `recipe.device`):", 1)[1].split("\n\n", 2)[1]
    assert {m.group(1) for m in re.finditer(r"^\| `(\w+)` \|", table, flags=re.M)} == set(device_names())


def test_readme_snr_targets_name_a_kind_the_recipe_enables():
    """A target for a kind that is not in ``kinds`` changes nothing, so the README's examples enable it."""
    for m in re.finditer(r"snr_db = \{(\w+) = ", README):
        before = README[max(0, m.start() - 200):m.start()]
        assert re.search(rf'kinds = \[[^\]]*"{m.group(1)}"', before), README[m.start() - 200:m.end()]


@pytest.mark.parametrize("script, words", [("my_device_noise.py", "check that the generated records"),
                                           ("my_holter_rhythm.py", "check that the generated rhythm")])
def test_example_help_shows_the_whole_first_paragraph(script, words):
    res = subprocess.run([sys.executable, str(PROJECT_ROOT / "examples" / script), "--help"], capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
    assert res.returncode == 0, res.stderr
    assert words in " ".join(res.stdout.split())


def test_examples_readme_online_snippet_runs():
    """examples/README.md's online-augmentation block runs as written and gives labelled 12-lead items."""
    torch = pytest.importorskip("torch")
    text = (PROJECT_ROOT / "examples" / "README.md").read_text()
    (block,) = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    ns: dict = {}
    exec(compile(block, "examples/README.md", "exec"), ns)  # noqa: S102 - our own documentation
    x, y = ns["train"][1]
    assert tuple(x.shape) == (12, 5000) and y.tolist() == [0.0, 1.0, 1.0, 0.0]  # AF + NORM
    assert isinstance(ns["loader"], torch.utils.data.DataLoader)


def test_recipe_check_finds_what_generation_would(tmp_path, capsys, monkeypatch):
    """'recipe check' rejects an activity no record can draw and a missing device file, and warns
    about an SNR target for a kind that is off; 'generate' warns the same before it starts.
    The two warning checks run the command line (a new process's stderr: its one warning, or
    nothing); the three errors run ``main`` in this process, the code path of the command but for
    the interpreter's start-up (the one-line errors of new processes: tests/test_cli.py)."""
    def in_process(*args):
        code, out, err = run_in_process(capsys, monkeypatch, *args, cwd=tmp_path)
        return subprocess.CompletedProcess(args, code, out, err)

    (tmp_path / "act.toml").write_text("records = 1\n[simulation.activities]\njogging = 1\n")
    line = _one_error_line(in_process("recipe", "check", "act.toml"))
    assert "'jogging'" in line and "walk" in line
    (tmp_path / "dev.toml").write_text('device = "my_patch.toml"\n')
    assert "my_patch.toml" in _one_error_line(in_process("recipe", "check", "dev.toml"))
    (tmp_path / "snr.toml").write_text("records = 1\n[simulation.noise]\nsnr_db = {em = [6, 24]}\n")
    res = run("recipe", "check", "snr.toml", cwd=tmp_path)
    assert res.returncode == 0 and "valid recipe" in res.stdout
    assert res.stderr.count("warning") == 1 and "em" in res.stderr and "kinds" in res.stderr
    (tmp_path / "snr_on.toml").write_text('records = 1\n[simulation.noise]\nkinds = ["white", "em"]\n'
                                          'snr_db = {em = [6, 24]}\n')
    res = run("recipe", "check", "snr_on.toml", cwd=tmp_path)
    assert res.returncode == 0 and not res.stderr.strip(), res.stderr
    gen = in_process("generate", "--activities", "rest=1,jog=0.01", "--records", "1", "--output", "g.nc")
    assert "'jog'" in _one_error_line(gen) and not (tmp_path / "g.nc").exists()


def test_refine_train_without_clean_ecg_says_the_physics_term_is_off(tmp_path, data_dir):
    pytest.importorskip("torch")
    recordings = tmp_path / "rec"
    recordings.mkdir()
    for name in ("HR06000", "HR06001"):
        for ext in (".hea", ".mat"):
            src = data_dir / "cinc2021" / (name + ext)
            if not src.is_file():
                pytest.skip(f"no {src}")
            (recordings / src.name).symlink_to(src)
    assert run("generate", "--records", "2", "--duration", "4", "--output", "d.nc", cwd=tmp_path).returncode == 0
    res = run("refine", "train", "--dataset", "d.nc", "--recordings", "rec", "--output", "r.pt", "--steps", "1",
              "--batch", "2", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    warned = [ln for ln in res.stderr.splitlines() if "warning" in ln]
    assert len(warned) == 1 and "store_clean = true" in warned[0]
    quiet = run("refine", "train", "--dataset", "d.nc", "--recordings", "rec", "--output", "r2.pt", "--steps", "1",
                "--batch", "2", "--no-physics", cwd=tmp_path)
    assert quiet.returncode == 0 and "warning" not in quiet.stderr, quiet.stderr
