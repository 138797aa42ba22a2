"""The cardiac source every generator consumes, whatever it came from."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import SignalError


@dataclass(frozen=True)
class CardiacSource:
    """A cardiac dipole time course plus what a single dipole cannot explain.

    Attributes
    ----------
    dipole : ndarray, shape (3, T), float64, A·m
        Equivalent heart dipole ``p(t)`` in the patient LPS frame (``cardiosim.frames``),
        located at the torso's heart position.
    fs : float
        Sampling rate of ``dipole`` in Hz.
    source_id : str
        Provenance: file path, PTB-XL ``ecg_id``, ``"ode:<class>:<n>"``, ...
    labels : tuple of str
        Class names this record carries (vocabulary of the active label map).
    residual : ndarray, shape (n_residual_leads, T), float32/64, mV, optional
        Non-dipolar part of a real recording per lead (input minus the dipole's
        projection at the standard electrode positions); added back to shirt leads of
        the same name so a shirt at the standard positions reproduces the input.
    residual_leads : tuple of str
        Lead names of the rows of ``residual``.
    surface : SurfaceSource, optional
        The non-dipolar part of a real recording as a field over the body surface
        (:func:`cardiosim.inverse.fit_surface_source`): electrode ``e`` at ``r`` gets
        ``surface.nondipolar_transfer(r) @ surface.coefficients`` (mV) on top of the dipole,
        so it changes when the electrode moves; ``residual`` then holds only what the
        fitted field misses at the standard positions.
    heart_rate : float
        Mean heart rate in beats per minute (NaN if unknown).
    breathing_rate : float
        Breathing rate in breaths per minute that modulates this source (respiratory sinus
        arrhythmia), NaN if unknown; the motion model then breathes at the same rate.
    metadata : dict
        Everything else worth storing (patient id, fold, SCP codes, ODE parameters...).
        Values must be str, int, float or bool so they can be written to netCDF.
    annotations : dict of str -> ndarray (n_beats,) int64
        Ground-truth wave positions as sample indices of ``dipole`` (-1: absent), keys as in
        ``cardiosim.ode.Beats.annotations``; empty when unknown (real recordings).
    beat_types : tuple of str
        WFDB beat symbol of each annotated beat.
    """

    dipole: np.ndarray
    fs: float
    source_id: str
    labels: tuple[str, ...] = ()
    residual: np.ndarray | None = None
    residual_leads: tuple[str, ...] = ()
    heart_rate: float = float("nan")
    breathing_rate: float = float("nan")
    metadata: dict = field(default_factory=dict)
    surface: object = None
    annotations: dict = field(default_factory=dict)
    beat_types: tuple = ()

    def __post_init__(self):
        p = np.asarray(self.dipole, dtype=np.float64)
        if p.ndim != 2 or p.shape[0] != 3 or p.shape[1] < 2:
            raise SignalError(f"source {self.source_id!r}: dipole must have shape (3, T>1), got {p.shape}")
        if not np.all(np.isfinite(p)):
            raise SignalError(f"source {self.source_id!r}: dipole contains NaN or infinite samples")
        if not (np.isfinite(self.fs) and self.fs > 0):
            raise SignalError(f"source {self.source_id!r}: sampling rate must be positive, got {self.fs!r}")
        object.__setattr__(self, "dipole", p)
        if self.residual is not None:
            r = np.asarray(self.residual)
            if r.shape != (len(self.residual_leads), p.shape[1]):
                raise SignalError(f"source {self.source_id!r}: residual shape {r.shape} does not match "
                                  f"{len(self.residual_leads)} leads x {p.shape[1]} samples")
            if not np.all(np.isfinite(r)):
                raise SignalError(f"source {self.source_id!r}: residual contains NaN or infinite samples")
        if self.surface is not None and self.surface.n_samples != p.shape[1]:
            raise SignalError(f"source {self.source_id!r}: surface field has {self.surface.n_samples} samples, "
                              f"the dipole {p.shape[1]}")

    @property
    def n_samples(self) -> int:
        return self.dipole.shape[1]

    @property
    def duration(self) -> float:
        """Duration in seconds."""
        return self.n_samples / self.fs
