"""Forward models against analytic references; physiological checks on the default torso."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from cardiosim.errors import GeometryError
from cardiosim.forward import (make_bem_model, make_infinite_model, make_sphere_model, rotate_lead_field,
                               solve_bem)
from cardiosim.forward._kernels import (interpolate_transfer, interpolate_transfer_numpy,
                                        linear_collocation_matrix, linear_collocation_matrix_numpy)
from cardiosim.forward.bem import _atomic_save, cache_key, node_area_weights
from cardiosim.frames import frank_to_lps
from cardiosim.geometry import (ElectrodeLayout, Heart, TorsoMesh, displace_on_surface, heart_rotation,
                                make_layout, make_sphere_mesh, make_torso)
from cardiosim.leads import make_montage

R = 0.1
SIGMA = 0.2


def _rdm_mag(num, ref):
    """Relative difference measure and magnitude ratio (both potentials mean-free)."""
    return (np.linalg.norm(num / np.linalg.norm(num) - ref / np.linalg.norm(ref)),
            np.linalg.norm(num) / np.linalg.norm(ref))


def _sphere_errors(sub):
    s = make_sphere_mesh(R, sub)
    w = node_area_weights(s.vertices, s.faces)
    out = {}
    for ecc in (0.5, 0.9):
        src = np.array([0.0, 0.0, ecc * R])
        lf = solve_bem(s.vertices, s.faces, src, SIGMA)
        an = make_sphere_model(R, src, SIGMA).lead_field(s.vertices)
        an = an - (w @ an) / w.sum()      # the analytic surface potential has zero mean too
        for kind, p in (("radial", [0, 0, 1.0]), ("tangential", [1.0, 0, 0])):
            out[ecc, kind] = _rdm_mag(lf @ p, an @ p)
    return len(s.faces), out


@pytest.fixture(scope="module")
def sphere_errors():
    return {sub: _sphere_errors(sub) for sub in (2, 3)}


def test_bem_matches_analytic_sphere_and_converges(sphere_errors):
    """PHYSICS.md section 4: at ~1,300 triangles error < 1 % at eccentricity 0.5, < 3 % at 0.9."""
    for sub, (n, errs) in sphere_errors.items():
        for (ecc, kind), (rdm, mag) in errs.items():
            print(f"{n:5d} triangles  ecc {ecc}  {kind:10s}  RDM {rdm * 100:.3f} %  MAG {mag:.4f}")
    coarse, fine = sphere_errors[2][1], sphere_errors[3][1]
    for key in coarse:
        assert fine[key][0] < coarse[key][0], key
        assert abs(fine[key][1] - 1) < abs(coarse[key][1] - 1), key
    assert sphere_errors[3][0] == 1280
    for (ecc, kind), (rdm, mag) in fine.items():
        bound = 0.01 if ecc == 0.5 else 0.03
        assert rdm < bound and abs(mag - 1) < bound, (ecc, kind, rdm, mag)


@pytest.mark.slow
def test_bem_sphere_5120_triangles_refines_further(sphere_errors):
    n, errs = _sphere_errors(4)
    for (ecc, kind), (rdm, mag) in errs.items():
        print(f"{n:5d} triangles  ecc {ecc}  {kind:10s}  RDM {rdm * 100:.3f} %  MAG {mag:.4f}")
        assert rdm < sphere_errors[3][1][ecc, kind][0]


def test_centred_dipole_in_sphere_is_three_times_infinite_medium():
    s = make_sphere_mesh(R, 2)
    an = make_sphere_model(R, np.zeros(3), SIGMA).lead_field(s.vertices)
    inf = make_infinite_model(np.zeros(3), SIGMA).lead_field(s.vertices)
    np.testing.assert_allclose(an, 3 * inf, rtol=1e-12)
    bem = solve_bem(s.vertices, s.faces, np.zeros(3), SIGMA)
    np.testing.assert_allclose(bem, 3 * inf, rtol=0.02, atol=0.02 * np.abs(inf).max())


def test_infinite_medium_inverse_square_and_linearity(rng):
    m = make_infinite_model(np.zeros(3), SIGMA)
    r = rng.normal(size=(5, 3))
    r /= np.linalg.norm(r, axis=1, keepdims=True)
    p = rng.normal(size=3)
    np.testing.assert_allclose(m.lead_field(0.2 * r) @ p, 4 * (m.lead_field(0.4 * r) @ p), rtol=1e-12)
    np.testing.assert_allclose(make_infinite_model(np.zeros(3), 2 * SIGMA).lead_field(r), m.lead_field(r) / 2)


def test_bem_linear_in_dipole_and_inverse_in_conductivity(rng):
    s = make_sphere_mesh(R, 2)
    src = np.array([0.01, -0.02, 0.03])
    a = solve_bem(s.vertices, s.faces, src, SIGMA)
    b = solve_bem(s.vertices, s.faces, src, 2 * SIGMA)
    np.testing.assert_allclose(b, a / 2, rtol=1e-10, atol=1e-12 * np.abs(a).max())
    # Superposition: the BEM solved for a dipole equals the combination of unit solutions.
    p1, p2 = rng.normal(size=3), rng.normal(size=3)
    np.testing.assert_allclose(a @ (2 * p1 - 3 * p2), 2 * (a @ p1) - 3 * (a @ p2), rtol=1e-10, atol=1e-12)


def test_collocation_kernel_matches_numpy_twin():
    s = make_sphere_mesh(R, 1)
    a = linear_collocation_matrix(s.vertices, s.faces)
    b = linear_collocation_matrix_numpy(s.vertices, s.faces)
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)
    # Off-triangle parts of each row: the solid angle of the rest of the surface, < 2 pi.
    assert np.all(a.sum(1) < 2 * np.pi) and np.all(a.sum(1) > np.pi)


def test_interpolation_kernel_matches_numpy(rng):
    tt = rng.normal(size=(50, 3, 3))
    idx = rng.integers(0, 50, 200)
    bary = rng.dirichlet([1, 1, 1], 200)
    np.testing.assert_allclose(interpolate_transfer(idx, bary, tt), interpolate_transfer_numpy(idx, bary, tt))


def test_sphere_model_rejects_points_off_the_surface():
    with pytest.raises(GeometryError, match="not on the sphere"):
        make_sphere_model(R, np.zeros(3)).lead_field(np.array([[0.05, 0, 0]]))
    with pytest.raises(GeometryError, match="outside the sphere"):
        make_sphere_model(R, np.array([0.2, 0, 0]))


# -------------------------------------------------------------------------- torso BEM
@pytest.fixture(scope="module")
def torso():
    return make_torso()


@pytest.fixture(scope="module")
def bem(torso, tmp_path_factory):
    return make_bem_model(torso, cache_dir=tmp_path_factory.mktemp("cache"))


def test_bem_interpolates_at_any_surface_point(torso, bem, rng):
    # At nodes it returns the node values; inside a triangle the barycentric mix.
    np.testing.assert_allclose(bem.lead_field(torso.vertices[:50]), bem.node_lead_field[:50], atol=1e-9)
    t = rng.integers(0, len(torso.faces), 20)
    w = rng.dirichlet([1, 1, 1], 20)
    pts = np.einsum("nk,nkj->nj", w, torso.triangles[t])
    ref = np.einsum("nk,nkj->nj", w, bem.node_lead_field[torso.faces[t]])
    np.testing.assert_allclose(bem.lead_field(pts), ref, rtol=1e-9, atol=1e-9)
    with pytest.raises(GeometryError, match="off the torso"):
        bem.lead_field(np.array([[0.0, -0.3, 0.0]]))


def test_bem_cache_roundtrip_and_concurrent_writers(torso, bem, tmp_path):
    again = make_bem_model(torso, cache_dir=bem_cache_dir(bem, tmp_path))
    files = list(tmp_path.glob("bem-*.npz"))
    assert len(files) == 1
    np.testing.assert_array_equal(make_bem_model(torso, cache_dir=tmp_path).node_lead_field, again.node_lead_field)
    # A corrupt entry is rebuilt, not trusted.
    files[0].write_bytes(b"garbage")
    rebuilt = make_bem_model(torso, cache_dir=tmp_path)
    np.testing.assert_allclose(rebuilt.node_lead_field, bem.node_lead_field)
    # Many writers of the same entry: the file is always a complete archive.
    target = tmp_path / "race" / "x.npz"
    data = np.arange(200000.0)
    threads = [threading.Thread(target=_atomic_save, args=(target,), kwargs={"a": data}) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    with np.load(target) as z:
        np.testing.assert_array_equal(z["a"], data)
    assert not list(target.parent.glob("*.tmp"))
    # The key changes with mesh, conductivity and source.
    k = cache_key(torso, 0.2, torso.heart.position)
    assert k != cache_key(torso, 0.21, torso.heart.position)
    assert k != cache_key(torso, 0.2, torso.heart.position + 1e-3)


def bem_cache_dir(bem, tmp_path):
    make_bem_model(bem.torso, cache_dir=tmp_path)
    return tmp_path


def test_bem_rejects_source_outside_torso(torso):
    with pytest.raises(GeometryError, match="outside the torso"):
        make_bem_model(torso, source_position=np.array([0.0, -0.5, 0.0]), use_cache=False)


def test_shirt_at_standard_positions_gives_standard_lead_field(torso, bem):
    std = make_layout("standard12", torso)
    shirt = make_layout("shirt12", torso)
    assert shirt.electrodes == std.electrodes
    at_std = ElectrodeLayout("shirt12@standard", shirt.electrodes, std.positions)
    fitted = displace_on_surface(torso, at_std.positions, np.zeros_like(at_std.positions))
    np.testing.assert_array_equal(bem.lead_field(fitted), bem.lead_field(std.positions))
    # Where shirt and standard share a rule (V1..V6) they coincide exactly.
    np.testing.assert_array_equal(shirt.positions[3:], std.positions[3:])


def _qrs_dipole():
    """Synthetic normal QRS loop (Frank axes, arbitrary scale): small septal vector to the
    right-anterior, main vector left-inferior-posterior, terminal vector right-superior-
    posterior. Independent of cardiosim.ode."""
    t = np.arange(0, 0.1, 0.001)

    def g(c, w):
        return np.exp(-0.5 * ((t - c) / w) ** 2)

    frank = (np.outer([-0.15, 0.05, -0.2], g(0.02, 0.006)) + np.outer([1.0, 0.7, 0.45], g(0.05, 0.01))
             + np.outer([-0.35, -0.2, 0.35], g(0.075, 0.008)))
    return frank_to_lps(frank) * 1e-5      # A m


def _ecg(bem, layout, p):
    m = make_montage("standard12")
    phi = bem.lead_field(layout.positions[layout.index(m.electrodes)]) @ p
    return dict(zip(m.leads, m.apply(phi[None])[0] * 1e3))    # mV


def test_mason_likar_shifts_axis_right_and_changes_r_waves(torso, bem):
    """PHYSICS.md section 2 (Papouchado 1987; Farrell 2008): rightward QRS axis, R higher in
    II, III, aVF and lower in I and aVL with torso limb electrodes."""
    p = _qrs_dipole()
    std = _ecg(bem, make_layout("standard12", torso), p)
    ml = _ecg(bem, make_layout("mason_likar", torso), p)

    def axis(e):
        return np.degrees(np.arctan2(e["aVF"].sum(), e["I"].sum()))

    print(f"frontal QRS axis: standard {axis(std):.1f} deg, Mason-Likar {axis(ml):.1f} deg")
    for lead in ("I", "II", "III", "aVL", "aVF"):
        print(f"R {lead}: standard {std[lead].max():.3f} mV, Mason-Likar {ml[lead].max():.3f} mV")
    assert axis(ml) > axis(std) + 5
    for lead in ("II", "III", "aVF"):
        assert ml[lead].max() > std[lead].max(), lead
    for lead in ("I", "aVL"):
        assert ml[lead].max() < std[lead].max(), lead


def test_v2_more_sensitive_to_displacement_than_v6(torso, bem):
    """PHYSICS.md section 3 (Kania 2014): V2 changes most, V5/V6 least, for 2 cm moves."""
    p = _qrs_dipole()
    lay = make_layout("standard12", torso)
    base = _ecg(bem, lay, p)
    change = {}
    for el in ("V2", "V6"):
        rel = []
        for d in ([0, 0, 1.0], [0, 0, -1.0], [1.0, 0, 0], [-1.0, 0, 0], [0, 1.0, 0], [0, -1.0, 0]):
            moved = lay.moved(torso, {el: 0.02 * np.array(d)})
            if np.allclose(moved.position(el), lay.position(el), atol=1e-3):
                continue   # direction along the normal
            e = _ecg(bem, moved, p)
            rel.append(np.linalg.norm(e[el] - base[el]) / np.linalg.norm(base[el]))
        change[el] = float(np.mean(rel))
    print(f"mean relative waveform change for 2 cm moves: V2 {change['V2']:.3f}, V6 {change['V6']:.3f}")
    assert change["V2"] > change["V6"]


def test_heart_orientation_rotates_the_lead_field(torso, bem, rng):
    rot = heart_rotation(35.0, 40.0, 5.0)
    L = bem.lead_field(make_layout("standard12", torso).positions)
    p_heart = rng.normal(size=3)
    np.testing.assert_allclose(rotate_lead_field(L, rot) @ p_heart, L @ (Heart(np.zeros(3), rot)
                               .rotate_dipole(p_heart)), rtol=1e-12)


def test_mm_torso_or_heart_raise(torso):
    with pytest.raises(GeometryError, match="millimetres"):
        TorsoMesh(torso.vertices * 1000, torso.faces)
    with pytest.raises(GeometryError, match="millimetres"):
        make_infinite_model(np.array([30.0, -35.0, 0.0]) * 10)
