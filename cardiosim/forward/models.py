"""Forward models: lead fields ``L(r)`` of a current dipole at a fixed source position.

Every model has ``.lead_field(points (..., 3) m) -> (..., 3) V/(A·m)`` so that the
potential of a dipole ``p`` (A·m, LPS) at surface point ``r`` is ``phi = L(r) @ p``, and
``.source_position`` (3,) m. Constructors make an analytic sphere and a BEM torso
interchangeable (the pattern of MNE-Python's ``make_*`` conductors).

Formulas (PHYSICS.md section 4):

* infinite homogeneous medium: ``L = d / (4 pi sigma |d|^3)``, ``d = r - r0``;
* homogeneous insulated sphere of radius R centred at the origin, field point on the
  surface (Kavanagh 1978; Lütkenhöner 1992 eq. A.17):
  ``L = [2 d/|d|^3 + (|d| r + R d) / (R |d| (R |d| + r.d))] / (4 pi sigma)``.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError, GeometryError


def _check_conductivity(sigma):
    try:
        ok = np.isfinite(float(sigma)) and float(sigma) > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(f"conductivity must be a positive number in S/m, got {sigma!r}")
    return float(sigma)


def _check_position(pos, what="source_position"):
    p = np.asarray(pos, dtype=np.float64)
    if p.shape != (3,) or not np.all(np.isfinite(p)):
        raise GeometryError(f"{what} must be a finite 3-vector in metres, got {pos!r}")
    if np.abs(p).max() > 5.0:
        raise GeometryError(f"{what} {p.tolist()} is more than 5 m from the origin -- millimetres instead of metres?")
    return p


def _check_points(points):
    pts = np.asarray(points, dtype=np.float64)
    if pts.shape[-1:] != (3,):
        raise GeometryError(f"points must have shape (..., 3) in metres, got {pts.shape}")
    if not np.all(np.isfinite(pts)):
        raise GeometryError("points contain NaN or infinite coordinates")
    return pts


def infinite_lead_field(points: np.ndarray, source_position: np.ndarray, conductivity: float = 0.2) -> np.ndarray:
    """``d / (4 pi sigma |d|^3)`` for ``points (..., 3)`` m; V/(A·m) (PHYSICS.md section 4)."""
    d = _check_points(points) - source_position
    r = np.linalg.norm(d, axis=-1, keepdims=True)
    if np.any(r < 1e-6):
        raise GeometryError("a field point coincides with the dipole (distance < 1 micrometre)")
    return d / (4 * np.pi * conductivity * r ** 3)


class InfiniteModel:
    """Dipole in an infinite homogeneous medium of conductivity ``conductivity`` (S/m)."""

    name = "infinite"

    def __init__(self, source_position, conductivity: float = 0.2):
        self.source_position = _check_position(source_position)
        self.conductivity = _check_conductivity(conductivity)

    def lead_field(self, points: np.ndarray) -> np.ndarray:
        """Lead field (..., 3), V/(A·m), at ``points (..., 3)`` m."""
        return infinite_lead_field(points, self.source_position, self.conductivity)

    def __repr__(self):
        return f"InfiniteModel(source_position={self.source_position.tolist()}, conductivity={self.conductivity})"


class SphereModel:
    """Homogeneous insulated sphere of radius ``radius`` centred at the origin.

    Field points must lie on the sphere surface (relative tolerance 1e-6).
    """

    name = "sphere"

    def __init__(self, radius: float, source_position, conductivity: float = 0.2):
        if not (np.isfinite(radius) and radius > 0):
            raise GeometryError(f"sphere radius must be positive (m), got {radius!r}")
        self.radius = float(radius)
        self.source_position = _check_position(source_position)
        self.conductivity = _check_conductivity(conductivity)
        if np.linalg.norm(self.source_position) >= self.radius:
            raise GeometryError(f"dipole at {self.source_position.tolist()} m is outside the sphere of radius "
                                f"{self.radius} m")

    def lead_field(self, points: np.ndarray) -> np.ndarray:
        """Lead field (..., 3), V/(A·m), at surface ``points (..., 3)`` m (Lütkenhöner 1992 A.17)."""
        r = _check_points(points)
        R = self.radius
        rn = np.linalg.norm(r, axis=-1, keepdims=True)
        if np.any(np.abs(rn - R) > 1e-6 * R):
            i = np.unravel_index(np.argmax(np.abs(rn - R)), rn.shape)
            raise GeometryError(f"field point at radius {float(rn[i]):.6g} m is not on the sphere surface "
                                f"(radius {R} m)")
        d = r - self.source_position
        dn = np.linalg.norm(d, axis=-1, keepdims=True)
        rd = (r * d).sum(-1, keepdims=True)
        f = 2 * d / dn ** 3 + (dn * r + R * d) / (R * dn * (R * dn + rd))
        return f / (4 * np.pi * self.conductivity)

    def __repr__(self):
        return (f"SphereModel(radius={self.radius}, source_position={self.source_position.tolist()}, "
                f"conductivity={self.conductivity})")


def make_infinite_model(source_position, conductivity: float = 0.2) -> InfiniteModel:
    """Infinite homogeneous medium (PHYSICS.md section 4)."""
    return InfiniteModel(source_position, conductivity)


def make_sphere_model(radius: float, source_position, conductivity: float = 0.2) -> SphereModel:
    """Homogeneous insulated sphere centred at the origin (PHYSICS.md section 4)."""
    return SphereModel(radius, source_position, conductivity)


def rotate_lead_field(lead_field: np.ndarray, orientation: np.ndarray) -> np.ndarray:
    """Lead field for a dipole given in the heart frame: ``L_heart = L @ orientation``.

    With ``p_torso = orientation @ p_heart`` (:class:`cardiosim.geometry.Heart`),
    ``phi = L @ p_torso = (L @ orientation) @ p_heart``.
    """
    rot = np.asarray(orientation, dtype=np.float64)
    if rot.shape != (3, 3) or not np.allclose(rot @ rot.T, np.eye(3), atol=1e-9):
        raise GeometryError(f"orientation must be a 3x3 rotation matrix, got {orientation!r}")
    return np.asarray(lead_field) @ rot
