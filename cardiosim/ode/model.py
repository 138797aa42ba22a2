"""The Gaussian-wave dipole beat: one patient's parameters and the class morphologies.

Sameni et al.'s three-channel model (EURASIP J Adv Signal Process 2007:43407,
PHYSICS.md §5): each Frank axis ``X, Y, Z`` (mV; X left, Y feet, Z back) is a sum of
its own Gaussians ``Σ_i α_i exp(-Δθ_i² / 2 b_i²)``. Here every axis has the same 11
wave slots with fixed roles — P1 P2 (atria), QRS1-QRS6 (depolarisation), ST, T1 T2
(repolarisation) — and the parameters are expressed in time at RR = 1 s: centre
``tau`` (s from the R-peak fiducial) and width ``sigma`` (s). For a beat of interval
``RR`` the phase model's angles are ``θ = 2π tau(RR) / RR`` and widths
``b = 2π sigma(RR) / RR``; ST/T timing and width scale with ``f = RR^(1/3)``
(Fridericia's QT-RR relation, QT ∝ RR^(1/3)) — the physiological form of ECGSYN's
``√(HR/60)`` width and ``(HR/60)^¼`` angle factors — while P and QRS timing stay fixed.
The ST/T centres scale about the patient's QRS onset ``q`` (:meth:`Patient.qrs_onset`,
s from R at RR = 1 s): ``tau(RR) = q + (tau - q) f``, computed as ``tau f + q (1 - f)``
(exactly ``tau`` at RR = 1 s), widths ``sigma f``, so the QT interval (QRS onset to T end)
itself is ``QT(1 s) RR^(1/3)`` and its Fridericia correction does not depend on the rate.
(Until 2026-12-06 the centres scaled about the R fiducial, ``tau f``: the QT kept a fixed
part, ``-q (1 - f)``, and the measured QTc rose by about 19 ms from 70 to 145 bpm,
docs/VALIDATION.md, "QT and heart rate".)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import SimpleNamespace
from functools import lru_cache

import numpy as np

from ..errors import ConfigError
from . import _beat_kernels
from .classes import CLASSES

WAVES = ("P1", "P2", "QRS1", "QRS2", "QRS3", "QRS4", "QRS5", "QRS6", "ST", "T1", "T2")
NW = len(WAVES)
P_WAVES = (0, 1)
QRS_WAVES = (2, 3, 4, 5, 6, 7)
ST_WAVES = (8,)
T_WAVES = (9, 10)
REPOL = (8, 9, 10)  # timing scales with RR^(1/3) about the QRS onset
EDGE = 2.5  # a lone Gaussian starts/ends about EDGE sigma from its centre (4.4 % of its peak)
AXES = "XYZ"
QRS_VELOCITY_REL = 0.15  # QRS on/offset: spatial velocity at 15 % of its maximum
LBBB_MIN_TROUGH = 0.25  # lowest mid-QRS 12-lead velocity of an LBBB beat (between its maxima), share of its peak
PVC_MAX_CORR = 0.5  # largest 12-lead correlation of an ectopic ventricular complex with the sinus one

# Support of each slot (the fit's bounds and the prior's truncation): centre, s from R at
# RR = 1 s, and width, s. P and T are smooth waves (P 80-110 ms long), hence their
# minimum widths; the QRS slots stay within ±60 ms of the R fiducial and are no narrower
# than one sample of the 250 Hz fits (4 ms), so intervals do not depend on the output rate.
_TB = {"P": (-0.30, -0.04), "QRS": (-0.06, 0.06), "ST": (0.03, 0.25), "T1": (0.08, 0.50),
       "T2": (0.12, 0.55)}
_SB = {"P": (0.012, 0.04), "QRS": (0.004, 0.02), "ST": (0.015, 0.06), "T1": (0.02, 0.10),
       "T2": (0.015, 0.08)}
_ROLE = ["P", "P"] + ["QRS"] * 6 + ["ST", "T1", "T2"]
TAU_BOUNDS = np.array([_TB[r] for r in _ROLE])
SIGMA_BOUNDS = np.array([_SB[r] for r in _ROLE])


_SHAPE = (3, NW)  # a patient array's shape


@lru_cache(maxsize=8)
def _param_names(prefix):
    return tuple(f"{prefix}.{ax}.{w}.{q}" for ax in AXES for w in WAVES for q in ("tau_s", "sigma_s", "amp_mV"))


@dataclass(frozen=True)
class Patient:
    """One heart's beat parameters (fixed for a record).

    Attributes
    ----------
    tau : ndarray, shape (3, 11), s — Gaussian centres per axis and wave slot, relative
        to the R-peak fiducial, at RR = 1 s
    sigma : ndarray, shape (3, 11), s — widths at RR = 1 s
    amp : ndarray, shape (3, 11), mV — amplitudes (Frank X, Y, Z rows)
    """

    tau: np.ndarray
    sigma: np.ndarray
    amp: np.ndarray

    def __post_init__(self):
        arrs = {}
        for name in ("tau", "sigma", "amp"):
            v = np.array(getattr(self, name), dtype=float)
            if v.shape != (3, NW):
                raise ConfigError(f"patient {name} must have shape (3, {NW}), got {v.shape}")
            arrs[name] = v
        # the checks below in one kernel call; they run (and raise) only if it finds a fault
        if _beat_kernels.patient_check_kernel(arrs["tau"], arrs["sigma"], arrs["amp"]) == 0:
            for name, v in arrs.items():
                v.flags.writeable = False
                object.__setattr__(self, name, v)
            return
        if not np.isfinite(arrs["tau"].sum() + arrs["sigma"].sum() + arrs["amp"].sum()):
            # (one check for the common case: a finite sum means all three are finite)
            for name, v in arrs.items():
                if not np.all(np.isfinite(v)):
                    raise ConfigError(f"patient {name} has non-finite values: {v}")
        if arrs["sigma"].min() <= 0:
            raise ConfigError(f"patient sigma must be positive, got min {arrs['sigma'].min()}")
        for name, v in arrs.items():
            v.flags.writeable = False
            object.__setattr__(self, name, v)

    @classmethod
    def _trusted(cls, tau, sigma, amp) -> Patient:
        """A patient from arrays already known valid (shape (3, 11), finite, sigma > 0:
        the screened draws of ``prior.sample_patient``), without the checks and copies of
        ``__init__`` (they cost more than drawing the patient). The arrays are made
        read-only and owned by the patient."""
        p = object.__new__(cls)
        for name, v in (("tau", tau), ("sigma", sigma), ("amp", amp)):
            v = np.ascontiguousarray(v, dtype=float)
            v.flags.writeable = False
            object.__setattr__(p, name, v)
        return p

    # --- flat vector <-> patient (the space priors live in) ---------------------
    def in_support(self) -> bool:
        """All centres and widths inside the slots' TAU_BOUNDS / SIGMA_BOUNDS (RR = 1 s)."""
        return bool(np.all((self.tau >= TAU_BOUNDS[:, 0]) & (self.tau <= TAU_BOUNDS[:, 1])
                           & (self.sigma >= SIGMA_BOUNDS[:, 0]) & (self.sigma <= SIGMA_BOUNDS[:, 1])))

    def to_vector(self) -> np.ndarray:
        """``[tau (33), log sigma (33), amp (33)]`` row-major (axis, wave) — prior space."""
        return np.concatenate([self.tau.ravel(), np.log(self.sigma).ravel(), self.amp.ravel()])

    @classmethod
    def from_vector(cls, v) -> Patient:
        v = np.asarray(v, float)
        m = 3 * NW
        if v.shape != (3 * m,):
            raise ConfigError(f"patient vector must have shape ({3 * m},), got {v.shape}")
        return cls(v[:m].reshape(3, NW), np.exp(v[m:2 * m]).reshape(3, NW), v[2 * m:].reshape(3, NW))

    def to_params(self, prefix="patient") -> dict:
        """Flat ``{name: float}`` dict to store with a record (axis-major, then wave,
        then tau_s / sigma_s / amp_mV)."""
        v = np.empty((3, NW, 3))  # (np.stack's values, without its ~3 µs of Python)
        v[..., 0] = self.tau
        v[..., 1] = self.sigma
        v[..., 2] = self.amp
        values = v.ravel().tolist()
        return dict(zip(_param_names(prefix), values))

    def replace(self, tau=None, sigma=None, amp=None) -> Patient:
        """``Patient(tau, sigma, amp)`` with this patient's arrays where one is None. Those
        are shared, not copied again (read-only, already checked); the new ones are copied
        and checked as ``__init__`` does (its errors: then through ``__init__`` itself).
        (``__init__`` copied and checked all three: ~4 µs of a ~7-µs call, several a record.)"""
        t = self.tau if tau is None else np.array(tau, dtype=float)
        s = self.sigma if sigma is None else np.array(sigma, dtype=float)
        a = self.amp if amp is None else np.array(amp, dtype=float)
        if (t.shape != _SHAPE or s.shape != _SHAPE or a.shape != _SHAPE
                or _beat_kernels.patient_check_kernel(t, s, a) != 0):
            return Patient(self.tau if tau is None else tau, self.sigma if sigma is None else sigma,
                           self.amp if amp is None else amp)
        p = object.__new__(Patient)
        d = p.__dict__
        for name, v in (("tau", t), ("sigma", s), ("amp", a)):
            v.flags.writeable = False
            d[name] = v
        return p

    # --- waveform of groups, intervals -------------------------------------------
    def render(self, t, waves=None, rr=1.0) -> np.ndarray:
        """The beat's VCG (3, len(t)) mV at times ``t`` (s from R) for interval ``rr``
        (``_beat_kernels.render_kernel`` where it was checked to give this NumPy code bit
        for bit, :func:`_fast_kernels`)."""
        t = np.asarray(t, float)
        q = self._pivot(rr)
        if t.ndim == 1 and _fast_kernels():
            t = np.ascontiguousarray(t)
            idx = _ALL_IDX if waves is None else _index_array(waves)
            f = float(rr) ** (1.0 / 3.0)
            tab = _render_exp_table()
            if tab is not None:  # exp inline (the C library's, four lanes at a time: 2.2-3x render_kernel;
                # or NumPy's loop on each slot's row: one call instead of render_hybrid's three and np.exp)
                out = np.empty((3, t.shape[0]))
                _beat_kernels.render_exp_kernel(t, self.tau, self.sigma, self.amp, idx, f, _REPOL_MASK, out, q, tab)
                return out
            if _render_form() == "hybrid":
                return _beat_kernels.render_hybrid(t, self.tau, self.sigma, self.amp, idx, f, _REPOL_MASK, q)
            out = np.empty((3, t.shape[0]))
            _beat_kernels.render_kernel(t, self.tau, self.sigma, self.amp, idx, f, _REPOL_MASK, out, q)
            return out
        tau, sigma = scaled_timing(self.tau, self.sigma, rr, q)
        idx = list(range(NW)) if waves is None else list(waves)
        g = np.exp(-0.5 * ((t[None, None, :] - tau[:, idx, None]) / sigma[:, idx, None]) ** 2)
        return np.einsum("ai,ait->at", self.amp[:, idx], g)

    def track(self, waves, rr=1.0, fs=2000.0):
        """A wave group rendered on the grid its measures use: ``t = arange(min(tau -
        5 sigma), max(tau + 5 sigma), 1 / fs)`` and the (3, len(t)) mV waveform; None if
        the group is silent."""
        q = self._pivot(rr)
        if _fast_kernels():
            ia = _index_array(waves)
            lo, hi, amax = _beat_kernels.bounds_kernel(self.tau, self.sigma, self.amp, ia,
                                                       float(rr) ** (1.0 / 3.0), _REPOL_MASK, q)
            if amax < 1e-6:
                return None
            t = np.arange(lo, hi, 1.0 / fs)
            return t, self.render(t, ia, rr)
        idx = list(waves)
        if np.abs(self.amp[:, idx]).max() < 1e-6:
            return None
        tau, sigma = scaled_timing(self.tau, self.sigma, rr, q)
        t = np.arange((tau[:, idx] - 5 * sigma[:, idx]).min(), (tau[:, idx] + 5 * sigma[:, idx]).max(),
                      1.0 / fs)
        return t, self.render(t, idx, rr)

    @staticmethod
    def span_of(t, v, waves, rel=0.05, fs=2000.0):
        """Indices (first, last) of the samples of a :meth:`track` inside the group (see
        :meth:`span`)."""
        qrs = tuple(waves) == QRS_WAVES
        rel = QRS_VELOCITY_REL if qrs else rel
        if v.ndim == 2 and v.shape[0] == 3 and v.shape[1] >= 2 and _fast_kernels():
            v = np.ascontiguousarray(v, dtype=np.float64)
            m = np.empty(v.shape[1])
            if qrs:
                _beat_kernels.speed_kernel(v, 1.0 / fs, m)
            else:
                _beat_kernels.magnitude_kernel(v, m)
            return _beat_kernels.first_last_kernel(m, rel)
        if qrs:
            m = np.linalg.norm(np.gradient(v, 1.0 / fs, axis=1), axis=0)
        else:
            m = np.linalg.norm(v, axis=0)
        above = np.flatnonzero(m >= rel * m.max())
        return int(above[0]), int(above[-1])

    def span(self, waves, rr=1.0, rel=0.05, fs=2000.0) -> tuple[float, float]:
        """(start, end) s of a wave group, measured on the rendered group so tiny or
        cancelling Gaussians from a fit do not stretch it; (nan, nan) if silent.

        P, T: where the spatial magnitude exceeds ``rel`` (5 %) of its maximum (a lone
        Gaussian's ±2.45 sigma). QRS (``waves == QRS_WAVES``): where the spatial velocity
        |dV/dt| exceeds 15 % of its maximum, the usual VCG criterion, which also holds
        in the full signal where ST-T overlaps the QRS end.
        """
        waves = tuple(waves)
        key = ("span", waves, float(rr), float(rel), float(fs))
        got = self._cache.get(key)
        if got is None and _fast_kernels():
            tab = _render_exp_table()
            if tab is not None:  # track, render and span_of in one kernel call (the same numbers)
                qrs = waves == QRS_WAVES
                st, a, b = _beat_kernels.span_kernel(self.tau, self.sigma, self.amp, _index_array(waves),
                                                     float(rr) ** (1.0 / 3.0), _REPOL_MASK, self._pivot(rr),
                                                     float(fs), QRS_VELOCITY_REL if qrs else float(rel), qrs, tab)
                if st < 2:
                    got = self._cache[key] = (float(a), float(b))
        if got is None:
            tr = self.track(waves, rr, fs)
            if tr is None:
                got = (np.nan, np.nan)
            else:
                i0, i1 = self.span_of(*tr, waves, rel, fs)
                got = (float(tr[0][i0]), float(tr[0][i1]))
            self._cache[key] = got
        return got

    def qrs_onset(self) -> float:
        """The QRS onset (s from R) at RR = 1 s: :meth:`span` of the QRS slots (spatial
        velocity at 15 % of its peak, 2 kHz grid; the ``QRS_onset`` fiducial of
        ``synth._fiducials``), 0.0 if the QRS is silent. The ST/T slots scale about it
        (:func:`scaled_timing`). Cached with the spans."""
        q = self.span(QRS_WAVES)[0]
        return float(q) if np.isfinite(q) else 0.0

    def _pivot(self, rr) -> float:
        """:meth:`qrs_onset` where ``rr`` scales the ST/T slots, else 0.0 (RR = 1 s: the
        pivot does not matter, and the QRS span's own render needs none)."""
        return 0.0 if float(rr) == 1.0 else self.qrs_onset()

    @property
    def _cache(self) -> dict:
        """Measures of this (immutable) patient already computed: spans, peak vectors."""
        c = self.__dict__.get("_measures")
        if c is None:
            c = {}
            object.__setattr__(self, "_measures", c)
        return c

    def max_velocity(self, waves, fs=1000.0) -> float:
        """Peak spatial velocity |dV/dt| (mV/s) of a wave group at RR = 1 s."""
        if _fast_kernels():
            # the same grid and render as Patient.track at RR = 1 s (bounds_kernel's are
            # these NumPy bounds), np.gradient and norm in speed_kernel
            tr = self.track(waves, 1.0, fs)
            if tr is not None and tr[0].shape[0] >= 2:
                m = np.empty(tr[0].shape[0])
                _beat_kernels.speed_kernel(tr[1], 1.0 / fs, m)
                return float(m.max())
        idx = list(waves)
        t = np.arange((self.tau[:, idx] - 5 * self.sigma[:, idx]).min(),
                      (self.tau[:, idx] + 5 * self.sigma[:, idx]).max(), 1.0 / fs)
        v = self.render(t, idx)
        return float(np.linalg.norm(np.gradient(v, 1.0 / fs, axis=1), axis=0).max())

    def t_end(self, rr=1.0, fs=2000.0, track=None) -> float:
        """End of the T wave (s) by the tangent method (Lepeschkin & Surawicz 1952): where
        the steepest descending tangent of the repolarisation (ST + T slots) magnitude
        after its peak meets zero. ``track``: the repolarisation's :meth:`track` at this
        ``rr`` and ``fs``, if already rendered."""
        tr = self.track(REPOL, rr, fs) if track is None else track
        if tr is None:
            return np.nan
        t, v = tr
        i0, i1 = self.span_of(t, v, REPOL, 0.001, fs)
        if i1 - i0 >= 2 and _fast_kernels():  # (twin: _beat_kernels.tangent_end_numpy, this code)
            return float(_beat_kernels.tangent_end_kernel(t, np.ascontiguousarray(v), i0, i1, 1.0 / fs))
        # the samples from the 0.1 % onset up to (not including) the 0.1 % end
        t, m = t[i0:i1], np.linalg.norm(v[:, i0:i1], axis=0)
        k = int(np.argmax(m))
        d = np.gradient(m, 1.0 / fs)
        j = k + int(np.argmin(d[k:]))
        return float(t[j] + m[j] / -d[j]) if d[j] < 0 else float(t[-1])

    def intervals(self, rr=1.0) -> dict:
        """Model intervals at RR ``rr`` (s): pr, qrs, qt (T end by the tangent method),
        qtc (Fridericia, QT / RR^(1/3))."""
        p0, _ = self.span(P_WAVES, rr)
        q0, q1 = self.span(QRS_WAVES, rr)
        t1 = self.t_end(rr)
        qt = t1 - q0
        return {"pr": q0 - p0, "qrs": q1 - q0, "qt": qt, "qtc": qt / rr ** (1 / 3)}

    def peak_vector(self, waves, fs=2000.0) -> np.ndarray:
        """Spatial vector (3,) mV of a wave group at its maximum magnitude."""
        key = ("peak", tuple(waves), float(fs))
        got = self._cache.get(key)
        if got is None and _fast_kernels() and _render_exp_table() is not None:
            # grid, render, magnitude and argmax in one kernel call (the same numbers)
            lo, hi = self.span(waves)
            v = np.empty(3)
            if _beat_kernels.peak_kernel(self.tau, self.sigma, self.amp, _index_array(waves), _REPOL_MASK, lo,
                                         hi + 0.5 / fs, 1.0 / fs, _render_exp_table(), v):
                got = self._cache[key] = v
                got.flags.writeable = False
        if got is None:
            lo, hi = self.span(waves)
            t = np.arange(lo, hi + 0.5 / fs, 1.0 / fs)
            v = self.render(t, waves)
            got = self._cache[key] = v[:, np.argmax(np.linalg.norm(v, axis=0))]
            got.flags.writeable = False
        return got.copy()

    def qrs_axis(self, fs=2000.0) -> np.ndarray:
        """Unit vector of the QRS area (mean QRS) vector, ∫ V dt over the QRS: the
        direction ST shifts and T inversion refer to (stable where the peak vector flips
        between near-equal R and S lobes)."""
        key = ("qrs_axis", float(fs))
        got = self._cache.get(key)
        if got is None:
            lo, hi = self.span(QRS_WAVES)
            v = self.render(np.arange(lo, hi, 1.0 / fs), QRS_WAVES).sum(axis=1)
            got = self._cache[key] = v / _norm(v)
            got.flags.writeable = False
        return got.copy()


# the contiguous groups as slices: the same elements as list(group) indexing, without a
# fancy-index gather / scatter (~3 us each)
_P_S, _QRS_S, _REPOL_S = (slice(g[0], g[-1] + 1) for g in (P_WAVES, QRS_WAVES, REPOL))
if any(tuple(g) != tuple(range(g[0], g[-1] + 1)) for g in (P_WAVES, QRS_WAVES, REPOL)):  # pragma: no cover
    raise ImportError("model: the P, QRS and ST-T slot groups must be contiguous to be indexed by slices")
_ALL_IDX = np.arange(NW, dtype=np.int64)
_REPOL_MASK = np.zeros(NW, dtype=np.bool_)
_REPOL_MASK[list(REPOL)] = True
_ALL_IDX.flags.writeable = False  # read-only as the patient's arrays: one numba specialisation
_REPOL_MASK.flags.writeable = False
_ONES = np.ones(NW)  # scale factors of slots already scaled (qrs12; the kernel only reads it)


_INDEX_ARRAYS = {}


def _index_array(waves) -> np.ndarray:
    """Slot indices as the kernels take them (int64 array), cached per group."""
    if type(waves) is tuple:  # (a group already seen: one look-up; an equal tuple has the same ints)
        a = _INDEX_ARRAYS.get(waves)
        if a is not None:
            return a
    if isinstance(waves, np.ndarray) and waves.dtype == np.int64:
        return waves
    key = tuple(int(w) for w in waves)
    a = _INDEX_ARRAYS.get(key)
    if a is None:
        a = _INDEX_ARRAYS[key] = np.array(key, dtype=np.int64)
        a.flags.writeable = False
    return a


def _fast_kernels() -> bool:
    """Whether ``_beat_kernels`` give :meth:`Patient.render` / :meth:`Patient.span_of`'s
    NumPy results bit for bit on this machine, in one of the two render forms
    (:func:`_render_form`)."""
    return _render_form() is not None


@lru_cache(maxsize=1)
def _render_form():
    """How :meth:`Patient.render` runs in kernels on this machine: ``"kernel"`` (all in
    ``_beat_kernels.render_kernel``, where the C library's ``exp`` is NumPy's), ``"hybrid"``
    (``_beat_kernels.render_hybrid``: NumPy's own ``exp``, e.g. SVML's on AVX-512, between
    two kernels), or None (neither gives the NumPy code bit for bit: NumPy runs). The
    first form whose kernels (render, bounds, speed, magnitude, first/last) all give their
    NumPy twins' results bit for bit, checked once per process (≈ 20 ms) on two default
    beats (one jittered), every wave group, two RR intervals, on the grids
    ``Patient.track`` renders on."""
    cases = _check_cases()
    for form in ("kernel", "hybrid"):
        if _beat_kernels.matches_numpy(cases, render=form):
            return form
    return None


@lru_cache(maxsize=1)
def _render_exp_table():
    """The exp source of the fused render kernels (``_beat_kernels.render_exp_kernel``,
    ``span_kernel``, ``peak_kernel``, the 12-lead and T-inversion kernels), or None (they
    are not used): in the ``"kernel"`` form ``_kernels.exp_table()`` (the C library's
    ``exp`` inline), in the ``"hybrid"`` form (AVX-512 machines) NumPy's own ``exp`` loop
    as ``(function, data)`` addresses (``_plan_kernels.ufunc_loops``, which checked it
    against ``np.exp``), where ``render_exp_kernel`` on it gives NumPy's results bit for bit
    on :func:`_render_form`'s cases and (the loop) ``np.exp`` is +0.0 below
    ``_beat_kernels.EXP_ZERO`` (the kept-Gaussian sums skip those samples); checked once
    per process."""
    form = _render_form()
    if form == "kernel":
        if not _beat_kernels.matches_numpy(_check_cases(), render="exp"):
            return None
        from ._kernels import exp_table

        return exp_table()
    if form != "hybrid":
        return None
    from ._plan_kernels import ufunc_loops

    loops = ufunc_loops()
    if loops is None:
        return None
    ex = (int(loops[0]), int(loops[1]))
    below = np.array([_beat_kernels.EXP_ZERO, np.nextafter(_beat_kernels.EXP_ZERO, -np.inf), -750.0, -1e3,
                      -1e5, -1e300, -np.inf])
    with np.errstate(all="ignore"):
        zero = np.exp(below)
    if zero.tobytes() != np.zeros_like(below).tobytes():
        return None
    if not _beat_kernels.matches_numpy(_check_cases(), render="loop", ex=ex):
        return None
    return ex


def _check_cases():
    """The cases :func:`_render_form` checks (see there)."""
    rng = np.random.default_rng(20261205)
    base = default_patient()
    cases = []
    for k in range(2):
        tau = base.tau + (0.0 if k == 0 else rng.normal(0.0, 0.004, base.tau.shape))
        sigma = base.sigma * (1.0 if k == 0 else np.exp(rng.normal(0.0, 0.2, base.sigma.shape)))
        amp = base.amp + (0.0 if k == 0 else rng.normal(0.0, 0.1, base.amp.shape))
        tau, sigma, amp = (np.ascontiguousarray(x, dtype=np.float64) for x in (tau, sigma, amp))
        for x in (tau, sigma, amp):
            x.flags.writeable = False
        for waves in (P_WAVES, QRS_WAVES, T_WAVES, REPOL, tuple(range(NW))):
            for rr, q in ((1.0, 0.0), (0.6, 0.0), (0.6, -0.043)):
                f = float(rr) ** (1.0 / 3.0)
                ts, ss = scaled_timing(tau, sigma, rr, q)
                idx = list(waves)
                t = np.arange((ts[:, idx] - 5 * ss[:, idx]).min(), (ts[:, idx] + 5 * ss[:, idx]).max(), 1 / 2000)
                cases.append((t, tau, sigma, amp, _index_array(waves), f, _REPOL_MASK, 1 / 2000, q))
    return cases


def scaled_timing(tau, sigma, rr, q=0.0):
    """Centres and widths (s) at interval ``rr`` (s): ST/T scale with ``f = RR^(1/3)``, their
    centres about ``q`` (s from R; a patient's :meth:`Patient.qrs_onset`, so the QT scales
    as Fridericia's RR^(1/3)): ``tau f + q (1 - f)``, ``sigma f``; other slots unchanged."""
    f = np.ones(NW)
    f[list(REPOL)] = float(rr) ** (1.0 / 3.0)
    return tau * f + q * (1.0 - f), sigma * f


def default_patient() -> Patient:
    """A hand-set adult normal beat (used by tests and as the fit's starting point).

    Directions follow the normal spatial VCG (Draper et al., Circulation 1964; Frank
    axes): P and main QRS left-inferior, QRS slightly posterior, septal forces
    right-anterior, terminal forces right-superior-posterior, T left-inferior-anterior;
    QRS ≈ 95 ms, PR ≈ 170 ms, QT ≈ 410 ms at 60 bpm. Same timing on the three axes.
    """
    tau = [-0.170, -0.130, -0.025, -0.012, 0.0, 0.012, 0.025, 0.035, 0.10, 0.22, 0.29]
    sigma = [0.020, 0.020, 0.009, 0.008, 0.011, 0.008, 0.009, 0.008, 0.04, 0.055, 0.035]
    vec = {0: [0.05, 0.08, -0.03], 1: [0.06, 0.06, 0.04], 2: [-0.10, -0.05, -0.15],
           4: [1.0, 0.5, 0.5], 6: [-0.25, -0.15, 0.4], 9: [0.20, 0.12, -0.10], 10: [0.15, 0.10, -0.10]}
    amp = np.zeros((3, NW))
    for i, v in vec.items():
        amp[:, i] = v
    return Patient(np.tile(tau, (3, 1)), np.tile(sigma, (3, 1)), amp)


def robust_beat(p: Patient, qrs=None, pr=None) -> bool:
    """Whole-beat robust delineation (``_kernels._robust``) inside QRS limits ``qrs``, PR
    limits ``pr`` (s; default: the normal criteria) and the normal QTc criteria."""
    crit = CLASSES["NORM"].limits
    qrs = crit["qrs"] if qrs is None else qrs
    pr = crit["pr"] if pr is None else pr
    lims = np.array([0, 0, 0, 0, 0, 0, 0, *qrs, *pr, *crit["qtc"]], dtype=np.float64)
    q0 = p.span(QRS_WAVES, fs=1000.0)[0]  # the screen's QRS onset (its 1-kHz grid)
    return _robust_kernel()(np.ascontiguousarray(p.tau), np.ascontiguousarray(p.sigma),
                            np.ascontiguousarray(p.amp), lims, 1000.0, float(q0) if np.isfinite(q0) else 0.0) == 0


@lru_cache(maxsize=1)
def _robust_kernel():
    """``_kernels._robust`` (imported once)."""
    from . import _kernels

    return _kernels._robust


def _norm(v) -> float:
    """``np.linalg.norm(v)`` of a float64 vector as a float: NumPy's own fast path
    (``sqrt(x.dot(x))`` on ``v.ravel(order="K")``; its ``sqrt`` and ``math.sqrt`` are both
    correctly rounded) without its ~3 us of argument handling."""
    if type(v) is not np.ndarray or v.dtype != np.float64:
        return float(np.linalg.norm(v))
    x = v.ravel(order="K")
    return math.sqrt(x.dot(x))


def _unit(v):
    return v / _norm(v)


def _stretch(p: Patient, waves, target: float) -> Patient:
    """Stretch a wave group in time about the R fiducial so it lasts ``target`` s."""
    lo, hi = p.span(waves)
    f = target / (hi - lo)
    tau, sigma = p.tau.copy(), p.sigma.copy()
    # (the QRS slots are contiguous: a slice, the same products as a fancy index, 3x cheaper)
    idx = slice(QRS_WAVES[0], QRS_WAVES[-1] + 1) if tuple(waves) == QRS_WAVES else list(waves)
    tau[:, idx] *= f
    sigma[:, idx] *= f
    return p.replace(tau=tau, sigma=sigma)


def _stretch_12lead(p: Patient, target: float) -> Patient:
    """A bundle-branch block's criterion is read on the 12 standard leads, whose velocity
    weights its slow forces differently from the VCG's (their QRS measured up to 15 ms, an
    LBBB's slurred one up to 80 ms, shorter): the QRS is stretched on until the 12-lead
    global QRS as a band-limited delineator sees it (:func:`qrs12`) lasts ``target`` s."""
    for _ in range(4):
        q12 = qrs12(p)
        if q12 >= target:
            break
        lo, hi = p.span(QRS_WAVES)
        p = _stretch(p, QRS_WAVES, (hi - lo) * min(target / max(q12, 1e-3), 1.5))
    return p


def _velocity_trough(p: Patient) -> float:
    """Deepest mid-QRS dip of the 12-lead spatial velocity, relative to its peak, as a
    0.5-40 Hz display shows it (Gaussians widened by ``prior.BAND_SIGMA``), 1-kHz grid: the
    lowest velocity between the first and the last of its local maxima that reach
    QRS_VELOCITY_REL of the peak (1.0 when there is one such maximum: no dip).

    The dip is read between the velocity maxima, not between the first and last samples
    above QRS_VELOCITY_REL: those two edge samples sit at QRS_VELOCITY_REL of the peak by
    construction, so a minimum taken over them never exceeds ~0.15 and no beat could
    reach LBBB_MIN_TROUGH (0 of 300 LBBB draws did before this was fixed)."""
    if _lead_kernels():
        return float(_beat_kernels.trough_rel_kernel(_trough_velocity_fast(p), QRS_VELOCITY_REL))
    return _trough_rel_numpy(_trough_velocity_numpy(p))


def _trough_rel_numpy(vel) -> float:
    """:func:`_velocity_trough`'s dip of a velocity ``vel`` (the twin of
    ``_beat_kernels.trough_rel_kernel``)."""
    top = vel.max()
    pk = np.flatnonzero((vel[1:-1] > vel[:-2]) & (vel[1:-1] >= vel[2:]) & (vel[1:-1] >= QRS_VELOCITY_REL * top)) + 1
    if pk.size < 2:
        return 1.0
    return float(vel[pk[0]:pk[-1] + 1].min() / top)


_TROUGH_T = np.arange(-0.15, 0.25, 1e-3)  # _velocity_trough's grid
_TROUGH_T.flags.writeable = False


def _trough_velocity_numpy(p: Patient) -> np.ndarray:
    """:func:`_velocity_trough`'s 12-lead velocity of the band-limited QRS (the NumPy twin of
    :func:`_trough_velocity_fast`)."""
    from .prior import BAND_SIGMA
    from .realism import lead_matrix

    se = np.sqrt(p.sigma ** 2 + BAND_SIGMA ** 2)
    b = Patient(p.tau, se, p.amp * p.sigma / se)
    return np.linalg.norm(np.diff(lead_matrix() @ b.render(_TROUGH_T, QRS_WAVES), axis=1), axis=0)


def _trough_velocity_fast(p: Patient) -> np.ndarray:
    """:func:`_trough_velocity_numpy` in one kernel call (``_beat_kernels.velocity_trough_kernel``;
    only where :func:`_lead_kernels` holds)."""
    from .prior import BAND_SIGMA

    vel = np.empty(_TROUGH_T.shape[0] - 1)
    _beat_kernels.velocity_trough_kernel(p.tau, p.sigma, p.amp, BAND_SIGMA ** 2, _index_array(QRS_WAVES),
                                         _REPOL_MASK, _TROUGH_T, _lead_matrix_c(), _render_exp_table(), vel)
    return vel


@lru_cache(maxsize=1)
def _lead_matrix_c() -> np.ndarray:
    """``realism.lead_matrix()`` as the kernels take it (C-contiguous, read-only)."""
    from .realism import lead_matrix

    m = np.ascontiguousarray(lead_matrix(), dtype=np.float64)
    m.flags.writeable = False
    return m


@lru_cache(maxsize=1)
def _lead_kernels() -> bool:
    """Whether the 12-lead measure kernels (``_beat_kernels.t_end12_kernel``,
    ``velocity_trough_kernel``) give :func:`_t_end12` and :func:`_velocity_trough`'s NumPy
    code bit for bit here: the render's inline ``exp`` is checked (:func:`_render_exp_table`),
    ``M @ v``'s rounding is OpenBLAS's ``dgemm`` FMA chain (``lead_magnitude_kernel`` against
    ``np.linalg.norm(M @ v, axis=0)`` on grids of 2-1,000 samples whose magnitudes span
    eight decades), and both measures on the default beat and ten jittered ones; checked
    once per process."""
    if _render_exp_table() is None:
        return False
    M = _lead_matrix_c()
    rng = np.random.default_rng(20261207)
    for n in (2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100, 257, 399, 1000):
        v = rng.standard_normal((3, n)) * 10.0 ** rng.uniform(-6.0, 2.0, (1, n))
        got = np.empty(n)
        _beat_kernels.lead_magnitude_kernel(M, v, got)
        if got.tobytes() != np.linalg.norm(M @ v, axis=0).tobytes():
            return False
    base = default_patient()
    beats = [base]
    for _ in range(10):
        beats.append(Patient(base.tau + rng.normal(0.0, 0.004, base.tau.shape),
                             base.sigma * np.exp(rng.normal(0.0, 0.2, base.sigma.shape)),
                             base.amp + rng.normal(0.0, 0.1, base.amp.shape)))
    for b in beats:
        got = _t_end12_fast(b)
        if got is None or got != _t_end12_numpy(b):
            return False
        if _trough_velocity_fast(b).tobytes() != _trough_velocity_numpy(b).tobytes():
            return False
    return True


def _rotation(u, v):
    """The rotation (3, 3) turning unit vector ``u`` onto unit vector ``v`` about their
    common normal (Rodrigues' formula; a half turn about an axis normal to ``u`` when
    ``v = -u``)."""
    c = float(u @ v)
    # np.cross(u, v) of two 3-vectors: its products and differences in its order, on floats
    # (np.cross costs ~20 us of NumPy calls)
    u0, u1, u2 = float(u[0]), float(u[1]), float(u[2])
    v0, v1, v2 = float(v[0]), float(v[1]), float(v[2])
    w = np.array([u1 * v2 - u2 * v1, u2 * v0 - u0 * v2, u0 * v1 - u1 * v0])
    s = _norm(w)
    if s < 1e-12:
        if c > 0:
            return np.eye(3)
        n = _unit(np.cross(u, np.eye(3)[int(np.argmin(np.abs(u)))]))
        return 2.0 * np.outer(n, n) - np.eye(3)
    k = w / s
    K = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + s * K + (1.0 - c) * (K @ K)


def _t_end12(p: Patient, rr=1.0, fs=2000.0) -> float:
    """End (s from R) of the repolarisation (ST + T slots) at interval ``rr`` on the 12
    standard leads: the tangent method (as :meth:`Patient.t_end`) on their spatial
    magnitude, the global T end a 12-lead reading takes (the VCG's magnitude weighs the
    axes otherwise). At RR = 1 s and 2 kHz in one kernel call where :func:`_lead_kernels`
    holds (twin: :func:`_t_end12_numpy`)."""
    if float(rr) == 1.0 and float(fs) == 2000.0 and _lead_kernels():
        got = _t_end12_fast(p)
        if got is not None:
            return got
    return _t_end12_numpy(p, rr, fs)


def _t_end12_fast(p: Patient):
    """:func:`_t_end12` at RR = 1 s, 2 kHz by ``_beat_kernels.t_end12_kernel``; None where
    the kernel leaves the case to the NumPy code (a silent group, fewer than 2 samples)."""
    st, end = _beat_kernels.t_end12_kernel(p.tau, p.sigma, p.amp, _index_array(REPOL), _REPOL_MASK, 2000.0,
                                           _lead_matrix_c(), _render_exp_table())
    return float(end) if st == 0 else None


def _t_end12_pair(p: Patient, q: Patient) -> tuple[float, float]:
    """``(_t_end12(p), _t_end12(q))`` of two beats whose timing is equal (``q`` a turn of
    ``p``'s amplitudes): in one kernel call sharing the Gaussians where :func:`_tinv_kernels`
    holds and both ends are found there (``_beat_kernels.t_end12_pair_kernel``)."""
    if _lead_kernels() and _tinv_kernels():
        out = np.empty(2)
        if _beat_kernels.t_end12_pair_kernel(p.tau, p.sigma, p.amp, q.amp, _index_array(REPOL), _REPOL_MASK,
                                             2000.0, _lead_matrix_c(), _render_exp_table(), out) == 0:
            return float(out[0]), float(out[1])
    return _t_end12(p), _t_end12(q)


def _t_end12_numpy(p: Patient, rr=1.0, fs=2000.0) -> float:
    """:func:`_t_end12`'s NumPy code (the oracle of ``t_end12_kernel``)."""
    from .realism import lead_matrix

    t, v = p.track(REPOL, rr, fs)
    m = np.linalg.norm(lead_matrix() @ v, axis=0)
    above = np.flatnonzero(m >= 0.001 * m.max())
    t, m = t[above[0]:above[-1]], m[above[0]:above[-1]]
    k = int(np.argmax(m))
    d = np.gradient(m, 1.0 / fs)
    j = k + int(np.argmin(d[k:]))
    return float(t[j] + m[j] / -d[j]) if d[j] < 0 else float(t[-1])


def _set_waves(tau, sigma, amp, slots, taus, sigmas, vectors):
    """Put shared-timing dipole waves (vector (3,) each) into ``slots``."""
    for s, t_, s_, v in zip(slots, taus, sigmas, vectors):
        tau[:, s] = t_
        sigma[:, s] = s_
        amp[:, s] = v


def _contiguous_st_scale(axis, level, levels=None):
    """Shift (mV) along ``axis`` putting both leads of the best contiguous pair of the 12
    standard leads at >= their level (inf if no pair sees the axis positively).

    Parameters
    ----------
    axis : ndarray (3,)
        Unit direction of the shift.
    level : float
        Level (mV) every lead must reach, unless ``levels`` is given.
    levels : sequence of 12 float, optional
        Per-lead levels (mV) in ``realism.LEADS`` order (STE: ``classes.ste_lead_levels``).

    Returns
    -------
    float
        The smallest shift (mV) over the contiguous pairs, or inf.
    """
    from .realism import CONTIGUOUS, LI, lead_matrix

    u = lead_matrix() @ axis
    if levels is None:
        best = max(min(u[LI[a]], u[LI[b]]) for a, b in CONTIGUOUS)
        return level / best if best > 0 else np.inf
    need = [max(levels[LI[a]] / u[LI[a]], levels[LI[b]] / u[LI[b]])
            for a, b in CONTIGUOUS if u[LI[a]] > 0 and u[LI[b]] > 0]
    return min(need) if need else np.inf


@lru_cache(maxsize=1)
def _ste_levels():
    """STE's per-lead build levels (mV, ``realism.LEADS`` order): the class criterion's
    cut-points (``classes.ste_lead_levels``: 0.10 mV, V2-V3 0.25 mV) + 0.05 mV."""
    from .classes import ste_lead_levels
    from .realism import LEADS

    return ste_lead_levels(LEADS, margin=0.05)


def _best_pair_direction(axis, levels=None):
    """Unit mean lead direction (rows of the 12-lead matrix) of the contiguous pair whose
    weaker lead sees ``axis`` best (relative to its level in ``levels``, per lead in
    ``realism.LEADS`` order, when given)."""
    from .realism import CONTIGUOUS, LI, lead_matrix

    M = lead_matrix()
    u = M @ axis
    if levels is not None:
        u = u / np.asarray(levels, dtype=float)
    a, b = max(CONTIGUOUS, key=lambda ab: min(u[LI[ab[0]]], u[LI[ab[1]]]))
    return _unit(_unit(M[LI[a]]) + _unit(M[LI[b]]))


def qrs12(p: Patient, rr=1.0) -> float:
    """Global QRS duration (s) of the whole beat on the 12 standard leads as a 0.5-40 Hz
    delineator sees it (``_kernels._qrs12_band``: the connected run of the band-limited
    12-lead spatial velocity above QRS_VELOCITY_REL of its peak)."""
    qrs12_band, M, band = _qrs12_args()
    # the ST/T slots scaled about the QRS onset here (scaled_timing), the kernel's own
    # scale factors all 1.0 (at RR = 1 s the patient's own arrays: scaled_timing's are equal)
    tau, sigma = (p.tau, p.sigma) if float(rr) == 1.0 else scaled_timing(p.tau, p.sigma, rr, p.qrs_onset())
    return float(qrs12_band(np.ascontiguousarray(tau), np.ascontiguousarray(sigma), np.ascontiguousarray(p.amp),
                            _ONES, M, QRS_VELOCITY_REL, band))


@lru_cache(maxsize=1)
def _qrs12_args():
    """:func:`qrs12`'s kernel, the 12-lead matrix as it takes it and ``prior.BAND_SIGMA``
    (imported once: prior imports this module)."""
    from . import _kernels
    from .prior import BAND_SIGMA

    return _kernels._qrs12_band, _lead_matrix_c(), BAND_SIGMA


def _keep_pr(normal: Patient, blocked: Patient) -> Patient:
    """``blocked`` with its P waves moved by as much as its widened QRS starts earlier than
    ``normal``'s. AV conduction is untouched by a bundle-branch block, so the patient keeps
    its PR interval; stretching the QRS about R pulls its onset toward the P wave (LBBB: the
    P ran into the slurred QRS onset and a velocity delineator read one 190-240 ms complex;
    RBBB: the template's PR was 7-35 ms shorter than the patient's)."""
    early = normal.span(QRS_WAVES)[0] - blocked.span(QRS_WAVES)[0]
    if early <= 0:
        return blocked
    tau = blocked.tau.copy()
    tau[:, _P_S] -= early
    return blocked.replace(tau=tau)


#: The lead groups a T-wave inversion is reported in (Rautaharju et al., AHA/ACCF/HRS
#: recommendations part IV, Circulation 2009;119:e241: T inversion judged per lead, in two
#: contiguous leads of an anatomic group; the groups as in Thygesen et al., Fourth Universal
#: Definition of MI, Circulation 2018;138:e618): each territory's contiguous lead pairs.
TINV_TERRITORIES = {
    "inferior": (("II", "aVF"), ("aVF", "III"), ("II", "III")),
    # (not V1-V2 alone: T is normally negative or flat in V1, Rautaharju 2009)
    "anterior": (("V2", "V3"), ("V3", "V4")),
    "lateral": (("aVL", "I"), ("V4", "V5"), ("V5", "V6")),
}
#: Depth (mV) of the inverted T in the weaker lead of the territory's pair: from the
#: criterion's -0.10 mV with a margin for respiratory (up to -8 %) and beat-to-beat
#: amplitude modulation, to the start of "deep" inversion (-0.5 mV, Rautaharju 2009).
TINV_DEPTH_MV = (0.13, 0.45)


@lru_cache(maxsize=None)
def _tinv_pairs(territory: str):
    """A territory's contiguous pairs (names), their two lead rows of the 12-lead matrix
    (pairs, 2, 3), each pair's unit mean lead direction (pairs, 3) and what its two leads
    read of it (pairs, 2)."""
    from .realism import LI, lead_matrix

    M = lead_matrix()
    pairs = TINV_TERRITORIES[territory]
    rows = np.array([[M[LI[a]], M[LI[b]]] for a, b in pairs])
    units = np.array([_unit(_unit(r[0]) + _unit(r[1])) for r in rows])
    lu = np.einsum("pkj,pj->pk", rows, units)
    rows.flags.writeable = units.flags.writeable = lu.flags.writeable = False
    return pairs, rows, units, lu


def _tinv_shortfall_numpy(p: Patient, amp, q1, rows, rows_u, depth):
    """How far (mV, along the pair's own reading ``rows_u``) the pair of lead rows ``rows``
    (2, 3) of ``p`` with amplitudes ``amp`` is from a T at ``-depth`` mV: each lead's largest
    deflection from ``q1 + 80 ms`` (the repolarisation's :meth:`Patient.track` at 500 Hz),
    the larger of the two; None where the repolarisation is silent or has no such sample
    (the twin of :func:`_tinv_shortfall_fast`)."""
    tr = Patient._trusted(p.tau, p.sigma, amp.copy()).track(REPOL, fs=500.0)  # (a turn of finite values)
    if tr is None:
        return None
    w = rows @ tr[1][:, tr[0] >= q1 + 0.08]
    if w.shape[1] == 0:
        return None
    ext = w[np.arange(2), np.argmax(np.abs(w), axis=1)]
    return float(np.max((ext + depth) / rows_u))


def _tinv_shortfall_fast(p: Patient, q1, rows, rows_u, depth):
    """:func:`_tinv_shortfall_numpy` of ``p``'s timing as a function of the amplitudes: the
    grid and its Gaussians from ``q1 + 80 ms`` computed once (``_beat_kernels.slot_exps_kernel``),
    ``short_of(amp)`` one ``tinv_shortfall_kernel`` call, ``turn(t_pk, u, need, u_pk, n_pk,
    repol, amp)`` a whole turn of :func:`_territorial_t_inversion` and its shortfall in one
    ``tinv_turn_kernel`` call (its status; ``res`` = shortfall, ``|t_new|``). None (the NumPy
    code runs) where fewer than 2 samples lie there (``rows @ v`` of one column is a
    ``gemv``, rounded otherwise)."""
    ia = _index_array(REPOL)
    lo, hi, _ = _beat_kernels.bounds_kernel(p.tau, p.sigma, p.amp, ia, 1.0, _REPOL_MASK, 0.0)
    t = np.arange(lo, hi, 1.0 / 500.0)
    t = np.ascontiguousarray(t[t >= q1 + 0.08])
    n = t.shape[0]
    if n < 2:
        return None
    xs, g = np.empty((3, ia.shape[0], n)), np.empty((3, ia.shape[0], n))
    _beat_kernels.slot_exps_kernel(t, p.tau, p.sigma, ia, _render_exp_table(), xs, g)
    rows, rows_u, v = np.ascontiguousarray(rows), np.ascontiguousarray(rows_u), np.empty((3, n))
    depth = float(depth)
    res = np.empty(2)
    dot = _dot3_form()
    dot = _beat_kernels.DOT3_PLAIN if dot is None else dot  # (turn is used only where _tinv_kernels holds)

    def short_of(amp):
        st, short = _beat_kernels.tinv_shortfall_kernel(xs, g, amp, ia, rows, rows_u, depth, v)
        return None if st else float(short)

    def turn(t_pk, u, need, u_pk, n_pk, repol, amp):
        return _beat_kernels.tinv_turn_kernel(t_pk, u, float(need), u_pk, float(n_pk), repol, amp, xs, g, ia,
                                              rows, rows_u, depth, v, res, dot)

    return SimpleNamespace(short_of=short_of, turn=turn, res=res)


@lru_cache(maxsize=1)
def _dot3_form():
    """The form of ``_beat_kernels._dot3`` that gives NumPy's ``u @ v`` and ``u.dot(u)`` of
    3-vectors (OpenBLAS's ``ddot``) bit for bit here (``DOT3_PLAIN`` on its Haswell/Zen
    kernels, ``DOT3_FMA`` on SkylakeX), on 400 random pairs whose sizes span eight decades;
    None if neither (the NumPy code runs); checked once per process."""
    rng = np.random.default_rng(20261208)
    cases = [tuple(rng.standard_normal(3) * 10.0 ** rng.uniform(-4.0, 4.0) for _ in range(2)) for _ in range(400)]
    for form in (_beat_kernels.DOT3_PLAIN, _beat_kernels.DOT3_FMA):
        if all(float(a @ b) == _beat_kernels.dot3_kernel(a, b, form)
               and float(a.dot(a)) == _beat_kernels.dot3_kernel(a, a, form) for a, b in cases):
            return form
    return None


@lru_cache(maxsize=1)
def _tinv_kernels() -> bool:
    """Whether :func:`_tinv_shortfall_fast` gives :func:`_tinv_shortfall_numpy` bit for bit
    here: the render's inline ``exp`` is checked (:func:`_render_exp_table`), ``rows @ v``'s
    rounding is OpenBLAS's ``dgemm`` FMA chain (every territory pair's rows on 2-400 samples
    whose values span eight decades), and the shortfall of the default beat and ten jittered
    ones, each turned at random; 3-vector dots in :func:`_dot3_form`'s form; checked once per
    process."""
    if _render_exp_table() is None or _dot3_form() is None:
        return False
    dot = _dot3_form()
    rng = np.random.default_rng(20261207)
    pairs = [r for terr in TINV_TERRITORIES for r in _tinv_pairs(terr)[1]]
    for n in (2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100, 257, 400):
        for rows in pairs:
            v = rng.standard_normal((3, n)) * 10.0 ** rng.uniform(-6.0, 2.0, (1, n))
            got = np.empty((2, n))
            _beat_kernels.pair_leads_kernel(np.ascontiguousarray(rows), v, got)
            if got.tobytes() != (rows @ v).tobytes():
                return False
    # the turn's products: 3-vector dots as ddot rounds them, 3x3 products as dgemm (and whole
    # turns against the NumPy code, below)
    for _ in range(200):
        a, b = rng.standard_normal(3) * 10.0 ** rng.uniform(-3.0, 1.0), rng.standard_normal(3)
        A, B = rng.standard_normal((3, 3)), rng.standard_normal((3, 3))
        got = np.empty((3, 3))
        _beat_kernels.pair_leads_kernel(A, B, got)
        if (float(a @ b) != _beat_kernels.dot3_kernel(a, b, dot)
                or float(a.dot(a)) != _beat_kernels.dot3_kernel(a, a, dot) or got.tobytes() != (A @ B).tobytes()):
            return False
    base = default_patient()
    for k in range(11):
        p = base if k == 0 else Patient(base.tau + rng.normal(0.0, 0.004, base.tau.shape),
                                        base.sigma * np.exp(rng.normal(0.0, 0.2, base.sigma.shape)),
                                        base.amp + rng.normal(0.0, 0.1, base.amp.shape))
        for terr in TINV_TERRITORIES:
            _, rows_all, _, lu = _tinv_pairs(terr)
            for rows, rows_u in zip(rows_all, lu):
                q1 = p.span(QRS_WAVES)[1]
                depth = rng.uniform(*TINV_DEPTH_MV)
                short_of = _tinv_shortfall_fast(p, q1, rows, rows_u, depth)
                amp = p.amp.copy()
                amp[:, list(REPOL)] = rng.normal(0.0, 0.3, (3, 3)) @ amp[:, list(REPOL)]
                want = _tinv_shortfall_numpy(p, amp, q1, rows, rows_u, depth)
                if short_of is None or short_of.short_of(amp) != want:
                    return False
                # a whole turn against the NumPy code
                t_pk = p.peak_vector(T_WAVES)
                u, need = _unit(rng.standard_normal(3)), float(rng.uniform(0.0, 0.5))
                repol = p.amp[:, _REPOL_S].copy()
                a_fast, a_np = p.amp.copy(), p.amp.copy()
                st = short_of.turn(t_pk, u, need, _unit(t_pk), _norm(t_pk), repol, a_fast)
                t_new = t_pk - need * u
                a_np[:, _REPOL_S] = (_rotation(_unit(t_pk), _unit(t_new)) * (_norm(t_new) / _norm(t_pk))) @ repol
                want = _tinv_shortfall_numpy(p, a_np, q1, rows, rows_u, depth)
                if (st != 0 or a_fast.tobytes() != a_np.tobytes() or float(short_of.res[0]) != want
                        or float(short_of.res[1]) != _norm(t_new)):
                    return False
        turned = Patient(p.tau, p.sigma, amp)
        out = np.empty(2)
        if (_beat_kernels.t_end12_pair_kernel(p.tau, p.sigma, p.amp, turned.amp, _index_array(REPOL), _REPOL_MASK,
                                              2000.0, _lead_matrix_c(), _render_exp_table(), out) != 0
                or (float(out[0]), float(out[1])) != (_t_end12_numpy(p), _t_end12_numpy(turned))):
            return False
    return True


def _territorial_t_inversion(p: Patient, rng, amp, tau, prm) -> tuple[Patient, dict]:
    """T inverted in one anatomic territory (:data:`TINV_TERRITORIES`), the other leads'
    T kept as the patient's own: a regional repolarisation change adds a T force pointing
    away from the region, so the T vector is moved from the patient's ``t`` to ``t - a u``
    (``u``: the unit mean direction of the territory's contiguous pair that the smallest
    ``a`` inverts; ``a``: both leads of that pair at -depth).

    Until 2026-12-07 every TINV beat turned its T against the QRS axis (QRS-T angle
    >= 125 deg), inverting T in I, II and V2-V6 at once. The shared real T-inversion
    records (CinC 2021 JS20007, JS20010) invert it in a few leads (V3; V6 with III, aVF)
    and keep T upright in I, II, V2 and V5, where the global turn read -0.11...-0.42 mV.
    """
    t_pk = p.peak_vector(T_WAVES)
    names = tuple(TINV_TERRITORIES)
    territory = names[int(rng.integers(len(names)))]
    depth = rng.uniform(*TINV_DEPTH_MV)
    pairs, rows_all, units, lu = _tinv_pairs(territory)
    # per pair, both leads at <= -depth: a >= (l . t + depth) / (l . u) for each lead l (l . u > 0:
    # two contiguous leads' mean direction sees both); the pair the smallest change inverts
    lt = rows_all @ t_pk                                   # (pairs, 2)
    needs = np.maximum(((lt + depth) / lu).max(axis=1), 0.0)
    k = int(np.argmin(needs))
    need, u, pair, rows, rows_u = float(needs[k]), units[k], pairs[k], rows_all[k], lu[k]
    _, q1 = p.span(QRS_WAVES)
    repol = amp[:, _REPOL_S].copy()
    # the shortfall below as one kernel call per turn where _tinv_kernels holds (the turns
    # change only amplitudes: the Gaussians are computed once)
    fast = _tinv_shortfall_fast(p, q1, rows, rows_u, depth) if _tinv_kernels() else None
    u_pk, n_pk = _unit(t_pk), _norm(t_pk)
    for _ in range(6):
        # (where the kernels hold, the turn and its shortfall below in one call: fast.turn)
        st = 2 if fast is None else fast.turn(t_pk, u, need, u_pk, n_pk, repol, amp)
        if st == 2:
            t_new = t_pk - need * u
            # The direction and size of repolarisation change, not its time course (in primary T
            # inversion the QT stays normal or near it): the patient's own ST-T waves (slots 8-10,
            # their centres and widths on every axis) are turned from t onto t_new by the smallest
            # turn and scaled to its size (the template's fixed T used before 2026-12-06 ended
            # 36-68 ms after the patient's own T).
            t_mv = _norm(t_new)
            rot = _rotation(u_pk, _unit(t_new)) * (t_mv / n_pk)
            amp[:, _REPOL_S] = rot @ repol
            # Each axis has its own T timing, so a lead near the new T's null can read a biphasic
            # T whose larger lobe is upright although the peak vector projects negative: the pair's
            # T as a reader takes it (the largest deflection from 80 ms after the QRS end) must
            # reach -depth, else the change grows by the shortfall.
            short = fast.short_of(amp) if fast is not None else _tinv_shortfall_numpy(p, amp, q1, rows, rows_u, depth)
        else:
            short, t_mv = (None if st == 1 else float(fast.res[0])), float(fast.res[1])
        if short is None or short <= 0.0:
            break
        need += short
    q = p.replace(amp=amp)
    # each axis keeps its own centres and widths, so the turn reweights them and moves the
    # loop's end: the turned repolarisation is moved in time to end on the 12 leads where
    # the patient's does (at RR 1 s; both scale alike)
    e_p, e_q = _t_end12_pair(p, q)
    tau[:, _REPOL_S] += e_p - e_q
    prm.update(t_mV=t_mv, t_inversion_mV=float(depth),
               t_territory=territory, t_pair="-".join(pair))
    return q.replace(tau=tau), prm


def apply_morphology(p: Patient, morphology: str, rng) -> tuple[Patient, dict]:
    """Turn a normal patient into one of class ``morphology`` (see ``classes.CLASSES``).

    Returns the new patient and the drawn class parameters.
    """
    prm = {}
    if morphology == "NORM":
        return p, prm
    amp, tau, sigma = p.amp.copy(), p.tau.copy(), p.sigma.copy()
    # the normal beat's QRS axis and QRS / T peak sizes, measured only by the classes that
    # use them (each costs a render of the template)
    q_slots = list(QRS_WAVES)
    if morphology == "LBBB":
        r_mag = _norm(p.peak_vector(QRS_WAVES))
        t_mag = _norm(p.peak_vector(T_WAVES))
        # Activation without the left bundle (Surawicz et al., AHA/ACCF/HRS part III,
        # Circulation 2009;119:e235; the LBBB spatial VCG, Chou's Electrocardiography in
        # Clinical Practice ch. 5): the septum is activated from the right bundle, right to
        # left, so the initial forces point leftward and (with the RV wall) anteriorly -- no
        # septal q in I, V6, a small r or none in V1; then, after slow transseptal spread,
        # the LV free wall leftward-posterior (the broad R of I, V6, the deep S of V1), last
        # the posterobasal LV. The loop turns from left-anterior to left-posterior while its
        # two halves meet: V6 notches (two maxima) and the 12 leads never pause together.
        # (A septal force along the free wall's direction made a straight, out-and-back loop
        # whose spatial velocity fell to 0.03-0.11 of its peak at the apex.)
        # Drawn again (up to 10 times) while the 12-lead spatial velocity dips under
        # LBBB_MIN_TROUGH of its peak between its first and last maxima: such a pause splits
        # the QRS for a velocity delineator (two 50-ms halves measured instead of one)
        for _ in range(10):
            qrs = rng.uniform(0.13, 0.17)
            mag = r_mag * rng.uniform(1.0, 1.4)
            # LV free wall: left-posterior (Frank +X, +Z); septum: left-anterior (+X, -Z)
            d = _unit(np.array([0.75, rng.uniform(-0.1, 0.3), rng.uniform(0.5, 0.8)]))
            sep = _unit(np.array([0.8, rng.uniform(-0.1, 0.3), -rng.uniform(0.2, 0.5)]))
            amp_b, tau_b, sig_b = amp.copy(), tau.copy(), sigma.copy()
            amp_b[:, _QRS_S] = 0.0
            _set_waves(tau_b, sig_b, amp_b, q_slots[:3], [-0.03, 0.0, 0.025], [0.014, 0.014, 0.012],
                       [rng.uniform(0.5, 0.8) * mag * sep, mag * d,
                        0.15 * mag * _unit(np.array([0.3, -0.3, 1.0]))])
            # secondary ST-T changes, discordant to the QRS
            tt = max(t_mag, 0.25)
            _set_waves(tau_b, sig_b, amp_b, [8, 9, 10], [0.12, 0.24, 0.30], [0.05, 0.06, 0.04],
                       [-rng.uniform(0.05, 0.15) * d, -0.6 * tt * d, -0.4 * tt * d])
            q = _stretch_12lead(_stretch(p.replace(amp=amp_b, tau=tau_b, sigma=sig_b), QRS_WAVES, qrs), qrs)
            if _velocity_trough(q) >= LBBB_MIN_TROUGH:
                break
        q = _keep_pr(p, q)
        prm.update(qrs_s=qrs, r_mV=mag)
        return q, prm
    if morphology == "RBBB":
        axis = p.qrs_axis()
        r_mag = _norm(p.peak_vector(QRS_WAVES))
        qrs = rng.uniform(0.125, 0.15)
        # normal initial forces (septal, main left-inferior), then late slow terminal forces
        # to the right and anterior (Frank -X, -Z) that widen the QRS
        # (at least 0.4 of the main vector, so the slow terminal forces stay well above the
        # 15 % spatial-velocity threshold that delineates the QRS, whatever the R size)
        term = max(rng.uniform(0.5, 0.9), 0.4 * r_mag) * _unit(np.array([-0.7, rng.uniform(-0.2, 0.2), -0.7]))
        amp[:, _QRS_S] = 0.0
        _set_waves(tau, sigma, amp, q_slots[:3], [-0.03, -0.005, 0.03], [0.009, 0.011, 0.016],
                   [0.15 * r_mag * _unit(np.array([-0.4, -0.2, -0.9])), r_mag * axis, term])
        q = _stretch_12lead(_stretch(p.replace(amp=amp, tau=tau, sigma=sigma), QRS_WAVES, qrs), qrs)
        q = _keep_pr(p, q)
        prm.update(qrs_s=qrs, terminal_mV=_norm(term))
        return q, prm
    if morphology in ("STE", "STD"):
        axis = p.qrs_axis()
        st = rng.uniform(0.15, 0.30) if morphology == "STE" else -rng.uniform(0.15, 0.25)
        # the clinical criterion is per lead (>= 0.1 mV elevation, in V2-V3 >= 0.25 mV
        # (classes.STE_ST_MIN_V2V3) / >= 0.05 mV depression in two contiguous standard
        # leads, Rautaharju et al. 2009): the shift along the QRS axis is made large enough
        # that its projection meets it with a margin (+0.05 / +0.03 mV: the ST-T slope
        # around J + 60 ms moves a steep lead's measured level by a few hundredths of a mV)
        # in the best contiguous pair of the project's 12 leads
        level = 0.15 if morphology == "STE" else 0.08
        levels = _ste_levels() if morphology == "STE" else None
        d = axis
        need = _contiguous_st_scale(d, level, levels)
        if need > 0.5:
            # no contiguous pair sees the QRS axis well (e.g. a posterior QRS axis): the
            # injury current is turned toward the territory whose pair sees it best
            # (leads' mean direction), keeping >= 60 % of it along the QRS axis
            w = _best_pair_direction(axis, levels)
            for lam in np.linspace(0.25, 2.0, 8):
                d = _unit(axis + lam * w)
                need = _contiguous_st_scale(d, level, levels)
                if need <= 0.5 or d @ axis < 0.6:
                    break
            if d @ axis < 0.6:
                d = _unit(axis + (lam - 0.25) * w)
                need = _contiguous_st_scale(d, level, levels)
        # the shift along the QRS axis stays >= 0.15 mV (the class's own criterion)
        st = float(np.sign(st) * max(abs(st), min(need, 0.6), 0.15 / float(d @ axis)))
        st = float(np.sign(st) * min(abs(st), 0.6))
        # broad plateau from the J point into the T wave, along ``d``, sized so the whole
        # beat at J + 60 ms sits ``st`` from baseline along that direction
        _, q1 = p.span(QRS_WAVES)
        amp[:, 8] = 0.0
        here = float(p.replace(amp=amp).render([q1 + 0.06])[:, 0] @ d)
        _set_waves(tau, sigma, amp, [8], [q1 + 0.06], [0.05], [(st - here) * d])
        prm.update(st_mV=st)
        return p.replace(amp=amp, tau=tau, sigma=sigma), prm
    if morphology == "TINV":
        return _territorial_t_inversion(p, rng, amp, tau, prm)
    if morphology == "LVH":
        # peak >= 3.0 mV in the template: > 2.5 mV in every beat despite respiratory (up to
        # -8 %) and beat-to-beat (3 % per wave) amplitude modulation
        # the hypertrophied left-ventricular wall adds leftward and posterior forces (X, Z:
        # the voltage criteria read V1-V6 and aVL; the frontal axis turns left; Hancock et al.,
        # AHA/ACCF/HRS recommendations part V, Circulation 2009;119:e251); the inferior (Y)
        # forces keep their size (the four shared real LVH records: R in II 0.2-1.0 mV)
        f = rng.uniform(1.8, 2.6)
        amp[0, _QRS_S] *= f
        amp[2, _QRS_S] *= f
        p = p.replace(amp=amp)
        peak = _norm(p.peak_vector(QRS_WAVES))
        if peak < 3.0:  # the spatial peak still >= 3.0 mV: scale all three axes up to it
            amp[:, _QRS_S] *= 3.0 / max(peak, 1e-6)
            f *= 3.0 / max(peak, 1e-6)
            p = p.replace(amp=amp)
        q0, q1 = p.span(QRS_WAVES)
        # hypertrophy prolongs activation slightly: the patient's own QRS 5-20 % longer
        # (the four shared real LVH records measure 56-80 ms, as normal beats do, by the
        # global 12-lead QRS; an absolute 90-105 ms target made every LVH beat 92-102 ms)
        target = (q1 - q0) * (1.05 + 0.15 * rng.uniform())
        if target < CLASSES["LVH"].limits["qrs"][1] - 0.015:
            s = _stretch(p, QRS_WAVES, target)
            # stretching about R moves the QRS onset earlier: move P with it (same PR, and
            # the P end does not run into the QRS onset)
            tau = s.tau.copy()
            tau[:, _P_S] -= q0 - s.span(QRS_WAVES)[0]
            s = s.replace(tau=tau)
            # kept only if its whole beat stays robustly delineable within the LVH QRS
            # limits (stretching can detach a small initial lobe from the QRS)
            if robust_beat(s, qrs=CLASSES["LVH"].limits["qrs"]):
                p = s
        prm.update(voltage_factor=f)
        return p, prm
    raise ConfigError(f"unknown morphology {morphology!r}")


def _corrcoef01(X, x, y) -> float:
    """``np.corrcoef(x, y)[0, 1]`` of two float64 vectors of one length ``n >= 2`` by the
    same NumPy operations in its order (``np.cov``: the two rows stacked into ``X`` (2, n),
    their means subtracted, ``np.dot`` of ``X`` and ``X.T``, times ``1 / (n - 1)``; then
    divided by the two deviations in turn and clipped to [-1, 1]) without its argument
    handling (~4x faster); ``np.corrcoef`` itself where a deviation is not positive."""
    X[0] = x
    X[1] = y
    n = X.shape[1]
    X -= (np.add.reduce(X, axis=1) / n)[:, None]
    c = np.dot(X, X.T)
    inv = 1.0 / (n - 1)
    c00, c01, c11 = float(c[0, 0]) * inv, float(c[0, 1]) * inv, float(c[1, 1]) * inv
    if not (c00 > 0.0 and c11 > 0.0):  # (a zero or NaN deviation: NumPy's own warnings and values)
        return float(np.corrcoef(x, y)[0, 1])
    r = c01 / math.sqrt(c00) / math.sqrt(c11)
    return min(max(r, -1.0), 1.0)


def ectopic_ventricular(p: Patient, rng) -> tuple[Patient, dict]:
    """A premature ventricular beat of the same heart: no P, wide QRS, discordant T.

    The ectopic focus activates the ventricles along another path, so its QRS-T differs
    from the sinus beat's in the 12 standard leads: directions whose 12-lead complex
    (-60...+100 ms) correlates > PVC_MAX_CORR with the sinus one are redrawn (up to 20
    times; a drawn direction close to the sinus axis would make a wide but look-alike
    beat).
    """
    from .realism import lead_matrix

    M = lead_matrix()
    t = np.arange(-0.06, 0.10, 0.002)
    ref = (M @ p.render(t)).ravel()
    X = np.empty((2, ref.shape[0]))  # _corrcoef01's work rows
    for _ in range(20):
        qrs = rng.uniform(0.14, 0.17)
        mag = _norm(p.peak_vector(QRS_WAVES)) * rng.uniform(1.2, 1.8)
        d = _unit(rng.normal(size=3))
        amp = np.zeros((3, NW))
        tau, sigma = p.tau.copy(), p.sigma.copy()
        q = list(QRS_WAVES)
        # one broad, slowly turning activation front (overlapping waves: no notch in velocity)
        _set_waves(tau, sigma, amp, q[:3], [-0.02, 0.0, 0.02], [0.016, 0.016, 0.016],
                   [0.5 * mag * _unit(d + 0.3 * rng.normal(size=3)), mag * d,
                    0.4 * mag * _unit(d + 0.3 * rng.normal(size=3))])
        _set_waves(tau, sigma, amp, [9, 10], [0.26, 0.32], [0.06, 0.04], [-0.35 * mag * d, -0.15 * mag * d])
        e = _stretch(Patient(tau, sigma, amp), QRS_WAVES, qrs)
        if _corrcoef01(X, (M @ e.render(t)).ravel(), ref) < PVC_MAX_CORR:
            break
    return e, {"pvc_qrs_s": qrs, "pvc_r_mV": mag}


def ectopic_atrial(p: Patient, rng) -> tuple[Patient, dict]:
    """A premature atrial beat: ectopic (low atrial) focus → P vector inverted, same QRS-T."""
    amp = p.amp.copy()
    f = rng.uniform(0.6, 1.0)
    amp[:, list(P_WAVES)] *= -f
    return p.replace(amp=amp), {"pac_p_scale": -f}
