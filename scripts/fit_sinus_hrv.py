"""Fit the sinus rhythms' heart-rate variability (the range ``rhythm.SINUS_HR_STD_BPM`` draws
McSharry's RR standard deviation from) to annotated real sinus rhythm, and report on records
the fit did not see.

Fit set: the annotated ambulatory records the validation rhythm prior is fitted on (its
``sources``: CPSC 2021 without patients 21 and 84, and MIT-BIH 100), 10-s windows of normal
beats only inside ``(N`` episodes (a record without rhythm notes only if its header calls it
non-AF). Target: the median over records of each record's median RMSSD (so one long record does
not outweigh the others).

Calibration: RMSSD of 10-s ODE sinus records (``synthesize``, the exact R times, so no
detector jitter on either side: the real windows use their annotations) grows in proportion to
the drawn RR SD, so the range is the McSharry default (0.5-2.5 bpm, ECGSYN) times
``target / simulated``, rounded to 0.05 bpm.

Report set: the CPSC 2021 patients the validation rhythm prior holds out (21 and 84; their
sinus windows, annotations) and CinC 2021 records coded sinus rhythm only (resting 12-lead,
10 s; R peaks detected in lead II, compared with simulated shirt records measured the same
way): ``tests/test_sinus_hrv.py``.

    python scripts/fit_sinus_hrv.py [--data $CARDIOSIM_DATA] [--records 300]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: McSharry's ECGSYN default RR SD (1 bpm) spread as cardiosim drew it until 2026-12-06
BASE_RANGE = (0.5, 2.5)


def rmssd_ms(r_samples, fs) -> float:
    """RMSSD (ms) with the usual NN editing (:func:`cardiosim.evaluate.rmssd`)."""
    from cardiosim.evaluate import rmssd

    return rmssd(r_samples, fs)


def annotated_sinus_windows(path, *, seconds=10.0, channel_note="(N"):
    """RMSSD of each ``seconds`` window of normal beats (``N`` only) inside a ``(N`` rhythm
    episode of a WFDB record with beat annotations (``.atr``); a record without rhythm notes
    counts only if its header comments call it non-AF (CPSC 2021 marks persistent AF nowhere
    but there) or say nothing of AF (MIT-BIH)."""
    import wfdb

    ann, head = wfdb.rdann(str(path), "atr"), wfdb.rdheader(str(path))
    said = " ".join(head.comments or []).lower()
    sinus_record = "non atrial fibrillation" in said or "atrial fibrillation" not in said
    fs, w = float(head.fs), int(seconds * head.fs)
    starts = [(s, n.strip("\x00")) for s, n in zip(ann.sample, ann.aux_note) if n.startswith("(")]
    sym = np.array(ann.symbol)
    out = []
    for s in range(0, head.sig_len - w, w):
        before = [n for x, n in starts if x <= s]
        inside = [n for x, n in starts if s < x < s + w]
        # MIT-BIH 100 marks its one rhythm (N) at the start; records without any rhythm
        # notes are taken as sinus throughout
        rhythm = before[-1] if before else (channel_note if not starts and sinus_record else None)
        if rhythm != channel_note or inside:
            continue
        sel = (ann.sample >= s) & (ann.sample < s + w)
        if sel.sum() >= 6 and np.all(sym[sel] == "N"):
            out.append(rmssd_ms(ann.sample[sel], fs))
    return np.array(out)


def record_sets(data: Path) -> tuple[list, list]:
    """``(fit, report)``: record paths (``folder/name``) of the validation rhythm prior's
    sources, and of the CPSC 2021 patients it holds out, that exist under ``data``."""
    from cardiosim.ode.rhythm_prior import VALIDATION_RHYTHM_PRIOR_PATH
    import json

    prior = json.loads(Path(VALIDATION_RHYTHM_PRIOR_PATH).read_text())
    fit = [r for r in prior["sources"] if (data / f"{r}.hea").exists()]
    held = {str(p) for p in prior.get("held_out_patients", [])}
    report = [f"cpsc2021/{h.stem}" for h in sorted((data / "cpsc2021").glob("*.hea"))
              if h.stem.split("_")[1] in held]
    return fit, report


def window_rmssd(data: Path, records) -> dict:
    """``{record: [RMSSD of its annotated sinus windows]}`` (records with at least 5 windows)."""
    out = {}
    for rec in records:
        path = data / rec
        if not path.with_suffix(".atr").exists():
            continue
        v = annotated_sinus_windows(path)
        v = v[np.isfinite(v)]
        if v.size >= 5:
            out[rec] = v
    return out


def simulated_rmssd(scale: float, records: int, seed: int = 0) -> np.ndarray:
    """RMSSD of ``records`` 10-s SR records whose RR SD is drawn from ``scale * BASE_RANGE``
    (heart and breathing rates drawn as the ODE draws them for SR)."""
    from cardiosim.ode import synthesize
    from cardiosim.ode.synth import _HR_RANGE

    out = []
    for s in range(records):
        u = np.random.default_rng([seed, s]).random(3)
        hr = _HR_RANGE["SR"][0] + (_HR_RANGE["SR"][1] - _HR_RANGE["SR"][0]) * u[0]
        sd = scale * (BASE_RANGE[0] + (BASE_RANGE[1] - BASE_RANGE[0]) * u[1])
        b = synthesize(10.0, 250.0, np.random.default_rng([seed, s, 1]), rhythm="SR", heart_rate=hr,
                       heart_rate_std=sd, breathing_rate=10.0 + 10.0 * u[2])
        out.append(rmssd_ms(np.cumsum(b.rr), 1.0))
    return np.array(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("CARDIOSIM_DATA", ROOT.parent / "shared" / "data")))
    ap.add_argument("--records", type=int, default=300, help="simulated records for the calibration")
    args = ap.parse_args(argv)
    fit, report = record_sets(args.data)
    per = window_rmssd(args.data, fit)
    if not per:
        raise SystemExit(f"no annotated sinus windows in the fit records under {args.data}")
    for name, v in per.items():
        print(f"fit    {name:22s} {v.size:4d} windows  median RMSSD {np.median(v):5.1f} ms")
    for name, v in window_rmssd(args.data, report).items():
        print(f"report {name:22s} {v.size:4d} windows  median RMSSD {np.median(v):5.1f} ms")
    target = float(np.median([np.median(v) for v in per.values()]))
    base = float(np.nanmedian(simulated_rmssd(1.0, args.records)))
    scale = target / base
    lo, hi = (round(x * scale / 0.05) * 0.05 for x in BASE_RANGE)
    sim = simulated_rmssd(hi / BASE_RANGE[1], args.records, seed=1)
    check = float(np.nanmedian(sim))
    print(f"target (median of the records' medians) {target:.1f} ms; McSharry range {BASE_RANGE} bpm "
          f"simulates {base:.1f} ms; scale {scale:.2f}")
    print(f"SINUS_HR_STD_BPM = ({lo:.2f}, {hi:.2f})  # simulates {check:.1f} ms (fresh seeds; "
          f"{np.mean(~np.isfinite(sim)):.1%} of windows edited out)")


if __name__ == "__main__":
    main()
