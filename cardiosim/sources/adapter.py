"""Source adapter: a real recording becomes the same :class:`CardiacSource` the ODE produces.

It lives in ``sources`` (not ``inverse``) because it builds source types; ``inverse`` sits
below ``sources`` in the layer order and must not import it.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.signal import butter, find_peaks, sosfilt

from ..errors import LeadError
from ..inverse.dipole import estimate_dipole
from ..leads import STANDARD_LEADS
from .base import CardiacSource
from .recording import Recording


@lru_cache(maxsize=16)
def _qrs_band(fs: float) -> np.ndarray:
    return butter(2, [5.0, min(30.0, 0.45 * fs)], btype="band", fs=fs, output="sos")


def estimate_heart_rate(signal: np.ndarray, fs: float) -> float:
    """Median heart rate (bpm) of ``signal [n_leads, T]`` mV from the spatial QRS energy; NaN if < 2 beats.

    A simple detector (band-limited derivative energy summed over leads, peaks at least
    250 ms apart above 30 % of the 99th percentile) is enough for the provenance value
    stored with each record; it is not used for any physics.
    """
    x = np.asarray(signal, dtype=np.float64)
    if x.shape[1] < int(2 * fs):
        return float("nan")
    # single-pass filter: its constant group delay shifts every beat equally, RR is unchanged
    e = np.sum(np.diff(sosfilt(_qrs_band(float(fs)), x, axis=1), axis=1) ** 2, axis=0)
    thr = 0.3 * np.percentile(e, 99)
    peaks, _ = find_peaks(e, height=thr, distance=max(1, int(0.25 * fs)))
    if len(peaks) < 2:
        return float("nan")
    return float(60.0 * fs / np.median(np.diff(peaks)))


def recording_to_source(recording: Recording, forward, layout, *, montage="standard12",
                        fit_leads=None, method: str = "lstsq", frank_layout=None) -> CardiacSource:
    """Estimate the heart dipole of a real recording and wrap it as a :class:`CardiacSource`.

    The dipole is the least-squares fit on the torso model's lead field at the standard
    electrode positions (:func:`cardiosim.inverse.estimate_dipole`); the non-dipolar
    residual of every input lead is carried, so re-projecting the dipole at the same
    positions and adding the residual reproduces the input.

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
        Dipole estimate (:func:`cardiosim.inverse.estimate_dipole`); the matrix methods need
        ``frank_layout``. The identity holds for every method (the residual absorbs the rest).

    Returns
    -------
    CardiacSource
        ``dipole [3, T]`` A·m (LPS), ``residual [n_leads, T]`` float32 mV with
        ``residual_leads = recording.leads``, labels, heart rate, and metadata extended by
        ``codes`` (``;``-joined) and ``dipole_fit_rms_mV`` / ``residual_rms_mV``.
    """
    unknown = [x for x in recording.leads if x not in STANDARD_LEADS]
    if unknown:
        raise LeadError(f"record {recording.source_id!r}: leads {unknown} are not standard 12-lead leads; "
                        "select the standard leads first (Recording.select)")
    p, residual = estimate_dipole(recording.signal, recording.leads, forward, layout, montage, fit_leads,
                                  method=method, frank_layout=frank_layout)
    meta = dict(recording.metadata)
    meta["codes"] = ";".join(recording.codes)
    meta["dipole_method"] = method
    meta["residual_rms_mV"] = float(np.sqrt(np.mean(residual.astype(np.float64) ** 2)))
    meta["signal_rms_mV"] = float(np.sqrt(np.mean(recording.signal.astype(np.float64) ** 2)))
    return CardiacSource(dipole=p, fs=recording.fs, source_id=recording.source_id, labels=recording.labels,
                         residual=residual, residual_leads=recording.leads,
                         heart_rate=estimate_heart_rate(recording.signal, recording.fs), metadata=meta)
