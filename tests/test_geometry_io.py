"""A user's body and electrodes from files (issue 12, item 1): read_torso, read_electrodes,
the self-intersection kernel against its NumPy twin, and generation with a user mesh."""

from __future__ import annotations

import numpy as np
import pytest

from cardiosim.errors import ConfigError, DataFormatError, GeometryError
from cardiosim.geometry import (TorsoParams, make_layout, make_sphere_mesh, make_torso,
                                proportional_anatomy, read_electrodes, read_torso)
from cardiosim.geometry._kernels import edges_through_triangles, edges_through_triangles_numpy
from cardiosim.geometry.topology import prepare_surface

meshio = pytest.importorskip("meshio")


@pytest.fixture(scope="module")
def torso():
    return make_torso()


def _write(path, vertices, faces):
    meshio.write(path, meshio.Mesh(np.asarray(vertices, dtype=np.float64), [("triangle", np.asarray(faces))]))
    return path


def _volume(t):
    tri = t.triangles
    return float(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0)


def _canonical_faces(vertices_read, faces_read, vertices_ref):
    """Faces of a read mesh in the reference numbering, each rotated to start at its
    smallest index (winding kept), sorted: equal arrays mean the same oriented surface."""
    from scipy.spatial import cKDTree

    dist, idx = cKDTree(vertices_ref).query(vertices_read)
    assert dist.max() < 1e-6          # every vertex read is one of the reference's
    f = idx[faces_read]
    k = np.argmin(f, axis=1)
    f = np.stack([np.roll(row, -s) for row, s in zip(f, k)])
    return f[np.lexsort(f.T[::-1])]


# ------------------------------------------------------------------------------ round trips
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")   # meshio's STL size probe
@pytest.mark.parametrize("ext", ["obj", "ply", "stl", "vtk"])
@pytest.mark.parametrize("inward", [False, True])
def test_round_trip_in_mm_any_winding_gives_the_outward_surface(torso, tmp_path, ext, inward):
    faces = torso.faces[:, ::-1] if inward else torso.faces
    path = _write(tmp_path / f"body.{ext}", torso.vertices * 1000.0, faces)
    t = read_torso(path, units="mm", heart=torso.heart)
    # STL stores float32 corners per triangle: 1e-5 mm; the others keep float64 text/binary
    tol = 1e-7 if ext == "stl" else 1e-12
    assert t.vertices.shape == torso.vertices.shape
    np.testing.assert_array_equal(_canonical_faces(t.vertices, t.faces, torso.vertices),
                                  _canonical_faces(torso.vertices, torso.faces, torso.vertices))
    np.testing.assert_allclose(_volume(t), _volume(torso), rtol=tol * 100)
    np.testing.assert_allclose(np.sort(t.vertices, axis=0), np.sort(torso.vertices, axis=0), atol=tol)


def test_units_cm_and_m_read_the_same_body(torso, tmp_path):
    a = read_torso(_write(tmp_path / "m.obj", torso.vertices, torso.faces), units="m")
    b = read_torso(_write(tmp_path / "cm.obj", torso.vertices * 100.0, torso.faces), units="cm")
    np.testing.assert_allclose(a.vertices, b.vertices, atol=1e-12)


def test_quads_are_split_keeping_the_winding(tmp_path):
    # a cube of quads, 0.3 m, counter-clockwise from outside
    v = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]]) * 0.3
    q = np.array([[0, 3, 2, 1], [4, 5, 6, 7], [0, 1, 5, 4], [1, 2, 6, 5], [2, 3, 7, 6], [3, 0, 4, 7]])
    path = tmp_path / "cube.obj"
    meshio.write(path, meshio.Mesh(v.astype(float), [("quad", q)]))
    t = read_torso(path, units="m", heart=[0.15, 0.15, 0.15])
    assert len(t.faces) == 12
    np.testing.assert_allclose(_volume(t), 0.3 ** 3, rtol=1e-12)


def test_units_are_required_and_checked(torso, tmp_path):
    path = _write(tmp_path / "t.obj", torso.vertices, torso.faces)
    with pytest.raises(TypeError):
        read_torso(path)                           # no silent default
    with pytest.raises(ConfigError, match="units must be one of"):
        read_torso(path, units="inch")
    with pytest.raises(DataFormatError, match="not found"):
        read_torso(tmp_path / "missing.obj", units="m")


# -------------------------------------------------------------------------- bad bodies
def test_millimetres_given_as_metres_names_the_fix(torso, tmp_path):
    path = _write(tmp_path / "mm.obj", torso.vertices * 1000.0, torso.faces)
    with pytest.raises(GeometryError, match=r"torso is 600 m tall .*did you mean units='mm'\?"):
        read_torso(path, units="m")
    m = _write(tmp_path / "m.obj", torso.vertices, torso.faces)
    with pytest.raises(GeometryError, match=r"0\.0006 m tall .*did you mean units='m'\?"):
        read_torso(m, units="mm")


def test_open_mesh_is_refused(torso, tmp_path):
    path = _write(tmp_path / "open.ply", torso.vertices, torso.faces[:-1])
    with pytest.raises(GeometryError, match="open mesh -- 3 boundary edges"):
        read_torso(path, units="m")


def test_self_intersecting_mesh_is_refused(tmp_path):
    s = make_sphere_mesh(0.15, 3)
    v = s.vertices.copy()
    top = int(np.argmax(v[:, 2]))
    v[top] = [0.0, 0.0, -0.2]       # pull the north pole through the south side
    path = _write(tmp_path / "knot.obj", v, s.faces)
    with pytest.raises(GeometryError, match="intersects itself"):
        read_torso(path, units="m", heart=[0.0, 0.05, 0.0])


def test_non_manifold_vertex_degenerate_and_pieces_are_refused(tmp_path):
    a = make_sphere_mesh(0.1, 2)
    b = make_sphere_mesh(0.1, 2, center=(0.2, 0.0, 0.0))
    # b touches a at one vertex: (0.1, 0, 0) is a vertex of both icospheres
    ia = int(np.argmin(np.linalg.norm(a.vertices - [0.1, 0, 0], axis=1)))
    ib = int(np.argmin(np.linalg.norm(b.vertices - [0.1, 0, 0], axis=1)))
    vb = b.vertices.copy()
    vb[ib] = a.vertices[ia]
    v = np.vstack([a.vertices, vb])
    f = np.vstack([a.faces, b.faces + len(a.vertices)])
    with pytest.raises(GeometryError, match="non-manifold vertex .* joins 2 separate sheets"):
        prepare_surface(v, f, name="touching")
    apart = np.vstack([a.vertices, b.vertices + [0.1, 0, 0]])
    with pytest.raises(GeometryError, match="2 separate closed pieces"):
        prepare_surface(apart, f, name="two")
    # two tetrahedra sharing one edge: that edge joins four triangles
    v2 = np.array([[0, 0, 0], [0.1, 0, 0], [0.05, 0.1, 0.02], [0.05, 0.03, 0.1], [0.05, -0.1, 0.02],
                   [0.05, -0.03, -0.1]], dtype=float)
    f2 = np.array([[0, 2, 1], [0, 1, 3], [1, 2, 3], [0, 3, 2], [0, 1, 4], [0, 5, 1], [1, 5, 4], [0, 4, 5]])
    with pytest.raises(GeometryError, match="non-manifold edge .* shared by 4 triangles"):
        prepare_surface(v2, f2, name="bowtie")
    flat = a.vertices.copy()
    flat[a.faces[0, 2]] = 0.5 * (flat[a.faces[0, 0]] + flat[a.faces[0, 1]])   # a zero-area triangle
    with pytest.raises(GeometryError, match="degenerate"):
        prepare_surface(flat, a.faces, name="flat")


def test_generate_writes_nothing_for_a_bad_body(torso, tmp_path):
    from cardiosim.dataset import Recipe, generate
    from cardiosim.dataset.recipe import BodyRecipe

    path = _write(tmp_path / "open.obj", torso.vertices * 1000, torso.faces[:-1])
    recipe = Recipe().replace(records=2, duration=1.0, body=BodyRecipe(mesh=str(path), units="mm"))
    with pytest.raises(GeometryError, match="open mesh"):
        generate(recipe, tmp_path / "d.nc", progress=False)
    with pytest.raises(GeometryError, match="open mesh"):
        generate(recipe, tmp_path / "shards", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["open.obj"]
    with pytest.raises(ConfigError, match="body.units is required"):
        BodyRecipe(mesh=str(path))


# ------------------------------------------------------------------------ self-intersection kernel
def test_edge_triangle_kernel_matches_numpy_twin(rng):
    s = make_sphere_mesh(0.1, 2)
    v = s.vertices + rng.normal(0.0, 0.02, s.vertices.shape)     # crumpled: many crossings
    e = np.unique(np.sort(np.concatenate([s.faces[:, [0, 1]], s.faces[:, [1, 2]], s.faces[:, [2, 0]]]), axis=1),
                  axis=0)
    fast = edges_through_triangles(v, s.faces, e)
    slow = edges_through_triangles_numpy(v, s.faces, e)
    assert (slow >= 0).sum() > 20            # the test case does cross itself
    np.testing.assert_array_equal(fast, slow)
    clean = edges_through_triangles(s.vertices, s.faces, e)
    assert np.all(clean == -1)
    np.testing.assert_array_equal(clean, edges_through_triangles_numpy(s.vertices, s.faces, e))


def test_edge_through_a_triangle_analytic():
    # one triangle in z = 0 and a vertical segment through its interior, one beside it
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0.2, 0.2, -1], [0.2, 0.2, 1], [2, 2, -1], [2, 2, 1.0]])
    f = np.array([[0, 1, 2]])
    e = np.array([[3, 4], [5, 6]])
    np.testing.assert_array_equal(edges_through_triangles(v, f, e), [0, -1])
    np.testing.assert_array_equal(edges_through_triangles_numpy(v, f, e), [0, -1])


# ----------------------------------------------------------------------- heart and landmarks
def test_proportional_anatomy_on_another_body():
    """The adult torso's heart and landmarks carried by bounding box onto the female torso
    land near the female torso's own (independent: its own anthropometry and rules)."""
    fem = make_torso(TorsoParams(sex="female"))
    heart, lm = proportional_anatomy(fem.vertices, fem.faces)
    assert np.linalg.norm(heart.position - fem.heart.position) < 0.006
    own = make_layout("standard12", fem)
    carried = make_layout("standard12", type(fem)(fem.vertices, fem.faces, name="f", landmarks=lm, heart=heart))
    err = np.linalg.norm(own.positions - carried.positions, axis=1)
    assert err.max() < 0.015, dict(zip(own.electrodes, err.round(4)))


def test_heart_argument_and_sidecar_in_file_units(torso, tmp_path):
    import json

    path = _write(tmp_path / "t.obj", torso.vertices * 1000, torso.faces)
    t = read_torso(path, units="mm", heart=[10.0, -20.0, 5.0])
    np.testing.assert_allclose(t.heart.position, [0.010, -0.020, 0.005])
    (tmp_path / "t.obj.json").write_text(json.dumps({"heart_position": [20.0, -30.0, 0.0],
                                                      "landmarks": {"mark": [0.0, -124.9, 0.0]}}))
    t = read_torso(path, units="mm")
    np.testing.assert_allclose(t.heart.position, [0.020, -0.030, 0.0])
    np.testing.assert_allclose(t.landmarks["mark"], [0.0, -0.1249, 0.0])
    with pytest.raises(GeometryError, match="heart at .* outside"):
        read_torso(path, units="mm", heart=[900.0, 0.0, 0.0])


# ------------------------------------------------------------------------------ real tank mesh
def test_tank_mesh_inward_normals_read_outward(data_dir):
    path = data_dir / "tank" / "tank.obj"
    if not path.is_file():
        pytest.skip(f"{path} absent")
    t = read_torso(path, units="mm")
    # every vertex and face of the file read (counted from its lines here, independently of
    # the reader: 771 and 1,538 for the shared Utah tank; another tank of the same kind has its own)
    lines = path.read_text().splitlines()
    assert len(t.vertices) == sum(ln.startswith("v ") for ln in lines)
    assert len(t.faces) == sum(ln.startswith("f ") for ln in lines) > 500
    vol = _volume(t)
    assert 0.005 < vol < 0.05                     # a torso tank: 5-50 litres (15.5 l)
    # outward: normals point away from the volume centroid on most of the surface
    c = t.vertices.mean(0)
    out = np.einsum("ij,ij->i", t.face_normals, t.triangles.mean(1) - c)
    assert (out > 0).mean() > 0.9
    with pytest.raises(GeometryError, match="did you mean units='mm'"):
        read_torso(path, units="m")
    # the 192 tank electrodes are nodes of the tank mesh: they snap at zero distance
    layout = read_electrodes(data_dir / "tank" / "tank_electrodes.csv", t)
    import pandas as pd
    tab = pd.read_csv(data_dir / "tank" / "tank_electrodes.csv")
    assert len(layout.electrodes) == len(tab) and layout.electrodes[0] == str(tab.iloc[0, 0])
    np.testing.assert_allclose(layout.positions, tab[["x_mm", "y_mm", "z_mm"]].to_numpy() / 1000, atol=1e-9)


# --------------------------------------------------------------------------------- electrodes
def _csv(path, names, pos, header="name,x,y,z"):
    lines = [header] + [f"{n},{p[0]!r},{p[1]!r},{p[2]!r}" for n, p in zip(names, np.asarray(pos).tolist())]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_electrodes_csv_and_toml_snap_onto_the_surface(torso, tmp_path):
    lay = make_layout("standard12", torso)
    lifted = lay.positions + 0.004 * torso.face_normals[torso.closest_point(lay.positions)[1]]   # 4 mm off
    got = read_electrodes(_csv(tmp_path / "e.csv", lay.electrodes, lifted * 1000), torso, units="mm")
    assert got.electrodes == lay.electrodes
    np.testing.assert_allclose(got.positions, lay.positions, atol=1e-6)
    toml = "units = \"cm\"\nname = \"mine\"\n[electrodes]\n" + "\n".join(
        f"{n} = [{p[0]!r}, {p[1]!r}, {p[2]!r}]" for n, p in zip(lay.electrodes, (lay.positions * 100).tolist()))
    (tmp_path / "e.toml").write_text(toml)
    got = read_electrodes(tmp_path / "e.toml", torso)
    assert got.name == "mine"
    np.testing.assert_allclose(got.positions, lay.positions, atol=1e-9)
    with pytest.raises(ConfigError, match="file says units='cm' but units='mm'"):
        read_electrodes(tmp_path / "e.toml", torso, units="mm")


def test_electrode_off_the_surface_is_named(torso, tmp_path):
    lay = make_layout("standard12", torso)
    pos = lay.positions.copy()
    i = lay.electrodes.index("V3")
    _, tri, _, _ = torso.closest_point(pos[i:i + 1])
    pos[i] += 0.025 * torso.face_normals[tri[0]]            # 2.5 cm out from the chest
    with pytest.raises(GeometryError, match=r"electrode off the surface .*'V3' is 2\.5 cm away"):
        read_electrodes(_csv(tmp_path / "e.csv", lay.electrodes, pos), torso, units="m")
    with pytest.raises(GeometryError, match=r"electrodes off the surface"):
        read_electrodes(_csv(tmp_path / "e.csv", lay.electrodes, lay.positions), torso, units="mm")
    with pytest.raises(ConfigError, match="need units"):
        read_electrodes(_csv(tmp_path / "e.csv", lay.electrodes, lay.positions), torso)
    with pytest.raises(DataFormatError, match="duplicate electrode names"):
        read_electrodes(_csv(tmp_path / "d.csv", ["RA", "RA"], lay.positions[:2]), torso, units="m")


# --------------------------------------------------------------------------- end to end
def test_generate_with_a_user_mesh_matches_the_built_in_torso(torso, tmp_path):
    """The default torso exported as an inward-wound OBJ in mm, with the shirt's electrodes
    in a CSV, generates the same records as the built-in torso; the stored recipe pins
    both files by SHA-256 and a changed file is refused."""
    import xarray as xr

    from cardiosim.dataset import Recipe, generate
    from cardiosim.dataset.io import sha256_file as file_sha256
    from cardiosim.dataset.recipe import BodyRecipe

    mesh = _write(tmp_path / "torso.obj", torso.vertices * 1000.0, torso.faces[:, ::-1])
    lay = make_layout("shirt12", torso)
    els = _csv(tmp_path / "shirt.csv", lay.electrodes, lay.positions * 1000.0)
    base = Recipe().replace(records=2, duration=1.0)
    user = base.replace(body=BodyRecipe(mesh=str(mesh), units="mm", electrodes=str(els)))
    generate(base, tmp_path / "a.nc", progress=False)
    generate(user, tmp_path / "b.nc", progress=False)
    with xr.open_dataset(tmp_path / "a.nc") as a, xr.open_dataset(tmp_path / "b.nc") as b:
        np.testing.assert_allclose(b.ecg.values, a.ecg.values, rtol=0, atol=1e-5)
        stored = Recipe.from_toml(b.attrs["recipe"])
    assert stored.body.mesh_sha256 == file_sha256(mesh)
    assert stored.body.electrodes_sha256 == file_sha256(els)
    mesh.write_text(mesh.read_text() + "# edited\n")
    with pytest.raises(ConfigError, match="changed since the recipe was written"):
        generate(stored, tmp_path / "c.nc", progress=False)
    assert not (tmp_path / "c.nc").exists()


def test_command_line_and_recipe_file_name_the_body(tmp_path):
    """--mesh/--mesh-units/--electrodes set [body]; a recipe's relative paths are relative to it."""
    from cardiosim.cli import _recipe_from_args, build_parser
    from cardiosim.dataset import Recipe

    args = build_parser().parse_args(["generate", "--mesh", "b.obj", "--mesh-units", "mm",
                                      "--electrodes", "e.csv", "--electrode-units", "cm"])
    body = _recipe_from_args(args).body
    assert (body.mesh, body.units, body.electrodes, body.electrode_units) == ("b.obj", "mm", "e.csv", "cm")
    (tmp_path / "r.toml").write_text('[body]\nmesh = "scans/b.obj"\nunits = "mm"\nheart = [1, 2, 3]\n')
    body = Recipe.read(tmp_path / "r.toml").body
    assert body.mesh == str(tmp_path / "scans" / "b.obj") and body.heart == (1.0, 2.0, 3.0)
    with pytest.raises(ConfigError, match="body.bodies must be 1 with a user mesh"):
        Recipe.from_dict({"body": {"mesh": "b.obj", "units": "mm", "bodies": 3}})
    with pytest.raises(ConfigError, match="body.units must be one of"):
        Recipe.from_dict({"body": {"mesh": "b.obj", "units": "inch"}})
