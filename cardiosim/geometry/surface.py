"""Moving electrodes on the body surface: tangential displacement and garment fit.

:func:`displace_on_surface` moves points by the tangential part of an offset and lands
them back on the mesh, in small steps so that a long move follows the curved surface
(each step is re-projected on the local tangent plane and onto the mesh); the walk is a
numba kernel whose per-step closest-point search starts at the previous step's triangle. It is
vectorised over any leading (time, record) axes. The garment helpers turn a rigid slip
(vertical shift), a rotation about the body axis, a size mismatch (circumferential
stretch from the anterior midline) and per-electrode jitter into such moves.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict

import numpy as np

from ..errors import GeometryError
from ._kernels import WalkTopology, surface_walk
from .mesh import TorsoMesh

#: Largest single step (m) of the surface walk; re-projection keeps it on the mesh.
STEP = 0.005
#: Positions farther than this from the surface are not electrodes on the torso.
ON_SURFACE_TOL = 0.01


def surface_normals(torso: TorsoMesh, tri: np.ndarray, bary: np.ndarray) -> np.ndarray:
    """Interpolated unit vertex normals at surface points given by triangle + barycentric."""
    vn = torso.vertex_normals[torso.faces[tri]]          # (..., 3 corners, 3)
    n = np.einsum("...k,...kj->...j", bary, vn)
    return n / np.linalg.norm(n, axis=-1, keepdims=True)


def project_to_surface(torso: TorsoMesh, points: np.ndarray, max_distance: float = ON_SURFACE_TOL) -> np.ndarray:
    """Closest points on the mesh, shape as ``points (..., 3)``; raises GeometryError if
    any point is farther than ``max_distance`` metres (an electrode off the torso)."""
    proj, _, _, _ = torso.closest_point(points, max_distance=max_distance)
    return proj


def _check_displace_args(positions, offsets):
    pos = np.asarray(positions, dtype=np.float64)
    off = np.asarray(offsets, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise GeometryError(f"positions must have shape (n, 3) in metres, got {pos.shape}")
    if off.shape[-2:] != pos.shape:
        raise GeometryError(f"offsets must have shape (..., {pos.shape[0]}, 3) matching positions, got {off.shape}")
    if not np.all(np.isfinite(off)):
        raise GeometryError("offsets contain NaN or infinite values")
    if np.abs(off).max(initial=0.0) > 0.5:
        raise GeometryError(f"offset of {np.abs(off).max():.3g} m is larger than half a metre -- "
                            "offsets are in metres (2 cm = 0.02)")
    return pos, off


def _check_step(step):
    if not (np.isfinite(step) and step > 0):
        raise GeometryError(f"walk step must be a positive length in metres, got {step!r}")


_TOPOLOGY: weakref.WeakKeyDictionary[TorsoMesh, WalkTopology] = weakref.WeakKeyDictionary()


def _topology(torso: TorsoMesh) -> WalkTopology:
    topo = _TOPOLOGY.get(torso)
    if topo is None:
        topo = _TOPOLOGY[torso] = WalkTopology(torso.vertices, torso.faces)
    return topo


_STARTS: weakref.WeakKeyDictionary[TorsoMesh, OrderedDict] = weakref.WeakKeyDictionary()
_STARTS_LOCK = threading.Lock()
_STARTS_SIZE = 4


def _start_on_surface(torso: TorsoMesh, pos: np.ndarray):
    """``torso.closest_point(pos, max_distance=ON_SURFACE_TOL)[:3]`` (point, triangle,
    barycentric), remembered for the last few position sets of each torso: a garment's
    layout positions are the same every record, and their search cost about 50 us a record
    with the mesh out of cache. The same computation on the same values gives the same
    arrays; callers only read them."""
    key = (pos.shape, pos.tobytes())
    with _STARTS_LOCK:
        cache = _STARTS.get(torso)
        hit = None if cache is None else cache.get(key)
        if hit is not None:
            cache.move_to_end(key)
            return hit
    start, tri, bary, _ = torso.closest_point(pos, max_distance=ON_SURFACE_TOL)
    with _STARTS_LOCK:
        cache = _STARTS.get(torso)
        if cache is None:
            cache = _STARTS[torso] = OrderedDict()
        cache[key] = (start, tri, bary)
        while len(cache) > _STARTS_SIZE:
            cache.popitem(last=False)
    return start, tri, bary


def displace_on_surface(torso: TorsoMesh, positions: np.ndarray, offsets: np.ndarray,
                        step: float = STEP, return_location: bool = False):
    """Move electrodes by the tangential part of ``offsets`` and land back on the surface.

    Each offset's tangential length ``L`` (at the start point's interpolated normal) is
    walked in ``ceil(L / step)`` equal steps; each step follows the offset projected on
    the current tangent plane and is projected back onto the mesh (numba kernel
    :func:`cardiosim.geometry._kernels.surface_walk`). The step count is per offset, so a
    result does not depend on the other offsets of the batch.

    Parameters
    ----------
    torso : TorsoMesh
    positions : ndarray, shape (n, 3), metres
        Electrode positions on the surface (within 1 cm).
    offsets : ndarray, shape (..., n, 3), metres
        Displacement per electrode, for any leading (e.g. time) axes. The component along
        the surface normal is discarded; the tangential length is walked along the surface.
    step : float, metres
        Largest step of the walk.
    return_location : bool
        Also return each output point's triangle and barycentric coordinates on the mesh.

    Returns
    -------
    ndarray, shape (..., n, 3), metres, on the surface. Where an offset is exactly zero
    the input position is returned unchanged.
    tri : ndarray (..., n) int64, and bary : ndarray (..., n, 3) -- with ``return_location``
        Where each point lies on ``torso`` (for a zero offset: the input position's closest
        surface point), so a field on the mesh (a BEM lead field,
        ``BEMModel.lead_field_at``) is read there without another closest-point search.
    """
    pos, off = _check_displace_args(positions, offsets)
    _check_step(step)
    start, tri, bary = _start_on_surface(torso, pos)
    walked = surface_walk(torso.triangles, torso.faces, torso.vertex_normals, _topology(torso), torso.grid(),
                          pos, start, tri, bary, off.reshape((int(np.prod(off.shape[:-2])),) + pos.shape), step,
                          locate=return_location)
    out = walked[0].reshape(off.shape)
    if return_location:
        return out, walked[2].reshape(off.shape[:-1]), walked[3].reshape(off.shape)
    return out


def _displace_on_surface_numpy(torso: TorsoMesh, positions: np.ndarray, offsets: np.ndarray,
                               step: float = STEP, per_point_steps: bool = False) -> np.ndarray:
    """NumPy twin (test oracle) of :func:`displace_on_surface`: the same walk, with the
    exact global closest point (grid + brute force) at every step, vectorised over points.

    By default this is the original implementation: all offsets of a call are walked in
    the same number of steps, ``ceil(max L / step)`` (the batch maximum), so in a batch
    the shorter walks take smaller steps than in the kernel (sub-millimetre effect).
    ``per_point_steps=True`` uses the kernel's ``ceil(L / step)`` per offset.
    """
    pos, off = _check_displace_args(positions, offsets)
    start, tri, bary, _ = torso.closest_point(pos, max_distance=ON_SURFACE_TOL)
    shape = off.shape
    o = off.reshape(-1, pos.shape[0], 3)
    p = np.broadcast_to(start, o.shape).reshape(-1, 3).copy()
    t = np.broadcast_to(tri, o.shape[:-1]).reshape(-1).copy()
    b = np.broadcast_to(bary, o.shape).reshape(-1, 3).copy()
    o = o.reshape(-1, 3)
    moving = np.any(o != 0.0, axis=1)
    n0 = surface_normals(torso, t, b)
    o_t = o - (o * n0).sum(1, keepdims=True) * n0
    length = np.linalg.norm(o_t, axis=1)
    if per_point_steps:
        n_i = np.maximum(1, np.ceil(length / step)).astype(np.int64)
    else:
        n_i = np.full(length.shape, max(1, int(np.ceil(length.max(initial=0.0) / step))), dtype=np.int64)
    step_len = length / n_i
    walking = np.nonzero(moving & (length > 0))[0]
    for s in range(int(n_i.max(initial=1))):
        idx = walking[n_i[walking] > s]
        nrm = surface_normals(torso, t[idx], b[idx])
        d = o[idx] - (o[idx] * nrm).sum(1, keepdims=True) * nrm
        dn = np.linalg.norm(d, axis=1, keepdims=True)
        dn[dn == 0] = 1.0
        cand = p[idx] + d / dn * step_len[idx, None]
        proj, t2, b2, _ = torso.closest_point(cand)
        p[idx], t[idx], b[idx] = proj, t2, b2
    out = np.where(moving[:, None], p, np.broadcast_to(pos, shape).reshape(-1, 3))
    return out.reshape(shape)


def _axis(torso: TorsoMesh) -> np.ndarray:
    return np.asarray(torso.landmarks.get("body_axis", np.zeros(3)), dtype=np.float64)


def slip_garment(torso: TorsoMesh, positions: np.ndarray, vertical=0.0, rotation=0.0) -> np.ndarray:
    """Rigid garment slip: vertical shift (m, + up) and rotation (rad) about the body axis.

    A positive ``rotation`` is right-handed about +z (LPS): seen from above the garment
    turns counter-clockwise and its anterior midline moves toward the patient's left.

    Parameters
    ----------
    positions : ndarray (n, 3) m
    vertical, rotation : float or ndarray (...,)
        Per time step (or any leading shape).

    Returns
    -------
    ndarray (..., n, 3) m on the surface.
    """
    pos = np.asarray(positions, dtype=np.float64)
    dz = np.asarray(vertical, dtype=np.float64)
    ang = np.asarray(rotation, dtype=np.float64)
    lead = np.broadcast_shapes(dz.shape, ang.shape)
    dz, ang = np.broadcast_to(dz, lead), np.broadcast_to(ang, lead)
    rel = pos - _axis(torso)
    c, s = np.cos(ang)[..., None], np.sin(ang)[..., None]
    x = c * rel[:, 0] - s * rel[:, 1]
    y = s * rel[:, 0] + c * rel[:, 1]
    target = np.stack([x, y, rel[:, 2] + dz[..., None]], axis=-1) + _axis(torso)
    return displace_on_surface(torso, pos, target - pos)


def stretch_garment(torso: TorsoMesh, positions: np.ndarray, factor=1.0) -> np.ndarray:
    """Garment size mismatch: electrode azimuths about the body axis, measured from the
    anterior midline, are scaled by ``factor`` (> 1: a garment too large spreads its
    electrodes farther round the body; < 1 gathers them toward the front).

    ``factor`` is a float or an array of leading shape; returns (..., n, 3) m.
    """
    pos = np.asarray(positions, dtype=np.float64)
    f = np.asarray(factor, dtype=np.float64)
    if np.any(f <= 0):
        raise GeometryError(f"stretch factor must be positive, got {factor!r}")
    rel = pos - _axis(torso)
    az = np.arctan2(rel[:, 0], -rel[:, 1])          # 0 at the front, + toward the left
    r = np.hypot(rel[:, 0], rel[:, 1])
    new = az * f[..., None]
    target = np.stack([r * np.sin(new), -r * np.cos(new), np.broadcast_to(rel[:, 2], new.shape)], axis=-1)
    return displace_on_surface(torso, pos, target + _axis(torso) - pos)


def jitter_electrodes(torso: TorsoMesh, positions: np.ndarray, rng: np.random.Generator, sd: float = 0.01,
                      size: tuple = ()) -> np.ndarray:
    """Independent isotropic tangential jitter per electrode (N(0, sd^2) per axis, metres).

    ``size`` adds leading axes (e.g. records); returns (*size, n, 3) m on the surface.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    pos = np.asarray(positions, dtype=np.float64)
    off = rng.normal(0.0, sd, size=tuple(size) + pos.shape)
    return displace_on_surface(torso, pos, off)


def intercostal_spacing(torso: TorsoMesh) -> float:
    """Vertical distance (m) between the 4th and 5th intercostal spaces at the left sternal border."""
    lm = torso.landmarks
    for k in ("ics4_sternal_left", "ics5_sternal_left"):
        if k not in lm:
            raise GeometryError(f"{torso.name}: landmark {k!r} needed for intercostal moves is missing")
    return float(lm["ics4_sternal_left"][2] - lm["ics5_sternal_left"][2])
