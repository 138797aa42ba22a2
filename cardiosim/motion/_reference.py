"""An independent plain NumPy/SciPy formulation of the motion simulator: the test oracle
and benchmark baseline of :mod:`cardiosim.motion.simulate`.

For the same ``numpy.random.Generator`` state, :func:`simulate_motion_ref` draws the same
random numbers in the same order as :func:`cardiosim.motion.simulate_motion` (the draw
order is the model's contract, so the sequence of steps is necessarily the same) and must
give the same :class:`~cardiosim.motion.Motion` (tests/test_motion.py, 1e-12 relative).
What is computed between the draws is formulated independently of the kernels and of
``simulate.py``: the Ornstein-Uhlenbeck process as an IIR filter (``scipy.signal.lfilter``),
the slow-rate interpolation with ``numpy.interp``, the garment rotation as the cross product
``angle * (z_hat x r)``, the breathing stretch as a radial scaling of the transverse
position, and the step pulses from the distance to the nearest heel strike. It shares only
the inputs' checks and the breathing draws with ``simulate.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import signal as _signal

from .config import ARM_ACTIVITIES, BreathingConfig
from .simulate import (_NOMINAL_RADIUS_M, _SLOW_FS, G, Motion, _breathing_draws, _checked_inputs,
                       _checked_offsets_at)

_DEFAULT_BREATHING = BreathingConfig()


def ornstein_uhlenbeck_ref(rng, n_rows, n, fs, tau_s, sd=1.0):
    """Stationary Ornstein-Uhlenbeck process ``[n_rows, n]`` (exact AR(1) discretisation)."""
    a = np.exp(-1.0 / (tau_s * fs))
    e = rng.standard_normal((n_rows, n))
    e[:, 0] /= np.sqrt(1 - a * a)  # start in the stationary distribution
    x = _signal.lfilter([np.sqrt(1 - a * a)], [1.0, -a], e, axis=1)
    return sd * x


def slow_ou_ref(rng, n_rows, n, fs, tau_s, sd=1.0, out=None):
    """Ornstein-Uhlenbeck process ``[n_rows, n]`` at ``fs``, drawn at ``min(fs, 50 Hz)`` and
    linearly interpolated: garment and skin move smoothly (correlation times >= 0.3 s put
    the process's power above 25 Hz 30 dB or more below its low-frequency level), and
    drawing it at the full rate would cost 10x more for white-noise roughness no fabric has.
    With ``out`` (float64 ``[n_rows, n]``) the process is added to it in place."""
    if fs <= _SLOW_FS:
        x = ornstein_uhlenbeck_ref(rng, n_rows, n, fs, tau_s, sd)
        if out is None:
            return x
        out += x
        return out
    ratio = fs / _SLOW_FS
    n_slow = int(np.ceil((n - 1) / ratio)) + 2
    x = ornstein_uhlenbeck_ref(rng, n_rows, n_slow, _SLOW_FS, tau_s, sd)
    if out is None:
        out = np.zeros((n_rows, n))
    at = np.arange(n) / ratio                     # full-rate samples on the slow grid
    grid = np.arange(n_slow, dtype=np.float64)
    for row in range(n_rows):
        out[row] += np.interp(at, grid, x[row])
    return out


def breathing_signal_ref(rng, n, fs, rate_hz, cfg: BreathingConfig):
    """Breathing waveform in [0, 1] (inspiration a half-cosine rise over ``inspiration_fraction``
    of the cycle, expiration a half-cosine fall) with breath-to-breath rate variability.
    Returns (b01 [T], phase [T] cycles)."""
    rv = slow_ou_ref(rng, 1, n, fs, tau_s=4.0 / max(rate_hz, 1e-3), sd=cfg.rate_variability)[0]
    inst = rate_hz * np.maximum(0.2, 1.0 + rv)
    cyc = np.cumsum(inst) / fs + rng.uniform(0, 1)
    u = cyc % 1.0
    ti = cfg.inspiration_fraction
    b = np.where(u < ti, 0.5 * (1 - np.cos(np.pi * u / ti)), 0.5 * (1 + np.cos(np.pi * (u - ti) / (1 - ti))))
    return b, cyc


def _step_pulses_ref(t, cadence, phase, width_s):
    """Train of Gaussian pulses (heel strikes) at ``cadence`` Hz, unit height: a strike at
    every ``t_k = (k - phase) / cadence``, each sample's pulse from the nearest strike."""
    nearest = (np.round(t * cadence + phase) - phase) / cadence
    return np.exp(-0.5 * ((t - nearest) / width_s) ** 2)


def simulate_motion_ref(duration, fs, rng, *, activity="rest", breathing=None, breathing_rate=None,
                        n_electrodes=9, positions=None, offsets_at=None) -> Motion:
    """NumPy twin of :func:`cardiosim.motion.simulate_motion` (same arguments, same draws
    in the same order, same result): the algorithm before its numba kernels. With
    ``offsets_at`` the full-rate offsets are made and then sampled there."""
    act, br, n_e, n, positions = _checked_inputs(duration, fs, rng, activity, breathing, n_electrodes,
                                                 positions)
    at = _checked_offsets_at(offsets_at, n)
    t = np.arange(n) / fs
    p: dict[str, Any] = {"activity": act.kind, "fs": float(fs), "duration_s": float(duration)}

    # --- breathing -------------------------------------------------------------------
    rate_bpm, depth = _breathing_draws(rng, act, br, breathing_rate)
    b01, _ = breathing_signal_ref(rng, n, fs, rate_bpm / 60.0, br)
    breath = depth * b01
    bc = breath - breath.mean()
    p.update(breathing_rate_bpm=rate_bpm, breathing_depth=depth)

    # --- heart rotation with respiration (PHYSICS.md section 2) ------------------------
    rot_amp = np.asarray(br.heart_rotation_rad) * depth
    heart_rotation = rot_amp[:, None] * (2 * b01[None, :] - 1)

    # --- garment slip and rotation, common to all electrodes --------------------------
    cad = act.cadence_hz
    step_phase = rng.uniform(0, 1)
    slip = slow_ou_ref(rng, 1, n, fs, act.slip_tau_s, act.slip_sd_m)[0]
    rot = slow_ou_ref(rng, 1, n, fs, act.slip_tau_s, act.rotation_sd_rad)[0]
    if cad > 0:
        slip += act.bounce_m * np.sin(2 * np.pi * (cad * t + step_phase))
        rot += 0.5 * act.rotation_sd_rad * np.sin(np.pi * (cad * t + step_phase))  # trunk twist, stride rate
    muscle = act.intensity * (0.6 + 0.4 * _step_pulses_ref(t, cad, step_phase, 0.08)) if cad > 0 \
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
    if positions is None:
        # no positions: every electrode at the nominal radius on +y's tangent (lateral swing)
        swing = np.array([_NOMINAL_RADIUS_M, 0.0, 0.0])
        offsets = np.einsum("j,t->jt", swing, rot)[None].repeat(n_e, axis=0)
    else:
        # small rotation by angle a(t) about the body axis: d = a * (z_hat x r)
        tangent = np.cross(np.array([0.0, 0.0, 1.0]), positions)           # (n_e, 3)
        transverse = positions * np.array([1.0, 1.0, 0.0])                  # radial direction, unscaled
        eps = br.strain * (breath - breath.min())                           # circumferential strain
        offsets = tangent[:, :, None] * rot[None, None, :] + transverse[:, :, None] * eps[None, None, :]
    offsets = offsets + np.array([0.0, 0.0, 1.0])[None, :, None] * (slip + br.rise_m * breath)[None, None, :]
    offsets = np.ascontiguousarray(offsets)
    slow_ou_ref(rng, n_e * 3, n, fs, 0.5, act.jitter_sd_m, out=offsets.reshape(n_e * 3, n))  # jitter, in place

    # --- contact pressure: breathing presses front electrodes, steps and jitter shake --
    g_b = rng.uniform(0.5, 1.0, n_e)
    logp = 0.1 * g_b[:, None] * bc[None, :]
    slow_ou_ref(rng, n_e, n, fs, 0.3, act.pressure_sd, out=logp)
    if cad > 0:
        h = rng.uniform(0.5, 1.5, n_e)
        pulses = _step_pulses_ref(t, cad, step_phase, 0.04)
        logp += act.pressure_sd * h[:, None] * (pulses - pulses.mean())[None, :] * 2.0
    pressure = np.exp(logp - logp.mean(axis=1, keepdims=True))

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
        acc += slow_ou_ref(rng, 3, n, fs, 0.3, 0.3 * a) * np.maximum(muscle, 0)[None, :]
    acc += rng.standard_normal((3, n)) * 0.02                       # sensor noise (white), m/s^2
    p.update(cadence_hz=cad, intensity=act.intensity, step_phase=step_phase,
             slip_sd_m=act.slip_sd_m, rotation_sd_rad=act.rotation_sd_rad, jitter_sd_m=act.jitter_sd_m,
             mean_offset_m=float(np.linalg.norm(offsets.mean(axis=2), axis=1).mean()))
    if at is not None:
        offsets = offsets[:, :, at]
    return Motion(offsets=offsets, heart_rotation=heart_rotation, breathing=breath,
                  contact_pressure=pressure, muscle=muscle, accelerometer=acc.astype(np.float32),
                  fs=float(fs), params=p, offsets_at=at)
