"""Activity and breathing -> garment slip, electrode offsets, heart rotation, contact
pressure, muscle envelope and a 3-axis accelerometer signal.

Frame: patient LPS (+x left, +y posterior, +z superior), metres. Offsets are 3-D
displacements of each electrode; :func:`cardiosim.geometry.displace_on_surface` keeps
their tangential part and puts the electrode back on the torso surface, so motion does
not depend on the mesh.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Mapping

import numpy as np

from .._exp_kernels import exp_rows_inplace_kernel, np_exp_table
from .._pcg64_kernels import standard_normal  # rng.standard_normal, the same numbers, 3.5x faster
from .._scratch import scratch as _scratch
from ..errors import ConfigError, GeometryError
from ._kernels import (accel_finish_kernel, add_outer_kernel, breathing_kernel, interpolation_table, ou_kernel,
                       pairwise_plan, slow_ou_affine_kernel, slow_ou_affine_sampled_kernel)
from .config import ARM_ACTIVITIES, ActivityConfig, BreathingConfig

G = 9.80665  # standard gravity, m/s^2
_NOMINAL_RADIUS_M = 0.15  # chest radius used for rotations when no positions are given


@dataclass(frozen=True)
class Motion:
    """Motion of the wearer and the garment over ``T`` samples at ``fs``.

    Attributes
    ----------
    offsets : ndarray (n_electrodes, 3, T) float64, m, LPS
        Electrode displacement from its nominal position (garment slip, rotation about the
        body axis, breathing stretch, per-electrode jitter); ``(n_electrodes, 3, K)`` at the
        samples :attr:`offsets_at` only when :func:`simulate_motion` was asked for those.
    heart_rotation : ndarray (3, T) float64, rad
        Rotation angles of the heart about LPS x, y, z with respiration (PHYSICS.md section 2).
    breathing : ndarray (T,) float64
        Chest expansion relative to the tidal depth: 0 at end-expiration, ``depth`` at
        end-inspiration.
    contact_pressure : ndarray (n_electrodes, T) float64
        Electrode contact pressure relative to its mean fit (1 = nominal, always > 0).
    muscle : ndarray (T,) float64
        Muscle-activity envelope (0 = relaxed, about 1 = strong), drives EMG noise.
    accelerometer : ndarray (3, T) float32, m/s^2
        Specific force along LPS x, y, z of a chest-worn device (gravity + activity):
        ``+9.81`` on z when standing still.
    fs : float, Hz
    params : dict of every drawn value
    offsets_at : ndarray (K,) int64 or None
        Sample indices of ``offsets``' last axis (``simulate_motion(offsets_at=...)``); None
        when ``offsets`` holds every sample.
    """

    offsets: np.ndarray
    heart_rotation: np.ndarray
    breathing: np.ndarray
    contact_pressure: np.ndarray
    muscle: np.ndarray
    accelerometer: np.ndarray
    fs: float
    params: dict = field(default_factory=dict)
    offsets_at: np.ndarray | None = None

    @property
    def n_electrodes(self) -> int:
        return self.offsets.shape[0]


_DEFAULT_BREATHING = BreathingConfig()
_NO_COEF = np.zeros((1, 0))   # slow_ou without an affine part
_NO_BASIS = np.zeros((0, 1))


@lru_cache(maxsize=None)
def _preset_activity(kind: str) -> ActivityConfig:
    """The (frozen) preset config of an activity name; raises ConfigError for unknown names."""
    return ActivityConfig(kind=kind)


_SLOW_FS = 50.0  # rate of the slow random processes (all correlation times >= 0.3 s)


def _ou_coefficients(fs, tau_s):
    """Pole ``a = exp(-1 / (tau fs))`` and input gain ``c = sqrt(1 - a^2)`` of the exact AR(1)
    discretisation of an Ornstein-Uhlenbeck process with correlation time ``tau_s``."""
    a = np.exp(-1.0 / (tau_s * fs))
    return float(a), float(np.sqrt(1 - a * a))


def ornstein_uhlenbeck(rng, n_rows, n, fs, tau_s, sd=1.0):
    """Stationary Ornstein-Uhlenbeck process ``[n_rows, n]`` (exact AR(1) discretisation),
    started in its stationary distribution; draws ``rng.standard_normal((n_rows, n))``."""
    a, c = _ou_coefficients(fs, tau_s)
    e = standard_normal(rng, (n_rows, n))
    ou_kernel(e, a, c, float(sd), e)  # in place
    return e


def slow_ou(rng, n_rows, n, fs, tau_s, sd=1.0, out=None, coef=None, basis=None):
    """Ornstein-Uhlenbeck process ``[n_rows, n]`` at ``fs``, drawn at ``min(fs, 50 Hz)`` and
    linearly interpolated: garment and skin move smoothly (correlation times >= 0.3 s put
    the process's power above 25 Hz 30 dB or more below its low-frequency level), and
    drawing it at the full rate would cost 10x more for white-noise roughness no fabric has.

    With ``out`` (C-contiguous float64 ``[n_rows, n]``) the process is added to it in place.
    With ``coef [n_rows, K]`` and ``basis [K, n]`` the result is
    ``coef @ basis + process`` (summed term by term, into ``out`` if given, which is then
    overwritten), in one call of :func:`~cardiosim.motion._kernels.slow_ou_affine_kernel`.
    Draws ``rng.standard_normal((n_rows, m))`` with ``m`` the slow-grid length."""
    m, ratio, a, c = _slow_grid(n, fs, tau_s)
    e = standard_normal(rng, (n_rows, m))
    fill = out is None or coef is not None
    if out is None:
        out = np.empty((n_rows, n))
    if coef is None:
        coef, basis = _NO_COEF, _NO_BASIS
    idx, w0, w1 = _interpolation_table(n, float(ratio))
    slow_ou_affine_kernel(np.ascontiguousarray(coef, dtype=np.float64), np.ascontiguousarray(basis, dtype=np.float64),
                          e, a, c, float(sd), idx, w0, w1, fill, out)
    return out


def _slow_grid(n: int, fs: float, tau_s: float):
    """``(m, ratio, a, c)``: the slow grid's length for ``n`` samples at ``fs`` (the signal's
    own grid at or below the slow rate), the interpolation ratio (0 for none) and the OU
    recursion's coefficients on that grid."""
    if fs <= _SLOW_FS:
        m, ratio, a_fs = n, 0.0, fs
    else:
        ratio = fs / _SLOW_FS
        m, a_fs = int(np.ceil((n - 1) / ratio)) + 2, _SLOW_FS
    a, c = _ou_coefficients(a_fs, tau_s)
    return m, ratio, a, c


@lru_cache(maxsize=16)
def _interpolation_table(n: int, ratio: float):
    """:func:`~cardiosim.motion._kernels.interpolation_table`, computed once per record
    length and rate (read-only arrays)."""
    tables = interpolation_table(n, ratio)
    for arr in tables:
        arr.flags.writeable = False
    return tables


def _slow_ou_sampled(rng, n_rows, n, fs, tau_s, sd, coef, basis, at):
    """:func:`slow_ou` with ``coef`` and ``basis`` (the same draws), keeping only the samples
    ``at`` (increasing) and the row sums: ``(y[:, at].T as [len(at), n_rows],
    numpy.add.reduce(y, axis=1))`` of its ``[n_rows, n]`` result ``y``, bit for bit, without
    making ``y`` (:func:`~cardiosim.motion._kernels.slow_ou_affine_sampled_kernel`)."""
    m, ratio, a, c = _slow_grid(n, fs, tau_s)
    e = standard_normal(rng, (n_rows, m))
    idx, w0, w1 = _interpolation_table(n, float(ratio))
    coef_t = np.ascontiguousarray(np.asarray(coef, dtype=np.float64).T)
    basis = np.ascontiguousarray(basis, dtype=np.float64)
    out_at = np.empty((at.shape[0], n_rows))
    sums = np.empty(n_rows)
    if slow_ou_affine_sampled_kernel(coef_t, basis, e, a, c, float(sd), idx, w0, w1, *_pairwise_plan(n), at,
                                     out_at, sums):
        # a non-finite basis value: the row-by-row kernel, which skips zero terms, decides
        y = np.empty((n_rows, n))
        slow_ou_affine_kernel(np.ascontiguousarray(coef_t.T), basis, e, a, c, float(sd), idx, w0, w1, True, y)
        out_at[...] = y[:, at].T
        sums[...] = np.add.reduce(y, axis=1)
    return out_at, sums


@lru_cache(maxsize=16)
def _pairwise_plan(n: int):
    """:func:`~cardiosim.motion._kernels.pairwise_plan` ``(n)``, made once per record length
    (read-only arrays)."""
    plan = pairwise_plan(n)
    for arr in plan:
        arr.flags.writeable = False
    return plan


def _checked_offsets_at(offsets_at, n):
    """``offsets_at`` as a contiguous int64 array of sample indices in ``[0, n)``, or None."""
    if offsets_at is None:
        return None
    at = np.ascontiguousarray(offsets_at, dtype=np.int64)
    if at.ndim != 1 or at.size == 0 or at[0] < 0 or at[-1] >= n or (at.size > 1 and np.any(at[1:] <= at[:-1])):
        raise ConfigError(f"offsets_at must be a non-empty increasing 1-D array of sample indices in [0, {n}), "
                          f"got shape {at.shape}" + (f" from {at[0]} to {at[-1]}" if at.ndim == 1 and at.size else ""))
    return at


def breathing_signal(rng, n, fs, rate_hz, cfg: BreathingConfig):
    """Breathing waveform in [0, 1] (inspiration a half-cosine rise over ``inspiration_fraction``
    of the cycle, expiration a half-cosine fall) with breath-to-breath rate variability.
    Returns (b01 [T], phase [T] cycles)."""
    rv = slow_ou(rng, 1, n, fs, tau_s=4.0 / max(rate_hz, 1e-3), sd=cfg.rate_variability)[0]
    phase0 = rng.uniform(0, 1)
    b = np.empty(n)
    cyc = np.empty(n)
    breathing_kernel(rv, float(rate_hz), float(fs), float(phase0), float(cfg.inspiration_fraction), b, cyc)
    return b, cyc


def _step_pulses(t, cadence, phase, width_s):
    """Train of Gaussian pulses (heel strikes) at ``cadence`` Hz, unit height."""
    u = (t * cadence + phase) % 1.0
    d = np.minimum(u, 1 - u) / cadence
    return np.exp(-0.5 * (d / width_s) ** 2)


def _checked_inputs(duration, fs, rng, activity, breathing, n_electrodes, positions):
    """Validated inputs of :func:`simulate_motion` (shared with its NumPy twin):
    (activity config, breathing config, n_electrodes, n_samples, positions)."""
    if not isinstance(rng, np.random.Generator):
        raise ConfigError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    if not (np.isfinite(duration) and duration > 0):
        raise ConfigError(f"duration must be > 0 s, got {duration!r}")
    if not (np.isfinite(fs) and fs > 0):
        raise ConfigError(f"fs must be a positive number of Hz, got {fs!r}")
    if int(n_electrodes) != n_electrodes or n_electrodes < 1:
        raise ConfigError(f"n_electrodes must be a positive integer, got {n_electrodes!r}")
    if isinstance(activity, str):
        act = _preset_activity(activity)
    elif isinstance(activity, ActivityConfig):
        act = activity
    else:
        act = ActivityConfig.from_dict(activity)
    if breathing is None:
        br = _DEFAULT_BREATHING
    elif isinstance(breathing, BreathingConfig):
        br = breathing
    else:
        br = BreathingConfig.from_dict(breathing)
    n_e = int(n_electrodes)
    n = int(round(duration * fs))
    if n < 2:
        raise ConfigError(f"duration * fs gives {n} samples; need at least 2")
    if positions is not None:
        positions = np.asarray(positions, dtype=np.float64)
        if positions.shape != (n_e, 3) or not np.all(np.isfinite(positions)):
            raise GeometryError(f"positions must be finite with shape ({n_e}, 3) m, got {positions.shape}")
        if np.max(np.abs(positions)) > 2.0:
            raise GeometryError(f"positions look like millimetres (max |value| {np.max(np.abs(positions)):.1f}); "
                                "give metres")
    return act, br, n_e, n, positions


def _breathing_draws(rng, act, br, breathing_rate):
    """Breathing rate (breaths/min; the given one, or drawn and scaled by the activity)
    and depth (scaled by the activity's intensity); shared with the NumPy twin."""
    if breathing_rate is not None:
        if not (np.isfinite(breathing_rate) and 0 < breathing_rate <= 80):
            raise ConfigError(f"breathing_rate must be in (0, 80] breaths/min, got {breathing_rate!r}")
        rate_bpm = float(breathing_rate)
    else:
        rate_bpm = rng.uniform(*br.rate_bpm) * act.breathing_rate_factor
    return rate_bpm, rng.uniform(*br.depth) * (1.0 + act.intensity)


def simulate_motion(duration: float, fs: float, rng: np.random.Generator, *,
                    activity: str | ActivityConfig | Mapping[str, Any] = "rest",
                    breathing: BreathingConfig | Mapping[str, Any] | None = None,
                    breathing_rate: float | None = None, n_electrodes: int = 9,
                    positions: np.ndarray | None = None, offsets_at: np.ndarray | None = None) -> Motion:
    """Simulate wearer and garment motion.

    Parameters
    ----------
    duration : float, s
    fs : float, Hz (the device or simulation rate)
    rng : numpy.random.Generator
    activity : activity name (:data:`ACTIVITIES`), ActivityConfig, or its dict
    breathing : BreathingConfig or dict (default ``BreathingConfig()``)
    breathing_rate : float, breaths/min, optional -- overrides the drawn resting rate and
        the activity factor
    n_electrodes : int
    positions : ndarray (n_electrodes, 3) m LPS, optional
        Nominal electrode positions, relative to the body axis (x = y = 0). Used to turn
        garment rotation and circumferential breathing stretch into per-electrode
        displacements; without them every electrode is treated as lying on the front of
        a 0.15-m-radius chest (rotation -> lateral shift, no stretch).
    offsets_at : ndarray (K,) of int, optional
        Return ``offsets`` only at these (increasing) sample indices (``Motion.offsets_at``): the same
        values as ``offsets[:, :, offsets_at]`` of the full result, from the same draws, and
        the same ``mean_offset_m``, without building the full-rate offsets (what
        :func:`cardiosim.simulate.simulate_record` reads: the samples where lead fields are
        evaluated).

    Returns
    -------
    Motion
    """
    act, br, n_e, n, positions = _checked_inputs(duration, fs, rng, activity, breathing, n_electrodes,
                                                 positions)
    at = _checked_offsets_at(offsets_at, n)
    # the time axis only for the activities whose steps, arm raises or posture change use it
    timed = act.cadence_hz > 0 or act.kind in ARM_ACTIVITIES or act.kind == "posture_change"
    t = np.arange(n) / fs if timed else None
    p: dict[str, Any] = {"activity": act.kind, "fs": float(fs), "duration_s": float(duration)}

    # --- breathing -------------------------------------------------------------------
    rate_bpm, depth = _breathing_draws(rng, act, br, breathing_rate)
    b01, _ = breathing_signal(rng, n, fs, rate_bpm / 60.0, br)
    breath = depth * b01
    bc = breath - breath.mean()
    p.update(breathing_rate_bpm=rate_bpm, breathing_depth=depth)

    # --- heart rotation with respiration (PHYSICS.md section 2) ------------------------
    rot_amp = np.asarray(br.heart_rotation_rad) * depth
    heart_rotation = rot_amp[:, None] * (2 * b01[None, :] - 1)

    # --- garment slip and rotation, common to all electrodes --------------------------
    cad = act.cadence_hz
    step_phase = rng.uniform(0, 1)
    # rot, eps and slip are built in place in the rows of the offsets' basis (no np.stack
    # copy); slow_ou adds each process to its zeroed row: 0.0 + process, as when it fills
    basis = _scratch("motion.basis", (3, n))
    basis[0] = 0.0
    basis[2] = 0.0
    rot, eps, slip = basis[0], basis[1], basis[2]
    slow_ou(rng, 1, n, fs, act.slip_tau_s, act.slip_sd_m, out=basis[2:3])
    slow_ou(rng, 1, n, fs, act.slip_tau_s, act.rotation_sd_rad, out=basis[0:1])
    if cad > 0:
        slip += act.bounce_m * np.sin(2 * np.pi * (cad * t + step_phase))
        rot += 0.5 * act.rotation_sd_rad * np.sin(np.pi * (cad * t + step_phase))  # trunk twist, stride rate
    muscle = act.intensity * (0.6 + 0.4 * _step_pulses(t, cad, step_phase, 0.08)) if cad > 0 \
        else np.full(n, act.intensity)
    upright_to = None
    if act.kind in ARM_ACTIVITIES:
        n_raise = max(1, rng.poisson(duration / 3.0))
        centres = rng.uniform(0, duration, n_raise)
        widths = rng.uniform(0.4, 1.0, n_raise)
        lifts = rng.uniform(0.005, 0.015, n_raise)
        arm = np.zeros(n)
        for c, w, h in zip(centres, widths, lifts):
            g = np.exp(-0.5 * ((t - c) / w) ** 2)
            arm += g
            slip += h * g                      # raising the arms lifts the shirt
            rot += rng.normal(0, 0.02) * g
        muscle = muscle + 0.8 * np.minimum(arm, 1.0)
        p.update(arm_raises=int(n_raise))
    if act.kind == "posture_change":
        tc = rng.uniform(0.25, 0.75) * duration
        dur_c = rng.uniform(1.0, 2.5)
        s = 0.5 * (1 + np.tanh((t - tc) / (dur_c / 4)))           # smooth 0 -> 1 transition
        step = rng.uniform(0.005, 0.02) * rng.choice([-1, 1])
        slip += step * s
        upright_to = bool(rng.random() < 0.5)                     # True: supine -> upright
        burst = np.exp(-0.5 * ((t - tc) / (dur_c / 2)) ** 2)
        muscle = muscle + 0.8 * burst
        p.update(posture_change_time_s=tc, posture_change_duration_s=dur_c, posture_slip_m=step,
                 posture_to_upright=float(upright_to))

    # --- electrode offsets -------------------------------------------------------------
    # rows e*3 + k of coef @ basis: k = 0, 1 from the rotation and the stretch, k = 2 vertical
    coef = np.zeros((n_e, 3, 3))
    if positions is None:
        coef[:, 0, 0] = _NOMINAL_RADIUS_M                               # rotation -> lateral
        eps[:] = 0.0
    else:
        # rotation by angle a about the body (z) axis: d = a * (z_hat x r) = a * (-y, x, 0)
        coef[:, 0, 0] = -positions[:, 1]
        coef[:, 1, 0] = positions[:, 0]
        # circumferential breathing stretch: radial in the transverse plane
        np.subtract(breath, breath.min(), out=eps)
        eps *= br.strain                                                # = strain * (breath - min)
        coef[:, 0, 1] = positions[:, 0]
        coef[:, 1, 1] = positions[:, 1]
    coef[:, 2, 2] = 1.0
    slip += br.rise_m * breath
    if at is None:
        offsets = slow_ou(rng, n_e * 3, n, fs, 0.5, act.jitter_sd_m, coef=coef.reshape(n_e * 3, 3),
                          basis=basis).reshape(n_e, 3, n)             # + per-electrode jitter
        # the mean offset (params) while the ~1-MB offsets are still in cache: taken after the
        # pressure and accelerometer draws, this pass cost 2-3x more
        mean_offset = float(np.linalg.norm(offsets.mean(axis=2), axis=1).mean())
    else:
        # the same offsets kept only at the samples asked for ([K, n_e * 3], returned as the
        # [n_e, 3, K] view), and the same mean: np.mean's row sums (NumPy's pairwise order)
        # divided by n
        sampled, sums = _slow_ou_sampled(rng, n_e * 3, n, fs, 0.5, act.jitter_sd_m, coef.reshape(n_e * 3, 3),
                                         basis, at)
        offsets = np.moveaxis(sampled.reshape(at.shape[0], n_e, 3), 0, 2)
        mean_offset = float(np.linalg.norm((sums / n).reshape(n_e, 3), axis=1).mean())

    # --- contact pressure: breathing presses front electrodes, steps and jitter shake --
    g_b = rng.uniform(0.5, 1.0, n_e)
    logp = slow_ou(rng, n_e, n, fs, 0.3, act.pressure_sd, coef=(0.1 * g_b)[:, None], basis=bc[None, :])
    if cad > 0:
        h = rng.uniform(0.5, 1.5, n_e)
        pulses = _step_pulses(t, cad, step_phase, 0.04)
        # logp += pressure_sd h[:, None] (pulses - mean)[None, :] 2, one pass, no temporaries
        add_outer_kernel(logp, act.pressure_sd * h, pulses - pulses.mean(), 2.0)
    logp -= logp.mean(axis=1, keepdims=True)
    # in place (no page-faulting temporaries): glibc's exp inline where it is np.exp bit for
    # bit here (_exp_kernels.np_exp_table: 2x NumPy's call of the C function per element),
    # else np.exp itself (AVX-512: NumPy's own SIMD exp, 4x math.exp per element)
    exp_tab = np_exp_table()
    if exp_tab.shape[0]:
        exp_rows_inplace_kernel(logp, exp_tab)
    else:
        np.exp(logp, out=logp)
    pressure = logp

    # --- accelerometer (specific force in LPS) -------------------------------------------
    acc = np.zeros((3, n))
    if act.kind == "posture_change":
        # gravity direction rotates between upright (+z) and supine (-y: lying on the back)
        ang = (np.pi / 2) * ((1 - s) if upright_to else s)
        acc[2] = G * np.cos(ang)
        acc[1] = -G * np.sin(ang)
        acc[1] += act.accel_amp_ms2 * np.gradient(s, t) * dur_c / 2 * rng.normal()
    else:
        acc[2] = G
    a = act.accel_amp_ms2
    if cad > 0:
        ph = 2 * np.pi * (cad * t + step_phase)
        acc[2] += a * (np.sin(ph) + 0.3 * np.sin(2 * ph + 0.5))      # vertical bounce at the step rate
        acc[1] += 0.5 * a * np.cos(ph)                              # fore-aft at the step rate
        acc[0] += 0.4 * a * np.sin(0.5 * ph)                        # mediolateral sway at the stride rate
    elif a > 0:
        acc += slow_ou(rng, 3, n, fs, 0.3, 0.3 * a) * np.maximum(muscle, 0)[None, :]
    noise = standard_normal(rng, (3, n))
    # + 0.02 * noise (sensor noise, white, m/s^2) and the float32 cast in one pass
    accelerometer = np.empty((3, n), dtype=np.float32)
    accel_finish_kernel(acc, noise, 0.02, accelerometer)
    p.update(cadence_hz=cad, intensity=act.intensity, step_phase=step_phase,
             slip_sd_m=act.slip_sd_m, rotation_sd_rad=act.rotation_sd_rad, jitter_sd_m=act.jitter_sd_m,
             mean_offset_m=mean_offset)
    return Motion(offsets=offsets, heart_rotation=heart_rotation, breathing=breath,
                  contact_pressure=pressure, muscle=muscle, accelerometer=accelerometer,
                  fs=float(fs), params=p, offsets_at=at)
