"""Heart dipole from body-surface leads by least squares on a torso model's lead field.

The forward model gives, for each electrode position ``r_e``, the transfer vector
``L(r_e)`` in V/(A·m) so that ``phi_e = L(r_e) . p`` (DESIGN.md, "the one equation").
A montage ``M`` turns electrode potentials into leads, so the lead-space transfer matrix
is ``G = 1e3 * M L`` (mV per A·m) and a recording satisfies ``ecg = G p + residual``.
The least-squares ``p`` is the equivalent dipole; the residual is the non-dipolar part
(plus everything the torso model gets wrong), which is carried along so that projecting
``p`` back through the same ``G`` and adding the residual reproduces the input exactly.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError, GeometryError, LeadError, SignalError
from ..leads import Montage, make_montage, normalize_lead_name
from .transforms import inverse_dower, kors

_MV_PER_V = 1e3

# Leads of the standard 12 that are linear combinations of I and II.  Fitting them too
# would weight the frontal plane 3x against the precordial leads; they still get a
# residual row.
_DERIVED_LIMB = ("III", "aVR", "aVL", "aVF")


def _as_montage(montage) -> Montage:
    if isinstance(montage, Montage):
        return montage
    return make_montage(str(montage))


def _electrode_positions(layout, electrodes) -> np.ndarray:
    names = tuple(layout.electrodes)
    pos = np.asarray(layout.positions, dtype=np.float64)
    missing = [e for e in electrodes if e not in names]
    if missing:
        raise LeadError(f"layout {getattr(layout, 'name', '?')!r} lacks electrodes {missing}; "
                        f"it has {names}")
    return pos[[names.index(e) for e in electrodes]]


def lead_transfer(forward, layout, montage="standard12", leads=None) -> np.ndarray:
    """Lead-space transfer matrix ``G`` with ``lead_mV = G @ p``.

    Parameters
    ----------
    forward : ForwardModel
        Has ``lead_field(points (n, 3) m) -> (n, 3) V/(A·m)``.
    layout : ElectrodeLayout
        ``electrodes`` names and ``positions (n, 3)`` m; must contain the montage electrodes.
    montage : Montage or str
        Default ``"standard12"``.
    leads : sequence of str, optional
        Rows to return (default: all montage leads).

    Returns
    -------
    ndarray, shape (n_leads, 3), float64, mV/(A·m)
    """
    montage = _as_montage(montage)
    if leads is not None:
        montage = montage.select([normalize_lead_name(x) for x in leads])
    pos = _electrode_positions(layout, montage.electrodes)
    lf = np.asarray(forward.lead_field(pos), dtype=np.float64)
    if lf.shape != (len(montage.electrodes), 3) or not np.all(np.isfinite(lf)):
        raise GeometryError(f"forward model returned a lead field of shape {lf.shape} "
                            f"(finite: {bool(np.all(np.isfinite(lf)))}) for {len(pos)} electrodes")
    return _MV_PER_V * (montage.matrix @ lf)


def project_dipole(dipole: np.ndarray, forward, layout, montage="standard12", leads=None) -> np.ndarray:
    """Leads (mV) a dipole ``[3, T]`` A·m produces at ``layout`` through ``montage``.

    Returns
    -------
    ndarray, shape (n_leads, T), float64, mV
    """
    p = np.asarray(dipole, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] != 3:
        raise SignalError(f"dipole must have shape (3, T), got {p.shape}")
    return lead_transfer(forward, layout, montage, leads) @ p


def _check_ecg(ecg, leads) -> tuple[np.ndarray, list[str]]:
    x = np.asarray(ecg)
    names = [normalize_lead_name(n) for n in leads]
    if x.ndim != 2 or x.shape[0] != len(names):
        raise SignalError(f"ecg must have shape (n_leads={len(names)}, T), got {x.shape}")
    if len(set(names)) != len(names):
        raise LeadError(f"duplicate lead names in {names}")
    if not np.all(np.isfinite(x)):
        bad = sorted({names[i] for i in np.nonzero(~np.isfinite(x))[0]})
        raise SignalError(f"ecg contains NaN or infinite samples in leads {bad}")
    return x, names


def default_fit_leads(leads) -> tuple[str, ...]:
    """Leads used for the fit: all given, minus limb leads derivable from I and II when both are present."""
    names = [normalize_lead_name(n) for n in leads]
    if "I" in names and "II" in names:
        return tuple(n for n in names if n not in _DERIVED_LIMB)
    return tuple(names)


METHODS: tuple[str, ...] = ("lstsq", "inverse_dower", "kors")


def estimate_dipole(ecg_mV: np.ndarray, leads, forward, layout, montage="standard12",
                    fit_leads=None, *, method: str = "lstsq", frank_layout=None) -> tuple[np.ndarray, np.ndarray]:
    """Heart dipole and non-dipolar residual from body-surface leads.

    ``method='lstsq'`` (default) solves ``min_p || ecg_fit - G_fit p ||`` with
    ``G = 1e3 M L(r_standard)`` (module docstring). ``'inverse_dower'`` and ``'kors'``
    first synthesise the Frank VCG with the published matrix (PHYSICS.md section 1) and
    then take the dipole whose Frank-network VCG on this torso equals it
    (:func:`dipole_from_vcg`, needs ``frank_layout``). In every case
    ``residual = ecg - G p`` for *every* input lead, so ``G p + residual == ecg`` holds
    exactly (up to float rounding) and a shirt at the standard positions reproduces the input.

    Parameters
    ----------
    ecg_mV : ndarray, shape (n_leads, T), mV
    leads : sequence of str, length n_leads
        Names of the rows (normalised; must be leads of ``montage``).
    forward : ForwardModel
        Torso lead field, ``lead_field(points (n, 3) m) -> (n, 3) V/(A·m)``.
    layout : ElectrodeLayout
        Electrode positions (``make_layout('standard12', torso)``).
    montage : Montage or str
        Montage turning the layout's electrode potentials into ``leads`` (default standard12).
    fit_leads : sequence of str, optional
        ``lstsq`` only: subset used for the fit (default :func:`default_fit_leads`: I, II
        and the precordial leads when present). At least 3 independent leads are needed.
    method : {'lstsq', 'inverse_dower', 'kors'}
    frank_layout : ElectrodeLayout, optional
        Frank electrodes A, C, E, I, M, H, F on the same torso (required by the matrix methods).

    Returns
    -------
    dipole : ndarray, shape (3, T), float64, A·m, patient LPS frame
    residual : ndarray, shape (n_leads, T), float32, mV (rows as ``leads``)
    """
    if method not in METHODS:
        raise ConfigError(f"unknown dipole method {method!r}; expected one of {METHODS}")
    x, names = _check_ecg(ecg_mV, leads)
    g_all = lead_transfer(forward, layout, montage, names)
    x64 = x.astype(np.float64)
    if method == "lstsq":
        fit = default_fit_leads(names) if fit_leads is None else tuple(normalize_lead_name(n) for n in fit_leads)
        missing = [f for f in fit if f not in names]
        if missing:
            raise LeadError(f"fit leads {missing} are not among the ecg leads {names}")
        rows = [names.index(f) for f in fit]
        g_fit = g_all[rows]
        rank = np.linalg.matrix_rank(g_fit)
        if rank < 3:
            raise LeadError(f"fit leads {fit} do not determine a 3-D dipole (rank {rank} < 3)")
        # pinv of the small (n_fit, 3) matrix, then one matmul: LAPACK lstsq with T right-hand
        # sides is ~50x slower for a 10 s record and gives the same minimum-norm solution.
        p = np.linalg.pinv(g_fit) @ x64[rows]
    else:
        if fit_leads is not None:
            raise ConfigError(f"fit_leads applies to method 'lstsq' only, not {method!r}")
        if frank_layout is None:
            raise ConfigError(f"method {method!r} needs frank_layout (make_layout('frank', torso))")
        vcg = (inverse_dower if method == "inverse_dower" else kors)(x64, names)
        p = dipole_from_vcg(vcg, forward, frank_layout)
    residual = (x64 - g_all @ p).astype(np.float32)
    return p, residual


def dipole_from_vcg(vcg_mV: np.ndarray, forward, frank_layout, montage="frank") -> np.ndarray:
    """The dipole whose Frank-network VCG on the torso equals ``vcg_mV``.

    Solves the 3x3 system ``G_frank p = vcg`` with ``G_frank = 1e3 M_frank L(r_frank)``
    (Frank network coefficients, PHYSICS.md section 1). Used to put ODE beats (Frank
    axes, mV) onto the torso.

    Parameters
    ----------
    vcg_mV : ndarray, shape (3, T), mV, Frank X (left), Y (feet), Z (back)
    forward : ForwardModel
    frank_layout : ElectrodeLayout
        With electrodes A, C, E, I, M, H, F (``make_layout('frank', torso)``).

    Returns
    -------
    ndarray, shape (3, T), float64, A·m, patient LPS frame
    """
    v = np.asarray(vcg_mV, dtype=np.float64)
    if v.ndim != 2 or v.shape[0] != 3:
        raise SignalError(f"vcg must have shape (3, T), got {v.shape}")
    if not np.all(np.isfinite(v)):
        raise SignalError("vcg contains NaN or infinite samples")
    g = lead_transfer(forward, frank_layout, montage)
    if g.shape != (3, 3):
        raise LeadError(f"montage {montage!r} must give 3 leads (X, Y, Z), got {g.shape[0]}")
    cond = np.linalg.cond(g)
    if not np.isfinite(cond) or cond > 1e8:
        raise GeometryError(f"Frank lead matrix is singular on this torso (condition number {cond:.3g})")
    return np.linalg.solve(g, v)


def frank_from_dipole(dipole: np.ndarray, forward, frank_layout, montage="frank") -> np.ndarray:
    """Frank X, Y, Z (mV) measured by the Frank network on the torso for a dipole ``[3, T]`` A·m."""
    return project_dipole(dipole, forward, frank_layout, montage)


def model_frank(ecg_mV: np.ndarray, leads, forward, layout, frank_layout, *, source: str = "dipole",
                heart_search: float | None = None) -> np.ndarray:
    """Model-based 12-lead -> Frank VCG: a source fitted on the torso, then its Frank network.

    ``source='dipole'``: the least-squares dipole; ``'surface'``: the distributed source of
    :func:`cardiosim.inverse.fit_surface_source` fitted to the nine electrodes (needs
    ``forward.torso``), read at the Frank electrodes. Its heart region is a ball around the
    point within ``heart_search`` (default
    :data:`cardiosim.inverse.surface.HEART_SEARCH_RADIUS`, 3 cm) of the torso's heart that
    best explains the record (marginal likelihood, :func:`cardiosim.inverse.surface.select_heart`);
    0 keeps the torso's heart. On PTB ``s0010_re`` the search moved the centre 1 cm right,
    1 cm forward and 1 cm up and raised the mean r with the measured Frank leads from 0.854
    to 0.887 (Z 0.64 -> 0.74; Kors 0.886; docs/PHYSICS.md section 7).

    Returns
    -------
    ndarray, shape (3, T), float64, mV, Frank X, Y, Z
    """
    if source == "dipole":
        p, _ = estimate_dipole(ecg_mV, leads, forward, layout)
        return frank_from_dipole(p, forward, frank_layout)
    if source != "surface":
        raise ConfigError(f"unknown model_frank source {source!r}; expected 'dipole' or 'surface'")
    from .surface import ELECTRODES_12, HEART_SEARCH_RADIUS, fit_surface_source, standard12_potentials
    torso = getattr(forward, "torso", None)
    if torso is None:
        raise ConfigError("model_frank(source='surface') needs a forward model with a torso (BEM)")
    x, names = _check_ecg(ecg_mV, leads)
    heart = torso.heart.position if torso.heart is not None else None
    search = HEART_SEARCH_RADIUS if heart_search is None else float(heart_search)
    model = fit_surface_source(torso, _electrode_positions(layout, ELECTRODES_12), standard12_potentials(x, names),
                               heart=heart, heart_search=search if heart is not None else 0.0)
    frank = make_montage("frank")
    return frank.matrix @ (model.transfer(_electrode_positions(frank_layout, frank.electrodes)) @ model.coefficients)
