"""The fitted surface source (issue 12): analytic and kernel oracles, the torso tank as ground
truth for electrodes it was not fitted to, real 12-lead records, and bad input.

Nothing here is tuned on the tank: the source-space rules (1 cm grid, 4.5 cm ball, GCV) are
fixed in ``cardiosim/inverse/surface.py``; the tests only read the numbers off.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.signal import butter, sosfiltfilt

from cardiosim.errors import GeometryError, LeadError, SignalError
from cardiosim.forward import make_bem_solver, make_sphere_model, solve_bem
from cardiosim.forward._kernels import interpolate_nodes, interpolate_nodes_numpy
from cardiosim.geometry import make_sphere_mesh
from cardiosim.inverse import fit_surface_source
from cardiosim.inverse.holdout import (holdout_scores, laplacian_interpolation, nearest_copy, spread_subset,
                                       twelve_lead_like_subset)
from cardiosim.inverse.surface import gcv_curve, standard12_potentials

# ----------------------------------------------------------------------------- oracles


def test_interpolate_nodes_matches_numpy_twin(rng):
    faces = rng.integers(0, 50, size=(80, 3))
    vals = rng.standard_normal((50, 7))
    tri = rng.integers(0, 80, size=300)
    bary = rng.dirichlet(np.ones(3), size=300)
    np.testing.assert_allclose(interpolate_nodes(tri, bary, faces, vals),
                               interpolate_nodes_numpy(tri, bary, faces, vals), rtol=1e-13, atol=1e-14)


def test_surface_rows_kernel_matches_numpy_twin(rng):
    """The fused locate + interpolate kernel (cardiosim/inverse/_kernels.py) against its
    brute-force NumPy twin, near the surface and beyond the reach (off the torso: -1)."""
    from cardiosim.inverse._kernels import SurfaceLocator, surface_rows, surface_rows_numpy

    sphere = make_sphere_mesh(0.1, 2)
    d = rng.standard_normal((3000, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    radius = 0.1 + rng.uniform(-0.02, 0.02, size=3000)          # some points beyond the 1 cm reach
    pts = d * radius[:, None]
    vals = rng.standard_normal((len(sphere.vertices), 5))
    for cell in (None, 0.01, 0.04):
        got, tri = surface_rows(SurfaceLocator(sphere.triangles, sphere.faces, 0.01, cell=cell), pts, vals)
        ref, tri_ref = surface_rows_numpy(sphere.triangles, sphere.faces, pts, vals, 0.01)
        near = tri_ref >= 0
        assert 0.2 < near.mean() < 0.95
        np.testing.assert_array_equal(tri >= 0, near)
        # on a shared edge or vertex the triangle may differ, the interpolated value may not
        np.testing.assert_allclose(got[near], ref[near], rtol=1e-10, atol=1e-12)


def test_factored_bem_gives_solve_bem_for_every_source_point():
    sphere = make_sphere_mesh(0.1, 1)
    pts = np.array([[0.0, 0.0, 0.0], [0.03, -0.02, 0.01], [-0.05, 0.04, 0.02]])
    lf = make_bem_solver(sphere).lead_fields(pts)
    for k, p in enumerate(pts):
        ref = solve_bem(sphere.vertices, sphere.faces, p)
        np.testing.assert_allclose(lf[:, k], ref, rtol=1e-9, atol=1e-12 * np.abs(ref).max())


def test_gcv_curve_equals_the_explicit_hat_matrix_formula(rng):
    a = rng.standard_normal((7, 40))
    a -= a.mean(axis=0)                                  # referenced, as in the fit
    y = rng.standard_normal((7, 30))
    y -= y.mean(axis=0)
    u, s, _ = np.linalg.svd(a, full_matrices=False)
    keep = s > s[0] * 1e-10
    u, s = u[:, keep], s[keep]
    lams = np.array([1e-4, 1e-2, 1.0])
    k = a @ a.T
    for lam, g in zip(lams, gcv_curve(u, s, y, lams)):
        hat = k @ np.linalg.pinv(k + lam * (s ** 2).mean() * (u @ u.T), rcond=1e-12)
        res = ((y - hat @ y) ** 2).sum()
        assert g == pytest.approx(res / (len(s) - np.trace(hat)) ** 2, rel=1e-6)


def test_predicts_the_analytic_sphere_potential_away_from_the_electrodes(rng):
    """Dipole in a homogeneous sphere (Lütkenhöner A.17, PHYSICS.md section 4): fitted on 24
    surface points, the source predicts 200 other points (shape and amplitude)."""
    sphere = make_sphere_mesh(0.1, 2)
    src = np.array([0.02, -0.01, 0.015])
    truth = make_sphere_model(0.1, src)
    pts = sphere.closest_point(rng.standard_normal((224, 3)) * 0.1)[0]   # on the mesh
    pts = 0.1 * pts / np.linalg.norm(pts, axis=1, keepdims=True)        # and on the sphere (< 1 cm apart)
    p = rng.standard_normal((3, 40)) * 1e-4
    phi = 1e3 * truth.lead_field(pts) @ p                # mV
    fit, held = np.arange(24), np.arange(24, 224)
    for heart in (src, None):
        model = fit_surface_source(sphere, pts[fit], phi[fit], heart=heart)
        pred = model.predict(pts[held]).astype(np.float64)
        meas = phi[held] - phi[fit].mean(axis=0)
        rel = np.linalg.norm(pred - meas) / np.linalg.norm(meas)
        assert rel < 0.1, (heart, rel)
        # the total moment of the distributed source is the dipole (direction within 10 deg)
        cos = (model.dipole * p).sum(0) / np.linalg.norm(model.dipole, axis=0) / np.linalg.norm(p, axis=0)
        assert np.median(cos) > np.cos(np.radians(10)), np.median(cos)


def test_log_evidence_is_the_gaussian_marginal_likelihood(rng):
    """log_evidence against scipy's multivariate normal: y_t ~ N(0, s (K/k + lam I)) in the
    n - 1 referenced dimensions, maximised over s (closed form) and lam (grid)."""
    from scipy.stats import multivariate_normal

    from cardiosim.inverse.surface import log_evidence

    n, t = 6, 400
    a = rng.standard_normal((2, n, 15))
    a -= a.mean(axis=1, keepdims=True)
    grams = np.einsum("mik,mjk->mij", a, a)
    y = a[0] @ rng.standard_normal((15, t)) + 0.1 * rng.standard_normal((n, t))
    lams = np.array([1e-3, 1e-1])
    got = log_evidence(grams, y, lams)
    q = np.linalg.svd(np.eye(n) - 1.0 / n)[0][:, :n - 1]
    yq = q.T @ (y - y.mean(axis=0))
    for m in range(2):
        kq = q.T @ grams[m] @ q
        kq /= np.trace(kq) / (n - 1)
        best = -np.inf
        for lam in lams:
            c = kq + lam * np.eye(n - 1)
            s = np.trace(np.linalg.solve(c, yq @ yq.T / t)) / (n - 1)
            best = max(best, multivariate_normal(np.zeros(n - 1), s * c).logpdf(yq.T).mean())
        # the Gaussian's constant (n-1)/2 log(2 pi) is left out of log_evidence
        assert got[m] == pytest.approx(best + 0.5 * (n - 1) * np.log(2 * np.pi), rel=1e-9)
    assert got[0] > got[1]                               # the Gram that made the data wins


def test_select_heart_moves_toward_the_true_source(rng):
    """Signals of six dipoles scattered (1 cm) about a point 2-3 cm from the torso's heart,
    at 24 front electrodes: the centre chosen by marginal likelihood within 3 cm of the heart
    lies closer to the truth than the heart itself."""
    from cardiosim.forward._kernels import interpolate_nodes as interp
    from cardiosim.geometry import make_torso
    from cardiosim.inverse import select_heart

    torso = make_torso()
    h0 = torso.heart.position
    front = torso.vertices[(torso.vertices[:, 1] < 0) & (np.abs(torso.vertices[:, 2]) < 0.15)]
    pos = front[spread_subset(front, 24)]
    tri, bary = torso.grid(0.01).query(pos)[:2]
    t = np.linspace(0, 1, 500)
    for off in ([-0.02, 0.0, 0.01], [0.01, -0.02, -0.01]):
        truth = h0 + np.array(off)
        lf = make_bem_solver(torso).lead_fields(truth + rng.normal(0, 0.01, (6, 3)))
        a = interp(tri, bary, torso.faces, lf.reshape(len(lf), -1))
        s = 0.1 * np.sin(2 * np.pi * np.arange(1, 19)[:, None] * t + rng.uniform(0, 6, (18, 1)))
        y = a @ s + rng.normal(0, 1e-3, (len(pos), len(t)))
        c = select_heart(torso, pos, y, h0)
        assert np.linalg.norm(c - truth) < np.linalg.norm(h0 - truth) - 0.005, (off, c - h0)


def test_predict_is_referenced_to_the_fitting_electrodes_and_linear(rng):
    sphere = make_sphere_mesh(0.1, 2)
    pts = sphere.vertices[::7][:12]
    y = rng.standard_normal((12, 5))
    m = fit_surface_source(sphere, pts, y + 3.0, heart=[0.0, 0.0, 0.0])   # a common offset is removed
    np.testing.assert_allclose(m.predict(pts).mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(m.coefficients, y - y.mean(axis=0), atol=1e-12)
    np.testing.assert_allclose(m.transfer(sphere.vertices[:3]) @ m.coefficients,
                               m.predict(sphere.vertices[:3]), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def sphere_case():
    sphere = make_sphere_mesh(0.1, 2)
    pts = sphere.vertices[::9][:10].copy()
    y = np.random.default_rng(3).standard_normal((10, 20))
    return sphere, pts, y


def test_electrode_off_the_surface_is_named(sphere_case):
    sphere, pts, y = sphere_case
    bad = pts.copy()
    bad[4] *= 1.3                                       # 3 cm outside
    with pytest.raises(GeometryError, match=r"electrode 4 .* off the torso"):
        fit_surface_source(sphere, bad, y, heart=[0, 0, 0])


def test_millimetres_given_as_metres(sphere_case):
    sphere, pts, y = sphere_case
    with pytest.raises(GeometryError, match="millimetres"):
        fit_surface_source(sphere, pts * 1000, y, heart=[0, 0, 0])
    with pytest.raises(GeometryError, match="millimetres"):
        fit_surface_source(sphere, pts, y, heart=[0, 0, 30.0])


def test_too_few_electrodes(sphere_case):
    sphere, pts, y = sphere_case
    with pytest.raises(LeadError, match="at least 4 electrodes"):
        fit_surface_source(sphere, pts[:3], y[:3], heart=[0, 0, 0])


@pytest.mark.parametrize("what", ["nan", "flat", "two dead", "shape"])
def test_bad_potentials(sphere_case, what):
    sphere, pts, y = sphere_case
    y = y.copy()
    if what == "nan":
        y[6, 3] = np.nan
        match = r"NaN .* electrodes \[6\]"
    elif what == "flat":
        y[:] = 0.7                                       # every electrode the same: no spatial signal
        match = "flat"
    elif what == "two dead":
        y[[2, 7]] = 0.0                                  # one flat electrode may be the reference, two cannot
        match = r"electrodes \[2, 7\] are flat"
    else:
        y = y[:8]
        match = "shape"
    with pytest.raises(SignalError, match=match):
        fit_surface_source(sphere, pts, y, heart=[0, 0, 0])


def test_one_flat_electrode_is_the_reference(sphere_case):
    sphere, pts, y = sphere_case
    a = fit_surface_source(sphere, pts, y - y[3], heart=[0, 0, 0])          # referenced to electrode 3
    b = fit_surface_source(sphere, pts, y, heart=[0, 0, 0])
    np.testing.assert_allclose(a.predict(sphere.vertices[:9]), b.predict(sphere.vertices[:9]), atol=1e-5)


def test_heart_search_needs_a_point_hint(sphere_case):
    from cardiosim.errors import ConfigError

    sphere, pts, y = sphere_case
    with pytest.raises(ConfigError, match="point hint"):
        fit_surface_source(sphere, pts, y, heart=None, heart_search=0.02)
    with pytest.raises(ConfigError, match="heart_search"):
        fit_surface_source(sphere, pts, y, heart=[0, 0, 0], heart_search=-0.01)


def test_heart_outside_the_torso(sphere_case):
    sphere, pts, y = sphere_case
    with pytest.raises(GeometryError, match="outside"):
        fit_surface_source(sphere, pts, y, heart=[0.0, 0.0, 0.2])


def test_prediction_off_the_surface_is_refused(sphere_case):
    sphere, pts, y = sphere_case
    m = fit_surface_source(sphere, pts, y, heart=[0, 0, 0])
    with pytest.raises(GeometryError, match="off the torso"):
        m.predict(np.array([[0.0, 0.0, 0.13]]))


# ------------------------------------------------------------------ torso tank, measured


@pytest.fixture(scope="module")
def tank(data_dir):
    import pandas as pd

    from cardiosim.geometry import read_torso

    folder = data_dir / "tank"
    if not folder.is_dir():
        pytest.skip(f"torso-tank data not found in {folder}")
    torso = read_torso(folder / "tank.obj", units="mm")       # the file's normals point inward
    cage = read_torso(folder / "cage.obj", units="mm", name="cage")
    el = pd.read_csv(folder / "tank_electrodes.csv")
    pos = el[["x_mm", "y_mm", "z_mm"]].to_numpy() * 1e-3
    pot = np.load(folder / "tank_potentials_mV.npy").astype(np.float64)
    return torso, cage, pos, pot


def _scores(torso, pos, pot, fit, heart):
    meas = pot - pot[fit].mean(axis=0)
    model = fit_surface_source(torso, pos[fit], pot[fit], heart=heart)
    out = {"model": holdout_scores(model.predict(pos), meas, pos, fit)}
    for name, pred in (("nearest", nearest_copy(pos[fit], pot[fit], pos)),
                       ("laplacian", laplacian_interpolation(torso, pos[fit], pot[fit], pos))):
        out[name] = holdout_scores(pred - pred[fit].mean(axis=0), meas, pos, fit)
    return out


@pytest.mark.parametrize("subset,hint", [("12-lead-like 9", "none"), ("12-lead-like 9", "cage"),
                                         ("spread 16", "none"), ("spread 32", "cage")])
def test_tank_predicts_electrodes_2_to_5_cm_away(tank, subset, hint):
    """Utah tank (one beat, 192 surface electrodes): fit on a subset, predict every other
    electrode. Issue 12 goals at 2-5 cm from the nearest fitting electrode: median r >= 0.97,
    relative RMS <= 0.25, better than nearest-electrode copy and Laplacian interpolation; the
    change between held-out neighbours 2-3 cm apart (B - A) correlates at r >= 0.9.
    The cage potentials are never used; the cage mesh is only a geometric hint."""
    torso, cage, pos, pot = tank
    fit = (twelve_lead_like_subset(pos, cage.vertices.mean(axis=0)) if subset.startswith("12")
           else spread_subset(pos, int(subset.split()[-1])))
    sc = _scores(torso, pos, pot, fit, cage if hint == "cage" else None)
    band = {k: v["bins"][4] for k, v in sc.items()}      # 2-5 cm
    print(f"\n{subset}, hint {hint}: " + "; ".join(
        f"{k} r {b['median_r']:.3f} rel {b['median_rel_rms']:.3f}" for k, b in band.items())
        + f"; B-A r {sc['model']['pairs']['median_r']:.3f}")
    assert band["model"]["n"] >= 20
    assert band["model"]["median_r"] >= 0.97
    assert band["model"]["median_rel_rms"] <= 0.25
    for base in ("nearest", "laplacian"):
        assert band["model"]["median_rel_rms"] < band[base]["median_rel_rms"], base
        assert band["model"]["median_r"] > band[base]["median_r"], base
    assert sc["model"]["pairs"]["median_r"] >= 0.9


def test_tank_mesh_nodes_are_the_electrodes(tank):
    torso, _, pos, _ = tank
    _, _, _, d = torso.closest_point(pos)
    assert d.max() < 1e-9


# ----------------------------------------------------------------- real 12-lead records


def _band(x, fs):
    sos = butter(2, [0.5, 40.0], btype="band", fs=fs, output="sos")
    return sosfiltfilt(sos, np.asarray(x, dtype=np.float64), axis=-1)


@pytest.fixture(scope="module")
def body():
    from cardiosim.forward import make_bem_model
    from cardiosim.geometry import make_layout, make_torso

    torso = make_torso()
    return torso, make_bem_model(torso), make_layout("standard12", torso), make_layout("frank", torso)


def _records(data_dir):
    from cardiosim.sources import read_wfdb

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        recs = [read_wfdb(h.with_suffix("")) for h in sorted((data_dir / "cinc2021").glob("*.hea"))]
        recs += [read_wfdb(h.with_suffix("")).select(("I", "II", "III", "aVR", "aVL", "aVF",
                                                       "V1", "V2", "V3", "V4", "V5", "V6"))
                 for h in sorted((data_dir / "ptbdb").glob("*.hea"))]
    return recs


def _qrs_t_vcg(fs=250.0):
    """A normal-looking beat in Frank axes (mV): septal, main (left, feet, back), terminal and T
    forces as Gaussians (the directions of the normal spatial VCG, Draper et al. 1964)."""
    t = np.arange(0.0, 0.6, 1.0 / fs)

    def g(c, w):
        return np.exp(-0.5 * ((t - c) / w) ** 2)

    return (np.outer([-0.15, 0.05, -0.2], g(0.04, 0.006)) + np.outer([1.0, 0.7, 0.45], g(0.07, 0.01))
            + np.outer([-0.3, -0.4, 0.3], g(0.095, 0.008)) + np.outer([0.3, 0.2, -0.1], g(0.35, 0.045)))


def test_frank_from_12_leads_on_a_simulated_body(body):
    """Frank leads from the 12 leads where the truth is known and the body is not the model's.

    Truth: a 1.90 m man whose heart sits 1.5 cm left and 1 cm up of the default torso's, two
    sources (a main dipole 1 cm apex-ward of his heart centre and one at 35 % strength, 16 ms
    later, turned 35 deg, 2 cm toward the base, 1.5 cm right and 1 cm forward), forwarded by
    his own BEM onto his own 12-lead and Frank electrodes (``simulated_leads``). The
    reconstruction uses the default torso and layouts, as for a real record, with the heart
    kept at the torso's. Measured r X / Y / Z 1.0000 / 0.9990 / 0.9999 (Kors on the same
    simulated 12 leads: 0.998 / 0.999 / 0.989). A body of the torso's own family is not what
    holds s0010_re back (Z 0.74 there; docs/PHYSICS.md section 7), and the check guards the
    layouts, the montages and the inverse together."""
    from cardiosim.geometry import TorsoParams, heart_long_axis, make_layout, make_torso
    from cardiosim.inverse import kors, model_frank
    from cardiosim.inverse.holdout import simulated_leads
    from cardiosim.leads import STANDARD_LEADS, make_montage

    params = TorsoParams(height=1.90, heart_offset=(0.045, -0.035, 0.01))
    truth_body = make_torso(params)
    c = np.asarray(truth_body.heart.position, dtype=float)
    u = heart_long_axis(params.heart_axis_transverse_deg, params.heart_axis_frontal_deg)
    sources = np.stack([c + 0.01 * u, c - 0.02 * u + np.array([-0.015, -0.01, 0.0])])
    vcg = _qrs_t_vcg()
    d = np.stack([vcg[0], vcg[2], -vcg[1]]) * 1e-4                   # Frank (X, Y, Z) -> LPS (x, y, z), A m
    a = np.deg2rad(35.0)
    k = np.array([0.3, 1.0, 0.2]) / np.linalg.norm([0.3, 1.0, 0.2])
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    rot = np.eye(3) + np.sin(a) * kx + (1 - np.cos(a)) * kx @ kx     # Rodrigues
    moments = np.stack([d, 0.35 * rot @ np.roll(d, 4, axis=1)])
    truth = simulated_leads(truth_body, sources, moments, {"standard12": make_layout("standard12", truth_body),
                                                           "frank": make_layout("frank", truth_body)})
    x12 = truth["standard12"][[make_montage("standard12").leads.index(n) for n in STANDARD_LEADS]]

    _, fwd, std, frank = body                                          # the default torso, as for a real record
    est = model_frank(x12, STANDARD_LEADS, fwd, std, frank, source="surface", heart_search=0)
    r = [float(np.corrcoef(est[i], truth["frank"][i])[0, 1]) for i in range(3)]
    rk = [float(np.corrcoef(kors(x12, STANDARD_LEADS)[i], truth["frank"][i])[0, 1]) for i in range(3)]
    print(f"\nsimulated body: Frank r X/Y/Z {np.round(r, 4)} (Kors {np.round(rk, 3)})")
    assert min(r) > 0.99, r


def test_fixed_part_of_real_records_is_below_10_percent(data_dir, body):
    """Issue 12 item 3: what stays fixed when electrodes move (the residual) is <= 10 % of each
    record's RMS on the shared CinC 2021 and PTB records (measured 0.7-7.2 %; the single
    dipole leaves 19-83 %). Records with dead leads keep the dipole model (reported)."""
    from cardiosim.sources import recording_to_source

    _, fwd, std, _ = body
    worst = 0.0
    print("\nrecord     fixed part / RMS  (dipole model)")
    for rec in _records(data_dir):
        flat = [n for n in rec.leads if np.ptp(rec.lead(n)) == 0]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            src = recording_to_source(rec, fwd, std)
        old = recording_to_source(rec, fwd, std, source_model="dipole")
        if flat:   # dead channels (JS20004, JS20008: V2, V4, V6 all zero): the dipole model, said so
            assert src.metadata["source_model"] == "dipole" and src.surface is None
            assert "flat" in src.metadata["surface_skipped"] and any("flat" in str(w.message) for w in caught)
            print(f"{rec.source_id.rsplit('/', 1)[-1]:10s} dead leads {flat}: dipole model")
            continue
        assert src.metadata["source_model"] == "surface" and src.surface is not None
        frac = np.linalg.norm(src.residual) / np.linalg.norm(rec.signal)
        print(f"{rec.source_id.rsplit('/', 1)[-1]:10s} {frac:.4f}            "
              f"({np.linalg.norm(old.residual) / np.linalg.norm(rec.signal):.3f})")
        worst = max(worst, frac)
    assert worst <= 0.10


@pytest.mark.shared_records("ptbdb/s0010_re")
def test_frank_from_12_leads_with_the_surface_source(data_dir, body):
    """PTB s0010_re: Frank X, Y, Z from the 12 leads through the surface source read at the
    torso's Frank electrodes, against the measured Frank leads (band 0.5-40 Hz).

    Measured (this code, Frank's electrodes at the 5th intercostal space,
    ``geometry/layouts/frank.toml``): surface source with its heart centre chosen by marginal
    likelihood within 3 cm of the torso's heart, mean r 0.887 (X 0.954, Y 0.972, Z 0.735); at
    the torso's heart 0.854 (Z 0.644); the single dipole 0.818 (Z 0.546); Kors 0.886. (With
    the electrodes midway between the 4th and 5th spaces: 0.869, 0.842, 0.797.) The Frank
    leads never enter the fit. Asserted: the surface source beats the dipole, mostly on Z,
    and the heart search beats the fixed heart (the goal >= Kors: the test below)."""
    from cardiosim.inverse import kors, model_frank
    from cardiosim.leads import STANDARD_LEADS
    from cardiosim.sources import read_wfdb

    _, fwd, std, frank = body
    rec = read_wfdb(data_dir / "ptbdb" / "s0010_re")
    x = _band(rec.signal, rec.fs)
    x12 = x[[rec.leads.index(n) for n in STANDARD_LEADS]]
    meas = x[[rec.leads.index(n) for n in "XYZ"]]
    r = {}
    for name, est in (("surface", model_frank(x12, STANDARD_LEADS, fwd, std, frank, source="surface")),
                      ("fixed", model_frank(x12, STANDARD_LEADS, fwd, std, frank, source="surface", heart_search=0)),
                      ("dipole", model_frank(x12, STANDARD_LEADS, fwd, std, frank)),
                      ("kors", kors(x12, STANDARD_LEADS))):
        r[name] = [float(np.corrcoef(est[k], meas[k])[0, 1]) for k in range(3)]
        print(f"{name:8s} r X/Y/Z {r[name][0]:.3f} {r[name][1]:.3f} {r[name][2]:.3f}  mean {np.mean(r[name]):.3f}")
    assert np.mean(r["surface"]) > np.mean(r["dipole"]) + 0.05
    assert r["surface"][2] > r["dipole"][2] + 0.15
    assert np.mean(r["surface"]) > np.mean(r["fixed"]) + 0.01
    assert min(r["surface"][:2]) > 0.9


@pytest.mark.shared_records("ptbdb/s0010_re")
def test_frank_from_12_leads_reaches_kors(data_dir, body):
    """Issue 12: model-based Frank reconstruction on s0010_re at least as good as Kors (mean r).

    Measured: 0.8866 against Kors 0.8861 -- at par, not better by any margin that means
    something on one record (X 0.954 vs 0.984, Y 0.972 vs 0.953, Z 0.735 vs 0.722). It got
    here by putting Frank's electrodes where Frank put them (5th intercostal space; before:
    midway between the 4th and 5th, 0.869), checked first on data without Frank leads
    (docs/PHYSICS.md section 7). s0010_re is the only record with measured Frank leads here,
    so this is one patient, not a population result."""
    from cardiosim.inverse import kors, model_frank
    from cardiosim.leads import STANDARD_LEADS
    from cardiosim.sources import read_wfdb

    _, fwd, std, frank = body
    rec = read_wfdb(data_dir / "ptbdb" / "s0010_re")
    x = _band(rec.signal, rec.fs)
    x12 = x[[rec.leads.index(n) for n in STANDARD_LEADS]]
    meas = x[[rec.leads.index(n) for n in "XYZ"]]

    def mean_r(est):
        return np.mean([np.corrcoef(est[k], meas[k])[0, 1] for k in range(3)])

    surface = model_frank(x12, STANDARD_LEADS, fwd, std, frank, source="surface")
    assert mean_r(surface) >= mean_r(kors(x12, STANDARD_LEADS))


def test_mason_likar_limb_lead_changes_on_real_records(data_dir, body):
    """PHYSICS.md section 2 (Papouchado 1987; Farrell 2008): torso limb electrodes raise R in
    II, III, aVF and lower it in I and aVL. Each CinC record's surface source (as
    ``recording_to_source`` fits it) is read at the standard and the Mason-Likar positions
    of the default torso; median relative change of the R amplitude (lead maximum).

    The arm electrodes sit where a measured torso has them (Dalhousie case 3: deltopectoral
    fossa, ``geometry/layouts/mason_likar.toml``). Measured (23 records): I -0.038, II +0.199,
    III +0.200, aVL -0.086, aVF +0.261 -- all five in the published direction. With the arm
    electrodes 1.5 cm lower and 2 cm more anterior (the earlier placement) I and aVL did not
    fall (-0.007, +0.001)."""
    from cardiosim.geometry import make_layout
    from cardiosim.leads import make_montage

    torso, fwd, std, _ = body
    ml = make_layout("mason_likar", torso)
    m = make_montage("standard12")
    el = ("RA", "LA", "LL", "V1", "V2", "V3", "V4", "V5", "V6")
    pos_std, pos_ml = std.positions[std.index(el)], ml.positions[ml.index(el)]
    assert tuple(m.electrodes) == el
    names = ("I", "II", "III", "aVL", "aVF")
    change = []
    for rec in _records(data_dir)[:-1]:                  # the CinC records with every lead alive
        if any(np.ptp(rec.lead(n)) == 0 for n in rec.leads):
            continue
        x = _band(rec.signal, rec.fs)
        model = fit_surface_source(torso, pos_std, standard12_potentials(x, rec.leads), heart=torso.heart.position)
        a, b = m.matrix @ model.predict(pos_std), m.matrix @ model.predict(pos_ml)
        change.append([(b[m.leads.index(n)].max() - a[m.leads.index(n)].max()) / np.abs(a[m.leads.index(n)]).max()
                       for n in names])
    med = dict(zip(names, np.median(change, axis=0)))
    print("\nmedian relative change of R, Mason-Likar vs standard: "
          + ", ".join(f"{k} {v:+.3f}" for k, v in med.items()))
    assert med["II"] > 0.05 and med["III"] > 0.05 and med["aVF"] > 0.05
    assert med["I"] < 0 and med["aVL"] < 0


def test_split_transfer_is_the_bem_lead_field_and_the_nondipolar_part(rng):
    """One pass gives what two do: the BEM's own lead field (its linear basis) and the
    non-dipolar rows, on displaced points of the default torso."""
    from cardiosim.forward import make_bem_model
    from cardiosim.geometry import make_layout, make_torso, project_to_surface

    torso = make_torso()
    bem = make_bem_model(torso)
    std = make_layout("standard12", torso)
    pos = std.positions
    m = fit_surface_source(torso, pos, rng.standard_normal((len(pos), 50)), heart=torso.heart.position)
    m = m.with_dipole(bem.node_lead_field)
    pts = project_to_surface(torso, pos[rng.integers(0, len(pos), 500)] + rng.normal(0, 0.01, (500, 3)),
                             max_distance=0.1)
    lead, nondip = m.split_transfer(pts)
    ref = bem.lead_field(pts)
    np.testing.assert_allclose(lead, ref, rtol=1e-9, atol=1e-12 * np.abs(ref).max())
    np.testing.assert_allclose(nondip, m.nondipolar_transfer(pts), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(1e3 * lead @ m.dipole + nondip @ m.coefficients, m.predict(pts), rtol=1e-4, atol=1e-5)


def test_pickled_model_predicts_the_same_without_the_mesh_caches(sphere_case):
    import pickle

    sphere, pts, y = sphere_case
    m = fit_surface_source(sphere, pts, y, heart=[0, 0, 0])
    m.predict(pts)                                       # fills the mesh caches (BEM LU, grids)
    blob = pickle.dumps(m)
    back = pickle.loads(blob)
    import dataclasses
    bare = len(pickle.dumps(dataclasses.replace(sphere)))  # the mesh without caches
    assert len(blob) < bare + m.node_transfer.nbytes + m.coefficients.nbytes + 100_000
    np.testing.assert_array_equal(back.predict(sphere.vertices[:20]), m.predict(sphere.vertices[:20]))


def test_v3_v5_of_real_records_predicted_from_the_other_seven_electrodes(data_dir, body):
    """Hold-out on people: the surface source fitted to RA, LA, LL, V1, V2, V4, V6 predicts the
    V3 and V5 electrodes it never saw (each minus the predicted Wilson terminal) on the live
    CinC records, band 0.5-40 Hz; against the least-squares dipole fitted to I, II, V1, V2, V4,
    V6. Measured: surface median r 0.961, relative error 0.37; dipole 0.948, 0.46; the mean of
    the two neighbouring leads r 0.952."""
    from cardiosim.inverse import estimate_dipole, project_dipole

    torso, fwd, std, _ = body
    el = ("RA", "LA", "LL", "V1", "V2", "V3", "V4", "V5", "V6")
    pos = std.positions[std.index(el)]
    fit = [0, 1, 2, 3, 4, 6, 8]
    r = {"surface": [], "dipole": []}
    err = {"surface": [], "dipole": []}
    for rec in _records(data_dir)[:-1]:
        if any(np.ptp(rec.lead(n)) == 0 for n in rec.leads):
            continue
        x = _band(rec.signal, rec.fs)
        y = standard12_potentials(x, rec.leads)
        phi = fit_surface_source(torso, pos[fit], y[fit], heart=torso.heart.position).predict(pos)
        p, _ = estimate_dipole(x, rec.leads, fwd, std, fit_leads=("I", "II", "V1", "V2", "V4", "V6"))
        dip = project_dipole(p, fwd, std, leads=("V3", "V5"))
        for k, (e, lead) in enumerate(((5, "V3"), (7, "V5"))):
            meas = x[rec.leads.index(lead)]
            for name, pred in (("surface", phi[e] - phi[:3].mean(axis=0)), ("dipole", dip[k])):
                r[name].append(float(np.corrcoef(pred, meas)[0, 1]))
                err[name].append(float(np.linalg.norm(pred - meas) / np.linalg.norm(meas)))
    for name in r:
        print(f"{name:8s} median r {np.median(r[name]):.3f}  median rel. error {np.median(err[name]):.3f}")
    assert len(r["surface"]) >= 40
    assert np.median(r["surface"]) > np.median(r["dipole"])
    assert np.median(err["surface"]) < np.median(err["dipole"])


def test_holdout_baselines_and_scores_on_known_answers(rng):
    """Laplacian interpolation keeps the fitting values and constants; perfect predictions
    score r = 1 and zero error; the nearest copy is the nearest electrode's signal."""
    sphere = make_sphere_mesh(0.1, 2)
    pos = sphere.vertices
    fit = spread_subset(pos, 12)
    y = rng.standard_normal((len(pos), 30))
    lap = laplacian_interpolation(sphere, pos[fit], y[fit], pos)
    np.testing.assert_allclose(lap[fit], y[fit], atol=1e-10)
    const = laplacian_interpolation(sphere, pos[fit], np.full((12, 3), 2.5), pos)
    np.testing.assert_allclose(const, 2.5, atol=1e-10)
    near = nearest_copy(pos[fit], y[fit], pos)
    j = np.argmin(np.linalg.norm(pos[:, None] - pos[fit][None], axis=2), axis=1)
    np.testing.assert_array_equal(near, y[fit][j])
    sc = holdout_scores(y, y, pos, fit)
    populated = [b for b in sc["bins"] if b["n"]]
    assert populated and all(b["median_r"] == pytest.approx(1.0) and b["median_rel_rms"] == 0 for b in populated)
    assert sc["pairs"]["n"] > 0 and sc["pairs"]["median_r"] == pytest.approx(1.0)
    assert len(np.unique(fit)) == 12
