"""Wearer and garment motion: activity, breathing, garment slip, electrode offsets,
respiratory heart rotation, contact pressure and accelerometer.

Public API: ``simulate_motion(duration, fs, rng, *, activity=..., breathing=...,
breathing_rate=..., n_electrodes=..., positions=None) -> Motion``;
``ActivityConfig``, ``BreathingConfig``, ``ACTIVITIES``.
"""

from .config import ACTIVITIES, ActivityConfig, BreathingConfig
from .simulate import G, Motion, breathing_signal, ornstein_uhlenbeck, simulate_motion, slow_ou

__all__ = ["ACTIVITIES", "ActivityConfig", "BreathingConfig", "Motion", "simulate_motion",
           "breathing_signal", "ornstein_uhlenbeck", "slow_ou", "G"]
