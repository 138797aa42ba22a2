"""Held-out measurement of class priors p(eta | class) against the hand-built classes
(issue 13): ``docs/CLASS_PRIORS.md`` holds this script's output.

Real records: the shared PhysioNet/CinC 2021 12-lead records (``$CARDIOSIM_DATA/cinc2021``)
labelled with the class (``cardiosim.ode.realism.real_records``). Split, fixed before any
fit by alternating over the class's records sorted by name (as ``realism.HELD_OUT`` was
chosen): fold A fits the even positions and reports on the odd ones, fold B the reverse.
With the shared data:

- LVH (E07505, JS20003, JS20004, JS20006): fold A fits E07505 + JS20004 and reports on
  JS20003 + JS20006; fold B fits JS20003 + JS20006 and reports on E07505 + JS20004;
- TINV (JS20007, JS20010): fold A fits JS20007 and reports on JS20010; fold B the reverse
  (one record per side: ``min_records=1``; the distribution criteria need >= 2 real values,
  so for one held-out record the script reports whether its value lies inside the synthetic
  2.5-97.5 % range instead).

Per fold: ``fit.fit_records_prior(..., morphology=C)`` on the fit records, then
``prior.fit_class_proposal``; ``n_synth`` noiseless 10-s records drawn from it
(``synthesize(morphology=C, prior=P)``) and as many hand-built ones (the shipped NORM prior +
``apply_morphology``), both with the fit records' sinus rhythms (SR, SB or STACH; nothing of the
held-out records is used) and the same seeds; all measured by ``realism.measure`` (NeuroKit2's
delineator) and compared with the held-out records (``realism.compare``) and with the class
criteria of ``tests/test_ode_realism.py`` (``morphology_ok``).

Usage: ``python scripts/class_prior_holdout.py [--data DIR] [--n-synth 40] [--json PATH]
[--priors-dir DIR]`` (``--priors-dir`` writes each fold's fitted prior, ``C_foldX.npz``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from cardiosim.ode import synthesize  # noqa: E402
from cardiosim.ode.fit import fit_records_prior  # noqa: E402
from cardiosim.ode.prior import class_screen_rates, fit_class_proposal, write_prior  # noqa: E402
from cardiosim.ode.realism import FEATURES, compare, lead_matrix, measure, real_records  # noqa: E402

CLASSES = ("LVH", "TINV")
SEED = 20261213  # fixed once, before the first run


def folds(recs, cls):
    """[(fold name, fit records, held-out records)] of class ``cls``: alternate over the
    sorted names (A fits positions 0, 2, ...; B fits 1, 3, ...)."""
    names = sorted(r["name"] for r in recs if cls in r["morphology"])
    if len(names) < 2:  # another folder may hold fewer: no fold could fit and report
        from cardiosim.errors import ConfigError
        raise ConfigError(f"a 2-fold check of {cls} needs at least 2 records of the class; the folder has "
                          f"{len(names)} ({', '.join(names) or 'none'})")
    even, odd = tuple(names[0::2]), tuple(names[1::2])
    return [("A", even, odd), ("B", odd, even)]


def sinus(r):
    s = sorted(r["rhythm"] & {"SR", "SB", "STACH"})
    return s[0] if s else "SR"


def synthetic(cls, rhythms, n, prior, tag):
    """``n`` noiseless 10-s records of class ``cls`` measured by realism.measure (a record the
    delineator cannot read is kept as an exception string)."""
    M = lead_matrix()
    out = []
    for k in range(n):
        rng = np.random.default_rng([SEED, zlib.crc32(f"{cls}+{tag}".encode()), k])
        b = synthesize(10.0, 500.0, rng, rhythm=rhythms[k % len(rhythms)], morphology=cls, prior=prior)
        try:
            out.append(measure(M @ b.vcg, 500.0))
        except Exception as e:  # noqa: BLE001 — counted as failing the class criteria
            out.append(f"{type(e).__name__}: {e}")
    return out


def criteria_share(cls, feats):
    from test_ode_realism import morphology_ok

    ok = 0
    for m in feats:
        if isinstance(m, dict):
            try:
                ok += bool(morphology_ok(cls, m)[0])
            except Exception:  # noqa: BLE001
                pass
    return ok / len(feats)


def one_record(real, synth, features=FEATURES):
    """For a single held-out record: per feature, is its value inside the synthetic
    2.5-97.5 % range, and at which synthetic percentile."""
    rows = []
    for f in features:
        s = np.array([d.get(f, np.nan) for d in synth], float)
        s = s[np.isfinite(s)]
        v = float(real.get(f, np.nan))
        if s.size < 4 or not np.isfinite(v):
            continue
        lo, hi = np.percentile(s, [2.5, 97.5])
        rows.append({"feature": f, "real": v, "syn_lo": float(lo), "syn_hi": float(hi),
                     "inside": bool(lo <= v <= hi), "percentile": float(100 * np.mean(s < v))})
    return rows


def summary(rows):
    if rows and "median_in_iqr" in rows[0]:
        return {"features": len(rows), "both_criteria": sum(r["inside"] >= 0.9 and r["median_in_iqr"] for r in rows),
                "inside_ge_90": sum(r["inside"] >= 0.9 for r in rows),
                "median_in_iqr": sum(r["median_in_iqr"] for r in rows),
                "mean_inside": float(np.mean([r["inside"] for r in rows]))}
    return {"features": len(rows), "real_inside_synthetic_95": sum(r["inside"] for r in rows)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("CARDIOSIM_DATA", ROOT.parent / "shared" / "data")))
    ap.add_argument("--n-synth", type=int, default=40)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--priors-dir", type=Path)
    ap.add_argument("--classes", default=",".join(CLASSES))
    ap.add_argument("--ship", type=Path, help="also fit each class's prior to ALL its records and write it to "
                                              "SHIP/<class>_prior.json (opt-in example files, cardiosim/ode/data)")
    args = ap.parse_args(argv)
    recs = real_records(args.data)
    by = {r["name"]: r for r in recs}
    result = {}
    for cls in args.classes.split(","):
        for fold, fit_names, held in folds(recs, cls):
            t0 = time.time()
            prior = fit_records_prior([(f"cinc2021/{n}", by[n]["leads"], by[n]["fs"]) for n in fit_names],
                                      lead_matrix(), np.random.default_rng([SEED, 0]), morphology=cls, min_records=1,
                                      meta={"script": "scripts/class_prior_holdout.py", "fold": fold,
                                            "fitted_on": [f"cinc2021/{n}" for n in fit_names],
                                            "held_out": [f"cinc2021/{n}" for n in held],
                                            "split": "alternating over the class's records sorted by name"})
            prior.meta["class_screen"] = class_screen_rates(prior, np.random.default_rng([SEED, 1]))
            prior = fit_class_proposal(prior, np.random.default_rng([SEED, 2]))
            if args.priors_dir:
                args.priors_dir.mkdir(parents=True, exist_ok=True)
                write_prior(prior, args.priors_dir / f"{cls.lower()}_fold{fold}.npz")
            rhythms = [sinus(by[n]) for n in fit_names]
            real = [measure(by[n]["leads"], by[n]["fs"]) for n in held]
            arms = {"hand-built": synthetic(cls, rhythms, args.n_synth, None, "hand"),
                    "fitted": synthetic(cls, rhythms, args.n_synth, prior, f"fit{fold}")}
            entry = {"fit": list(fit_names), "held_out": list(held), "rhythms": rhythms,
                     "prior_acceptance": prior.meta["class_screen"]["accepted"],
                     "proposal_acceptance": prior.meta["proposal"]["proposal_acceptance"], "arms": {}}
            for arm, feats in arms.items():
                good = [m for m in feats if isinstance(m, dict)]
                rows = compare(real, good) if len(real) >= 2 else one_record(real[0], good)
                entry["arms"][arm] = {"criteria_share": criteria_share(cls, feats), "unreadable": len(feats) - len(good),
                                      "summary": summary(rows), "rows": rows}
            result[f"{cls}/{fold}"] = entry
            print(f"{cls} fold {fold}: fit {fit_names}, held out {held} [{time.time() - t0:.0f} s]")
            for arm, e in entry["arms"].items():
                print(f"  {arm:10s} class criteria {100 * e['criteria_share']:.0f} %  {e['summary']}")
        if args.ship:
            ship(cls, recs, result, args)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=float))
    return result


def ship(cls, recs, result, args):
    """The opt-in example prior of ``cls``: fitted to every shared record of the class (so
    no record is held out from it: its held-out evidence is that of the fold priors, stored
    in ``meta["held_out_evaluation"]``)."""
    names = sorted(r["name"] for r in recs if cls in r["morphology"])
    by = {r["name"]: r for r in recs}
    folds_ = {k.split("/")[1]: {"fit": v["fit"], "held_out": v["held_out"],
                                **{arm: {"class_criteria_share": e["criteria_share"], **e["summary"]}
                                   for arm, e in v["arms"].items()}}
              for k, v in result.items() if k.startswith(cls + "/")}
    prior = fit_records_prior([(f"cinc2021/{n}", by[n]["leads"], by[n]["fs"]) for n in names], lead_matrix(),
                              np.random.default_rng([SEED, 0]), morphology=cls, min_records=1,
                              meta={"script": "scripts/class_prior_holdout.py",
                                    "command": "python scripts/class_prior_holdout.py " + " ".join(sys.argv[1:]),
                                    "fitted_on": [f"cinc2021/{n}" for n in names],
                                    "fitted_in": "12 standard leads through cardiosim/ode/data/lead_matrix_standard12.json",
                                    "status": "opt-in example ([source] class_priors), not a default: on the held-out "
                                              "records it was not clearly better than the hand-built class "
                                              "(docs/CLASS_PRIORS.md)",
                                    "held_out_evaluation": {
                                        "note": "no record is held out from this file; these are the numbers of the "
                                                "two fold priors, each fitted on half of the records and measured on "
                                                "the other half (n_synth=%d per arm)" % args.n_synth,
                                        "folds": folds_}})
    prior.meta["class_screen"] = class_screen_rates(prior, np.random.default_rng([SEED, 1]))
    prior = fit_class_proposal(prior, np.random.default_rng([SEED, 2]))
    args.ship.mkdir(parents=True, exist_ok=True)
    out = args.ship / f"{cls.lower()}_prior.json"
    write_prior(prior, out)
    print(f"wrote {out}: {cls} prior from {names}, proposal acceptance {prior.meta['proposal']['proposal_acceptance']:.2f}")


if __name__ == "__main__":
    main()
