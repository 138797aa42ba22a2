"""Surface walk of displace_on_surface: numba kernel against its NumPy twin and geometry.

The twin (``surface._displace_on_surface_numpy``) re-locates every step by the exact
global closest point (grid + brute force); the kernel searches locally from the previous
step's triangle. With the same step semantics (``per_point_steps=True``) the two must
agree to rounding; the original batch-wide step count differs by sub-millimetre amounts.
"""

from __future__ import annotations

import numpy as np
import pytest

from cardiosim.errors import GeometryError
from cardiosim.geometry import (
    displace_on_surface,
    make_layout,
    make_sphere_mesh,
    make_torso,
)
from cardiosim.geometry._kernels import WalkTopology, surface_walk
from cardiosim.geometry.surface import STEP, _displace_on_surface_numpy, surface_normals


@pytest.fixture(scope="module")
def torso():
    return make_torso()


@pytest.fixture(scope="module")
def sphere():
    return make_sphere_mesh(0.1, 4)


def _walk_args(mesh, pos):
    start, tri, bary, _ = mesh.closest_point(pos)
    return (mesh.triangles, mesh.faces, mesh.vertex_normals, WalkTopology(mesh.vertices, mesh.faces), mesh.grid(),
            pos, start, tri, bary)


def _n_steps(mesh, pos, off):
    """Steps the walk takes per offset: ceil(tangential length / STEP) (independent count)."""
    _, tri, bary, _ = mesh.closest_point(pos)
    n = surface_normals(mesh, tri, bary)
    o_t = off - (off * n).sum(-1, keepdims=True) * n
    length = np.linalg.norm(o_t, axis=-1)
    return np.where(np.any(off != 0, axis=-1) & (length > 0), np.maximum(1, np.ceil(length / STEP)), 0)


# ------------------------------------------------------------------------------ topology
@pytest.mark.parametrize("which", ["sphere", "torso"])
def test_topology_adjacency_rings_and_altitudes(which, request):
    mesh = request.getfixturevalue(which)
    topo = WalkTopology(mesh.vertices, mesh.faces)
    f, m = mesh.faces, len(mesh.faces)
    adj = topo.adjacent
    assert adj.min() >= 0                                      # closed manifold: every edge paired
    for k in range(3):
        nb = adj[:, k]
        edge = np.sort(f[:, [(k + 1) % 3, (k + 2) % 3]], axis=1)
        # the neighbour holds both ends of the edge and points back across it
        assert np.all((f[nb] == edge[:, :1]).any(1) & (f[nb] == edge[:, 1:]).any(1))
        assert np.all((adj[nb] == np.arange(m)[:, None]).any(1))
    assert len(topo.ring_items) == 3 * m
    for v in range(0, len(mesh.vertices), 7):
        ring = topo.ring_items[topo.ring_start[v]:topo.ring_start[v + 1]]
        np.testing.assert_array_equal(np.sort(ring), np.nonzero((f == v).any(1))[0])
    # altitude k = distance from corner k to the line of the opposite edge
    t = mesh.triangles
    for k in range(3):
        a, b, c = t[:, k], t[:, (k + 1) % 3], t[:, (k + 2) % 3]
        e = (c - b) / np.linalg.norm(c - b, axis=1, keepdims=True)
        r = a - b
        ref = np.linalg.norm(r - (r * e).sum(1, keepdims=True) * e, axis=1)
        np.testing.assert_allclose(topo.altitude[:, k], ref, rtol=1e-10)


# ------------------------------------------------------------------------ kernel vs twin
@pytest.mark.parametrize("sd", [0.01, 0.04])
def test_kernel_matches_twin_with_same_step_semantics(torso, sd):
    """Local search == global closest point at every step, on a torso with valleys and ridges."""
    lay = make_layout("shirt12", torso)
    off = np.random.default_rng(7).normal(0.0, sd, (300, 9, 3))
    off[::17, 2] = 0.0                                         # some exactly-zero offsets
    fast = displace_on_surface(torso, lay.positions, off)
    twin = _displace_on_surface_numpy(torso, lay.positions, off, per_point_steps=True)
    assert np.abs(fast - twin).max() < 1e-9
    _, _, _, d = torso.closest_point(fast)
    assert d.max() < 1e-9                                      # every result lies on the mesh
    np.testing.assert_array_equal(fast[::17, 2], np.broadcast_to(lay.positions[2], (18, 3)))


def test_kernel_matches_original_twin_within_half_a_millimetre(torso):
    """The original twin walks every offset of a call in the batch-maximum step count."""
    lay = make_layout("shirt12", torso)
    off = np.random.default_rng(8).normal(0.0, 0.01, (200, 9, 3))
    fast = displace_on_surface(torso, lay.positions, off)
    twin = _displace_on_surface_numpy(torso, lay.positions, off)
    err = np.linalg.norm(fast - twin, axis=-1)
    assert err.max() < 5e-4
    # for a single offset the step counts coincide and so do the walks
    for k, i in [(0, 0), (5, 3), (17, 8), (101, 6)]:
        one = displace_on_surface(torso, lay.positions[i:i + 1], off[k, i:i + 1])
        np.testing.assert_allclose(one, _displace_on_surface_numpy(torso, lay.positions[i:i + 1],
                                                                    off[k, i:i + 1]), atol=1e-12)


def test_grid_fallback_reproduces_twin(torso):
    """With no local-search budget every step goes to the grid locator, and counts as such."""
    lay = make_layout("shirt12", torso)
    off = np.random.default_rng(9).normal(0.0, 0.015, (40, 9, 3))
    out, n_fb = surface_walk(*_walk_args(torso, lay.positions), off, STEP, max_iter=0)
    assert n_fb == int(_n_steps(torso, lay.positions, off).sum()) > 0
    twin = _displace_on_surface_numpy(torso, lay.positions, off, per_point_steps=True)
    assert np.abs(out - twin).max() < 1e-9
    _, n_fb_local = surface_walk(*_walk_args(torso, lay.positions), off, STEP)
    assert n_fb_local == 0


# --------------------------------------------------------------------------- geometry
def test_walk_on_sphere_follows_great_circle(sphere):
    """Analytic geodesic: from p along unit tangent d by arc L -> R (cos(L/R) p + sin(L/R) d)."""
    r = 0.1
    rng = np.random.default_rng(1)
    p = rng.normal(size=(40, 3))
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    d = rng.normal(size=(40, 3))
    d -= (d * p).sum(1, keepdims=True) * p
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    pos = sphere.closest_point(p * r)[0]
    for length in (0.004, 0.02, 0.07):
        out = displace_on_surface(sphere, pos, length * d)
        exact = r * (np.cos(length / r) * p + np.sin(length / r) * d)
        # faceting of the 4-times subdivided icosahedron (~6.6 mm edges) is ~0.1 mm
        assert np.linalg.norm(out - exact, axis=1).max() < 3e-4, length
        # a chord would land 0.85 cm short at 7 cm: the walk follows the curve
        if length == 0.07:
            assert np.linalg.norm(pos + length * d - exact, axis=1).min() > 5e-3


def test_batch_is_independent_of_its_other_offsets(torso):
    """Per-offset step counts: a batch equals the loop over its time steps bit for bit."""
    lay = make_layout("shirt12", torso)
    off = np.random.default_rng(10).normal(0.0, 0.01, (6, 9, 3))
    off[2] *= 4.0                                              # one long move in the batch
    batch = displace_on_surface(torso, lay.positions, off)
    for k in range(len(off)):
        np.testing.assert_array_equal(batch[k], displace_on_surface(torso, lay.positions, off[k]))
    # leading axes are just flattened
    np.testing.assert_array_equal(displace_on_surface(torso, lay.positions, off.reshape(2, 3, 9, 3)),
                                  batch.reshape(2, 3, 9, 3))


def test_held_offsets_reuse_the_previous_walk(torso):
    lay = make_layout("shirt12", torso)
    one = np.random.default_rng(11).normal(0.0, 0.01, (9, 3))
    held = np.broadcast_to(one, (5, 9, 3)).copy()
    out = displace_on_surface(torso, lay.positions, held)
    ref = displace_on_surface(torso, lay.positions, one)
    for k in range(5):
        np.testing.assert_array_equal(out[k], ref)


def test_normal_offset_is_discarded_and_bad_step_raises(torso):
    lay = make_layout("shirt12", torso)
    _, tri, bary, _ = torso.closest_point(lay.positions)
    n = surface_normals(torso, tri, bary)
    out = displace_on_surface(torso, lay.positions, 0.03 * n)
    start = torso.closest_point(lay.positions)[0]
    np.testing.assert_allclose(out, start, atol=1e-12)       # stays at the projected start
    for bad in (0.0, -0.001, np.nan):
        with pytest.raises(GeometryError, match="step"):
            displace_on_surface(torso, lay.positions, np.zeros((9, 3)), step=bad)
    with pytest.raises(GeometryError, match="matching positions"):
        displace_on_surface(torso, lay.positions, np.zeros((2, 8, 3)))


def test_walk_location_is_where_the_walked_point_lies(torso):
    """``return_location``: the same points, each the barycentric combination of its
    triangle's corners, and the BEM lead field read there equals the one found by a new
    closest-point search (``BEMModel.lead_field``) to rounding -- including zero and held
    offsets, whose location is the start point's."""
    from cardiosim.forward import make_bem_model

    lay = make_layout("shirt12", torso)
    rng = np.random.default_rng(7)
    off = rng.normal(0, 0.01, (6,) + lay.positions.shape)
    off[:, 0] = 0.0                    # an electrode that never moves
    off[3:, 1] = off[2, 1]             # a held offset
    plain = displace_on_surface(torso, lay.positions, off)
    out, tri, bary = displace_on_surface(torso, lay.positions, off, return_location=True)
    np.testing.assert_array_equal(out, plain)
    assert tri.shape == off.shape[:-1] and bary.shape == off.shape
    corners = torso.triangles[tri]                                       # [..., 3 corners, 3]
    moved = np.any(off != 0, axis=-1)
    np.testing.assert_allclose(np.einsum("...k,...kj->...j", bary, corners)[moved], out[moved], rtol=0, atol=1e-12)
    np.testing.assert_allclose(bary.sum(-1), 1.0, rtol=0, atol=1e-12)
    bem = make_bem_model(torso)
    at = bem.lead_field_at(tri.reshape(-1), bary.reshape(-1, 3))
    searched = bem.lead_field(out.reshape(-1, 3))
    assert np.max(np.abs(at - searched)) <= 1e-9 * np.max(np.abs(searched))


def test_lead_field_at_refuses_bad_locations(torso):
    from cardiosim.forward import make_bem_model

    bem = make_bem_model(torso)
    with pytest.raises(GeometryError, match="triangle index out of range"):
        bem.lead_field_at(np.array([len(torso.faces)]), np.array([[1.0, 0.0, 0.0]]))
    with pytest.raises(GeometryError, match="NaN"):
        bem.lead_field_at(np.array([0]), np.array([[np.nan, 0.5, 0.5]]))
    with pytest.raises(GeometryError, match=r"tri must be \(n,\)"):
        bem.lead_field_at(np.array([0, 1]), np.array([[1.0, 0.0, 0.0]]))


# ------------------------------------------------------------------ written-out search = calls
@pytest.mark.parametrize("which", ["sphere", "torso"])
@pytest.mark.parametrize("max_iter", [64, 3, 1, 0])
def test_walk_kernel_is_the_walk_with_locate_calls_bit_for_bit(which, max_iter, request):
    """_surface_walk_kernel writes _locate_local/_greedy_locate out in its step loop (their
    NRT reference counting cost more than the search): same points, triangles, barycentric
    coordinates and fallback count as _surface_walk_calls_kernel, bit for bit -- small and
    long walks, held and zero offsets, tight budgets that end in the grid fallback."""
    mesh = request.getfixturevalue(which)
    rng = np.random.default_rng(17)
    if which == "torso":
        pos = make_layout("shirt12", mesh).positions
    else:
        pos = mesh.closest_point(rng.normal(0, 1, (9, 3)) / 10.0)[0]
    off = rng.normal(0, 1, (60,) + pos.shape) * np.exp(rng.uniform(np.log(1e-4), np.log(0.06), (60, len(pos), 1)))
    off[5] = 0.0
    off[7] = off[6]                                   # held trajectory
    off[9, 2] = 0.0
    args = _walk_args(mesh, pos)
    new = surface_walk(*args, off, STEP, max_iter=max_iter, locate=True)
    ref = surface_walk(*args, off, STEP, max_iter=max_iter, locate=True, _calls=True)
    for a, b in zip(new, ref):
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()
    if max_iter <= 1:
        assert new[1] > 0                             # the fallback path ran


def test_start_locations_are_remembered_per_torso_and_positions(torso, sphere):
    """displace_on_surface remembers the closest surface points of the last few position sets
    (a garment's layout positions recur every record): the same arrays as a fresh search, a
    hit for equal positions given as a new array, and separate entries per torso."""
    from cardiosim.geometry import surface as su

    pos = make_layout("shirt12", torso).positions
    start, tri, bary, _ = torso.closest_point(pos, max_distance=su.ON_SURFACE_TOL)
    got = su._start_on_surface(torso, np.array(pos))
    assert got[0].tobytes() == start.tobytes() and got[1].tobytes() == tri.tobytes()
    assert got[2].tobytes() == bary.tobytes()
    assert su._start_on_surface(torso, pos.copy()) is got                 # equal values: remembered
    others = [pos + [0.0, 0.0, 0.001 * (k + 1)] for k in range(su._STARTS_SIZE)]
    for p in others:
        su._start_on_surface(torso, p)
    assert su._start_on_surface(torso, pos.copy()) is not got             # pushed out, searched again
    on_sphere = sphere.closest_point(pos[:3] / np.linalg.norm(pos[:3], axis=1, keepdims=True) * 0.1)[0]
    assert su._start_on_surface(sphere, on_sphere)[1].tobytes() == sphere.closest_point(on_sphere)[1].tobytes()
    rng = np.random.default_rng(3)
    off = rng.normal(0, 0.005, (20,) + pos.shape)
    a = displace_on_surface(torso, pos, off, return_location=True)
    b = displace_on_surface(torso, pos.copy(), off, return_location=True)     # from the remembered start
    for x, y in zip(a, b):
        assert x.tobytes() == y.tobytes()
    with pytest.raises(GeometryError):
        su._start_on_surface(torso, pos + [0.0, 0.5, 0.0])                    # off the torso: raises, not kept


# ------------------------------------------------------------------ mean along a trajectory
@pytest.mark.filterwarnings("ignore:Mean of empty slice", "ignore:invalid value encountered")
@pytest.mark.parametrize("shape", [(251, 9, 3), (1, 9, 3), (2, 1, 3), (5000, 4, 3), (7, 3), (3,), (0, 9, 3)])
def test_trajectory_mean_is_numpys_mean_bit_for_bit(shape):
    from cardiosim.geometry._kernels import trajectory_mean

    rng = np.random.default_rng(len(shape) * 100 + shape[0])
    x = rng.standard_normal(shape) * np.exp(rng.uniform(-30, 30, shape))   # the order of additions shows
    if x.size:
        x.reshape(shape[0], -1)[:, 0] = -0.0          # a column of -0.0: NumPy's sum starts at 0.0
        x.flat[-1] = np.inf if x.size > 3 else x.flat[-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        want = x.mean(axis=0)
        got = trajectory_mean(x)
        assert np.asarray(got).tobytes() == np.asarray(want).tobytes() and np.shape(got) == np.shape(want)
        strided = np.asarray(x)[::-1] if x.ndim > 1 else x
        assert np.asarray(trajectory_mean(strided)).tobytes() == np.asarray(strided.mean(axis=0)).tobytes()
        x32 = x.astype(np.float32)
        assert np.asarray(trajectory_mean(x32)).tobytes() == np.asarray(x32.mean(axis=0)).tobytes()
