"""How much the QRS turns from beat to beat with breathing: real resting 12-leads against the
simulated wearer at rest, for the heart's respiratory rotation (``motion.BreathingConfig``).

Measure (:func:`qrs_direction_change`): on the band-passed leads (``ode.realism.clean``), each
beat's spatial QRS vector at its largest magnitude (Kors et al. 1990 regression VCG from I, II,
V1-V6, or measured Frank leads), then the RMS angle (deg) of those directions about their mean.
Breathing turns the heart, and the QRS direction follows it. Noise and beat-to-beat changes of
other causes add to it, so a real record's value is an upper bound on its respiratory part.

Fit and report (2026-12-07): the rotation's scale (a quarter of the published amplitudes) was
chosen on the CinC 2021 sinus records not held out (``realism.HELD_OUT``), as the scale whose
simulated median matches theirs. It is reported on the held-out CinC 2021 sinus records, on PTB
s0010_re's measured Frank leads and, noisier, on CinC 2011 mobile-phone records graded acceptable.

    python scripts/respiratory_axis.py [--data DIR] [--records 40] [--scales 1,0.5,0.25,0]

Prints a table; fits nothing itself (``--scales`` multiplies the shipped rotation).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: Kors et al. 1990 regression matrix: Frank-like X, Y, Z from I, II, V1-V6 (PHYSICS.md section 1)
KORS = np.array([[0.38, -0.07, -0.13, 0.05, -0.01, 0.14, 0.06, 0.54],
                 [-0.07, 0.93, 0.06, -0.02, -0.05, 0.06, -0.17, 0.13],
                 [0.11, -0.23, -0.43, -0.06, -0.14, -0.20, -0.11, 0.31]])
KORS_LEADS = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")


def direction_change_of_vcg(vcg: np.ndarray, peaks: np.ndarray, fs: float) -> float:
    """RMS angle (deg) of the beats' peak QRS vectors about their mean direction: ``vcg`` (3, T),
    ``peaks`` R-peak samples; NaN with fewer than 5 complete beats."""
    a, b = int(0.05 * fs), int(0.06 * fs)
    peaks = np.asarray(peaks)
    peaks = peaks[(peaks - a >= 0) & (peaks + b < vcg.shape[1])]
    if peaks.size < 5:
        return float("nan")
    vec = np.array([w[:, np.argmax(np.linalg.norm(w, axis=0))] for w in (vcg[:, p - a:p + b] for p in peaks)])
    mean = vec.mean(axis=0)
    mean /= np.linalg.norm(mean)
    unit = vec / np.linalg.norm(vec, axis=1, keepdims=True)
    return float(np.sqrt(np.mean(np.degrees(np.arccos(np.clip(unit @ mean, -1.0, 1.0))) ** 2)))


def qrs_direction_change(leads: np.ndarray, fs: float, names=None) -> float:
    """:func:`direction_change_of_vcg` of a 12-lead record ``leads`` (12, T) mV in ``names`` order
    (default ``ode.realism.LEADS``), through the Kors VCG; R peaks by ``cardiosim.qrs``."""
    from cardiosim.ode.realism import LEADS, clean
    from cardiosim.qrs import detect_r_peaks

    names = list(names or LEADS)
    x = clean(np.asarray(leads, np.float64), fs)
    vcg = KORS @ x[[names.index(n) for n in KORS_LEADS]]
    return direction_change_of_vcg(vcg, np.asarray(detect_r_peaks(x, fs)), fs)


def real_resting_sinus(data_dir) -> dict:
    """``{"fit": [...], "held_out": [...]}`` direction changes of the CinC 2021 records in sinus
    rhythm (SR, SB or STACH) without ectopic beats, AF or a bundle-branch block, split by
    ``realism.HELD_OUT`` (``held_out``: every record no prior was fitted on)."""
    from cardiosim.ode.realism import real_records

    out = {"fit": [], "held_out": []}
    for r in real_records(data_dir):
        if (r["rhythm"] & {"PAC", "PVC", "AF"} or not r["rhythm"] & {"SR", "SB", "STACH"}
                or r["morphology"] & {"RBBB", "LBBB"}):
            continue
        out["held_out" if r["held_out"] else "fit"].append(qrs_direction_change(r["leads"], r["fs"]))
    return out


def simulated_at_rest(records: int = 40, seed: int = 11, scale: float = 1.0) -> np.ndarray:
    """Direction changes of ``records`` noiseless 12-lead wearers at rest (standard electrode
    positions, ODE SR+NORM, motion and the heart's respiratory rotation, ``scale`` times the
    shipped rotation)."""
    import cardiosim.motion.simulate as msim
    from cardiosim.dataset import Recipe
    from cardiosim.dataset.generate import simulate_block
    from cardiosim.ode.realism import LEADS

    base = msim._DEFAULT_BREATHING
    try:
        if scale != 1.0:
            msim._DEFAULT_BREATHING = dataclasses.replace(
                base, heart_rotation_rad=tuple(float(scale * v) for v in base.heart_rotation_rad))
        recipe = Recipe.from_dict({"records": int(records), "duration": 10.0, "seed": int(seed),
                                   "device": "shirt12_500hz", "layout": "standard12",
                                   "source": {"kind": "ode", "classes": {"SR+NORM": 1.0}},
                                   "simulation": {"add_noise": False, "activities": {"rest": 1}}})
        ds = simulate_block(recipe.to_toml(), 0, recipe.records)
    finally:
        msim._DEFAULT_BREATHING = base
    names = [str(v) for v in ds["lead"].values]
    order = [names.index(n) for n in LEADS]
    fs = float(ds.attrs["sampling_rate"])
    return np.array([qrs_direction_change(ds["ecg"].values[i][order].astype(np.float64), fs)
                     for i in range(recipe.records)])


def main() -> None:
    import wfdb

    from cardiosim.ode.realism import LEADS, clean
    from cardiosim.qrs import detect_r_peaks

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path,
                    default=Path(os.environ.get("CARDIOSIM_DATA", ROOT.parent / "shared" / "data")))
    ap.add_argument("--records", type=int, default=40)
    ap.add_argument("--scales", default="1")
    args = ap.parse_args()
    warnings.simplefilter("ignore")

    def row(name, vals):
        v = np.asarray(vals, float)
        v = v[np.isfinite(v)]
        print(f"| {name} | {v.size} | " + " / ".join(f"{q:.2f}" for q in np.percentile(v, [10, 50, 90])) + " |")

    print("| records | n | QRS direction change, deg RMS: 10 / 50 / 90 % |")
    print("| --- | --- | --- |")
    real = real_resting_sinus(args.data)
    row("real CinC 2021 sinus, not held out (fit)", real["fit"])
    row("real CinC 2021 sinus, held out", real["held_out"])
    for hea in sorted((args.data / "ptbdb").glob("*.hea")):
        rec = wfdb.rdrecord(str(hea.with_suffix("")))
        names = [n.lower() for n in rec.sig_name]
        if not {"vx", "vy", "vz"} <= set(names):
            continue
        fs = float(rec.fs)
        x = rec.p_signal.T
        std = clean(x[[names.index(n.lower()) for n in LEADS]], fs)
        frank = clean(x[[names.index(n) for n in ("vx", "vy", "vz")]], fs)
        row(f"real PTB {hea.stem}, measured Frank leads", [direction_change_of_vcg(frank, detect_r_peaks(std, fs), fs)])
    ref = args.data / "cinc2011" / "REFERENCE.csv"
    if ref.is_file():
        vals = []
        for line in ref.read_text().split()[1:]:
            name, quality = line.split(",")
            if quality != "acceptable" or len(vals) >= 40:
                continue
            rec = wfdb.rdrecord(str(args.data / "cinc2011" / name))
            names = [n.upper() for n in rec.sig_name]
            vals.append(qrs_direction_change(rec.p_signal.T[[names.index(n.upper()) for n in LEADS]], float(rec.fs)))
        row("real CinC 2011 mobile phone, acceptable (noisier)", vals)
    for s in (float(v) for v in args.scales.split(",")):
        row(f"simulated noiseless wearer at rest, rotation x {s:g}", simulated_at_rest(args.records, 11, s))


if __name__ == "__main__":
    main()
