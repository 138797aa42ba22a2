"""Multi-compartment BEM (torso with lungs) against the homogeneous BEM and concentric spheres.

The reference for (c) is the series solution for a dipole in the innermost of concentric
spherical shells, derived here independently of the BEM code (de Munck, J Appl Phys
1988;64:464; Zhang, Phys Med Biol 1995;40:335 give equivalent forms). In each shell the
potential of multipole order n is ``(a r^n + b r^-(n+1)) Y_n``; the dipole fixes ``b`` in
the innermost shell; continuity of the potential and of the normal current at each
interface carries ``(a, b)`` outward (a 2 x 2 transfer per interface); zero normal
current at the outer surface closes the system. With one shell this reduces to the
closed form of :class:`cardiosim.forward.SphereModel` (checked below to 1e-12).
"""

from __future__ import annotations

import numpy as np
import pytest

from cardiosim.errors import ConfigError, GeometryError
from cardiosim.forward import (
    MultilayerBEMModel,
    make_bem_model,
    make_multilayer_bem_model,
    make_sphere_model,
    solve_bem,
    solve_multilayer_bem,
)
from cardiosim.forward._kernels import (
    linear_collocation_cross_matrix,
    linear_collocation_cross_matrix_numpy,
    linear_collocation_matrix,
)
from cardiosim.forward.bem import node_area_weights
from cardiosim.forward.multilayer import cache_key
from cardiosim.geometry import (
    TorsoMesh,
    TorsoParams,
    make_layout,
    make_sphere_mesh,
    make_torso,
)
from cardiosim.geometry._kernels import solid_angle_sum
from cardiosim.geometry.organs import (
    LungParams,
    check_organs,
    make_ellipsoid_mesh,
    make_lungs,
    surface_nesting,
)


# ------------------------------------------------------------------ analytic reference
def multisphere_lead_field(points, radii, conductivities, source_position, tol=1e-14, n_max=3000):
    """Lead field (n, 3), V/(A·m), on the outer surface of concentric spheres.

    Parameters
    ----------
    points : (n, 3) m, on the outer sphere (centre at the origin)
    radii : (K,) m, innermost first
    conductivities : (K,) S/m, innermost first (``conductivities[k]`` between
        ``radii[k-1]`` and ``radii[k]``); insulating outside
    source_position : (3,) m, inside the innermost sphere

    The potential is ``1/(4 pi s_1 R^2) sum_n t_n beta^(n-1) p.[(n P_n - x P_n') r0^ + P_n' r^]``
    with ``x = r^.r0^``, ``beta = |r0|/R`` and ``t_n`` from the interface transfer (module
    docstring); ``t_n = (2n+1)/n`` for one shell.
    """
    rad = np.asarray(radii, dtype=float)
    sig = np.asarray(conductivities, dtype=float)
    big_r = rad[-1]
    rho = rad / big_r                               # dimensionless radii, outer = 1
    r = np.asarray(points, dtype=float)
    rhat = r / np.linalg.norm(r, axis=1, keepdims=True)
    r0 = np.asarray(source_position, dtype=float)
    b = float(np.linalg.norm(r0))
    beta = b / big_r
    r0hat = r0 / b if b > 0 else np.array([0.0, 0.0, 1.0])
    x = rhat @ r0hat
    p_prev, p_cur = np.ones_like(x), x.copy()                 # P_0, P_1
    dp_prev, dp_cur = np.zeros_like(x), np.ones_like(x)       # P_0', P_1'
    out = np.zeros((len(r), 3))
    for n in range(1, n_max + 1):
        m = np.eye(2)
        for k in range(len(rad) - 1):                         # interface k: shell k -> shell k + 1
            q = rho[k]

            def rows(s, q=q, n=n):
                return np.array([[q ** n, q ** (-n - 1)], [s * n * q ** (n - 1), -s * (n + 1) * q ** (-n - 2)]])

            m = np.linalg.solve(rows(sig[k + 1]), rows(sig[k])) @ m
        c = (n + 1) / n                                      # d phi/dr = 0 at rho = 1: n a = (n + 1) b
        a1 = (c * m[1, 1] - m[0, 1]) / (m[0, 0] - c * m[1, 0])
        t_n = (m[1, 0] * a1 + m[1, 1]) * (2 * n + 1) / n       # outer potential per unit inner b
        term = t_n * beta ** (n - 1) * ((n * p_cur - x * dp_cur)[:, None] * r0hat + dp_cur[:, None] * rhat)
        out += term
        if n > 3 and np.abs(term).max() < tol * np.abs(out).max():
            break
        p_next = ((2 * n + 1) * x * p_cur - n * p_prev) / (n + 1)
        dp_next = dp_prev + (2 * n + 1) * p_cur                 # P'_{n+1} = P'_{n-1} + (2n+1) P_n
        p_prev, p_cur, dp_prev, dp_cur = p_cur, p_next, dp_cur, dp_next
    else:
        raise RuntimeError("multisphere series did not converge")
    return out / (4 * np.pi * sig[0] * big_r ** 2)


def rdm_mag(num, ref):
    """Relative difference measure and magnitude ratio of two mean-free potentials."""
    return (float(np.linalg.norm(num / np.linalg.norm(num) - ref / np.linalg.norm(ref))),
            float(np.linalg.norm(num) / np.linalg.norm(ref)))


def shells_vs_analytic(radii, sigmas, subdivisions, eccentricity=0.5):
    """(RDM, MAG) for a radial and a tangential dipole at ``eccentricity`` of the inner radius."""
    meshes = [make_sphere_mesh(r, subdivisions) for r in radii[::-1]]          # outer first
    outer = meshes[0]
    w = node_area_weights(outer.vertices, outer.faces)
    src = np.array([0.0, 0.0, eccentricity * radii[0]])
    lf = solve_multilayer_bem(meshes, sigmas[::-1], src)
    an = multisphere_lead_field(outer.vertices, radii, sigmas, src)
    an = an - (w @ an) / w.sum()
    return {kind: rdm_mag(lf @ p, an @ p) for kind, p in (("radial", [0, 0, 1.0]), ("tangential", [1.0, 0, 0]))}


# Three shells: a lung-like poorly conducting layer between two torso-like ones.
RADII = (0.05, 0.08, 0.10)
SIGMAS = (0.2, 0.05, 0.2)


# ----------------------------------------------------------------------------- tests
def test_analytic_reference_reduces_to_the_closed_form_sphere():
    s = make_sphere_mesh(0.1, 2)
    for src in ([0, 0, 0.05], [0.02, -0.03, 0.06], [0, 0, 0]):
        ref = make_sphere_model(0.1, src, 0.2).lead_field(s.vertices)
        for radii in ((0.1,), (0.04, 0.07, 0.1)):                          # equal conductivities
            an = multisphere_lead_field(s.vertices, radii, [0.2] * len(radii), src)
            np.testing.assert_allclose(an, ref, rtol=0, atol=1e-12 * np.abs(ref).max())
    # Centred dipole in a core (radius R1, s1) and one shell (to R2, s2), worked by hand from
    # the n = 1 term: the surface potential is C/q times the homogeneous one (3 phi_inf), with
    # C/q = 3 s1 / (s1 (2u + 1) + 2 s2 (1 - u)), u = (R1/R2)^3.
    ref = make_sphere_model(0.1, np.zeros(3), 0.2).lead_field(s.vertices)
    u = (0.06 / 0.1) ** 3
    for s2 in (0.01, 0.05, 0.4):
        an = multisphere_lead_field(s.vertices, (0.06, 0.1), (0.2, s2), np.zeros(3))
        ratio = 3 * 0.2 / (0.2 * (2 * u + 1) + 2 * s2 * (1 - u))
        np.testing.assert_allclose(an, ratio * ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max())


def test_cross_kernel_matches_numpy_twin_and_solid_angles(rng):
    s = make_sphere_mesh(0.1, 1)
    pts = np.concatenate([rng.normal(0, 0.03, (15, 3)), rng.normal(0, 0.5, (15, 3))])
    a = linear_collocation_cross_matrix(pts, s.vertices, s.faces)
    b = linear_collocation_cross_matrix_numpy(pts, s.vertices, s.faces)
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)
    # Rows sum to the solid angle of the closed surface: 4 pi inside, 0 outside (van
    # Oosterom & Strackee), up to the triangles skipped as negligible (< 2 pi 1e-6 sr each).
    np.testing.assert_allclose(a.sum(1), solid_angle_sum(pts, s.triangles), atol=1e-4)
    inside = np.linalg.norm(pts, axis=1) < 0.095
    np.testing.assert_allclose(a.sum(1)[inside], 4 * np.pi, atol=1e-9)
    # Off-surface points close to a node: the same coefficients as the self kernel's other
    # triangles, i.e. the cross kernel continues the self kernel.
    i = 7
    own = np.any(s.faces == i, axis=1)
    near = s.vertices[i] * (1 - 1e-9)
    row = linear_collocation_cross_matrix_numpy(near[None], s.vertices, s.faces[~own])[0]
    np.testing.assert_allclose(row, linear_collocation_matrix(s.vertices, s.faces)[i], rtol=1e-5, atol=1e-9)


@pytest.fixture(scope="module")
def torso_and_lungs():
    torso = make_torso()
    return torso, make_lungs(torso)


def test_one_surface_is_the_homogeneous_bem(torso_and_lungs, tmp_path):
    torso, _ = torso_and_lungs
    ref = solve_bem(torso.vertices, torso.faces, torso.heart.position, 0.2)
    one = solve_multilayer_bem([torso], [0.2], torso.heart.position)
    np.testing.assert_allclose(one, ref, rtol=0, atol=1e-10 * np.abs(ref).max())
    m = make_multilayer_bem_model(torso, lungs=(), conductivities=[0.2], cache_dir=tmp_path)
    assert isinstance(m, MultilayerBEMModel) and "inner={}" in repr(m) and m.conductivity == 0.2
    h = make_bem_model(torso, cache_dir=tmp_path)
    pts = make_layout("standard12", torso).positions
    np.testing.assert_allclose(m.lead_field(pts), h.lead_field(pts), rtol=0, atol=1e-10 * np.abs(ref).max())


def test_equal_conductivities_give_the_homogeneous_bem(torso_and_lungs):
    torso, lungs = torso_and_lungs
    ref = solve_bem(torso.vertices, torso.faces, torso.heart.position, 0.3)
    eq = solve_multilayer_bem([torso, *lungs], [0.3, 0.3, 0.3], torso.heart.position)
    np.testing.assert_allclose(eq, ref, rtol=0, atol=1e-8 * np.abs(ref).max())
    # Concentric spheres of one conductivity: the homogeneous sphere, within discretisation.
    meshes = [make_sphere_mesh(r, 2) for r in (0.1, 0.07, 0.04)]
    src = np.array([0.0, 0.01, 0.02])
    w = node_area_weights(meshes[0].vertices, meshes[0].faces)
    an = make_sphere_model(0.1, src, 0.2).lead_field(meshes[0].vertices)
    an -= (w @ an) / w.sum()
    lf = solve_multilayer_bem(meshes, [0.2, 0.2, 0.2], src)
    for p in np.eye(3):
        assert rdm_mag(lf @ p, an @ p)[0] < 0.01


@pytest.fixture(scope="module")
def shell_errors():
    return {sub: shells_vs_analytic(RADII, SIGMAS, sub) for sub in (2, 3)}


def test_three_shells_match_the_series_solution_and_converge(shell_errors):
    """RDM < 3 % at 1,280 triangles per shell (3 x 642 nodes), eccentricity 0.5; the error
    falls with refinement. Measured: RDM 0.78 / 0.70 % (320 triangles per shell), 0.21 /
    0.19 % (1,280), MAG 1.020 -> 1.005."""
    for sub, errs in shell_errors.items():
        for kind, (rdm, mag) in errs.items():
            print(f"{20 * 4 ** sub:5d} triangles/shell  {kind:10s}  RDM {rdm * 100:.3f} %  MAG {mag:.4f}")
    coarse, fine = shell_errors[2], shell_errors[3]
    for kind in fine:
        assert fine[kind][0] < coarse[kind][0] and abs(fine[kind][1] - 1) < abs(coarse[kind][1] - 1), kind
        assert fine[kind][0] < 0.03 and abs(fine[kind][1] - 1) < 0.03, (kind, fine[kind])
        assert coarse[kind][0] < 0.03, (kind, coarse[kind])


def test_two_shells_with_a_conductive_core_match_the_series():
    errs = shells_vs_analytic((0.06, 0.10), (0.05, 0.2), 2)
    for kind, (rdm, mag) in errs.items():
        assert rdm < 0.03 and abs(mag - 1) < 0.03, (kind, rdm, mag)


def _std_ratio(delta, near, far):
    """Spread of a potential change over two patches: reference-free (a constant offset,
    such as the zero-mean reference moving, does not count)."""
    return float(delta[near].std() / delta[far].std())


def test_poor_conductor_perturbs_the_potential_near_it_most():
    """A sphere with one small low-conductivity inclusion off to +y, centred dipole.

    Without the inclusion the surface potential is symmetric under y -> -y; the inclusion
    changes it much more on its own side than on the mirror side (its secondary sources sit
    on its surface and their field decays with distance), and the change grows as the
    inclusion's conductivity falls. Measured spread ratios 6.9 / 45 / 7.1 (x / y / z dipole).
    """
    outer = make_sphere_mesh(0.1, 3)
    inc = make_sphere_mesh(0.025, 2, center=(0.0, 0.06, 0.0))
    src = np.zeros(3)
    base = solve_multilayer_bem([outer], [0.2], src)
    d = {s: solve_multilayer_bem([outer, inc], [0.2, s], src) - base for s in (0.1, 0.05)}
    v = outer.vertices
    near = (v[:, 1] > 0.07) & (np.abs(v[:, 2]) > 0.03)                     # over the inclusion
    far = (v[:, 1] < -0.07) & (np.abs(v[:, 2]) > 0.03)                     # the mirror region
    assert near.sum() > 20 and far.sum() > 20
    for s, dphi in d.items():
        for k in range(3):
            assert _std_ratio(dphi[:, k], near, far) > 4.0, (s, k)
    assert np.all(np.abs(d[0.05][near]).mean(0) > 1.2 * np.abs(d[0.1][near]).mean(0))


def test_a_lung_changes_the_torso_potential_on_its_side_most(torso_and_lungs):
    """Right lung only, dipole on the body axis (the torso is left-right symmetric): the
    change of the surface potential is spread more over the chest within 5 cm of the lung
    than over the mirror patch on the left. Measured spread ratios 1.57 / 2.79 / 1.72
    (x / y / z dipole); the lungs also shift the potential everywhere (a global effect:
    the relative change of the default model's lead field is about 0.24 even on the lower
    abdomen), which the reference-free spread does not count."""
    torso, (right, _) = torso_and_lungs
    src = np.zeros(3)
    h = make_multilayer_bem_model(torso, lungs=(), conductivities=[0.2], source_position=src, use_cache=False)
    m = make_multilayer_bem_model(torso, lungs=[right], conductivities=[0.2, 0.05], source_position=src,
                                  use_cache=False)
    near = torso.vertices[right.closest_point(torso.vertices)[3] < 0.05]
    mirror = near * [-1.0, 1.0, 1.0]
    assert len(near) > 50
    dn, dm = m.lead_field(near) - h.lead_field(near), m.lead_field(mirror) - h.lead_field(mirror)
    # Without the lung both sides agree (mirror symmetry, up to the mesh's own asymmetry).
    base_asym = np.abs(h.lead_field(near) - h.lead_field(mirror) * [-1, 1, 1]).max()
    assert base_asym < 0.02 * np.abs(h.lead_field(near)).max() and base_asym < 0.1 * np.abs(dn).max()
    ratios = [float(dn[:, k].std() / dm[:, k].std()) for k in range(3)]
    print(f"\nspread of the change, lung side / mirror side (x, y, z dipole): {np.round(ratios, 2)}")
    assert min(ratios) > 1.3 and np.mean(ratios) > 1.7, ratios


def test_cache_key_and_disk_cache(torso_and_lungs, tmp_path):
    torso, lungs = torso_and_lungs
    src = torso.heart.position
    k = cache_key([torso, *lungs], [0.2, 0.05, 0.05], src)
    assert k != cache_key([torso, *lungs], [0.2, 0.05, 0.06], src)
    assert k != cache_key([torso, lungs[1], lungs[0]], [0.2, 0.05, 0.05], src)
    assert k != cache_key([torso, *lungs[:1]], [0.2, 0.05], src)
    a = make_multilayer_bem_model(torso, lungs=lungs, cache_dir=tmp_path)
    assert "'lung_left': 162 vertices, 0.05 S/m" in repr(a)
    files = list(tmp_path.glob("bem-multilayer-*.npz"))
    assert len(files) == 1
    b = make_multilayer_bem_model(torso, lungs=lungs, cache_dir=tmp_path)
    np.testing.assert_array_equal(a.node_lead_field, b.node_lead_field)
    files[0].write_bytes(b"corrupt")                                       # rebuilt and replaced
    c = make_multilayer_bem_model(torso, lungs=lungs, cache_dir=tmp_path)
    np.testing.assert_allclose(c.node_lead_field, a.node_lead_field, rtol=1e-12, atol=0)


def test_default_lungs_fit_the_torso(torso_and_lungs):
    torso, (right, left) = torso_and_lungs
    heart = torso.heart.position
    assert right.vertices[:, 0].max() < 0 < left.vertices[:, 0].min()
    for lung in (right, left):
        assert np.all(torso.contains(lung.vertices))
        assert torso.closest_point(lung.vertices)[3].min() > 0.01
        assert lung.closest_point(heart[None])[3][0] > 0.03                # 3.3 cm (left)
        length = np.ptp(lung.vertices[:, 2])
        assert 0.2 < length < 0.26                                         # about 24 cm (organs.py)
    np.testing.assert_array_equal(surface_nesting([torso, right, left]), [-1, 0, 0])
    # A smaller torso gets smaller lungs that still fit.
    small = make_torso(TorsoParams(sex="female"))
    r2, _ = make_lungs(small)
    assert np.ptp(r2.vertices[:, 0]) < np.ptp(right.vertices[:, 0])


def test_geometry_errors(torso_and_lungs):
    torso, (right, left) = torso_and_lungs
    crossing = make_ellipsoid_mesh(right.landmarks["center"] + [0.04, 0, 0], (0.055, 0.078, 0.115), 2,
                                   name="shifted")
    with pytest.raises(GeometryError, match="intersect"):
        make_multilayer_bem_model(torso, lungs=[right, crossing], use_cache=False)
    outside = make_ellipsoid_mesh((0.0, 0.0, 0.5), (0.05, 0.05, 0.05), 1, name="outside")
    with pytest.raises(GeometryError, match="outside the torso"):
        make_multilayer_bem_model(torso, lungs=[outside], use_cache=False)
    poking = make_ellipsoid_mesh((0.15, 0.0, 0.0), (0.05, 0.05, 0.05), 1, name="poking")
    with pytest.raises(GeometryError, match="intersect"):
        make_multilayer_bem_model(torso, lungs=[poking], use_cache=False)
    with pytest.raises(GeometryError, match="heart centre"):
        make_lungs(torso, LungParams(left_center=(0.075, -0.01, 0.03)))
    with pytest.raises(GeometryError, match="mm of the surface"):
        check_organs(torso, [right], margin=0.05)
    # An edge through a triangle while every vertex of each surface is outside the other: a
    # thin triangular prism piercing a flat ellipsoid.
    ang = np.deg2rad([90.0, 210.0, 330.0])
    ring = np.stack([0.003 * np.cos(ang), 0.003 * np.sin(ang), np.zeros(3)], axis=1)
    pv = np.concatenate([ring + [0, 0, -0.2], ring + [0, 0, 0.2]])
    pf = [[0, 2, 1], [3, 4, 5]] + [f for i in range(3) for f in ([i, (i + 1) % 3, (i + 1) % 3 + 3],
                                                                [i, (i + 1) % 3 + 3, i + 3])]
    prism = TorsoMesh(pv, np.array(pf), name="needle")
    disk = make_ellipsoid_mesh((0, 0, 0), (0.05, 0.05, 0.005), 0, name="disk")
    assert not np.any(disk.contains(prism.vertices)) and not np.any(prism.contains(disk.vertices))
    with pytest.raises(GeometryError, match="edge of one passes through"):
        surface_nesting([disk, prism])
    # The dipole 2 mm from a lung surface.
    i = int(np.argmax(right.vertices[:, 0]))
    near_lung = right.vertices[i] + [0.002, 0.0, 0.0]
    with pytest.raises(GeometryError, match="mm from the surface"):
        make_multilayer_bem_model(torso, lungs=[right, left], source_position=near_lung, use_cache=False)


def test_config_errors(torso_and_lungs):
    torso, lungs = torso_and_lungs
    for bad in ([0.2, 0.0, 0.05], [0.2, -0.05, 0.05], [0.2, float("nan"), 0.05], [0.2, 0.05], ["a", 1, 2]):
        with pytest.raises(ConfigError, match="conductivit"):
            make_multilayer_bem_model(torso, lungs=lungs, conductivities=bad, use_cache=False)


def test_generate_with_lungs_end_to_end(tmp_path):
    """``forward = "bem-lungs"`` runs through the dataset generator: same sources, labels
    and seeds as the homogeneous torso, different body-surface signals, recorded in the
    stored recipe."""
    from cardiosim.dataset import Recipe, generate, open_dataset

    out = {}
    for fwd in ("bem", "bem-lungs"):
        recipe = Recipe(seed=3, records=2, duration=2.0, forward=fwd)
        generate(recipe, tmp_path / f"{fwd}.nc", progress=False)
        out[fwd] = open_dataset(tmp_path / f"{fwd}.nc")
    a, b = out["bem"], out["bem-lungs"]
    assert 'forward = "bem-lungs"' in b.attrs["recipe"]
    np.testing.assert_array_equal(a["label"].values, b["label"].values)
    x, y = a["ecg"].values.astype(float), b["ecg"].values.astype(float)
    rel = np.linalg.norm(x - y) / np.linalg.norm(x)
    assert 0.02 < rel < 1.0  # the lungs reshape the lead field (22 % on the torso surface)
