"""Numba kernel of the surface source's prediction, with its NumPy twin (the test oracle).

:func:`surface_rows` answers "what does an electrode at ``r`` record" for many positions
at once: for each point it finds the closest triangle of the torso surface in a uniform
grid (:class:`cardiosim.geometry._kernels.TriangleGrid`; the point-triangle test is that
module's ``_dist2_on``, Ericson 2005 section 5.1.5) and interpolates the per-node table
(``SurfaceSource``'s ``node_transfer``, n_vertices x n_coefficients) with the barycentric coordinates of that
closest point -- the linear basis the BEM assumed. Locating and interpolating are one
loop, so nothing of size (n_points, 3) is allocated between them, and a triangle whose
bounding sphere lies farther than the best distance so far (initially the reach, beyond
which a point is off the torso) is skipped without the full point-triangle test.

:func:`surface_rows_numpy` does the same by brute force over every triangle
(:func:`cardiosim.geometry._kernels.closest_point_brute_numpy`) and ``einsum``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..geometry._kernels import TriangleGrid, _dist2_on, closest_point_brute_numpy


@njit(cache=True)
def _surface_rows_kernel(points, tri, centre, radius, origin, cell, shape, start, items, reach,
                         faces, values, out, out_tri):
    n = points.shape[0]
    q = values.shape[1]
    nx, ny, nz = shape[0], shape[1], shape[2]
    for i in range(n):
        px, py, pz = points[i, 0], points[i, 1], points[i, 2]
        out_tri[i] = -1
        ix = int(np.floor((px - origin[0]) / cell))
        iy = int(np.floor((py - origin[1]) / cell))
        iz = int(np.floor((pz - origin[2]) / cell))
        if ix < 0 or iy < 0 or iz < 0 or ix >= nx or iy >= ny or iz >= nz:
            continue
        c = (ix * ny + iy) * nz + iz
        best = reach * reach
        bu = 0.0
        bv = 0.0
        bw = 0.0
        for k in range(start[c], start[c + 1]):
            t = items[k]
            # bounding-sphere rejection: every point of t is >= |p - centre| - radius away
            dx, dy, dz = px - centre[t, 0], py - centre[t, 1], pz - centre[t, 2]
            lim = np.sqrt(best) + radius[t]
            if dx * dx + dy * dy + dz * dz > lim * lim:
                continue
            d2, u, v, w = _dist2_on(tri, t, px, py, pz)
            if d2 <= best:
                best = d2
                out_tri[i] = t
                bu, bv, bw = u, v, w
        t = out_tri[i]
        if t < 0:
            continue
        f0, f1, f2 = faces[t, 0], faces[t, 1], faces[t, 2]
        for j in range(q):
            out[i, j] = bu * values[f0, j] + bv * values[f1, j] + bw * values[f2, j]


class SurfaceLocator:
    """Closest-point grid of a torso surface plus the per-triangle bounding spheres the
    kernel needs; build once per mesh (cached by :func:`surface_locator`)."""

    def __init__(self, tri: np.ndarray, faces: np.ndarray, reach: float, cell: float | None = None):
        tri = np.ascontiguousarray(tri, dtype=np.float64)
        edges = np.linalg.norm(tri - np.roll(tri, 1, axis=1), axis=2)
        # Cells of half a median edge (at least the reach) hold ~3 triangles each near the
        # surface instead of ~12 at 1.5 edges: measured 2x faster queries on the default torso.
        self.grid = TriangleGrid(tri, reach, cell=max(0.5 * float(np.median(edges)), reach) if cell is None else cell)
        self.faces = np.ascontiguousarray(faces, dtype=np.int64)
        self.centre = tri.mean(axis=1)
        self.radius = np.sqrt(((tri - self.centre[:, None]) ** 2).sum(axis=2)).max(axis=1)
        self.reach = float(reach)


def surface_rows(locator: SurfaceLocator, points: np.ndarray, values: np.ndarray):
    """Per-node ``values (n_vertices, q)`` interpolated at the surface points closest to
    ``points (n, 3)`` m.

    Returns
    -------
    rows : ndarray (n, q) float64 -- undefined (zeros) where ``tri == -1``
    tri : ndarray (n,) int64 -- closest triangle, -1 for points farther than the reach
    """
    g = locator.grid
    pts = np.ascontiguousarray(points, dtype=np.float64).reshape(-1, 3)
    vals = np.ascontiguousarray(values, dtype=np.float64)
    out = np.zeros((len(pts), vals.shape[1]))
    out_tri = np.empty(len(pts), dtype=np.int64)
    _surface_rows_kernel(pts, g.tri, locator.centre, locator.radius, g.origin, g.cell, g.shape, g.start, g.items,
                         locator.reach, locator.faces, vals, out, out_tri)
    return out, out_tri


def surface_rows_numpy(tri: np.ndarray, faces: np.ndarray, points: np.ndarray, values: np.ndarray, reach: float):
    """NumPy twin of :func:`surface_rows`: brute-force closest point over every triangle."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    t, bary, dist = closest_point_brute_numpy(pts, np.asarray(tri, dtype=np.float64))[:3]
    t = np.where(dist <= reach, t, -1)
    rows = np.einsum("nk,nkj->nj", bary, np.asarray(values, dtype=np.float64)[np.asarray(faces)[np.maximum(t, 0)]])
    rows[t < 0] = 0.0
    return rows, t
