"""Generator throughput and memory: records/s of 10 s, 12-lead, 500 Hz records.

Side by side in one run: simulation only (no I/O) as the baseline, then full
generation to sharded netCDF with and without compression, with 1 and 2 workers. Each
configuration runs in a fresh child process so its peak RSS is its own.

    python benchmarks/bench_generate.py [--records N] [--memory-records N]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import report  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def child(mode: str, records: int, workers: int, compression: str, out: str) -> None:
    sys.path.insert(0, str(ROOT))
    from cardiosim.dataset import Recipe, generate
    from cardiosim.dataset.generate import _state, simulate_block

    recipe = Recipe.from_dict({"records": records, "duration": 10.0, "seed": 1,
                               "output": {"shard_size": 256, "compression": compression}})
    _state(recipe.to_toml())  # build the lead field before timing (cached on disk anyway)
    simulate_block(recipe.to_toml(), 0, 1)  # JIT warm-up
    t0 = time.perf_counter()
    if mode == "simulate":
        for a in range(0, records, 256):
            simulate_block(recipe.to_toml(), a, min(records, a + 256))
    else:
        generate(recipe, out, workers=workers, progress=False)
    dt = time.perf_counter() - t0
    rss = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    print(json.dumps({"seconds": dt, "peak_rss_mib": rss / 1024}))


def run(mode, records, workers=1, compression="zlib"):
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run([sys.executable, __file__, "--child", mode, str(records), str(workers), compression,
                              str(Path(tmp) / "out")], capture_output=True, text=True, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    return {"mode": mode, "workers": workers, "compression": compression if mode != "simulate" else "-",
            "records": records, "seconds": res["seconds"], "records_per_s": records / res["seconds"],
            "peak_rss_mib": res["peak_rss_mib"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--records", type=int, default=256)
    ap.add_argument("--memory-records", type=int, default=0, help="also generate this many records (e.g. 20000) "
                    "and report peak RSS")
    ap.add_argument("--child", nargs=5)
    args = ap.parse_args()
    if args.child:
        mode, records, workers, compression, out = args.child
        child(mode, int(records), int(workers), compression, out)
        return
    rows = [run("simulate", args.records), run("generate", args.records, 1, "none"),
            run("generate", args.records, 1, "zlib"), run("generate", args.records, 2, "zlib")]
    base = rows[0]["records_per_s"]
    for r in rows:
        r["vs_simulate_only"] = r["records_per_s"] / base
    if args.memory_records:
        rows.append(run("generate", args.memory_records, 1, "zlib"))
    report("generate", rows, ["mode", "workers", "compression", "records", "seconds", "records_per_s",
                              "vs_simulate_only", "peak_rss_mib"],
           notes="records of 10 s, 12 leads, 500 Hz; 'vs_simulate_only' = throughput / simulation-only throughput")


if __name__ == "__main__":
    main()
