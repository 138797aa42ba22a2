"""Surface source (issue 12): accuracy on the torso tank, and speed.

Accuracy -- the Utah torso tank (``$CARDIOSIM_DATA/tank``; one beat, 192 surface electrodes):
fit :func:`cardiosim.inverse.fit_surface_source` on 9 electrodes placed like a 12-lead
(RA, LA, LL, V1-V6), and on 9, 16 and 32 spread like a shirt (farthest-point sampling),
predict every other electrode; median r and relative RMS error binned by the distance to
the nearest fitting electrode, against copying the nearest fitting electrode and Laplacian
interpolation over the surface, side by side. The cage potentials are never used; the cage
mesh is one of the heart hints compared (``none`` = estimated, ``cage``, ``point`` = cage centre,
``point+search`` = the centre chosen by marginal likelihood within 3 cm of the cage centre).

Speed, side by side in one run on the default torso:

- fitting a 10-s 12-lead record at 500 Hz against the least-squares dipole
  (``estimate_dipole``), and the whole ``recording_to_source`` (heart rate, residual) with
  the surface and the dipole model. Target: <= 50 ms on one core (run with
  ``OPENBLAS_NUM_THREADS=1``);
- the field at displaced positions (``SurfaceSource.transfer``: one numba pass that finds
  each point's closest triangle in a fine grid and interpolates the 9-column node table,
  ``cardiosim/inverse/_kernels.py``) against, in the same run, the previous path (grid
  closest point, then a separate interpolation: ``locate`` + ``interpolate_nodes``) and the
  dipole lead field (``BEMModel.lead_field``, 3 columns). Target: >= 1 million positions per
  second. BLAS is held to one thread (threadpoolctl) for every timing.

    python benchmarks/bench_surface.py [--figure docs/surface_tank.png] [--positions N]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _harness import best_time, report  # noqa: E402

from cardiosim.inverse import estimate_dipole, fit_surface_source  # noqa: E402
from cardiosim.inverse.holdout import (holdout_scores, laplacian_interpolation, nearest_copy,  # noqa: E402
                                       spread_subset, twelve_lead_like_subset)
from cardiosim.inverse.surface import ELECTRODES_12, HEART_SEARCH_RADIUS, standard12_potentials  # noqa: E402

DATA = Path(os.environ.get("CARDIOSIM_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def load_tank(folder: Path):
    import pandas as pd

    from cardiosim.geometry import read_torso

    torso = read_torso(folder / "tank.obj", units="mm")
    cage = read_torso(folder / "cage.obj", units="mm", name="cage")
    el = pd.read_csv(folder / "tank_electrodes.csv")
    pos = el[["x_mm", "y_mm", "z_mm"]].to_numpy() * 1e-3
    return torso, cage, pos, np.load(folder / "tank_potentials_mV.npy").astype(np.float64)


def tank_rows(folder: Path) -> list[dict]:
    torso, cage, pos, pot = load_tank(folder)
    centre = cage.vertices.mean(axis=0)
    subsets = {"12-lead-like 9": twelve_lead_like_subset(pos, centre), "spread 9": spread_subset(pos, 9),
               "spread 16": spread_subset(pos, 16), "spread 32": spread_subset(pos, 32)}
    rows = []
    for name, fit in subsets.items():
        meas = pot - pot[fit].mean(axis=0)
        preds = {}
        for hint, heart, search in (("none", None, 0.0), ("cage", cage, 0.0), ("point", centre, 0.0),
                                    ("point+search", centre, HEART_SEARCH_RADIUS)):
            preds[f"surface ({hint})"] = fit_surface_source(torso, pos[fit], pot[fit], heart=heart,
                                                            heart_search=search).predict(pos)
        preds["nearest copy"] = nearest_copy(pos[fit], pot[fit], pos)
        preds["Laplacian"] = laplacian_interpolation(torso, pos[fit], pot[fit], pos)
        for method, pred in preds.items():
            pred = np.asarray(pred, dtype=np.float64)
            sc = holdout_scores(pred - pred[fit].mean(axis=0), meas, pos, fit)
            row = {"subset": name, "method": method}
            for b in sc["bins"]:
                tag = f"{b['lo_cm']:.0f}-{b['hi_cm']:.0f}" if np.isfinite(b["hi_cm"]) else f">{b['lo_cm']:.0f}"
                row[f"r {tag}"] = b["median_r"]
                row[f"rel {tag}"] = b["median_rel_rms"]
                row[f"n {tag}"] = b["n"]
            row["B-A r"] = sc["pairs"]["median_r"]
            rows.append(row)
    return rows


def speed_rows(n_positions: int) -> list[dict]:
    from cardiosim.forward import make_bem_model
    from cardiosim.geometry import make_layout, make_torso
    from cardiosim.leads import STANDARD_LEADS

    torso = make_torso()
    fwd = make_bem_model(torso)
    std = make_layout("standard12", torso)
    rng = np.random.default_rng(0)
    t = np.arange(5000) / 500.0                                    # 10 s at 500 Hz
    p = np.stack([np.sin(2 * np.pi * 1.2 * t), np.cos(2 * np.pi * 1.2 * t), np.sin(2 * np.pi * 2.4 * t)]) * 1e-4
    pos = std.positions[std.index(ELECTRODES_12)]
    from cardiosim.inverse import project_dipole
    ecg = project_dipole(p, fwd, std) + rng.normal(0, 0.01, (12, 5000))
    pots = standard12_potentials(ecg, STANDARD_LEADS)
    heart = torso.heart.position
    fit_surface_source(torso, pos, pots, heart=heart)             # build + cache the operator
    t_fit = best_time(lambda: fit_surface_source(torso, pos, pots, heart=heart), repeat=5)
    t_dip = best_time(lambda: estimate_dipole(ecg, STANDARD_LEADS, fwd, std), repeat=5)
    from cardiosim.sources import from_array, recording_to_source
    rec = from_array(ecg.astype(np.float32), 500.0, STANDARD_LEADS)
    recording_to_source(rec, fwd, std)
    t_rec = best_time(lambda: recording_to_source(rec, fwd, std), repeat=5)
    t_rec_dip = best_time(lambda: recording_to_source(rec, fwd, std, source_model="dipole"), repeat=5)
    model = fit_surface_source(torso, pos, pots, heart=heart)
    base = std.positions[rng.integers(0, len(std.positions), n_positions)]
    pts = base + rng.normal(0, 0.01, base.shape)
    from cardiosim.geometry import project_to_surface
    pts = project_to_surface(torso, pts, max_distance=0.05)
    from cardiosim.forward._kernels import interpolate_nodes
    model.transfer(pts[:10])
    fwd.lead_field(pts[:10])
    model.locate(pts[:10])

    def previous():                                   # the path before the fused kernel
        tri, bary = model.locate(pts)
        return interpolate_nodes(tri, bary, torso.faces, model.node_transfer)

    # interleaved, best of 7: the machine is shared, so the three see the same load
    t_tr = t_prev = t_lf = float("inf")
    for _ in range(7):
        t_tr = min(t_tr, best_time(lambda: model.transfer(pts), repeat=1))
        t_prev = min(t_prev, best_time(previous, repeat=1))
        t_lf = min(t_lf, best_time(lambda: fwd.lead_field(pts), repeat=1))
    # What the simulator computes per electrode position for a real source (simulate.py): the
    # forward model's dipole lead field plus the non-dipolar transfer of the surface source.
    split = model.with_dipole(fwd.node_lead_field)
    split.nondipolar_transfer(pts[:10])
    split.split_transfer(pts[:10])
    t_sim = t_one = float("inf")
    for _ in range(5):
        t_sim = min(t_sim, best_time(lambda: (fwd.lead_field(pts), split.nondipolar_transfer(pts)), repeat=1))
        t_one = min(t_one, best_time(lambda: split.split_transfer(pts), repeat=1))
    rate = n_positions / t_tr
    return [{"task": "fit 10-s 12-lead record (500 Hz)", "surface source": f"{t_fit * 1e3:.2f} ms",
             "baseline": f"lstsq dipole {t_dip * 1e3:.2f} ms", "ratio": t_fit / t_dip, "target": "<= 50 ms",
             "ok": t_fit <= 0.05},
            {"task": "recording_to_source, 10-s 12-lead record", "surface source": f"{t_rec * 1e3:.2f} ms",
             "baseline": f"dipole model {t_rec_dip * 1e3:.2f} ms", "ratio": t_rec / t_rec_dip, "target": "<= 50 ms",
             "ok": t_rec <= 0.05},
            {"task": f"field at {n_positions:,} displaced positions",
             "surface source": f"{rate / 1e6:.2f} M positions/s",
             "baseline": (f"previous locate+interpolate {n_positions / t_prev / 1e6:.2f} M/s; "
                          f"dipole lead field {n_positions / t_lf / 1e6:.2f} M/s"),
             "ratio": t_prev / t_tr, "target": ">= 1 M/s", "ok": rate >= 1e6},
            {"task": f"simulator path at {n_positions:,} positions: dipole lead field + non-dipolar part, "
                     "one pass (split_transfer)",
             "surface source": f"{n_positions / t_one / 1e6:.2f} M positions/s",
             "baseline": (f"two searches as simulate.py does today (lead_field + nondipolar_transfer) "
                          f"{n_positions / t_sim / 1e6:.2f} M/s"),
             "ratio": t_sim / t_one, "target": ">= 1 M/s", "ok": n_positions / t_one >= 1e6}]


def figure(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bins = ["0-2", "2-3", "3-5", ">5"]
    subsets = ["12-lead-like 9", "spread 16", "spread 32"]
    methods = {"surface (none)": ("C0", "surface source (heart estimated)"),
               "surface (cage)": ("C2", "surface source (cage mesh as hint)"),
               "nearest copy": ("C3", "copy nearest fitting electrode"),
               "Laplacian": ("C1", "Laplacian interpolation")}
    fig, axes = plt.subplots(2, len(subsets), figsize=(11, 5.5), sharey="row")
    for j, sub in enumerate(subsets):
        for m, (color, label) in methods.items():
            row = next(r for r in rows if r["subset"] == sub and r["method"] == m)
            ok = [b for b in bins if row[f"n {b}"] > 0]
            x = [bins.index(b) for b in ok]
            axes[0, j].plot(x, [row[f"rel {b}"] for b in ok], "o-", color=color, label=label)
            axes[1, j].plot(x, [row[f"r {b}"] for b in ok], "o-", color=color, label=label)
        axes[0, j].set_title(f"tank, fit on {sub}")
        for i in (0, 1):
            axes[i, j].set_xticks(range(len(bins)), [f"{b} cm" for b in bins])
            axes[i, j].grid(alpha=0.3)
        axes[0, j].axhline(0.25, color="k", lw=0.8, ls=":")
        axes[1, j].axhline(0.97, color="k", lw=0.8, ls=":")
    axes[0, 0].set_ylabel("median relative RMS error")
    axes[1, 0].set_ylabel("median correlation r")
    axes[1, 0].set_ylim(0.8, 1.0)
    axes[1, 1].set_xlabel("distance of the held-out electrode to the nearest fitting electrode")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--figure", type=Path, default=None, help="write the tank figure (PNG) here")
    ap.add_argument("--positions", type=int, default=200_000)
    args = ap.parse_args(argv)
    folder = DATA / "tank"
    if folder.is_dir():
        rows = tank_rows(folder)
        cols = (["subset", "method"] + [f"{k} {b}" for b in ("2-3", "3-5", "2-5", ">5") for k in ("r", "rel")]
                + ["B-A r"])
        report("bench_surface_tank", rows, cols,
               notes="median over held-out electrodes per distance bin; fitted on the subset only")
        if args.figure:
            figure(rows, args.figure)
    else:
        print(f"tank data not found in {folder}; accuracy part skipped")
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):                 # one core for the fit (issue 12: <= 50 ms)
        rows = speed_rows(args.positions)
    report("bench_surface_speed", rows, ["task", "surface source", "baseline", "ratio", "target", "ok"],
           notes="ratio: baseline time / surface time for the field (speed-up), surface / baseline for fits; "
                 f"one BLAS thread; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at the end")


if __name__ == "__main__":
    main()
