"""The command line end to end, and its errors: one line, exit status 2, no partial file."""

import subprocess
import sys

import pytest

from conftest import PROJECT_ROOT, run_in_process


def run(*args, cwd):
    return subprocess.run([sys.executable, "-m", "cardiosim", *args], capture_output=True, text=True, cwd=cwd,
                          env={**__import__("os").environ, "PYTHONPATH": str(PROJECT_ROOT)})



def test_generate_then_info(tmp_path, capsys, monkeypatch):
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
    code, _, err = run_in_process(capsys, monkeypatch, "plot", "d.nc", "--record", "3", cwd=tmp_path)
    assert code == 2 and "out of range" in err     # (main in this process: the code path, no start-up)


def test_generate_with_activities_and_electrode(tmp_path, capsys, monkeypatch):
    """--activities and --electrode set what the wearer does and wears, stored per record.
    Through ``main`` in this process, the code path of the command but for the interpreter's
    start-up (generate from a new process: test_generate_then_info, and its one-line errors:
    test_bad_arguments_give_one_line_and_no_file)."""
    import xarray as xr

    code, _, err = run_in_process(capsys, monkeypatch, "generate", "--records", "4", "--duration", "4", "--activities",
                                  "run=1,walk=0", "--electrode", "dry", "--device", "chest_strap_500hz", "--output",
                                  "s.nc", "--no-progress", cwd=tmp_path)
    assert code == 0, err
    with xr.open_dataset(tmp_path / "s.nc") as ds:
        assert set(ds["param_activity"].values.tolist()) == {"run"}
        assert set(ds["param_noise_activity_noise_electrode"].values.tolist()) == {"dry"}
    for bad, needle in ((["--activities", "walk=fast"], "walk"), (["--activities", "swim"], "swim"),
                        (["--activities", "walk=-1"], "walk"), (["--electrode", "wet"], "wet")):
        code, _, err = run_in_process(capsys, monkeypatch, "generate", "--records", "1", "--duration", "1",
                                      "--no-progress", "--output", "x.nc", *bad, cwd=tmp_path)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert code == 2 and len(lines) == 1 and needle in lines[0], err
        assert not (tmp_path / "x.nc").exists()


def test_recipe_init_and_check(tmp_path, capsys, monkeypatch):
    assert run("recipe", "init", "r.toml", cwd=tmp_path).returncode == 0
    text = (tmp_path / "r.toml").read_text()
    assert text.startswith("# cardiosim recipe") and "[simulation.garment]" in text
    ok = run("recipe", "check", "r.toml", cwd=tmp_path)
    assert ok.returncode == 0 and "valid recipe" in ok.stdout
    (tmp_path / "bad.toml").write_text(text.replace("slip_sd", "slipsd"))
    code, _, err = run_in_process(capsys, monkeypatch, "recipe", "check", "bad.toml", cwd=tmp_path)
    assert code == 2 and "slipsd" in err           # (main in this process: the code path, no start-up)


# new_process: the errors argparse raises while it parses (before any command code runs) are
# given to main in this process, the same code path; those raised by the command itself are
# also checked from a new process, whose exit could print more (a pool's or a file's clean-up).
@pytest.mark.parametrize("args,needle,new_process", [
    (["--duration", "-3"], "--duration", False),
    (["--frobnicate"], "--frobnicate", False),
    (["--output", "no/such/dir/x.nc"], "does not exist", True),
    (["--records", "zero"], "--records", False),
    (["--device", "toaster_9000"], "toaster_9000", True),
])
def test_bad_arguments_give_one_line_and_no_file(tmp_path, capsys, monkeypatch, args, needle, new_process):
    cli_args = ("generate", "--records", "2", "--duration", "1", "--no-progress", *args)
    if new_process:
        out = run(*cli_args, cwd=tmp_path)
        code, err = out.returncode, out.stderr
    else:
        code, _, err = run_in_process(capsys, monkeypatch, *cli_args, cwd=tmp_path)
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert needle in lines[0] and "error" in lines[0]
    assert not any(p.suffix in (".nc", ".tmp") for p in tmp_path.rglob("*")), list(tmp_path.rglob("*"))


def test_help_and_recipe_comment_name_every_shipped_device(tmp_path, capsys, monkeypatch):
    """(``main`` in this process: ``--help`` and ``recipe init`` from a new process are
    test_python_dash_m_shows_help and test_recipe_init_and_check.)"""
    from cardiosim.device.profile import device_names

    names = device_names()
    assert len(names) >= 7 and "handheld_300hz" in names and "mobile12_500hz" in names
    code, out, _ = run_in_process(capsys, monkeypatch, "generate", "--help", cwd=tmp_path)
    assert code == 0
    helptext = " ".join(out.split())
    assert run_in_process(capsys, monkeypatch, "recipe", "init", "r.toml", cwd=tmp_path)[0] == 0
    comment = (tmp_path / "r.toml").read_text()
    for name in names:
        assert name in helptext and name in comment, name


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


def _beat_train(fs, seconds, rng):
    """A lead of identical beats (QRS peak-to-peak 1.0 + 0.25 = 1.25 mV before the band-pass) at
    varying RR, and 2-30 Hz Gaussian noise of RMS 0.05 mV."""
    import numpy as np
    from scipy import signal

    n = int(seconds * fs)
    t = np.arange(int(0.5 * fs)) / fs - 0.1
    beat = (np.exp(-0.5 * (t / 0.010) ** 2) - 0.25 * np.exp(-0.5 * ((t - 0.025) / 0.008) ** 2)
            + 0.25 * np.exp(-0.5 * ((t - 0.26) / 0.045) ** 2))
    x = np.zeros(n)
    r = int(0.3 * fs)
    while r + beat.size < n:
        x[r: r + beat.size] += beat
        r += int(rng.uniform(0.7, 0.95) * fs)
    noise = signal.sosfiltfilt(signal.butter(4, [2.0, 30.0], "bandpass", fs=fs, output="sos"), rng.standard_normal(n))
    return x, 0.05 * noise / noise.std()


def test_measure_reads_a_wfdb_record_and_a_dataset(tmp_path, capsys, monkeypatch):
    """``cardiosim measure``: a WFDB record (one lead in mV, one in ADC units) with noise of known
    RMS on a beat train reads that RMS over the QRS size; a dataset needs --record; an unknown
    channel is named; the JSON holds every segment. Measuring the WFDB record runs the command
    line; the rest runs ``main`` in this process (the code path but for the interpreter's start-up)."""
    import json

    import numpy as np
    import wfdb

    from cardiosim.noise.textile import measure_record

    fs = 500.0
    x, noise = _beat_train(fs, 30.0, np.random.default_rng(3))
    expected = 0.05 / measure_record(x, fs).qrs_pp            # the clean train's own QRS size
    sig = np.stack([x + noise, 200.0 * (x + noise)], axis=1)
    wfdb.wrsamp("rec", fs=fs, units=["mV", "adu"], sig_name=["ECG", "RAW"], p_signal=sig, fmt=["16", "16"],
                adc_gain=[1000.0, 5.0], baseline=[0, 0], write_dir=str(tmp_path))
    out = run("measure", "rec", "--json", "m.json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    res = json.loads((tmp_path / "m.json").read_text())
    for lead in ("ECG", "RAW"):
        m = res["leads"][lead]
        assert m["noise_to_qrs_median"] == pytest.approx(expected, rel=0.15), (lead, m["noise_to_qrs_median"])
        assert len(m["noise_to_qrs"]) == len(m["grades"]) == 15
    assert res["leads"]["RAW"]["qrs_pp"] == pytest.approx(200.0 * res["leads"]["ECG"]["qrs_pp"], rel=0.01)
    assert "| ECG |" in out.stdout and "| RAW |" in out.stdout
    code, _, err = run_in_process(capsys, monkeypatch, "measure", "rec", "--channel", "V9", cwd=tmp_path)
    assert code == 2 and "unknown channel(s) V9" in err and "ECG, RAW" in err

    code, _, err = run_in_process(capsys, monkeypatch, "generate", "--records", "2", "--duration", "8", "--device",
                                  "chest_strap_500hz", "--output", "d.nc", "--no-progress", cwd=tmp_path)
    assert code == 0, err
    code, _, err = run_in_process(capsys, monkeypatch, "measure", "d.nc", cwd=tmp_path)
    assert code == 2 and "--record" in err
    code, out, err = run_in_process(capsys, monkeypatch, "measure", "d.nc", "--record", "1", cwd=tmp_path)
    assert code == 0, err
    assert "| ECG |" in out
