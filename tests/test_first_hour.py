"""A new user's first hour (issue 17): each failure reproduced, then fixed.

Failures 2-4 and the file mode of 6 (reading without dask, corrupted shards, workers of a
killed run, 0600 files) are tested in tests/test_storage.py and tests/test_generation.py.
"""

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cardiosim.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def folder_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("first") / "out"
    assert main(["generate", "--records", "3", "--duration", "2", "--shard-size", "2", "--forward", "infinite",
                 "--output", str(out), "--quiet"]) == 0
    return out


def test_1_plot_works_on_a_folder_dataset(folder_dataset, capsys):
    """`cardiosim plot DIR` crashed with "'item' is not yet a valid method on dask arrays"."""
    png = folder_dataset.parent / "rec2.png"
    assert main(["plot", str(folder_dataset), "--record", "2", "--output", str(png)]) == 0
    assert png.stat().st_size > 10_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "ode:" not in capsys.readouterr().err


def _readme_block(title: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split(f"## {title}", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S).group(1)
    return [ln.split("  #", 1)[0].strip() for ln in block.splitlines() if ln.strip()]


def _generate_calls(lines):
    """(output, arguments) of every `cardiosim generate` in ``lines`` (`&&` chains split)."""
    calls = []
    for line in lines:
        for cmd in line.split("&&"):
            argv = shlex.split(cmd)
            if argv[:2] == ["cardiosim", "generate"]:
                out = argv[argv.index("--output") + 1] if "--output" in argv else "shirt_ecg.nc"
                calls.append((out.rstrip("/"), tuple(argv[2:])))
    return calls


def test_5_readme_commands_do_not_collide():
    """Two README commands with different recipes wrote into the same `out/`, and the second
    was refused as "a different recipe": every output directory is written by one recipe."""
    calls = _generate_calls(_readme_block("Command line"))
    assert len(calls) >= 4
    by_output: dict = {}
    for out, args in calls:
        by_output.setdefault(out, set()).add(args)
    shared = {out: sorted(a) for out, a in by_output.items() if len(a) > 1}
    assert shared == {}, f"README commands write different recipes into the same output: {shared}"
    # what `info` / `plot` / `export` read was written before them (or by the set-up command)
    written = {o for o, _ in _generate_calls(_readme_block("Set up"))}
    for line in _readme_block("Command line"):
        for cmd in line.split("&&"):
            argv = shlex.split(cmd)
            if argv[:1] == ["cardiosim"] and argv[1:2] == ["generate"]:
                written.add(_generate_calls([cmd])[0][0])
            elif argv[:1] == ["cardiosim"] and argv[1:2] in (["info"], ["plot"], ["export"]):
                assert argv[2].rstrip("/") in written, f"{cmd.strip()!r} reads a dataset no command wrote"


def test_6_unreachable_scheduler_fails_fast_in_one_line(tmp_path):
    """An unreachable --scheduler waited 30 s and printed a traceback."""
    pytest.importorskip("distributed", reason="dask.distributed is not installed")
    from cardiosim.dataset.generate import _executor
    from cardiosim.errors import ConfigError

    # The CLI child starts first, so that its start-up overlaps the in-process call's wait on
    # the unreachable scheduler (idle connection retries for SCHEDULER_TIMEOUT_S): the same two
    # checks, ~5 s less of the suite's time than one after the other.
    proc = subprocess.Popen([sys.executable, "-m", "cardiosim", "generate", "--records", "1", "--duration", "1",
                             "--forward", "infinite", "--scheduler", "tcp://127.0.0.1:9", "--output",
                             str(tmp_path / "x")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        t0 = time.perf_counter()
        with pytest.raises(ConfigError, match="cannot reach the dask scheduler"):
            _executor(1, "tcp://127.0.0.1:9")
        elapsed = time.perf_counter() - t0
        assert elapsed < 15, f"took {elapsed:.0f} s to give up on an unreachable scheduler (was 30 s)"
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 2
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert "tcp://127.0.0.1:9" in lines[0] and "scheduler" in lines[0]


def test_6_no_progress_bar_when_stderr_is_not_a_terminal(tmp_path):
    """The progress bar was drawn into logs and pipes; now only on a terminal."""
    proc = subprocess.run([sys.executable, "-m", "cardiosim", "generate", "--records", "2", "--duration", "1",
                           "--forward", "infinite", "--output", str(tmp_path / "p.nc")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "rec/s" not in proc.stderr and "\r" not in proc.stderr and "%|" not in proc.stderr
    assert "wrote 2 records" in proc.stdout


def test_6_quiet_and_verbose(tmp_path, capsys):
    """--quiet prints nothing but errors; --verbose logs the steps through `logging`."""
    assert main(["--quiet", "generate", "--records", "1", "--duration", "1", "--forward", "infinite",
                 "--output", str(tmp_path / "q.nc")]) == 0
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    assert main(["--verbose", "info", str(tmp_path / "q.nc")]) == 0
    out = capsys.readouterr()
    assert "records" in out.out and "cardiosim" in out.err and "DEBUG" in out.err
    assert main(["--quiet", "info", str(tmp_path / "missing.nc")]) == 2
    assert "error" in capsys.readouterr().err


def test_7_benchmarks_skip_when_shared_data_is_absent(tmp_path):
    """`python benchmarks/run.py` exited 1 when the shared recordings were absent."""
    env = {**os.environ, "CARDIOSIM_DATA": str(tmp_path / "nowhere")}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_sources.py")], capture_output=True,
                          text=True, env=env, timeout=120)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import run as bench_run
        from _harness import SKIP_EXIT
    finally:
        sys.path.pop(0)
    assert proc.returncode == SKIP_EXIT and "shared recordings not found" in proc.stdout
    # run.py: a skipped benchmark is listed with its reason and does not fail the run; a failing one does
    ok = tmp_path / "bench_ok.py"
    ok.write_text("print('fine')\n")
    skipped = tmp_path / "bench_skip.py"
    skipped.write_text(f"import sys\nprint('SKIPPED: no data here')\nsys.exit({SKIP_EXIT})\n")
    broken = tmp_path / "bench_broken.py"
    broken.write_text("raise FileNotFoundError('x')\n")
    runner = ("import sys; sys.path.insert(0, {b!r}); import run; "
              "sys.exit(run.run(sys.argv[1:]))").format(b=str(ROOT / "benchmarks"))
    good = subprocess.run([sys.executable, "-c", runner, str(ok), str(skipped)], capture_output=True, text=True)
    assert good.returncode == 0 and "bench_skip.py (no data here)" in good.stdout
    bad = subprocess.run([sys.executable, "-c", runner, str(ok), str(broken)], capture_output=True, text=True)
    assert bad.returncode == 1 and "bench_broken.py" in bad.stderr
    assert callable(bench_run.run)


def test_8_readme_says_how_to_get_the_cpu_build_of_torch():
    """On a GPU machine the test install pulled the large CUDA build of torch."""
    setup = (ROOT / "README.md").read_text().split("## Set up", 1)[1].split("\n## ", 1)[0]
    # an inline command: the Set up section keeps exactly two bash blocks (tests/test_ci.py)
    prose = re.sub(r"```.*?```", "", setup, flags=re.S)
    cmds = [" ".join(c.split()) for c in re.findall(r"`([^`]+)`", prose) if "download.pytorch.org/whl/cpu" in c]
    assert cmds and cmds[0].startswith("pip install torch==") and "torch" in cmds[0], \
        "no command installs the CPU build first"
    assert "GPU" in setup or "CUDA" in setup


def test_errors_are_cardiosim_types_not_bare_keyerror_or_valueerror():
    """Bad input raises the cardiosim.errors type naming the value (the review found a bare
    KeyError for an unknown noise spectrum and ValueErrors where a type exists)."""
    import ast

    import numpy as np

    from cardiosim.errors import ConfigError, SignalError
    from cardiosim.frames import rotation_matrix
    from cardiosim.noise.spectra import psd_shape

    with pytest.raises(ConfigError, match="'pink'"):
        psd_shape("pink", np.ones(3))
    with pytest.raises(ConfigError, match="'w'"):
        rotation_matrix("w", 0.1)
    with pytest.raises(SignalError, match="sampling rate"):
        from cardiosim.plot import plot_12lead
        plot_12lead(np.zeros((1, 10)), -1.0, ["I"])
    # no bare KeyError/ValueError raised by cardiosim outside the numba kernels' typed APIs
    bare = []
    for path in sorted((ROOT / "cardiosim").rglob("*.py")):
        if path.name == "_kernels.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) \
                    and getattr(node.exc.func, "id", None) in ("KeyError", "ValueError"):
                bare.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert bare == []
