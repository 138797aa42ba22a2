"""Checks and repairs of a user's triangle surface before it becomes a :class:`TorsoMesh`.

A mesh from a scanner or a CAD export is rarely in the form the boundary-element method
needs (one closed, manifold, outward-wound surface). :func:`prepare_surface` merges
duplicated vertices (STL stores each triangle's corners separately), then raises
:class:`~cardiosim.errors.GeometryError` naming the first problem it finds -- degenerate or
duplicated triangles, boundary edges (open mesh), edges or vertices shared by more than
one sheet (non-manifold), several separate pieces, a non-orientable surface, a surface
crossing itself -- and otherwise returns the faces wound consistently with outward
normals (positive enclosed volume), whatever the file's winding.

Coordinates in messages are given in the file's units (``unit``) so a user can find the
spot in their own modelling tool.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

from ..errors import GeometryError
from ._kernels import edges_through_triangles


def _where(point: np.ndarray, to_unit: float, unit: str) -> str:
    return "(" + ", ".join(f"{x / to_unit:.4g}" for x in point) + f") {unit}"


def merge_duplicate_vertices(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge bit-identical vertices and drop the ones no face uses.

    Returns
    -------
    vertices : ndarray (n', 3); faces : ndarray (m, 3) int64 re-indexed. Vertex order
    follows the first use in the file, so an indexed mesh keeps its numbering.
    """
    v = np.ascontiguousarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    _, first, inverse = np.unique(v, axis=0, return_index=True, return_inverse=True)
    canon = first[inverse.ravel()]           # each vertex -> first vertex with the same coordinates
    f = canon[f]
    used = np.unique(f)
    remap = np.full(len(v), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    return v[used], remap[f]


def _half_edges(faces: np.ndarray) -> np.ndarray:
    """Directed edges, row ``s * m + k`` is edge ``s`` (corner s -> s+1) of face ``k``."""
    return np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])


def prepare_surface(vertices: np.ndarray, faces: np.ndarray, *, name: str = "surface", unit: str = "m",
                    to_unit: float = 1.0, check_intersections: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Validate a triangle surface and wind it outward.

    Parameters
    ----------
    vertices : ndarray, shape (n, 3), metres
    faces : ndarray, shape (m, 3), int, any winding
    name : str
        Used in error messages.
    unit, to_unit : str, float
        The file's unit and its size in metres, for coordinates in messages.
    check_intersections : bool
        Run the self-intersection test (an edge through a triangle it shares no vertex
        with; :func:`cardiosim.geometry._kernels.edges_through_triangles`).

    Returns
    -------
    vertices : ndarray (n', 3) metres, duplicates merged; faces : ndarray (m, 3) int64,
    counter-clockwise seen from outside.

    Raises
    ------
    GeometryError
        Naming the problem and where it is.
    """
    v, f = merge_duplicate_vertices(vertices, faces)
    m, n = len(f), len(v)
    if m < 4:
        raise GeometryError(f"{name}: {m} triangles cannot enclose a volume")
    t = v[f]
    extent = float(np.ptp(v, axis=0).max())
    area2 = np.linalg.norm(np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]), axis=1)
    bad = np.nonzero(area2 <= 1e-12 * extent ** 2)[0]
    if len(bad):
        i = int(bad[0])
        raise GeometryError(f"{name}: {len(bad)} degenerate (zero-area) triangles, e.g. face {i} at "
                            f"{_where(t[i].mean(0), to_unit, unit)}; remove them or re-mesh")
    key = np.sort(f, axis=1)
    _, first, counts = np.unique(key, axis=0, return_index=True, return_counts=True)
    if np.any(counts > 1):
        i = int(first[np.argmax(counts > 1)])
        raise GeometryError(f"{name}: triangle {i} at {_where(t[i].mean(0), to_unit, unit)} appears "
                            f"{int(counts.max())} times (duplicated faces)")

    # -- edges: every undirected edge must join exactly two triangles (closed, manifold)
    he = _half_edges(f)
    ukey = np.minimum(he[:, 0], he[:, 1]) * n + np.maximum(he[:, 0], he[:, 1])
    order = np.argsort(ukey, kind="stable")
    ks = ukey[order]
    starts = np.r_[0, np.nonzero(ks[1:] != ks[:-1])[0] + 1]
    sizes = np.diff(np.r_[starts, len(ks)])
    if np.any(sizes == 1):
        rows = order[starts[sizes == 1]]
        a, b = he[rows[0]]
        raise GeometryError(f"{name}: open mesh -- {len(rows)} boundary edges (used by one triangle only), "
                            f"e.g. between {_where(v[a], to_unit, unit)} and {_where(v[b], to_unit, unit)}; "
                            "the torso surface must be closed (watertight): fill the holes (neck, arms, "
                            "waist) with caps")
    if np.any(sizes > 2):
        row = order[starts[np.argmax(sizes > 2)]]
        a, b = he[row]
        raise GeometryError(f"{name}: non-manifold edge between {_where(v[a], to_unit, unit)} and "
                            f"{_where(v[b], to_unit, unit)} is shared by {int(sizes.max())} triangles "
                            "(a surface edge joins exactly two)")
    ra, rb = order[0::2], order[1::2]        # the two half-edges of each edge
    fa, fb = ra % m, rb % m
    same = he[ra, 0] == he[rb, 0]            # both triangles run the edge the same way: one is flipped

    # -- vertices: the triangles around a vertex must form one fan (else two sheets touch there)
    sa, sb = ra // m, rb // m                # slot of the edge in its face: corners s and s+1
    ca0, ca1 = fa * 3 + sa, fa * 3 + (sa + 1) % 3
    cb_u = np.where(same, fb * 3 + sb, fb * 3 + (sb + 1) % 3)
    cb_v = np.where(same, fb * 3 + (sb + 1) % 3, fb * 3 + sb)
    corners = sparse.coo_matrix((np.ones(2 * len(ra)), (np.r_[ca0, ca1], np.r_[cb_u, cb_v])), shape=(3 * m, 3 * m))
    _, fan = csgraph.connected_components(corners, directed=False)
    pairs = np.unique(np.stack([f.ravel(), fan]), axis=1)
    n_fans = np.bincount(pairs[0], minlength=n)
    if np.any(n_fans > 1):
        i = int(np.argmax(n_fans > 1))
        raise GeometryError(f"{name}: non-manifold vertex at {_where(v[i], to_unit, unit)} joins "
                            f"{int(n_fans[i])} separate sheets of triangles (two parts touch at a point)")

    # -- pieces and orientation: propagate a consistent winding over face adjacency
    adj = sparse.coo_matrix((np.r_[same, same].astype(np.int8) + 1, (np.r_[fa, fb], np.r_[fb, fa])),
                            shape=(m, m)).tocsr()
    n_pieces, piece = csgraph.connected_components(adj, directed=False)
    if n_pieces > 1:
        sizes = np.bincount(piece)
        raise GeometryError(f"{name}: the mesh has {n_pieces} separate closed pieces ({sorted(sizes.tolist())[::-1]} "
                            "triangles); a torso must be one surface (remove the others or save them as "
                            "separate files)")
    bfs, pred = csgraph.breadth_first_order(adj, 0, directed=False, return_predecessors=True)
    rel = np.asarray(adj[bfs[1:], pred[bfs[1:]]]).ravel() == 2
    flip = np.zeros(m, dtype=bool)
    for k, face in enumerate(bfs[1:].tolist()):      # parents come first in BFS order
        flip[face] = flip[pred[face]] ^ rel[k]
    f = np.where(flip[:, None], f[:, [0, 2, 1]], f)
    he = _half_edges(f)
    if np.any(he[ra, 0] == he[rb, 0]):
        raise GeometryError(f"{name}: the surface is not orientable (a Moebius-like twist): it has no inside "
                            "and outside")
    t = v[f]
    volume = float(np.einsum("ij,ij->i", t[:, 0], np.cross(t[:, 1], t[:, 2])).sum() / 6.0)
    if volume < 0:
        f = f[:, [0, 2, 1]]

    if check_intersections:
        edges = he[ra]
        hit = edges_through_triangles(v, f, edges)
        if np.any(hit >= 0):
            k = int(np.argmax(hit >= 0))
            a, b = edges[k]
            raise GeometryError(f"{name}: the surface intersects itself ({int((hit >= 0).sum())} edges pass "
                                f"through triangles), e.g. the edge from {_where(v[a], to_unit, unit)} to "
                                f"{_where(v[b], to_unit, unit)} crosses triangle {int(hit[k])} at "
                                f"{_where(v[f[hit[k]]].mean(0), to_unit, unit)}")
    return v, f
