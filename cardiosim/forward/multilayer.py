"""Boundary element model of a piecewise-homogeneous torso (several nested compartments).

Opt-in alternative to the homogeneous :mod:`cardiosim.forward.bem`: the torso surface plus
K - 1 closed inner surfaces (lungs, :func:`cardiosim.geometry.organs.make_lungs`), each
compartment with its own conductivity (lungs about 0.05 S/m in a 0.2 S/m torso,
PHYSICS.md section 4).

Formulation (Geselowitz 1967; Barr et al. 1977). Surface k has conductivity
``s_k^-`` inside and ``s_k^+`` outside (0 outside the torso). For a point r on surface i,

    (s_i^- + s_i^+)/2 phi(r) = g(r) + (1/4 pi) sum_k (s_k^- - s_k^+) int_{S_k} phi dOmega_r

with ``g = p.(r - r0) / (4 pi |r - r0|^3)`` (the dipole in an infinite medium of unit
conductivity) and ``dOmega_r`` the solid angle of the surface element seen from r, with
the sign of bem.py (4 pi for a closed outward surface seen from inside). Dividing by
``(s_i^- + s_i^+)/2`` gives the block system of linear collocation

    phi_i - sum_k gamma_ik Omega_ik phi_k / (2 pi) = 2 g_i / (s_i^- + s_i^+),
    gamma_ik = (s_k^- - s_k^+) / (s_i^- + s_i^+)

(the form of MNE-Python's three-layer ``_fwd_bem_multi_solution``; also Stenroos &
Sarvas, Phys Med Biol 2012;57:3517). ``Omega_ii`` is the self block of
:func:`~cardiosim.forward._kernels.linear_collocation_matrix` with the auto-solid-angle
correction of bem.py; ``Omega_ik`` (i != k) is the same de Munck (1992) integral from the
nodes of surface i to the triangles of surface k
(:func:`~cardiosim.forward._kernels.linear_collocation_cross_matrix`). With one surface
the system is exactly that of bem.py.

The constant potential solves the homogeneous system (every row of the block matrix sums
to one: the self block gives ``gamma_ii``, each enclosing surface ``2 gamma_ik``, and the
conductivity jumps telescope), so the matrix is singular; it is deflated on the outer
surface by adding ``1/N_outer`` to every entry of the outer surface's columns, and the
result is referenced to zero area-weighted mean over the outer (torso) surface, as in
bem.py. The isolated-problem approach (Hämäläinen & Sarvas 1989) is not implemented: it is
needed only when the source compartment is enclosed by a much poorer conductor (the skull
of an EEG head model: three shells 0.33 / 0.0042 / 0.33 S/m give RDM 7 % at 1,280
triangles per shell), whereas here the source sits in the torso compartment and the
poor conductors (lungs) are inside it.

Accuracy (tests/test_forward_multilayer.py, benchmarks/bench_multilayer.py): three
concentric shells 0.05 / 0.08 / 0.10 m at 0.2 / 0.05 / 0.2 S/m, dipole at half the inner
radius: RDM 0.78 % / 0.21 %, MAG 1.020 / 1.005 at 320 / 1,280 triangles per shell.
"""

from __future__ import annotations

import hashlib

import numpy as np

from ..errors import ConfigError, GeometryError
from ..geometry.mesh import TorsoMesh, check_inside
from ..geometry.organs import make_lungs, surface_nesting
from ._kernels import linear_collocation_cross_matrix, linear_collocation_matrix
from .bem import BEMModel, _auto_correct, cached_node_lead_field, node_area_weights
from .models import _check_position, infinite_lead_field

_METHOD = "multilayer-linear-collocation-demunck-v1"
#: Default conductivities (S/m): torso and lungs (PHYSICS.md section 4).
TORSO_CONDUCTIVITY = 0.2
LUNG_CONDUCTIVITY = 0.05
#: The dipole must lie at least this far from every inner surface (m).
SOURCE_MARGIN = 0.005


def _check_conductivities(conductivities, n: int) -> np.ndarray:
    try:
        sig = np.asarray(conductivities, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ConfigError(f"conductivities must be {n} positive numbers in S/m, got {conductivities!r}") from None
    if len(sig) != n:
        raise ConfigError(f"need {n} conductivities (torso first, then one per inner surface), got {len(sig)}: "
                          f"{conductivities!r}")
    bad = ~(np.isfinite(sig) & (sig > 0))
    if np.any(bad):
        i = int(np.argmax(bad))
        raise ConfigError(f"conductivity {i} must be a positive number in S/m, got {sig[i]!r}")
    return sig


def surface_conductivities(conductivities: np.ndarray, parents: np.ndarray):
    """Conductivity inside and outside each surface (S/m): ``conductivities[k]`` is that of
    the compartment just inside surface k; outside it is that of its parent (0 for the root)."""
    sig = np.asarray(conductivities, dtype=np.float64)
    inner = sig.copy()
    outer = np.array([sig[p] if p >= 0 else 0.0 for p in parents])
    return inner, outer


def solve_multilayer_bem(surfaces, conductivities, source_position, parents=None, return_all: bool = False):
    """Node lead fields (V/(A·m)) of a piecewise-homogeneous conductor of nested surfaces.

    Parameters
    ----------
    surfaces : sequence of TorsoMesh
        Closed, non-intersecting surfaces; ``surfaces[0]`` encloses all others.
    conductivities : sequence of float, S/m
        ``conductivities[k]``: the compartment just inside surface k (outside its children).
    source_position : (3,) m
    parents : ndarray (K,), optional
        Nesting tree from :func:`cardiosim.geometry.organs.surface_nesting` (computed if
        None).
    return_all : bool
        Return the lead fields at the nodes of every surface (list) instead of only the
        outer one.

    Returns
    -------
    ndarray (n_outer_nodes, 3), or list of (n_k, 3): zero area-weighted mean over the outer
    surface.
    """
    surfaces = list(surfaces)
    sig = _check_conductivities(conductivities, len(surfaces))
    if parents is None:
        parents = surface_nesting(surfaces)
    if parents[0] != -1 or np.any(parents[1:] < 0):
        raise GeometryError(f"the first surface ({surfaces[0].name!r}) must enclose all the others")
    src = _check_position(source_position)
    s_in, s_out = surface_conductivities(sig, parents)
    sizes = [len(s.vertices) for s in surfaces]
    off = np.concatenate([[0], np.cumsum(sizes)])
    n = int(off[-1])
    a = np.eye(n)
    rhs = np.empty((n, 3))
    for i, si in enumerate(surfaces):
        rows = slice(off[i], off[i + 1])
        denom = s_in[i] + s_out[i]
        rhs[rows] = 2.0 / denom * infinite_lead_field(si.vertices, src, 1.0)
        for k, sk in enumerate(surfaces):
            gamma = (s_in[k] - s_out[k]) / denom
            if gamma == 0.0:
                continue
            if i == k:
                om = linear_collocation_matrix(si.vertices, si.faces)
                _auto_correct(om, si.faces)
            else:
                om = linear_collocation_cross_matrix(si.vertices, sk.vertices, sk.faces)
            a[rows, off[k]:off[k + 1]] -= gamma / (2 * np.pi) * om
    a[:, :sizes[0]] += 1.0 / sizes[0]                      # deflation on the outer surface
    phi = np.linalg.solve(a, rhs)
    w = node_area_weights(surfaces[0].vertices, surfaces[0].faces)
    phi -= (w @ phi[:sizes[0]]) / w.sum()
    if return_all:
        return [phi[off[k]:off[k + 1]] for k in range(len(surfaces))]
    return phi[:sizes[0]]


def cache_key(surfaces, conductivities, source_position) -> str:
    """SHA-256 of the method version, every surface's mesh, the conductivities and the source."""
    h = hashlib.sha256()
    h.update(_METHOD.encode())
    h.update(np.asarray([len(surfaces)], dtype="<i8").tobytes())
    for s in surfaces:
        h.update(np.asarray(s.vertices.shape + s.faces.shape, dtype="<i8").tobytes())
        h.update(np.ascontiguousarray(s.vertices, dtype="<f8").tobytes())
        h.update(np.ascontiguousarray(s.faces, dtype="<i8").tobytes())
    h.update(np.asarray([*np.asarray(conductivities, dtype=float), *source_position], dtype="<f8").tobytes())
    return h.hexdigest()


class MultilayerBEMModel(BEMModel):
    """Lead field of a piecewise-homogeneous torso at any point on (within 1 cm of) its surface.

    Same interface as :class:`~cardiosim.forward.BEMModel` (``lead_field``, ``locate``,
    ``node_lead_field``, ``tri_transfer``); ``conductivity`` is that of the torso
    compartment (the one just inside the outer surface).

    Attributes
    ----------
    torso : TorsoMesh
        The outer surface, where the lead field is evaluated.
    inner : tuple of TorsoMesh
        The inner surfaces (lungs).
    conductivities : ndarray (K,), S/m
        Torso first, then one per inner surface.
    parents : ndarray (K,)
        Nesting tree (-1 for the torso).
    source_position : ndarray (3,), metres
    node_lead_field : ndarray (n_vertices, 3), V/(A·m)
    """

    name = "bem-multilayer"

    def __init__(self, torso: TorsoMesh, inner, node_lead_field: np.ndarray, source_position, conductivities,
                 parents):
        self.inner = tuple(inner)
        self.conductivities = np.asarray(conductivities, dtype=np.float64)
        self.parents = np.asarray(parents, dtype=np.int64)
        super().__init__(torso, node_lead_field, source_position, float(self.conductivities[0]))

    def __repr__(self):
        inner = ", ".join(f"{s.name!r}: {len(s.vertices)} vertices, {c:g} S/m"
                          for s, c in zip(self.inner, self.conductivities[1:]))
        return (f"MultilayerBEMModel(torso={self.torso.name!r}, n_vertices={len(self.torso.vertices)}, "
                f"conductivity={self.conductivity}, inner={{{inner}}}, "
                f"source_position={self.source_position.tolist()})")


def make_multilayer_bem_model(torso: TorsoMesh, lungs=None, conductivities=None, source_position=None,
                              cache_dir=None, use_cache: bool = True) -> MultilayerBEMModel:
    """Build (or load from the disk cache) the BEM lead field of a torso with inner compartments.

    Parameters
    ----------
    torso : TorsoMesh
        Outer surface; the lead field is evaluated on it.
    lungs : sequence of TorsoMesh, optional
        Closed inner surfaces (any organs; nested surfaces allowed). Default: the two
        ellipsoidal lungs of :func:`cardiosim.geometry.organs.make_lungs`. ``()`` gives the
        homogeneous torso (identical to :func:`~cardiosim.forward.make_bem_model`).
    conductivities : sequence of float, S/m, optional
        Torso first, then one per inner surface (the compartment just inside it). Default
        0.2 for the torso and 0.05 for each inner surface (PHYSICS.md section 4).
    source_position : (3,) m, optional
        Default ``torso.heart.position``; must lie inside the torso, at least 5 mm from every
        surface.
    cache_dir : path, optional
        Default ``$CARDIOSIM_CACHE`` or ``~/.cache/cardiosim``. Entries are keyed by a hash
        of every surface, the conductivities, the source position and the method version,
        and written atomically (temporary file + ``os.replace``).
    use_cache : bool

    Raises
    ------
    ConfigError
        Non-positive or non-finite conductivities, or the wrong number of them.
    GeometryError
        Intersecting surfaces, an inner surface outside the torso, a source outside the
        torso or on a surface.
    """
    if lungs is None:
        lungs = make_lungs(torso)
    inner = list(lungs)
    for s in inner:
        if not isinstance(s, TorsoMesh):
            raise GeometryError(f"inner surfaces must be TorsoMesh objects (closed surfaces), got {type(s).__name__}")
    surfaces = [torso, *inner]
    if conductivities is None:
        conductivities = [TORSO_CONDUCTIVITY] + [LUNG_CONDUCTIVITY] * len(inner)
    sig = _check_conductivities(conductivities, len(surfaces))
    if source_position is None:
        if torso.heart is None:
            raise GeometryError(f"torso {torso.name!r} has no heart; pass source_position")
        source_position = torso.heart.position
    src = _check_position(source_position)
    check_inside(torso, src, what="dipole source (heart)", margin=SOURCE_MARGIN)
    parents = surface_nesting(surfaces)
    if np.any(parents[1:] < 0) or parents[0] != -1:
        k = int(np.argmax(parents[1:] < 0)) + 1 if np.any(parents[1:] < 0) else 0
        raise GeometryError(f"inner surface {surfaces[k].name!r} lies outside the torso {torso.name!r}")
    for s in inner:
        _, _, _, d = s.closest_point(src[None])
        if d[0] < SOURCE_MARGIN:
            raise GeometryError(f"dipole source at {src.tolist()} m is {d[0] * 1000:.1f} mm from the surface of "
                                f"{s.name!r} (need {SOURCE_MARGIN * 1000:.0f} mm)")
    key = cache_key(surfaces, sig, src)
    node_lf = cached_node_lead_field(f"bem-multilayer-{key[:32]}.npz", key, cache_dir, use_cache,
                                     lambda: solve_multilayer_bem(surfaces, sig, src, parents=parents))
    return MultilayerBEMModel(torso, inner, node_lf, src, sig, parents)
