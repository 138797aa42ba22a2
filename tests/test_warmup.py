"""``cardiosim warmup`` / :func:`cardiosim.warmup.compile_kernels`: after it, a new process
generating a default dataset (and a real-record source) loads every kernel from numba's cache
and compiles none -- counted by numba's own compile events, not by timing."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest

from cardiosim.errors import ConfigError
from cardiosim.warmup import PARTS, compile_kernels

from conftest import PROJECT_ROOT

# A child that counts numba compilations while it generates: numba emits "numba:compile"
# only when it compiles (a cache hit loads without the event).
_COUNT_COMPILES = r"""
import json, sys
from numba.core import event

compiled = []

class Listener(event.Listener):
    def on_start(self, ev):
        fn = ev.data["dispatcher"].py_func
        if fn.__module__.startswith("cardiosim"):
            compiled.append(f"{fn.__module__}.{fn.__qualname__}")

    def on_end(self, ev):
        pass

event.register("numba:compile", Listener())
from cardiosim.cli import main
code = main(["--quiet", "generate", "--records", "5", "--duration", "3", "--seed", "3", "--output", sys.argv[1]])
print(json.dumps({"code": code, "compiled": sorted(set(compiled))}))
"""


def test_bad_arguments_are_config_errors():
    with pytest.raises(ConfigError, match="jobs must be a positive integer"):
        compile_kernels(jobs=0)
    with pytest.raises(ConfigError, match="jobs must be a positive integer"):
        compile_kernels(jobs=True)
    with pytest.raises(ConfigError, match=r"unknown warm-up part\(s\) \['odes'\]"):
        compile_kernels(jobs=1, parts=["odes"])


@pytest.mark.slow
def test_a_generate_after_warmup_compiles_nothing(tmp_path, capsys):
    from cardiosim.cli import main

    # seconds when the cache is already warm (conftest warmed it under xdist)
    assert main(["warmup", "--jobs", "2"]) == 0
    printed = capsys.readouterr().out
    assert all(name in printed for name in PARTS) and "compiled or loaded in" in printed
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    out = subprocess.run([sys.executable, "-c", _COUNT_COMPILES, str(tmp_path / "d.nc")], env=env,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["code"] == 0
    assert result["compiled"] == [], f"compiled after warm-up: {result['compiled']}"


def test_cli_warmup_rejects_bad_jobs(capsys):
    from cardiosim.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["warmup", "--jobs", "0"])
    assert exc.value.code == 2
    assert "--jobs" in capsys.readouterr().err


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_first_compile_notice_speaks_once_and_only_to_a_terminal():
    """The first numba compilation inside the block tells a terminal user, once; a pipe or
    log gets nothing, and nothing is said after the block."""
    from numba import njit

    from cardiosim.warmup import COMPILE_NOTICE, first_compile_notice

    def fresh():   # new functions: numba has not compiled them (no cache=True)
        @njit
        def f(x):
            return x + 1

        return f

    term, pipe = _Terminal(), io.StringIO()
    with first_compile_notice(term):
        fresh()(1)
        fresh()(2.0)
    fresh()(3)
    assert term.getvalue() == COMPILE_NOTICE
    with first_compile_notice(pipe):
        fresh()(4)
    assert pipe.getvalue() == ""
    quiet = _Terminal()
    with first_compile_notice(quiet):
        pass
    assert quiet.getvalue() == ""
