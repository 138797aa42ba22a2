"""Numba kernels of the forward layer, each with a plain NumPy twin (the test oracle).

* :func:`linear_collocation_matrix` / :func:`linear_collocation_matrix_numpy` -- the
  solid-angle matrix of the linear-collocation BEM: ``omega[i, j]`` is the solid angle of
  the surface seen from node ``i``, apportioned to node ``j`` by the linear basis
  function of ``j``, with the analytic integrals of de Munck (IEEE TBME 1992;39:986), in
  the form used by MNE-Python (``mne/bem.py``, ``_lin_pot_coeff``). Entries for the
  triangles that contain node ``i`` are zero here; the caller fills them from the
  requirement that every row sums to 2 pi (the auto-solid-angle correction).
* :func:`interpolate_transfer` / :func:`interpolate_transfer_numpy` -- barycentric
  interpolation of per-triangle corner lead fields.
* :func:`interpolate_nodes` / :func:`interpolate_nodes_numpy` -- the same for any number of
  per-node columns (a distributed source's surface transfer).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from numba import njit

from ..errors import SignalError


@njit(cache=True)
def _lin_coeff_kernel(points, own, rr, faces, tri_nn, tri_area, out):
    # de Munck's integrals from each field point to the corners of every triangle of the
    # surface ``rr, faces``. ``own``: the points are the surface's own nodes, and a node's
    # own triangles are skipped (their share is the auto term); otherwise (another
    # surface of a multi-compartment model) only triangles whose solid angle is
    # negligible are skipped (as MNE-Python does).
    n = points.shape[0]
    for t in range(faces.shape[0]):
        i0, i1, i2 = faces[t, 0], faces[t, 1], faces[t, 2]
        area2 = 2.0 * tri_area[t]
        n2 = 1.0 / (area2 * area2)
        nx, ny, nz = tri_nn[t, 0], tri_nn[t, 1], tri_nn[t, 2]
        # Edge unit vectors and lengths (independent of the field point).
        e = np.empty((3, 3))
        el = np.empty(3)
        corners = (i0, i1, i2)
        for k in range(3):
            a = corners[k]
            b = corners[(k + 1) % 3]
            ex, ey, ez = rr[b, 0] - rr[a, 0], rr[b, 1] - rr[a, 1], rr[b, 2] - rr[a, 2]
            ln = np.sqrt(ex * ex + ey * ey + ez * ez)
            el[k] = ln
            e[k, 0], e[k, 1], e[k, 2] = ex / ln, ey / ln, ez / ln
        v = np.empty((3, 3))
        lv = np.empty(3)
        for i in range(n):
            if own and (i == i0 or i == i1 or i == i2):
                continue
            for k in range(3):
                c = corners[k]
                v[k, 0] = rr[c, 0] - points[i, 0]
                v[k, 1] = rr[c, 1] - points[i, 1]
                v[k, 2] = rr[c, 2] - points[i, 2]
                lv[k] = np.sqrt(v[k, 0] ** 2 + v[k, 1] ** 2 + v[k, 2] ** 2)
            # triple = v1 . (v2 x v3)
            cx = v[1, 1] * v[2, 2] - v[1, 2] * v[2, 1]
            cy = v[1, 2] * v[2, 0] - v[1, 0] * v[2, 2]
            cz = v[1, 0] * v[2, 1] - v[1, 1] * v[2, 0]
            triple = v[0, 0] * cx + v[0, 1] * cy + v[0, 2] * cz
            d01 = v[0, 0] * v[1, 0] + v[0, 1] * v[1, 1] + v[0, 2] * v[1, 2]
            d02 = v[0, 0] * v[2, 0] + v[0, 1] * v[2, 1] + v[0, 2] * v[2, 2]
            d12 = v[1, 0] * v[2, 0] + v[1, 1] * v[2, 1] + v[1, 2] * v[2, 2]
            ss = lv[0] * lv[1] * lv[2] + d01 * lv[2] + d02 * lv[1] + d12 * lv[0]
            half_solid = np.arctan2(triple, ss)
            if abs(half_solid) < np.pi / 1e6:
                continue
            beta0 = 0.0
            beta1 = 0.0
            beta2 = 0.0
            for k in range(3):
                kk = (k + 1) % 3
                num = lv[k] + v[k, 0] * e[k, 0] + v[k, 1] * e[k, 1] + v[k, 2] * e[k, 2]
                den = lv[kk] + v[kk, 0] * e[k, 0] + v[kk, 1] * e[k, 1] + v[kk, 2] * e[k, 2]
                bk = np.log(num / den) / el[k]
                if k == 0:
                    beta0 = bk
                elif k == 1:
                    beta1 = bk
                else:
                    beta2 = bk
            wx = (beta2 - beta0) * v[0, 0] + (beta0 - beta1) * v[1, 0] + (beta1 - beta2) * v[2, 0]
            wy = (beta2 - beta0) * v[0, 1] + (beta0 - beta1) * v[1, 1] + (beta1 - beta2) * v[2, 1]
            wz = (beta2 - beta0) * v[0, 2] + (beta0 - beta1) * v[1, 2] + (beta1 - beta2) * v[2, 2]
            for k in range(3):
                a = (k + 1) % 3   # idx[k + 1]
                b = (k + 2) % 3   # idx[k - 1]
                dx, dy, dz = v[b, 0] - v[a, 0], v[b, 1] - v[a, 1], v[b, 2] - v[a, 2]
                # zdots = (v_a x v_b) . n
                zx = v[a, 1] * v[b, 2] - v[a, 2] * v[b, 1]
                zy = v[a, 2] * v[b, 0] - v[a, 0] * v[b, 2]
                zz = v[a, 0] * v[b, 1] - v[a, 1] * v[b, 0]
                zdots = zx * nx + zy * ny + zz * nz
                om = -n2 * (area2 * zdots * 2.0 * half_solid - triple * (dx * wx + dy * wy + dz * wz))
                out[i, corners[k]] -= om


def _triangle_frame(rr, faces):
    """Unit normals (m, 3) and areas (m,) of the triangles."""
    tri = rr[faces]
    cr = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    area = 0.5 * np.linalg.norm(cr, axis=1)
    return cr / (2 * area[:, None]), area


def linear_collocation_matrix(rr: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Linear-collocation solid-angle matrix (n, n), auto terms left at zero (de Munck 1992).

    Parameters
    ----------
    rr : ndarray, shape (n, 3), metres
    faces : ndarray, shape (m, 3), int64, outward CCW

    Returns
    -------
    ndarray, shape (n, n): ``out[i, j]`` = solid angle (sr) seen from node i weighted by
    the linear basis of node j, summed over triangles not containing i.
    """
    rr = np.ascontiguousarray(rr, dtype=np.float64)
    faces = np.ascontiguousarray(faces, dtype=np.int64)
    nn, area = _triangle_frame(rr, faces)
    out = np.zeros((len(rr), len(rr)))
    _lin_coeff_kernel(rr, True, rr, faces, nn, area, out)
    return out


def _lin_coeff_numpy(points, own, rr, faces):
    """NumPy twin of ``_lin_coeff_kernel`` (vectorised over field points, as in
    MNE-Python's ``_lin_pot_coeff``)."""
    tri_all = rr[faces]
    nn, area = _triangle_frame(rr, faces)
    out = np.zeros((len(points), len(rr)))
    ids = np.arange(len(points))
    for t, tri in enumerate(faces):
        v = [tri_all[t, k][None] - points for k in range(3)]
        lv = [np.linalg.norm(x, axis=1) for x in v]
        triple = (v[0] * np.cross(v[1], v[2])).sum(1)
        ss = lv[0] * lv[1] * lv[2] + (v[0] * v[1]).sum(1) * lv[2] + (v[0] * v[2]).sum(1) * lv[1] \
            + (v[1] * v[2]).sum(1) * lv[0]
        half = np.arctan2(triple, ss)
        bad = np.abs(half) < np.pi / 1e6
        if own:
            bad |= np.isin(ids, tri)
        lv = [np.where(bad, 1.0, x) for x in lv]
        beta = []
        for k in range(3):
            kk = (k + 1) % 3
            edge = tri_all[t, kk] - tri_all[t, k]
            size = np.linalg.norm(edge)
            edge = edge / size
            with np.errstate(divide="ignore", invalid="ignore"):
                beta.append(np.log((lv[k] + v[k] @ edge) / (lv[kk] + v[kk] @ edge)) / size)
        w = (beta[2] - beta[0])[:, None] * v[0] + (beta[0] - beta[1])[:, None] * v[1] \
            + (beta[1] - beta[2])[:, None] * v[2]
        area2 = 2.0 * area[t]
        for k in range(3):
            a, b = (k + 1) % 3, (k + 2) % 3
            zdots = np.cross(v[a], v[b]) @ nn[t]
            om = -(area2 * zdots * 2.0 * half - triple * ((v[b] - v[a]) * w).sum(1)) / area2 ** 2
            om[bad] = 0.0
            out[:, tri[k]] -= om
    return out


def linear_collocation_matrix_numpy(rr: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """NumPy twin of :func:`linear_collocation_matrix`."""
    rr = np.asarray(rr, dtype=np.float64)
    return _lin_coeff_numpy(rr, True, rr, faces)


@njit(cache=True)
def _interp_kernel(tri_index, bary, tri_transfer, out):
    for i in range(tri_index.shape[0]):
        t = tri_index[i]
        for j in range(3):
            out[i, j] = (bary[i, 0] * tri_transfer[t, 0, j] + bary[i, 1] * tri_transfer[t, 1, j]
                         + bary[i, 2] * tri_transfer[t, 2, j])


def interpolate_transfer(tri_index: np.ndarray, bary: np.ndarray, tri_transfer: np.ndarray) -> np.ndarray:
    """Lead field (n, 3) at points given by triangle index (n,) and barycentric (n, 3) from
    corner transfers ``tri_transfer (m, 3 corners, 3 components)``."""
    out = np.empty((tri_index.shape[0], 3))
    _interp_kernel(np.ascontiguousarray(tri_index, dtype=np.int64), np.ascontiguousarray(bary, dtype=np.float64),
                   tri_transfer, out)
    return out


def interpolate_transfer_numpy(tri_index, bary, tri_transfer):
    """NumPy twin of :func:`interpolate_transfer`."""
    return np.einsum("nk,nkj->nj", bary, tri_transfer[tri_index])


@njit(cache=True)
def _interp_nodes_kernel(tri_index, bary, faces, values, out):
    for i in range(tri_index.shape[0]):
        f = faces[tri_index[i]]
        b0, b1, b2 = bary[i, 0], bary[i, 1], bary[i, 2]
        for j in range(values.shape[1]):
            out[i, j] = b0 * values[f[0], j] + b1 * values[f[1], j] + b2 * values[f[2], j]


def interpolate_nodes(tri_index: np.ndarray, bary: np.ndarray, faces: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Linear (barycentric) interpolation of per-node values (n_nodes, q) at points given by
    triangle index (n,) and barycentric coordinates (n, 3); returns (n, q) float64."""
    vals = np.ascontiguousarray(values, dtype=np.float64)
    out = np.empty((tri_index.shape[0], vals.shape[1]))
    _interp_nodes_kernel(np.ascontiguousarray(tri_index, dtype=np.int64), np.ascontiguousarray(bary, dtype=np.float64),
                         np.ascontiguousarray(faces, dtype=np.int64), vals, out)
    return out


def interpolate_nodes_numpy(tri_index, bary, faces, values):
    """NumPy twin of :func:`interpolate_nodes`."""
    return np.einsum("nk,nkj->nj", bary, np.asarray(values, dtype=np.float64)[np.asarray(faces)[tri_index]])


# ------------------------------------------------------------------ cross-surface coefficients
def linear_collocation_cross_matrix(points: np.ndarray, rr: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Solid-angle coefficients (n_points, n_nodes) of a surface seen from points off it.

    The cross-surface blocks of the multi-compartment BEM (cardiosim/forward/multilayer.py):
    ``out[i, j]`` is the solid angle (sr) of surface ``(rr, faces)`` seen from
    ``points[i]``, weighted by the linear basis function of node ``j`` (analytic integrals of
    de Munck, IEEE TBME 1992;39:986, as in :func:`linear_collocation_matrix`). Every
    triangle counts (no auto terms); the points must not lie on the surface. Each row sums to
    the solid angle of the whole surface: 4 pi from inside a closed outward surface, 0 from
    outside (the triangle terms are exact for flat triangles).

    Parameters
    ----------
    points : ndarray, shape (n_points, 3), metres
    rr : ndarray, shape (n_nodes, 3), metres
    faces : ndarray, shape (m, 3), int64, outward CCW

    Returns
    -------
    ndarray, shape (n_points, n_nodes), sr
    """
    pts = np.ascontiguousarray(points, dtype=np.float64).reshape(-1, 3)
    rr = np.ascontiguousarray(rr, dtype=np.float64)
    faces = np.ascontiguousarray(faces, dtype=np.int64)
    nn, area = _triangle_frame(rr, faces)
    out = np.zeros((len(pts), len(rr)))
    _lin_coeff_kernel(pts, False, rr, faces, nn, area, out)
    return out


def linear_collocation_cross_matrix_numpy(points: np.ndarray, rr: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """NumPy twin of :func:`linear_collocation_cross_matrix`."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    return _lin_coeff_numpy(pts, False, np.asarray(rr, dtype=np.float64), faces)


# --- potentials along electrode trajectories -------------------------------------------------

@njit(cache=True, nogil=True)
def _knot_table(xp, seg_t, w_t, omw):  # pragma: no cover - compiled
    """For every sample ``t``: the segment ``seg_t[t]`` of the knots ``xp`` holding it (searched
    onward, as time only moves forward), its linear weight ``w_t[t]`` in it clamped to [0, 1],
    and ``omw[t] = 1 - w``. One call for all samples: an inlined helper called per sample
    increfed and decrefed ``xp`` (atomic NRT operations numba does not prune across the
    helper's loop) at every sample."""
    k = xp.shape[0]
    seg = 0
    for t in range(seg_t.shape[0]):
        while seg < k - 2 and xp[seg + 1] <= t:
            seg += 1
        w = (t - xp[seg]) / (xp[seg + 1] - xp[seg])
        w = 0.0 if w < 0.0 else 1.0 if w > 1.0 else w
        seg_t[t], w_t[t], omw[t] = seg, w, 1.0 - w


@njit(cache=True, nogil=True)
def _potentials_by_segment(lf, seg_t, w_t, omw, v, out):  # pragma: no cover - compiled
    """``out[e, t] = sum_j (lf[s, e, j] (1 - w) + lf[s + 1, e, j] w) v[j, t]`` (``s = seg_t[t]``,
    ``w = w_t[t]``, ``1 - w = omw[t]``), summed over ``j`` in order from 0.0.

    Run by run of samples in one knot segment, electrode by electrode: the segment's lead
    field values are loop invariants and the loop over the run's samples vectorises (the
    same operations per sample as one sample at a time; 0.16 -> 0.10 ms for 9 electrodes x
    5,000 samples)."""
    _, n_e, n_j = lf.shape
    n_t = v.shape[1]
    t0 = 0
    while t0 < n_t:
        s = seg_t[t0]
        t1 = t0 + 1
        while t1 < n_t and seg_t[t1] == s:
            t1 += 1
        for e in range(n_e):
            if n_j == 3:
                a0, a1, a2 = lf[s, e, 0], lf[s, e, 1], lf[s, e, 2]
                b0, b1, b2 = lf[s + 1, e, 0], lf[s + 1, e, 1], lf[s + 1, e, 2]
                for t in range(t0, t1):
                    u, w = omw[t], w_t[t]
                    acc = 0.0
                    acc += (a0 * u + b0 * w) * v[0, t]
                    acc += (a1 * u + b1 * w) * v[1, t]
                    acc += (a2 * u + b2 * w) * v[2, t]
                    out[e, t] = acc
            else:
                for t in range(t0, t1):
                    acc = 0.0
                    for j in range(n_j):
                        acc += (lf[s, e, j] * omw[t] + lf[s + 1, e, j] * w_t[t]) * v[j, t]
                    out[e, t] = acc
        t0 = t1


@njit(cache=True, nogil=True)
def _trajectory_potentials_kernel(lf, seg_t, w_t, omw, src, out):  # pragma: no cover - compiled
    """:func:`_potentials_by_segment` on the knot table ``seg_t, w_t, omw`` (:func:`_knot_tables`)."""
    _potentials_by_segment(lf, seg_t, w_t, omw, src, out)


@lru_cache(maxsize=8)
def _knot_tables(xp_bytes: bytes, n_t: int):
    """:func:`_knot_table` of the knots ``np.frombuffer(xp_bytes)`` (float64) for ``n_t``
    samples, made once per trajectory grid (the same for every record of a dataset: ~13 us
    of each record's forward pass); read-only ``(seg_t, w_t, omw)``."""
    xp = np.frombuffer(xp_bytes, dtype=np.float64)
    seg_t = np.empty(n_t, dtype=np.int64)
    w_t = np.empty(n_t)
    omw = np.empty(n_t)
    _knot_table(xp, seg_t, w_t, omw)
    for arr in (seg_t, w_t, omw):
        arr.flags.writeable = False
    return seg_t, w_t, omw


@njit(cache=True, nogil=True, inline="always")
def _cos_sin_series(x):  # pragma: no cover - compiled
    """``(cos x, sin x)`` by their Taylor series in Horner form, for |x| < 0.5 rad
    (:func:`_cos_sin_small`); no branch, so that a loop of it vectorises."""
    u = x * x
    c = 1.0 - u * (1.0 / 2.0 - u * (1.0 / 24.0 - u * (1.0 / 720.0 - u * (1.0 / 40320.0 - u * (
        1.0 / 3628800.0 - u * (1.0 / 479001600.0 - u * (1.0 / 87178291200.0)))))))
    s = x * (1.0 - u * (1.0 / 6.0 - u * (1.0 / 120.0 - u * (1.0 / 5040.0 - u * (1.0 / 362880.0 - u * (
        1.0 / 39916800.0 - u * (1.0 / 6227020800.0 - u * (1.0 / 1307674368000.0))))))))
    return c, s


@njit(cache=True, nogil=True, inline="always")
def _cos_sin_small(x):  # pragma: no cover - compiled
    """``(cos x, sin x)``: for the small angles of the respiratory heart rotation
    (|x| < 0.5 rad) by their Taylor series in Horner form (:func:`_cos_sin_series`; the first
    omitted terms, x^16/16! and x^17/17!, are below 1e-17 there: agreement with
    ``np.cos``/``np.sin`` to within 2 ulps, tested), at ~1 ns a pair against NumPy's ~3.5 ns a
    function, which were a tenth of a default record's forward pass; ``math`` beyond."""
    if abs(x) >= 0.5:
        return math.cos(x), math.sin(x)
    return _cos_sin_series(x)


@njit(cache=True, nogil=True)
def cos_sin_small_kernel(ang, cs):  # pragma: no cover - compiled
    """``cs[2 i, t], cs[2 i + 1, t] = cos, sin of ang[i, t]`` (:func:`_cos_sin_small`)."""
    for i in range(ang.shape[0]):
        for t in range(ang.shape[1]):
            cs[2 * i, t], cs[2 * i + 1, t] = _cos_sin_small(ang[i, t])


@njit(cache=True, nogil=True)
def _trajectory_potentials_rotated_kernel(lf, seg_t, w_t, omw, src, ang, out):  # pragma: no cover - compiled
    """:func:`_trajectory_potentials_kernel` with ``src[0:3, t]`` first turned by the small
    rotation of angles ``ang[:, t]`` (rad; cosines and sines by :func:`_cos_sin_small`):
    about x, then y, then z, the operations of :func:`rotate_small_numpy` in its order."""
    n_j = lf.shape[2]
    n_t = src.shape[1]
    v = np.empty((n_j, n_t))
    small = True
    for i in range(3):
        for t in range(n_t):
            if abs(ang[i, t]) >= 0.5:
                small = False
    if small:
        # every angle in the series' range: the branch-free loop over 1-D rows vectorises
        # (the rotation was two thirds of this kernel's time, 0.20 of 0.31 ms a default record)
        a0, a1, a2 = ang[0], ang[1], ang[2]
        s0, s1, s2 = src[0], src[1], src[2]
        v0, v1, v2 = v[0], v[1], v[2]
        for t in range(n_t):
            cx, sx = _cos_sin_series(a0[t])
            cy, sy = _cos_sin_series(a1[t])
            cz, sz = _cos_sin_series(a2[t])
            x, y, z = s0[t], s1[t], s2[t]
            y, z = cx * y - sx * z, sx * y + cx * z
            x, z = cy * x + sy * z, -sy * x + cy * z
            x, y = cz * x - sz * y, sz * x + cz * y
            v0[t] = x
            v1[t] = y
            v2[t] = z
    else:
        for t in range(n_t):
            cx, sx = _cos_sin_small(ang[0, t])
            cy, sy = _cos_sin_small(ang[1, t])
            cz, sz = _cos_sin_small(ang[2, t])
            x, y, z = src[0, t], src[1, t], src[2, t]
            y, z = cx * y - sx * z, sx * y + cx * z
            x, z = cy * x + sy * z, -sy * x + cy * z
            x, y = cz * x - sz * y, sz * x + cz * y
            v[0, t], v[1, t], v[2, t] = x, y, z
    for j in range(3, n_j):
        for t in range(n_t):
            v[j, t] = src[j, t]
    _potentials_by_segment(lf, seg_t, w_t, omw, v, out)


def rotate_small_numpy(p: np.ndarray, angles: np.ndarray, *, series: bool = False) -> np.ndarray:
    """Rotate ``p [3, T]`` by time-varying angles ``[3, T]`` (rad) about x, then y, then z
    (NumPy; the rotation :func:`potentials_along_trajectory` applies with ``angles``). With
    ``series`` the cosines and sines are the kernel's own (:func:`cos_sin_small_kernel`, within
    2 ulps of NumPy's), so that the result is the kernel's bit for bit."""
    if series:
        cs = np.empty((6, angles.shape[1]))
        cos_sin_small_kernel(np.ascontiguousarray(angles, dtype=np.float64), cs)
        cx, sx, cy, sy, cz, sz = cs
    else:
        cx, sx = np.cos(angles[0]), np.sin(angles[0])
        cy, sy = np.cos(angles[1]), np.sin(angles[1])
        cz, sz = np.cos(angles[2]), np.sin(angles[2])
    x, y, z = p
    y, z = cx * y - sx * z, sx * y + cx * z
    x, z = cy * x + sy * z, -sy * x + cy * z
    x, y = cz * x - sz * y, sz * x + cz * y
    return np.stack([x, y, z])


def potentials_along_trajectory(lf: np.ndarray, times_idx: np.ndarray, src: np.ndarray,
                                angles: np.ndarray | None = None) -> np.ndarray:
    """Electrode potentials with the lead field interpolated linearly in time.

    ``phi[e, t] = sum_j L_t[e, j] src[j, t]`` where ``L_t`` interpolates ``lf`` between the
    trajectory samples ``times_idx`` (held at the end values outside them, as
    ``numpy.interp``). One pass, no ``[T, n_e, n_j]`` temporary (the NumPy twin builds it).
    With ``angles`` the dipole rows ``src[0:3]`` are first turned by
    :func:`rotate_small_numpy` ``(src[0:3], angles)`` inside the same pass (the heart turning
    with respiration), bit for bit as if rotated beforehand.

    Parameters
    ----------
    lf : ndarray, shape (K, n_e, n_j)
        Lead field (or any transfer) at the K trajectory samples, K >= 2.
    times_idx : ndarray, shape (K,)
        Increasing sample indices of the trajectory samples.
    src : ndarray, shape (n_j, T)
        Source time courses (dipole components, and any extra source coefficients).
    angles : ndarray, shape (3, T), rad, optional
        Small rotation of the dipole rows ``src[0:3]`` about x, then y, then z at every sample.

    Returns
    -------
    ndarray, shape (n_e, T), float64, in the units of ``lf * src``
    """
    lf = np.ascontiguousarray(lf, dtype=np.float64)
    xp = np.ascontiguousarray(times_idx, dtype=np.float64)
    src = np.ascontiguousarray(src, dtype=np.float64)
    if lf.ndim != 3 or lf.shape[0] < 2 or xp.shape != (lf.shape[0],) or src.ndim != 2 or src.shape[0] != lf.shape[2]:
        raise SignalError(f"lead field {lf.shape}, times {xp.shape} and source {src.shape} do not match")
    out = np.empty((lf.shape[1], src.shape[1]))
    seg_t, w_t, omw = _knot_tables(xp.tobytes(), src.shape[1])
    if angles is None:
        _trajectory_potentials_kernel(lf, seg_t, w_t, omw, src, out)
        return out
    ang = np.asarray(angles, dtype=np.float64)
    if ang.shape != (3, src.shape[1]) or src.shape[0] < 3:
        raise SignalError(f"rotation angles {ang.shape} do not match the source {src.shape} (need (3, T) and "
                         f"3 dipole rows)")
    _trajectory_potentials_rotated_kernel(lf, seg_t, w_t, omw, src, np.ascontiguousarray(ang), out)
    return out


def potentials_along_trajectory_numpy(lf: np.ndarray, times_idx: np.ndarray, src: np.ndarray) -> np.ndarray:
    """NumPy twin of :func:`potentials_along_trajectory` (np.interp's weights for all
    electrodes and components at once)."""
    k = lf.shape[0]
    n_t = src.shape[1]
    t = np.arange(n_t, dtype=np.float64)
    xp = np.asarray(times_idx, dtype=np.float64)
    i1 = np.clip(np.searchsorted(xp, t, side="right"), 1, k - 1)
    i0 = i1 - 1
    w = np.clip((t - xp[i0]) / (xp[i1] - xp[i0]), 0.0, 1.0)[:, None, None]
    lf_t = lf[i0] * (1.0 - w) + lf[i1] * w  # [T, n_e, n_j]
    return np.einsum("tej,jt->et", lf_t, src)
