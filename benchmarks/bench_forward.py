"""Forward-model speed: BEM build time vs triangle count; lead-field evaluations per second.

Side by side in one run:

- BEM build (numba collocation matrix + dense solve) on icospheres and parametric torsos of
  several resolutions, against the NumPy twin of the collocation matrix (baseline);
- lead-field evaluation at displaced electrode positions (grid closest-point location +
  numba barycentric interpolation) against the NumPy brute-force locator (baseline).
  Target (issue 3): >= 1 million electrode-positions per second on one core.

    python benchmarks/bench_forward.py [--positions N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _harness import best_time, report  # noqa: E402

from cardiosim.forward import make_bem_model, solve_bem  # noqa: E402
from cardiosim.forward._kernels import (interpolate_transfer_numpy, linear_collocation_matrix,  # noqa: E402
                                        linear_collocation_matrix_numpy)
from cardiosim.geometry import TorsoParams, displace_on_surface, make_layout, make_sphere_mesh, make_torso  # noqa: E402
from cardiosim.geometry._kernels import closest_point_brute_numpy  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--positions", type=int, default=1_000_000)
    args = ap.parse_args(argv)

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
    t0 = time.perf_counter()
    moved = displace_on_surface(torso, lay.positions, rng.normal(0, 0.01, (n_steps, len(lay.electrodes), 3)))
    t_disp = time.perf_counter() - t0
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
    rows.append({"case": "displace_on_surface (2-cm-scale walk)", "triangles": len(torso.faces),
                 "seconds": t_disp, "positions": len(pts), "positions_per_s": len(pts) / t_disp})
    report("bench_forward", rows, ["case", "triangles", "seconds", "matrix_numba_s", "matrix_numpy_s", "positions",
                                   "positions_per_s", "speedup"],
           notes="target: >= 1e6 lead-field evaluations per second on one core")


if __name__ == "__main__":
    main()
