"""Multi-compartment BEM (torso + lungs): accuracy against layered spheres, build time, and
what the lungs do to the default torso's lead vectors.

1. Concentric spheres (dipole at half the inner radius): RDM / MAG of the multilayer BEM
   against the series solution of tests/test_forward_multilayer.py, at two or three mesh
   sizes, with the build time.
2. Default torso, homogeneous vs with the default lungs (0.05 S/m in 0.2 S/m): build time;
   cosine of the model's V1..V6, I, II lead vectors (standard positions, Wilson terminal)
   to Dower's rows (PHYSICS.md section 1), computed as in tests/test_torso_calibration.py;
   the same through the torso's own Frank network; best global scale and residual;
   model-based Frank reconstruction on PTB s0010_re when the data are present.
3. Mesh sensitivity of the lung model: lung meshes one subdivision finer, torso 2 cm edge.

    python benchmarks/bench_multilayer.py [--fine]     (--fine adds 5,120-triangle shells)

Prints tables and writes benchmarks/results/multilayer_*.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import report  # noqa: E402
from test_forward_multilayer import RADII, SIGMAS, shells_vs_analytic

from cardiosim.forward import make_bem_model, make_multilayer_bem_model
from cardiosim.forward._kernels import linear_collocation_cross_matrix
from cardiosim.frames import FRANK_FROM_LPS
from cardiosim.geometry import TorsoParams, make_layout, make_sphere_mesh, make_torso
from cardiosim.geometry.organs import make_lungs
from cardiosim.inverse import DOWER, DOWER_LEADS, lead_transfer, model_frank


def spheres(fine: bool):
    rows = []
    s = make_sphere_mesh(0.1, 1)
    linear_collocation_cross_matrix(s.vertices[:2] * 0.5, s.vertices, s.faces)     # JIT warm-up
    configs = [("3 shells 0.05/0.08/0.10 m, 0.2/0.05/0.2 S/m", RADII, SIGMAS),
               ("2 shells 0.06/0.10 m, 0.05/0.2 S/m", (0.06, 0.10), (0.05, 0.2)),
               ("2 shells 0.06/0.10 m, 0.2/0.05 S/m", (0.06, 0.10), (0.2, 0.05))]
    for name, radii, sig in configs:
        for sub in ((2, 3, 4) if fine else (2, 3)):
            t0 = time.perf_counter()
            errs = shells_vs_analytic(radii, sig, sub)
            dt = time.perf_counter() - t0
            for kind, (rdm, mag) in errs.items():
                rows.append({"model": name, "triangles/shell": 20 * 4 ** sub, "dipole": kind,
                             "RDM %": 100 * rdm, "MAG": mag, "build+ref s": dt})
    report("multilayer_spheres", rows, ["model", "triangles/shell", "dipole", "RDM %", "MAG", "build+ref s"],
           "multilayer BEM vs concentric-sphere series, dipole at 0.5 of the inner radius")


def _cos(a, b):
    return np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def dower_figures(fwd, std, frank):
    """As tests/test_torso_calibration.py::test_lead_vectors_point_like_dower_rows."""
    g = lead_transfer(fwd, std, leads=DOWER_LEADS) @ FRANK_FROM_LPS.T
    cos = _cos(g, DOWER)
    scale = float(np.sum(g * DOWER) / np.sum(g * g))
    resid = float(np.linalg.norm(scale * g - DOWER) / np.linalg.norm(DOWER))
    implied = g @ np.linalg.inv(lead_transfer(fwd, frank, "frank") @ FRANK_FROM_LPS.T)
    unit = g / np.linalg.norm(g, axis=1, keepdims=True)
    return cos, _cos(implied, DOWER), scale, resid, unit


def ptb_frank(fwd, std, frank):
    data = Path(os.environ.get("CARDIOSIM_DATA", ROOT.parent / "shared" / "data"))
    rec_path = data / "ptbdb" / "s0010_re"
    if not rec_path.with_suffix(".hea").is_file():
        return None
    from scipy.signal import butter, sosfiltfilt

    from cardiosim.leads import STANDARD_LEADS
    from cardiosim.sources import read_wfdb
    rec = read_wfdb(rec_path)
    sos = butter(2, [0.5, 40.0], btype="band", fs=rec.fs, output="sos")
    x = sosfiltfilt(sos, np.asarray(rec.signal, dtype=np.float64), axis=-1)
    x12 = x[[rec.leads.index(n) for n in STANDARD_LEADS]]
    meas = x[[rec.leads.index(n) for n in ("X", "Y", "Z")]]
    est = model_frank(x12, STANDARD_LEADS, fwd, std, frank)
    return [float(np.corrcoef(est[k], meas[k])[0, 1]) for k in range(3)]


def torso():
    t = make_torso()
    std, frank = make_layout("standard12", t), make_layout("frank", t)
    t0 = time.perf_counter()
    hom = make_bem_model(t, use_cache=False)
    t_h = time.perf_counter() - t0
    t0 = time.perf_counter()
    lungs = make_lungs(t)
    t_l = time.perf_counter() - t0
    t0 = time.perf_counter()
    ml = make_multilayer_bem_model(t, lungs=lungs, use_cache=False)
    t_m = time.perf_counter() - t0
    print(f"\n{ml!r}")
    print(f"build: homogeneous {t_h:.2f} s ({len(t.vertices)} nodes); lungs {t_l:.2f} s; "
          f"torso + lungs {t_m:.2f} s ({len(t.vertices) + sum(len(s.vertices) for s in lungs)} nodes)")
    models = {"homogeneous": hom, "lungs 0.05 S/m": ml}
    finer = make_lungs(t, subdivisions=3)
    models["lungs, 1280-tri lung meshes"] = make_multilayer_bem_model(t, lungs=finer, use_cache=False)
    t2 = make_torso(TorsoParams(edge_length=0.02))
    rows, units = [], {}
    for name, fwd in models.items():
        cos, cos_imp, scale, resid, unit = dower_figures(fwd, std, frank)
        units[name] = unit
        r = ptb_frank(fwd, std, frank)
        row = {"model": name, **{lead: float(c) for lead, c in zip(DOWER_LEADS, cos)},
               "min via Frank": float(cos_imp.min()), "scale": scale, "resid": resid}
        if r is not None:
            row.update({"r X": r[0], "r Y": r[1], "r Z": r[2]})
        rows.append(row)
    for name, fwd in (("homogeneous, torso edge 2 cm", make_bem_model(t2, use_cache=False)),
                      ("lungs, torso edge 2 cm", make_multilayer_bem_model(t2, use_cache=False))):
        s2, f2 = make_layout("standard12", t2), make_layout("frank", t2)
        cos, cos_imp, scale, resid, unit = dower_figures(fwd, s2, f2)
        units[name] = unit
        r = ptb_frank(fwd, s2, f2)
        row = {"model": name, **{lead: float(c) for lead, c in zip(DOWER_LEADS, cos)},
               "min via Frank": float(cos_imp.min()), "scale": scale, "resid": resid}
        if r is not None:
            row.update({"r X": r[0], "r Y": r[1], "r Z": r[2]})
        rows.append(row)
    report("multilayer_torso", rows, ["model", *DOWER_LEADS, "min via Frank", "scale", "resid", "r X", "r Y", "r Z"],
           "cosine of lead vectors to Dower rows; model-based Frank r on PTB s0010_re")
    print("\nunit lead vectors (Frank X, Y, Z):")
    for k, lead in enumerate(DOWER_LEADS):
        d = DOWER[k] / np.linalg.norm(DOWER[k])
        print(f"{lead:3s} Dower {np.array2string(d, precision=2):20s} "
              + "  ".join(f"{n[:11]:11s} {np.array2string(u[k], precision=2)}" for n, u in units.items()
                          if n in ("homogeneous", "lungs 0.05 S/m")))
    # Relative change of the torso node lead field and its mesh sensitivity.
    h = hom.node_lead_field
    for name in ("lungs 0.05 S/m", "lungs, 1280-tri lung meshes"):
        lf = models[name].node_lead_field
        print(f"{name}: relative change of the node lead field vs homogeneous "
              f"{np.linalg.norm(lf - h) / np.linalg.norm(h):.3f}")
    a, b = models["lungs 0.05 S/m"].node_lead_field, models["lungs, 1280-tri lung meshes"].node_lead_field
    print(f"lung mesh 320 -> 1280 triangles: relative change {np.linalg.norm(a - b) / np.linalg.norm(a):.4f}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--fine", action="store_true", help="add 5,120-triangle shells (about 1 min)")
    args = ap.parse_args(argv)
    spheres(args.fine)
    torso()


if __name__ == "__main__":
    main()
