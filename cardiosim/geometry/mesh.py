"""Closed triangle surfaces in the patient LPS frame: the torso mesh, its checks, queries.

A :class:`TorsoMesh` is a closed, consistently oriented triangle surface (outward normals,
faces counter-clockwise seen from outside) in metres, with named anatomical landmarks and
a :class:`Heart`. Everything that builds one goes through :func:`check_surface`, which
raises :class:`~cardiosim.errors.GeometryError` naming the problem: open mesh (boundary
edges), non-manifold or inconsistently oriented edges, inverted normals (negative
enclosed volume), total solid angle not 4 pi from inside, millimetre coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import GeometryError
from ._kernels import TriangleGrid, closest_point_brute_numpy, solid_angle_sum

#: Hoekema et al., J Electrocardiol 1999 (PHYSICS.md section 2): the long axis of the
#: heart (base -> apex) makes 27 +- 9 deg with the transverse plane and 38 +- 5 deg with
#: the frontal plane; apex toward the patient's left, anterior and inferior.
HEART_AXIS_TRANSVERSE_DEG = (27.0, 9.0)
HEART_AXIS_FRONTAL_DEG = (38.0, 5.0)


def heart_long_axis(transverse_deg: float = 27.0, frontal_deg: float = 38.0) -> np.ndarray:
    """Unit base->apex vector (LPS) at the given angles to the transverse and frontal planes."""
    st, sf = np.sin(np.deg2rad(transverse_deg)), np.sin(np.deg2rad(frontal_deg))
    rest = 1.0 - st ** 2 - sf ** 2
    if rest < 0:
        raise GeometryError(f"heart axis angles transverse={transverse_deg} deg, frontal={frontal_deg} deg "
                            "are impossible together (sin^2 sum exceeds 1)")
    return np.array([np.sqrt(rest), -sf, -st])


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest rotation taking unit vector a to unit vector b."""
    v = np.cross(a, b)
    c = float(np.dot(a, b))
    if np.linalg.norm(v) < 1e-15:
        if c > 0:
            return np.eye(3)
        raise GeometryError("cannot rotate the heart axis onto its opposite")
    k = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + k + k @ k / (1.0 + c)


def heart_rotation(transverse_deg: float = 27.0, frontal_deg: float = 38.0, roll_deg: float = 0.0) -> np.ndarray:
    """Rotation (3, 3) turning the reference heart (Hoekema mean axis) into one whose long
    axis lies at ``transverse_deg`` / ``frontal_deg`` and is rolled by ``roll_deg`` about itself.

    The dipole of a source is expressed in the frame of the reference heart, so the torso
    dipole is ``orientation @ p_heart``; the mean angles give the identity.
    """
    a0 = heart_long_axis(*[HEART_AXIS_TRANSVERSE_DEG[0], HEART_AXIS_FRONTAL_DEG[0]])
    a1 = heart_long_axis(transverse_deg, frontal_deg)
    r = _rotation_between(a0, a1)
    if roll_deg:
        from ..frames import rotation_matrix
        r = rotation_matrix(a1, np.deg2rad(roll_deg)) @ r
    return r


@dataclass(frozen=True, eq=False)
class Heart:
    """Heart position and orientation in the torso frame.

    Attributes
    ----------
    position : ndarray, shape (3,), metres (LPS)
        Centre of the heart, where the equivalent dipole sits.
    orientation : ndarray, shape (3, 3)
        Rotation heart frame -> torso frame: ``p_torso = orientation @ p_heart``. The heart
        frame is that of the reference heart (long axis at the Hoekema 1999 means, see
        :func:`heart_long_axis`), so the identity is a typical heart.
    """

    position: np.ndarray
    orientation: np.ndarray = field(default_factory=lambda: np.eye(3))

    def __post_init__(self):
        pos = np.asarray(self.position, dtype=np.float64)
        rot = np.asarray(self.orientation, dtype=np.float64)
        if pos.shape != (3,) or not np.all(np.isfinite(pos)):
            raise GeometryError(f"heart position must be a finite 3-vector in metres, got {self.position!r}")
        if rot.shape != (3, 3) or not np.allclose(rot @ rot.T, np.eye(3), atol=1e-9) or np.linalg.det(rot) < 0:
            raise GeometryError(f"heart orientation must be a proper 3x3 rotation matrix, got {self.orientation!r}")
        pos.setflags(write=False)
        rot.setflags(write=False)
        object.__setattr__(self, "position", pos)
        object.__setattr__(self, "orientation", rot)

    @property
    def long_axis(self) -> np.ndarray:
        """Unit base->apex direction in the torso frame."""
        return self.orientation @ heart_long_axis()

    def rotate_dipole(self, p_heart: np.ndarray) -> np.ndarray:
        """Dipole ``[3, ...]`` in the heart frame -> torso frame (A·m)."""
        return np.tensordot(self.orientation, np.asarray(p_heart, dtype=np.float64), axes=(1, 0))


@dataclass(frozen=True, eq=False)
class TorsoMesh:
    """A closed torso surface with landmarks and a heart.

    Attributes
    ----------
    vertices : ndarray, shape (n, 3), float64, metres, LPS
        The origin is documented per torso; for :func:`cardiosim.geometry.make_torso` it is
        on the body axis at the level of the heart centre.
    faces : ndarray, shape (m, 3), int64
        Counter-clockwise seen from outside (outward normals).
    name : str
    landmarks : dict of str -> ndarray (3,), metres
        Named anatomical points on (or, for ``body_axis``, inside) the surface.
    heart : Heart
    """

    vertices: np.ndarray
    faces: np.ndarray
    name: str = "torso"
    landmarks: dict = field(default_factory=dict)
    heart: Heart | None = None
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self):
        v = np.ascontiguousarray(self.vertices, dtype=np.float64)
        f = np.ascontiguousarray(self.faces, dtype=np.int64)
        check_surface(v, f, name=self.name)
        v.setflags(write=False)
        f.setflags(write=False)
        object.__setattr__(self, "vertices", v)
        object.__setattr__(self, "faces", f)
        lm = {}
        for k, p in dict(self.landmarks).items():
            p = np.asarray(p, dtype=np.float64)
            if p.shape != (3,) or not np.all(np.isfinite(p)):
                raise GeometryError(f"{self.name}: landmark {k!r} must be a finite 3-vector, got {p!r}")
            p.setflags(write=False)
            lm[k] = p
        object.__setattr__(self, "landmarks", lm)
        if self.heart is not None:
            heart = self.heart if isinstance(self.heart, Heart) else Heart(**self.heart)
            object.__setattr__(self, "heart", heart)
            check_inside(self, heart.position, what="heart")

    # -------------------------------------------------------------- derived data (cached)
    @property
    def triangles(self) -> np.ndarray:
        """Corner coordinates, shape (m, 3, 3)."""
        if "tri" not in self._cache:
            t = self.vertices[self.faces]
            t.setflags(write=False)
            self._cache["tri"] = t
        return self._cache["tri"]

    @property
    def face_normals(self) -> np.ndarray:
        """Unit outward normals, shape (m, 3)."""
        if "fn" not in self._cache:
            t = self.triangles
            n = np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0])
            self._cache["fa"] = 0.5 * np.linalg.norm(n, axis=1)
            self._cache["fn"] = n / (2 * self._cache["fa"][:, None])
        return self._cache["fn"]

    @property
    def face_areas(self) -> np.ndarray:
        """Triangle areas, shape (m,), m^2."""
        _ = self.face_normals  # fills the area cache
        return self._cache["fa"]

    @property
    def vertex_normals(self) -> np.ndarray:
        """Area-weighted unit vertex normals, shape (n, 3)."""
        if "vn" not in self._cache:
            acc = np.zeros_like(self.vertices)
            w = self.face_normals * self.face_areas[:, None]
            for k in range(3):
                np.add.at(acc, self.faces[:, k], w)
            self._cache["vn"] = acc / np.linalg.norm(acc, axis=1, keepdims=True)
        return self._cache["vn"]

    @property
    def mean_edge(self) -> float:
        t = self.triangles
        return float(np.linalg.norm(t - np.roll(t, 1, axis=1), axis=2).mean())

    def grid(self, reach: float | None = None) -> TriangleGrid:
        """Closest-point search structure (cached); exact within ``reach`` (default 2 cm)."""
        reach = 0.02 if reach is None else float(reach)
        key = ("grid", reach)
        if key not in self._cache:
            self._cache[key] = TriangleGrid(self.triangles, reach)
        return self._cache[key]

    def closest_point(self, points: np.ndarray, max_distance: float | None = None):
        """Closest surface point, triangle and barycentric coordinates for ``points (..., 3)``.

        Parameters
        ----------
        points : ndarray, shape (..., 3), metres
        max_distance : float, optional
            Raise :class:`GeometryError` for points farther than this from the surface.

        Returns
        -------
        projected : ndarray (..., 3); tri : ndarray (...,) int64; bary : ndarray (..., 3);
        dist : ndarray (...,) metres
        """
        pts = np.asarray(points, dtype=np.float64)
        if pts.shape[-1:] != (3,):
            raise GeometryError(f"points must have shape (..., 3) in metres, got {pts.shape}")
        if not np.all(np.isfinite(pts)):
            raise GeometryError("points contain NaN or infinite coordinates")
        flat = pts.reshape(-1, 3)
        tri, bary, dist = self.grid().query(flat)
        miss = tri < 0
        if np.any(miss):
            t2, b2, d2 = closest_point_brute_numpy(flat[miss], self.triangles)
            tri[miss], bary[miss], dist[miss] = t2, b2, d2
        if max_distance is not None and np.any(dist > max_distance):
            i = int(np.argmax(dist))
            raise GeometryError(f"{self.name}: point {flat[i].tolist()} is {dist[i] * 100:.1f} cm from the "
                                f"surface (allowed {max_distance * 100:.1f} cm): electrode off the torso")
        proj = np.einsum("nk,nkj->nj", bary, self.triangles[tri])
        lead = pts.shape[:-1]
        return proj.reshape(pts.shape), tri.reshape(lead), bary.reshape(lead + (3,)), dist.reshape(lead)

    def contains(self, points: np.ndarray) -> np.ndarray:
        """True for points strictly inside the surface (solid angle ~ 4 pi)."""
        om = solid_angle_sum(np.asarray(points, dtype=np.float64).reshape(-1, 3), self.triangles)
        return om > 2 * np.pi

    def ray_hit(self, origin: np.ndarray, direction: np.ndarray) -> np.ndarray | None:
        """Farthest intersection of the ray ``origin + s direction, s > 0`` with the surface.

        Möller & Trumbore (1997) over all triangles. Returns None if the ray misses.
        """
        o = np.asarray(origin, dtype=np.float64)
        d = np.asarray(direction, dtype=np.float64)
        d = d / np.linalg.norm(d)
        t = self.triangles
        e1, e2 = t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]
        h = np.cross(d, e2)
        a = (e1 * h).sum(1)
        ok = np.abs(a) > 1e-14
        f = np.zeros_like(a)
        f[ok] = 1.0 / a[ok]
        s = o - t[:, 0]
        u = f * (s * h).sum(1)
        q = np.cross(s, e1)
        v = f * (q @ d)
        dist = f * (e2 * q).sum(1)
        eps = 1e-12
        hit = ok & (u >= -eps) & (v >= -eps) & (u + v <= 1 + eps) & (dist > 0)
        if not np.any(hit):
            return None
        return o + dist[hit].max() * d


# --------------------------------------------------------------------------------- checks
def check_surface(vertices: np.ndarray, faces: np.ndarray, name: str = "surface") -> None:
    """Raise :class:`GeometryError` unless ``(vertices, faces)`` is a closed, outward,
    consistently oriented triangle surface in metres.

    Checks, in order: shapes and finiteness; face indices in range; degenerate triangles;
    metres (largest extent between 1 cm and 10 m -- a torso in millimetres is 300-700
    units wide); every directed edge used once and its reverse once (closed, manifold,
    consistently oriented); positive enclosed volume (outward normals); total solid angle
    4 pi from an interior point (van Oosterom & Strackee 1983).
    """
    v, f = vertices, faces
    if v.ndim != 2 or v.shape[1] != 3 or len(v) < 4:
        raise GeometryError(f"{name}: vertices must have shape (n>=4, 3), got {v.shape}")
    if f.ndim != 2 or f.shape[1] != 3 or len(f) < 4:
        raise GeometryError(f"{name}: faces must have shape (m>=4, 3), got {f.shape}")
    if not np.all(np.isfinite(v)):
        raise GeometryError(f"{name}: vertices contain NaN or infinite coordinates")
    if f.min() < 0 or f.max() >= len(v):
        raise GeometryError(f"{name}: face indices must lie in [0, {len(v) - 1}], got [{f.min()}, {f.max()}]")
    extent = float((v.max(0) - v.min(0)).max())
    if extent > 10.0:
        raise GeometryError(f"{name}: largest extent is {extent:g} -- coordinates look like millimetres; "
                            "cardiosim needs metres (divide by 1000)")
    if extent < 0.01:
        raise GeometryError(f"{name}: largest extent is {extent:g} m -- too small for a body; wrong units?")
    t = v[f]
    cr = np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0])
    area2 = np.linalg.norm(cr, axis=1)
    if np.any(area2 <= 1e-12 * extent ** 2):
        i = int(np.argmin(area2))
        raise GeometryError(f"{name}: face {i} {f[i].tolist()} is degenerate (zero area)")
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    n = len(v)
    key = e[:, 0] * n + e[:, 1]
    uniq, counts = np.unique(key, return_counts=True)
    if np.any(counts > 1):
        k = uniq[counts > 1][0]
        raise GeometryError(f"{name}: edge ({k // n}, {k % n}) is used twice in the same direction -- "
                            "faces are not consistently oriented (or the mesh is non-manifold)")
    rev = e[:, 1] * n + e[:, 0]
    missing = ~np.isin(rev, uniq)
    if np.any(missing):
        k = int(np.argmax(missing))
        raise GeometryError(f"{name}: open mesh -- {int(missing.sum())} boundary edges, e.g. "
                            f"({e[k, 0]}, {e[k, 1]}); the surface must be closed (watertight)")
    volume = float(np.einsum("ij,ij->i", t[:, 0], np.cross(t[:, 1], t[:, 2])).sum() / 6.0)
    if volume <= 0:
        raise GeometryError(f"{name}: enclosed volume is {volume:.4g} m^3 (negative) -- inverted normals; "
                            "faces must be counter-clockwise seen from outside (swap two columns of faces)")
    # The volume centroid of a torso-like body is inside it; the solid angle there is 4 pi.
    centroid = (np.einsum("ij,ij->i", t[:, 0], np.cross(t[:, 1], t[:, 2]))[:, None] * t.sum(1)).sum(0) / (24 * volume)
    omega = float(solid_angle_sum(centroid[None], np.ascontiguousarray(t))[0])
    if abs(omega - 4 * np.pi) > 1e-6:
        raise GeometryError(f"{name}: total solid angle from the interior is {omega:.6f} sr, not 4 pi "
                            "-- the surface is not closed or intersects itself")


def check_inside(torso: TorsoMesh, point: np.ndarray, what: str = "point", margin: float = 0.005) -> None:
    """Raise :class:`GeometryError` unless ``point`` lies inside ``torso`` by ``margin`` metres."""
    p = np.asarray(point, dtype=np.float64)
    if not bool(torso.contains(p[None])[0]):
        raise GeometryError(f"{torso.name}: {what} at {p.tolist()} m is outside the torso surface")
    _, _, _, d = torso.closest_point(p[None])
    if d[0] < margin:
        raise GeometryError(f"{torso.name}: {what} at {p.tolist()} m is only {d[0] * 1000:.1f} mm inside the "
                            f"surface (need {margin * 1000:.0f} mm)")


# ------------------------------------------------------------------------------- builders
def _icosahedron():
    t = (1.0 + 5 ** 0.5) / 2.0
    v = np.array([[-1, t, 0], [1, t, 0], [-1, -t, 0], [1, -t, 0], [0, -1, t], [0, 1, t], [0, -1, -t], [0, 1, -t],
                  [t, 0, -1], [t, 0, 1], [-t, 0, -1], [-t, 0, 1]], dtype=float)
    f = np.array([[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4], [11, 10, 2],
                  [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8], [3, 8, 9], [4, 9, 5],
                  [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]], dtype=np.int64)
    return v / np.linalg.norm(v, axis=1, keepdims=True), f


def make_sphere_mesh(radius: float = 0.1, subdivisions: int = 3, center=(0.0, 0.0, 0.0)) -> TorsoMesh:
    """Icosphere of ``20 * 4**subdivisions`` triangles (3 -> 1,280; 4 -> 5,120), vertices on the sphere.

    Parameters
    ----------
    radius : float, metres
    subdivisions : int >= 0
    center : (3,) metres

    Returns
    -------
    TorsoMesh with name ``sphere``, no heart, landmark ``center``.
    """
    if not radius > 0:
        raise GeometryError(f"sphere radius must be positive (m), got {radius!r}")
    if int(subdivisions) != subdivisions or subdivisions < 0 or subdivisions > 7:
        raise GeometryError(f"subdivisions must be an integer in [0, 7], got {subdivisions!r}")
    v, f = _icosahedron()
    verts = list(v)
    for _ in range(int(subdivisions)):
        cache: dict = {}

        def mid(i, j):
            key = (min(i, j), max(i, j))
            if key not in cache:
                m = verts[i] + verts[j]
                verts.append(m / np.linalg.norm(m))
                cache[key] = len(verts) - 1
            return cache[key]

        nf = []
        for a, b, c in f:
            ab, bc, ca = mid(a, b), mid(b, c), mid(c, a)
            nf += [[a, ab, ca], [b, bc, ab], [c, ca, bc], [ab, bc, ca]]
        f = np.array(nf, dtype=np.int64)
    c = np.asarray(center, dtype=float)
    return TorsoMesh(np.array(verts) * radius + c, f, name="sphere", landmarks={"center": c})
