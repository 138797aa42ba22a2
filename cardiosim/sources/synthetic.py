"""ODE beats as a CardiacSource: the synthetic counterpart of :func:`recording_to_source`."""

from __future__ import annotations

import numpy as np

from .base import CardiacSource


def synthetic_source(duration: float, fs: float, rng: np.random.Generator, forward, frank_layout, *,
                     rhythm: str = "SR", morphology: str = "NORM", source_id: str = "ode",
                     **synthesize_kwargs) -> CardiacSource:
    """Synthesize beats with :func:`cardiosim.ode.synthesize` and turn them into a dipole source.

    The ODE produces a Frank-axis vectorcardiogram in mV; the dipole (A m, LPS) is the one
    whose Frank-network VCG on the given torso model equals it
    (:func:`cardiosim.inverse.dipole_from_vcg`), so synthetic and real sources share units
    and torso.

    Parameters
    ----------
    duration : float, s
    fs : float, Hz
    rng : numpy.random.Generator
    forward : forward model of the reference torso (``.lead_field``)
    frank_layout : ElectrodeLayout with the Frank electrodes on that torso
    rhythm, morphology : str
        Class names of :data:`cardiosim.ode.CLASSES`.
    source_id : str
    **synthesize_kwargs
        Passed to :func:`cardiosim.ode.synthesize` (heart_rate, patient, prior, ...).

    Returns
    -------
    CardiacSource
        Labels (rhythm, morphology), heart rate from the RR series, the breathing rate that
        modulates the rhythm, and every ODE parameter in ``metadata`` (prefixed ``ode_``).
    """
    from ..inverse import dipole_from_vcg
    from ..ode import synthesize

    beats = synthesize(duration, fs, rng, rhythm=rhythm, morphology=morphology, **synthesize_kwargs)
    dipole = dipole_from_vcg(beats.vcg, forward, frank_layout)
    rr = np.asarray(beats.rr, dtype=float)
    hr = float(60.0 / rr.mean()) if rr.size else float("nan")
    meta = {"ode_class": f"{rhythm}+{morphology}"}
    meta.update({f"ode_{k}": v for k, v in beats.params.items() if isinstance(v, (int, float, str, bool))})
    return CardiacSource(dipole=dipole, fs=float(beats.fs), source_id=source_id, labels=tuple(beats.labels),
                         heart_rate=hr, breathing_rate=float(beats.params.get("breathing_rate_per_min", np.nan)),
                         metadata=meta, annotations={k: np.asarray(v, dtype=np.int64) for k, v in beats.annotations.items()},
                         beat_types=tuple(str(t) for t in beats.beat_types))
