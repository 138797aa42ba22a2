"""ODE beat synthesis speed, side by side with its baselines in one run.

1. Seconds of ECG generated per wall-second: cardiosim.ode (dipole model, 3 channels;
   and its ECGSYN RK4, 1 lead) against NeuroKit2's ``ecg_simulate(method="ecgsyn")``
   (1 lead, scipy ``solve_ivp``), all at 500 Hz. Target >= 1000x.
2. 12-lead samples per second: cardiosim.ode dipole records projected to 12 leads by the
   Dower matrix (PHYSICS.md §1) against the closed-form Gaussian sum ``synthetic_ecg`` of
   the PyPI package ecg-augmentations (torch). Target >= 3x.

3. Drawing one patient (ms): ``sample_patient`` (exact rejection from the prior, and the
   screened proposal) against the previous per-draw sampler (kept here as the baseline);
   over the default recipe's class mix with the beat template's measures in numba kernels
   and in their NumPy twins, interleaved; and per morphology class (CPU ms per draw, the
   median of rounds of draws from fixed seeds, the classes interleaved in each round),
   against issue 13's limit of 0.6 ms (``--draws`` runs only these rows).

NeuroKit2 is timed at 10 s and at 600 s; each cardiosim row is compared with the
NeuroKit2 row of the same record length.

4. ``--baseline REV``: the per-record 10-s costs on this tree and on the committed tree of
   ``REV`` (``git archive``), each in its own process, rounds alternating, in the same run:
   CPU ms of a fixed-patient ``synthesize`` and of an ODE source as ``generate`` builds it
   (default recipe: class and activity draw, patient draw, planner, rendering, Frank solve:
   ``plan.source``); medians and paired ratios, and the 10-s ratio to NeuroKit2 of both
   (there NeuroKit2's best wall time over the median CPU time: an indication; the
   fixed-patient row above, best wall over best wall, is the comparable ratio).
   ``--quick``: only NeuroKit2 at 10 s, the 10-s rows and the baseline comparison.

Run: ``python benchmarks/bench_ode.py [--quick | --draws] [--baseline REV [--rounds 5]]`` (writes
benchmarks/results/ode.json).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# a child timing another tree (--baseline) gets that tree's root here
ROOT = Path(os.environ.get("CARDIOSIM_BENCH_ROOT") or Path(__file__).resolve().parents[1])
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import best_time, report  # noqa: E402

from cardiosim.ode import ecgsyn, sample_patient, synthesize, synthesize_batch  # noqa: E402

FS = 500.0
DUR = 10.0
LONG = 600.0  # s: one long record, where per-record Python overhead no longer counts

# 12 leads from Frank X, Y, Z: Dower rows V1..V6, I, II; III, aVR, aVL, aVF from I and II
_D = np.array([[-0.515, 0.157, -0.917], [0.044, 0.164, -1.387], [0.882, 0.098, -1.277],
               [1.213, 0.127, -0.601], [1.125, 0.127, -0.086], [0.831, 0.076, 0.230],
               [0.632, -0.235, 0.059], [0.235, 1.066, -0.132]])
L1, L2 = _D[6], _D[7]  # leads I, II
DOWER12 = np.vstack([L1, L2, L2 - L1, -(L1 + L2) / 2, L1 - L2 / 2, L2 - L1 / 2, _D[:6]])


def _sample_patient_v1(rng):
    """The sampler before the numba screen (cardiosim 018c95c): one prior draw at a time,
    projected onto the slots' support, kept if ``Patient``'s own delineation meets
    NORMAL_BOUNDS with slow P/ST-T (no whole-beat checks)."""
    from cardiosim.ode import default_prior
    from cardiosim.ode.model import P_WAVES, QRS_WAVES, REPOL, Patient
    from cardiosim.ode.prior import NORMAL_BOUNDS, SLOW_WAVE_REL, _project

    prior = default_prior()
    while True:
        p = _project(Patient.from_vector(prior.sample_vector(rng)))
        q0, q1 = p.span(QRS_WAVES, fs=1000.0)
        if not NORMAL_BOUNDS["qrs"][0] <= q1 - q0 <= NORMAL_BOUNDS["qrs"][1]:
            continue
        p0, p1 = p.span(P_WAVES, fs=1000.0)
        if not (NORMAL_BOUNDS["pr"][0] <= q0 - p0 <= NORMAL_BOUNDS["pr"][1] and p1 < q0):
            continue
        if not NORMAL_BOUNDS["qtc"][0] <= p.t_end(fs=1000.0) - q0 <= NORMAL_BOUNDS["qtc"][1]:
            continue
        vq = SLOW_WAVE_REL * p.max_velocity(QRS_WAVES)
        if p.max_velocity(P_WAVES) < vq and p.max_velocity(REPOL) < vq:
            return p


def _acceptance(n=200_000):
    """Fraction of prior draws accepted by the v1 criteria (codes 0, 5-7 and 9 of the screen:
    they pass NORMAL_BOUNDS) and by the full screen."""
    from cardiosim.ode import default_prior
    from cardiosim.ode.prior import _candidates, screen_candidates

    from cardiosim.ode.prior import lead_screen

    cand = _candidates(default_prior(), np.random.default_rng(0), n)
    codes, _ = screen_candidates(*cand)
    ok = codes == 0
    idx = np.flatnonzero(ok)
    ok[idx] = lead_screen(*(c[idx] for c in cand))  # the 12-lead normal limits too
    return float(np.mean((codes == 0) | (codes >= 5))), float(np.mean(ok))


def _child_10s(n_syn=400, n_src=96):
    """CPU ms per record on the tree on ``sys.path`` (printed as JSON): a fixed-patient
    10-s ``synthesize`` and a default-recipe ODE source through ``plan.source``."""
    from cardiosim.dataset.generate import PreparedRecipe, _block_state
    from cardiosim.dataset.recipe import Recipe

    patient = sample_patient(np.random.default_rng(3))
    rng = np.random.default_rng(2)
    for _ in range(20):  # warm-up (and numba's cache)
        synthesize(DUR, FS, rng, patient=patient)
    t0 = time.process_time()
    for _ in range(n_syn):
        synthesize(DUR, FS, rng, patient=patient)
    syn = (time.process_time() - t0) / n_syn
    st = _block_state(PreparedRecipe.of(Recipe.from_dict({"records": n_src, "duration": DUR})))
    for s in range(16):  # every class's kernels compiled before timing
        st.plan.source(10_000 + s, st.ref)
    t0 = time.process_time()
    for s in range(n_src):
        st.plan.source(s, st.ref)
    src = (time.process_time() - t0) / n_src
    print(json.dumps({"synthesize_ms": 1e3 * syn, "source_ms": 1e3 * src}))


def _run_child(root):
    out = subprocess.run([sys.executable, __file__, "--child-10s"], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(root), "CARDIOSIM_BENCH_ROOT": str(root)})
    if out.returncode != 0:
        raise RuntimeError(f"child on {root} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _baseline_rows(rev, rounds, nk_ms):
    """Alternating child processes on this tree and on ``rev``'s: medians, paired ratios."""
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", f"{rev}^{{commit}}"],
                            capture_output=True, text=True, check=True).stdout.strip()
    res = {"now": [], "rev": []}
    loads = []
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", commit],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        _run_child(tmp)  # compiles its kernels into its cache
        _run_child(ROOT)
        for _ in range(rounds):
            loads.append(os.getloadavg()[0])
            res["now"].append(_run_child(ROOT))
            res["rev"].append(_run_child(tmp))
    rows = []
    for key, what in (("synthesize_ms", "1 x 10 s synthesize, fixed patient"),
                      ("source_ms", "ODE source as generate builds it (plan.source, default recipe)")):
        now = np.median([r[key] for r in res["now"]])
        old = np.median([r[key] for r in res["rev"]])
        paired = [b[key] / a[key] for a, b in zip(res["now"], res["rev"])]
        for label, ms in ((f"at {rev} ({commit[:10]})", old), ("this tree", now)):
            rows.append({"generator": f"cardiosim {label}", "what": f"{what}, CPU ms (median of {rounds})",
                         "ms_per_record": ms, "ratio_vs_nk": nk_ms / ms if key == "synthesize_ms" else None,
                         "speedup_vs_rev": old / ms,
                         "paired_range": f"{min(paired):.2f}-{max(paired):.2f}" if label == "this tree" else None})
    print(f"load average during the rounds: {min(loads):.2f}-{max(loads):.2f}", flush=True)
    return rows, (min(loads), max(loads))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="only NeuroKit2 at 10 s, the 10-s rows and --baseline")
    ap.add_argument("--baseline", metavar="REV", help="also time the per-record 10-s costs on this git revision's tree")
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds of --baseline")
    ap.add_argument("--draws", action="store_true", help="only the per-class patient draw rows")
    ap.add_argument("--child-10s", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_10s:
        _child_10s()
        return

    import neurokit2 as nk
    import numba

    if args.draws:
        _report(_class_draw_rows(), [], None, numba)
        return
    rows = []
    # warm up the numba kernels (compiled once, cached)
    synthesize_batch(2, 2.0, FS, np.random.default_rng(0))
    ecgsyn(2.0, FS, np.random.default_rng(0))

    # NeuroKit2 at the two record lengths compared (its cost per ECG second is flat)
    t_nk = best_time(lambda: nk.ecg_simulate(duration=DUR, sampling_rate=int(FS), noise=0,
                                             heart_rate=70, method="ecgsyn", random_state=1),
                     repeat=3)
    nk_rate = DUR / t_nk
    rows.append({"generator": "neurokit2 ecgsyn (solve_ivp)", "what": "1 lead, 10 s",
                 "ecg_s_per_s": nk_rate, "ratio_vs_nk": 1.0})
    if args.quick:
        _ten_second_rows(rows, nk_rate)
        if args.baseline:
            _add_baseline(rows, args, t_nk)
        _report(rows, [], None, numba)
        return
    t_nk_long = best_time(lambda: nk.ecg_simulate(duration=LONG, sampling_rate=int(FS), noise=0,
                                                  heart_rate=70, method="ecgsyn", random_state=1),
                          repeat=2)
    nk_long = LONG / t_nk_long
    rows.append({"generator": "neurokit2 ecgsyn (solve_ivp)", "what": f"1 lead, {LONG:g} s",
                 "ecg_s_per_s": nk_long, "ratio_vs_nk": 1.0})

    t = best_time(lambda: ecgsyn(DUR, FS, np.random.default_rng(1), heart_rate=70), repeat=3)
    rows.append({"generator": "cardiosim ecgsyn (RK4 2 kHz)", "what": "1 lead, 10 s",
                 "ecg_s_per_s": DUR / t, "ratio_vs_nk": DUR / t / nk_rate})

    n_rec = 64
    rng = np.random.default_rng(2)
    patient = _ten_second_rows(rows, nk_rate)
    t = best_time(lambda: synthesize(LONG, FS, rng, patient=patient), repeat=20)
    rows.append({"generator": "cardiosim dipole synthesize", "what": f"1 x {LONG:g} s, XYZ, fixed patient",
                 "ecg_s_per_s": LONG / t, "ratio_vs_nk": LONG / t / nk_long})

    # ---- drawing a patient: the previous sampler (one draw at a time, Patient-method
    # delineation, NORMAL_BOUNDS only) against the batched numba screen -------------------
    n_pat = 20
    t_old = best_time(lambda: [_sample_patient_v1(np.random.default_rng(i)) for i in range(n_pat)],
                      repeat=3) / n_pat
    acc_old, acc_new = _acceptance()
    rows.append({"generator": "sample_patient v1 (per draw, NumPy)", "what": f"acceptance {acc_old:.2%}",
                 "ms_per_patient": 1e3 * t_old, "ratio_vs_v1": 1.0})
    from cardiosim.ode import default_prior
    acc_prop = default_prior().meta["proposal"]["proposal_acceptance"]
    # (exact rejection from the prior: a few in a million of its draws pass the interval and 12-lead
    # screens, so fewer patients are timed)
    for method, what, n_m, rep in (("rejection", f"prior, acceptance {acc_new:.3%} (+ whole-beat, 12-lead)", 4, 1),
                                   ("proposal", f"screened proposal, acceptance {acc_prop:.2%}", 5 * n_pat, 3)):
        t_new = best_time(lambda m=method, k=n_m: [sample_patient(np.random.default_rng(i), method=m)
                                                   for i in range(k)], repeat=rep) / n_m
        rows.append({"generator": f"sample_patient (numba screen, {method})", "what": what,
                     "ms_per_patient": 1e3 * t_new, "ratio_vs_v1": t_old / t_new})

    # ---- the default recipe's class mix: the class morphologies measure the beat template
    # through numba kernels (ode/_beat_kernels.py, bit for bit) or their NumPy twins, the two
    # interleaved in this process (best of 3 rounds each) --------------------------------
    from cardiosim.dataset.recipe import DEFAULT_ODE_CLASSES
    from cardiosim.ode import model as ode_model

    morphs = [c.split("+")[1] for c in sorted(DEFAULT_ODE_CLASSES)] * 3
    fast = ode_model._fast_kernels
    mix = {"kernels": float("inf"), "numpy": float("inf")}
    try:
        for _ in range(3):
            for mode in mix:
                ode_model._fast_kernels = fast if mode == "kernels" else (lambda: False)
                mix[mode] = min(mix[mode], best_time(lambda: [sample_patient(np.random.default_rng(i), m)
                                                             for i, m in enumerate(morphs)], repeat=1) / len(morphs))
    finally:
        ode_model._fast_kernels = fast
    for mode in ("numpy", "kernels"):
        rows.append({"generator": f"sample_patient, default class mix, template measures in {mode}",
                     "what": "8 of 14 NORM; LBBB RBBB STE STD TINV LVH", "ms_per_patient": 1e3 * mix[mode],
                     "ratio_vs_v1": t_old / mix[mode]})
    rows.extend(_class_draw_rows())

    # ---- 12-lead samples per second vs ecg-augmentations' closed form -----------------
    try:
        import torch
        from ecg_augmentations import synthetic_ecg
        baseline = "ecg-augmentations synthetic_ecg (torch)"

        def run_aug(i):
            synthetic_ecg(duration=DUR, fs=int(FS), heart_rate=70.0, n_leads=12, seed=i)
    except ImportError:  # pragma: no cover - reported in the table
        torch = None
        baseline = None

    n_samp = int(DUR * FS)
    rows12 = []
    if baseline is not None:
        n_aug = 20
        t = best_time(lambda: [run_aug(i) for i in range(n_aug)], repeat=3)
        aug_rate = 12 * n_samp * n_aug / t
        rows12.append({"generator": baseline, "what": f"{n_aug} x 10 s, 12 leads",
                       "leadsamples_per_s": aug_rate, "ratio_vs_aug": 1.0})

        for what, kw in (("fixed patient", {"patient": patient}), ("prior draws", {})):
            def ours12(kw=kw):
                recs = synthesize_batch(n_rec, DUR, FS, rng, **kw)
                return [(DOWER12 @ r.vcg).astype(np.float32) for r in recs]

            t = best_time(ours12, repeat=3)
            rate = 12 * n_samp * n_rec / t
            rows12.append({"generator": "cardiosim dipole + Dower 12-lead",
                           "what": f"{n_rec} x 10 s, 12 leads, {what}",
                           "leadsamples_per_s": rate, "ratio_vs_aug": rate / aug_rate})
    if args.baseline:
        _add_baseline(rows, args, t_nk)
    _report(rows, rows12, torch, numba)


DRAW_LIMIT_MS = 0.6   # issue 13: drawing a patient stays <= 0.6 ms


def _class_draw_rows(n_draws=50, rounds=7):
    """Per morphology class, CPU ms of one ``sample_patient`` draw: in each round every class
    draws ``n_draws`` patients from the seeds 0..n_draws-1 (the same work each round), the
    classes in turn, so that a change of the machine's load falls on all of them; the median
    over rounds and its range."""
    from cardiosim.ode import MORPHOLOGIES

    for m in MORPHOLOGIES:   # warm: kernels compiled or loaded, per-class tables built
        sample_patient(np.random.default_rng(0), m)
    per = {m: [] for m in MORPHOLOGIES}
    for _ in range(rounds):
        for m in MORPHOLOGIES:
            t0 = time.process_time()
            for i in range(n_draws):
                sample_patient(np.random.default_rng(i), m)
            per[m].append(1e3 * (time.process_time() - t0) / n_draws)
    rows = []
    for m in MORPHOLOGIES:
        ms = float(np.median(per[m]))
        rows.append({"generator": f"sample_patient, class {m}",
                     "what": (f"CPU ms a draw, median of {rounds} x {n_draws} (range {min(per[m]):.2f}-"
                              f"{max(per[m]):.2f}); limit {DRAW_LIMIT_MS} ms: "
                              f"{'met' if ms <= DRAW_LIMIT_MS else 'NOT met'}"),
                     "ms_per_patient": ms})
    return rows


def _ten_second_rows(rows, nk_rate, n_rec=64):
    """The 10-s rows (each compared with NeuroKit2 at 10 s); returns the fixed patient."""
    rng = np.random.default_rng(2)
    # like the baselines (one fixed parameter set), one patient for all records ...
    patient = sample_patient(np.random.default_rng(3))
    t = best_time(lambda: synthesize(DUR, FS, rng, patient=patient), repeat=200)
    rows.append({"generator": "cardiosim dipole synthesize", "what": "1 x 10 s, XYZ, fixed patient",
                 "ecg_s_per_s": DUR / t, "ratio_vs_nk": DUR / t / nk_rate, "ms_per_record": 1e3 * t})
    t = best_time(lambda: synthesize_batch(n_rec, DUR, FS, rng, patient=patient), repeat=3)
    rows.append({"generator": "cardiosim dipole synthesize_batch", "what": f"{n_rec} x 10 s, XYZ, fixed patient",
                 "ecg_s_per_s": n_rec * DUR / t, "ratio_vs_nk": n_rec * DUR / t / nk_rate,
                 "ms_per_record": 1e3 * t / n_rec})
    # ... and a new patient from the fitted prior for every record (screened proposal)
    t = best_time(lambda: synthesize_batch(n_rec, DUR, FS, rng), repeat=3)
    rows.append({"generator": "cardiosim dipole synthesize_batch", "what": f"{n_rec} x 10 s, XYZ, prior draws",
                 "ecg_s_per_s": n_rec * DUR / t, "ratio_vs_nk": n_rec * DUR / t / nk_rate,
                 "ms_per_record": 1e3 * t / n_rec})
    return patient


def _add_baseline(rows, args, t_nk):
    base_rows, loads = _baseline_rows(args.baseline, args.rounds, 1e3 * t_nk)
    rows.extend(base_rows)
    rows.append({"generator": "load average (uptime) during the baseline rounds",
                 "what": f"{loads[0]:.2f}-{loads[1]:.2f}"})


def _report(rows, rows12, torch, numba):
    for r in rows12:
        r["ecg_s_per_s"] = None
    notes = (f"fs={FS:g} Hz; numba threads={numba.get_num_threads()}; "
             f"torch threads={torch.get_num_threads() if torch is not None else 'n/a'}; "
             f"cpu count={os.cpu_count()}; load average {os.getloadavg()[0]:.2f} at the end "
             "(shared machine: ratios are what counts)")
    for r in rows + rows12:
        for key in ("leadsamples_per_s", "ecg_s_per_s", "ms_per_patient", "ratio_vs_v1", "ratio_vs_nk",
                    "ratio_vs_aug", "ms_per_record", "speedup_vs_rev", "paired_range"):
            r.setdefault(key, None)
    report("ode", rows + rows12, ["generator", "what", "ecg_s_per_s", "ratio_vs_nk", "ms_per_record",
                                  "speedup_vs_rev", "paired_range", "leadsamples_per_s", "ratio_vs_aug",
                                  "ms_per_patient", "ratio_vs_v1"], notes)


if __name__ == "__main__":
    main()
