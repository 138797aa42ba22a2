"""Electrode displacement: V1/V2 two intercostal spaces too high, then the shirt slips 2 cm.

The commonest precordial placement error is V1/V2 too high (Wenger & Kligfield 1996);
a shirt also slides down the body as the wearer moves. This script simulates one
noise-free ODE heartbeat record three times through the same torso (boundary-element
volume conductor) and device:

1. electrodes at the standard positions (the clinical reference),
2. V1 and V2 moved up two intercostal spaces (2nd ICS),
3. (2) with the whole garment slipped 2 cm down,

prints how much each lead changed (correlation and amplitude ratio against the
reference) and writes PNGs: the 12 leads before and after on ECG paper, an overlay, and
the torso with both electrode sets.

Run:  python examples/displacement.py --out figures/   (add --small for a quick run)
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

from cardiosim import geometry, plot, simulate
from cardiosim.inverse import dipole_from_vcg
from cardiosim.ode import synthesize
from cardiosim.sources import CardiacSource


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("displacement_figures"), help="output folder for PNGs")
    ap.add_argument("--small", action="store_true", help="short record and infinite-medium lead field")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--slip", type=float, default=-0.02, help="vertical garment slip in metres (+ up)")
    args = ap.parse_args(argv)

    duration = 4.0 if args.small else 10.0
    forward = "infinite" if args.small else "bem"
    ctx = simulate.make_context("shirt12_500hz", forward=forward)
    torso = ctx.torso

    # one clean source: an ODE sinus beat sequence turned into a heart dipole (A m, LPS)
    rng = np.random.default_rng(args.seed)
    beats = synthesize(duration, 500.0, rng, rhythm="SR", morphology="NORM", heart_rate=70.0)
    dipole = dipole_from_vcg(beats.vcg, ctx.forward, ctx.frank_layout)
    source = CardiacSource(dipole=dipole, fs=500.0, source_id="ode:example", labels=tuple(beats.labels))

    standard = geometry.make_layout("standard12", torso)
    high = geometry.move_intercostal(torso, standard, ["V1", "V2"], 2)
    slipped = high.with_positions(geometry.slip_garment(torso, high.positions, vertical=args.slip),
                                  name=f"{high.name}+slip{args.slip * 100:+.0f}cm")

    cfg = simulate.SimulationConfig.noiseless()   # isolate the effect of electrode position
    records = {}
    for name, layout in (("standard", standard), ("V1V2_2ics_high", high), ("slipped", slipped)):
        c = dataclasses.replace(ctx, layout=layout)
        records[name] = simulate.simulate_record(source, np.random.default_rng(0), context=c, config=cfg)

    ref = records["standard"].ecg
    leads = records["standard"].leads
    fs = records["standard"].fs
    print(f"{'lead':>5} | {'2 ICS high: r':>13} {'ratio':>6} | {'+ slip: r':>10} {'ratio':>6}")
    for k, lead in enumerate(leads):
        row = [lead]
        for name in ("V1V2_2ics_high", "slipped"):
            x = records[name].ecg[k]
            r = np.corrcoef(ref[k], x)[0, 1]
            ratio = np.ptp(x) / np.ptp(ref[k])
            row += [f"{r:.3f}", f"{ratio:.2f}"]
        print(f"{row[0]:>5} | {row[1]:>13} {row[2]:>6} | {row[3]:>10} {row[4]:>6}")
    moved = np.linalg.norm(slipped.positions - standard.positions, axis=1)
    print("electrode displacement (cm):", ", ".join(f"{e} {100 * d:.1f}" for e, d in zip(standard.electrodes, moved)))

    args.out.mkdir(parents=True, exist_ok=True)
    written = [
        plot.save_png(plot.plot_12lead(ref, fs, leads, title="standard electrode positions"),
                      args.out / "ecg_standard.png"),
        plot.save_png(plot.plot_12lead(records["slipped"].ecg, fs, leads,
                                       title="V1/V2 two intercostal spaces high, shirt slipped 2 cm"),
                      args.out / "ecg_displaced.png"),
        plot.save_png(plot.plot_overlay(ref, records["slipped"].ecg, fs, leads,
                                        labels=("standard", "displaced")), args.out / "overlay.png"),
    ]
    pos = np.concatenate([standard.positions, slipped.positions])
    names = list(standard.electrodes) + [f"{e}'" for e in slipped.electrodes]
    colors = ["tab:blue"] * len(standard.electrodes) + ["tab:red"] * len(slipped.electrodes)
    written.append(plot.save_png(plot.plot_torso(torso.vertices, torso.faces, pos, names, colors=colors),
                                 args.out / "torso_electrodes.png"))
    for p in written:
        print("wrote", p)
    return records


if __name__ == "__main__":
    main()
