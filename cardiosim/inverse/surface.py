"""A fitted cardiac source that predicts the potential anywhere on the body surface.

The source is a distributed layer of current dipoles filling the heart region (a grid of
points 1 cm apart, three orientations each), seen through the homogeneous boundary-element
torso (:class:`cardiosim.forward.BEMSolver`, factored once for all source points). From
``n`` electrodes with potentials ``y (n, T)`` it takes the minimum-norm Tikhonov solution

    s = A_f^T (A_f A_f^T + lambda I)^-1 y,      A_f = lead fields at the electrodes

(both sides referenced to the mean of the ``n`` electrodes), with ``lambda`` chosen from
the fitting electrodes alone: Morozov's discrepancy principle against the noise estimated
from the signals (MAD of their first difference), or generalised cross-validation (Golub,
Heath & Wahba, Technometrics 1979) when the signals are too short or not oversampled. The
potential at any surface point ``r`` is then ``phi(r, t) = A(r) s(t) = transfer(r) @ y(t)``
-- a linear map of the fitted electrode signals, so prediction costs one interpolation of
an ``(N_nodes, n)`` table per point.

Why this source (measured on the Utah torso tank, docs/PHYSICS.md section 7): from 9
electrodes placed like a 12-lead it predicts electrodes 2-5 cm away at median r 0.994 and
relative RMS error 0.13-0.17, where copying the nearest electrode gives 0.51 and Laplacian
interpolation 0.50; a single fixed dipole leaves 19-83 % of a real 12-lead record as a
residual that cannot move with the electrodes (issue 12).

The heart region comes from a hint -- a heart (or cage) surface mesh, or a point (a ball of
radius 4.5 cm around it; with ``heart_search`` the ball's centre is the lattice point within
that distance whose ball gives the signals the highest marginal likelihood,
:func:`select_heart`) -- or, without one, from the best single-dipole location over a grid
inside the torso (the point whose dipole explains most of the fitting signals).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError, GeometryError, LeadError, SignalError
from ..forward.bem import MAX_DISTANCE, locate_on_surface, make_bem_solver
from ..forward._kernels import interpolate_nodes
from ..forward.models import _check_points
from ..geometry._kernels import solid_angle_sum
from ._kernels import SurfaceLocator, surface_rows

#: Spacing of the source grid (m): 1 cm resolves the heart's size (~12 cm) while keeping the
#: source space to a few hundred points.
SOURCE_SPACING = 0.01
#: Radius (m) of the heart region around a point hint or an estimated position: half the
#: length of an adult heart (~9-12 cm). The tank result barely changes from 4 to 6 cm.
HEART_RADIUS = 0.045
#: Source points closer than this to the torso surface are dropped (m).
SURFACE_MARGIN = 0.01
#: Above this many source points the grid is coarsened (fit cost grows with 3 x points).
MAX_SOURCE_POINTS = 800
#: Fewest electrodes: with a common reference, n electrodes carry n - 1 independent
#: signals; fewer than 3 cannot even determine a dipole.
MIN_ELECTRODES = 4
#: Relative Tikhonov parameters searched (times the mean squared singular value).
LAMBDA_GRID = np.logspace(-9.0, 1.0, 61)
_MV_PER_V = 1e3
#: An electrode whose peak-to-peak is below this (mV) is flat: a dead channel, or the reference.
FLAT_PTP_MV = 1e-3


# The nine electrodes of the standard 12-lead and the eight independent leads they give.
ELECTRODES_12 = ("RA", "LA", "LL", "V1", "V2", "V3", "V4", "V5", "V6")
INDEPENDENT_12 = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")


def standard12_potentials(signal: np.ndarray, leads) -> np.ndarray:
    """Potentials (9, T) mV of RA, LA, LL, V1-V6 against the Wilson terminal, from I, II, V1-V6.

    Exact: with WCT = (RA + LA + LL) / 3, RA = -(I + II)/3, LA = (2 I - II)/3,
    LL = (2 II - I)/3, and Vk is already referenced to WCT.
    """
    from ..leads import normalize_lead_name

    x = np.asarray(signal, dtype=np.float64)
    leads = tuple(normalize_lead_name(n) for n in leads)
    missing = [n for n in INDEPENDENT_12 if n not in leads]
    if missing:
        raise LeadError(f"electrode potentials need leads {INDEPENDENT_12}; missing {missing}")
    i, ii = x[leads.index("I")], x[leads.index("II")]
    v = x[[leads.index(f"V{k}") for k in range(1, 7)]]
    return np.vstack([-(i + ii) / 3, (2 * i - ii) / 3, (2 * ii - i) / 3, v])


# ------------------------------------------------------------------------------ checks
def _check_positions(positions, torso) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise GeometryError(f"electrode positions must have shape (n, 3) in metres, got {pos.shape}")
    if not np.all(np.isfinite(pos)):
        bad = np.nonzero(~np.isfinite(pos).all(axis=1))[0].tolist()
        raise GeometryError(f"electrode positions {bad} contain NaN or infinite coordinates")
    if np.abs(pos).max() > 5.0:
        i = int(np.argmax(np.abs(pos).max(axis=1)))
        raise GeometryError(f"electrode {i} at {pos[i].tolist()} is more than 5 m from the origin -- "
                            "millimetres given as metres? (positions must be in metres)")
    if len(pos) < MIN_ELECTRODES:
        raise LeadError(f"a surface source needs at least {MIN_ELECTRODES} electrodes (n - 1 independent "
                        f"signals with a common reference), got {len(pos)}")
    _, tri, bary, dist = torso.closest_point(pos)
    far = np.nonzero(dist > MAX_DISTANCE)[0]
    if len(far):
        i = int(far[np.argmax(dist[far])])
        raise GeometryError(f"electrode {i} at {pos[i].tolist()} m is {dist[i] * 100:.1f} cm from the surface of "
                            f"{torso.name!r} (allowed {MAX_DISTANCE * 100:.0f} cm): electrode off the torso "
                            f"({len(far)} electrode(s) off: {far.tolist()})")
    return pos, tri, bary


def _check_potentials(potentials, n: int) -> np.ndarray:
    y = np.asarray(potentials, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2 or y.shape[0] != n or y.shape[1] < 1:
        raise SignalError(f"potentials must have shape (n_electrodes={n}, T), got {np.shape(potentials)}")
    if not np.all(np.isfinite(y)):
        bad = np.nonzero(~np.isfinite(y).all(axis=1))[0].tolist()
        raise SignalError(f"potentials contain NaN or infinite samples at electrodes {bad}")
    # One electrode may read flat (the common reference itself); two or more are dead channels.
    flat = np.nonzero(np.ptp(y, axis=1) < FLAT_PTP_MV)[0]
    if len(flat) > 1:
        raise SignalError(f"electrodes {flat.tolist()} are flat (peak-to-peak < {FLAT_PTP_MV * 1e3:g} uV): "
                          "disconnected or dead channels cannot be fitted (one flat electrode is allowed: "
                          "the reference)")
    y = y - y.mean(axis=0)
    if np.abs(y).max() < 1e-9:
        raise SignalError("potentials are flat: every electrode reads the same value at every sample "
                          "(no spatial signal to fit; check the channels and units, mV)")
    return y


# ------------------------------------------------------------------------ source space
def _grid_inside(vertices, faces, spacing) -> np.ndarray:
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    axes = [np.arange(a + spacing / 2, b, spacing) for a, b in zip(lo, hi)]
    g = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    om = solid_angle_sum(g, np.ascontiguousarray(vertices[faces]))
    return g[np.abs(om) > 2 * np.pi]           # inside whatever the winding


def _keep_inside(torso, pts: np.ndarray, margin: float = SURFACE_MARGIN) -> np.ndarray:
    if len(pts) == 0:
        return pts
    pts = pts[torso.contains(pts)]
    if len(pts) == 0:
        return pts
    _, _, _, d = torso.closest_point(pts)
    return pts[d >= margin]


def _ball(centre, radius, spacing) -> np.ndarray:
    ax = np.arange(-radius, radius + 1e-12, spacing)
    g = np.stack(np.meshgrid(ax, ax, ax, indexing="ij"), axis=-1).reshape(-1, 3)
    return g[np.linalg.norm(g, axis=1) <= radius + 1e-12] + centre


def source_space(torso, heart, spacing: float = SOURCE_SPACING, radius: float = HEART_RADIUS) -> np.ndarray:
    """Source points (k, 3) m filling the heart region given by a hint.

    Parameters
    ----------
    torso : TorsoMesh
    heart : (3,) array (a point, m) or an object with ``vertices (n, 3)`` m and ``faces``
        (a heart or cage surface): a ball of ``radius`` around the point, or the inside of
        the surface, on a grid of ``spacing`` (coarsened to at most 800 points), keeping
        points at least 1 cm inside the torso.
    """
    if hasattr(heart, "vertices") and hasattr(heart, "faces"):
        v = np.asarray(heart.vertices, dtype=np.float64)
        f = np.asarray(heart.faces, dtype=np.int64)
        if not np.all(np.isfinite(v)) or np.abs(v).max() > 5.0:
            raise GeometryError("heart mesh coordinates must be finite metres (largest |coordinate| "
                                f"{np.nanmax(np.abs(v)):.3g}) -- millimetres given as metres?")
        step = spacing
        pts = _grid_inside(v, f, step)
        while len(pts) > MAX_SOURCE_POINTS:
            step *= (len(pts) / MAX_SOURCE_POINTS) ** (1 / 3) * 1.02
            pts = _grid_inside(v, f, step)
        what = f"heart mesh ({len(v)} vertices)"
    else:
        from ..forward.models import _check_position
        c = _check_position(heart, what="heart position")
        if not bool(torso.contains(c[None])[0]):
            raise GeometryError(f"heart position {c.tolist()} m is outside the torso {torso.name!r}")
        step = spacing
        while (4 / 3) * np.pi * radius ** 3 / step ** 3 > MAX_SOURCE_POINTS:
            step *= 1.1
        pts = _ball(c, radius, step)
        what = f"ball of radius {radius * 100:.1f} cm around {c.tolist()}"
    pts = _keep_inside(torso, pts)
    if len(pts) < 4:
        raise GeometryError(f"the heart region ({what}) leaves {len(pts)} source points at least "
                            f"{SURFACE_MARGIN * 100:.0f} cm inside the torso {torso.name!r}; "
                            "is it in the same frame and units?")
    return pts


def _positions_key(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())
    return h.hexdigest()


def _cache_put(torso, key, value, keep: int = 32):
    """Store ``value`` in the mesh's cache, keeping the newest ``keep`` entries of its kind."""
    same = [k for k in torso._cache if isinstance(k, tuple) and k[0] == key[0]]
    for k in same[:max(0, len(same) - keep + 1)]:
        del torso._cache[k]
    torso._cache[key] = value
    return value


def surface_locator(torso) -> SurfaceLocator:
    """The prediction kernel's closest-point structure for ``torso`` (cached on the mesh)."""
    key = ("surface-locator", MAX_DISTANCE)
    loc = torso._cache.get(key)
    if loc is None:
        loc = torso._cache[key] = SurfaceLocator(torso.triangles, torso.faces, MAX_DISTANCE)
    return loc


def estimate_heart_position(torso, positions, potentials, conductivity: float = 0.2) -> np.ndarray:
    """Location (3,) m of the single dipole that best explains the fitting signals.

    A coarse 3 cm grid over the inside of the torso (at least 3 cm from the surface), then a
    1 cm grid within 2 cm of the best coarse point; the criterion is the fraction of
    the first difference of ``potentials`` (referenced to their mean) a free dipole time
    course at the point leaves unexplained. Lead fields at the electrodes are cached per torso and electrode set.
    """
    pos, tri, bary = _check_positions(positions, torso)
    y = _check_potentials(potentials, len(pos))
    return _estimate(torso, pos, tri, bary, y, conductivity)


def _estimate(torso, pos, tri, bary, y, conductivity):
    # The first difference weights the fast heart signal (QRS) over baseline wander, which is
    # not a heart source and otherwise pulls the estimate anywhere in the body.
    y = np.diff(y, axis=1) if y.shape[1] > 2 else y
    ev, u = np.linalg.eigh(y @ y.T)                         # (n, n): y's column space and energy
    ys = u * np.sqrt(np.clip(ev, 0.0, None))                 # without an SVD of the long (n, T) array
    solver = make_bem_solver(torso, conductivity)

    def electrode_fields(cands, tag):
        key = ("surface-candidates", tag, _positions_key(pos, cands), conductivity)
        a = torso._cache.get(key)
        if a is None:
            lf = solver.lead_fields(cands)                  # (N, k, 3)
            a = interpolate_nodes(tri, bary, torso.faces, lf.reshape(len(lf), -1)).reshape(len(pos), len(cands), 3)
            a = np.moveaxis(a - a.mean(axis=0), 1, 0)       # (k, n, 3) referenced
            a = _cache_put(torso, key, np.linalg.qr(a)[0], keep=64)
        return a

    def best(cands, tag):
        q = electrode_fields(cands, tag)
        explained = np.einsum("kni,nt->kit", q, ys)
        res = (ys ** 2).sum() - (explained ** 2).sum(axis=(1, 2))
        return cands[int(np.argmin(res))]

    key = ("surface-coarse-grid",)
    coarse = torso._cache.get(key)
    if coarse is None:
        v = torso.vertices
        coarse = _keep_inside(torso, _grid_inside(v, torso.faces, 0.03), margin=0.03)
        if len(coarse) == 0:
            coarse = _keep_inside(torso, _grid_inside(v, torso.faces, 0.015), margin=0.015)
        torso._cache[key] = coarse
    c0 = best(coarse, "coarse")
    key = ("surface-fine-grid", _positions_key(c0))
    fine = torso._cache.get(key)
    if fine is None:
        fine = _cache_put(torso, key, _keep_inside(torso, _ball(c0, 0.02, 0.01), margin=0.02), keep=256)
    return best(fine, "fine") if len(fine) else c0


# ------------------------------------------------------------- heart centre by evidence
#: Radius (m) searched around a point hint for the heart centre when ``heart_search`` is
#: used: people's hearts sit within a few centimetres of the anatomical mean.
HEART_SEARCH_RADIUS = 0.03
#: Relative noise levels over which the evidence is maximised (times the mean eigenvalue).
_EVIDENCE_LAMBDAS = np.logspace(-6.0, 0.0, 25)


def _candidate_grams(torso, pos, tri, bary, around, search, spacing, radius, conductivity):
    """Candidate centres (m, 3) on the source lattice within ``search`` of ``around`` and, for
    each, the referenced Gram matrix ``A_c A_c^T`` (m, n, n) of its source ball at the electrodes.

    One BEM solve for the union of all balls (same lattice, so each ball is a subset of it);
    cached per torso, electrodes and settings.
    """
    key = ("surface-evidence-grams", _positions_key(pos, around, [search, spacing, radius, conductivity]))
    hit = torso._cache.get(key)
    if hit is not None:
        return hit
    cands = _keep_inside(torso, _ball(around, search, spacing))
    union = _keep_inside(torso, _ball(around, search + radius, spacing))
    lf = make_bem_solver(torso, conductivity).lead_fields(union)                    # (N, u, 3)
    a = interpolate_nodes(tri, bary, torso.faces, lf.reshape(len(lf), -1)).reshape(len(pos), len(union), 3)
    a = a - a.mean(axis=0)                                                          # fitting-electrode reference
    per_point = np.einsum("iuk,juk->uij", a, a)                                     # (u, n, n)
    member = np.linalg.norm(union[None] - cands[:, None], axis=2) <= radius + 1e-9  # (m, u): ball of each centre
    grams = np.einsum("mu,uij->mij", member.astype(np.float64), per_point)
    return _cache_put(torso, key, (cands, grams), keep=8)


def log_evidence(grams: np.ndarray, y: np.ndarray, lambdas: np.ndarray = _EVIDENCE_LAMBDAS) -> np.ndarray:
    """Mean log marginal likelihood per sample of ``y (n, T)`` under each Gram matrix (m, n, n).

    The distributed source with i.i.d. Gaussian dipole strengths and white electrode noise
    makes every sample ``y_t ~ N(0, s (K / k + lam I))`` in the ``n - 1`` dimensions left by
    the common reference (``K = A A^T``, ``k = trace K / (n - 1)``); the scale ``s`` has a
    closed-form maximum and ``lam`` is maximised over ``lambdas`` (type-II maximum
    likelihood, MacKay 1992; as in the source-space model selection of Wipf & Nagarajan,
    NeuroImage 2009). Higher is a better heart region for these signals.
    """
    n = y.shape[0]
    q = np.linalg.svd(np.eye(n) - 1.0 / n)[0][:, :n - 1]                        # basis orthogonal to ones
    yq = q.T @ (y - y.mean(axis=0))
    cov = yq @ yq.T / yq.shape[1]
    kq = np.einsum("ai,mab,bj->mij", q, grams, q)
    kq /= (np.trace(kq, axis1=1, axis2=2) / (n - 1))[:, None, None]
    e, v = np.linalg.eigh(kq)                                                       # (m, n-1), (m, n-1, n-1)
    proj = np.einsum("mai,ab,mbi->mi", v, cov, v)                                   # diag(V^T C V)
    best = np.full(len(grams), -np.inf)
    for lam in lambdas:
        ev = e + lam
        scale = (proj / ev).sum(axis=1) / (n - 1)
        ll = -0.5 * ((n - 1) * np.log(scale) + np.log(ev).sum(axis=1) + (n - 1))
        best = np.maximum(best, ll)
    return best


def select_heart(torso, positions, potentials, around, search: float = HEART_SEARCH_RADIUS, *,
                 conductivity: float = 0.2, spacing: float = SOURCE_SPACING, radius: float = HEART_RADIUS):
    """Heart centre (3,) m within ``search`` of ``around`` whose source ball best explains the
    signals, by the marginal likelihood of the distributed source (:func:`log_evidence`) on
    the first difference of ``potentials`` (baseline wander is not a heart source)."""
    pos, tri, bary = _check_positions(positions, torso)
    y = _check_potentials(potentials, len(pos))
    return _select(torso, pos, tri, bary, y, np.asarray(around, dtype=np.float64), search, conductivity, spacing,
                   radius)


def _select(torso, pos, tri, bary, y, around, search, conductivity, spacing, radius):
    cands, grams = _candidate_grams(torso, pos, tri, bary, around, search, spacing, radius, conductivity)
    if len(cands) == 0:
        raise GeometryError(f"no heart centre within {search * 100:.1f} cm of {around.tolist()} lies inside "
                            f"the torso {torso.name!r}")
    yd = np.diff(y, axis=1) if y.shape[1] > 2 else y
    return cands[int(np.argmax(log_evidence(grams, yd)))]


# ------------------------------------------------------------------------- the operator
@dataclass(frozen=True, eq=False)
class _Operator:
    """Everything of a fit that depends on the geometry only (cached per torso/electrodes)."""

    u: np.ndarray            # (n, r) left singular vectors of the referenced A_f
    s: np.ndarray            # (r,)
    node_v: np.ndarray       # (N, r) referenced node lead fields times V
    moment_v: np.ndarray     # (3, r) total dipole moment of each right singular vector
    node_dipole: np.ndarray  # (N, 3) lead field at the centre, same reference
    source_points: np.ndarray
    centre: np.ndarray


def _operator(torso, tri, bary, pts, centre, conductivity) -> _Operator:
    solver = make_bem_solver(torso, conductivity)
    lf = solver.lead_fields(np.vstack([pts, centre[None]]))          # (N, k + 1, 3)
    n_nodes = len(torso.vertices)
    a_nodes = lf[:, :-1].reshape(n_nodes, -1)
    a_el = interpolate_nodes(tri, bary, torso.faces, lf.reshape(n_nodes, -1))
    ref = a_el.mean(axis=0)                                           # reference: fitting-electrode mean
    a_f = (a_el - ref)[:, :-3]
    u, s, vt = np.linalg.svd(a_f, full_matrices=False)
    keep = s > s[0] * 1e-10                                           # drops the reference direction
    u, s, vt = u[:, keep], s[keep], vt[keep]
    node_v = (a_nodes - ref[:-3]) @ vt.T
    moment_v = vt.reshape(len(s), len(pts), 3).sum(axis=1).T
    node_dipole = lf[:, -1] - ref[-3:]
    return _Operator(u, s, node_v, moment_v, node_dipole, pts, centre)


def _cached_operator(torso, pos, tri, bary, heart, conductivity, spacing, radius) -> _Operator:
    if hasattr(heart, "vertices"):
        hv = np.asarray(heart.vertices, dtype=np.float64)
        key = ("surface-operator", _positions_key(pos, hv, np.asarray(heart.faces, dtype=np.float64),
                                                  [conductivity, spacing, radius]))
    else:
        key = ("surface-operator", _positions_key(pos, heart, [conductivity, spacing, radius]))
    op = torso._cache.get(key)
    if op is None:
        pts = source_space(torso, heart, spacing, radius)
        # the total moment sits at the hint point, or the centre of a heart mesh's source grid
        centre = pts.mean(axis=0) if hasattr(heart, "vertices") else np.asarray(heart, dtype=np.float64)
        op = _cache_put(torso, key, _operator(torso, tri, bary, pts, centre, conductivity))
    return op


def gcv_curve(u: np.ndarray, s: np.ndarray, y: np.ndarray, lambdas: np.ndarray = LAMBDA_GRID) -> np.ndarray:
    """Generalised cross-validation score of Tikhonov regularisation for each relative lambda.

    ``GCV = ||(I - H) y||^2 / (n_eff - trace H)^2`` with ``H = U diag(s^2 / (s^2 + lam))
    U^T`` and ``lam = lambdas * mean(s^2)``; ``n_eff = len(s)`` (the referenced data live in
    that many dimensions). Summed over all time samples (Golub, Heath & Wahba 1979).
    """
    uy2 = ((u.T @ y) ** 2).sum(axis=1)                                # (r,)
    outside = max(float((y ** 2).sum() - uy2.sum()), 0.0)
    s2 = s ** 2
    lam = np.asarray(lambdas)[:, None] * s2.mean()
    f = s2 / (s2 + lam)                                               # (n_lambda, r)
    res = ((1 - f) ** 2 * uy2).sum(axis=1) + outside
    return res / (len(s) - f.sum(axis=1)) ** 2


# ------------------------------------------------------------------------------ the model
@dataclass(frozen=True, eq=False)
class SurfaceSource:
    """A distributed heart source fitted to body-surface electrodes.

    ``predict(points) = transfer(points) @ coefficients``: the potential (mV) at any point on
    the surface, referenced to the mean of the fitting electrodes.

    Attributes
    ----------
    torso : TorsoMesh
    positions : ndarray, shape (n, 3), metres -- the fitting electrodes
    coefficients : ndarray, shape (n, T), float64, mV -- their potentials, mean-referenced
    node_transfer : ndarray, shape (n_vertices, n) -- potential at each mesh node per unit of
        each coefficient row
    node_dipole : ndarray, shape (n_vertices, 3), V/(A·m) -- lead field of the source's total
        dipole moment at ``centre`` (same reference)
    moment : ndarray, shape (3, n), A·m per mV -- total dipole moment per coefficient row
        (``node_transfer`` is in mV per mV, ``node_dipole`` in V per A·m, hence the 1e3s)
    source_points : ndarray, shape (k, 3), metres
    centre : ndarray, shape (3,), metres -- centre of the source points
    regularization : float -- chosen lambda relative to the mean squared singular value
    heart_estimated : bool -- the heart region was estimated from the data (no hint)
    """

    torso: object
    positions: np.ndarray
    coefficients: np.ndarray
    node_transfer: np.ndarray
    node_dipole: np.ndarray
    moment: np.ndarray
    source_points: np.ndarray
    centre: np.ndarray
    regularization: float
    heart_estimated: bool = False
    _grid: object = field(default=None, repr=False)        # SurfaceLocator of the torso
    _node_nondipolar: object = field(default=None, repr=False)
    _node_split: object = field(default=None, repr=False)

    @property
    def n_samples(self) -> int:
        return self.coefficients.shape[1]

    def __getstate__(self):
        # The mesh travels without its caches (BEM factorisation, search grids: megabytes);
        # they are rebuilt on first use after unpickling.
        import dataclasses

        state = dict(self.__dict__)
        state["torso"] = dataclasses.replace(self.torso)
        state["_grid"] = None
        state["_node_nondipolar"] = None
        state["_node_split"] = None
        return state

    def __setstate__(self, state):
        for k, v in state.items():
            object.__setattr__(self, k, v)

    @property
    def dipole(self) -> np.ndarray:
        """Total dipole moment of the source, ``(3, T)`` A·m (patient frame)."""
        return self.moment @ self.coefficients

    def locate(self, points: np.ndarray):
        """Triangle (m,) and barycentric coordinates (m, 3) of surface points (off > 1 cm: error)."""
        return locate_on_surface(self.torso, self.torso.grid(MAX_DISTANCE), points)

    def _rows(self, points: np.ndarray, node: np.ndarray) -> np.ndarray:
        # One numba pass locates each point and interpolates the node table
        # (cardiosim/inverse/_kernels.py; NumPy twin surface_rows_numpy is its test oracle).
        pts = _check_points(points).reshape(-1, 3)
        loc = self._grid if isinstance(self._grid, SurfaceLocator) else surface_locator(self.torso)
        rows, tri = surface_rows(loc, pts, node)
        if np.any(tri < 0):
            i = int(np.argmax(tri < 0))
            _, _, _, d = self.torso.closest_point(pts[i:i + 1])
            raise GeometryError(f"point {i} at {pts[i].tolist()} is {d[0] * 100:.1f} cm from the surface of "
                                f"{self.torso.name!r} (allowed {MAX_DISTANCE * 100:.0f} cm): electrode off the torso")
        return rows

    def transfer(self, points: np.ndarray) -> np.ndarray:
        """Transfer rows ``(m, n)``: ``potential(points) = transfer(points) @ coefficients``."""
        return self._rows(points, self.node_transfer)

    def nondipolar_transfer(self, points: np.ndarray) -> np.ndarray:
        """Transfer rows ``(m, n)`` of what the source's total dipole (at ``centre``) does not
        explain: ``transfer - L_centre @ moment``."""
        return self._rows(points, self._nondipolar_nodes())

    def _nondipolar_nodes(self) -> np.ndarray:
        node = self._node_nondipolar
        if node is None:
            node = self.node_transfer - _MV_PER_V * (self.node_dipole @ self.moment)
            object.__setattr__(self, "_node_nondipolar", node)
        return node

    def split_transfer(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Both parts of the field at ``points (m, 3)`` in one pass over the surface:
        the lead field ``(m, 3)`` V/(A·m) of ``node_dipole`` and :meth:`nondipolar_transfer`
        ``(m, n)``, so that ``potential = 1e3 * lead @ dipole + nondipolar @ coefficients``.

        After ``with_dipole(bem.node_lead_field)`` the first part is ``bem.lead_field(points)``
        (the BEM's own linear basis; equal to rounding), so a simulator that needs both pays
        for one closest-point search instead of two.
        """
        table = self._node_split
        if table is None:
            table = np.hstack([self.node_dipole, self._nondipolar_nodes()])
            object.__setattr__(self, "_node_split", table)
        rows = self._rows(points, table)
        return rows[:, :3], rows[:, 3:]

    def with_dipole(self, node_lead_field: np.ndarray) -> "SurfaceSource":
        """The same field split at another dipole: ``moment`` becomes the dipole whose field
        through ``node_lead_field`` (n_vertices, 3) V/(A·m) -- e.g. a forward model's lead field
        at the torso's heart position -- best matches the source's potential over the whole
        surface (area-weighted least squares, constant offset free); ``nondipolar_transfer``
        is the rest. Predictions do not change.
        """
        from ..forward.bem import node_area_weights

        lf = np.asarray(node_lead_field, dtype=np.float64)
        if lf.shape != (len(self.torso.vertices), 3) or not np.all(np.isfinite(lf)):
            raise GeometryError(f"node lead field must be finite with shape ({len(self.torso.vertices)}, 3), "
                                f"got {lf.shape}")
        w = node_area_weights(self.torso.vertices, self.torso.faces)
        w = w / w.sum()
        sw = np.sqrt(w)[:, None]
        a = sw * (_MV_PER_V * (lf - w @ lf))
        b = sw * (self.node_transfer - w @ self.node_transfer)
        moment = np.linalg.lstsq(a, b, rcond=None)[0]                 # (3, n) A·m per mV
        return SurfaceSource(torso=self.torso, positions=self.positions, coefficients=self.coefficients,
                             node_transfer=self.node_transfer, node_dipole=lf, moment=moment,
                             source_points=self.source_points, centre=self.centre,
                             regularization=self.regularization, heart_estimated=self.heart_estimated,
                             _grid=self._grid)

    def predict(self, points: np.ndarray) -> np.ndarray:
        """Potentials ``(m, T)`` float32 mV at surface ``points (m, 3)`` m, referenced to the
        mean of the fitting electrodes."""
        return (self.transfer(points) @ self.coefficients).astype(np.float32)

    def __repr__(self):
        return (f"SurfaceSource(torso={self.torso.name!r}, n_electrodes={len(self.positions)}, "
                f"n_samples={self.n_samples}, n_source_points={len(self.source_points)}, "
                f"regularization={self.regularization:.3g}, heart_estimated={self.heart_estimated})")


def fit_surface_source(torso, positions, potentials, heart=None, *, conductivity: float = 0.2,
                       spacing: float = SOURCE_SPACING, radius: float = HEART_RADIUS,
                       regularization: float | str = "discrepancy", heart_search: float = 0.0) -> SurfaceSource:
    """Fit a distributed heart source to body-surface potentials (module docstring).

    Parameters
    ----------
    torso : TorsoMesh
        Closed outward surface in metres (:func:`cardiosim.geometry.read_torso`).
    positions : ndarray, shape (n, 3), metres
        Electrodes on (within 1 cm of) the surface; n >= 4.
    potentials : ndarray, shape (n, T), mV
        Any common reference (it is removed).
    heart : None, (3,) point (m), or a surface with ``vertices``/``faces`` (m)
        Where the heart is. None: estimated (:func:`estimate_heart_position`).
    conductivity : float, S/m
        Scales the source strength only; predictions do not depend on it.
    spacing, radius : float, m
        Source grid spacing; ball radius around a point hint.
    regularization : {'discrepancy', 'gcv'} or float
        How lambda is chosen, from the fitting electrodes alone: ``'discrepancy'`` (default,
        Morozov) leaves a misfit equal to the noise estimated from the signals themselves
        (:func:`noise_level`); ``'gcv'`` minimises generalised cross-validation; a number
        fixes the relative lambda.
    heart_search : float, m
        With a point hint and ``heart_search > 0``: the centre of the source ball is the
        point of the source lattice within this distance of the hint whose ball best explains
        the signals (:func:`select_heart`, marginal likelihood); e.g.
        :data:`HEART_SEARCH_RADIUS`. 0 (default): the hint itself.

    Returns
    -------
    SurfaceSource

    Raises
    ------
    GeometryError
        Electrode more than 1 cm off the surface (named), coordinates in millimetres, heart
        outside the torso.
    LeadError
        Fewer than 4 electrodes.
    SignalError
        Shape mismatch, NaN/inf samples (electrodes named), flat potentials.
    """
    pos, tri, bary = _check_positions(positions, torso)
    y = _check_potentials(potentials, len(pos))
    search = float(heart_search)
    if not (np.isfinite(search) and 0.0 <= search <= 0.1):
        raise ConfigError(f"heart_search must be a distance in metres in [0, 0.1], got {heart_search!r}")
    if search and (heart is None or hasattr(heart, "vertices")):
        raise ConfigError("heart_search needs a point hint (heart=(x, y, z) m): it searches around that point")
    estimated = heart is None
    if estimated:            # a point of a fixed 1 cm lattice, so its operator is cached too
        heart = _estimate(torso, pos, tri, bary, y, conductivity)
    elif search:
        from ..forward.models import _check_position
        heart = _select(torso, pos, tri, bary, y, _check_position(heart, what="heart position"), search,
                        conductivity, spacing, radius)
        estimated = True
    op = _cached_operator(torso, pos, tri, bary, heart, conductivity, spacing, radius)
    return _solve(torso, pos, y, op, regularization, estimated)


def noise_level(y: np.ndarray) -> np.ndarray:
    """Per-electrode white-noise SD (mV) of ``y (n, T)``: the median absolute deviation of the
    first difference, / (0.6745 sqrt 2). The median ignores the few steep QRS samples, so the
    slow heart signal barely contributes (Donoho & Johnstone 1994 use the same MAD rule)."""
    d = np.diff(np.asarray(y, dtype=np.float64), axis=1)
    mad = np.median(np.abs(d - np.median(d, axis=1, keepdims=True)), axis=1)
    return mad / (0.6745 * np.sqrt(2.0))


def discrepancy_lambda(u: np.ndarray, s: np.ndarray, y: np.ndarray, sigma: np.ndarray,
                       lambdas: np.ndarray = LAMBDA_GRID) -> float:
    """Morozov's discrepancy principle: the largest relative lambda whose misfit does not
    exceed the noise, ``||y - H y||^2 <= T (n - 1)/n * sum(sigma^2)`` (the mean-referenced
    noise energy); the smallest lambda of the grid if none does."""
    uy2 = ((u.T @ y) ** 2).sum(axis=1)
    outside = max(float((y ** 2).sum() - uy2.sum()), 0.0)
    s2 = s ** 2
    f = s2 / (s2 + np.asarray(lambdas)[:, None] * s2.mean())
    misfit = ((1 - f) ** 2 * uy2).sum(axis=1) + outside
    n, t = y.shape
    ok = np.nonzero(misfit <= t * (n - 1) / n * float((sigma ** 2).sum()))[0]
    return float(lambdas[ok.max()]) if len(ok) else float(lambdas[0])


def _solve(torso, pos, y, op: _Operator, regularization, estimated) -> SurfaceSource:
    if regularization == "gcv":
        rel = float(LAMBDA_GRID[int(np.argmin(gcv_curve(op.u, op.s, y)))])
    elif regularization == "discrepancy":
        sigma = noise_level(y) if y.shape[1] >= 3 else None
        if sigma is None or (sigma ** 2).sum() * y.shape[1] > 0.25 * (y ** 2).sum():
            # too few samples, or a noise "estimate" above half the RMS: the signals are not
            # oversampled (the MAD of differences measures the signal itself); GCV instead
            rel = float(LAMBDA_GRID[int(np.argmin(gcv_curve(op.u, op.s, y)))])
        else:
            rel = discrepancy_lambda(op.u, op.s, y, sigma)
    else:
        try:
            rel = float(regularization)
        except (TypeError, ValueError):
            rel = float("nan")
        if not (np.isfinite(rel) and rel >= 0):
            raise SignalError(f"regularization must be 'discrepancy', 'gcv' or a non-negative number, "
                              f"got {regularization!r}")
    s2 = op.s ** 2
    g = op.s / (s2 + rel * s2.mean())
    w = g[:, None] * op.u.T                                           # (r, n)
    return SurfaceSource(torso=torso, positions=pos, coefficients=y, node_transfer=op.node_v @ w,
                         node_dipole=op.node_dipole, moment=(op.moment_v @ w) / _MV_PER_V,
                         source_points=op.source_points,
                         centre=op.centre, regularization=rel, heart_estimated=estimated,
                         _grid=surface_locator(torso))
