"""Tiny benchmark harness: time callables side by side, print a table, write JSON."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
#: Exit status of a benchmark that cannot run here (its data is absent); run.py reports it
#: as skipped, with the reason the benchmark printed, instead of failed (automake's 77).
SKIP_EXIT = 77


def skip(reason: str):
    """Stop this benchmark as skipped, naming why (for example the shared recordings are absent)."""
    import sys

    print(f"SKIPPED: {reason}", flush=True)
    sys.exit(SKIP_EXIT)


def best_time(fn, *, repeat: int = 3, number: int = 1) -> float:
    """Best wall time of ``number`` calls of ``fn`` over ``repeat`` runs (seconds per call)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t0) / number)
    return best


def report(name: str, rows: list[dict], columns: list[str], notes: str = "") -> Path:
    """Print ``rows`` as a table and write them to ``benchmarks/results/<name>.json``."""
    widths = {c: max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns}
    print(f"\n== {name} ==")
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for r in rows:
        print("  ".join(_fmt(r.get(c)).ljust(widths[c]) for c in columns))
    if notes:
        print(notes)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    meta = {"python": platform.python_version(), "machine": platform.machine(), "processor": platform.processor()}
    path.write_text(json.dumps({"benchmark": name, "rows": rows, "notes": notes, "machine": meta}, indent=1))
    return path


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)
