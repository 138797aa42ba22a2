"""Numba kernels of the geometry layer, each with a plain NumPy twin (the test oracle).

* :func:`closest_point_grid` / :func:`closest_point_brute_numpy` -- closest point of a
  triangle mesh to query points, with barycentric coordinates (Ericson, *Real-Time
  Collision Detection*, 2005, section 5.1.5). The numba kernel looks only at the
  triangles registered in the query point's cell of a uniform grid (each triangle is
  registered in every cell its bounding box, inflated by ``reach``, overlaps), so the
  answer is exact for any point closer than ``reach`` to the surface.
* :func:`solid_angle_sum` / :func:`solid_angle_sum_numpy` -- total solid angle a closed
  triangle mesh subtends at points (van Oosterom & Strackee, IEEE TBME 1983;30:125):
  4 pi inside, 0 outside, 2 pi on a smooth part of the surface.
"""

from __future__ import annotations

import numpy as np
from numba import njit


# ----------------------------------------------------------------------------- closest point
@njit(cache=True, inline="always")
def _closest_on_triangle(px, py, pz, ax, ay, az, bx, by, bz, cx, cy, cz):
    """Closest point of triangle abc to p; returns barycentric (u, v, w) of a, b, c."""
    abx, aby, abz = bx - ax, by - ay, bz - az
    acx, acy, acz = cx - ax, cy - ay, cz - az
    apx, apy, apz = px - ax, py - ay, pz - az
    d1 = abx * apx + aby * apy + abz * apz
    d2 = acx * apx + acy * apy + acz * apz
    if d1 <= 0.0 and d2 <= 0.0:
        return 1.0, 0.0, 0.0
    bpx, bpy, bpz = px - bx, py - by, pz - bz
    d3 = abx * bpx + aby * bpy + abz * bpz
    d4 = acx * bpx + acy * bpy + acz * bpz
    if d3 >= 0.0 and d4 <= d3:
        return 0.0, 1.0, 0.0
    vc = d1 * d4 - d3 * d2
    if vc <= 0.0 and d1 >= 0.0 and d3 <= 0.0:
        v = d1 / (d1 - d3)
        return 1.0 - v, v, 0.0
    cpx, cpy, cpz = px - cx, py - cy, pz - cz
    d5 = abx * cpx + aby * cpy + abz * cpz
    d6 = acx * cpx + acy * cpy + acz * cpz
    if d6 >= 0.0 and d5 <= d6:
        return 0.0, 0.0, 1.0
    vb = d5 * d2 - d1 * d6
    if vb <= 0.0 and d2 >= 0.0 and d6 <= 0.0:
        w = d2 / (d2 - d6)
        return 1.0 - w, 0.0, w
    va = d3 * d6 - d5 * d4
    if va <= 0.0 and (d4 - d3) >= 0.0 and (d5 - d6) >= 0.0:
        w = (d4 - d3) / ((d4 - d3) + (d5 - d6))
        return 0.0, 1.0 - w, w
    denom = 1.0 / (va + vb + vc)
    v = vb * denom
    w = vc * denom
    return 1.0 - v - w, v, w


@njit(cache=True)
def _closest_point_grid_kernel(points, tri, origin, cell, shape, start, items, out_tri, out_bary, out_dist2):
    n = points.shape[0]
    nx, ny, nz = shape[0], shape[1], shape[2]
    for i in range(n):
        px, py, pz = points[i, 0], points[i, 1], points[i, 2]
        out_tri[i] = -1
        out_dist2[i] = np.inf
        ix = int(np.floor((px - origin[0]) / cell))
        iy = int(np.floor((py - origin[1]) / cell))
        iz = int(np.floor((pz - origin[2]) / cell))
        if ix < 0 or iy < 0 or iz < 0 or ix >= nx or iy >= ny or iz >= nz:
            continue
        c = (ix * ny + iy) * nz + iz
        best = np.inf
        for k in range(start[c], start[c + 1]):
            t = items[k]
            u, v, w = _closest_on_triangle(px, py, pz,
                                           tri[t, 0, 0], tri[t, 0, 1], tri[t, 0, 2],
                                           tri[t, 1, 0], tri[t, 1, 1], tri[t, 1, 2],
                                           tri[t, 2, 0], tri[t, 2, 1], tri[t, 2, 2])
            qx = u * tri[t, 0, 0] + v * tri[t, 1, 0] + w * tri[t, 2, 0]
            qy = u * tri[t, 0, 1] + v * tri[t, 1, 1] + w * tri[t, 2, 1]
            qz = u * tri[t, 0, 2] + v * tri[t, 1, 2] + w * tri[t, 2, 2]
            d2 = (px - qx) ** 2 + (py - qy) ** 2 + (pz - qz) ** 2
            if d2 < best:
                best = d2
                out_tri[i] = t
                out_bary[i, 0] = u
                out_bary[i, 1] = v
                out_bary[i, 2] = w
        out_dist2[i] = best


class TriangleGrid:
    """Uniform grid over a triangle mesh for exact closest-point queries near the surface.

    Parameters
    ----------
    tri : ndarray, shape (m, 3, 3), float64, metres
        Triangle corner coordinates.
    reach : float, metres
        Queries closer than ``reach`` to the surface are answered exactly; farther ones
        report ``triangle = -1``.
    """

    def __init__(self, tri: np.ndarray, reach: float):
        tri = np.ascontiguousarray(tri, dtype=np.float64)
        self.tri = tri
        self.reach = float(reach)
        edges = np.linalg.norm(tri - np.roll(tri, 1, axis=1), axis=2)
        self.cell = float(max(np.median(edges) * 1.5, reach))
        lo = tri.reshape(-1, 3).min(axis=0) - reach - 1e-9
        hi = tri.reshape(-1, 3).max(axis=0) + reach + 1e-9
        self.origin = lo
        self.shape = np.maximum(np.ceil((hi - lo) / self.cell).astype(np.int64), 1)
        tlo = np.floor((tri.min(axis=1) - reach - lo) / self.cell).astype(np.int64)
        thi = np.floor((tri.max(axis=1) + reach - lo) / self.cell).astype(np.int64)
        thi = np.minimum(thi, self.shape - 1)
        cells, owners = [], []
        ny, nz = self.shape[1], self.shape[2]
        for t in range(tri.shape[0]):
            gx, gy, gz = np.meshgrid(np.arange(tlo[t, 0], thi[t, 0] + 1), np.arange(tlo[t, 1], thi[t, 1] + 1),
                                     np.arange(tlo[t, 2], thi[t, 2] + 1), indexing="ij")
            c = ((gx * ny + gy) * nz + gz).ravel()
            cells.append(c)
            owners.append(np.full(c.size, t, dtype=np.int64))
        cells = np.concatenate(cells)
        owners = np.concatenate(owners)
        order = np.argsort(cells, kind="stable")
        n_cells = int(np.prod(self.shape))
        counts = np.bincount(cells, minlength=n_cells)
        self.start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.items = owners[order].astype(np.int64)

    def query(self, points: np.ndarray):
        """Closest triangle, barycentric coordinates and distance for ``points (n, 3)``.

        Returns
        -------
        tri : ndarray (n,) int64, -1 where the point is farther than ``reach``
        bary : ndarray (n, 3) float64
        dist : ndarray (n,) float64, metres (inf where ``tri == -1``)
        """
        pts = np.ascontiguousarray(points, dtype=np.float64).reshape(-1, 3)
        n = pts.shape[0]
        out_tri = np.empty(n, dtype=np.int64)
        out_bary = np.zeros((n, 3))
        out_d2 = np.empty(n)
        _closest_point_grid_kernel(pts, self.tri, self.origin, self.cell, self.shape, self.start, self.items,
                                   out_tri, out_bary, out_d2)
        dist = np.sqrt(out_d2)
        far = dist > self.reach
        out_tri[far] = -1
        dist[far] = np.inf
        return out_tri, out_bary, dist


def closest_point_brute_numpy(points: np.ndarray, tri: np.ndarray, chunk: int = 256):
    """NumPy twin: closest point over *all* triangles (no grid, no reach limit).

    Parameters
    ----------
    points : ndarray, shape (n, 3), metres
    tri : ndarray, shape (m, 3, 3), metres

    Returns
    -------
    tri_index : ndarray (n,) int64; bary : ndarray (n, 3); dist : ndarray (n,) metres
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    a, b, c = tri[:, 0][None], tri[:, 1][None], tri[:, 2][None]
    ab, ac = b - a, c - a
    out_t = np.empty(len(pts), dtype=np.int64)
    out_b = np.empty((len(pts), 3))
    out_d = np.empty(len(pts))
    for s in range(0, len(pts), chunk):
        p = pts[s:s + chunk, None, :]
        ap, bp, cp = p - a, p - b, p - c
        d1, d2 = (ab * ap).sum(-1), (ac * ap).sum(-1)
        d3, d4 = (ab * bp).sum(-1), (ac * bp).sum(-1)
        d5, d6 = (ab * cp).sum(-1), (ac * cp).sum(-1)
        va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
        with np.errstate(divide="ignore", invalid="ignore"):
            denom = 1.0 / (va + vb + vc)
            v_in, w_in = vb * denom, vc * denom
            bary = np.stack([1 - v_in - w_in, v_in, w_in], axis=-1)
            # Regions in reverse priority so the first matching test of Ericson's order wins.
            w = (d4 - d3) / ((d4 - d3) + (d5 - d6))
            m = (va <= 0) & ((d4 - d3) >= 0) & ((d5 - d6) >= 0)
            bary[m] = np.stack([0 * w, 1 - w, w], axis=-1)[m]
            w = d2 / (d2 - d6)
            m = (vb <= 0) & (d2 >= 0) & (d6 <= 0)
            bary[m] = np.stack([1 - w, 0 * w, w], axis=-1)[m]
            m = (d6 >= 0) & (d5 <= d6)
            bary[m] = (0.0, 0.0, 1.0)
            v = d1 / (d1 - d3)
            m = (vc <= 0) & (d1 >= 0) & (d3 <= 0)
            bary[m] = np.stack([1 - v, v, 0 * v], axis=-1)[m]
            m = (d3 >= 0) & (d4 <= d3)
            bary[m] = (0.0, 1.0, 0.0)
            m = (d1 <= 0) & (d2 <= 0)
            bary[m] = (1.0, 0.0, 0.0)
        q = np.einsum("pmk,mkj->pmj", bary, tri)
        dist2 = ((q - p) ** 2).sum(-1)
        j = np.argmin(dist2, axis=1)
        r = np.arange(len(j))
        out_t[s:s + chunk] = j
        out_b[s:s + chunk] = bary[r, j]
        out_d[s:s + chunk] = np.sqrt(dist2[r, j])
    return out_t, out_b, out_d


# ----------------------------------------------------------------------------- solid angles
@njit(cache=True)
def _solid_angle_sum_kernel(points, tri, out):
    for i in range(points.shape[0]):
        total = 0.0
        for t in range(tri.shape[0]):
            ax, ay, az = tri[t, 0, 0] - points[i, 0], tri[t, 0, 1] - points[i, 1], tri[t, 0, 2] - points[i, 2]
            bx, by, bz = tri[t, 1, 0] - points[i, 0], tri[t, 1, 1] - points[i, 1], tri[t, 1, 2] - points[i, 2]
            cx, cy, cz = tri[t, 2, 0] - points[i, 0], tri[t, 2, 1] - points[i, 1], tri[t, 2, 2] - points[i, 2]
            la = np.sqrt(ax * ax + ay * ay + az * az)
            lb = np.sqrt(bx * bx + by * by + bz * bz)
            lc = np.sqrt(cx * cx + cy * cy + cz * cz)
            triple = ax * (by * cz - bz * cy) + ay * (bz * cx - bx * cz) + az * (bx * cy - by * cx)
            den = (la * lb * lc + (ax * bx + ay * by + az * bz) * lc + (ax * cx + ay * cy + az * cz) * lb
                   + (bx * cx + by * cy + bz * cz) * la)
            total += 2.0 * np.arctan2(triple, den)
        out[i] = total


def solid_angle_sum(points: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """Total solid angle (sr) of triangles ``tri (m, 3, 3)`` seen from ``points (n, 3)``.

    Positive when the triangles are counter-clockwise seen from outside and the point is
    inside (van Oosterom & Strackee 1983, eq. 8).
    """
    pts = np.ascontiguousarray(points, dtype=np.float64).reshape(-1, 3)
    out = np.empty(len(pts))
    _solid_angle_sum_kernel(pts, np.ascontiguousarray(tri, dtype=np.float64), out)
    return out


def solid_angle_sum_numpy(points: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """NumPy twin of :func:`solid_angle_sum`."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    a = tri[None, :, 0] - pts[:, None]
    b = tri[None, :, 1] - pts[:, None]
    c = tri[None, :, 2] - pts[:, None]
    la, lb, lc = (np.linalg.norm(x, axis=-1) for x in (a, b, c))
    triple = (a * np.cross(b, c)).sum(-1)
    den = la * lb * lc + (a * b).sum(-1) * lc + (a * c).sum(-1) * lb + (b * c).sum(-1) * la
    return (2.0 * np.arctan2(triple, den)).sum(axis=1)
