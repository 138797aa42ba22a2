"""Electrode-level noise of dry textile (or gel) electrodes.

Noise is born at each electrode, so after the device montage every lead that uses an
electrode carries its noise (lead I noise = LA noise - RA noise). The model, per
electrode ``e`` (PHYSICS.md section 6):

* impedance ``Z_e(t)``: drawn from the textile (93-350 kOhm donned, 20-56 kOhm hydrated)
  or gel (0.3-1 kOhm) distribution, falling exponentially as the skin hydrates, and
  modulated by contact pressure (``Z ~ pressure^-1/2``: more pressure, more contact area);
* ``white``: amplifier input voltage noise (flat);
* ``bw``: baseline wander, a drift of the half-cell potential with the NSTDB ``bw``
  spectrum plus a component locked to breathing (chest expansion stretches the skin);
* ``em``: electrode motion: skin-stretch and half-cell potential changes driven by
  contact-pressure changes (from :mod:`cardiosim.motion` when given) with the spectral
  shape of NSTDB ``em``, amplitude proportional to the electrode impedance;
* ``emg``: muscle noise with the NSTDB ``ma`` spectrum, amplitude-modulated by the
  activity's muscle envelope (bursts at each step or arm movement);
* ``powerline``: the body's mains common-mode voltage ``V_cm(t)`` (50/60 Hz and odd
  harmonics) divided between electrode impedance and amplifier input impedance,
  ``v_e = V_cm Z_e / (Z_e + Z_in)``; the differential part is proportional to the
  impedance mismatch, and zero for equal impedances (Huhta & Webster, IEEE TBME 1973);
* ``contact``: contact loss (lead-off: flat, or saturated at the rail, then an RC
  recovery) and short pops; the electrode's cardiac potential is gated by ``contact``;
* ``recorded`` (optional): independent draws per electrode from a model fitted to a real
  noise recording (NSTDB ``bw``/``em``/``ma`` or the user's own WFDB record);
* ``activity`` (default): the noise of a worn device fitted per electrode type x activity
  to real single-lead chest recordings (:mod:`cardiosim.noise.textile`): level, 2-s level
  changes, bursts and spectrum as measured, shared envelope across electrodes.

All per-kind arrays are float32 (signals); Gaussian numbers come from a numba ziggurat on
an in-kernel xoshiro256++ stream seeded from the caller's Generator, one seed per draw
(:func:`cardiosim.noise._kernels.seeded_normal_kernel`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import statistics
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
from scipy import signal as _signal

from .._pcg64_kernels import _pcg64_address_last, draw_program_matches, pcg64_draws_match
from .._scratch import scratch as _scratch
from ..errors import ConfigError, SignalError, SamplingRateError
from . import _kernels
from .config import NOISE_KINDS, NoiseConfig
from .spectra import shaped_noise_multi

_Z_REF_OHM = 1.0e5  # impedance at which the em amplitude of NoiseConfig.em_mv applies


@dataclass(frozen=True, eq=False)
class ElectrodeNoise:
    """Noise of ``n_electrodes`` electrodes over ``T`` samples.

    Attributes
    ----------
    noise : ndarray, shape (n_electrodes, T), float64, mV
        Sum of all kinds (additive part); computed on first access.
    by_kind : dict str -> ndarray (n_electrodes, T), float64, mV
        Each enabled kind separately (``contact`` holds the lead-off / pop offsets).
    contact : ndarray, shape (n_electrodes, T), float64 in [0, 1]
        Contact quality; the cardiac potential reaching the amplifier is ``contact * phi``.
    impedance : ndarray, shape (n_electrodes, T), float64, Ohm
    fs : float, Hz
    params : dict
        Flat ``name -> number`` of everything drawn (``impedance0_ohm.e3``, ``snr_target_db.em``...).
    snr_targets : dict kind -> dB
        The per-record SNR targets (also in ``params`` as ``snr_target_db.<kind>``).
    """

    by_kind: dict
    contact: np.ndarray
    impedance: np.ndarray
    fs: float
    params: dict = field(default_factory=dict)
    snr_targets: dict = field(default_factory=dict)

    @functools.cached_property
    def noise(self) -> np.ndarray:
        total32 = None
        for v in self.by_kind.values():
            total32 = v.astype(np.float32, copy=True) if total32 is None else total32 + v
        if total32 is None:
            return np.zeros(self.contact.shape)
        return total32.astype(np.float64)

    @property
    def n_electrodes(self) -> int:
        return self.contact.shape[0]

    def apply(self, potentials: np.ndarray) -> np.ndarray:
        """Noisy electrode potentials ``contact * potentials + noise`` ([..., n_e, T] mV).

        float32 potentials give a float32 result (summed in float32), others float64.
        """
        p = np.asarray(potentials)
        if p.shape[-2:] != self.contact.shape:
            raise SignalError(f"potentials shape {p.shape} does not end with the noise shape {self.contact.shape}")
        if p.dtype == np.float32:
            c = self.contact
            trivial = c.strides == (0, 0) and c.size and c.flat[0] == 1
            # an event-free contact kind (a broadcast zero) adds nothing
            add = [v for v in self.by_kind.values() if not (v.strides == (0, 0) and v.size and v.flat[0] == 0)]
            if p.ndim == 2 and len(add) >= 4 and all(v.dtype == np.float32 and v.flags.c_contiguous for v in add[:4]):
                # the first four kinds in one numba pass (the same float32 sums in the same order)
                out = np.empty(p.shape, dtype=np.float32)
                _kernels.add4_kernel(np.ascontiguousarray(p if trivial else p * c), add[0], add[1], add[2], add[3],
                                     out)
                add = add[4:]
            elif p.ndim == 2 and len(add) >= 3 and all(v.dtype == np.float32 and v.flags.c_contiguous for v in add[:3]):
                # the first three kinds in one numba pass (the same float32 sums in the same order)
                out = np.empty(p.shape, dtype=np.float32)
                _kernels.add3_kernel(np.ascontiguousarray(p if trivial else p * c), add[0], add[1], add[2], out)
                add = add[3:]
            else:
                out = p.copy() if trivial else p * c
            for v in add:
                out += v
            return out
        return p.astype(np.float64) * self.contact + self.noise

    def scale_to_snr(self, montage, clean_leads, *, r_peaks=None, definition: str | None = None,
                     snr_db: Mapping[str, float] | None = None, targeting: str = "pooled") -> "ElectrodeNoise":
        """Scale each kind to its target SNR against ``clean_leads`` [n_leads, T] mV, gains
        applied at the electrodes so the montage stays consistent: one gain per kind
        (``targeting='pooled'``) or per kind and electrode (``'per_lead'``, what
        :func:`cardiosim.simulate.simulate_record` uses). Targets are ``snr_db`` when given,
        else the per-record draws ``params['snr_target_db.<kind>']``. See
        :func:`cardiosim.noise.snr.scale_electrode_noise` (the one SNR implementation).
        """
        from .snr import scale_electrode_noise
        return scale_electrode_noise(self, montage, clean_leads, r_peaks=r_peaks, snr_db=snr_db,
                                     definition=definition, targeting=targeting)


def _new_electrode_noise(by_kind, contact, impedance, fs, params, snr_targets) -> ElectrodeNoise:
    """``ElectrodeNoise(by_kind=..., ...)`` without the frozen dataclass's per-field
    ``object.__setattr__`` calls (the same instance state: the six fields in ``__dict__``)."""
    obj = object.__new__(ElectrodeNoise)
    obj.__dict__.update(by_kind=by_kind, contact=contact, impedance=impedance, fs=fs, params=params,
                        snr_targets=snr_targets)
    return obj


def _check_motion(motion, n_electrodes, n_samples, fs):
    if motion is None:
        return None
    mfs = float(getattr(motion, "fs"))
    if abs(mfs - fs) > 1e-9 * fs:
        raise SamplingRateError(f"motion.fs = {mfs} Hz differs from the noise rate fs = {fs} Hz")
    for name, shape in (("breathing", (n_samples,)), ("contact_pressure", (n_electrodes, n_samples)),
                        ("muscle", (n_samples,))):
        a = np.asarray(getattr(motion, name))
        if a.shape != shape:
            raise SignalError(f"motion.{name} has shape {a.shape}, expected {shape}")
    return motion


def _loguniform(rng, lo, hi, size=None):
    return np.exp(rng.uniform(np.log(lo), np.log(hi), size))


@functools.lru_cache(maxsize=64)
def _log_range(lo, hi) -> tuple:
    """``(log(lo), log(hi) - log(lo))`` as NumPy computes them (cached per range)."""
    a, b = np.log(lo), np.log(hi)
    return a, b - a


def _loguniform_from(u, lo, hi):
    """:func:`_loguniform`'s values from the uniform ``random()`` numbers ``u`` it would have drawn."""
    a, d = _log_range(lo, hi)
    return np.exp(a + d * u)


#: Skin-electrode impedance ranges (Ohm, log-uniform; PHYSICS.md section 6) per electrode
#: type: (freshly donned, hydrated after about an hour of wear; ``None``: no drift).
_IMPEDANCE_RANGES = {
    "textile": ((93e3, 350e3), (20e3, 56e3)),     # dry textile; sweat-hydrated textile
    "dry": ((200e3, 1000e3), (50e3, 150e3)),      # dry metal on dry skin; sweat under the metal
    "gel": ((300.0, 1000.0), None),               # wet gel: about 1 kOhm or less, no drift
}


_F32 = np.float32


@functools.lru_cache(maxsize=16)
def _impedance_log_ranges(electrode: str, n_e: int) -> tuple:
    """:func:`_log_range` of the donned (then hydrated) impedance range, repeated per
    electrode: ``(log lo, log hi - log lo)`` [n_e or 2 n_e] (read-only, cached)."""
    ranges = [r for r in _IMPEDANCE_RANGES[electrode] if r is not None]
    a = np.array([_log_range(*r)[0] for r in ranges for _ in range(n_e)])
    d = np.array([_log_range(*r)[1] for r in ranges for _ in range(n_e)])
    a.setflags(write=False)
    d.setflags(write=False)
    return a, d


def _draw_impedance(rng, cfg: NoiseConfig, n_e, n, fs, pressure):
    """Impedance [n_e, T] Ohm (float32), and the drawn parameters (PHYSICS.md section 6)."""
    # the draws of z0, zinf and the wear time from one call (Generator.uniform(lo, hi, size)
    # is lo + (hi - lo) * random(size): the values of one call per draw, in order)
    hydrated = _IMPEDANCE_RANGES[cfg.electrode][1]
    u = rng.random(n_e * (2 if hydrated else 1) + 1)
    # z0 (and zinf) by _loguniform_from in one pass: log(lo) + (log(hi) - log(lo)) * u per value
    a, d = _impedance_log_ranges(cfg.electrode, n_e)
    zz = np.exp(a + d * u[:-1])
    z0 = zz[:n_e]
    zinf = zz[n_e:] if hydrated else z0.copy()
    lo, hi = cfg.wear_time_s
    wear = lo + (hi - lo) * float(u[-1])
    # z_inf + (z0 - z_inf) * (decay at the start * decay over the record), float32, one pass
    z = np.empty((n_e, n), dtype=_F32)
    d0, shape = _F32(np.exp(-wear / cfg.hydration_tau_s)), _decay_shape(n, float(fs), float(cfg.hydration_tau_s))
    if pressure is None:
        _kernels.impedance_decay_kernel(z0, zinf, d0, shape, z)
    elif pressure.dtype == np.float64 and pressure.shape == z.shape:
        # Z ~ pressure^-1/2 in the same pass (z /= np.sqrt(pressure, dtype=float32), bit for bit),
        # which also checks the pressure
        if not _kernels.impedance_pressure_checked_kernel(z0, zinf, d0, shape, pressure, z):
            raise SignalError("motion.contact_pressure must be positive and finite")
    else:
        if not _kernels.positive_finite_kernel(np.asarray(pressure, dtype=np.float64)):
            raise SignalError("motion.contact_pressure must be positive and finite")
        _kernels.impedance_decay_kernel(z0, zinf, d0, shape, z)
        z /= np.sqrt(pressure, dtype=_F32)                                   # Z ~ pressure^-1/2
    return z, z0, zinf, wear


@functools.lru_cache(maxsize=16)
def _time_axis(n: int, fs: float) -> np.ndarray:
    """``arange(n) / fs`` in float32 (read-only, cached)."""
    t = np.arange(n, dtype=_F32) / _F32(fs)
    t.setflags(write=False)
    return t


@functools.lru_cache(maxsize=16)
def _decay_shape(n: int, fs: float, tau_s: float) -> np.ndarray:
    """``exp(-t / tau_s)`` on :func:`_time_axis` in float32 (read-only, cached: the values
    ``np.exp(t * float32(-1 / tau_s))`` gives)."""
    d = np.exp(_time_axis(n, fs) * _F32(-1.0 / tau_s))
    d.setflags(write=False)
    return d


@functools.lru_cache(maxsize=16)
def _constant(value: float, n_e: int, n: int) -> np.ndarray:
    """A read-only float32 ``[n_e, n]`` view of one value (no memory, cached)."""
    return np.broadcast_to(_F32(value), (n_e, n))


@functools.lru_cache(maxsize=16)
def _rest_tone(n: int) -> np.ndarray:
    """``np.full(n, 0.1, dtype=float32)`` (read-only, cached: copied per record)."""
    a = np.full(n, 0.1, dtype=_F32)
    a.setflags(write=False)
    return a


def _envelope_without_motion(rng, n, fs):
    """Muscle envelope at rest without a motion model: a low tone plus a few random bursts."""
    env = _rest_tone(n).copy()
    n_burst = rng.poisson(n / fs / 10.0)
    # each burst's centre, width and height (uniform draws, all from one call: the values
    # Generator.uniform(lo, hi) = lo + (hi - lo) * random() gives one call per draw)
    u = rng.random(3 * n_burst).tolist() if n_burst else ()
    for b in range(n_burst):
        c = 0.0 + (n - 0.0) * u[3 * b]
        w = (0.2 + (1.0 - 0.2) * u[3 * b + 1]) * fs
        lo, hi = max(0, int(c - 3 * w)), min(n, int(c + 3 * w) + 1)
        if hi <= lo:
            continue
        # env[lo:hi] += h * exp(-0.5 * ((arange(lo, hi) - c) / (w / 2)) ** 2) in float32 (the
        # Python scalars cast to float32, as NumPy does): the exponent's four passes in one
        # kernel, NumPy's own exp, the scaled add in another (_envelope_without_motion_ref)
        arg = np.empty(hi - lo, dtype=_F32)
        _kernels.burst_arg_kernel(lo, _F32(c), _F32(w / 2), arg)
        np.exp(arg, out=arg)
        _kernels.add_scaled_kernel(env, lo, _F32(0.3 + (1.0 - 0.3) * u[3 * b + 2]), arg)
    return env


def _envelope_without_motion_ref(rng, n, fs):
    """The NumPy twin of :func:`_envelope_without_motion` (each burst as NumPy passes)."""
    env = _rest_tone(n).copy()
    n_burst = rng.poisson(n / fs / 10.0)
    u = rng.random(3 * n_burst).tolist() if n_burst else ()
    for b in range(n_burst):
        c = 0.0 + (n - 0.0) * u[3 * b]
        w = (0.2 + (1.0 - 0.2) * u[3 * b + 1]) * fs
        lo, hi = max(0, int(c - 3 * w)), min(n, int(c + 3 * w) + 1)
        idx = np.arange(lo, hi, dtype=_F32)
        env[lo:hi] += (0.3 + (1.0 - 0.3) * u[3 * b + 2]) * np.exp(-0.5 * ((idx - c) / (w / 2)) ** 2)
    return env


def _breathing_without_motion(rng, n, fs):
    """A breathing-like signal (rate 12-20 /min, slow rate variability), unit amplitude."""
    t = np.arange(n, dtype=_F32) / _F32(fs)
    rate = rng.uniform(0.2, 0.33)
    fm, ph_m, ph = rng.uniform(0.01, 0.05), rng.uniform(0, 2 * np.pi), rng.uniform(0, 2 * np.pi)
    phase = _F32(2 * np.pi * rate) * t + _F32(0.3) * np.sin(_F32(2 * np.pi * fm) * t + _F32(ph_m))
    return np.sin(phase + _F32(ph))


@functools.lru_cache(maxsize=256)
def _keys(name: str, n_e: int) -> tuple:
    return tuple(f"{name}.e{e}" for e in range(n_e))


def _per_electrode(params, name, values):
    if isinstance(values, np.ndarray):
        values = values.tolist()
    params.update(zip(_keys(name, len(values)), values))


@functools.lru_cache(maxsize=16)
def _em_band(fs: float) -> np.ndarray:
    """Second-order 0.3-20 Hz Butterworth band-pass (sos) of the em drive (designed once
    per rate: the design costs more than the filtering)."""
    return _signal.butter(2, [0.3, min(20.0, 0.45 * fs)], "bandpass", fs=fs, output="sos")


def simulate_electrode_noise(n_electrodes: int, n_samples: int, fs: float, rng: np.random.Generator,
                             config: NoiseConfig | Mapping[str, Any] | None = None, *,
                             motion=None) -> ElectrodeNoise:
    """Simulate the noise at each electrode (see the module docstring for the physics).

    Parameters
    ----------
    n_electrodes, n_samples : int
    fs : float, Hz
    rng : numpy.random.Generator
    config : NoiseConfig or mapping (``NoiseConfig.from_dict``), default ``NoiseConfig()``
    motion : cardiosim.motion.Motion, optional
        Supplies ``breathing [T]``, ``contact_pressure [n_electrodes, T]`` and the muscle
        envelope ``muscle [T]`` at the same ``fs``. Without it, the subject is at rest.

    Returns
    -------
    ElectrodeNoise
        Physical amplitudes (``by_kind`` float32, ``noise`` float64); per-record SNR
        targets are drawn into ``params`` and applied by :meth:`ElectrodeNoise.scale_to_snr`
        once the clean leads are known.
    """
    if config is None:
        config = _DEFAULT_CONFIG
    elif not isinstance(config, NoiseConfig):
        config = NoiseConfig.from_dict(config)
    if not isinstance(rng, np.random.Generator):
        raise ConfigError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    if int(n_electrodes) != n_electrodes or n_electrodes < 1:
        raise ConfigError(f"n_electrodes must be a positive integer, got {n_electrodes!r}")
    if int(n_samples) != n_samples or n_samples < 2:
        raise ConfigError(f"n_samples must be an integer >= 2, got {n_samples!r}")
    if not (math.isfinite(fs) and fs > 0):
        raise ConfigError(f"fs must be a positive number of Hz, got {fs!r}")
    n_e, n, fs = int(n_electrodes), int(n_samples), float(fs)
    motion = _check_motion(motion, n_e, n, fs)
    cfg = config if config.electrode != "device" else _on_textile(config)
    t = _time_axis(n, fs)
    params: dict[str, Any] = {"fs": fs, "n_electrodes": n_e, "_snr_definition": cfg.snr_definition}

    # Per-record SNR targets first, so they do not depend on which kinds are enabled later.
    targets = {}
    for kind in (NOISE_KINDS if cfg.snr_db else ()):
        if kind in cfg.snr_db:
            v = rng.uniform(*cfg.snr_db[kind])
            if kind in cfg.kinds:
                targets[kind] = float(v)
                params[f"snr_target_db.{kind}"] = float(v)

    if motion is not None:
        # [n_e, T] (_check_motion); positive and finite: checked by _draw_impedance in its pass
        # over it (after the impedance's uniform draws, before any other)
        pressure = np.asarray(motion.contact_pressure, dtype=np.float64)
        # only the bw kind reads the breathing signal: the others skip its float32 copy
        breathing = np.asarray(motion.breathing, dtype=_F32) if "bw" in cfg.kinds else None
        # float32 for the emg kind; the contact rates read the float64 envelope as float32
        # values in their one pass over it (_contact_rates), without this copy
        muscle = np.asarray(motion.muscle, dtype=_F32) if "emg" in cfg.kinds else np.asarray(motion.muscle)
    else:
        pressure = None
        # only the kinds that use them pay for the at-rest breathing and muscle signals
        breathing = _breathing_without_motion(rng, n, fs) if "bw" in cfg.kinds else None
        muscle = _envelope_without_motion(rng, n, fs) if ("emg" in cfg.kinds or "contact" in cfg.kinds) else None
    z, z0, zinf, wear = _draw_impedance(rng, cfg, n_e, n, fs, pressure)
    params["wear_time_s"] = float(wear)
    _per_electrode(params, "impedance0_ohm", z0)
    _per_electrode(params, "impedance_inf_ohm", zinf)

    by_kind: dict[str, np.ndarray] = {}
    contact = None
    # the three spectrally shaped kinds share one inverse FFT
    shaped_kinds = [k for k in ("bw", "em", "emg") if k in cfg.kinds]
    shaped = dict(zip(shaped_kinds, shaped_noise_multi(shaped_kinds, n_e, n, fs, rng))) if shaped_kinds else {}
    for kind in cfg.kinds:
        if kind == "white":
            x = np.empty((n_e, n), dtype=_F32)
            addr = _pcg64_address_last(rng)
            if addr is not None and pcg64_draws_match():
                # the amplitudes and the normals' seed in one kernel call (the two calls below)
                amp = np.empty(n_e)
                lo, hi = cfg.white_uv
                with rng.bit_generator.lock:
                    seed = np.uint64(_kernels.uniform_then_raw_pcg64_kernel(addr, float(lo), float(hi), 1e-3, amp))
                _kernels.seeded_normal_split_kernel(seed, amp, _kernels.ones(n), x, _kernels.ZIG256_KI,
                                                    _kernels.ZIG256_WI, _kernels.ZIG256_FI)
            else:
                amp = rng.uniform(*cfg.white_uv, n_e) * 1e-3
                # Gaussian numbers drawn already scaled (one numba pass, seeded from rng)
                _kernels.normals_scaled(rng, amp, _kernels.ones(n), x)
            by_kind[kind] = x
            _per_electrode(params, "white_rms_mv", amp)
        elif kind == "bw":
            amp = rng.uniform(*cfg.bw_mv, n_e)
            frac = rng.uniform(*cfg.breathing_coupling, n_e)
            x = shaped["bw"]
            mu = float(breathing.sum(dtype=np.float64)) / n
            sd = float(np.sqrt(max(float(np.dot(breathing, breathing)) / n - mu * mu, 0.0)))
            b = (breathing - _F32(mu)) * _F32(1.0 / sd if sd > 0 else 1.0)
            sign = np.where(rng.random(n_e) < 0.5, -1.0, 1.0)
            x *= (amp * np.sqrt(1 - frac)).astype(_F32)[:, None]
            x += (amp * sign * np.sqrt(frac)).astype(_F32)[:, None] * b[None, :]
            by_kind[kind] = x
            _per_electrode(params, "bw_rms_mv", amp)
            _per_electrode(params, "bw_breathing_fraction", frac)
        elif kind == "em":
            amp = rng.uniform(*cfg.em_mv, n_e)
            x = shaped["em"]
            if motion is not None:
                # Skin stretch / half-cell change follows pressure changes (Tam & Webster
                # 1977); band-limit the drive to the em band so it carries the em shape.
                dp = np.log(pressure)
                dp = dp - dp.mean(axis=1, keepdims=True)
                drive = _signal.sosfiltfilt(_em_band(float(fs)), dp, axis=1)
                sd = drive.std(axis=1, keepdims=True)
                moving = sd[:, 0] > 1e-12
                drive = np.where(moving[:, None], drive / np.where(moving[:, None], sd, 1.0), 0.0)
                w_m = np.where(moving, 0.8, 0.0)[:, None]     # 64 % of em power from the motion
                x = (np.sqrt(1 - w_m ** 2) * x + w_m * drive).astype(_F32)
            x *= amp.astype(_F32)[:, None] / _F32(_Z_REF_OHM)
            x *= z
            by_kind[kind] = x
            _per_electrode(params, "em_rms_mv", amp)
        elif kind == "emg":
            amp = rng.uniform(*cfg.emg_mv, n_e)
            x = shaped["emg"]
            x *= amp.astype(_F32)[:, None]
            x *= muscle[None, :]
            by_kind[kind] = x
            _per_electrode(params, "emg_rms_mv", amp)
        elif kind == "powerline":
            # median of a few values: statistics.median costs ~1/50 of numpy's per call
            v = common_mode_voltage(rng, cfg, t, fs, params, ground_impedance_ohm=statistics.median(z[:, 0].tolist()))
            by_kind[kind] = powerline_from_impedance(v, z, cfg.input_impedance_ohm)
        elif kind == "contact":
            off, contact = _contact(rng, cfg, n_e, n, fs, muscle, params)
            by_kind[kind] = off
        elif kind == "activity":
            noise_activity, simulate_activity_noise = _activity_noise()
            act = "rest" if motion is None else str(motion.params.get("activity", "rest"))
            by_kind[kind] = simulate_activity_noise(rng, n_e, n, fs, electrode=cfg.electrode,
                                                    activity=noise_activity[act], scale=cfg.activity_level_scale,
                                                    params=params, fit=cfg.textile_fit or None)
        elif kind == "recorded":
            from .fit import recorded_noise_model, select_channels, synthesize_noise
            model = recorded_noise_model(cfg.recorded_source, cfg.recorded_method)
            chans = rng.integers(0, model.n_channels, n_e)
            x = synthesize_noise(select_channels(model, chans), n, rng, fs=fs)
            x = x - x.mean(axis=1, keepdims=True)
            sd = x.std(axis=1, keepdims=True)
            amp = rng.uniform(*cfg.recorded_rms_mv, n_e)
            by_kind[kind] = (x * (amp[:, None] / np.where(sd > 0, sd, 1.0))).astype(_F32)
            _per_electrode(params, "recorded_rms_mv", amp)
            _per_electrode(params, "recorded_channel", chans.astype(float))
        elif kind == "drift":
            simulate_drift = _simulate_drift()
            # the drift follows this record's movement noise: its drawn activity-noise RMS (the
            # record's level, the fit's calibration and activity_level_scale) where that kind ran
            # first, else the cell's typical RMS
            ref = params.get("activity_noise_rms_mv")
            if ref is None:
                from .textile import typical_activity_rms_mv
                noise_activity = _activity_noise()[0]
                act = "rest" if motion is None else str(motion.params.get("activity", "rest"))
                ref = cfg.activity_level_scale * typical_activity_rms_mv(cfg.electrode, noise_activity[act],
                                                                         fit=cfg.textile_fit or None)
            by_kind[kind] = simulate_drift(rng, n_e, n, fs, median_mv=cfg.drift_ratio * float(ref),
                                           log_sd=cfg.drift_log_sd, exponent=cfg.drift_exponent, params=params)
    if contact is None:
        contact = _constant(1.0, n_e, n)
    return _new_electrode_noise(by_kind, contact, z, fs, params, targets)


_DEFAULT_CONFIG = NoiseConfig()


@functools.lru_cache(maxsize=1)
def _activity_noise():
    """``(NOISE_ACTIVITY, simulate_activity_noise)``, imported on first use (scipy.stats and the
    fit stay unloaded until a config asks for the ``activity`` kind; once, not per record)."""
    from ..motion.config import NOISE_ACTIVITY
    from .textile import simulate_activity_noise
    return NOISE_ACTIVITY, simulate_activity_noise


@functools.lru_cache(maxsize=1)
def _simulate_drift():
    """:func:`cardiosim.noise.drift.simulate_drift`, imported on first use (once: a relative
    import statement run per record costs a few microseconds of import machinery)."""
    from .drift import simulate_drift
    return simulate_drift


@functools.lru_cache(maxsize=32)
def _mains_phasor(n: int, fs: float, f_hz: float):
    """cos and sin of ``2 pi f t`` on ``n`` samples at ``fs`` (float32, read-only, cached:
    the random phase is applied by the caller). The phase is reduced modulo one cycle in
    float64 first so float32 stays exact over long records."""
    cyc = np.mod(np.arange(n, dtype=np.float64) * (f_hz / fs), 1.0) * (2 * np.pi)
    c, s = np.cos(cyc).astype(_F32), np.sin(cyc).astype(_F32)
    c.setflags(write=False)
    s.setflags(write=False)
    return c, s


@functools.lru_cache(maxsize=32)
def _mains_tables(n: int, fs: float, freqs: tuple) -> np.ndarray:
    """sin and cos of ``2 pi f t`` for each of ``freqs``, stacked ``[sin f1, cos f1, sin f2,
    ...]`` [2 len(freqs), n] float32 (read-only, cached; :func:`_mains_phasor`'s values)."""
    rows = []
    for f in freqs:
        c, s = _mains_phasor(n, fs, f)
        rows += [s, c]
    out = np.stack(rows) if rows else np.zeros((0, n), dtype=_F32)
    out.setflags(write=False)
    return out


def common_mode_voltage(rng, cfg: NoiseConfig, t: np.ndarray, fs: float, params: dict,
                        ground_impedance_ohm: float | None = None) -> np.ndarray:
    """Mains common-mode voltage of the body [T] mV (float32): fundamental and odd harmonics
    below Nyquist (harmonics at or above it are recorded in ``params`` and left out, since
    the simulation rate cannot carry them), with a slow (0.05-0.3 Hz) amplitude modulation
    as the body moves relative to the mains wiring.

    With ``cfg.powerline_coupling == 'ground_electrode'`` the amplitude is the drawn mains
    displacement current times ``ground_impedance_ohm`` (the reference electrode's
    impedance; Huhta & Webster 1973), else it is drawn from ``cfg.cm_voltage_mv``."""
    ground = cfg.powerline_coupling == "ground_electrode"
    if ground and ground_impedance_ohm is None:
        raise ConfigError("powerline_coupling = 'ground_electrode' needs the ground electrode's impedance")
    # every uniform draw of the function from one call (Generator.uniform(lo, hi) is
    # lo + (hi - lo) * random(), so the values are those of one call per draw, in order):
    # amplitude, phase, (rel, phase) per harmonic above the first, modulation rate, depth, phase
    h_n = cfg.powerline_harmonics
    u = iter(rng.random(5 + 2 * (h_n - 1)).tolist())
    lo, hi = cfg.displacement_current_ua if ground else cfg.cm_voltage_mv
    a = lo + (hi - lo) * next(u)
    if ground:
        params["displacement_current_ua"] = float(a)
        a = a * 1e-6 * float(ground_impedance_ohm) * 1e3       # uA x Ohm -> mV
    params["cm_voltage_mv"] = float(a)
    two_pi = 2 * np.pi
    ph0 = two_pi * next(u)
    coef, freqs = [], []
    for h in range(h_n):
        k = 2 * h + 1
        if k == 1:
            rel, ph = 1.0, k * ph0
        else:
            rel = (0.02 + (0.3 - 0.02) * next(u)) / h
            ph = two_pi * next(u)
        params[f"powerline_harmonic_rel.{k}"] = float(rel)
        if k * cfg.powerline_hz >= fs / 2:
            params[f"powerline_harmonic_above_nyquist.{k}"] = 1.0
            continue
        # rel * sin(w_k t + ph) = rel (cos ph sin w_k t + sin ph cos w_k t)
        coef += [rel * np.cos(ph), rel * np.sin(ph)]
        freqs.append(k * cfg.powerline_hz)
    fm = 0.05 + (0.3 - 0.05) * next(u)
    depth = 0.0 + (0.3 - 0.0) * next(u)
    params["cm_modulation_hz"], params["cm_modulation_depth"] = float(fm), float(depth)
    if type(t) is np.ndarray and t.dtype == _F32 and t.ndim == 1:
        # the two lines below in one pass: t * float32(2 pi fm), then + float32(phase), each rounded
        mod_sin = np.empty(t.shape, dtype=_F32)
        _kernels.affine_f32_kernel(t, 2 * np.pi * fm, two_pi * next(u), mod_sin)   # float32 inside
    else:
        mod_sin = np.multiply(t, _F32(2 * np.pi * fm))
        mod_sin += _F32(two_pi * next(u))
    np.sin(mod_sin, out=mod_sin)
    # sum of the harmonics times a (1 + depth sin) modulation, one float32 pass (numba),
    # the same operations in the same order as the NumPy passes it replaces
    tab = _mains_tables(t.size, float(fs), tuple(freqs))
    v = np.empty(t.shape, dtype=_F32)
    _kernels.mains_sum_kernel(np.array(coef, dtype=_F32), tab, mod_sin, _F32(depth), _F32(a), v)
    return v


def powerline_from_impedance(v_cm: np.ndarray, impedance: np.ndarray, input_impedance_ohm: float) -> np.ndarray:
    """Potential-divider powerline at each electrode: ``v_cm * Z_e / (Z_e + Z_in)``.

    v_cm [T] mV; impedance [n_e, T] or [n_e] Ohm -> [n_e, T] mV. The differential between
    two electrodes is ``v_cm * Z_in (Z_a - Z_b) / ((Z_a + Z_in)(Z_b + Z_in))``: zero for
    equal impedances, about ``v_cm (Z_a - Z_b) / Z_in`` for small mismatches.
    """
    z = np.asarray(impedance)
    if (z.dtype == _F32 and z.ndim == 2 and type(v_cm) is np.ndarray and v_cm.dtype == _F32 and v_cm.ndim == 1
            and z.shape[1] == v_cm.shape[0] and z.flags.c_contiguous and v_cm.flags.c_contiguous):
        out = np.empty(z.shape, dtype=_F32)        # the common case: no conversions to make
        _kernels.powerline_kernel(v_cm, z, _F32(input_impedance_ohm), out)
        return out
    if z.ndim == 1:
        z = z[:, None]
    z = z.astype(np.result_type(z.dtype, np.float32), copy=False)
    v = np.asarray(v_cm).astype(z.dtype, copy=False)
    out = np.empty((z.shape[0], v.shape[0]), dtype=z.dtype)
    if z.shape[1] not in (1, v.shape[0]):
        raise SignalError(f"impedance has {z.shape[1]} samples, v_cm {v.shape[0]}")
    _kernels.powerline_kernel(np.ascontiguousarray(v), np.ascontiguousarray(z), z.dtype.type(input_impedance_ohm), out)
    return out


def _stage_leads_into(matrix, phi: np.ndarray, en: ElectrodeNoise, kinds, rows: np.ndarray) -> bool:
    """The simulation's noisy leads ``montage.apply(en.apply(phi))`` into ``rows[:n_leads]`` and
    its noiseless leads ``montage.apply(phi)`` into ``rows[n_leads:2 n_leads]`` in one call
    (:func:`cardiosim.noise._kernels.stage_leads_kernel`: the device kernels' values bit for
    bit). ``kinds``: ``en.by_kind`` as ``cardiosim.simulate._noise_kinds`` gives them. Returns
    True when both are written and every value of both is finite; False (rows undefined) for
    any input it does not cover, then the caller forms them as before (and checks them)."""
    contact = en.contact
    n_e, n = phi.shape
    n_l = matrix.shape[0]
    if not (type(contact) is np.ndarray and contact.shape == (n_e, n) and contact.dtype.kind == "f"
            and rows.shape[0] >= 2 * n_l and rows.shape[1] == n and rows.dtype == np.float64):
        return False
    unit = contact.strides == (0, 0) and contact.size > 0 and contact.flat[0] == 1
    # the noisy electrode values are staged where the noiseless leads go next, or (fewer leads
    # than electrodes) in a buffer of this thread's
    stage = rows[n_l:n_l + n_e] if n_l >= n_e else _scratch("noise.stage_leads", (n_e, n), np.float64)
    arrays, which, consts = kinds
    return _kernels.stage_leads_kernel(matrix, phi, contact, unit, arrays, which, consts,
                                       _kernels.leads_limit(matrix), rows, stage) == 0


@functools.lru_cache(maxsize=16)
def _no_contact_params(n_e: int) -> dict:
    p: dict = {}
    _per_electrode(p, "contact_losses", [0] * n_e)
    _per_electrode(p, "contact_pops", [0] * n_e)
    _per_electrode(p, "contact_lost_fraction", [0.0] * n_e)
    return p


def _contact(rng, cfg, n_e, n, fs, muscle, params):
    """Contact-loss and pop offsets [n_e, T] mV and the contact mask [n_e, T] (float32)."""
    lam_loss, lam_pop = _contact_rates(cfg, n, fs, muscle)
    # losses then pops per electrode, from one call (an array of rates draws element by
    # element in order: the numbers two calls of n_e draws give)
    # (two calls of n_e draws at one rate each: the same numbers, without the array-rate
    # call's broadcasting and checks)
    addr = _pcg64_address_last(rng)
    if addr is not None and 0.0 <= lam_loss < 10.0 and 0.0 <= lam_pop < 10.0 and draw_program_matches():
        # both calls below in one kernel call (NumPy's method below a rate of 10)
        k_loss = np.empty(n_e, dtype=np.int64)
        k_pop = np.empty(n_e, dtype=np.int64)
        with rng.bit_generator.lock:
            _kernels.poisson_pair_pcg64_kernel(addr, float(lam_loss), float(lam_pop), k_loss, k_pop)
    else:
        k_loss = rng.poisson(lam_loss, n_e)
        k_pop = rng.poisson(lam_pop, n_e)
    return _contact_events(rng, cfg, n_e, n, fs, k_loss, k_pop, params)


def _contact_rates(cfg, n, fs, muscle) -> tuple:
    """The Poisson rates ``(losses, pops)`` per electrode over the record: the configured rates
    per minute, more when the muscle envelope says the wearer moves."""
    dur_s = n / fs
    if muscle.dtype == _F32 and muscle.ndim == 1 and muscle.flags.c_contiguous and 0 < muscle.size <= 8192:
        # np.add.reduce(muscle, dtype=float64)'s value in one numba call (one cast buffer of
        # NumPy's: its pairwise sum of the float64 values, tests/test_noise_kernels.py)
        activity = _kernels.sum_f32_as_f64_kernel(muscle) / muscle.size
    elif muscle.dtype == np.float64 and muscle.ndim == 1 and muscle.flags.c_contiguous and 0 < muscle.size <= 8192:
        # a motion's float64 envelope: the float32 envelope's sum (the values rounded to float32
        # first), the line above's value without the float32 copy
        activity = _kernels.sum_as_f32_f64_kernel(muscle) / muscle.size
    else:
        activity = float(np.add.reduce(np.asarray(muscle, dtype=_F32), dtype=np.float64)) / muscle.size
    scale = dur_s / 60.0 * (1.0 + 4.0 * activity)          # more events when moving
    return cfg.contact_loss_rate_per_min * scale, cfg.pop_rate_per_min * scale


def _contact_events(rng, cfg, n_e, n, fs, k_loss, k_pop, params):
    """:func:`_contact` after its Poisson counts ``k_loss``, ``k_pop`` [n_e]: each event's
    draws (none without events), the offsets and the mask."""
    params["contact_events"] = sum(k_loss.tolist()) + sum(k_pop.tolist())     # Python ints, as int(.sum())
    if params["contact_events"] == 0:
        # nothing happened: read-only broadcast views cost no memory or time
        params.update(_no_contact_params(n_e))
        return _constant(0.0, n_e, n), _constant(1.0, n_e, n)
    offsets = np.zeros((n_e, n), dtype=_F32)
    mask = np.ones((n_e, n), dtype=_F32)
    for e in range(n_e):
        kl, kp = int(k_loss[e]), int(k_pop[e])
        params[f"contact_losses.e{e}"] = kl
        params[f"contact_pops.e{e}"] = kp
        if kl + kp == 0:
            params[f"contact_lost_fraction.e{e}"] = 0.0
            continue
        starts = np.concatenate([rng.uniform(0, n, kl), rng.uniform(0, n, kp)]).astype(np.int64)
        durs = np.concatenate([_loguniform(rng, *cfg.contact_loss_s, kl), rng.uniform(0.02, 0.08, kp)])
        durs = np.maximum(1, (durs * fs).astype(np.int64))
        if cfg.contact_loss_mode == "mixed":
            sat = rng.random(kl) < 0.5
        else:
            sat = np.full(kl, cfg.contact_loss_mode == "saturated")
        sign = np.where(rng.random(kl + kp) < 0.5, -1.0, 1.0)
        lv_loss = np.where(sat, cfg.saturation_mv, rng.uniform(0.0, 5.0, kl))  # flat: small held offset
        lv_pop = rng.uniform(0.5, 5.0, kp)                                    # pop: mV-size half-cell step
        levels = sign * np.concatenate([lv_loss, lv_pop])
        taus = np.concatenate([rng.uniform(0.3, 2.0, kl), rng.uniform(0.1, 0.5, kp)])
        order = np.argsort(starts, kind="stable")
        _kernels.contact_kernel(starts[order], durs[order], levels[order], taus[order], fs, 0.05,
                                mask[e], offsets[e])
        params[f"contact_lost_fraction.e{e}"] = float(np.count_nonzero(mask[e] == 0)) / n
    return offsets, mask


_ON_TEXTILE: tuple = (None, None)


def _on_textile(config: NoiseConfig) -> NoiseConfig:
    """A config whose electrode is ``'device'`` without a device (a direct call): a shirt's
    textile electrodes (``simulate_record`` resolves it for its device first); the last one
    made is kept, so that a loop over records with one config does not remake it."""
    global _ON_TEXTILE
    last = _ON_TEXTILE
    if last[0] is config:
        return last[1]
    resolved = dataclasses.replace(config, electrode="textile")
    _ON_TEXTILE = (config, resolved)
    return resolved
