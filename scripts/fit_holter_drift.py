"""Fit the ``drift`` noise kind (cardiosim.noise.drift) to real ambulatory (Holter) records.

    python scripts/fit_holter_drift.py [--data DIR] [--records 300] [--seed 5]
    python scripts/fit_holter_drift.py --report DIR      # the shipped drift on DIR's records only

Fitted on the CPSC 2021 patients the rest of cardiosim is fitted on (``drift.FIT_PATIENTS``:
8, 35, 92, 101), both leads, every 10-s window, and on every other CinC 2021 resting record
(``drift.resting_split``, leads I and II); reported on the held-out patients 21 and 84, MIT-BIH 100
and the other CinC half (printed here; asserted in ``tests/test_noise_drift.py``).

0. The resting recorders: a CinC 2021 source (record-name prefix) whose fit-half records' median
   power *rises* from 0.1 to 0.5 Hz was high-passed above the drift band by its recorder (no
   electrode drift rises: ``cardiosim.recorder_fit.rising_sources``); its corner is the
   ``recorder_fit.CORNER_GRID`` value through which simulated resting records, at the current
   drift level, read the source's own wander percentiles (``recorder_fit.corner_by_wander``).
   The other sources keep the diagnostic 0.05 Hz. The level (step 2) depends on the corners and
   the corners on the level, so they alternate, starting from the shipped level, until the
   corners repeat. Ship the result in ``drift.RESTING_CORNER_HZ`` (2026-12-07: Ningbo ``JS``
   0.2 Hz; Georgia and PTB-XL fall).
1. The exponent: the fit patients' mean log-spectrum (Welch, 60-s segments, records >= 60 s)
   from 0.05 to 0.5 Hz relative to its value at 0.1 Hz, against the drift's shape
   (``drift.drift_psd``) through the Holter's 0.05 Hz second-order high-pass, least squares in dB.
   Above 0.5 Hz the spectrum of a real record holds the heart's own harmonics.
2. The level: the distribution of ``drift.wander_ratio_db`` over the fit patients' windows
   (10, 25, 50, 75 and 90th percentiles) against simulated Holter windows (``holter3_200hz``,
   gel electrodes, the sim-to-real AF task's day of activities and placement), by simulation:
   each simulated record is made twice with the same draws, drift off and at ``drift_ratio`` 1
   with no spread (the level then is the record's own activity-noise RMS), so its wander
   ratio at any multiple ``L`` is ``(P0 + L^2 D) / P5-15``; the
   record-level log-normal (median ratio, log SD) is chosen by least squares on the five
   percentiles with fixed normal deviates, then checked by simulating with the fitted values
   (a fresh seed). The resting half enters as one set per recorder (its records simulated
   through that recorder's front end, ``drift.recorder_profile``), each weighing as the Holter.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from scipy import optimize, signal

from cardiosim.noise import drift
from cardiosim.recorder_fit import fit_recorder_corners

Q = (10, 25, 50, 75, 90)


def real_shape(data_dir, patients, f_grid):
    import wfdb

    rows = []
    for p in patients:
        for h in sorted((Path(data_dir) / "cpsc2021").glob(f"data_{p}_*.hea")):
            rec = wfdb.rdrecord(str(h.with_suffix("")))
            if rec.p_signal.shape[0] < 60 * rec.fs:
                continue
            for ch in range(rec.p_signal.shape[1]):
                f, pxx = signal.welch(rec.p_signal[:, ch], rec.fs, nperseg=int(60 * rec.fs), detrend="constant")
                rows.append(10 * np.log10(np.interp(f_grid, f, pxx)))
    db = np.mean(rows, axis=0)
    return db - np.interp(0.1, f_grid, db)


def fit_exponent(data_dir, patients=drift.FIT_PATIENTS, device_hp=0.05, fs=200.0):
    f = np.geomspace(0.05, 0.5, 12)
    target = real_shape(data_dir, patients, f)
    sos = signal.butter(2, device_hp, "highpass", fs=fs, output="sos")
    _, h = signal.sosfreqz(sos, worN=np.concatenate([f, [0.1]]), fs=fs)
    g = 20 * np.log10(np.abs(h))

    def model(beta):
        s = 10 * np.log10(drift.drift_psd(np.concatenate([f, [0.1]]), beta)) + g
        return s[:-1] - s[-1]

    res = optimize.minimize_scalar(lambda beta: np.sum((model(beta) - target) ** 2), bounds=(0.0, 4.0),
                                   method="bounded")
    return float(res.x), f, target, model(res.x)


def simulate_windows(recipe_fn, records, seed, noise, **kw):
    """Leads I and II ``[records, 2, T]`` of the records ``recipe_fn(records, seed, noise, **kw)``
    makes (``holter_day_recipe`` or ``resting_12lead_recipe``) and their rate."""
    from cardiosim.dataset.generate import PreparedRecipe, simulate_block

    ds = simulate_block(PreparedRecipe.of(recipe_fn(records, seed, noise, **kw)), 0, records)
    leads = [str(v) for v in ds["lead"].values]
    return ds["ecg"].values[:, [leads.index("I"), leads.index("II")]].astype(np.float64), float(ds.attrs["sampling_rate"])


def band_powers(x, fs):
    """(P 0.1-0.3 Hz, P 5-15 Hz) per row of [k, T] 10-s windows (the wander ratio's two terms)."""
    w = x.shape[-1]
    x = x - x.mean(axis=-1, keepdims=True)
    f, p = signal.periodogram(x * signal.windows.hann(w), fs, axis=-1, scaling="spectrum")
    lo = p[..., drift.band_mask(f, drift.WANDER_BAND)].sum(-1)
    hi = p[..., drift.band_mask(f, drift.QRS_BAND)].sum(-1)
    return lo, hi


def drift_terms(recipe_fn, records, seed, exponent, **kw):
    """``(P0, D, H)`` per record and lead: the wander-band power with the drift off, the drift's
    own wander-band power at ``drift_ratio`` 1 without spread, and the 5-15 Hz power."""
    x0, fs = simulate_windows(recipe_fn, records, seed, {"drift_ratio": 0.0, "drift_exponent": exponent}, **kw)
    x1, _ = simulate_windows(recipe_fn, records, seed, {"drift_ratio": 1.0, "drift_log_sd": 0.0,
                                                        "drift_exponent": exponent}, **kw)
    p0, h0 = band_powers(x0, fs)
    p1, _ = band_powers(x1, fs)
    return p0, np.maximum(p1 - p0, 0.0), h0


def fit_level(sets, seed):
    """``(drift_ratio, log_sd)`` minimising the summed squared differences of the percentiles
    :data:`Q` between each set's real windows and its simulated ones; ``sets`` is a list of
    ``(real_q, (P0, D, H))``. The record deviates are fixed (common random numbers)."""
    zs = [np.random.default_rng([seed, 1000, k]).standard_normal(t[0].shape[0])[:, None] for k, (_, t) in enumerate(sets)]

    def loss(theta):
        mu, log_sigma = theta
        total = 0.0
        for (real_q, (p0, d, h0)), z in zip(sets, zs):
            lvl = np.exp(mu + np.exp(log_sigma) * z)
            r = 10 * np.log10((p0 + lvl ** 2 * d) / h0).ravel()
            total += float(np.sum((np.percentile(r, Q) - real_q) ** 2))
        return total

    best = min((optimize.minimize(loss, [m0, np.log(s0)], method="Nelder-Mead") for m0 in (-2.0, 0.0, 1.0, 2.5)
                for s0 in (0.3, 1.0, 2.0)), key=lambda r: r.fun)
    mu, log_sigma = best.x
    return float(np.exp(mu)), float(np.exp(log_sigma)), best.fun


def report(name, real, sim):
    lo, hi = np.percentile(sim, [2.5, 97.5])
    inside = np.mean((real >= lo) & (real <= hi))
    print(f"  {name:<34} real {np.round(np.percentile(real, Q), 1)}  sim {np.round(np.percentile(sim, Q), 1)}  "
          f"real inside sim 2.5-97.5 %: {inside:.2f} ({real.size} windows)")


def report_folder(folder, records, seed):
    """The shipped drift against every CPSC 2021 patient, every MIT-BIH record and the CinC 2021
    records under ``folder`` (whichever it has; each CinC source through its recorder,
    ``drift.resting_corner``), with and without the drift."""
    import tempfile

    import wfdb

    from cardiosim.sim2real.conditions import holter_day_recipe, resting_12lead_recipe

    real = []
    if (Path(folder) / "cpsc2021").is_dir():
        for p, v in drift.cpsc_wander(folder, drift.cpsc_patients(folder)).items():
            fitted = " (fitted on)" if p in drift.FIT_PATIENTS else ""
            real.append((f"CPSC 2021 patient {p}{fitted}", v, "holter"))
    for hea in sorted((Path(folder) / "mitdb").glob("*.hea")):
        rec = wfdb.rdrecord(str(hea.with_suffix("")))
        real.append((f"MIT-BIH {hea.stem}", np.concatenate([drift.wander_ratio_db(rec.p_signal[:, c], float(rec.fs))
                                                            for c in range(rec.p_signal.shape[1])]), "holter"))
    if (Path(folder) / "cinc2021").is_dir():
        names = sorted(p.stem for p in (Path(folder) / "cinc2021").glob("*.hea"))
        for c, sel in drift.by_recorder(names).items():
            real.append((f"CinC 2021 resting records, {c:g} Hz recorder ({len(sel)})",
                         drift.resting_wander(folder, sel), c))
    if not real:
        raise SystemExit(f"no cpsc2021, mitdb or cinc2021 records under {folder}")
    sims = {}
    with tempfile.TemporaryDirectory() as tmp:
        runs = [("holter", holter_day_recipe, records, {})] + \
            [(key, resting_12lead_recipe, records // 2, {"device": drift.recorder_profile(key, tmp)})
             for key in sorted({k for _, _, k in real if k != "holter"})]
        for key, fn, n, kw in runs:
            for label, noise in (("off", {"drift_ratio": 0.0}), ("shipped", {})):
                x, fs = simulate_windows(fn, n, seed, noise, **kw)
                sims[key, label] = np.concatenate([drift.wander_ratio_db(r, fs) for r in x.reshape(-1, x.shape[-1])])
    print("wander ratio dB, percentiles", Q)
    for label in ("off", "shipped"):
        print(f" drift {label}:")
        for name, v, key in real:
            report(name, v, sims[key, label])


def main(argv=None):
    import tempfile

    from cardiosim.sim2real.conditions import holter_day_recipe, resting_12lead_recipe

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.environ.get("CARDIOSIM_DATA", "../shared/data"))
    ap.add_argument("--records", type=int, default=300)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--report", metavar="DIR", help="no fit: the shipped drift (NoiseConfig defaults) against "
                    "every CPSC 2021 patient, MIT-BIH record and CinC 2021 record under DIR")
    args = ap.parse_args(argv)
    if args.report:
        return report_folder(args.report, args.records, args.seed + 1)

    exponent, f, target, fitted = fit_exponent(args.data)
    print(f"exponent {exponent:.3f}; shape dB re 0.1 Hz (f: real / model):")
    print("  " + "  ".join(f"{a:.2f}: {b:+.1f}/{c:+.1f}" for a, b, c in zip(f, target, fitted)))
    rest_fit_names, rest_held_names = drift.resting_split(args.data)
    holter_fit = np.concatenate(list(drift.cpsc_wander(args.data, drift.FIT_PATIENTS).values()))
    holter_terms = drift_terms(holter_day_recipe, args.records, args.seed, exponent)
    # The corners are read from the low-frequency shape, which the drift's level also tilts, and
    # the level from windows through the corners: alternate until the corners repeat.
    noise, seen = {"drift_exponent": exponent}, []
    with tempfile.TemporaryDirectory() as tmp:
        for it in range(4):
            print(f"resting recorders (CinC 2021 fit half, by source), round {it + 1}, drift {noise}:")
            corners = fit_recorder_corners(args.data, rest_fit_names, args.seed, records=120, noise=noise, log=print)
            if corners in seen:
                break
            seen.append(corners)
            devices = {c: drift.recorder_profile(c, tmp)
                       for c in {drift.resting_corner(n, corners) for n in rest_fit_names + rest_held_names}}
            sets = [(np.percentile(holter_fit, Q), holter_terms)]
            for c, names in drift.by_recorder(rest_fit_names, corners).items():
                # each recorder group's records simulated through its own front end; the group
                # weighs as the Holter does (its five percentiles), whatever its size
                sets.append((np.percentile(drift.resting_wander(args.data, names), Q),
                             drift_terms(resting_12lead_recipe, args.records // 2, args.seed, exponent,
                                         device=devices[c])))
            ratio, log_sd, loss = fit_level(sets, args.seed)
            print(f"level: drift_ratio {ratio:.3f} (x the record's activity-noise RMS), log SD {log_sd:.3f} "
                  f"(loss {loss:.1f})")
            noise = {"drift_ratio": ratio, "drift_log_sd": log_sd, "drift_exponent": exponent}
        if corners != seen[-1]:
            print(f"  NOTE: the corners alternate between {seen[-1]} and {corners}: the last level is fitted "
                  f"with {seen[-1]}")
            corners = seen[-1]
        if corners != drift.RESTING_CORNER_HZ:
            print(f"  NOTE: fitted corners {corners}, shipped drift.RESTING_CORNER_HZ {drift.RESTING_CORNER_HZ}")
        fitted_noise = noise
        out = {}
        runs = [("holter", holter_day_recipe, args.records, {})] + \
            [(c, resting_12lead_recipe, args.records // 2, {"device": d}) for c, d in devices.items()]
        for key, fn, n, kw in runs:
            for label, noise in (("off", {"drift_ratio": 0.0}), ("fitted", fitted_noise)):
                x, fs = simulate_windows(fn, n, args.seed + 1, noise, **kw)          # a fresh seed
                out[key, label] = np.concatenate([drift.wander_ratio_db(r, fs) for r in x.reshape(-1, x.shape[-1])])
    print("wander ratio dB, percentiles", Q, "(simulated: a fresh seed; drift off / fitted)")
    held = drift.cpsc_wander(args.data, drift.HELD_OUT_PATIENTS)
    import wfdb

    rec = wfdb.rdrecord(str(Path(args.data) / "mitdb" / "100"))
    held["MIT-BIH 100"] = np.concatenate([drift.wander_ratio_db(rec.p_signal[:, c], float(rec.fs)) for c in range(2)])
    for label in ("off", "fitted"):
        print(f" drift {label}:")
        report(f"CPSC fit patients {','.join(drift.FIT_PATIENTS)} (fit)", holter_fit, out["holter", label])
        for p, v in held.items():
            report(f"held out: {p if p.startswith('MIT') else 'CPSC patient ' + p}", v, out["holter", label])
        for half, names in (("fit half", rest_fit_names), ("held out: other half", rest_held_names)):
            for c, sel in drift.by_recorder(names, corners).items():
                report(f"CinC 2021 {half}, {c:g} Hz ({len(sel)})", drift.resting_wander(args.data, sel), out[c, label])


if __name__ == "__main__":
    main()
