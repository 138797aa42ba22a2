"""The command line end to end, and its errors: one line, exit status 2, no partial file."""

import subprocess
import sys

import pytest

from conftest import PROJECT_ROOT


def run(*args, cwd):
    return subprocess.run([sys.executable, "-m", "cardiosim", *args], capture_output=True, text=True, cwd=cwd,
                          env={**__import__("os").environ, "PYTHONPATH": str(PROJECT_ROOT)})


def test_generate_then_info(tmp_path):
    out = run("generate", "--records", "3", "--duration", "2", "--seed", "5", "--output", "d.nc", "--no-progress",
              cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "wrote 3 records" in out.stdout
    assert (tmp_path / "d.nc").is_file()
    assert not list(tmp_path.glob(".*tmp")), "temporary files left behind"
    info = run("info", "d.nc", cwd=tmp_path)
    assert info.returncode == 0, info.stderr
    assert "records       3" in info.stdout and "V6" in info.stdout
    plot = run("plot", "d.nc", "--record", "2", "--output", "r2.png", cwd=tmp_path)
    assert plot.returncode == 0, plot.stderr
    png = (tmp_path / "r2.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 20_000
    bad = run("plot", "d.nc", "--record", "3", cwd=tmp_path)
    assert bad.returncode == 2 and "out of range" in bad.stderr


def test_recipe_init_and_check(tmp_path):
    assert run("recipe", "init", "r.toml", cwd=tmp_path).returncode == 0
    text = (tmp_path / "r.toml").read_text()
    assert text.startswith("# cardiosim recipe") and "[simulation.garment]" in text
    ok = run("recipe", "check", "r.toml", cwd=tmp_path)
    assert ok.returncode == 0 and "valid recipe" in ok.stdout
    (tmp_path / "bad.toml").write_text(text.replace("slip_sd", "slipsd"))
    bad = run("recipe", "check", "bad.toml", cwd=tmp_path)
    assert bad.returncode == 2 and "slipsd" in bad.stderr


@pytest.mark.parametrize("args,needle", [
    (["--duration", "-3"], "--duration"),
    (["--frobnicate"], "--frobnicate"),
    (["--output", "no/such/dir/x.nc"], "does not exist"),
    (["--records", "zero"], "--records"),
    (["--device", "toaster_9000"], "toaster_9000"),
])
def test_bad_arguments_give_one_line_and_no_file(tmp_path, args, needle):
    out = run("generate", "--records", "2", "--duration", "1", "--no-progress", *args, cwd=tmp_path)
    assert out.returncode == 2
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, out.stderr
    assert needle in lines[0] and "error" in lines[0]
    assert not any(p.suffix in (".nc", ".tmp") for p in tmp_path.rglob("*")), list(tmp_path.rglob("*"))


def test_python_dash_m_shows_help(tmp_path):
    out = run("--help", cwd=tmp_path)
    assert out.returncode == 0 and "generate" in out.stdout


def test_warnings_are_one_line_each_and_repeats_are_counted(monkeypatch, capsys):
    """A folder of real records printed Python's two-line warning (with the source line that
    raised it) once per record: 25 records, 50 lines before the result. Now one line each,
    three of a kind in full, the rest counted once at the end; other kinds still shown."""
    import warnings

    from cardiosim import cli
    from cardiosim.errors import ConsistencyWarning, LabelMappingWarning

    def fake_info(args):
        for k in range(5):
            warnings.warn(f"record r{k}: snomed codes ['1'] are not mapped", LabelMappingWarning)
        warnings.warn("record r9: leads ['V2'] are flat", ConsistencyWarning)
        print("done")
        return 0

    monkeypatch.setattr(cli, "_cmd_info", fake_info)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        before = warnings.showwarning
        assert cli.main(["info", "anything.nc"]) == 0
        assert warnings.showwarning is before          # restored when the command ends
    out = capsys.readouterr()
    lines = out.err.strip().splitlines()
    assert lines == ["cardiosim info: warning: record r0: snomed codes ['1'] are not mapped",
                     "cardiosim info: warning: record r1: snomed codes ['1'] are not mapped",
                     "cardiosim info: warning: record r2: snomed codes ['1'] are not mapped",
                     "cardiosim info: warning: record r9: leads ['V2'] are flat",
                     "cardiosim info: warning: 2 more LabelMappingWarning not shown (5 in all)"]
    assert out.out == "done\n"
