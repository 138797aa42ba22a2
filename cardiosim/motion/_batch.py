"""Motion of several records at once: :func:`~cardiosim.motion.simulate.simulate_motion` over a
sub-block of the block engine (:func:`cardiosim.simulate.simulate_records`), bit for bit.

Each record keeps its own generator and its own order of draws: every draw of a record's
motion is made first, in one :func:`cardiosim._pcg64_kernels.draw_program` call for the
sub-block (the draws of the activities batched here do not depend on computed values, only
on the record's length and electrode count), and the computation then runs over ``[B, ...]``
arrays -- one NumPy call for the sub-block where ``simulate_motion`` makes one a record --
with the per-record kernels of :mod:`cardiosim.motion._kernels` fed the drawn numbers.

Batched: activities without steps, arm raises, posture change or accelerometer activity
(``cadence_hz == 0``, ``accel_amp_ms2 == 0``: ``rest`` and ``sitting``, the default dataset's)
with electrode positions and ``offsets_at``; :func:`batch_key` says which, and the
other records run :func:`simulate_motion` one by one (their draws depend on Poisson counts,
or their NumPy ``sin``/``exp`` passes over steps would have to be re-checked row by row).

API: ``batch_key(activity, n_electrodes, duration, fs, breathing, given_rate) -> tuple | None``,
``simulate_motion_batch(duration, fs, rngs, *, activity, positions, offsets_at, breathing=None,
breathing_rates=None) -> list[Motion]``.
"""

from __future__ import annotations

import numpy as np

from .._exp_kernels import np_exp_table
from .._pcg64_kernels import NORMAL, RANDOM, draw_program
from ..errors import ConfigError
from ._kernels import (accel_finish_kernel, breathing_finish_kernel, breathing_kernel, exp_centred_rows_kernel,
                       slow_ou_affine_kernel, slow_ou_affine_sampled_kernel)
from .config import ARM_ACTIVITIES, ActivityConfig, BreathingConfig
from .simulate import (_DEFAULT_BREATHING, _NO_BASIS, _NO_COEF, G, Motion, _checked_inputs, _interpolation_table,
                       _pairwise_plan, _slow_grid)


def batch_key(activity: ActivityConfig, n_electrodes: int, n: int, fs: float, breathing: BreathingConfig,
              given_rate: bool):
    """The key under which records of this motion can share a :func:`simulate_motion_batch`
    call (equal keys: the same program of draws and the same arrays' shapes), or None when
    the activity is not one this module batches."""
    if (activity.cadence_hz > 0 or activity.accel_amp_ms2 > 0 or activity.kind in ARM_ACTIVITIES
            or activity.kind == "posture_change"):
        return None
    return activity, int(n_electrodes), int(n), float(fs), breathing, bool(given_rate)


def _program(n: int, m: int, n_e: int, given_rate: bool) -> tuple:
    """The draws of one record's :func:`simulate_motion` (a batched activity), in its order."""
    return ((RANDOM, 1 if given_rate else 2),   # [rate], depth (Generator.uniform: lo + (hi - lo) random())
            (NORMAL, m),                        # breathing rate variability (slow grid)
            (RANDOM, 2),                        # breathing phase, step phase
            (NORMAL, m), (NORMAL, m),           # garment slip, rotation
            (NORMAL, 3 * n_e * m),              # electrode jitter
            (RANDOM, n_e),                      # breathing's share of the contact pressure
            (NORMAL, n_e * m),                  # contact pressure
            (NORMAL, 3 * n))                    # accelerometer sensor noise


def simulate_motion_batch(duration: float, fs: float, rngs, *, activity: ActivityConfig, positions: np.ndarray,
                          offsets_at: np.ndarray, breathing: BreathingConfig | None = None,
                          breathing_rates=None) -> list:
    """``[simulate_motion(duration, fs, rngs[b], activity=activity, breathing=breathing,
    breathing_rate=breathing_rates[b], n_electrodes=n_e, positions=positions[b],
    offsets_at=offsets_at) for b]``, bit for bit, with each generator left where that call
    leaves it.

    Parameters
    ----------
    duration, fs : float
    rngs : sequence of numpy.random.Generator
        One per record (distinct generators).
    activity : ActivityConfig
        One :func:`batch_key` accepts.
    positions : ndarray (B, n_electrodes, 3) m
        Each record's nominal positions relative to the body axis.
    offsets_at : ndarray (K,) int
        Sample indices of the offsets kept (``simulate_motion(offsets_at=...)``).
    breathing : BreathingConfig, optional
    breathing_rates : sequence of float or None, optional
        Each record's given breathing rate (breaths/min), all given or none.

    Returns
    -------
    list of Motion
        New arrays of a record's size each (as ``simulate_motion`` makes them; measured
        2026-12-07: a sub-block's worth in one allocation, freed at once, had glibc return the
        memory and fault it in again, ~150 page faults a record in ``generate``; per-thread
        scratch buffers instead kept the other stages' data out of the caches).
    """
    br = _DEFAULT_BREATHING if breathing is None else breathing
    act = activity
    positions = np.asarray(positions, dtype=np.float64)
    if positions.ndim != 3 or positions.shape[0] != len(rngs) or positions.shape[2] != 3:
        raise ConfigError(f"positions must be [records, electrodes, 3] for {len(rngs)} records, got {positions.shape}")
    bsz, n_e = positions.shape[:2]
    given = breathing_rates is not None
    if batch_key(act, n_e, 2, fs, br, given) is None:
        raise ConfigError(f"activity {act.kind!r} is not one simulate_motion_batch makes")
    if bsz and all(isinstance(g, np.random.Generator) for g in rngs) and np.all(np.isfinite(positions)) \
            and not np.max(np.abs(positions), initial=0.0) > 2.0:
        # every record's own inputs pass simulate_motion's checks: its checks of the shared
        # inputs once, not once a record
        _, _, _, n, _ = _checked_inputs(duration, fs, rngs[0], act, br, n_e, positions[0])
    else:
        for b in range(bsz):      # the per-record checks (and their errors) of simulate_motion
            _, _, _, n, _ = _checked_inputs(duration, fs, rngs[b], act, br, n_e, positions[b])
    from .simulate import _checked_offsets_at

    at = _checked_offsets_at(offsets_at, n)
    if given:
        rates = np.array([float(v) for v in breathing_rates], dtype=np.float64)
        if rates.shape != (bsz,) or not np.all(np.isfinite(rates) & (rates > 0) & (rates <= 80)):
            raise ConfigError(f"breathing_rates must be one rate in (0, 80] breaths/min a record, "
                              f"got {breathing_rates!r}")
    m, ratio, _, _ = _slow_grid(n, fs, 1.0)
    drawn = draw_program(rngs, _program(n, m, n_e, given))
    u, z = drawn.u, drawn.z
    # --- breathing (per record: the rate sets the OU's pole) -------------------------------
    lo, hi = br.rate_bpm
    iu = 0
    if not given:
        rates = (lo + (hi - lo) * u[:, 0]) * act.breathing_rate_factor
        iu = 1
    lo, hi = br.depth
    depth = (lo + (hi - lo) * u[:, iu]) * (1.0 + act.intensity)
    phase0, step_phase = u[:, iu + 1], u[:, iu + 2]
    g_b = 0.5 + (1.0 - 0.5) * u[:, iu + 3:iu + 3 + n_e]
    rates_l = rates.tolist()
    idx, w0, w1 = _interpolation_table(n, float(ratio))
    b01 = np.empty((bsz, n))
    cyc = np.empty((n,))
    rv = np.empty((1, n))
    ti = float(br.inspiration_fraction)
    for b in range(bsz):
        rate_hz = rates_l[b] / 60.0
        _, _, a, c = _slow_grid(n, fs, 4.0 / max(rate_hz, 1e-3))
        slow_ou_affine_kernel(_NO_COEF, _NO_BASIS, z[b, :m].reshape(1, m), a, c, float(br.rate_variability),
                              idx, w0, w1, True, rv)
        breathing_kernel(rv[0], float(rate_hz), float(fs), float(phase0[b]), ti, b01[b], cyc)
    rot_amp = np.asarray(br.heart_rotation_rad)[None, :] * depth[:, None]
    # --- garment slip and rotation, electrode offsets ---------------------------------------
    basis = np.empty((bsz, 3, n))
    _, _, a_s, c_s = _slow_grid(n, fs, act.slip_tau_s)
    for b in range(bsz):   # (fill: each row from 0.0, as simulate_motion's zeroed rows)
        slow_ou_affine_kernel(_NO_COEF, _NO_BASIS, z[b, m:2 * m].reshape(1, m), a_s, c_s, float(act.slip_sd_m),
                              idx, w0, w1, True, basis[b, 2:3])
        slow_ou_affine_kernel(_NO_COEF, _NO_BASIS, z[b, 2 * m:3 * m].reshape(1, m), a_s, c_s,
                              float(act.rotation_sd_rad), idx, w0, w1, True, basis[b, 0:1])
    # the chest expansion, its centred copy, the heart's angles (rot_amp (3,) times 2 b01 - 1),
    # the breathing strain (basis row 1) and rise (added to the slip, row 2): simulate_motion's
    # NumPy passes, two passes a record (_kernels.breathing_finish_kernel)
    breath = np.empty((bsz, n))
    bc = np.empty((bsz, n))
    depth_l = depth.tolist()
    strain, rise = float(br.strain), float(br.rise_m)
    heart = []
    for b in range(bsz):
        # new arrays of a record's size, as simulate_motion makes them: a sub-block's worth in
        # one allocation, freed at once, had glibc return the memory and fault it in again
        h = np.empty((3, n))
        breathing_finish_kernel(b01[b], depth_l[b], rot_amp[b], strain, rise, breath[b], bc[b], h, basis[b])
        heart.append(h)
    coef = np.zeros((bsz, n_e, 3, 3))
    coef[:, :, 0, 0] = -positions[:, :, 1]
    coef[:, :, 1, 0] = positions[:, :, 0]
    coef[:, :, 0, 1] = positions[:, :, 0]
    coef[:, :, 1, 1] = positions[:, :, 1]
    coef[:, :, 2, 2] = 1.0
    rows = 3 * n_e
    _, _, a_j, c_j = _slow_grid(n, fs, 0.5)
    plan = _pairwise_plan(n)
    sampled = np.empty((bsz, at.shape[0], rows))
    sums = np.empty((bsz, rows))
    coef_t = np.ascontiguousarray(coef.reshape(bsz, rows, 3).transpose(0, 2, 1))
    z_j = z[:, 3 * m:3 * m + rows * m]
    for b in range(bsz):
        e = z_j[b].reshape(rows, m)
        if slow_ou_affine_sampled_kernel(coef_t[b], basis[b], e, a_j, c_j, float(act.jitter_sd_m), idx, w0, w1,
                                         *plan, at, sampled[b], sums[b]):
            # a non-finite basis value: the row-by-row kernel decides (as _slow_ou_sampled)
            y = np.empty((rows, n))
            slow_ou_affine_kernel(np.ascontiguousarray(coef_t[b].T), basis[b], e, a_j, c_j, float(act.jitter_sd_m),
                                  idx, w0, w1, True, y)
            sampled[b] = y[:, at].T
            sums[b] = np.add.reduce(y, axis=1)
    mean_offset = np.linalg.norm((sums / n).reshape(bsz, n_e, 3), axis=2).mean(axis=1)
    # --- contact pressure ------------------------------------------------------------------
    _, _, a_p, c_p = _slow_grid(n, fs, 0.3)
    gcoef = (0.1 * g_b)[:, :, None]
    z_p = z[:, 3 * m + rows * m:3 * m + rows * m + n_e * m]
    pressure = []
    exp_tab = np_exp_table()   # np.exp's numbers (simulate_motion's), 2x faster: _exp_kernels
    inline_exp = exp_tab.shape[0] > 0   # else (AVX-512) NumPy's own exp, as simulate_motion
    for b in range(bsz):
        logp = np.empty((n_e, n))
        slow_ou_affine_kernel(gcoef[b], bc[b][None, :], z_p[b].reshape(n_e, m), a_p, c_p, float(act.pressure_sd),
                              idx, w0, w1, True, logp)
        if inline_exp:
            # exp(logp - its row means) in one pass (NumPy's means; no subtraction pass)
            exp_centred_rows_kernel(logp, logp.mean(axis=1), exp_tab)
        else:
            logp -= logp.mean(axis=1, keepdims=True)
            np.exp(logp, out=logp)
        pressure.append(logp)
    # --- accelerometer: gravity and sensor noise -----------------------------------------------
    acc = np.zeros((3, n))
    acc[2] = G
    accelerometer = [np.empty((3, n), np.float32) for _ in range(bsz)]
    z_a = z[:, z.shape[1] - 3 * n:]
    for b in range(bsz):
        accel_finish_kernel(acc, z_a[b].reshape(3, n), 0.02, accelerometer[b])
    offsets = np.moveaxis(sampled.reshape(bsz, at.shape[0], n_e, 3), 1, 3)
    head = {"activity": act.kind, "fs": float(fs), "duration_s": float(duration)}
    tail = dict(cadence_hz=act.cadence_hz, intensity=act.intensity)
    tail2 = dict(slip_sd_m=act.slip_sd_m, rotation_sd_rad=act.rotation_sd_rad, jitter_sd_m=act.jitter_sd_m)
    out = []
    for b, (rate, dep, sp, mo) in enumerate(zip(rates_l, depth.tolist(), step_phase.tolist(), mean_offset.tolist())):
        p = dict(head)
        p.update(breathing_rate_bpm=rate, breathing_depth=dep)
        p.update(tail)
        p["step_phase"] = sp
        p.update(tail2)
        p["mean_offset_m"] = mo
        out.append(Motion(offsets=offsets[b], heart_rotation=heart[b], breathing=breath[b],
                          contact_pressure=pressure[b], muscle=np.full(n, act.intensity), accelerometer=accelerometer[b],
                          fs=float(fs), params=p, offsets_at=at))
    return out
