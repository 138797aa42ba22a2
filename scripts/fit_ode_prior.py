"""Fit the shipped normal patient prior ``cardiosim/ode/data/normal_prior.json``.

Sources (PhysioNet, see ../shared/data/README.md):
- PTB Diagnostic ECG Database record s0010_re: the measured Frank leads vx, vy, vz;
- PhysioNet/CinC 2021 12-lead records, converted to Frank X, Y, Z with the Kors
  regression matrix (PHYSICS.md §1) via ``cardiosim.inverse.kors``.

Per record: 0.5-40 Hz zero-phase band-pass, decimation to 250 Hz, R peaks from
NeuroKit2's detector on the band-passed spatial magnitude, then ``fit_beat`` on the
median beat of the whole record and on the medians of consecutive groups of 4 beats
(within-record, beat-to-beat variability). ``fit_prior`` pools the fits (each record
weighs the same) with diagonal shrinkage 0.05 (keeps the correlations that make draws
coherent beats).

Records whose SNOMED CT diagnoses include a conduction or ST-T abnormality are not
normal and are left out (JS20000: PAC, non-specific intraventricular conduction
disorder, ST changes; HR06001: ST changes; HR06000: T-wave abnormality); so is a
record with incomplete RBBB (HR06002), and a record whose median-beat fit leaves a residual
>= 10 %. Fitted intervals are stored in the prior's metadata; ``sample_patient`` truncates
draws to the NORM interval bounds. The PTB record is an
acute infero-lateral MI patient, but it is the only measured (not reconstructed) VCG,
so it is included; ``sample_patient`` truncates draws to the normal interval criteria.

Finally a sampling proposal is fitted to 20,000 exact normal-screened draws of the prior
(``cardiosim.ode.prior.fit_proposal``: ~0.3 % of prior draws pass the screen, ~2 % of
proposal draws), so drawing a patient screens seven times fewer candidates.

Usage: ``python scripts/fit_ode_prior.py [--data DIR] [--out PATH]``;
``--proposal-only`` refits only the proposal of the prior already at ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import wfdb
from scipy.signal import butter, sosfiltfilt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cardiosim.errors import SignalError  # noqa: E402
from cardiosim.inverse import kors  # noqa: E402
from cardiosim.ode.fit import beat_window, fit_beat, fit_prior, median_beat  # noqa: E402
from cardiosim.ode.prior import DEFAULT_PRIOR_PATH, fit_proposal, read_prior, write_prior  # noqa: E402

FS_FIT = 250.0
EXCLUDE = {"JS20000": "PAC, NSIVCB 698252002, ST changes 55930002",
           "HR06001": "ST changes 55930002", "HR06000": "T wave abnormal 164934002",
           "HR06002": "incomplete RBBB 713426002"}


def r_peaks(vcg, fs):
    import neurokit2 as nk
    mag = np.linalg.norm(vcg - np.median(vcg, axis=1, keepdims=True), axis=0)
    _, info = nk.ecg_peaks(mag, sampling_rate=int(fs))
    pk = np.asarray(info["ECG_R_Peaks"], int)
    # refine to the magnitude maximum within ±30 ms (a shared fiducial for all records)
    w = int(0.03 * fs)
    return np.array([p - w + int(np.argmax(mag[max(p - w, 0):p + w + 1])) if p >= w else p for p in pk])


def prepare(vcg, fs):
    sos = butter(2, [0.5, 40.0], btype="band", fs=fs, output="sos")
    x = sosfiltfilt(sos, vcg, axis=1)
    step = int(round(fs / FS_FIT))
    if abs(fs / step - FS_FIT) > 1e-9:
        raise ValueError(f"sampling rate {fs} is not a multiple of {FS_FIT}")
    return x[:, ::step]


def load_records(data):
    recs = []
    ptb = data / "ptbdb" / "s0010_re"
    r = wfdb.rdrecord(str(ptb), channel_names=["vx", "vy", "vz"])
    recs.append(("ptbdb/s0010_re", r.p_signal.T, float(r.fs), "Frank leads (measured)"))
    for hea in sorted((data / "cinc2021").glob("*.hea")):
        r = wfdb.rdrecord(str(hea.with_suffix("")))
        recs.append((f"cinc2021/{hea.stem}", kors(r.p_signal.T, r.sig_name), float(r.fs),
                     "12-lead -> Kors"))
    return recs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=DEFAULT_PRIOR_PATH)
    ap.add_argument("--group", type=int, default=4, help="beats per sub-median")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shrinkage", type=float, default=0.05, help="weight of the diagonal target")
    ap.add_argument("--proposal-only", action="store_true",
                    help="keep the prior at --out, refit only its sampling proposal")
    ap.add_argument("--proposal-draws", type=int, default=20_000,
                    help="screened prior draws the proposal is fitted to")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    if args.proposal_only:
        write_with_proposal(read_prior(args.out), args)
        return
    fits, groups, used, report = [], [], [], {}
    for name, vcg, fs, how in load_records(args.data):
        stem = name.split("/")[-1]
        if stem in EXCLUDE:
            report[name] = {"used": False, "reason": EXCLUDE[stem]}
            print(f"{name}: excluded ({EXCLUDE[stem]})")
            continue
        t0 = time.time()
        x = prepare(vcg, fs)
        pk = r_peaks(x, FS_FIT)
        before, after = beat_window(np.median(np.diff(pk)) / FS_FIT)
        beat, ri, rr = median_beat(x, FS_FIT, pk, before, after)
        res = fit_beat(beat, FS_FIT, r_index=ri, rr=rr, rng=rng, n_restarts=6)
        iv = res.patient.intervals()
        ok = res.residual < 0.1
        entry = {"how": how, "rr_s": rr, "n_beats": int(pk.size), "residual": res.residual,
                 "intervals_rr1_s": iv, "within_normal_bounds": ok}
        print(f"{name}: {pk.size} beats, RR {rr:.3f} s, residual {res.residual:.3f}, "
              f"intervals {({k: round(v, 3) for k, v in iv.items()})} [{time.time() - t0:.1f} s]")
        if not ok:
            entry.update(used=False, reason="residual >= 10 %")
            report[name] = entry
            continue
        sub = []
        for g0 in range(0, pk.size - args.group + 1, args.group):
            try:
                b, ri2, _ = median_beat(x, FS_FIT, pk[g0:g0 + args.group], before, after)
            except SignalError:  # group at the record edge without 3 complete beats
                continue
            r2 = fit_beat(b, FS_FIT, r_index=ri2, rr=rr, init=res.patient, rng=rng, n_restarts=0)
            fits.append(r2.patient)
            groups.append(name)
            sub.append(r2.residual)
        fits.append(res.patient)
        groups.append(name)
        used.append(name)
        entry.update(used=True, sub_median_residuals=sub)
        report[name] = entry
    prior = fit_prior(fits, groups, morphology="NORM", shrinkage=args.shrinkage, sources=tuple(used),
                      meta={"script": "scripts/fit_ode_prior.py", "fs_fit_hz": FS_FIT,
                            "band_hz": [0.5, 40.0], "records": report})
    print(json.dumps({k: v.get("residual") for k, v in report.items()}, indent=1))
    write_with_proposal(prior, args)


def write_with_proposal(prior, args):
    t0 = time.time()
    prior = fit_proposal(prior, np.random.default_rng([args.seed, 1]), n_accepted=args.proposal_draws)
    print(f"proposal [{time.time() - t0:.0f} s]: {json.dumps(prior.meta['proposal'])}")
    write_prior(prior, args.out)
    print(f"wrote {args.out}: {prior.n_beats} fits from {prior.n_records} records")


if __name__ == "__main__":
    main()
