"""Motion stage speed: numba kernels (now) against the code they replaced, side by side.

Implementations (same Generator state in, same Motion out -- the run checks it):

* ``numpy twin``: ``cardiosim.motion._reference`` as the tests use it (pure NumPy/SciPy:
  ``lfilter`` OU, ``np.interp``, NumPy breathing waveform and offsets). The f76115c variant
  this bench also timed patched a hook the reference no longer has since it became an
  independent formulation (2b552e0), so it is gone;
* ``numba``: ``cardiosim.motion.simulate_motion`` (OU recursion, interpolation, offsets and
  pressure assembly and breathing waveform in ``cardiosim/motion/_kernels.py``). The replayed
  calls of the default recipe ask for the offsets at the lead-field samples only
  (``offsets_at``, as ``simulate_record`` does); the twin makes them all and samples them.

Workloads, 10-s records at 500 Hz, 9 shirt electrodes:

1. ``replay``: the exact ``simulate_motion`` calls (arguments and Generator states) that
   ``cardiosim.dataset`` makes for records 0-99 of the default recipe (which draws ``rest``);
2. ``<activity>``: each activity with the same electrode positions, 50 seeds;
3. ``in generator``: ``simulate_block`` of 100 records of the default recipe with each
   implementation patched in, timing the whole record and the motion call within it.

All implementations run round-robin ``ROUNDS`` times (load from other processes on this
shared machine hits them alike); ms per record = best round (median in brackets).
Run: ``python benchmarks/bench_motion.py [--rounds N]`` (writes benchmarks/results/bench_motion.json).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import report  # noqa: E402

import cardiosim.motion as motion_pkg  # noqa: E402
from cardiosim.motion import ACTIVITIES, simulate_motion  # noqa: E402
from cardiosim.motion import _reference  # noqa: E402

FIELDS = ("offsets", "heart_rotation", "breathing", "contact_pressure", "muscle", "accelerometer")


IMPLS = {"numpy twin": _reference.simulate_motion_ref, "numba": simulate_motion}


def capture_calls(records: int):
    """The simulate_motion calls of records 0..records-1 of the default recipe."""
    from cardiosim.dataset import Recipe
    from cardiosim.dataset.generate import _state, simulate_block

    calls = []
    orig = motion_pkg.simulate_motion

    def spy(duration, fs, rng, **kw):
        calls.append((duration, fs, rng.bit_generator.state, kw))
        return orig(duration, fs, rng, **kw)

    recipe = Recipe.from_dict({"records": records, "duration": 10.0, "seed": 1})
    toml = recipe.to_toml()
    _state(toml)
    motion_pkg.simulate_motion = spy
    try:
        simulate_block(toml, 0, records)
    finally:
        motion_pkg.simulate_motion = orig
    return toml, calls


def _replay(fn, calls):
    out = []
    for duration, fs, state, kw in calls:
        g = np.random.default_rng()
        g.bit_generator.state = state
        out.append(fn(duration, fs, g, **kw))
    return out


def max_rel_diff(a, b) -> float:
    """Largest |a - b| / max|a| over the Motion arrays (0.0 = bit for bit)."""
    worst = 0.0
    for f in FIELDS:
        x, y = np.asarray(getattr(a, f), dtype=np.float64), np.asarray(getattr(b, f), dtype=np.float64)
        scale = max(np.max(np.abs(x)), 1e-300)
        worst = max(worst, float(np.max(np.abs(x - y)) / scale))
    return worst


def time_round_robin(workloads: dict, rounds: int) -> dict:
    """name -> impl -> list of ms per record, implementations interleaved every round."""
    res = {w: {k: [] for k in IMPLS} for w in workloads}
    for w, calls in workloads.items():
        for fn in IMPLS.values():
            _replay(fn, calls[:2])  # warm-up (numba compile / cache load)
    for _ in range(rounds):
        for w, calls in workloads.items():
            for k, fn in IMPLS.items():
                t0 = time.perf_counter()
                _replay(fn, calls)
                res[w][k].append((time.perf_counter() - t0) / len(calls) * 1e3)
    return res


def time_in_generator(toml: str, records: int, rounds: int) -> dict:
    """impl -> (record ms list, motion ms list) over simulate_block of ``records`` records."""
    from cardiosim.dataset.generate import simulate_block

    acc = {"t": 0.0, "n": 0}
    orig = motion_pkg.simulate_motion

    def timed(fn):
        def run(*a, **kw):
            t0 = time.perf_counter()
            r = fn(*a, **kw)
            acc["t"] += time.perf_counter() - t0
            acc["n"] += 1
            return r
        return run

    out = {k: ([], []) for k in ("numpy twin", "numba")}
    simulate_block(toml, 0, 2)
    try:
        for _ in range(rounds):
            for k in out:
                motion_pkg.simulate_motion = timed(IMPLS[k])
                acc.update(t=0.0, n=0)
                t0 = time.perf_counter()
                simulate_block(toml, 0, records)
                out[k][0].append((time.perf_counter() - t0) / records * 1e3)
                out[k][1].append(acc["t"] / acc["n"] * 1e3)
    finally:
        motion_pkg.simulate_motion = orig
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--records", type=int, default=100)
    args = ap.parse_args()

    toml, calls = capture_calls(args.records)
    pos = calls[0][3].get("positions")
    workloads = {"replay (default recipe)": calls}
    for act in ACTIVITIES:
        st = [np.random.default_rng(s).bit_generator.state for s in range(50)]
        workloads[act] = [(10.0, 500.0, s, dict(activity=act, n_electrodes=9, positions=pos)) for s in st]

    # identical output for the same Generator state
    diffs = {}
    for w, c in workloads.items():
        new = _replay(simulate_motion, c)
        diffs[w] = {k: max(max_rel_diff(a, b) for a, b in zip(_replay(IMPLS[k], c), new)) for k in ("numpy twin",)}

    res = time_round_robin(workloads, args.rounds)
    rows = []
    for w, r in res.items():
        best = {k: min(v) for k, v in r.items()}
        med = {k: float(np.median(v)) for k, v in r.items()}
        rows.append({"workload": w, "numpy_twin_ms": best["numpy twin"],
                     "numba_ms": best["numba"], "numba_median_ms": med["numba"],
                     "numpy_twin_median_ms": med["numpy twin"],
                     "speedup_vs_numpy_twin": best["numpy twin"] / best["numba"],
                     "max_rel_diff_vs_twin": diffs[w]["numpy twin"]})
    gen = time_in_generator(toml, args.records, max(2, args.rounds // 2))
    rec = {k: min(v[0]) for k, v in gen.items()}
    mot = {k: min(v[1]) for k, v in gen.items()}
    rows.append({"workload": "in generator: motion call", "numpy_twin_ms": mot["numpy twin"], "numba_ms": mot["numba"],
                 "speedup_vs_numpy_twin": mot["numpy twin"] / mot["numba"]})
    rows.append({"workload": "in generator: whole record", "numpy_twin_ms": rec["numpy twin"], "numba_ms": rec["numba"],
                 "speedup_vs_numpy_twin": rec["numpy twin"] / rec["numba"]})
    report("bench_motion", rows,
           ["workload", "numpy_twin_ms", "numba_ms", "speedup_vs_numpy_twin", "max_rel_diff_vs_twin"],
           notes=f"ms per 10-s 500-Hz record, 9 electrodes; best of {args.rounds} interleaved rounds "
                 f"(in generator: best of {max(2, args.rounds // 2)}); max_rel_diff 0 = bit for bit.")


if __name__ == "__main__":
    main()
