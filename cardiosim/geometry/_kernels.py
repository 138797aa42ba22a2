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
* :func:`surface_walk` -- the step-and-project surface walk of
  :func:`cardiosim.geometry.displace_on_surface`; its NumPy twin (global closest point at
  every step) is ``cardiosim.geometry.surface._displace_on_surface_numpy``. Each step is
  re-located by a greedy search over triangle adjacency starting at the previous step's
  triangle (the walk's own warm start) plus a flood fill of the small ball that any closer
  triangle must meet, so a step costs a few triangle tests instead of a grid-cell scan;
  the grid is only a fallback.
* :func:`trajectory_mean` -- ``points.mean(axis=0)`` of walked trajectories ``[K, n, 3]``
  (the electrodes' mean displacement), NumPy's additions in NumPy's order.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..errors import GeometryError


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


@njit(cache=True, inline="always")
def _dist2_on(tri, t, px, py, pz):
    """Squared distance from p to triangle ``t`` of ``tri (m, 3, 3)`` and the barycentric
    coordinates (u, v, w) of the closest point: the one point-triangle test every kernel
    here and in :mod:`cardiosim.inverse._kernels` uses."""
    u, v, w = _closest_on_triangle(px, py, pz,
                                   tri[t, 0, 0], tri[t, 0, 1], tri[t, 0, 2],
                                   tri[t, 1, 0], tri[t, 1, 1], tri[t, 1, 2],
                                   tri[t, 2, 0], tri[t, 2, 1], tri[t, 2, 2])
    qx = u * tri[t, 0, 0] + v * tri[t, 1, 0] + w * tri[t, 2, 0]
    qy = u * tri[t, 0, 1] + v * tri[t, 1, 1] + w * tri[t, 2, 1]
    qz = u * tri[t, 0, 2] + v * tri[t, 1, 2] + w * tri[t, 2, 2]
    return (px - qx) ** 2 + (py - qy) ** 2 + (pz - qz) ** 2, u, v, w


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
            d2, u, v, w = _dist2_on(tri, t, px, py, pz)
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
    cell : float, metres, optional
        Grid cell size; default 1.5 median edges (at least ``reach``). Smaller cells hold
        fewer triangles each (faster queries) at the cost of more (cell, triangle) entries.
    """

    def __init__(self, tri: np.ndarray, reach: float, cell: float | None = None):
        tri = np.ascontiguousarray(tri, dtype=np.float64)
        self.tri = tri
        self.reach = float(reach)
        edges = np.linalg.norm(tri - np.roll(tri, 1, axis=1), axis=2)
        self.cell = float(max(np.median(edges) * 1.5, reach)) if cell is None else float(cell)
        if not (np.isfinite(self.cell) and self.cell > 0):
            raise GeometryError(f"grid cell must be a positive length in metres, got {cell!r}")
        lo = tri.reshape(-1, 3).min(axis=0) - reach - 1e-9
        hi = tri.reshape(-1, 3).max(axis=0) + reach + 1e-9
        self.origin = lo
        self.shape = np.maximum(np.ceil((hi - lo) / self.cell).astype(np.int64), 1)
        tlo = np.floor((tri.min(axis=1) - reach - lo) / self.cell).astype(np.int64)
        thi = np.floor((tri.max(axis=1) + reach - lo) / self.cell).astype(np.int64)
        thi = np.minimum(thi, self.shape - 1)
        ny, nz = self.shape[1], self.shape[2]
        # Every (triangle, cell of its box) pair at once, x slowest and z fastest per triangle.
        size = thi - tlo + 1
        per = size.prod(axis=1)
        owners = np.repeat(np.arange(tri.shape[0], dtype=np.int64), per)
        k = np.arange(int(per.sum()), dtype=np.int64) - np.repeat(np.cumsum(per) - per, per)
        sy, sz = size[owners, 1], size[owners, 2]
        gz = tlo[owners, 2] + k % sz
        gy = tlo[owners, 1] + (k // sz) % sy
        gx = tlo[owners, 0] + k // (sy * sz)
        cells = (gx * ny + gy) * nz + gz
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


# ----------------------------------------------------------------------------- surface walk
class WalkTopology:
    """Triangle adjacency for :func:`surface_walk`.

    Parameters
    ----------
    vertices : ndarray, shape (nv, 3), metres
    faces : ndarray, shape (m, 3), int

    Attributes
    ----------
    adjacent : ndarray (m, 3) int64
        Triangle across the edge opposite corner ``k`` (-1 on a boundary or non-manifold edge).
    ring_start, ring_items : ndarray int64
        CSR list of the triangles around each vertex (its one-ring).
    altitude : ndarray (m, 3) metres
        Height of each triangle over the edge opposite corner ``k``: a point of barycentric
        coordinate ``b_k`` is ``b_k * altitude[k]`` from that edge's line.
    """

    def __init__(self, vertices: np.ndarray, faces: np.ndarray):
        v = np.ascontiguousarray(vertices, dtype=np.float64)
        f = np.ascontiguousarray(faces, dtype=np.int64)
        m, nv = len(f), len(v)
        tri = v[f]
        opposite = np.linalg.norm(tri[:, [2, 0, 1]] - tri[:, [1, 2, 0]], axis=2)
        area2 = np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
        self.altitude = area2[:, None] / opposite
        a = f[:, [1, 2, 0]].ravel()            # edge opposite corner k joins corners k+1, k+2
        b = f[:, [2, 0, 1]].ravel()
        key = np.minimum(a, b) * nv + np.maximum(a, b)
        order = np.argsort(key, kind="stable")
        ks = key[order]
        adj = np.full(3 * m, -1, dtype=np.int64)
        # A manifold edge is shared by exactly two half-edges: pair them up.
        first = np.r_[True, ks[1:] != ks[:-1]]
        group = np.cumsum(first) - 1
        pair = np.bincount(group)[group] == 2
        lo = order[first & pair]
        hi = order[np.r_[first[1:], True] & pair]
        adj[lo] = hi // 3
        adj[hi] = lo // 3
        self.adjacent = adj.reshape(m, 3)
        flat = f.ravel()
        self.ring_start = np.concatenate([[0], np.cumsum(np.bincount(flat, minlength=nv))]).astype(np.int64)
        self.ring_items = (np.argsort(flat, kind="stable") // 3).astype(np.int64)


@njit(cache=True)
def _greedy_locate(tri, faces, adjacent, ring_start, ring_items, t, px, py, pz, max_iter):
    """Greedy closest-point search over triangle adjacency, starting at triangle ``t``.

    Moves to a neighbour only when it is strictly closer; the closest point on a
    triangle can only improve across the edge (or around the corner) it lies on, so those
    are the only neighbours examined. Returns (t, u, v, w, d2, iterations left).
    """
    d2, u, v, w = _dist2_on(tri, t, px, py, pz)
    while max_iter > 0:
        max_iter -= 1
        nz = (u == 0.0) + (v == 0.0) + (w == 0.0)
        if nz == 0:
            break
        best_t = -1
        best = d2
        bu = bv = bw = 0.0
        if nz == 1:
            k = 0 if u == 0.0 else (1 if v == 0.0 else 2)
            nb = adjacent[t, k]
            if nb >= 0:
                e2, eu, ev, ew = _dist2_on(tri, nb, px, py, pz)
                if e2 < best:
                    best, best_t, bu, bv, bw = e2, nb, eu, ev, ew
        else:
            k = 0 if u == 1.0 else (1 if v == 1.0 else 2)
            vert = faces[t, k]
            for j in range(ring_start[vert], ring_start[vert + 1]):
                nb = ring_items[j]
                if nb == t:
                    continue
                e2, eu, ev, ew = _dist2_on(tri, nb, px, py, pz)
                if e2 < best:
                    best, best_t, bu, bv, bw = e2, nb, eu, ev, ew
        if best_t < 0:
            break
        t, u, v, w, d2 = best_t, bu, bv, bw, best
    return t, u, v, w, d2, max_iter


@njit(cache=True, inline="always")
def _seg_dist2(tri, t, k, qx, qy, qz):
    """Squared distance from q to the edge of triangle t opposite corner k."""
    i, j = (k + 1) % 3, (k + 2) % 3
    ax, ay, az = tri[t, i, 0], tri[t, i, 1], tri[t, i, 2]
    ex, ey, ez = tri[t, j, 0] - ax, tri[t, j, 1] - ay, tri[t, j, 2] - az
    s = ((qx - ax) * ex + (qy - ay) * ey + (qz - az) * ez) / (ex * ex + ey * ey + ez * ez)
    s = min(1.0, max(0.0, s))
    return (qx - ax - s * ex) ** 2 + (qy - ay - s * ey) ** 2 + (qz - az - s * ez) ** 2


@njit(cache=True)
def _locate_local(tri, faces, adjacent, ring_start, ring_items, altitude, stack, t, px, py, pz, max_iter):
    """Closest surface point to p near triangle ``t``.

    A greedy search finds a local minimum (triangle t, point q at distance d). A closer
    triangle must meet the ball of radius d about p, hence the ball B of radius 2d about q;
    a flood fill over edges that cut B visits every triangle of the surface patch in B
    (one sheet of surface for d much smaller than the curvature radius and fold spacing).
    This catches what the greedy search cannot see: across a valley, or across a ridge
    from below, a neighbour can be closer while q is inside t. If the fill finds a closer
    triangle the search restarts there. ``stack`` is scratch space; returns
    (t, u, v, w, d2, converged) -- not converged if the budget or the stack ran out.
    """
    cap = stack.shape[0]
    for _ in range(4):
        t, u, v, w, d2, left = _greedy_locate(tri, faces, adjacent, ring_start, ring_items, t, px, py, pz, max_iter)
        if left <= 0:
            return t, u, v, w, d2, False
        qx = u * tri[t, 0, 0] + v * tri[t, 1, 0] + w * tri[t, 2, 0]
        qy = u * tri[t, 0, 1] + v * tri[t, 1, 1] + w * tri[t, 2, 1]
        qz = u * tri[t, 0, 2] + v * tri[t, 1, 2] + w * tri[t, 2, 2]
        r2 = 4.0 * d2
        stack[0] = t
        n_seen = 1
        head = 0
        best_t, best = -1, d2
        while head < n_seen:
            f = stack[head]
            head += 1
            for k in range(3):
                nb = adjacent[f, k]
                if nb < 0:
                    continue
                if head == 1:
                    # q lies in t: its distance to an edge's line, from barycentrics, is a
                    # cheap lower bound of the distance to the edge.
                    bk = u if k == 0 else (v if k == 1 else w)
                    if (bk * altitude[t, k]) ** 2 > r2:
                        continue
                elif _seg_dist2(tri, f, k, qx, qy, qz) > r2:
                    continue
                seen = False
                for j in range(n_seen):
                    if stack[j] == nb:
                        seen = True
                        break
                if seen:
                    continue
                if n_seen == cap:
                    return t, u, v, w, d2, False
                stack[n_seen] = nb
                n_seen += 1
                e2 = _dist2_on(tri, nb, px, py, pz)[0]
                if e2 < best:
                    best, best_t = e2, nb
        if best_t < 0:
            return t, u, v, w, d2, True
        t = best_t                   # closer triangle found: descend again from there
    return t, u, v, w, d2, False


@njit(cache=True, nogil=True, inline="always")
def _unit_normal(faces, vnormals, t, u, v, w):  # pragma: no cover - compiled
    """The unit surface normal at barycentric ``(u, v, w)`` of triangle ``t``: the vertex
    normals interpolated, then scaled by one over their length (every walk kernel's normal)."""
    a, b, c = faces[t, 0], faces[t, 1], faces[t, 2]
    nx = u * vnormals[a, 0] + v * vnormals[b, 0] + w * vnormals[c, 0]
    ny = u * vnormals[a, 1] + v * vnormals[b, 1] + w * vnormals[c, 1]
    nzz = u * vnormals[a, 2] + v * vnormals[b, 2] + w * vnormals[c, 2]
    inv = 1.0 / np.sqrt(nx * nx + ny * ny + nzz * nzz)
    return nx * inv, ny * inv, nzz * inv


@njit(cache=True)
def _surface_walk_calls_kernel(tri, faces, vnormals, adjacent, ring_start, ring_items, altitude,
                         g_origin, g_cell, g_shape, g_start, g_items,
                         raw, start_p, start_t, start_b, offsets, step, max_iter, out, n_fallback,
                         out_t, out_b):
    """The walk with each step located by a call of :func:`_locate_local`: the readable form,
    and the oracle of :func:`_surface_walk_kernel` (which writes the search out and must give
    the same bits; tests/test_geometry_displace.py)."""
    n_t, n = offsets.shape[0], offsets.shape[1]
    stack = np.empty(64, dtype=np.int64)
    one = np.empty((1, 3))
    o_tri = np.empty(1, dtype=np.int64)
    o_bary = np.empty((1, 3))
    o_d2 = np.empty(1)
    for k in range(n_t):
        for i in range(n):
            ox, oy, oz = offsets[k, i, 0], offsets[k, i, 1], offsets[k, i, 2]
            if ox == 0.0 and oy == 0.0 and oz == 0.0:
                out[k, i, 0], out[k, i, 1], out[k, i, 2] = raw[i, 0], raw[i, 1], raw[i, 2]
                out_t[k, i] = start_t[i]   # the surface point closest to the unmoved position
                out_b[k, i, 0], out_b[k, i, 1], out_b[k, i, 2] = start_b[i, 0], start_b[i, 1], start_b[i, 2]
                continue
            if k > 0 and ox == offsets[k - 1, i, 0] and oy == offsets[k - 1, i, 1] and oz == offsets[k - 1, i, 2]:
                # Held trajectory (e.g. a garment offset constant over time): same walk.
                out[k, i, 0], out[k, i, 1], out[k, i, 2] = out[k - 1, i, 0], out[k - 1, i, 1], out[k - 1, i, 2]
                out_t[k, i] = out_t[k - 1, i]
                out_b[k, i, 0], out_b[k, i, 1], out_b[k, i, 2] = out_b[k - 1, i, 0], out_b[k - 1, i, 1], out_b[k - 1, i, 2]
                continue
            px, py, pz = start_p[i, 0], start_p[i, 1], start_p[i, 2]
            t = start_t[i]
            u, v, w = start_b[i, 0], start_b[i, 1], start_b[i, 2]
            # Walked length = tangential length at the start, in equal steps <= step.
            nx, ny, nzz = _unit_normal(faces, vnormals, t, u, v, w)
            on = ox * nx + oy * ny + oz * nzz
            length = np.sqrt((ox - on * nx) ** 2 + (oy - on * ny) ** 2 + (oz - on * nzz) ** 2)
            if length > 0.0:
                n_steps = max(1, int(np.ceil(length / step)))
                h = length / n_steps
                for _s in range(n_steps):
                    nx, ny, nzz = _unit_normal(faces, vnormals, t, u, v, w)
                    on = ox * nx + oy * ny + oz * nzz
                    dx, dy, dz = ox - on * nx, oy - on * ny, oz - on * nzz
                    dn = np.sqrt(dx * dx + dy * dy + dz * dz)
                    if dn == 0.0:
                        dn = 1.0
                    cx, cy, cz = px + dx / dn * h, py + dy / dn * h, pz + dz / dn * h
                    t2, u2, v2, w2, _d2, ok = _locate_local(tri, faces, adjacent, ring_start, ring_items,
                                                            altitude, stack, t, cx, cy, cz, max_iter)
                    if not ok:
                        # Pathological mesh region: exact grid answer instead.
                        one[0, 0], one[0, 1], one[0, 2] = cx, cy, cz
                        _closest_point_grid_kernel(one, tri, g_origin, g_cell, g_shape, g_start, g_items,
                                                   o_tri, o_bary, o_d2)
                        n_fallback[0] += 1
                        if o_tri[0] >= 0 and o_d2[0] <= _d2:
                            t2, u2, v2, w2 = o_tri[0], o_bary[0, 0], o_bary[0, 1], o_bary[0, 2]
                    t, u, v, w = t2, u2, v2, w2
                    px = u * tri[t, 0, 0] + v * tri[t, 1, 0] + w * tri[t, 2, 0]
                    py = u * tri[t, 0, 1] + v * tri[t, 1, 1] + w * tri[t, 2, 1]
                    pz = u * tri[t, 0, 2] + v * tri[t, 1, 2] + w * tri[t, 2, 2]
            out[k, i, 0], out[k, i, 1], out[k, i, 2] = px, py, pz
            out_t[k, i] = t
            out_b[k, i, 0], out_b[k, i, 1], out_b[k, i, 2] = u, v, w



@njit(cache=True)
def _surface_walk_kernel(tri, faces, vnormals, adjacent, ring_start, ring_items, altitude,
                         g_origin, g_cell, g_shape, g_start, g_items,
                         raw, start_p, start_t, start_b, offsets, step, max_iter, out, n_fallback,
                         out_t, out_b):
    """:func:`_surface_walk_calls_kernel` with :func:`_locate_local` and :func:`_greedy_locate`
    written out in the step loop (the same operations in the same order): 0.49 -> 0.20 ms for
    the 251 x 9 walks of a default record."""
    n_t, n = offsets.shape[0], offsets.shape[1]
    stack = np.empty(64, dtype=np.int64)
    one = np.empty((1, 3))
    o_tri = np.empty(1, dtype=np.int64)
    o_bary = np.empty((1, 3))
    o_d2 = np.empty(1)
    # The unit normal at each start point, once: every offset of a point (one a trajectory
    # sample) measures its length there and takes its first step there (the same
    # operations on the same values; most walks of a record are one step long, so this
    # was two of their three normals).
    start_n = np.empty((n, 3))
    for i in range(n):
        t = start_t[i]
        u, v, w = start_b[i, 0], start_b[i, 1], start_b[i, 2]
        start_n[i, 0], start_n[i, 1], start_n[i, 2] = _unit_normal(faces, vnormals, t, u, v, w)
    for k in range(n_t):
        for i in range(n):
            ox, oy, oz = offsets[k, i, 0], offsets[k, i, 1], offsets[k, i, 2]
            if ox == 0.0 and oy == 0.0 and oz == 0.0:
                out[k, i, 0], out[k, i, 1], out[k, i, 2] = raw[i, 0], raw[i, 1], raw[i, 2]
                out_t[k, i] = start_t[i]   # the surface point closest to the unmoved position
                out_b[k, i, 0], out_b[k, i, 1], out_b[k, i, 2] = start_b[i, 0], start_b[i, 1], start_b[i, 2]
                continue
            if k > 0 and ox == offsets[k - 1, i, 0] and oy == offsets[k - 1, i, 1] and oz == offsets[k - 1, i, 2]:
                # Held trajectory (e.g. a garment offset constant over time): same walk.
                out[k, i, 0], out[k, i, 1], out[k, i, 2] = out[k - 1, i, 0], out[k - 1, i, 1], out[k - 1, i, 2]
                out_t[k, i] = out_t[k - 1, i]
                out_b[k, i, 0], out_b[k, i, 1], out_b[k, i, 2] = out_b[k - 1, i, 0], out_b[k - 1, i, 1], out_b[k - 1, i, 2]
                continue
            px, py, pz = start_p[i, 0], start_p[i, 1], start_p[i, 2]
            t = start_t[i]
            u, v, w = start_b[i, 0], start_b[i, 1], start_b[i, 2]
            # Walked length = tangential length at the start, in equal steps <= step.
            nx, ny, nzz = start_n[i, 0], start_n[i, 1], start_n[i, 2]
            on = ox * nx + oy * ny + oz * nzz
            length = np.sqrt((ox - on * nx) ** 2 + (oy - on * ny) ** 2 + (oz - on * nzz) ** 2)
            if length > 0.0:
                n_steps = max(1, int(np.ceil(length / step)))
                h = length / n_steps
                for _s in range(n_steps):
                    if _s > 0:   # the first step starts at the start point: its normal is start_n
                        nx, ny, nzz = _unit_normal(faces, vnormals, t, u, v, w)
                    on = ox * nx + oy * ny + oz * nzz
                    dx, dy, dz = ox - on * nx, oy - on * ny, oz - on * nzz
                    dn = np.sqrt(dx * dx + dy * dy + dz * dz)
                    if dn == 0.0:
                        dn = 1.0
                    cx, cy, cz = px + dx / dn * h, py + dy / dn * h, pz + dz / dn * h
                    # --- _locate_local(..., t, cx, cy, cz, max_iter), written out here: a
                    # call of a helper that loops over arrays increfs and decrefs each array
                    # argument (atomic NRT operations numba cannot prune across the loop), 24 per
                    # step, which cost more than the search itself. Same operations, same order.
                    t2 = t
                    ok = False
                    for _round in range(4):
                        # greedy descent (_greedy_locate) from t2
                        left = max_iter
                        _d2, u2, v2, w2 = _dist2_on(tri, t2, cx, cy, cz)
                        while left > 0:
                            left -= 1
                            nz = (u2 == 0.0) + (v2 == 0.0) + (w2 == 0.0)
                            if nz == 0:
                                break
                            best_t = -1
                            best = _d2
                            bu = bv = bw = 0.0
                            if nz == 1:
                                kk = 0 if u2 == 0.0 else (1 if v2 == 0.0 else 2)
                                nb = adjacent[t2, kk]
                                if nb >= 0:
                                    e2, eu, ev, ew = _dist2_on(tri, nb, cx, cy, cz)
                                    if e2 < best:
                                        best, best_t, bu, bv, bw = e2, nb, eu, ev, ew
                            else:
                                kk = 0 if u2 == 1.0 else (1 if v2 == 1.0 else 2)
                                vert = faces[t2, kk]
                                for j in range(ring_start[vert], ring_start[vert + 1]):
                                    nb = ring_items[j]
                                    if nb == t2:
                                        continue
                                    e2, eu, ev, ew = _dist2_on(tri, nb, cx, cy, cz)
                                    if e2 < best:
                                        best, best_t, bu, bv, bw = e2, nb, eu, ev, ew
                            if best_t < 0:
                                break
                            t2, u2, v2, w2, _d2 = best_t, bu, bv, bw, best
                        if left <= 0:
                            break                                   # budget spent: not converged
                        # flood fill of the ball any closer triangle must meet
                        qx = u2 * tri[t2, 0, 0] + v2 * tri[t2, 1, 0] + w2 * tri[t2, 2, 0]
                        qy = u2 * tri[t2, 0, 1] + v2 * tri[t2, 1, 1] + w2 * tri[t2, 2, 1]
                        qz = u2 * tri[t2, 0, 2] + v2 * tri[t2, 1, 2] + w2 * tri[t2, 2, 2]
                        r2 = 4.0 * _d2
                        stack[0] = t2
                        n_seen = 1
                        head = 0
                        best_t, best = -1, _d2
                        full = False
                        while head < n_seen and not full:
                            f = stack[head]
                            head += 1
                            for kk in range(3):
                                nb = adjacent[f, kk]
                                if nb < 0:
                                    continue
                                if head == 1:
                                    bk = u2 if kk == 0 else (v2 if kk == 1 else w2)
                                    if (bk * altitude[t2, kk]) ** 2 > r2:
                                        continue
                                elif _seg_dist2(tri, f, kk, qx, qy, qz) > r2:
                                    continue
                                seen = False
                                for j in range(n_seen):
                                    if stack[j] == nb:
                                        seen = True
                                        break
                                if seen:
                                    continue
                                if n_seen == stack.shape[0]:
                                    full = True                     # stack spent: not converged
                                    break
                                stack[n_seen] = nb
                                n_seen += 1
                                e2 = _dist2_on(tri, nb, cx, cy, cz)[0]
                                if e2 < best:
                                    best, best_t = e2, nb
                        if full:
                            break
                        if best_t < 0:
                            ok = True
                            break
                        t2 = best_t                 # closer triangle found: descend again from there
                    if not ok:
                        # Pathological mesh region: exact grid answer instead.
                        one[0, 0], one[0, 1], one[0, 2] = cx, cy, cz
                        _closest_point_grid_kernel(one, tri, g_origin, g_cell, g_shape, g_start, g_items,
                                                   o_tri, o_bary, o_d2)
                        n_fallback[0] += 1
                        if o_tri[0] >= 0 and o_d2[0] <= _d2:
                            t2, u2, v2, w2 = o_tri[0], o_bary[0, 0], o_bary[0, 1], o_bary[0, 2]
                    t, u, v, w = t2, u2, v2, w2
                    px = u * tri[t, 0, 0] + v * tri[t, 1, 0] + w * tri[t, 2, 0]
                    py = u * tri[t, 0, 1] + v * tri[t, 1, 1] + w * tri[t, 2, 1]
                    pz = u * tri[t, 0, 2] + v * tri[t, 1, 2] + w * tri[t, 2, 2]
            out[k, i, 0], out[k, i, 1], out[k, i, 2] = px, py, pz
            out_t[k, i] = t
            out_b[k, i, 0], out_b[k, i, 1], out_b[k, i, 2] = u, v, w


def surface_walk(tri: np.ndarray, faces: np.ndarray, vertex_normals: np.ndarray, topo: WalkTopology,
                 grid: TriangleGrid, raw: np.ndarray, start_p: np.ndarray, start_t: np.ndarray,
                 start_b: np.ndarray, offsets: np.ndarray, step: float, max_iter: int = 64,
                 locate: bool = False, _calls: bool = False):
    """Walk points over a triangle surface by the tangential part of their offsets.

    Each offset of tangential length ``L`` (tangential at the start point's interpolated
    normal) is walked in ``ceil(L / step)`` equal steps; every step goes along the
    offset's projection on the current interpolated normal's tangent plane and is
    projected back to the closest surface point (local search from the previous step's
    triangle, see :class:`WalkTopology`; grid fallback if it does not converge).

    Parameters
    ----------
    tri : ndarray (m, 3, 3) m; faces : ndarray (m, 3) int64; vertex_normals : ndarray (nv, 3)
    topo : WalkTopology of the mesh; grid : TriangleGrid of ``tri`` (fallback locator)
    raw : ndarray (n, 3) m
        Positions returned unchanged where an offset is exactly zero.
    start_p, start_t, start_b : ndarray (n, 3) m, (n,) int64, (n, 3)
        Closest surface point of each position: point, triangle, barycentric coordinates.
    offsets : ndarray (T, n, 3) m
    step : float, m
        Largest step.
    max_iter : int
        Budget of triangle moves of the local search per step; when it runs out the step
        is located by the grid instead (``max_iter=0``: always the grid, i.e. exactly the
        NumPy twin's global closest point).

    locate : bool
        Also return where each output point lies on the mesh.
    _calls : bool
        Run :func:`_surface_walk_calls_kernel` (the readable form; tests compare the two).

    Returns
    -------
    out : ndarray (T, n, 3) m
    n_fallback : int
        Number of steps the local search handed to the grid.
    tri, bary : ndarray (T, n) int64, ndarray (T, n, 3) -- with ``locate=True`` only
        Triangle and barycentric coordinates of each output point: the walk's last step
        (``out`` is that combination of the triangle's corners), or the start point's
        closest surface point where the offset is zero (``out`` is then the raw position).
        Saves a closest-point search for what is evaluated at the walked points (lead fields).
    """
    off = np.ascontiguousarray(offsets, dtype=np.float64)
    out = np.empty_like(off)
    nfb = np.zeros(1, dtype=np.int64)
    out_t = np.empty(off.shape[:2], dtype=np.int64)
    out_b = np.empty_like(off)
    kernel = _surface_walk_calls_kernel if _calls else _surface_walk_kernel
    kernel(np.ascontiguousarray(tri, dtype=np.float64), np.ascontiguousarray(faces, dtype=np.int64),
           np.ascontiguousarray(vertex_normals, dtype=np.float64), topo.adjacent, topo.ring_start,
           topo.ring_items, topo.altitude, grid.origin, grid.cell, grid.shape, grid.start, grid.items,
           np.ascontiguousarray(raw, dtype=np.float64), np.ascontiguousarray(start_p, dtype=np.float64),
           np.ascontiguousarray(start_t, dtype=np.int64),
           np.ascontiguousarray(start_b, dtype=np.float64), off, float(step), int(max_iter), out, nfb,
           out_t, out_b)
    if locate:
        return out, int(nfb[0]), out_t, out_b
    return out, int(nfb[0])


# ----------------------------------------------------------------------------- self-intersection
# Two non-coplanar triangles that intersect meet along a segment whose two ends each lie on
# an edge of one of them, so "some edge passes through a triangle it shares no vertex with"
# is a complete test for a surface crossing itself (touching only at a shared vertex is the
# mesh's own connectivity and is not reported). Segment-triangle test: Moller & Trumbore
# (J Graphics Tools 1997), the same arithmetic in the kernel and its NumPy twin.
@njit(cache=True)
def _edges_through_triangles_kernel(verts, edges, faces, origin, cell, shape, start, items, out):
    ny, nz = shape[1], shape[2]
    for e in range(edges.shape[0]):
        a, b = edges[e, 0], edges[e, 1]
        ox, oy, oz = verts[a, 0], verts[a, 1], verts[a, 2]
        dx, dy, dz = verts[b, 0] - ox, verts[b, 1] - oy, verts[b, 2] - oz
        lo = np.empty(3, np.int64)
        hi = np.empty(3, np.int64)
        for k in range(3):
            p, q = verts[a, k], verts[b, k]
            lo[k] = max(int(np.floor((min(p, q) - origin[k]) / cell)), 0)
            hi[k] = min(int(np.floor((max(p, q) - origin[k]) / cell)), shape[k] - 1)
        out[e] = -1
        for ix in range(lo[0], hi[0] + 1):
            for iy in range(lo[1], hi[1] + 1):
                for iz in range(lo[2], hi[2] + 1):
                    c = (ix * ny + iy) * nz + iz
                    for s in range(start[c], start[c + 1]):
                        t = items[s]
                        f0, f1, f2 = faces[t, 0], faces[t, 1], faces[t, 2]
                        if a == f0 or a == f1 or a == f2 or b == f0 or b == f1 or b == f2:
                            continue
                        if _segment_hits_triangle(ox, oy, oz, dx, dy, dz, verts[f0], verts[f1], verts[f2]):
                            if out[e] < 0 or t < out[e]:
                                out[e] = t


@njit(cache=True, inline="always")
def _segment_hits_triangle(ox, oy, oz, dx, dy, dz, p0, p1, p2):
    e1x, e1y, e1z = p1[0] - p0[0], p1[1] - p0[1], p1[2] - p0[2]
    e2x, e2y, e2z = p2[0] - p0[0], p2[1] - p0[1], p2[2] - p0[2]
    hx, hy, hz = dy * e2z - dz * e2y, dz * e2x - dx * e2z, dx * e2y - dy * e2x
    det = e1x * hx + e1y * hy + e1z * hz
    scale = (np.sqrt(e1x * e1x + e1y * e1y + e1z * e1z) * np.sqrt(e2x * e2x + e2y * e2y + e2z * e2z)
             * np.sqrt(dx * dx + dy * dy + dz * dz))
    if abs(det) <= 1e-12 * scale:
        return False          # edge parallel to the triangle's plane
    inv = 1.0 / det
    sx, sy, sz = ox - p0[0], oy - p0[1], oz - p0[2]
    u = inv * (sx * hx + sy * hy + sz * hz)
    if u < 0.0 or u > 1.0:
        return False
    qx, qy, qz = sy * e1z - sz * e1y, sz * e1x - sx * e1z, sx * e1y - sy * e1x
    v = inv * (dx * qx + dy * qy + dz * qz)
    if v < 0.0 or u + v > 1.0:
        return False
    w = inv * (e2x * qx + e2y * qy + e2z * qz)
    return 0.0 <= w <= 1.0


def edges_through_triangles(vertices: np.ndarray, faces: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """For each edge, the lowest index of a triangle it passes through (sharing no vertex), or -1.

    Parameters
    ----------
    vertices : ndarray, shape (n, 3), metres
    faces : ndarray, shape (m, 3), int
    edges : ndarray, shape (k, 2), int
        Vertex index pairs (typically every undirected edge of ``faces`` once).

    Returns
    -------
    ndarray (k,) int64
    """
    v = np.ascontiguousarray(vertices, dtype=np.float64)
    f = np.ascontiguousarray(faces, dtype=np.int64)
    e = np.ascontiguousarray(edges, dtype=np.int64)
    grid = TriangleGrid(v[f], 0.0)         # broad phase: triangles registered by bounding box
    out = np.empty(len(e), dtype=np.int64)
    _edges_through_triangles_kernel(v, e, f, grid.origin, grid.cell, grid.shape, grid.start, grid.items, out)
    return out


def edges_through_triangles_numpy(vertices: np.ndarray, faces: np.ndarray, edges: np.ndarray,
                                  chunk: int = 128) -> np.ndarray:
    """NumPy twin of :func:`edges_through_triangles`: every edge against every triangle."""
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    e = np.asarray(edges, dtype=np.int64)
    p0, p1, p2 = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    e1, e2 = p1 - p0, p2 - p0
    n1, n2 = np.linalg.norm(e1, axis=1), np.linalg.norm(e2, axis=1)
    out = np.full(len(e), -1, dtype=np.int64)
    for s in range(0, len(e), chunk):
        ee = e[s:s + chunk]
        o = v[ee[:, 0]][:, None]                   # (c, 1, 3)
        d = (v[ee[:, 1]] - v[ee[:, 0]])[:, None]
        h = np.cross(d, e2[None])
        det = (e1[None] * h).sum(-1)
        ok = np.abs(det) > 1e-12 * n1[None] * n2[None] * np.linalg.norm(d, axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = 1.0 / det
            sv = o - p0[None]
            u = inv * (sv * h).sum(-1)
            q = np.cross(sv, e1[None])
            w_ = inv * (d * q).sum(-1)
            t = inv * (e2[None] * q).sum(-1)
            hit = ok & (u >= 0) & (u <= 1) & (w_ >= 0) & (u + w_ <= 1) & (t >= 0) & (t <= 1)
        shares = (f[None, :, :, None] == ee[:, None, None, :]).any(axis=(2, 3))
        hit &= ~shares
        any_hit = hit.any(axis=1)
        out[s:s + chunk][any_hit] = np.argmax(hit[any_hit], axis=1)
    return out


# ----------------------------------------------------------------------------- trajectory mean
@njit(cache=True, nogil=True)
def _mean_rows_kernel(x, out):  # pragma: no cover - compiled
    """``out = numpy.add.reduce(x, axis=0) / K`` for a C-contiguous ``x [K, m]``: NumPy sums
    over the outer axis row after row into an output that starts at 0.0 (its identity), then
    divides by the count."""
    k, m = x.shape
    for j in range(m):
        out[j] = 0.0
    for i in range(k):
        for j in range(m):
            out[j] += x[i, j]
    for j in range(m):
        out[j] /= k


def trajectory_mean(points: np.ndarray) -> np.ndarray:
    """``points.mean(axis=0)`` of float64 points ``[K, ...]`` (K >= 1), bit for bit, in one
    small kernel: NumPy's reduction over the outer axis of a ``[251, 9, 3]`` trajectory calls
    its inner loop once per row, ~20 us a record against ~3 us here. Other dtypes (and K = 0)
    go to NumPy."""
    pts = np.asarray(points)
    if pts.dtype != np.float64 or pts.ndim < 1 or pts.shape[0] == 0:
        return pts.mean(axis=0)
    x = np.ascontiguousarray(pts).reshape(pts.shape[0], -1)
    out = np.empty(x.shape[1])
    _mean_rows_kernel(x, out)
    return out.reshape(pts.shape[1:])
