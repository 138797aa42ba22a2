"""Hold-out validation of body-surface prediction: fit on some electrodes, predict the others.

The yardstick of issue 12: with measured potentials at many surface electrodes, fit a
source (or a baseline) on a subset and compare its prediction at every other electrode,
binned by the distance to the nearest fitting electrode. Two baselines:

* :func:`nearest_copy` -- the signal of the nearest fitting electrode (what lead-mixing
  augmentation implicitly assumes when an electrode moves);
* :func:`laplacian_interpolation` -- the harmonic (cotangent-Laplacian) interpolation of the
  fitting potentials over the surface mesh, the classic body-surface-map interpolation.

Everything is compared after referencing to the mean of the fitting electrodes, the
reference a device built from those electrodes could realise.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu
from scipy.spatial.distance import cdist

from ..errors import GeometryError

#: Distance bins (m) to the nearest fitting electrode, as in issue 12.
DISTANCE_BINS = ((0.0, 0.02), (0.02, 0.03), (0.03, 0.05), (0.05, np.inf), (0.02, 0.05))


def nearest_copy(fit_positions, fit_potentials, points) -> np.ndarray:
    """Potential of the nearest fitting electrode, ``(m, T)``."""
    j = np.argmin(cdist(np.asarray(points, float), np.asarray(fit_positions, float)), axis=1)
    return np.asarray(fit_potentials, dtype=np.float64)[j]


def cotangent_laplacian(torso) -> sp.csr_matrix:
    """Cotangent Laplace-Beltrami matrix (n_vertices, n_vertices) of the surface (positive
    semi-definite, rows sum to zero; Pinkall & Polthier 1993)."""
    v, f = torso.vertices, torso.faces
    rows, cols, vals = [], [], []
    for k in range(3):
        i, j, o = f[:, k], f[:, (k + 1) % 3], f[:, (k + 2) % 3]
        a, b = v[i] - v[o], v[j] - v[o]
        cot = (a * b).sum(1) / np.linalg.norm(np.cross(a, b), axis=1)
        rows += [i, j]
        cols += [j, i]
        vals += [cot / 2, cot / 2]
    w = sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                      shape=(len(v), len(v))).tocsr()
    return (sp.diags(np.asarray(w.sum(axis=1)).ravel()) - w).tocsr()


def laplacian_interpolation(torso, fit_positions, fit_potentials, points) -> np.ndarray:
    """Harmonic interpolation over the surface: the mesh function that equals the fitting
    potentials at their nearest nodes and has zero Laplacian elsewhere, read (linearly) at
    ``points``. Returns ``(m, T)``."""
    from ..forward._kernels import interpolate_nodes

    y = np.asarray(fit_potentials, dtype=np.float64)
    _, tri, bary, _ = torso.closest_point(np.asarray(fit_positions, float))
    known = torso.faces[tri, np.argmax(bary, axis=1)]
    if len(np.unique(known)) != len(known):
        raise GeometryError("two fitting electrodes share the nearest mesh node; the mesh is too coarse "
                            "for Laplacian interpolation")
    n = len(torso.vertices)
    unknown = np.setdiff1d(np.arange(n), known)
    lap = cotangent_laplacian(torso)
    u = np.zeros((n, y.shape[1]))
    u[known] = y
    u[unknown] = splu(lap[unknown][:, unknown].tocsc()).solve(-(lap[unknown][:, known] @ y))
    _, tri, bary, _ = torso.closest_point(np.asarray(points, float))
    return interpolate_nodes(tri, bary, torso.faces, u)


def spread_subset(positions, k: int, start: int = 0) -> np.ndarray:
    """``k`` electrode indices spread over the set by farthest-point sampling from ``start``
    (a shirt's evenly spaced electrodes)."""
    p = np.asarray(positions, dtype=np.float64)
    d = cdist(p, p)
    chosen = [int(start)]
    md = d[start].copy()
    while len(chosen) < k:
        i = int(np.argmax(md))
        chosen.append(i)
        md = np.minimum(md, d[i])
    return np.array(chosen)


def twelve_lead_like_subset(positions, heart_centre) -> np.ndarray:
    """9 electrode indices placed like the 12-lead's RA, LA, LL, V1-V6 (LPS frame).

    V1-V6: electrodes within 2.5 cm of the heart's height closest in azimuth (about the
    vertical axis through the electrodes' centroid; anterior = -y) to -100, -80, -65, -50,
    -30 and -5 degrees (right of the sternum round to the left mid-axillary line); RA and LA:
    top-row electrodes nearest azimuths -140 and -40 degrees; LL: bottom row at -60 degrees.
    """
    p = np.asarray(positions, dtype=np.float64)
    c = p.mean(axis=0)
    az = np.degrees(np.arctan2(p[:, 1] - c[1], p[:, 0] - c[0]))

    def pick(cands, target, taken):
        cands = [i for i in cands if i not in taken]
        if not cands:
            raise GeometryError("not enough electrodes to place a 12-lead-like subset")
        return min(cands, key=lambda i: abs((az[i] - target + 180) % 360 - 180))

    z = p[:, 2]
    level = np.nonzero(np.abs(z - heart_centre[2]) <= 0.025)[0].tolist()
    top = np.nonzero(z >= z.max() - 0.01)[0].tolist()
    bottom = np.nonzero(z <= z.min() + 0.01)[0].tolist()
    out: list[int] = []
    for target in (-100, -80, -65, -50, -30, -5):
        out.append(pick(level, target, out))
    out.append(pick(top, -140, out))
    out.append(pick(top, -40, out))
    out.append(pick(bottom, -60, out))
    return np.array(out)


def _corr_rows(a, b):
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.where(den > 0, (a * b).sum(axis=1) / np.where(den > 0, den, 1.0), np.nan)


def holdout_scores(predicted, measured, positions, fit_index, pair_range=(0.02, 0.03)) -> dict:
    """Median r and relative RMS error per distance bin, and the neighbour-difference check.

    Parameters
    ----------
    predicted, measured : ndarray, shape (n_all, T), mV
        At every electrode (the fitting ones are ignored), both referenced to the mean of
        the fitting electrodes.
    positions : ndarray, shape (n_all, 3), metres
    fit_index : ndarray of int
    pair_range : (lo, hi) m
        Held-out electrode pairs this far apart give the difference check: correlation of
        predicted and measured ``B - A``.

    Returns
    -------
    dict
        ``bins``: list of {lo_cm, hi_cm, n, median_r, median_rel_rms}; ``pairs``: {n,
        median_r, pooled_r}.
    """
    pos = np.asarray(positions, dtype=np.float64)
    held = np.setdiff1d(np.arange(len(pos)), fit_index)
    dist = cdist(pos[held], pos[fit_index]).min(axis=1)
    pr, me = np.asarray(predicted, float)[held], np.asarray(measured, float)[held]
    r = _corr_rows(pr, me)
    rel = np.linalg.norm(pr - me, axis=1) / np.linalg.norm(me, axis=1)
    bins = []
    for lo, hi in DISTANCE_BINS:
        m = (dist >= lo) & (dist < hi)
        bins.append({"lo_cm": lo * 100, "hi_cm": hi * 100, "n": int(m.sum()),
                     "median_r": float(np.median(r[m])) if m.any() else float("nan"),
                     "median_rel_rms": float(np.median(rel[m])) if m.any() else float("nan")})
    d = cdist(pos[held], pos[held])
    ia, ib = np.nonzero(np.triu((d >= pair_range[0]) & (d < pair_range[1]), 1))
    dp, dm = pr[ib] - pr[ia], me[ib] - me[ia]
    rp = _corr_rows(dp, dm)
    pooled = float(np.corrcoef(dp.ravel(), dm.ravel())[0, 1]) if len(ia) else float("nan")
    return {"bins": bins, "pairs": {"n": int(len(ia)), "median_r": float(np.nanmedian(rp)) if len(ia) else float("nan"),
                                    "pooled_r": pooled}}


def simulated_leads(torso, sources, moments, layouts: dict, conductivity: float = 0.2) -> dict:
    """Leads that electrodes on ``torso`` record from known dipoles (a truth for inverse checks).

    The field of dipoles at ``sources`` with time courses ``moments`` through ``torso``'s
    homogeneous BEM (:class:`cardiosim.forward.BEMSolver`), read at each layout's electrodes
    (linear interpolation of the mesh nodes, the BEM's own basis) and combined by that
    layout's montage. Used to check a reconstruction (e.g. Frank leads from the 12 leads)
    where the answer is known and the reconstructing model does not share the body.

    Parameters
    ----------
    torso : TorsoMesh
        The body that generates the truth.
    sources : ndarray, shape (k, 3), metres
        Dipole positions inside ``torso``.
    moments : ndarray, shape (k, 3, T), A·m, LPS
        Dipole moment of each source over time.
    layouts : dict of {montage name: ElectrodeLayout}
        E.g. ``{"standard12": make_layout("standard12", torso), "frank": ...}``.

    Returns
    -------
    dict of {montage name: ndarray (n_leads, T) float64, mV}
        Rows in the montage's lead order (``make_montage(name).leads``).
    """
    from ..forward.bem import make_bem_solver
    from ..leads import make_montage

    src = np.asarray(sources, dtype=np.float64).reshape(-1, 3)
    mom = np.asarray(moments, dtype=np.float64)
    if mom.ndim != 3 or mom.shape[:2] != (len(src), 3):
        raise GeometryError(f"moments must have shape ({len(src)}, 3, T) for {len(src)} sources, got {mom.shape}")
    nodes = make_bem_solver(torso, conductivity).lead_fields(src)            # (n_vertices, k, 3) V/(A m)
    out = {}
    for name, layout in layouts.items():
        montage = make_montage(name)
        pos = np.stack([layout.position(e) for e in montage.electrodes])
        _, tri, bary = torso.closest_point(pos, max_distance=0.01)[:3]
        field = np.einsum("nc,nckd->nkd", bary, nodes[torso.faces[tri]])   # (n_el, k, 3)
        phi = np.einsum("nkd,kdt->nt", field, mom) * 1e3                     # mV
        out[name] = montage.matrix @ phi
    return out
