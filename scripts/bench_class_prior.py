"""Time of one patient draw from the shipped opt-in class priors (``cardiosim/ode/data/
<class>_prior.json``) against the NORM prior's, in the same run (best of 5 rounds of 300
draws, one process; numba kernels compiled before timing). The issue's target: <= 0.6 ms.

Usage: ``python scripts/bench_class_prior.py``
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cardiosim.ode.prior import read_prior, sample_patient  # noqa: E402


def best_ms(fn, n=300, rounds=5):
    best = np.inf
    for r in range(rounds):
        rng = np.random.default_rng([7, r])
        t0 = time.perf_counter()
        for _ in range(n):
            fn(rng)
        best = min(best, (time.perf_counter() - t0) / n * 1e3)
    return best


def main():
    rows = [("NORM (shipped NORM prior)", lambda rng: sample_patient(rng, "NORM")),
            ("LVH hand-built (NORM prior + apply_morphology)", lambda rng: sample_patient(rng, "LVH")),
            ("TINV hand-built (NORM prior + apply_morphology)", lambda rng: sample_patient(rng, "TINV"))]
    for cls in ("LVH", "TINV"):
        prior = read_prior(ROOT / "cardiosim" / "ode" / "data" / f"{cls.lower()}_prior.json")
        rows.append((f"{cls} class prior (proposal acceptance {prior.meta['proposal']['proposal_acceptance']:.2f})",
                     lambda rng, p=prior, c=cls: sample_patient(rng, c, p)))
    for _, fn in rows:  # compile / warm up
        fn(np.random.default_rng(0))
    print("| draw | ms per patient |\n| --- | --- |")
    for name, fn in rows:
        print(f"| {name} | {best_ms(fn):.3f} |")


if __name__ == "__main__":
    main()
