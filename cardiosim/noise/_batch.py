"""Electrode noise of several records at once: :func:`~cardiosim.noise.electrode.simulate_electrode_noise`
over a sub-block of the block engine (:func:`cardiosim.simulate.simulate_records`), bit for bit.

Each record keeps its own generator and its own order of draws. The draws that do not depend
on computed values -- SNR targets, impedances, the white noise's amplitudes and seed, the
activity noise's level, envelope innovations and seed, the mains' phases and amplitudes, the
contact events' Poisson counts, the drift's level and spectrum -- are made for the whole
sub-block by :func:`cardiosim._pcg64_kernels.draw_program` (one kernel call stepping each
record's PCG64; a second one for the kinds after ``contact``, whose event draws, when a record
has events, are made in between from that record's generator as
:func:`~cardiosim.noise.electrode.simulate_electrode_noise` makes them). The arithmetic on
per-record scalars then runs over ``[B, ...]`` arrays (one NumPy call for the sub-block), and the
kernels of :mod:`cardiosim.noise._kernels` and the FFTs run record by record on the drawn
numbers, each with the arguments the per-record code gives it.

Batched: records with a motion (its contact pressure, breathing and muscle envelope) whose
noise kinds are among :data:`BATCH_KINDS` (the default kinds ``white``, ``activity``,
``powerline``, ``contact``, ``drift``), any electrode type and SNR targets; :func:`batch_key`
says which, and the others run ``simulate_electrode_noise`` one by one.

API: ``batch_key(config, n_electrodes, n, fs, motion) -> tuple | None``,
``simulate_electrode_noise_batch(n_electrodes, n, fs, rngs, config, motions) -> list[ElectrodeNoise]``.
"""

from __future__ import annotations

import math
import statistics

import numpy as np

from .._pcg64_kernels import NORMAL, POISSON, RANDOM, RAW, draw_program
from ..errors import ConfigError, SignalError
from . import _kernels
from .config import NOISE_KINDS, NoiseConfig
from .electrode import (_F32, _IMPEDANCE_RANGES, _activity_noise, _check_motion, _constant, _contact_events,
                        _contact_rates, _decay_shape, _impedance_log_ranges, _mains_tables, _new_electrode_noise,
                        _on_textile, _per_electrode, _time_axis)

#: Noise kinds :func:`simulate_electrode_noise_batch` makes (the others: record by record).
BATCH_KINDS = frozenset({"white", "activity", "powerline", "contact", "drift"})


def _resolved(config: NoiseConfig) -> NoiseConfig:
    return config if config.electrode != "device" else _on_textile(config)


def _noise_activity(motion) -> str:
    """The fitted activity whose noise a record's motion calls for (as the per-record code)."""
    noise_activity = _activity_noise()[0]
    return noise_activity["rest" if motion is None else str(motion.params.get("activity", "rest"))]


def batch_key(config: NoiseConfig, n_electrodes: int, n: int, fs: float, motion):
    """The key under which records can share a :func:`simulate_electrode_noise_batch` call
    (equal keys: the same config object, shapes, rate and fitted activity, so the same
    program of draws), or None when this record's noise is made record by record."""
    if motion is None or not isinstance(config, NoiseConfig) or not set(config.kinds) <= BATCH_KINDS:
        return None
    if "activity" in config.kinds or "drift" in config.kinds:
        act = _noise_activity(motion)
    else:
        act = None
    return id(config), int(n_electrodes), int(n), float(fs), act


def _programs(cfg: NoiseConfig, n_e: int, n: int, fs: float, act) -> tuple:
    """``(before, after)``: the draws of one record up to and including the contact events'
    Poisson counts, and those of the kinds after ``contact`` (``after`` empty without it)."""
    from .textile import _FAST_RATE_HZ, _SLOW_RATE_HZ, _activity_constants, _fit_key, _ou_len
    from .drift import _plan

    before = []
    n_snr = sum(1 for kind in NOISE_KINDS if cfg.snr_db and kind in cfg.snr_db)
    before.append((RANDOM, n_snr))
    before.append((RANDOM, n_e * (2 if _IMPEDANCE_RANGES[cfg.electrode][1] else 1) + 1))
    prog = before
    after = []
    for kind in cfg.kinds:
        if kind == "white":
            prog += [(RANDOM, n_e), (RAW, 1)]
        elif kind == "activity":
            c = _activity_constants(cfg.electrode, act, _fit_key(cfg.textile_fit or None))
            m_f = _ou_len(n, fs, _FAST_RATE_HZ) if c.sd_fast > 0 else 0
            prog += [(NORMAL, 1 + _ou_len(n, fs, _SLOW_RATE_HZ) + m_f), (RAW, 1)]
        elif kind == "powerline":
            prog += [(RANDOM, 5 + 2 * (cfg.powerline_harmonics - 1))]
        elif kind == "contact":
            prog += [(POISSON, n_e), (POISSON, n_e)]
            prog = after
        elif kind == "drift":
            m, amp, _, _ = _plan(n, float(fs), float(cfg.drift_exponent))
            prog += [(NORMAL, 1), (NORMAL, n_e * 2 * amp.size)]
    return tuple(before), tuple(after)


def simulate_electrode_noise_batch(n_electrodes: int, n_samples: int, fs: float, rngs, config: NoiseConfig,
                                   motions) -> list:
    """``[simulate_electrode_noise(n_electrodes, n_samples, fs, rngs[b], config, motion=motions[b])
    for b]``, bit for bit, each generator left where that call leaves it.

    Parameters
    ----------
    n_electrodes, n_samples : int
    fs : float, Hz
    rngs : sequence of numpy.random.Generator
        One per record (distinct generators).
    config : NoiseConfig
        One config for all records, whose kinds are among :data:`BATCH_KINDS`.
    motions : sequence of cardiosim.motion.Motion
        One per record, at ``fs``, calling for the same fitted activity when the config has
        the ``activity`` or ``drift`` kind (:func:`batch_key`).

    Returns
    -------
    list of ElectrodeNoise
        Each record's own arrays (rows of the sub-block's arrays).
    """
    if not isinstance(config, NoiseConfig):
        raise ConfigError(f"simulate_electrode_noise_batch takes a NoiseConfig, got {type(config).__name__}")
    bsz = len(rngs)
    if len(motions) != bsz:
        raise ConfigError(f"one motion per generator: {bsz} generators, {len(motions)} motions")
    for rng in rngs:
        if not isinstance(rng, np.random.Generator):
            raise ConfigError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    if int(n_electrodes) != n_electrodes or n_electrodes < 1:
        raise ConfigError(f"n_electrodes must be a positive integer, got {n_electrodes!r}")
    if int(n_samples) != n_samples or n_samples < 2:
        raise ConfigError(f"n_samples must be an integer >= 2, got {n_samples!r}")
    if not (math.isfinite(fs) and fs > 0):
        raise ConfigError(f"fs must be a positive number of Hz, got {fs!r}")
    n_e, n, fs = int(n_electrodes), int(n_samples), float(fs)
    keys = {batch_key(config, n_e, n, fs, _check_motion(m, n_e, n, fs)) for m in motions}
    if None in keys or len(keys) > 1:
        raise ConfigError("simulate_electrode_noise_batch needs records with a motion, the kinds of BATCH_KINDS "
                          "and one fitted activity (batch_key)")
    cfg = _resolved(config)
    act = keys.pop()[4] if bsz else None
    t = _time_axis(n, fs)
    pressures, muscles = [], []
    for m in motions:
        pressure = np.asarray(m.contact_pressure, dtype=np.float64)
        if not _kernels.positive_finite_kernel(pressure):
            raise SignalError("motion.contact_pressure must be positive and finite")
        pressures.append(pressure)
        muscles.append(np.asarray(m.muscle, dtype=_F32))
    before, after = _programs(cfg, n_e, n, fs, act)

    lams = None
    if "contact" in cfg.kinds:
        lams = np.array([[r for r in _contact_rates(cfg, n, fs, mu)] for mu in muscles])
    d1 = draw_program(rngs, before, lams)
    params = [{"fs": fs, "n_electrodes": n_e, "_snr_definition": cfg.snr_definition} for _ in range(bsz)]
    targets = [{} for _ in range(bsz)]
    ju = 0
    # --- per-record SNR targets (Generator.uniform(lo, hi) = lo + (hi - lo) random()) --------
    for kind in (NOISE_KINDS if cfg.snr_db else ()):
        if kind in cfg.snr_db:
            lo, hi = cfg.snr_db[kind]
            v = (lo + (hi - lo) * d1.u[:, ju]).tolist()
            ju += 1
            if kind in cfg.kinds:
                for b in range(bsz):
                    targets[b][kind] = float(v[b])
                    params[b][f"snr_target_db.{kind}"] = float(v[b])
    # --- impedance (_draw_impedance with a float64 pressure of the noise's shape) ---------------
    hydrated = _IMPEDANCE_RANGES[cfg.electrode][1]
    n_z = n_e * (2 if hydrated else 1)
    u = d1.u[:, ju:ju + n_z + 1]
    ju += n_z + 1
    a, d = _impedance_log_ranges(cfg.electrode, n_e)
    zz = np.exp(a + d * u[:, :-1])
    z0 = zz[:, :n_e]
    zinf = zz[:, n_e:] if hydrated else z0.copy()
    lo, hi = cfg.wear_time_s
    wear = lo + (hi - lo) * u[:, -1]
    d0 = np.exp(-wear / cfg.hydration_tau_s).astype(_F32)
    shape = _decay_shape(n, fs, float(cfg.hydration_tau_s))
    # new arrays of a record's size, as the per-record code makes them (a sub-block's worth in one
    # allocation, freed at once, had glibc return the memory and fault it in again: measured
    # ~150 page faults a record in generate, 2026-12-07)
    imp = [np.empty((n_e, n), _F32) for _ in range(bsz)]
    z0c, zinfc = np.ascontiguousarray(z0), np.ascontiguousarray(zinf)
    for b in range(bsz):
        _kernels.impedance_pressure_kernel(z0c[b], zinfc[b], d0[b], shape, pressures[b], imp[b])
    wear_l = wear.tolist()
    for b in range(bsz):
        params[b]["wear_time_s"] = float(wear_l[b])
        _per_electrode(params[b], "impedance0_ohm", z0[b])
        _per_electrode(params[b], "impedance_inf_ohm", zinf[b])
    by_kind = [{} for _ in range(bsz)]
    contact = [None] * bsz
    d, jz, jr = d1, 0, 0          # the draws being read, and the next position of each kind
    for kind in cfg.kinds:
        if kind == "white":
            lo, hi = cfg.white_uv
            amp = (lo + (hi - lo) * d.u[:, ju:ju + n_e]) * 1e-3
            ju += n_e
            seeds = d.raw[:, jr]
            jr += 1
            ones = _kernels.ones(n)
            for b in range(bsz):
                x = np.empty((n_e, n), _F32)
                _kernels.seeded_normal_kernel(np.uint64(seeds[b]), amp[b], ones, x, _kernels.ZIG256_KI,
                                              _kernels.ZIG256_WI, _kernels.ZIG256_FI)
                by_kind[b][kind] = x
                _per_electrode(params[b], "white_rms_mv", amp[b])
        elif kind == "activity":
            jz, jr = _activity(cfg, act, n_e, n, fs, d, jz, jr, params, by_kind)
        elif kind == "powerline":
            ju = _powerline(cfg, n_e, n, fs, t, d, ju, imp, params, by_kind)
        elif kind == "contact":
            k = d.k
            for b in range(bsz):
                # each record's event draws (none without events) from its own generator, here
                off, contact[b] = _contact_events(rngs[b], cfg, n_e, n, fs, k[b, :n_e], k[b, n_e:], params[b])
                by_kind[b][kind] = off
            d = draw_program(rngs, after)
            ju, jz, jr = 0, 0, 0
        elif kind == "drift":
            jz = _drift(cfg, act, n_e, n, fs, d, jz, params, by_kind)
    out = []
    for b in range(bsz):
        c = contact[b] if contact[b] is not None else _constant(1.0, n_e, n)
        out.append(_new_electrode_noise(by_kind[b], c, imp[b], fs, params[b], targets[b]))
    return out


def _activity(cfg, act, n_e, n, fs, d, jz, jr, params, by_kind) -> tuple:
    """The ``activity`` kind (:func:`cardiosim.noise.textile.simulate_activity_noise`) of the
    sub-block from its drawn numbers; returns the next positions in ``d.z`` and ``d.raw``."""
    from . import textile as _t

    bsz = d.z.shape[0]
    if cfg.electrode not in _t.ELECTRODES:     # simulate_activity_noise's checks
        raise ConfigError(f"electrode must be one of {', '.join(_t.ELECTRODES)}, got {cfg.electrode!r}")
    if act not in _t.ACTIVITIES:
        raise ConfigError(f"activity must be one of {', '.join(_t.ACTIVITIES)} for the fitted noise, got {act!r}")
    fit = cfg.textile_fit or None
    key = _t._fit_key(fit)
    c = _t._activity_constants(cfg.electrode, act, key)
    sd_f = c.sd_fast
    scale = cfg.activity_level_scale
    m_s = _t._ou_len(n, fs, _t._SLOW_RATE_HZ)
    m_f = _t._ou_len(n, fs, _t._FAST_RATE_HZ) if sd_f > 0 else 0
    w = d.z[:, jz:jz + 1 + m_s + m_f]
    level = np.exp(c.log_level + c.sd_between * w[:, 0])
    rms = level * c.qrs_pp_mv * scale / np.sqrt(2.0)
    starts = _kernels.activity_envelope_starts(n, float(fs), _t._SLOW_RATE_HZ, _t._FAST_RATE_HZ, m_s, m_f)
    env = np.empty((bsz, n), np.float32)
    no_fast = np.zeros(0)
    cols = _t._spectrum_cols(cfg.electrode, act, n, float(fs), key)
    ones = _kernels.ones(n_e)
    c2r = _t._pocketfft_c2r()
    rms_l, level_l = rms.tolist(), level.tolist()
    for b in range(bsz):
        wb = w[b]
        _kernels.activity_envelope_runs_kernel(wb[1:1 + m_s], c.a_slow, _t._SLOW_RATE_HZ, c.sd_within,
                                               wb[1 + m_s:] if sd_f > 0 else no_fast, c.a_fast, _t._FAST_RATE_HZ,
                                               sd_f, float(fs), rms[b], c.z_knots, c.q_knots, starts, env[b])
        spec = np.empty((n_e, n // 2 + 1), dtype=np.complex64)
        specf = spec.view(np.float32)
        specf[:, cols.size:] = 0.0
        _kernels.seeded_normal_kernel(np.uint64(d.raw[b, jr]), ones, cols, specf, _kernels.ZIG256_KI,
                                      _kernels.ZIG256_WI, _kernels.ZIG256_FI)
        # record by record, as the per-record code: pocketfft transforms several rows at once in
        # SIMD lanes, so another row count could group a row differently
        if c2r is not None:
            x = c2r(spec, (1,), n, False, 2, None, 1)
        else:
            from scipy import fft as _fft
            x = _fft.irfft(spec, n=n, axis=1, overwrite_x=True, workers=1)
        x *= env[b]
        by_kind[b]["activity"] = x
        params[b].update({"activity_noise_electrode": cfg.electrode, "activity_noise_activity": act,
                          "activity_noise_to_qrs": float(level_l[b] * scale), "activity_noise_rms_mv": float(rms_l[b]),
                          "activity_noise_burst_sd": sd_f})
    return jz + 1 + m_s + m_f, jr + 1


def _powerline(cfg, n_e, n, fs, t, d, ju, imp, params, by_kind) -> int:
    """The ``powerline`` kind (:func:`cardiosim.noise.electrode.common_mode_voltage`, then
    :func:`~cardiosim.noise.electrode.powerline_from_impedance`) of the sub-block; returns the
    next position in ``d.u``."""
    bsz = d.u.shape[0]
    ground = cfg.powerline_coupling == "ground_electrode"
    h_n = cfg.powerline_harmonics
    u = d.u[:, ju:ju + 5 + 2 * (h_n - 1)]
    lo, hi = cfg.displacement_current_ua if ground else cfg.cm_voltage_mv
    a = (lo + (hi - lo) * u[:, 0]).tolist()
    two_pi = 2 * np.pi
    coefs = np.empty((bsz, 2 * h_n), dtype=_F32)
    freqs = []
    depths, amps = [], []
    mod_phase = np.empty(bsz)
    fms = np.empty(bsz)
    for b in range(bsz):
        p = params[b]
        ub = u[b].tolist()
        ab = a[b]
        if ground:
            # the reference electrode's impedance at the record's start, as statistics.median
            p["displacement_current_ua"] = float(ab)
            ab = ab * 1e-6 * float(statistics.median(imp[b][:, 0].tolist())) * 1e3
        p["cm_voltage_mv"] = float(ab)
        ph0 = two_pi * ub[1]
        coef = []
        fb = []
        j = 2
        for h in range(h_n):
            k = 2 * h + 1
            if k == 1:
                rel, ph = 1.0, k * ph0
            else:
                rel = (0.02 + (0.3 - 0.02) * ub[j]) / h
                ph = two_pi * ub[j + 1]
                j += 2
            p[f"powerline_harmonic_rel.{k}"] = float(rel)
            if k * cfg.powerline_hz >= fs / 2:
                p[f"powerline_harmonic_above_nyquist.{k}"] = 1.0
                continue
            coef += [rel * np.cos(ph), rel * np.sin(ph)]
            fb.append(k * cfg.powerline_hz)
        fm = 0.05 + (0.3 - 0.05) * ub[j]
        depth = 0.0 + (0.3 - 0.0) * ub[j + 1]
        p["cm_modulation_hz"], p["cm_modulation_depth"] = float(fm), float(depth)
        coefs[b, :len(coef)] = coef
        freqs = fb
        fms[b] = 2 * np.pi * fm
        mod_phase[b] = two_pi * ub[j + 2]
        depths.append(depth)
        amps.append(ab)
    # the modulation sin(2 pi fm t + phase) of every record in one float32 pass each
    mod_sin = np.multiply(t[None, :], fms.astype(_F32)[:, None], out=np.empty((bsz, t.size), _F32))
    mod_sin += mod_phase.astype(_F32)[:, None]
    np.sin(mod_sin, out=mod_sin)
    tab = _mains_tables(t.size, float(fs), tuple(freqs))
    nc = 2 * len(freqs)
    v = np.empty((t.size,), _F32)
    for b in range(bsz):
        _kernels.mains_sum_kernel(coefs[b, :nc].copy(), tab, mod_sin[b], _F32(depths[b]), _F32(amps[b]), v)
        # powerline_from_impedance's kernel on its common case (float32, C-contiguous), into the rows
        out = np.empty((n_e, t.size), _F32)
        _kernels.powerline_kernel(v, imp[b], _F32(cfg.input_impedance_ohm), out)
        by_kind[b]["powerline"] = out
    return ju + 5 + 2 * (h_n - 1)


def _drift(cfg, act, n_e, n, fs, d, jz, params, by_kind) -> int:
    """The ``drift`` kind (:func:`cardiosim.noise.drift.simulate_drift` at the level the
    per-record code gives it) of the sub-block; returns the next position in ``d.z``."""
    from .drift import _c2r_matching_irfft, _plan

    bsz = d.z.shape[0]
    median, log_sd, exponent = [], float(cfg.drift_log_sd), float(cfg.drift_exponent)
    for b in range(bsz):
        ref = params[b].get("activity_noise_rms_mv")
        if ref is None:
            from .textile import typical_activity_rms_mv
            ref = cfg.activity_level_scale * typical_activity_rms_mv(cfg.electrode, act, fit=cfg.textile_fit or None)
        median.append(cfg.drift_ratio * float(ref))
    for med in median:   # simulate_drift's checks
        if not (med >= 0 and math.isfinite(med)):
            raise ConfigError(f"drift median must be a finite level >= 0 mV, got {med!r}")
    if not (log_sd >= 0 and math.isfinite(log_sd)):
        raise ConfigError(f"drift log_sd must be finite and >= 0, got {log_sd!r}")
    if not (0 <= exponent <= 4):
        raise ConfigError(f"drift exponent must be in [0, 4], got {exponent!r}")
    m, amp, step, (starts, w1) = _plan(n, float(fs), exponent)
    k = amp.size
    zs = d.z[:, jz].tolist()
    spec = np.empty((bsz, n_e, m // 2 + 1), np.complex128)
    spec[:, :, 0] = 0.0
    spec[:, :, k + 1:] = 0.0
    spec.view(np.float64)[:, :, 2:2 * k + 2] = d.z[:, jz + 1:jz + 1 + n_e * 2 * k].reshape(bsz, n_e, 2 * k)
    _kernels.scale_bins_kernel(spec.reshape(bsz * n_e, m // 2 + 1), amp, 1)
    c2r = _c2r_matching_irfft(m, n_e)
    y = np.empty((n_e, m))
    scale = np.empty(n_e)
    for b in range(bsz):
        level = float(median[b] * math.exp(log_sd * float(zs[b])))
        # record by record, as simulate_drift (the c2r checked for its row count)
        if c2r is not None:
            c2r(spec[b], (1,), m, False, 2, y, 1)
        else:
            y = np.fft.irfft(spec[b], m, axis=1)
        scale.fill(level)
        out = np.empty((n_e, n), dtype=np.float32)
        _kernels.drift_kernel(y, starts, w1, scale, out)
        by_kind[b]["drift"] = out
        params[b]["drift_rms_mv"] = level
    return jz + 1 + n_e * 2 * k
