"""Forward-model speed: BEM build time vs triangle count; lead-field evaluations per second.

Side by side in one run:

- BEM build (numba collocation matrix + dense solve) on icospheres and parametric torsos of
  several resolutions, against the NumPy twin of the collocation matrix (baseline);
- lead-field evaluation at displaced electrode positions (grid closest-point location +
  numba barycentric interpolation) against the NumPy brute-force locator (baseline).
  Target (issue 3): >= 1 million electrode-positions per second on one core;
- surface displacement (``displace_on_surface``, numba walk with local closest-point search)
  against its NumPy twin (global closest point every step), for centimetre-scale random
  offsets and a smooth 25 Hz trajectory. Target: >= 1 million positions per second.

    python benchmarks/bench_forward.py [--positions N] [--only-displace]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _harness import best_time, report  # noqa: E402

from cardiosim.forward import make_bem_model, solve_bem  # noqa: E402
from cardiosim.forward._kernels import (  # noqa: E402
    interpolate_transfer_numpy,
    linear_collocation_matrix,
    linear_collocation_matrix_numpy,
)
from cardiosim.geometry import (  # noqa: E402
    TorsoParams,
    displace_on_surface,
    make_layout,
    make_sphere_mesh,
    make_torso,
)
from cardiosim.geometry._kernels import closest_point_brute_numpy  # noqa: E402
from cardiosim.geometry.surface import _displace_on_surface_numpy  # noqa: E402


def displacement_rows(n_positions: int) -> list[dict]:
    """displace_on_surface (numba) vs its NumPy twin, side by side, on the default torso."""
    torso = make_torso()
    lay = make_layout("shirt12", torso)
    n_e = len(lay.electrodes)
    rng = np.random.default_rng(0)
    n_t = max(1, n_positions // n_e)
    t = np.arange(n_t) / 25.0                                  # 25 Hz lead-field rate
    cases = {
        "random offsets, N(0, 1 cm) per axis": rng.normal(0, 0.01, (n_t, n_e, 3)),
        "smooth trajectory, 1.5 cm sway at 0.3 Hz": 0.015 * np.stack(
            [np.sin(2 * np.pi * 0.3 * t), np.cos(2 * np.pi * 0.2 * t), 0.5 * np.sin(2 * np.pi * 0.25 * t)],
            axis=-1)[:, None, :] * rng.uniform(0.5, 1.0, (1, n_e, 1)),
    }
    displace_on_surface(torso, lay.positions, next(iter(cases.values()))[:2])     # JIT warm-up
    rows = []
    for name, off in cases.items():
        n = off.shape[0] * n_e
        t_fast = best_time(lambda off=off: displace_on_surface(torso, lay.positions, off), repeat=3)
        sub = off[:max(1, 20_000 // n_e)]
        t_np = best_time(lambda sub=sub: _displace_on_surface_numpy(torso, lay.positions, sub), repeat=1)
        t_np *= n / (sub.shape[0] * n_e)
        rows.append({"case": f"displace_on_surface numba: {name}", "triangles": len(torso.faces), "seconds": t_fast,
                     "positions": n, "positions_per_s": n / t_fast, "speedup": t_np / t_fast})
        rows.append({"case": f"baseline NumPy twin: {name}", "triangles": len(torso.faces), "seconds": t_np,
                     "positions": n, "positions_per_s": n / t_np, "speedup": 1.0})
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--positions", type=int, default=1_000_000)
    ap.add_argument("--only-displace", action="store_true", help="run only the displacement rows")
    args = ap.parse_args(argv)

    columns = ["case", "triangles", "seconds", "matrix_numba_s", "matrix_numpy_s", "positions", "positions_per_s",
               "speedup"]
    if args.only_displace:
        report("bench_displace", displacement_rows(args.positions), columns,
               notes="target: >= 1e6 displaced positions per second on one core")
        return
    rows = []
    meshes = [(f"sphere/{s}", make_sphere_mesh(0.1, s), np.array([0, 0, 0.05])) for s in (2, 3, 4)]
    for edge in (0.04, 0.03, 0.02):
        t = make_torso(TorsoParams(edge_length=edge))
        meshes.append((f"torso/edge {edge * 100:.0f} cm", t, t.heart.position))
    linear_collocation_matrix(meshes[0][1].vertices, meshes[0][1].faces)      # JIT warm-up
    for name, mesh, src in meshes:
        t_build = best_time(lambda: solve_bem(mesh.vertices, mesh.faces, src), repeat=1)
        t_mat = best_time(lambda: linear_collocation_matrix(mesh.vertices, mesh.faces), repeat=1)
        t_np = best_time(lambda: linear_collocation_matrix_numpy(mesh.vertices, mesh.faces), repeat=1) \
            if len(mesh.faces) <= 2000 else float("nan")
        rows.append({"case": f"BEM build {name}", "triangles": len(mesh.faces), "seconds": t_build,
                     "matrix_numba_s": t_mat, "matrix_numpy_s": t_np, "speedup": t_np / t_mat})

    torso = make_torso()
    bem = make_bem_model(torso, use_cache=False)
    lay = make_layout("shirt12", torso)
    rng = np.random.default_rng(0)
    n_steps = max(1, args.positions // len(lay.electrodes))
    moved = displace_on_surface(torso, lay.positions, rng.normal(0, 0.01, (n_steps, len(lay.electrodes), 3)))
    pts = moved.reshape(-1, 3)
    bem.lead_field(pts[:100])
    t_fast = best_time(lambda: bem.lead_field(pts), repeat=3)
    sub = pts[:20_000]
    t_base = best_time(lambda: interpolate_transfer_numpy(*closest_point_brute_numpy(sub, torso.triangles)[:2],
                                                          bem.tri_transfer), repeat=1) * len(pts) / len(sub)
    rows.append({"case": "lead field at displaced positions (grid + numba)", "triangles": len(torso.faces),
                 "seconds": t_fast, "positions": len(pts), "positions_per_s": len(pts) / t_fast,
                 "speedup": t_base / t_fast})
    rows.append({"case": "baseline: brute-force NumPy locate + interpolate", "triangles": len(torso.faces),
                 "seconds": t_base, "positions": len(pts), "positions_per_s": len(pts) / t_base, "speedup": 1.0})
    rows += displacement_rows(args.positions)
    report("bench_forward", rows, columns,
           notes="targets: >= 1e6 lead-field evaluations and >= 1e6 displaced positions per second on one core")


if __name__ == "__main__":
    main()
