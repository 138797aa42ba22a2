"""Closed organ surfaces inside a torso (lungs), and the checks of nested conductor surfaces.

The inhomogeneous (multi-compartment) BEM of :mod:`cardiosim.forward.multilayer` needs
closed surfaces that do not intersect: each one either lies strictly inside another or
strictly outside it. :func:`surface_nesting` works out that tree (or raises
:class:`~cardiosim.errors.GeometryError` naming the two surfaces that cross), and
:func:`check_organs` checks organs against their torso with a clearance.

Lungs (:func:`make_lungs`) are two ellipsoids, left and right of the heart. They are the
standard first inhomogeneity of a torso volume conductor: about 0.05 S/m against 0.2 S/m
for the rest of the torso (PHYSICS.md section 4).

Lung size, stated assumptions. Adult lungs are about 24 cm long cranio-caudally in
inspiration; the right lung holds about 55 % of the total volume and the left 45 % (the
heart takes room on the left); total lung volume is about 6.3 l at total lung capacity in
adult men and about half of that at end-expiration (surface anatomy and size summaries
of "The Common Vein", lungs; Loyola University chest X-ray atlas, lung size proportion).
The default ellipsoids of the reference torso (chest 0.34 x 0.25 m, shoulders 18.5 cm
above the heart centre) have semi-axes 5.5 x 7.8 x 11.5 cm (right) and 5.0 x 6.8 x 11.5 cm
(left): 23 cm long, 2.07 l + 1.64 l = 3.7 l (56 % / 44 %), a mid-respiration volume.
Their centres sit 8.5 cm right / 9.5 cm left of the body axis, 0.5 / 2.5 cm posterior
(the mediastinum and the heart are anterior), 3 cm above the heart centre, so that the
apices reach about 14.5 cm above it (above the clavicles, as the apices do) and the bases
about 8.5 cm below it (between the diaphragm dome at the xiphoid level and the posterior
costophrenic recesses). Every length scales with the torso's half-width, half-depth and
height above the heart (measured on the mesh), so a smaller torso gets smaller lungs.
Ellipsoids are a simplification: no cardiac notch, no sloping diaphragmatic base.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import GeometryError
from .mesh import TorsoMesh, make_sphere_mesh

#: Reference torso measured from the heart centre (default make_torso()): half-width and
#: half-depth of the horizontal section through the heart centre, height of the top of the
#: shoulders above it (m). Lung lengths below are for this torso and scale with it.
_REF_HALF_WIDTH = 0.167
_REF_HALF_DEPTH = 0.124
_REF_TOP = 0.185


@dataclass(frozen=True)
class LungParams:
    """Ellipsoidal lungs, in metres, for the reference torso (module docstring).

    Centres are relative to the centre of the horizontal torso section through the heart
    centre (x left, y posterior, z up, LPS); semi-axes are along x, y, z. Both scale with
    the torso's measured half-width (x), half-depth (y) and height above the heart (z).

    Attributes
    ----------
    right_center, left_center : (3,) m
    right_semi_axes, left_semi_axes : (3,) m
    min_torso_clearance : float, m
        Smallest allowed distance from a lung vertex to the torso surface (the chest wall,
        ribs and intercostal muscles are 1.5-3 cm thick; 1 cm leaves room for coarse meshes).
    min_heart_clearance : float, m
        Smallest allowed distance from the heart centre (the ventricular centroid, the
        dipole) to a lung surface: about the outer short-axis radius of the ventricles
        (2.5-3 cm; the default lungs leave 3.3 cm in the male and 2.8 cm in the female torso).
    min_gap : float, m
        Smallest allowed distance between the two lungs (the mediastinum lies between).
    """

    right_center: tuple[float, float, float] = (-0.085, 0.005, 0.03)
    right_semi_axes: tuple[float, float, float] = (0.055, 0.078, 0.115)
    left_center: tuple[float, float, float] = (0.095, 0.025, 0.03)
    left_semi_axes: tuple[float, float, float] = (0.050, 0.068, 0.115)
    min_torso_clearance: float = 0.01
    min_heart_clearance: float = 0.025
    min_gap: float = 0.02


def make_ellipsoid_mesh(center, semi_axes, subdivisions: int = 2, name: str = "ellipsoid") -> TorsoMesh:
    """Closed ellipsoid surface: an icosphere (``20 * 4**subdivisions`` triangles) scaled by
    ``semi_axes`` (3,) m and moved to ``center`` (3,) m; outward normals."""
    ax = np.asarray(semi_axes, dtype=np.float64)
    c = np.asarray(center, dtype=np.float64)
    if ax.shape != (3,) or not np.all(np.isfinite(ax)) or np.any(ax <= 0):
        raise GeometryError(f"{name}: semi-axes must be three positive lengths in metres, got {semi_axes!r}")
    if c.shape != (3,) or not np.all(np.isfinite(c)):
        raise GeometryError(f"{name}: center must be a finite 3-vector in metres, got {center!r}")
    unit = make_sphere_mesh(1.0, subdivisions)
    return TorsoMesh(unit.vertices * ax + c, unit.faces, name=name, landmarks={"center": c})


def _torso_frame(torso: TorsoMesh):
    """Centre of the horizontal section through the heart, half-width, half-depth, top height."""
    if torso.heart is None:
        raise GeometryError(f"torso {torso.name!r} has no heart; lungs are placed relative to the heart centre")
    h = torso.heart.position
    hits = {}
    for key, d in (("+x", (1, 0, 0)), ("-x", (-1, 0, 0)), ("+y", (0, 1, 0)), ("-y", (0, -1, 0))):
        hit = torso.ray_hit(h, np.asarray(d, dtype=float))
        if hit is None:
            raise GeometryError(f"torso {torso.name!r}: the horizontal ray {key} from the heart centre misses the "
                                "surface (is the heart inside?)")
        hits[key] = hit
    cx = 0.5 * (hits["+x"][0] + hits["-x"][0])
    cy = 0.5 * (hits["+y"][1] + hits["-y"][1])
    half_w = 0.5 * (hits["+x"][0] - hits["-x"][0])
    half_d = 0.5 * (hits["+y"][1] - hits["-y"][1])
    top = float(torso.vertices[:, 2].max() - h[2])
    return np.array([cx, cy, h[2]]), half_w, half_d, top


def _lung_subdivisions(semi_axes, edge_length: float) -> int:
    # Mean edge of an icosphere of radius 1: about 1.1 / 2**s; scaled by the mean semi-axis.
    r = float(np.mean(semi_axes))
    s = int(np.clip(np.ceil(np.log2(1.1 * r / edge_length)), 1, 5))
    return s


def make_lungs(torso: TorsoMesh, params: LungParams | None = None, *, edge_length: float | None = None,
               subdivisions: int | None = None) -> tuple[TorsoMesh, TorsoMesh]:
    """Two closed ellipsoidal lungs (right, left) inside ``torso``, scaled to its size.

    Parameters
    ----------
    torso : TorsoMesh
        Must have a heart; the lungs are placed about the centre of the torso's horizontal
        section through the heart centre (module docstring for the sizes and sources).
    params : LungParams, optional
    edge_length : float, optional
        Target mean edge (m) of the lung meshes; default the torso's mean edge.
    subdivisions : int, optional
        Icosphere subdivisions of each lung (overrides ``edge_length``): 2 -> 320
        triangles, 3 -> 1,280.

    Returns
    -------
    (right, left) : TorsoMesh, TorsoMesh
        Named ``lung_right`` / ``lung_left``, no heart, landmark ``center``.

    Raises
    ------
    GeometryError
        If a lung comes closer than ``params.min_torso_clearance`` to the torso surface or
        leaves it, closer than ``min_heart_clearance`` to the heart centre, or closer than
        ``min_gap`` to the other lung (:func:`check_organs`).
    """
    p = params or LungParams()
    c0, half_w, half_d, top = _torso_frame(torso)
    scale = np.array([half_w / _REF_HALF_WIDTH, half_d / _REF_HALF_DEPTH, top / _REF_TOP])
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise GeometryError(f"torso {torso.name!r}: cannot measure its size about the heart (scale {scale})")
    h = float(edge_length) if edge_length is not None else torso.mean_edge
    lungs = []
    for side in ("right", "left"):
        center = c0 + np.asarray(getattr(p, f"{side}_center"), dtype=float) * scale
        axes = np.asarray(getattr(p, f"{side}_semi_axes"), dtype=float) * scale
        sub = _lung_subdivisions(axes, h) if subdivisions is None else int(subdivisions)
        lungs.append(make_ellipsoid_mesh(center, axes, sub, name=f"lung_{side}"))
    check_organs(torso, lungs, margin=p.min_torso_clearance, gap=p.min_gap)
    heart = torso.heart.position
    for lung in lungs:
        _, _, _, d = lung.closest_point(heart[None])
        if bool(lung.contains(heart[None])[0]):
            raise GeometryError(f"{lung.name}: the heart centre {heart.tolist()} m lies inside the lung")
        if d[0] < p.min_heart_clearance:
            raise GeometryError(f"{lung.name}: the heart centre {heart.tolist()} m is {d[0] * 100:.1f} cm from the "
                                f"lung surface (need {p.min_heart_clearance * 100:.1f} cm)")
    return lungs[0], lungs[1]


# ------------------------------------------------------------------------------ checks
def _edges(faces: np.ndarray) -> np.ndarray:
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    return np.unique(np.sort(e, axis=1), axis=0)


def edges_cross_triangles(a: TorsoMesh, b: TorsoMesh, chunk: int = 256) -> bool:
    """True if an edge of ``a`` passes through a triangle of ``b`` (Möller & Trumbore 1997).

    Together with the vertex-inside tests of :func:`surface_nesting` this detects any
    intersection of two closed triangle surfaces (two crossing surfaces always have an edge
    of one through a triangle of the other).
    """
    e = _edges(a.faces)
    p0 = a.vertices[e[:, 0]]
    seg = a.vertices[e[:, 1]] - p0
    t = b.triangles
    lo, hi = t.min(axis=1), t.max(axis=1)
    e1, e2 = t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]
    eps = 1e-12
    for s in range(0, len(e), chunk):
        q0, d = p0[s:s + chunk, None], seg[s:s + chunk, None]
        q1 = q0 + d
        box = np.all((np.minimum(q0, q1) <= hi[None]) & (np.maximum(q0, q1) >= lo[None]), axis=-1)
        ei, ti = np.nonzero(box)
        if len(ei) == 0:
            continue
        dd = d[ei, 0]
        oo = q0[ei, 0]
        h = np.cross(dd, e2[ti])
        det = (e1[ti] * h).sum(1)
        ok = np.abs(det) > eps * np.linalg.norm(e1[ti], axis=1) * np.linalg.norm(e2[ti], axis=1) \
            * np.linalg.norm(dd, axis=1)
        inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
        sv = oo - t[ti, 0]
        u = inv * (sv * h).sum(1)
        q = np.cross(sv, e1[ti])
        v = inv * (dd * q).sum(1)
        w = inv * (e2[ti] * q).sum(1)
        hit = ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (w >= 0) & (w <= 1)
        if np.any(hit):
            return True
    return False


def surface_nesting(surfaces) -> np.ndarray:
    """Parent of each closed surface in a set of non-intersecting nested surfaces.

    Parameters
    ----------
    surfaces : sequence of TorsoMesh

    Returns
    -------
    ndarray (K,) int64: index of the smallest surface that encloses surface k, -1 for a
    surface that no other encloses.

    Raises
    ------
    GeometryError
        If two surfaces intersect (some vertices of one inside the other and some outside,
        or an edge of one through a triangle of the other).
    """
    k = len(surfaces)
    inside = np.zeros((k, k), dtype=bool)      # inside[i, j]: surface i lies inside surface j
    for i in range(k):
        for j in range(k):
            if i == j:
                continue
            flags = surfaces[j].contains(surfaces[i].vertices)
            n_in = int(flags.sum())
            if 0 < n_in < len(flags):
                raise GeometryError(f"surfaces {surfaces[i].name!r} and {surfaces[j].name!r} intersect: "
                                    f"{n_in} of the {len(flags)} vertices of {surfaces[i].name!r} are inside "
                                    f"{surfaces[j].name!r} and the others outside")
            inside[i, j] = n_in == len(flags)
    for i in range(k):
        for j in range(i + 1, k):
            if inside[i, j] and inside[j, i]:
                raise GeometryError(f"surfaces {surfaces[i].name!r} and {surfaces[j].name!r} each lie inside "
                                    "the other: they coincide or cross")
            if edges_cross_triangles(surfaces[i], surfaces[j]) or edges_cross_triangles(surfaces[j], surfaces[i]):
                raise GeometryError(f"surfaces {surfaces[i].name!r} and {surfaces[j].name!r} intersect: an edge "
                                    "of one passes through a triangle of the other")
    parents = np.full(k, -1, dtype=np.int64)
    for i in range(k):
        enclosing = np.nonzero(inside[i])[0]
        if len(enclosing):
            # The innermost enclosing surface is the one enclosed by all the others.
            parents[i] = max(enclosing, key=lambda j: int(inside[j, enclosing].sum()))
    return parents


def check_organs(torso: TorsoMesh, organs, margin: float = 0.005, gap: float = 0.0) -> None:
    """Raise :class:`GeometryError` unless every organ lies inside ``torso`` at least
    ``margin`` m from its surface and the organs neither intersect nor nest, at least ``gap``
    m apart."""
    organs = list(organs)
    parents = surface_nesting([torso, *organs])
    for k, organ in enumerate(organs, start=1):
        if parents[k] != 0:
            where = "outside the torso" if parents[k] < 0 else f"inside {organs[parents[k] - 1].name!r}"
            raise GeometryError(f"{organ.name!r} lies {where}; each organ must lie inside the torso "
                                f"{torso.name!r} and outside the other organs")
        _, _, _, d = torso.closest_point(organ.vertices)
        if d.min() < margin:
            i = int(np.argmin(d))
            raise GeometryError(f"{organ.name!r} comes within {d[i] * 1000:.1f} mm of the surface of "
                                f"{torso.name!r} at {organ.vertices[i].tolist()} m (need {margin * 1000:.1f} mm)")
    for a in range(len(organs)):
        for b in range(a + 1, len(organs)):
            _, _, _, d = organs[b].closest_point(organs[a].vertices)
            if gap > 0 and d.min() < gap:
                raise GeometryError(f"{organs[a].name!r} and {organs[b].name!r} are {d.min() * 1000:.1f} mm apart "
                                    f"(need {gap * 1000:.1f} mm)")
