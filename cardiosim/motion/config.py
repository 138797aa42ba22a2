"""Configuration of activity and breathing (frozen dataclasses; unknown keys raise)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ..config import check_range, from_dict, to_dict
from ..errors import ConfigError

#: Activities of the real textile recordings (``rest``, ``arms``, ``walk`` 4 km/h, ``run``
#: 8 km/h, ``squats``) first, then the older names, still accepted as their own presets.
ACTIVITIES: tuple[str, ...] = ("rest", "arms", "walk", "run", "squats",
                               "sitting", "walking", "running", "arm_movement", "posture_change")

#: The activity of the textile recordings (:mod:`cardiosim.noise.textile`) whose fitted noise
#: an activity takes: older names map onto the nearest recorded activity.
NOISE_ACTIVITY: dict[str, str] = {"rest": "rest", "arms": "arms", "walk": "walk", "run": "run", "squats": "squats",
                                  "sitting": "rest", "walking": "walk", "running": "run",
                                  "arm_movement": "arms", "posture_change": "squats"}

#: Activities with the arm-raise pattern (bursts of garment lift and muscle activity).
ARM_ACTIVITIES: tuple[str, ...] = ("arms", "arm_movement")

#: Heart rate while doing the activity (bpm, drawn per record), for sources whose rate can
#: follow it: resting adults 60-80; walking 4 km/h about 90-110; running 8 km/h 130-160;
#: squats and arm exercise 95-125 (ordinary exercise-physiology ranges, ACSM guidelines).
HEART_RATE_BPM: dict[str, tuple[float, float]] = {
    "rest": (60.0, 80.0), "sitting": (60.0, 85.0), "arms": (80.0, 105.0), "arm_movement": (80.0, 105.0),
    "walk": (90.0, 110.0), "walking": (90.0, 110.0), "run": (130.0, 160.0), "running": (130.0, 160.0),
    "squats": (95.0, 125.0), "posture_change": (70.0, 95.0)}

# Per-activity defaults. Cadence in steps/s (walking about 1.8, running about 2.7; ordinary
# gait literature); vertical trunk acceleration amplitude in m/s^2 (about 0.25 g walking,
# about 1 g running); slip and jitter SDs in metres are modelling choices for a snug shirt.
_PRESETS: dict[str, dict[str, float]] = {
    #                cadence intensity slip_sd bounce rot_sd  jitter  acc   press  breath_rate_x
    "rest":          dict(cadence_hz=0.0, intensity=0.02, slip_sd_m=0.001, bounce_m=0.0, rotation_sd_rad=0.005,
                          jitter_sd_m=0.0003, accel_amp_ms2=0.0, pressure_sd=0.02, breathing_rate_factor=1.0),
    # the recorded protocol: walking 4 km/h, running 8 km/h, squats about one per 2.5 s
    "walk":          dict(cadence_hz=1.8, intensity=0.4, slip_sd_m=0.004, bounce_m=0.002, rotation_sd_rad=0.02,
                          jitter_sd_m=0.001, accel_amp_ms2=2.5, pressure_sd=0.15, breathing_rate_factor=1.3),
    "run":           dict(cadence_hz=2.7, intensity=0.9, slip_sd_m=0.008, bounce_m=0.005, rotation_sd_rad=0.04,
                          jitter_sd_m=0.002, accel_amp_ms2=9.0, pressure_sd=0.3, breathing_rate_factor=1.8),
    "arms":          dict(cadence_hz=0.0, intensity=0.5, slip_sd_m=0.003, bounce_m=0.0, rotation_sd_rad=0.02,
                          jitter_sd_m=0.0015, accel_amp_ms2=0.5, pressure_sd=0.2, breathing_rate_factor=1.1),
    "squats":        dict(cadence_hz=0.4, intensity=0.6, slip_sd_m=0.004, bounce_m=0.01, rotation_sd_rad=0.015,
                          jitter_sd_m=0.001, accel_amp_ms2=4.0, pressure_sd=0.2, breathing_rate_factor=1.4),
    "sitting":       dict(cadence_hz=0.0, intensity=0.08, slip_sd_m=0.002, bounce_m=0.0, rotation_sd_rad=0.01,
                          jitter_sd_m=0.0005, accel_amp_ms2=0.0, pressure_sd=0.04, breathing_rate_factor=1.0),
    "posture_change": dict(cadence_hz=0.0, intensity=0.2, slip_sd_m=0.002, bounce_m=0.0, rotation_sd_rad=0.01,
                           jitter_sd_m=0.0008, accel_amp_ms2=1.0, pressure_sd=0.1, breathing_rate_factor=1.1),
}
# the earlier activity names: the same motion as the recorded protocol's
_PRESETS.update(walking=_PRESETS["walk"], running=_PRESETS["run"], arm_movement=_PRESETS["arms"])


@dataclass(frozen=True)
class ActivityConfig:
    """What the wearer is doing. ``None`` fields take the activity's preset.

    Attributes
    ----------
    kind : one of :data:`ACTIVITIES`
    cadence_hz : steps per second (walking, running)
    intensity : 0..1, muscle activity (drives EMG) and artifact strength
    slip_sd_m : SD of the slow vertical garment slip (m), an Ornstein-Uhlenbeck process
    slip_tau_s : correlation time of slip and rotation (s)
    bounce_m : amplitude of the step-locked vertical garment bounce (m)
    rotation_sd_rad : SD of the garment rotation about the body axis (rad)
    jitter_sd_m : SD of the independent per-electrode jitter, per axis (m)
    accel_amp_ms2 : amplitude of the vertical trunk acceleration at the cadence (m/s^2)
    pressure_sd : SD of log contact pressure from activity (dimensionless)
    breathing_rate_factor : activity's multiplier of the resting breathing rate
    """

    kind: str = "rest"
    cadence_hz: float | None = None
    intensity: float | None = None
    slip_sd_m: float | None = None
    slip_tau_s: float = 5.0
    bounce_m: float | None = None
    rotation_sd_rad: float | None = None
    jitter_sd_m: float | None = None
    accel_amp_ms2: float | None = None
    pressure_sd: float | None = None
    breathing_rate_factor: float | None = None

    def __post_init__(self):
        if self.kind not in ACTIVITIES:
            raise ConfigError(f"activity kind: unknown activity {self.kind!r}; known: {', '.join(ACTIVITIES)}")
        # (older names 'walking', 'running', 'arm_movement' keep their own presets; the
        # recorded ones are 'walk', 'run', 'arms', 'squats')
        for k, v in _PRESETS[self.kind].items():
            if getattr(self, k) is None:
                object.__setattr__(self, k, float(v))
        check_range("intensity", self.intensity, 0.0, 1.0)
        check_range("slip_tau_s", self.slip_tau_s, 0.0, lo_open=True)
        for k in ("cadence_hz", "slip_sd_m", "bounce_m", "rotation_sd_rad", "jitter_sd_m", "accel_amp_ms2",
                  "pressure_sd"):
            check_range(k, getattr(self, k), 0.0)
        check_range("breathing_rate_factor", self.breathing_rate_factor, 0.0, lo_open=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "ActivityConfig":
        return from_dict(cls, data)

    def to_dict(self) -> dict:
        return to_dict(self)


@dataclass(frozen=True)
class BreathingConfig:
    """Breathing pattern.

    Attributes
    ----------
    rate_bpm : (low, high) resting breaths per minute (adult 12-20), drawn per record
    depth : (low, high) relative tidal depth (1 = quiet breathing)
    rate_variability : relative SD of the breath-to-breath rate
    inspiration_fraction : fraction of the cycle spent inhaling (about 0.4)
    strain : circumferential chest strain at depth 1 (about 2 %: 1-3 cm on a 90-cm chest)
    rise_m : superior movement of the anterior chest wall at depth 1 (m)
    heart_rotation_rad : (x, y, z) amplitudes of the respiratory heart rotation at depth 1 (quiet
        breathing): +-0.025, +-0.02, +-0.0175 rad, a quarter of the +-0.10, +-0.08, +-0.07 rad of
        Leanderson 2003 as FECGSYN uses them (PHYSICS.md section 2). The quarter is fitted to real
        resting 12-leads (``scripts/respiratory_axis.py``). Their beats' QRS direction changes by
        1.97 deg RMS (median; CinC 2021 sinus records not held out, noise included), and the
        noiseless simulated 12-lead at rest reads 1.97 deg at a quarter, against 4.7 at the full
        values. Reported on the held-out records, 3.0, and PTB s0010_re's measured Frank leads, 2.36
        (docs/VALIDATION.md, "Which breathing effect").
    """

    rate_bpm: tuple[float, float] = (12.0, 20.0)
    depth: tuple[float, float] = (0.7, 1.3)
    rate_variability: float = 0.1
    inspiration_fraction: float = 0.4
    strain: float = 0.02
    rise_m: float = 0.004
    heart_rotation_rad: tuple[float, float, float] = (0.025, 0.02, 0.0175)

    def __post_init__(self):
        a, b = self.rate_bpm
        check_range("rate_bpm[0]", a, 0.0, 80.0, lo_open=True)
        check_range("rate_bpm[1]", b, a, 80.0)
        a, b = self.depth
        check_range("depth[0]", a, 0.0)
        check_range("depth[1]", b, a, 5.0)
        check_range("rate_variability", self.rate_variability, 0.0, 0.5)
        check_range("inspiration_fraction", self.inspiration_fraction, 0.05, 0.95)
        check_range("strain", self.strain, 0.0, 0.2)
        check_range("rise_m", self.rise_m, 0.0, 0.05)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "BreathingConfig":
        return from_dict(cls, data)

    def to_dict(self) -> dict:
        return to_dict(self)
