"""Boundary element model of a bounded homogeneous torso, with an on-disk cache.

On the surface, ``phi = 2 phi_inf + (1/2 pi) * integral phi dOmega`` (Barr et al. 1977;
Geselowitz 1967), discretised by linear collocation with analytically integrated
coefficients (de Munck, IEEE TBME 1992;39:986, as in MNE-Python ``mne/bem.py``):

    (I - Omega / 2 pi + 1/N) phi = 2 phi_inf            (PHYSICS.md section 4)

where ``Omega[i, j]`` apportions the solid angle of the surface seen from node ``i`` to
node ``j``; its diagonal (auto) terms follow from each row summing to 2 pi, and adding
``1/N`` to every entry deflates the singular matrix. Solving for the three unit dipoles
at the heart gives the lead field at every node; potentials are referenced to zero
area-weighted mean. At any other surface point the lead field is the barycentric
interpolation of its triangle's corners (closest-point projection), which is exactly the
linear basis the BEM assumed.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from ..errors import GeometryError
from ..geometry.mesh import TorsoMesh, check_inside
from ._kernels import interpolate_transfer, linear_collocation_matrix
from .models import _check_conductivity, _check_points, _check_position, infinite_lead_field

_METHOD = "linear-collocation-demunck-v1"
#: Field points farther than this from the surface are refused (electrode off the torso).
MAX_DISTANCE = 0.01


def locate_on_surface(torso, grid, points: np.ndarray):
    """Triangle index (n,) and barycentric coordinates (n, 3) of the surface points closest
    to ``points (..., 3)`` m, found in ``grid`` (``torso.grid(MAX_DISTANCE)``); a point
    farther than :data:`MAX_DISTANCE` from the surface is a :class:`GeometryError` naming it."""
    pts = _check_points(points).reshape(-1, 3)
    tri, bary, _ = grid.query(pts)
    if np.any(tri < 0):
        i = int(np.argmax(tri < 0))
        _, _, _, d = torso.closest_point(pts[i:i + 1])
        raise GeometryError(f"point {i} at {pts[i].tolist()} is {d[0] * 100:.1f} cm from the surface of "
                            f"{torso.name!r} (allowed {MAX_DISTANCE * 100:.0f} cm): electrode off the torso")
    return tri, bary


def default_cache_dir() -> Path:
    """``$CARDIOSIM_CACHE`` or ``~/.cache/cardiosim``."""
    return Path(os.environ.get("CARDIOSIM_CACHE", Path.home() / ".cache" / "cardiosim"))


def cache_key(torso: TorsoMesh, conductivity: float, source_position: np.ndarray) -> str:
    """SHA-256 of the mesh content, conductivity, source position and method version."""
    h = hashlib.sha256()
    h.update(_METHOD.encode())
    h.update(np.ascontiguousarray(torso.vertices, dtype="<f8").tobytes())
    h.update(np.ascontiguousarray(torso.faces, dtype="<i8").tobytes())
    h.update(np.asarray([conductivity, *source_position], dtype="<f8").tobytes())
    return h.hexdigest()


def _auto_correct(mat: np.ndarray, faces: np.ndarray) -> None:
    """Fill the terms of the triangles around each node so every row sums to 2 pi.

    Half of the missing solid angle goes to the node itself and half is shared equally by
    its neighbours (MNE-Python ``_correct_auto_elements``).
    """
    n = mat.shape[0]
    miss = 2 * np.pi - mat.sum(axis=1)
    n_memb = np.bincount(faces.ravel(), minlength=n)
    mat[np.arange(n), np.arange(n)] += miss / 2.0
    share = miss / (4.0 * n_memb)
    for k in range(3):
        own = faces[:, k]
        for other in ((k + 1) % 3, (k + 2) % 3):
            np.add.at(mat, (own, faces[:, other]), share[own])


def _system_matrix(rr: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """The deflated BEM matrix ``I - Omega / 2 pi + 1/N`` (PHYSICS.md section 4)."""
    omega = linear_collocation_matrix(rr, faces)
    _auto_correct(omega, faces)
    n = len(rr)
    return np.eye(n) - omega / (2 * np.pi) + 1.0 / n


def solve_bem(vertices: np.ndarray, faces: np.ndarray, source_position: np.ndarray,
              conductivity: float = 0.2) -> np.ndarray:
    """Node lead field (n, 3), V/(A·m), of a homogeneous closed conductor (reference: zero
    area-weighted mean over the surface)."""
    rr = np.asarray(vertices, dtype=np.float64)
    a = _system_matrix(rr, faces)
    rhs = 2.0 * infinite_lead_field(rr, source_position, conductivity)
    phi = np.linalg.solve(a, rhs)
    w = node_area_weights(rr, faces)
    return phi - (w @ phi) / w.sum()


class BEMSolver:
    """The homogeneous-torso BEM matrix, LU-factored once, for any number of source points.

    The system matrix depends only on the surface, so one factorisation (O(N^3)) serves
    every dipole position; each further source point costs three triangular solves
    (O(N^2)). This is what a distributed source (many dipoles in the heart) needs.

    Attributes
    ----------
    torso : TorsoMesh
    conductivity : float, S/m
    """

    def __init__(self, torso: TorsoMesh, conductivity: float = 0.2):
        from scipy.linalg import lu_factor

        self.torso = torso
        self.conductivity = _check_conductivity(conductivity)
        rr = torso.vertices
        self._lu = lu_factor(_system_matrix(rr, torso.faces), check_finite=False)
        w = node_area_weights(rr, torso.faces)
        self._w = w / w.sum()

    def lead_fields(self, source_points: np.ndarray) -> np.ndarray:
        """Node lead fields of unit dipoles at ``source_points``.

        Parameters
        ----------
        source_points : ndarray, shape (k, 3), metres, inside the torso

        Returns
        -------
        ndarray, shape (n_vertices, k, 3), V/(A·m), zero area-weighted mean over the surface
        (the reference of :func:`solve_bem`, which gives the same values for one point).
        """
        from scipy.linalg import lu_solve

        src = _check_points(source_points).reshape(-1, 3)
        rr = self.torso.vertices
        d = rr[:, None, :] - src[None, :, :]                                  # (N, k, 3)
        r3 = np.linalg.norm(d, axis=-1, keepdims=True) ** 3
        if np.any(r3 < 1e-18):
            raise GeometryError("a source point lies on a surface node (distance < 1 micrometre)")
        rhs = (2.0 / (4 * np.pi * self.conductivity)) * (d / r3)            # 2 phi_inf
        phi = lu_solve(self._lu, rhs.reshape(len(rr), -1), check_finite=False)
        phi -= self._w @ phi
        return phi.reshape(len(rr), len(src), 3)


def make_bem_solver(torso: TorsoMesh, conductivity: float = 0.2) -> BEMSolver:
    """The factored BEM of ``torso`` (kept on the mesh object, so built once per torso)."""
    key = ("bem-solver", float(conductivity))
    solver = torso._cache.get(key)
    if solver is None:
        solver = torso._cache[key] = BEMSolver(torso, conductivity)
    return solver


def node_area_weights(vertices, faces) -> np.ndarray:
    """One third of the area of the triangles around each node (m^2)."""
    t = np.asarray(vertices)[faces]
    area = 0.5 * np.linalg.norm(np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]), axis=1)
    return np.bincount(faces.ravel(), weights=np.repeat(area / 3, 3), minlength=len(vertices))


def _atomic_save(path: Path, **arrays) -> None:
    from .._atomic import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


class BEMModel:
    """Lead field of a homogeneous torso, valid at any point on (within 1 cm of) its surface.

    Attributes
    ----------
    torso : TorsoMesh
    source_position : ndarray (3,), metres
    conductivity : float, S/m
    node_lead_field : ndarray (n_vertices, 3), V/(A·m)
    """

    name = "bem"

    def __init__(self, torso: TorsoMesh, node_lead_field: np.ndarray, source_position, conductivity: float):
        self.torso = torso
        self.source_position = np.asarray(source_position, dtype=np.float64)
        self.conductivity = float(conductivity)
        self.node_lead_field = np.asarray(node_lead_field, dtype=np.float64)
        if self.node_lead_field.shape != (len(torso.vertices), 3):
            raise GeometryError(f"node lead field shape {self.node_lead_field.shape} does not match "
                                f"{len(torso.vertices)} vertices")
        self.tri_transfer = np.ascontiguousarray(self.node_lead_field[torso.faces])   # (m, 3, 3)
        self._grid = torso.grid(MAX_DISTANCE)

    def locate(self, points: np.ndarray):
        """Triangle index (n,) and barycentric coordinates (n, 3) of the closest surface points."""
        return locate_on_surface(self.torso, self._grid, points)

    def lead_field(self, points: np.ndarray) -> np.ndarray:
        """Lead field (..., 3), V/(A·m), at surface ``points (..., 3)`` m."""
        pts = _check_points(points)
        tri, bary = self.locate(pts)
        return interpolate_transfer(tri, bary, self.tri_transfer).reshape(pts.shape)

    def lead_field_at(self, tri: np.ndarray, bary: np.ndarray) -> np.ndarray:
        """Lead field (n, 3), V/(A·m), at surface points given by triangle (n,) and
        barycentric coordinates (n, 3) on this model's torso -- e.g. where
        :func:`cardiosim.geometry.displace_on_surface` (``return_location=True``) left the
        electrodes -- without the closest-point search of :meth:`lead_field`."""
        t = np.asarray(tri)
        b = np.asarray(bary, dtype=np.float64)
        if t.ndim != 1 or b.shape != (t.shape[0], 3):
            raise GeometryError(f"tri must be (n,) and bary (n, 3), got {t.shape} and {b.shape}")
        if t.size and (t.min() < 0 or t.max() >= len(self.torso.faces)):
            raise GeometryError(f"triangle index out of range 0..{len(self.torso.faces) - 1} of torso "
                                f"{self.torso.name!r}")
        if not np.all(np.isfinite(b)):
            raise GeometryError("barycentric coordinates contain NaN or inf")
        return interpolate_transfer(t, b, self.tri_transfer)

    def __repr__(self):
        return (f"BEMModel(torso={self.torso.name!r}, n_vertices={len(self.torso.vertices)}, "
                f"source_position={self.source_position.tolist()}, conductivity={self.conductivity})")


def make_bem_model(torso: TorsoMesh, conductivity: float = 0.2, source_position=None, cache_dir=None,
                   use_cache: bool = True) -> BEMModel:
    """Build (or load from the disk cache) the BEM lead field of ``torso``.

    Parameters
    ----------
    torso : TorsoMesh
    conductivity : float, S/m (0.2, PHYSICS.md section 4)
    source_position : (3,) m, optional
        Default ``torso.heart.position``; must lie inside the torso.
    cache_dir : path, optional
        Default ``$CARDIOSIM_CACHE`` or ``~/.cache/cardiosim``. Entries are keyed by a
        hash of the mesh content, conductivity and source position and written atomically
        (temporary file + ``os.replace``), so concurrent writers are safe.
    use_cache : bool
    """
    sigma = _check_conductivity(conductivity)
    if source_position is None:
        if torso.heart is None:
            raise GeometryError(f"torso {torso.name!r} has no heart; pass source_position")
        source_position = torso.heart.position
    src = _check_position(source_position)
    check_inside(torso, src, what="dipole source (heart)")
    key = cache_key(torso, sigma, src)
    node_lf = cached_node_lead_field(f"bem-{key[:32]}.npz", key, cache_dir, use_cache,
                                     lambda: solve_bem(torso.vertices, torso.faces, src, sigma))
    return BEMModel(torso, node_lf, src, sigma)


def cached_node_lead_field(name: str, key: str, cache_dir, use_cache: bool, solve) -> np.ndarray:
    """The node lead field stored as ``name`` in the cache folder under ``key``, or
    ``solve()``'s, saved there atomically (a corrupt or mismatching entry is rebuilt and
    replaced)."""
    path = Path(cache_dir or default_cache_dir()) / name
    if use_cache and path.is_file():
        try:
            with np.load(path) as z:
                if str(z["key"]) == key:
                    return z["node_lead_field"]
        except (OSError, ValueError, KeyError):
            pass
    node_lf = solve()
    if use_cache:
        _atomic_save(path, node_lead_field=node_lf, key=np.array(key))
    return node_lf
