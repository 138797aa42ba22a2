"""Refit the textile noise table shipped in ``cardiosim/noise/data/textile_fit.json``.

Fits on subjects 01-03 of ``$CARDIOSIM_DATA/textile`` only (04-05 are held out for
``tests/test_noise_textile.py``), then measures the QRS peak-to-peak of the simulated
chest strap (device ``chest_strap_500hz``, reference body, noiseless, 8 ODE SR+NORM
sources) with the same measure, which turns fitted noise-to-QRS ratios into mV.

    python scripts/fit_textile_noise.py [DATA_DIR]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np


def reference_qrs_pp_mv(n_sources: int = 8, seed: int = 2026) -> float:
    from cardiosim.noise import textile
    from cardiosim.simulate import SimulationConfig, make_context, simulate_record
    from cardiosim.sources import synthetic_source

    ctx = make_context("chest_strap_500hz")
    pp = []
    for i in range(n_sources):
        rng = np.random.default_rng([seed, i])
        src = synthetic_source(20.0, 500.0, rng, ctx.forward, ctx.frank_layout, rhythm="SR", morphology="NORM",
                               source_id=f"ref:{i}")
        rec = simulate_record(src, rng, context=ctx, config=SimulationConfig.noiseless())
        pp.append(textile.measure_record(rec.ecg[0], rec.fs).qrs_pp)
    return float(np.median(pp))


def main(argv=None) -> None:
    from cardiosim.noise import textile

    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0]) if args else Path(os.environ.get("CARDIOSIM_DATA", Path(__file__).resolve().parents[2]
                                                          / "shared" / "data"))
    fit = textile.fit_textile(root / "textile")
    fit["qrs_pp_reference_mv"] = round(reference_qrs_pp_mv(), 4)
    fit["qrs_pp_reference_how"] = ("median QRS peak-to-peak (noise.textile.measure_record) of 8 noiseless "
                                   "20-s SR+NORM ODE records through chest_strap_500hz on the reference body")
    textile.write_fit(fit)
    print(f"wrote {textile.FIT_FILE}")


def simulate_measures(electrode: str, activity: str, n_records: int = 4, duration: float = 30.0, seed: int = 7):
    """Measures (:func:`cardiosim.noise.textile.measure_record`) of ``n_records`` simulated
    chest-strap records with the default noise for ``electrode`` x ``activity``, and the
    per-segment grades the dataset stores."""
    from cardiosim.noise import NoiseConfig, textile
    from cardiosim.simulate import SimulationConfig, make_context, simulate_record
    from cardiosim.sources import synthetic_source

    ctx = _strap_context()
    cfg = SimulationConfig(activities={activity: 1.0}, noise=NoiseConfig(electrode=electrode))
    rails = (-ctx.device.input_range_mv, ctx.device.input_range_mv - ctx.device.lsb_mv)
    out = []
    for i in range(n_records):
        rng = np.random.default_rng([seed, i, textile.ELECTRODES.index(electrode), textile.ACTIVITIES.index(activity)])
        src = synthetic_source(duration, 500.0, rng, ctx.forward, ctx.frank_layout, rhythm="SR", morphology="NORM",
                               source_id=f"cmp:{i}")
        rec = simulate_record(src, rng, context=ctx, config=cfg)
        out.append(textile.measure_record(rec.ecg[0], rec.fs, rails=rails))
    return out


_CTX = {}


def _strap_context():
    if "strap" not in _CTX:
        from cardiosim.simulate import make_context
        _CTX["strap"] = make_context("chest_strap_500hz")
    return _CTX["strap"]


#: Spread between two halves of the real subjects (issue 14): interquartile range and
#: residual kurtosis of one half lie within these factors of the other's.
IQR_SPREAD, KURTOSIS_SPREAD = 1.75, 2.75


def compare_held_out(data_dir, n_records: int = 10, duration: float = 30.0) -> list[dict]:
    """Simulated chest-strap records vs the held-out real subjects (04, 05), per electrode
    type x activity: medians, IQRs and kurtosis of the noise-to-QRS ratio, log-spectral
    distance of the residual (1-40 Hz), grade fractions (the fitted rule on the simulated
    ratios vs the graders' labels), rail and contact-loss fractions. The fit subjects'
    median is listed beside, as the real between-subject spread."""
    from cardiosim.noise import textile

    root = Path(data_dir) / "textile"
    held = textile.measure_real(root, textile.HELD_OUT_SUBJECTS)
    fitted = textile.load_fit()
    thr = fitted["grading_rule"]["thresholds_noise_to_qrs"]
    rows = []
    for e in textile.ELECTRODES:
        for a in textile.ACTIVITIES:
            sim_m = simulate_measures(e, a, n_records=n_records, duration=duration)
            sim = textile.summarize(sim_m)
            real = textile.summarize(held[(e, a)]["measures"])
            band = (sim["f"] >= textile.BAND_HZ[0]) & (sim["f"] <= textile.BAND_HZ[1])
            lsd = float(np.sqrt(np.mean((10 * np.log10(sim["psd"][band] / real["psd"][band])) ** 2)))
            sim_g = textile.grade_fractions(textile.grade(np.concatenate([m.noise_to_qrs for m in sim_m]), thr))
            real_g = textile.grade_fractions(np.concatenate(held[(e, a)]["grades"]))
            rows.append({"electrode": e, "activity": a, "sim_median": sim["median"], "real_median": real["median"],
                         "fit_median": fitted["table"][f"{e}/{a}"]["noise_to_qrs_median"],
                         "sim_iqr": sim["iqr"], "real_iqr": real["iqr"],
                         "sim_kurtosis": sim["kurtosis"], "real_kurtosis": real["kurtosis"], "lsd_db": lsd,
                         "sim_grades": sim_g, "real_grades": real_g,
                         "sim_rail": sim["rail_fraction"], "real_rail": real["rail_fraction"],
                         "sim_contact": sim["contact_fraction"], "real_contact": real["contact_fraction"]})
    return rows


def markdown_table(rows) -> str:
    head = ("| electrode | activity | noise/QRS median sim / held-out real (fit subjects) | IQR sim / real | "
            "kurtosis sim / real | residual spectrum distance dB | grades 1-4 % sim / real | rail+contact % sim / real |\n"
            "| --- | --- | --- | --- | --- | --- | --- | --- |\n")
    lines = []
    for r in rows:
        g = lambda v: "/".join(f"{100 * x:.0f}" for x in v)  # noqa: E731
        lines.append(f"| {r['electrode']} | {r['activity']} | {r['sim_median']:.3f} / {r['real_median']:.3f} "
                     f"({r['fit_median']:.3f}) | {r['sim_iqr']:.3f} / {r['real_iqr']:.3f} | "
                     f"{r['sim_kurtosis']:.1f} / {r['real_kurtosis']:.1f} | {r['lsd_db']:.1f} | "
                     f"{g(r['sim_grades'])} / {g(r['real_grades'])} | "
                     f"{100 * max(r['sim_rail'], r['sim_contact']):.1f} / {100 * max(r['real_rail'], r['real_contact']):.1f} |")
    return head + "\n".join(lines) + "\n"


if __name__ == "__main__":
    if "--compare" in sys.argv:
        sys.argv.remove("--compare")
        root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared" / "data"
        print(markdown_table(compare_held_out(root)))
    else:
        main()
