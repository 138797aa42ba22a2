"""Run every benchmark (benchmarks/bench_*.py) in turn; each prints a table and writes JSON.

A benchmark whose data is absent here (the shared recordings) exits with
``_harness.SKIP_EXIT`` after printing why; it is listed as skipped with that reason and
does not fail the run. Exit status 1 only when a benchmark fails.
"""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _harness import SKIP_EXIT  # noqa: E402


def run(scripts) -> int:
    """Run ``scripts`` one after another; print a summary; return the exit status (0 or 1)."""
    failed, skipped = [], []
    for script in scripts:
        script = Path(script)
        print(f"\n### {script.name}", flush=True)
        proc = subprocess.run([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
        sys.stdout.write(proc.stdout)
        if proc.returncode == SKIP_EXIT:
            reason = next((ln.split(":", 1)[1].strip() for ln in proc.stdout.splitlines() if ln.startswith("SKIPPED:")),
                          "no reason given")
            skipped.append(f"{script.name} ({reason})")
        elif proc.returncode != 0:
            failed.append(script.name)
    if skipped:
        print("\nskipped: " + "; ".join(skipped))
    if failed:
        print(f"benchmarks failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run(sorted(HERE.glob("bench_*.py"))))
