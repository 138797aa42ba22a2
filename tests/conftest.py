"""Shared fixtures: real-data location, temporary outputs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]

try:  # property tests draw the same examples on every run: CI is reproducible
    from hypothesis import settings as _hyp_settings

    _hyp_settings.register_profile("cardiosim", derandomize=True, database=None)
    _hyp_settings.load_profile("cardiosim")
except ImportError:  # pragma: no cover - hypothesis is a test dependency
    pass


def pytest_configure(config):
    """Compile numba's kernels once, in parallel, before pytest-xdist starts its workers.

    Otherwise every worker, and every ``cardiosim`` subprocess a test starts before the
    cache is written, compiles the same kernels at once: on a fresh clone that was about
    half the suite's wall time (252 s cold against 132 s warm, 2 workers, 2026-12-06).
    Only the xdist controller does it (``-n N`` with N >= 2); ``CARDIOSIM_TEST_WARMUP=0``
    skips it. Nothing is asserted here: ``tests/test_warmup.py`` tests the warm-up itself.
    """
    import sys
    import time

    workers = config.getoption("numprocesses", default=None)
    if (hasattr(config, "workerinput") or not isinstance(workers, int) or workers < 2
            or os.environ.get("CARDIOSIM_TEST_WARMUP", "1") == "0"):
        return
    from cardiosim.warmup import compile_kernels

    t0 = time.perf_counter()
    compile_kernels(jobs=workers)
    sys.stderr.write(f"cardiosim: numba kernels compiled or loaded in {time.perf_counter() - t0:.0f} s "
                     f"({workers} processes)\n")


def run_in_process(capsys, monkeypatch, *args, cwd):
    """``cardiosim ARGS`` through ``cardiosim.cli.main`` in this test's process (its working
    directory ``cwd``): (exit status, stdout, stderr). The code path of ``python -m cardiosim
    ARGS`` but for the interpreter's start-up (~3 s of CPU a call): for a command's error checks
    and for another command's input. The contract of the real command line (its exit status,
    its stderr of one line from a new process) stays tested by subprocesses, each command's in
    tests/test_cli.py at least."""
    import logging
    import warnings

    from cardiosim.cli import main

    monkeypatch.chdir(cwd)
    capsys.readouterr()
    # main sets up the "cardiosim" logger (a handler on this test's captured stderr) and, with
    # --quiet, the warning filters, as a new process needs; the next tests get them back as they were
    log = logging.getLogger("cardiosim")
    saved = (log.handlers[:], log.level, log.propagate)
    try:
        with warnings.catch_warnings():
            code = main(list(args))
    except SystemExit as exc:       # argparse's errors exit, as they do in the real command
        code = exc.code
    finally:
        log.handlers[:], log.propagate = saved[0], saved[2]
        log.setLevel(saved[1])
    out = capsys.readouterr()
    return code, out.out, out.err


def computed_once_per_run(tmp_path_factory, key: str, compute):
    """``compute()`` once for the whole test run, shared by pytest-xdist's workers: the first
    worker to ask computes it (any other waits on a lock) and leaves it pickled in the run's
    temporary root, where the others load it: the same value, bit for bit. For an expensive,
    deterministic input tests on different workers need (a module-scoped fixture is computed
    once per worker that runs one of its tests). Nothing outlives the run's temporary folder."""
    import pickle

    try:
        import fcntl
    except ImportError:  # pragma: no cover - no flock (Windows): once per process
        return compute()
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent          # the run's root, above the workers' own base folders
    path = root / f"shared-{key}.pickle"
    with open(root / f"shared-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():
            return pickle.loads(path.read_bytes())
        value = compute()
        part = path.with_suffix(".part")
        part.write_bytes(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
        part.replace(path)
        return value


def _data_dir() -> Path:
    return Path(os.environ.get("CARDIOSIM_DATA", PROJECT_ROOT.parent / "shared" / "data")).resolve()


#: The CinC 2021 PTB-XL records the ``ptbxl_folder`` fixture builds its PTB-XL layout from (tests using
#: it carry ``@pytest.mark.shared_records(*PTBXL_FIXTURE_RECORDS)``).
PTBXL_FIXTURE_RECORDS = tuple(f"cinc2021/HR0600{i}" for i in range(5))


def missing_shared_records(folder: Path, names) -> list[str]:
    """The records of ``names`` that ``folder`` does not hold: each a path below it with or
    without its extension ("cinc2021/HR06000", "cinc2011/REFERENCE.csv") or a glob pattern
    ("cpsc2021/data_21_*.hea": some record of CPSC 2021 patient 21)."""
    def present(n: str) -> bool:
        if any(c in n for c in "*?["):
            return any(folder.glob(n))
        return (folder / n).exists() or any((folder / n).parent.glob(Path(n).name + ".*"))

    return [n for n in names if not present(n)]


def pytest_runtest_setup(item):
    """``@pytest.mark.shared_records(...)``: a test pinned to named records of the shared folder
    (a reader's fixture file, a measurement documented on one record) skips, naming them, when
    ``$CARDIOSIM_DATA`` is another folder of recordings of the same kinds without them. Tests
    that read whatever records a folder holds (its held-out subjects, patients and records)
    carry no such mark and run on any folder."""
    mark = item.get_closest_marker("shared_records")
    if mark is None or "data_dir" not in item.fixturenames:
        return
    folder = _data_dir()
    if not folder.is_dir():
        return  # the data_dir fixture skips with its own reason
    missing = missing_shared_records(folder, mark.args)
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        pytest.skip(f"pinned to record(s) {', '.join(missing[:3])}{more} of the shared data folder, not in {folder}")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Folder of real PhysioNet recordings (CARDIOSIM_DATA, default ../shared/data); skip if absent."""
    path = _data_dir()
    if not path.is_dir():
        pytest.skip(f"real recordings not found at {path} (set CARDIOSIM_DATA to the shared data folder)")
    return path


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261125)


PTBXL_NAMES = ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]  # PTB-XL header spelling


def _write_ptbxl_record(folder: Path, rel: str, sig_mv: np.ndarray, fs: int):
    import wfdb

    path = folder / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(path.name, fs=fs, units=["mV"] * 12, sig_name=PTBXL_NAMES, p_signal=sig_mv.T.astype(np.float64),
                fmt=["16"] * 12, adc_gain=[1000.0] * 12, baseline=[0] * 12, write_dir=str(path.parent))


@pytest.fixture(scope="session")
def ptbxl_folder(data_dir, tmp_path_factory):
    """A PTB-XL folder in the native layout: the first 5 rows of the real database table,
    signals of the real CinC 2021 PTB-XL records HR06000-HR06004 (500 Hz and 100 Hz)."""
    import shutil
    import warnings

    import pandas as pd

    from cardiosim.errors import LabelMappingWarning
    from cardiosim.sources import read_wfdb, resample

    root = tmp_path_factory.mktemp("ptbxl")
    meta = data_dir / "ptbxl-metadata"
    db = pd.read_csv(meta / "ptbxl_database_first520.csv").iloc[:5]
    db.to_csv(root / "ptbxl_database.csv", index=False)
    shutil.copy(meta / "scp_statements.csv", root / "scp_statements.csv")
    for k, row in enumerate(db.itertuples()):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LabelMappingWarning)
            sig = read_wfdb(data_dir / "cinc2021" / f"HR0600{k}").signal.astype(np.float64)
        _write_ptbxl_record(root, row.filename_hr, sig, 500)
        _write_ptbxl_record(root, row.filename_lr, resample(sig, 500, 100), 100)
    return root


#: CinC 2021 diagnoses of a sinus rhythm with nothing else coded (SR, SB, STACH)
SINUS_ONLY_SNOMED = {"426783006", "426177001", "427084000"}


@pytest.fixture(scope="session")
def resting_sinus_records(data_dir):
    """The CinC 2021 records of the data folder coded sinus rhythm only (resting 12-lead, 10 s), as
    wfdb records; skips with the reason when the folder has fewer than 3."""
    import wfdb

    folder = data_dir / "cinc2021"
    if not folder.is_dir():
        pytest.skip(f"no cinc2021 folder in {data_dir}")
    out = []
    for hea in sorted(folder.glob("*.hea")):
        head = wfdb.rdheader(str(hea.with_suffix("")))
        dx = [c.split(":", 1)[1] for c in head.comments if c.startswith("Dx")]
        codes = {c.strip() for c in dx[0].split(",")} if dx else set()
        if codes and codes <= SINUS_ONLY_SNOMED:
            out.append(wfdb.rdrecord(str(hea.with_suffix(""))))
    if len(out) < 3:
        pytest.skip(f"fewer than 3 sinus-only CinC 2021 records in {folder}")
    return out
