"""Source adapter: a real recording becomes the same :class:`CardiacSource` the ODE produces.

It lives in ``sources`` (not ``inverse``) because it builds source types; ``inverse`` sits
below ``sources`` in the layer order and must not import it.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..errors import ConfigError, ConsistencyWarning, LeadError
from ..qrs import detect_r_peaks
from ..inverse.dipole import _electrode_positions, estimate_dipole
from ..inverse.surface import (ELECTRODES_12, FLAT_PTP_MV, INDEPENDENT_12, fit_surface_source,
                               standard12_potentials)
from ..leads import STANDARD_LEADS, make_montage
from .base import CardiacSource
from .recording import Recording


def estimate_heart_rate(signal: np.ndarray, fs: float) -> float:
    """Median heart rate (bpm) of ``signal [n_leads, T]`` mV; NaN if < 2 beats or < 2 s.

    Beats come from the project's one R-peak detector (:func:`cardiosim.qrs.detect_r_peaks`,
    QRS energy pooled over the leads). The value is the provenance heart rate stored with
    each record; it is not used for any physics.
    """
    x = np.asarray(signal, dtype=np.float64)
    if x.shape[1] < int(2 * fs):
        return float("nan")
    peaks = detect_r_peaks(x, float(fs))
    if len(peaks) < 2:
        return float("nan")
    return float(60.0 * fs / np.median(np.diff(peaks)))


#: How a real record becomes a source: ``"surface"`` -- a distributed source fitted to the
#: nine electrodes (its field moves with the electrodes; issue 12); ``"dipole"`` -- one dipole
#: plus a fixed per-lead residual (the earlier model).
SOURCE_MODELS: tuple[str, ...] = ("surface", "dipole")

def _node_lead_field(forward, torso) -> np.ndarray:
    key = ("forward-node-lead-field", id(forward))
    lf = torso._cache.get(key)
    if lf is None or lf[0] is not forward:
        lf = torso._cache[key] = (forward, np.asarray(forward.lead_field(torso.vertices), dtype=np.float64))
    return lf[1]


def _surface_fit(recording, forward, layout, montage, torso):
    """Surface source of a 12-lead record and the dipole / residual that go with it."""
    pos = _electrode_positions(layout, ELECTRODES_12)
    # The heart region is the torso's heart (a ball around it): estimating it per record from
    # nine electrodes on a generic torso scattered it by up to 18 cm on the CinC records and
    # worsened the Mason-Likar limb-lead changes (docs/PHYSICS.md "Surface source").
    heart = torso.heart.position if torso.heart is not None else None
    model = fit_surface_source(torso, pos, standard12_potentials(recording.signal, recording.leads), heart=heart)
    # The dipole part is the one the simulator turns with the heart: at the forward model's
    # source (the torso's heart), the least-squares dipole of the fitted field over the surface.
    model = model.with_dipole(_node_lead_field(forward, torso))
    p = model.dipole
    m = make_montage(montage) if isinstance(montage, str) else montage
    # What the simulator computes at the standard positions (simulate._electrode_potentials):
    # this forward model's dipole field plus the fitted non-dipolar field; the residual is the rest.
    el = tuple(m.electrodes)
    pos_m = _electrode_positions(layout, el)
    phi = 1e3 * (np.asarray(forward.lead_field(pos_m), dtype=np.float64) @ p) \
        + model.nondipolar_transfer(pos_m) @ model.coefficients
    pred = m.matrix @ phi
    rows = []
    for name in recording.leads:
        if name not in m.leads:
            raise LeadError(f"record {recording.source_id!r}: lead {name!r} is not in montage {m.name!r}")
        rows.append(m.leads.index(name))
    residual = (recording.signal.astype(np.float64) - pred[rows]).astype(np.float32)
    return model, p, residual


def recording_to_source(recording: Recording, forward, layout, *, montage="standard12",
                        fit_leads=None, method: str = "lstsq", frank_layout=None,
                        source_model: str = "surface", torso=None) -> CardiacSource:
    """Turn a real recording into a :class:`CardiacSource` whose field moves with the electrodes.

    ``source_model='surface'`` (default): a distributed heart source is fitted to the nine
    electrodes (RA, LA, LL, V1-V6, potentials recovered exactly from I, II, V1-V6) in a ball
    around the torso's heart (:func:`cardiosim.inverse.fit_surface_source`). The
    source's total moment is the dipole ``p`` (rotated with the heart by the simulator); the
    rest of its field rides along as ``source.surface``; the residual -- what stays fixed when
    the electrodes move -- is only what that field misses at the standard positions (measured
    on the shared CinC and PTB records: docs/PHYSICS.md "Surface source"). It needs a torso
    (``torso=`` or ``forward.torso``) and the 8 independent leads, none of them flat (a dead
    channel: ``ConsistencyWarning``, metadata ``surface_skipped``); otherwise, and with
    ``source_model='dipole'``, the dipole is the least-squares fit of
    :func:`cardiosim.inverse.estimate_dipole` and the residual carries the rest (the metadata
    ``source_model`` says which was used).

    In every case re-projecting the source at the standard positions through ``forward``
    and adding the residual reproduces the input (float32 precision).

    Parameters
    ----------
    recording : Recording
        Must contain leads of ``montage`` (at least 3 independent ones; 12-lead records
        normally).
    forward : ForwardModel
        ``lead_field(points (n, 3) m) -> (n, 3) V/(A·m)``.
    layout : ElectrodeLayout
        Standard electrode positions on the same torso (``make_layout('standard12', torso)``).
    method : {'lstsq', 'inverse_dower', 'kors'}
        Dipole estimate of the ``'dipole'`` model (:func:`cardiosim.inverse.estimate_dipole`);
        the matrix methods need ``frank_layout``.
    source_model : {'surface', 'dipole'}
    torso : TorsoMesh, optional
        Default ``forward.torso``.

    Returns
    -------
    CardiacSource
        ``dipole [3, T]`` A·m (LPS), ``residual [n_leads, T]`` float32 mV with
        ``residual_leads = recording.leads``, ``surface`` (or None), labels, heart rate, and
        metadata extended by ``codes`` (``;``-joined), ``source_model``, ``residual_rms_mV``
        and ``signal_rms_mV``.
    """
    if source_model not in SOURCE_MODELS:
        raise ConfigError(f"unknown source_model {source_model!r}; expected one of {SOURCE_MODELS}")
    unknown = [x for x in recording.leads if x not in STANDARD_LEADS]
    if unknown:
        raise LeadError(f"record {recording.source_id!r}: leads {unknown} are not standard 12-lead leads; "
                        "select the standard leads first (Recording.select)")
    torso = getattr(forward, "torso", None) if torso is None else torso
    use_surface = (source_model == "surface" and torso is not None and method == "lstsq" and fit_leads is None
                   and all(n in recording.leads for n in INDEPENDENT_12))
    meta = dict(recording.metadata)
    if use_surface:
        x = recording.signal
        flat = [n for n in INDEPENDENT_12 if np.ptp(x[recording.leads.index(n)]) < FLAT_PTP_MV]
        if flat:
            # A dead channel would be fitted as a real zero potential and drive a field that
            # moves with the electrodes; the dipole plus a fixed residual carries it unchanged.
            warnings.warn(f"record {recording.source_id!r}: leads {flat} are flat (dead channels); "
                          "using the dipole source model for this record", ConsistencyWarning, stacklevel=2)
            meta["surface_skipped"] = f"flat leads {','.join(flat)}"
            use_surface = False
    surface = None
    if use_surface:
        surface, p, residual = _surface_fit(recording, forward, layout, montage, torso)
        meta["surface_heart_position_m"] = ",".join(f"{c:.3f}" for c in surface.centre)
        meta["surface_regularization"] = float(surface.regularization)
    else:
        p, residual = estimate_dipole(recording.signal, recording.leads, forward, layout, montage, fit_leads,
                                      method=method, frank_layout=frank_layout)
    meta["codes"] = ";".join(recording.codes)
    meta["source_model"] = "surface" if use_surface else "dipole"
    meta["dipole_method"] = method
    meta["residual_rms_mV"] = float(np.sqrt(np.mean(residual.astype(np.float64) ** 2)))
    meta["signal_rms_mV"] = float(np.sqrt(np.mean(recording.signal.astype(np.float64) ** 2)))
    return CardiacSource(dipole=p, fs=recording.fs, source_id=recording.source_id, labels=recording.labels,
                         residual=residual, residual_leads=recording.leads,
                         heart_rate=estimate_heart_rate(recording.signal, recording.fs), metadata=meta,
                         surface=surface)
