"""Torso surfaces, landmarks, electrode layouts and surface displacement."""

from __future__ import annotations

import numpy as np
import pytest

from cardiosim.errors import ConfigError, GeometryError
from cardiosim.geometry import (ElectrodeLayout, Heart, TorsoMesh, TorsoParams, displace_on_surface,
                                heart_long_axis, heart_rotation, intercostal_spacing, jitter_electrodes,
                                make_layout, make_sphere_mesh, make_torso, move_intercostal, read_torso,
                                slip_garment, stretch_garment, torso_circumference)
from cardiosim.geometry._kernels import (TriangleGrid, closest_point_brute_numpy, solid_angle_sum,
                                         solid_angle_sum_numpy)


@pytest.fixture(scope="module")
def torso():
    return make_torso()


# ------------------------------------------------------------------------------ surfaces
@pytest.mark.parametrize("sub, n_faces", [(0, 20), (2, 320), (3, 1280)])
def test_sphere_mesh_is_closed_icosphere_on_radius(sub, n_faces):
    s = make_sphere_mesh(0.1, sub)
    assert s.faces.shape == (n_faces, 3)
    np.testing.assert_allclose(np.linalg.norm(s.vertices, axis=1), 0.1, rtol=1e-12)
    # Closed and outward: 4 pi from the centre, 0 from outside.
    om = solid_angle_sum(np.array([[0, 0, 0.0], [0.3, 0, 0]]), s.triangles)
    np.testing.assert_allclose(om, [4 * np.pi, 0.0], atol=1e-9)


def test_default_torso_is_adult_sized_closed_and_holds_the_heart(torso):
    assert 1000 <= len(torso.faces) <= 3000
    ext = torso.vertices.max(0) - torso.vertices.min(0)
    assert 0.55 <= ext[2] <= 0.65                     # groin to shoulders ~0.6 m
    circ = torso_circumference(torso, 0.0)            # chest at heart level
    print(f"default torso: {len(torso.faces)} triangles, chest circumference {circ:.3f} m, extent {ext.round(3)}")
    assert 0.9 <= circ <= 1.1
    h = torso.heart.position
    assert torso.contains(h[None])[0]
    assert h[0] > 0 and h[1] < 0                      # left of midline, anterior
    z4, z5 = torso.landmarks["ics4_sternal_left"][2], torso.landmarks["ics5_sternal_left"][2]
    assert z5 - 0.03 <= h[2] <= z4 + 0.03             # about the 4th-5th intercostal level
    # Every landmark except the axis lies on the surface.
    pts = np.array([v for k, v in torso.landmarks.items() if k != "body_axis"])
    _, _, _, d = torso.closest_point(pts)
    assert d.max() < 1e-9


def test_closed_surface_checks_match_solid_angle(torso):
    om = solid_angle_sum(np.array([torso.heart.position, [0, 0, 1.0]]), torso.triangles)
    np.testing.assert_allclose(om, [4 * np.pi, 0], atol=1e-8)


def test_body_shape_parameters_change_the_mesh_and_layouts_follow(torso):
    wide = make_torso(TorsoParams(chest_width=0.40, chest_depth=0.28))
    assert torso_circumference(wide, 0.0) > torso_circumference(torso, 0.0) + 0.1
    v6 = make_layout("standard12", torso).position("V6")
    v6w = make_layout("standard12", wide).position("V6")
    assert v6w[0] > v6[0] + 0.02                      # V6 moves out with the mid-axillary line
    female = make_torso(TorsoParams(sex="female"))
    assert torso_circumference(female, 0.0) < torso_circumference(torso, 0.0)
    with pytest.raises(ConfigError, match="sex"):
        make_torso(TorsoParams(sex="x"))


def test_v1_to_v6_spacings_within_two_sd_of_population(torso):
    """PHYSICS.md section 2, Bender et al. (25 torsos): mean +- SD in mm."""
    lay = make_layout("standard12", torso)
    p = {e: lay.position(e) * 1000 for e in lay.electrodes}
    measured = {
        "V1-V2": (np.linalg.norm(p["V1"] - p["V2"]), 49.6, 10.3),
        "V1-V4 vertical": (p["V1"][2] - p["V4"][2], 86.7, 16.7),
        "V4-V5": (np.linalg.norm(p["V4"] - p["V5"]), 57.9, 12.9),
        "V5-V6": (np.linalg.norm(p["V5"] - p["V6"]), 50.1, 14.0),
        "V4-V6": (np.linalg.norm(p["V4"] - p["V6"]), 105.6, 23.7),
    }
    for k, (val, mean, sd) in measured.items():
        print(f"{k}: {val:.1f} mm (population {mean} +- {sd}, z = {(val - mean) / sd:+.2f})")
        assert abs(val - mean) <= 2 * sd, k


# ------------------------------------------------------------------------------- layouts
@pytest.mark.parametrize("name, electrodes", [
    ("standard12", ("RA", "LA", "LL", "V1", "V2", "V3", "V4", "V5", "V6")),
    ("mason_likar", ("RA", "LA", "LL", "V1", "V2", "V3", "V4", "V5", "V6")),
    ("shirt12", ("RA", "LA", "LL", "V1", "V2", "V3", "V4", "V5", "V6")),
    ("frank", ("A", "C", "E", "I", "M", "H", "F")),
    ("easi", ("E", "A", "S", "I")),
    ("patch", ("P+", "P-")),
])
def test_layouts_place_named_electrodes_on_the_surface(torso, name, electrodes):
    lay = make_layout(name, torso)
    assert lay.electrodes == electrodes
    _, _, _, d = torso.closest_point(lay.positions)
    assert d.max() < 1e-9


def test_layouts_follow_anatomical_rules(torso):
    std = make_layout("standard12", torso)
    lm = torso.landmarks
    np.testing.assert_array_equal(std.position("LL"), lm["left_groin"])
    assert std.position("V1")[0] < 0 < std.position("V2")[0]          # either side of the sternum
    np.testing.assert_allclose(std.position("V5")[2], std.position("V4")[2], atol=1e-12)
    np.testing.assert_allclose(std.position("V6")[2], std.position("V4")[2], atol=1e-12)
    assert abs(std.position("V6")[1]) < 1e-9                           # mid-axillary: y = 0 of the axis
    frank = make_layout("frank", torso)
    z = frank.positions[:5, 2]
    np.testing.assert_allclose(z, z[0], atol=1e-12)                    # A C E I M on one level
    assert frank.position("M")[1] > 0.1 and frank.position("E")[1] < -0.1
    assert frank.position("H")[2] > lm["jugular_notch"][2]
    ml = make_layout("mason_likar", torso)
    assert ml.position("LL")[2] > std.position("LL")[2] + 0.1          # onto the abdomen
    assert abs(ml.position("LA")[0]) < abs(std.position("LA")[0])     # medial to the shoulder


def test_bad_layouts_raise(torso, tmp_path):
    sphere = make_sphere_mesh(0.15, 2)
    with pytest.raises(GeometryError, match="electrode 'RA'.*landmark 'right_shoulder'"):
        make_layout("standard12", sphere)
    with pytest.raises(ConfigError, match="unknown electrode layout 'nope'"):
        make_layout("nope", torso)
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\norder = ["X"]\n[electrodes]\nX = { line = "mid_axillary_left", level_of = 0 }\n')
    with pytest.raises((GeometryError, ConfigError, TypeError)):
        make_layout(bad, torso)
    far = tmp_path / "far.toml"
    far.write_text('name = "far"\norder = ["X"]\n[electrodes]\nX = { line = "mid_axillary_left", level_of = "f" }\n')
    lm = dict(torso.landmarks)
    lm["f"] = np.array([0.0, 0.0, 2.0])       # 2 m up: no surface there
    t2 = TorsoMesh(torso.vertices, torso.faces, name="t2", landmarks=lm, heart=torso.heart)
    with pytest.raises(GeometryError, match="electrode 'X'.*misses the surface"):
        make_layout(far, t2)


# ------------------------------------------------------------------------- bad geometry
def test_open_mesh_raises():
    s = make_sphere_mesh(0.1, 1)
    with pytest.raises(GeometryError, match="open mesh"):
        TorsoMesh(s.vertices, s.faces[:-1])


def test_inverted_normals_raise():
    s = make_sphere_mesh(0.1, 1)
    with pytest.raises(GeometryError, match="inverted normals"):
        TorsoMesh(s.vertices, s.faces[:, ::-1])


def test_inconsistent_orientation_raises():
    s = make_sphere_mesh(0.1, 1)
    f = s.faces.copy()
    f[3] = f[3, ::-1]
    with pytest.raises(GeometryError, match="consistently oriented"):
        TorsoMesh(s.vertices, f)


def test_millimetre_coordinates_raise(torso):
    with pytest.raises(GeometryError, match="millimetres"):
        TorsoMesh(torso.vertices * 1000, torso.faces)
    with pytest.raises(GeometryError, match="millimetres"):
        make_torso(TorsoParams(chest_width=340.0))


def test_heart_outside_torso_raises(torso):
    with pytest.raises(GeometryError, match="heart at .* outside"):
        TorsoMesh(torso.vertices, torso.faces, heart=Heart(np.array([0.5, 0, 0])))


def test_read_torso_roundtrip_and_units(torso, tmp_path):
    import meshio
    path = tmp_path / "t.obj"
    meshio.write(path, meshio.Mesh(torso.vertices, [("triangle", torso.faces)]))
    t = read_torso(path, units="m", heart=torso.heart, landmarks=torso.landmarks)
    np.testing.assert_allclose(t.vertices, torso.vertices, atol=1e-6)
    np.testing.assert_array_equal(t.faces, torso.faces)
    mm = tmp_path / "mm.ply"
    meshio.write(mm, meshio.Mesh(torso.vertices * 1000, [("triangle", torso.faces)]))
    with pytest.raises(GeometryError, match="did you mean units='mm'"):
        read_torso(mm, units="m")
    t2 = read_torso(mm, units="mm")
    assert abs(t2.vertices.max() - torso.vertices.max()) < 1e-6


def test_heart_rotation_moves_long_axis():
    np.testing.assert_allclose(heart_rotation(), np.eye(3), atol=1e-12)
    r = heart_rotation(40.0, 30.0, 10.0)
    np.testing.assert_allclose(r @ heart_long_axis(), heart_long_axis(40.0, 30.0), atol=1e-12)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    a = heart_long_axis()
    assert a[0] > 0 and a[1] < 0 and a[2] < 0     # apex left, anterior, inferior
    np.testing.assert_allclose(np.degrees(np.arcsin(-a[2])), 27.0)


# ------------------------------------------------------------------------------ kernels
def test_closest_point_grid_matches_numpy_brute_force(torso, rng):
    pts = torso.vertices[rng.integers(0, len(torso.vertices), 300)] + rng.normal(0, 0.006, (300, 3))
    grid = TriangleGrid(torso.triangles, 0.03)
    t1, b1, d1 = grid.query(pts)
    t2, b2, d2 = closest_point_brute_numpy(pts, torso.triangles)
    assert np.all(t1 >= 0)
    np.testing.assert_allclose(d1, d2, atol=1e-12)
    q1 = np.einsum("nk,nkj->nj", b1, torso.triangles[t1])
    q2 = np.einsum("nk,nkj->nj", b2, torso.triangles[t2])
    np.testing.assert_allclose(q1, q2, atol=1e-10)
    far = grid.query(np.array([[0.0, 0.0, 3.0]]))[0]
    assert far[0] == -1


def test_solid_angle_kernel_matches_numpy(torso, rng):
    pts = rng.normal(0, 0.2, (20, 3))
    np.testing.assert_allclose(solid_angle_sum(pts, torso.triangles), solid_angle_sum_numpy(pts, torso.triangles),
                               atol=1e-10)


# ------------------------------------------------------------------------- displacement
def test_zero_offset_returns_positions_exactly(torso):
    lay = make_layout("shirt12", torso)
    out = displace_on_surface(torso, lay.positions, np.zeros((4,) + lay.positions.shape))
    assert out.shape == (4, 9, 3)
    np.testing.assert_array_equal(out[2], lay.positions)


def test_tangential_move_walks_on_the_surface(torso):
    lay = make_layout("standard12", torso)
    v2 = lay.position("V2")[None]
    for direction in ([0, 0, 1.0], [1.0, 0, 0], [0, 0, -1.0]):
        out = displace_on_surface(torso, v2, 0.02 * np.array([direction]))
        _, _, _, d = torso.closest_point(out)
        assert d.max() < 1e-9
        moved = np.linalg.norm(out - v2)
        assert 0.018 < moved <= 0.0201, (direction, moved)
    # A purely normal offset is discarded.
    n = torso.face_normals[torso.closest_point(v2)[1][0]]
    out = displace_on_surface(torso, v2, 0.02 * n[None])
    assert np.linalg.norm(out - v2) < 2e-3


def test_displacement_vectorised_over_time_matches_loop(torso, rng):
    lay = make_layout("shirt12", torso)
    off = rng.normal(0, 0.01, (5, 9, 3))
    batch = displace_on_surface(torso, lay.positions, off)
    for k in range(5):
        single = displace_on_surface(torso, lay.positions, off[k])
        np.testing.assert_allclose(batch[k], single, atol=2e-3)  # same walk, step count may differ


def test_garment_slip_rotation_stretch_and_jitter(torso, rng):
    lay = make_layout("shirt12", torso)
    up = slip_garment(torso, lay.positions, vertical=np.array([0.0, 0.02]))
    assert up.shape == (2, 9, 3)
    np.testing.assert_array_equal(up[0], lay.positions)
    dz = up[1, 3:, 2] - lay.positions[3:, 2]                # chest electrodes move up ~2 cm
    assert np.all((dz > 0.015) & (dz < 0.021))
    rot = slip_garment(torso, lay.positions, rotation=np.deg2rad(5.0))
    assert rot[lay.index(["V1"])[0], 0] > lay.position("V1")[0] + 0.005   # front turns toward the left
    big = stretch_garment(torso, lay.positions, 1.1)
    az0 = np.arctan2(lay.positions[:, 0], -lay.positions[:, 1])
    az1 = np.arctan2(big[:, 0], -big[:, 1])
    far = np.abs(az0) > 0.3
    assert np.all(np.abs(az1[far]) > np.abs(az0[far]))
    j1 = jitter_electrodes(torso, lay.positions, np.random.default_rng(3), sd=0.01)
    j2 = jitter_electrodes(torso, lay.positions, np.random.default_rng(3), sd=0.01)
    np.testing.assert_array_equal(j1, j2)
    assert 0.003 < np.linalg.norm(j1 - lay.positions, axis=1).mean() < 0.03
    with pytest.raises(GeometryError, match="metres"):
        displace_on_surface(torso, lay.positions, np.full((9, 3), 2.0))


def test_move_v1_v2_up_two_intercostal_spaces(torso):
    lay = make_layout("standard12", torso)
    moved = move_intercostal(torso, lay, ["V1", "V2"], 2)
    lm = torso.landmarks
    assert 0.02 < intercostal_spacing(torso) < 0.035
    np.testing.assert_allclose(moved.position("V1"), lm["ics2_sternal_right"], atol=0.006)
    np.testing.assert_allclose(moved.position("V2"), lm["ics2_sternal_left"], atol=0.006)
    np.testing.assert_array_equal(moved.position("V4"), lay.position("V4"))


def test_off_surface_positions_raise(torso):
    with pytest.raises(GeometryError, match="off the torso"):
        displace_on_surface(torso, np.array([[0.0, 0.0, 0.0]]), np.zeros((1, 3)))


def test_layout_rejects_bad_shapes():
    with pytest.raises(GeometryError, match="positions shape"):
        ElectrodeLayout("x", ("a", "b"), np.zeros((3, 3)))
