"""Your device's noise: fit the activity noise model to your recordings, generate with it,
and check that the generated records read like your recordings.

Input: a folder of WFDB recordings of your device (one lead is used; any unit, no labels),
named by activity: ``rest_*.hea``, ``walk_*.hea``, ``run_*.hea``, ``arms_*.hea``,
``squats_*.hea`` (the activities present are fitted, the others keep the shipped fit). Output in
``--out``: ``my_noise.json`` (the fit), ``recipe.toml`` (a recipe using it, activities weighted
by your recordings' counts), ``generated.nc`` (a small dataset from it) and a table, per activity,
of your recordings' median noise-to-QRS against the generated records' (the measure of
``cardiosim measure``).

Without a folder (``--demo``) it makes stand-in recordings first: a simulated chest strap whose
noise is 3x the shipped level at rest and 2x while walking, written as WFDB in ADC counts.

Run:  python examples/my_device_noise.py my_recordings/ --electrode textile --device chest_strap_500hz --out my_noise/
      python examples/my_device_noise.py --demo --small --out /tmp/my_noise
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ACTIVITIES = ("rest", "arms", "walk", "run", "squats")


def make_demo_recordings(folder: Path, n: int, duration: float) -> None:
    """Stand-in recordings: the shipped chest strap with gel electrodes, noisier than the fit."""
    import wfdb

    from cardiosim.noise.config import NoiseConfig
    from cardiosim.simulate import SimulationConfig, make_context, simulate_record
    from cardiosim.sources import synthetic_source

    folder.mkdir(parents=True, exist_ok=True)
    ctx = make_context("chest_strap_500hz")
    for activity, louder in (("rest", 3.0), ("walk", 2.0)):
        cfg = SimulationConfig(activities={activity: 1.0},
                               noise=NoiseConfig(electrode="gel", activity_level_scale=louder))
        for i in range(n):
            src = synthetic_source(duration, 500.0, np.random.default_rng([7, i]), ctx.forward, ctx.frank_layout,
                                   rhythm="SR", morphology="NORM")
            rec = simulate_record(src, np.random.default_rng([7, i, len(activity)]), context=ctx, config=cfg)
            counts = np.round(rec.ecg[0].astype(np.float64) * 400.0).astype(np.int16)   # 400 adu/mV
            wfdb.wrsamp(f"{activity}_{i:02d}", fs=rec.fs, units=["adu"], sig_name=["ECG"],
                        d_signal=counts[:, None], fmt=["16"], adc_gain=[1.0], baseline=[0], write_dir=str(folder))


def recordings_by_activity(folder: Path) -> dict:
    found = {a: sorted(folder.glob(f"{a}_*.hea")) for a in ACTIVITIES}
    found = {a: [p.with_suffix("") for p in v] for a, v in found.items() if v}
    if not found:
        raise SystemExit(f"no recordings named <activity>_*.hea ({', '.join(ACTIVITIES)}) in {folder}")
    return found


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    ap.add_argument("recordings", nargs="?", type=Path, help="folder of <activity>_*.hea WFDB recordings")
    ap.add_argument("--demo", action="store_true", help="make stand-in recordings first (no folder needed)")
    ap.add_argument("--electrode", default="gel", choices=("gel", "dry", "textile"))
    ap.add_argument("--device", default="chest_strap_500hz", help="your device profile (name or TOML path)")
    ap.add_argument("--lead", type=int, default=0, help="lead of --device matching the recordings' channel")
    ap.add_argument("--channel", default="0", help="channel of the recordings (index or name)")
    ap.add_argument("--records", type=int, default=60, help="records to generate with the fit")
    ap.add_argument("--small", action="store_true", help="seconds, for tests")
    ap.add_argument("--out", type=Path, default=Path("my_noise"))
    args = ap.parse_args(argv)

    from cardiosim.dataset import Recipe, generate, open_dataset
    from cardiosim.device_fit import fit_device_noise
    from cardiosim.noise import textile

    args.out.mkdir(parents=True, exist_ok=True)
    folder = args.recordings
    if args.demo:
        folder = args.out / "recordings"
        make_demo_recordings(folder, 4 if args.small else 8, 20.0 if args.small else 30.0)
    if folder is None:
        raise SystemExit("give a folder of recordings, or --demo")
    found = recordings_by_activity(folder)
    fit_path = args.out / "my_noise.json"
    channel = int(args.channel) if args.channel.isdigit() else args.channel
    base = None
    for activity, paths in found.items():
        print(f"fitting {args.electrode}/{activity} to {len(paths)} recording(s)", flush=True)
        fit_device_noise(paths, args.electrode, activity, fit_path, channel=channel, device=args.device,
                         lead=args.lead, base=base, n_records=8 if args.small else 24,
                         duration=20.0 if args.small else 30.0)
        base = fit_path

    weights = {a: float(len(v)) for a, v in found.items()}
    records = 8 if args.small else args.records
    # sinus rhythm with normal beats: the comparison below is then like with like (an arrhythmic
    # record's odd beats would count as residual); for training data use your class mix
    recipe = Recipe.from_dict({"records": records, "duration": 20.0 if args.small else 30.0, "seed": 1,
                               "device": args.device, "source": {"classes": {"SR+NORM": 1.0}},
                               "simulation": {"activities": weights,
                                              "noise": {"electrode": args.electrode,
                                                        "textile_fit": str(fit_path.resolve())}}})
    (args.out / "recipe.toml").write_text(recipe.to_toml())
    out_nc = args.out / "generated.nc"
    if out_nc.exists():
        out_nc.unlink()
    generate(recipe, out_nc, progress=False)

    # your recordings against the generated records, per activity, by the same measure
    from cardiosim.sources.wfdb_reader import read_wfdb_signal

    rows = {}
    for activity, paths in found.items():
        mine = []
        for p in paths:
            x, fs, names, _ = read_wfdb_signal(p, lead_names=False, require_volts=False)
            k = channel if isinstance(channel, int) else [str(n) for n in names].index(channel)
            mine.append(textile.measure_record(x[k], fs).noise_to_qrs)
        rows[activity] = {"recordings": float(np.median(np.concatenate(mine))), "generated": []}
    with open_dataset(out_nc) as ds:
        acts = [str(a) for a in ds["param_activity"].values]
        for i, a in enumerate(acts):
            if a in rows:
                x = np.asarray(ds["ecg"].values[i, args.lead], dtype=np.float64)
                rows[a]["generated"].append(textile.measure_record(x, float(ds.attrs["sampling_rate"])).noise_to_qrs)
    print("| activity | your recordings: noise/QRS median | generated records (n) |")
    print("| --- | --- | --- |")
    for a, r in rows.items():
        gen = float(np.median(np.concatenate(r["generated"]))) if r["generated"] else float("nan")
        r["generated"] = gen
        r["n_generated"] = sum(1 for x in acts if x == a)
        print(f"| {a} | {r['recordings']:.4f} | {gen:.4f} ({r['n_generated']}) |")
    (args.out / "comparison.json").write_text(json.dumps(rows, indent=1) + "\n")
    print(f"wrote {fit_path}, {args.out / 'recipe.toml'}, {out_nc}, {args.out / 'comparison.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
