"""How much the simulated *noiseless* ECG reads as noise, and why (docs/VALIDATION.md, "The
cardiac floor").

``noise.textile.measure_record`` -- the measure the textile noise is fitted and reported with --
reads the non-cardiac residual of a record after subtracting its beats. On noiseless simulated
records it should read close to nothing; what it reads (the cardiac floor) adds to every
simulated record's noise level. This script measures that floor and takes it apart:

1. real references: textile chest strap at rest (fit subjects 01-03) and the CinC 2021 NORM+SR
   records' lead II (noise included: an upper bound of their floor), with the QRS's steepest
   slope over its peak-to-peak;
2. the noiseless simulated chest strap at rest (SR+NORM), with each source of beat-to-beat
   change switched off in turn (per-wave amplitude jitter, respiration in the ODE and of the
   heart, motion, all);
3. the pure ODE (lead II, no torso) with heart-rate variability drawn and off.

Usage: ``python scripts/cardiac_floor.py [--data DIR] [--records 40]``. Prints a table; fits
nothing.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _slope_and_floor(x, fs):
    from cardiosim.noise.textile import measure_record, residual

    _, _, template, _, qrs_pp = residual(x, fs)
    pre = int(0.4 * fs)
    q = template[pre - int(0.06 * fs): pre + int(0.08 * fs)]
    slope = float(np.max(np.abs(np.diff(q))) * fs / 1000.0 / qrs_pp)   # 1/ms
    return slope, float(np.median(measure_record(x, fs).noise_to_qrs))


def _row(name, values):
    a = np.asarray(values, dtype=float)
    fl = np.percentile(a[:, 1], [10, 25, 50, 75, 90])
    print(f"| {name} | {len(a)} | {np.median(a[:, 0]):.3f} | " + " / ".join(f"{v:.4f}" for v in fl) + " |")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("CARDIOSIM_DATA", ROOT.parent / "shared" / "data")))
    ap.add_argument("--records", type=int, default=40)
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")

    import cardiosim.ode as ode
    from cardiosim.dataset import Recipe
    from cardiosim.dataset.generate import simulate_block
    from cardiosim.noise.textile import read_textile_record
    from cardiosim.sim2real.tasks import textile_subjects
    from cardiosim.ode.realism import LI, lead_matrix, real_records

    print("| records | n | QRS max slope / peak-to-peak (1/ms), median | floor (median noise-to-QRS) "
          "10 / 25 / 50 / 75 / 90 % |")
    print("| --- | --- | --- | --- |")
    if (args.data / "textile").is_dir():
        # the noise fit's subjects (01-03 in the shared folder); a folder of new subjects: all of them
        fit_s, new_s = textile_subjects(args.data)
        subjects = fit_s or new_s
        for e in ("gel", "dry", "textile"):
            _row(f"real chest strap at rest, {e}, subjects {', '.join(subjects)}",
                 [_slope_and_floor(*read_textile_record(args.data / "textile", s, e, "rest")[:2])
                  for s in subjects])
    if (args.data / "cinc2021").is_dir():
        _row("real CinC 2021 NORM+SR, lead II (noise included)",
             [_slope_and_floor(r["leads"][LI["II"]], r["fs"]) for r in real_records(args.data)
              if "NORM" in r["morphology"] and "SR" in r["rhythm"]])

    original = ode.synthesize
    variants = (("default", {}, {}), ("per-wave jitter off", {"beat_jitter": 0.0}, {}),
                ("respiration off (ODE and heart)", {"resp_modulation": 0.0}, {"heart": {"respiration": False}}),
                ("respiration off in the ODE only", {"resp_modulation": 0.0}, {}),
                ("the heart's respiratory rotation off only", {}, {"heart": {"respiration": False}}),
                ("motion off", {}, {"motion": False}),
                ("all of these off", {"beat_jitter": 0.0, "resp_modulation": 0.0},
                 {"motion": False, "heart": {"respiration": False}}))
    try:
        for name, ode_kw, sim in variants:
            # the pipeline calls cardiosim.ode.synthesize by attribute: patched for this variant only
            ode.synthesize = functools.partial(original, **ode_kw) if ode_kw else original
            recipe = Recipe.from_dict({"records": args.records, "duration": 10.0, "seed": 11,
                                       "device": "chest_strap_500hz",
                                       "source": {"kind": "ode", "classes": {"SR+NORM": 1.0}},
                                       "simulation": {"add_noise": False, "activities": {"rest": 1}, **sim}})
            ds = simulate_block(recipe.to_toml(), 0, recipe.records)
            _row(f"simulated noiseless chest strap at rest, {name}",
                 [_slope_and_floor(x, 500.0) for x in ds["ecg"].values[:, 0, :]])
    finally:
        ode.synthesize = original

    m = lead_matrix()
    for hrv, std in (("drawn", None), ("off", 0.0)):
        rng = np.random.default_rng(11)
        vals = []
        for _ in range(args.records):
            b = original(10.0, 500.0, rng, rhythm="SR", beat_jitter=0.0, resp_modulation=0.0, heart_rate_std=std)
            vals.append(_slope_and_floor((m @ b.vcg)[LI["II"]], 500.0))
        _row(f"pure ODE lead II, jitter and respiration off, heart-rate variability {hrv}", vals)


if __name__ == "__main__":
    main()
