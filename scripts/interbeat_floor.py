"""Inter-beat noise floor, real vs simulated (issue 14, item 2).

    CARDIOSIM_DATA=/work/shared/data PYTHONPATH=. python scripts/interbeat_floor.py [--records 8] [--kinds]

Measures (:func:`cardiosim.noise.floor.interbeat_floor`: 30-40 Hz and mains share of the
1-40 Hz power in segments R+350 ms ... next R-120 ms, and their 1-40 Hz RMS over the QRS
peak-to-peak) of

* real references: CPSC 2021 training patients (held-out patients 21, 84 reported apart),
  CinC 2011 acceptable records, textile gel / textile electrodes at rest and walking of
  the fit subjects 01-03 (held-out 04-05 reported apart);
* simulated records through ``holter3_200hz``, ``handheld_300hz`` and ``chest_strap_500hz``
  for the default activities and a resting wearer, and (``--kinds``) each default noise
  kind alone on the same records.

Per record the median over its leads; per set the median (and quartiles) over records.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np


def _summ(vals):
    v = np.asarray([x for x in vals if np.isfinite(x)])
    if not v.size:
        return "n/a"
    q1, q2, q3 = np.percentile(v, [25, 50, 75])
    return f"{q2:.4f} ({q1:.4f}-{q3:.4f}, n={v.size})"


def _record(x2d, fs):
    from cardiosim.noise.floor import interbeat_floor
    ms = []
    for x in np.atleast_2d(x2d):
        if np.ptp(x) == 0:
            continue
        try:
            ms.append(interbeat_floor(x, fs))
        except Exception:  # noqa: BLE001 - a lead the detector cannot read is skipped
            continue
    keys = ("share_30_40", "share_mains", "level_re_qrs", "hf_re_qrs")
    return {k: float(np.nanmedian([getattr(m, k) for m in ms])) if ms else np.nan for k in keys}


def real_sets(data_dir: Path) -> dict:
    """``{name: [record measures]}`` of the real references."""
    import wfdb
    from cardiosim.noise import textile
    from cardiosim.ode.rhythm_prior import cpsc_patient, fitted_cpsc_patients
    from cardiosim.sim2real.tasks import cinc2011_reference, textile_subjects

    # patients, subjects and graded records are the folder's (the shared folder: held-out
    # patients 21 and 84, fit subjects 01-03, held-out 04-05), never a fixed list
    fitted = fitted_cpsc_patients()
    out = {"cpsc2021 train": [], "cpsc2021 held-out": [], "cinc2011 acceptable": []}
    for hea in sorted((data_dir / "cpsc2021").glob("*.hea")):
        rec = wfdb.rdrecord(str(hea.with_suffix("")))
        key = "cpsc2021 train" if cpsc_patient(hea.stem) in fitted else "cpsc2021 held-out"
        out[key].append(_record(rec.p_signal.T, rec.fs))
    ref = cinc2011_reference(data_dir / "cinc2011")
    for name, q in sorted(zip(ref["record"], ref["quality"])):
        if q == "acceptable":
            rec = wfdb.rdrecord(str(data_dir / "cinc2011" / name))
            out["cinc2011 acceptable"].append(_record(rec.p_signal.T, rec.fs))
    fit_s, held_s = textile_subjects(data_dir)
    for part, subjects in (("fit", fit_s), ("held-out", held_s)):
        if not subjects:
            continue
        span = subjects[0] if len(subjects) == 1 else f"{subjects[0]}-{subjects[-1]}"
        for e in ("gel", "textile"):
            for a in ("rest", "walk"):
                key = f"textile {e} {a} {part} {span}"
                out[key] = [_record(*textile.read_textile_record(data_dir / "textile", s, e, a)[:2])
                            for s in subjects]
    return out


_CTX, _SRC, _NOISE = {}, {}, {}


def simulated(device: str, activities: dict | None, n: int, kinds=None, electrode=None, seed: int = 5,
              duration: float = 30.0):
    """Measures of ``n`` simulated records (the same ODE patients for every call)."""
    from cardiosim.noise import NoiseConfig
    from cardiosim.simulate import SimulationConfig, make_context, simulate_record
    from cardiosim.sources import synthetic_source

    if device not in _CTX:
        _CTX[device] = make_context(device)
    ctx = _CTX[device]
    noise = dict(_NOISE)
    if kinds is not None:
        noise["kinds"] = tuple(kinds)
    if electrode is not None:
        noise["electrode"] = electrode
    cfg = {"noise": NoiseConfig(**noise)}
    if activities is not None:
        cfg["activities"] = activities
    if kinds == ():
        cfg["add_noise"] = False
    cfg = SimulationConfig(**cfg)
    out = []
    for i in range(n):
        key = (device, seed, i)
        if key not in _SRC:
            _SRC[key] = synthetic_source(duration, 500.0, np.random.default_rng([seed, i]), ctx.forward,
                                         ctx.frank_layout, rhythm="SR", morphology="NORM", source_id=f"fl:{i}")
        rec = simulate_record(_SRC[key], np.random.default_rng([seed, i, 1]), context=ctx, config=cfg)
        out.append(_record(rec.ecg, rec.fs))
    return out


def _line(name, recs):
    return (f"| {name} | {_summ([r['share_30_40'] for r in recs])} | {_summ([r['share_mains'] for r in recs])} "
            f"| {_summ([r['level_re_qrs'] for r in recs])} | {_summ([r['hf_re_qrs'] for r in recs])} |")


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=8)
    ap.add_argument("--kinds", action="store_true", help="also each default noise kind alone")
    ap.add_argument("--no-real", action="store_true")
    ap.add_argument("--coupling", default="", help="NoiseConfig.powerline_coupling ('' = default)")
    ap.add_argument("--electrode", default="", help="NoiseConfig.electrode ('' = default textile)")
    ap.add_argument("--devices", default="holter3_200hz,handheld_300hz,chest_strap_500hz")
    args = ap.parse_args(argv)
    from cardiosim.noise.config import DEFAULT_KINDS
    if args.coupling:
        _NOISE["powerline_coupling"] = args.coupling
    if args.electrode:
        _NOISE["electrode"] = args.electrode
    print("| set | 30-40 Hz share | mains share | inter-beat RMS / QRS pp | 30-40 Hz RMS / QRS pp |")
    print("| --- | --- | --- | --- | --- |")
    if not args.no_real:
        data = Path(os.environ.get("CARDIOSIM_DATA", "../shared/data"))
        for k, v in real_sets(data).items():
            print(_line(k, v), flush=True)
    for dev in args.devices.split(","):
        for label, act in (("default activities", None), ("rest", {"rest": 1.0})):
            print(_line(f"sim {dev} {label}", simulated(dev, act, args.records)), flush=True)
        if args.kinds:
            print(_line(f"sim {dev} rest, no noise", simulated(dev, {"rest": 1.0}, args.records, kinds=())), flush=True)
            for k in DEFAULT_KINDS:
                print(_line(f"sim {dev} rest, {k} only", simulated(dev, {"rest": 1.0}, args.records, kinds=(k,))),
                      flush=True)


if __name__ == "__main__":
    main()
