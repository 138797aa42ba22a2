"""``synthesize``: labeled multi-beat dipole (VCG) records of one patient."""

from __future__ import annotations

import bisect
import math
import threading
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from ..errors import ConfigError
from . import _kernels, _plan_kernels
from .classes import CLASSES, MORPHOLOGY_ALIASES, RHYTHM_ALIASES
from .dipole import DEFAULT_CUTOFF, render_gaussians, render_gaussians_batch
from .model import (
    NW,
    P_WAVES,
    QRS_WAVES,
    REPOL,
    Patient,
    ectopic_atrial,
    ectopic_ventricular,
    robust_beat,
)
from .prior import default_prior, sample_patient
from ._rng_kernels import bitgen_pointers, draws_match
from .rhythm import (_IRFFT_SCALE, NORMAL, SINUS_HR_STD_BPM, _fft_length, _irfft_direct, _irfft_scale, _uniform_matches,
                     beat_schedule, uniform, uniform3)
from .rhythm_prior import draw_af, draw_coupling, read_rhythm_prior_cached

ATRIAL_SLOPE_REL = 0.035  # AF f-wave peak slope vs QRS peak spatial velocity
# typical atrial flutter: atrial rate 250-350 /min; AV conduction patterns and how often
# each is drawn (2:1 the commonest untreated response, 4:1 with AV-nodal drugs or disease,
# odd ratios rare, variable conduction alternating 2:1 and 4:1)
FLUTTER_RATE = (250.0, 350.0)
CONDUCTION_RATIOS = {"2:1": (2,), "3:1": (3,), "4:1": (4,), "2:1/4:1": (2, 4)}
CONDUCTION_PATTERNS = tuple(CONDUCTION_RATIOS)
CONDUCTION_WEIGHTS = {"2:1": 0.35, "3:1": 0.10, "4:1": 0.30, "2:1/4:1": 0.25}
FLUTTER_FR = (0.20, 0.32)  # s: flutter-wave nadir (inferior leads) to the R of its conducted QRS
# flutter-wave amplitude a0 (mV): the saw-tooth's nadir below its mean along the atrial
# direction, whose lead-II gain is ~1.0 (d ~ +Y; Dower II row 0.235, 1.066, -0.132), so a0
# is lead II's negative F-wave component: 0.168 +- 0.051 mV in 136 and 0.118 +- 0.034 mV in
# 22 patients with typical counter-clockwise flutter (Liu et al., Front Cardiovasc Med
# 2021;8:739350), pooled 0.161 +- 0.052 mV, drawn as that normal truncated to +-2 SD
# (0.057-0.265 mV, lead II 0.11-0.53 mV peak to peak; a flutter-wave cut-off of 0.35 mV in
# lead II splits 70 patients in PMID 15851316). The saw-tooth's 70 % descent: the F-wave
# downslope is 73 +- 9 % of the flutter cycle (Sau et al., J Cardiovasc Electrophysiol
# 2017, doi 10.1111/jce.13323)
FLUTTER_AMP = (0.161, 0.052)

# mean atrial directions of AF's f waves and flutter's saw-tooth (Frank X, Y, Z), drawn around
_AF_DIRECTION = np.array([-0.3, 0.4, -0.85])
_AFL_DIRECTION = np.array([0.1, 1.0, 0.2])
_AF_DIRECTION.flags.writeable = False
_AFL_DIRECTION.flags.writeable = False

_REPOL_MASK = np.isin(np.arange(NW), REPOL)
_REPOL_MASK.flags.writeable = False
FIDUCIAL_FS = 2000.0  # Hz, grid of the template fiducials (Patient.track's)
ANNOTATION_KEYS = ("P_onset", "P_peak", "QRS_onset", "R_peak", "QRS_offset", "T_peak", "T_offset")
_CUTOFF = float(DEFAULT_CUTOFF)

# default heart-rate ranges drawn when heart_rate is None (bpm), inside each class's criteria
_HR_RANGE = {"SR": (62.0, 95.0), "SB": (42.0, 57.0), "STACH": (105.0, 145.0), "AF": (70.0, 110.0),
             "PVC": (60.0, 90.0), "PAC": (60.0, 90.0), "IAVB": (55.0, 75.0)}
# (IAVB: at faster rates a PR > 0.2 s puts the P wave on the previous T wave; AF: the mean
# of ~15 independent gamma intervals in a 10-s window scatters by up to ~10 %, so the drawn
# rate stays 10 % inside the class's 60-130 bpm)


@dataclass(frozen=True)
class Beats:
    """A synthesized record.

    Attributes
    ----------
    vcg : ndarray, shape (3, T), float64, mV — dipole in Frank axes (X left, Y feet, Z back)
    fs : float, Hz
    rr : ndarray, shape (n_beats,), s — interval from each beat (R peak in the window) to
        the next beat
    annotations : dict of str -> ndarray (n_beats,) int64 sample indices
        ``P_onset, P_peak, QRS_onset, R_peak, QRS_offset, T_peak, T_offset``; -1 where the
        wave is absent (no P in AF/AFL/PVC beats) or falls outside the record.
    labels : tuple of str — (rhythm class, morphology class), see ``classes.CLASSES``
    params : dict of str -> float | int | str — everything drawn, to store with the record
    beat_types : ndarray (n_beats,) of str — "N" sinus/conducted, "V" ventricular, "A" atrial
    """

    vcg: np.ndarray
    fs: float
    rr: np.ndarray
    annotations: dict
    labels: tuple
    params: dict = field(default_factory=dict)
    beat_types: np.ndarray = field(default_factory=lambda: np.array([], "<U1"))

    @property
    def heart_rate(self) -> float:
        """Mean heart rate over the record, bpm."""
        return float(60.0 / np.mean(self.rr)) if len(self.rr) else float("nan")


_RESOLVED = {}  # (name, kind) -> class name, for str names already resolved


def _resolve(name, aliases, kind):
    if type(name) is str:
        key = _RESOLVED.get((name, kind))
        if key is not None:
            _remember(name, kind, key)
            return key
    key = aliases.get(str(name).lower(), str(name).upper())
    if key not in CLASSES or CLASSES[key].kind != kind:
        raise ConfigError(f"unknown {kind} {name!r}; expected one of "
                          f"{[n for n, c in CLASSES.items() if c.kind == kind]} or {sorted(aliases)}")
    if type(name) is str and len(_RESOLVED) < 256:
        _RESOLVED[(name, kind)] = key
        _remember(name, kind, key)
    return key


def _remember(name, kind, key):
    """``name`` (a str in ``_RESOLVED``) into ``_plan``'s look-up of its kind."""
    if kind == "rhythm":
        _RESOLVED_RHYTHM[name] = key
    elif kind == "morphology":
        _RESOLVED_MORPHOLOGY[name] = key


_RESOLVED_RHYTHM = {}  # str name -> rhythm class, for names already resolved (_plan's look-up)
_RESOLVED_MORPHOLOGY = {}  # the same for morphologies


@dataclass
class _Plan:
    """Everything one record needs before rendering (all random draws done)."""
    r_times: np.ndarray
    types: np.ndarray
    centres: np.ndarray  # s
    widths: np.ndarray  # s
    amps: np.ndarray
    chans: np.ndarray
    fid: np.ndarray  # (n_beats_all, 7) absolute times (s) of ANNOTATION_KEYS, inf if absent
    atrial: tuple | None
    params: dict
    labels: tuple
    valid: bool = True  # every Gaussian finite with a positive width (else render_gaussians says which)
    # the beat table's inputs (_plan_kernels.beat_table_kernel's arguments); a plan made
    # with table=False has only these (centres ... fid None until _table)
    table_args: tuple = ()
    render: tuple = ()  # a sinus plan's sinus_render_kernel arguments (see _plan_sinus)


def _fiducials(p: Patient) -> np.ndarray:
    """Times (s from R at RR = 1 s) of ANNOTATION_KEYS for a beat template; inf if absent.

    Onsets/offsets are where the group's spatial magnitude crosses 5 % of its maximum
    (QRS: spatial velocity at 15 %, ``Patient.span``), T offset by the tangent method
    (``Patient.t_end``); peaks (R_peak: of the QRS) are where the group's magnitude is
    largest, so R_peak is where the QRS peaks even when the beat's timing reference
    (t = 0, the R of the fitted beats) sits elsewhere in a drawn patient. Cached on the
    (immutable) patient. One numba kernel (``_kernels.fiducials_kernel``; its NumPy twin
    runs the ``Patient`` methods named here).
    """
    cached = p.__dict__.get("_fiducials")
    if cached is not None:
        return cached
    out = np.empty(len(ANNOTATION_KEYS))
    _kernels.fiducials_kernel(p.tau, p.sigma, p.amp, FIDUCIAL_FS, out)
    out.flags.writeable = False
    object.__setattr__(p, "_fiducials", out)
    return out


def _patient_params(p: Patient, prefix="patient") -> dict:
    """``p.to_params(prefix)``, cached on the (immutable) patient: a patient reused for
    many records (``synthesize(..., patient=p)``) flattens its 99 floats once."""
    key = "_params_" + prefix
    cached = p.__dict__.get(key)
    if cached is None:
        cached = p.to_params(prefix)
        object.__setattr__(p, key, cached)
    return cached


def _iavb_pr_max(patient, heart_rate, heart_rate_std):
    """Longest PR (s) keeping the P onset 20 ms after the previous beat's ST-T has fallen
    below 2 % of its peak, at the short RR of heart rate + 2 SD."""
    rr_s = 60.0 / (heart_rate + 2.0 * heart_rate_std)
    t_tail = patient.span(REPOL, rr=rr_s, rel=0.02)[1]
    return patient.span(QRS_WAVES)[0] + rr_s - t_tail - 0.02


def _move_p(patient, shift):
    """The patient with its P wave moved ``shift`` s earlier."""
    tau = patient.tau.copy()
    tau[:, list(P_WAVES)] -= shift
    return patient.replace(tau=tau)


def _af_rate_inside_class(rr, r_times, start, duration, floor, params):
    """AF's independent gamma intervals occasionally give a short window a mean rate
    outside the class's range (about 1 record in 1,000: a run of long pauses). Then the
    intervals are scaled, never below the refractory ``floor``, so the window's rate sits
    2 bpm inside it; the factor is stored as ``rhythm.af_rate_scale``."""
    lo, hi = CLASSES["AF"].limits["hr"]
    factor = 1.0
    for _ in range(3):
        inside = (r_times[:-1] >= 0.0) & (r_times[:-1] < duration)
        if not inside.any():
            break
        rate = 60.0 / rr[inside].mean()
        target = min(max(rate, lo + 2.0), hi - 2.0)
        if abs(target - rate) < 1e-9:
            break
        rr = np.maximum(rr * (rate / target), floor)
        factor *= rate / target
        r_times = start + np.concatenate([[0.0], np.cumsum(rr)])
    params["rhythm.af_rate_scale"] = float(factor)
    return rr, r_times


def _ventricular_refractory(patient):
    """Shortest RR (s) whose next QRS onset comes 80 ms after this beat's T end (tangent
    method; the QT scales by RR^(1/3), ``model.scaled_timing``): the ventricles are
    refractory until repolarised, and the T's steep descent must not merge with the next
    QRS onset (a QRS on the T wave would be delineated too wide)."""
    q0 = patient.span(QRS_WAVES)[0]
    qt = patient.t_end() - q0  # at RR = 1 s
    lo, hi = 0.2, 3.0
    for _ in range(40):  # bisection of rr - 0.08 - qt rr^(1/3) = 0 (increasing)
        mid = 0.5 * (lo + hi)
        if mid - 0.08 >= qt * mid ** (1.0 / 3.0):
            hi = mid
        else:
            lo = mid
    return hi


def _plan(duration, fs, rng, heart_rate, rhythm, morphology, patient, prior, heart_rate_std,
          breathing_rate, lf_hf_ratio, beat_jitter, resp_modulation, patient_sampler="auto", table=True,
          rhythm_prior=None, resp_scale=1.0):
    # (comparisons: NaN and inf fail them, as np.isfinite, without its ~0.4 µs a call)
    if not (0 < duration < math.inf):
        raise ConfigError(f"duration must be positive, got {duration!r}")
    if not (0 < fs < math.inf):
        raise ConfigError(f"fs must be positive, got {fs!r}")
    if not isinstance(rng, np.random.Generator):
        raise ConfigError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    if resp_scale != 1.0:
        if not (isinstance(resp_scale, (int, float)) and 0.0 <= resp_scale < math.inf):
            raise ConfigError(f"resp_scale must be a finite number >= 0, got {resp_scale!r}")
        resp_scale = float(resp_scale)
    # (names resolved before: one dict look-up each)
    key = _RESOLVED_RHYTHM.get(rhythm) if type(rhythm) is str else None
    rhythm = key if key is not None else _resolve(rhythm, RHYTHM_ALIASES, "rhythm")
    key = _RESOLVED_MORPHOLOGY.get(morphology) if type(morphology) is str else None
    morphology = key if key is not None else _resolve(morphology, MORPHOLOGY_ALIASES, "morphology")
    params = {"rhythm": rhythm, "morphology": morphology}

    if patient is None:
        patient = sample_patient(rng, morphology=morphology, prior=prior, method=patient_sampler)
        params["patient_source"] = "prior"
        used = prior if prior is not None else default_prior()
        params["patient_sampler"] = ("rejection" if patient_sampler == "rejection" or used.proposal_mean is None
                                     else "proposal")
    else:
        if not isinstance(patient, Patient):
            raise ConfigError(f"patient must be a cardiosim.ode.Patient, got {type(patient).__name__}")
        params["patient_source"] = "given"

    if (rhythm in _SINUS_FAST and heart_rate is None and heart_rate_std is None and breathing_rate is None
            and resp_modulation is None and type(duration) in (float, int) and 0 < lf_hf_ratio < math.inf
            and _sinus_fast()):
        plan = _plan_sinus(duration, fs, rng, rhythm, morphology, patient, lf_hf_ratio, beat_jitter, params,
                           resp_scale)
        if plan is not None:
            return _table(plan) if table else plan

    rhythm_params = {}
    if rhythm == "AF":
        rhythm_params["rr_floor"] = _ventricular_refractory(patient)
    if rhythm == "AFL":
        # atrial cycle length of typical flutter: 250-350 /min (171-240 ms); every QRS is a
        # conducted flutter wave (AV ratio n:1), so the ventricular beats sit on the atrial
        # grid and each F wave keeps its place relative to the QRS it leads to
        flutter_rate = uniform(rng, *FLUTTER_RATE)
        if heart_rate is None:
            # conduction patterns whose shortest RR leaves the ventricles repolarised before
            # the next QRS (as AF's rr_floor); 4:1 at 250-350 /min (RR >= 0.69 s) always does
            floor = _ventricular_refractory(patient)
            ok = tuple(c for c in CONDUCTION_PATTERNS if min(CONDUCTION_RATIOS[c]) * 60.0 / flutter_rate >= floor)
            ok = ok or ("4:1",)
            # int(rng.choice(len(w), p=w / w.sum())) of the weights w of ``ok``: one random()
            # against choice's normalised cumulative sum (NumPy's, kept per pattern set),
            # searchsorted(side="right") -- without choice's ~8 µs of argument handling
            conduction = ok[bisect.bisect_right(_conduction_cdf(ok), rng.random())]
        else:
            n = int(round(flutter_rate / heart_rate))
            if n not in (2, 3, 4):
                raise ConfigError(f"heart_rate={heart_rate} bpm is not a 2:1-4:1 conduction of "
                                  f"atrial flutter at {FLUTTER_RATE[0]:g}-{FLUTTER_RATE[1]:g} /min")
            flutter_rate = heart_rate * n
            conduction = f"{n}:1"
        p4 = uniform(rng, 0.3, 0.7) if conduction == "2:1/4:1" else None
        mean_ratio = 2.0 + 2.0 * p4 if p4 is not None else float(CONDUCTION_RATIOS[conduction][0])
        heart_rate = flutter_rate / mean_ratio
        rhythm_params.update(flutter_rate=flutter_rate, conduction=conduction, p_4to1=p4)
        params.update(flutter_rate_per_min=float(flutter_rate), conduction=conduction)
        if p4 is not None:
            params["conduction_p_4to1"] = float(p4)
    elif rhythm == "AF" and heart_rate is None:
        # ventricular rate and RR irregularity drawn jointly from the fitted rhythm prior
        # (CPSC 2021 AF episodes, rhythm_prior.py): slow regular to fast irregular AF
        # a rate whose RR (mean - 1 SD) leaves the ventricles repolarised (rr_floor): fast
        # AF is drawn for patients whose ST-T allows it, as fast AF is seen with short QT
        floor = max(0.25, rhythm_params["rr_floor"])
        for _ in range(50):
            heart_rate, cv = draw_af(rng, rhythm_prior)
            if 60.0 / heart_rate * (1.0 - cv) >= floor:
                break
        rhythm_params["af_rr_cv"] = cv
    elif heart_rate is None and heart_rate_std is None and breathing_rate is None:
        # the three draws below in one call (the same numbers)
        heart_rate, heart_rate_std, breathing_rate = map(float, uniform3(rng, _HR_RANGE[rhythm],
                                                                         SINUS_HR_STD_BPM, (10.0, 20.0)))
    elif heart_rate is None:
        heart_rate = float(uniform(rng, *_HR_RANGE[rhythm]))
    else:
        lo, hi = CLASSES[rhythm].limits.get("hr", (20.0, 250.0))
        if not (np.isfinite(heart_rate) and lo <= heart_rate <= hi):
            raise ConfigError(f"heart_rate={heart_rate!r} bpm is outside the {rhythm} range "
                              f"{lo}-{hi} bpm ({CLASSES[rhythm].criteria})")
        if rhythm == "AF":  # a given rate: the irregularity still from the prior
            rhythm_params["af_rr_cv"] = draw_af(rng, rhythm_prior)[1]
    if heart_rate_std is None:
        heart_rate_std = float(uniform(rng, *SINUS_HR_STD_BPM))
    if breathing_rate is None:
        breathing_rate = float(uniform(rng, 10.0, 20.0))
    params.update(heart_rate_bpm=float(heart_rate), heart_rate_std_bpm=float(heart_rate_std),
                  breathing_rate_per_min=float(breathing_rate), lf_hf_ratio=float(lf_hf_ratio),
                  beat_jitter=float(beat_jitter))

    # rhythm-specific changes to the patient's own beat
    if rhythm == "IAVB":
        # the P wave moves earlier but stays clear of the previous T wave (else P sits on T
        # and no PR interval is measurable); a drawn patient whose T tail leaves no room
        # for PR >= 0.235 s at this heart rate is redrawn
        # for PR >= 0.235 s at this heart rate, or whose moved P is not robustly the main
        # wave before the QRS (a later bump would be delineated as P), is redrawn
        for attempt in range(51 if params["patient_source"] == "prior" else 1):
            if attempt:
                patient = sample_patient(rng, morphology=morphology, prior=prior, method=patient_sampler)
            pr_max = _iavb_pr_max(patient, heart_rate, heart_rate_std)
            if pr_max < 0.235:
                continue
            pr_target = uniform(rng, 0.23, float(np.clip(pr_max, 0.235, 0.30)))
            moved = _move_p(patient, pr_target - patient.intervals()["pr"])
            if robust_beat(moved, pr=(0.20, 0.32)):
                break
        else:  # a given patient (or 50 redraws) without room: PR as long as it allows
            pr_target = uniform(rng, 0.23, float(np.clip(pr_max, 0.235, 0.30)))
            moved = _move_p(patient, pr_target - patient.intervals()["pr"])
        patient = moved
        params["pr_s"] = float(pr_target)
    if rhythm in ("AF", "AFL"):
        amp = patient.amp.copy()
        amp[:, list(P_WAVES)] = 0.0
        patient = patient.replace(amp=amp)
    ectopic = None
    if rhythm == "PVC":
        ectopic, ep = ectopic_ventricular(patient, rng)
        params.update({f"class.{k}": float(v) for k, v in ep.items()})
    elif rhythm == "PAC":
        ectopic, ep = ectopic_atrial(patient, rng)
    if rhythm in ("PVC", "PAC"):  # coupling ratio from the fitted rhythm prior
        rhythm_params["coupling"] = draw_coupling(rhythm, rng, rhythm_prior)

    # beats from 1.5 s before to 1.5 s after the window so edge waves are complete
    pad = 1.5
    # (math.ceil: np.ceil's integer, without a NumPy scalar call)
    n_beats = math.ceil((duration + 2 * pad + 2) * heart_rate / 60.0 * 1.6) + 6
    force = (math.ceil((pad + 2.0) * heart_rate / 60.0) + 1, int((pad + duration - 1.5) * heart_rate / 60.0))
    if force[1] <= force[0]:
        # a short record: the margins above leave no beat, so take the beats whose R lands
        # inside the window whatever the start offset (up to one RR before -pad) and the
        # ectopic's prematurity (at most 0.45 RR early), 0.2 s from either edge
        rr_s = 60.0 / heart_rate
        force = (int(np.ceil((pad + 0.2) / rr_s + 1.45)), int(np.floor((pad + duration - 0.2) / rr_s)) + 1)
    rr, types, rp = beat_schedule(rhythm, n_beats, rng, heart_rate, heart_rate_std=heart_rate_std,
                                  breathing_rate=breathing_rate, lf_hf_ratio=lf_hf_ratio,
                                  rhythm_params=rhythm_params, force_range=force)
    params.update({f"rhythm.{k}": v for k, v in rp.items()})
    # the start and (below) the respiratory phase and depth: one call for the three draws
    # when the depth is drawn (the same numbers; nothing draws in between)
    if resp_modulation is None:
        u_start, resp_phase, resp_depth = uniform3(rng, (0.0, 1.0), (0, 2 * np.pi), (0.02, 0.08))
    else:
        u_start = uniform(rng, 0.0, 1.0)
    start = -pad - u_start * rr[0]
    r_times = np.empty(rr.shape[0] + 1)
    keep = _plan_kernels.times_kernel(np.ascontiguousarray(rr, dtype=np.float64), start, duration + pad, r_times)
    if rhythm == "AF":
        rr, r_times = _af_rate_inside_class(rr, r_times, start, duration, rp["af_rr_floor_s"], params)
        keep = np.searchsorted(r_times, duration + pad) + 1
    r_times, types = r_times[:keep + 1], types[:keep]
    if r_times[-1] <= duration + pad:
        raise ConfigError("internal: beat schedule too short")  # pragma: no cover

    # per-beat Gaussians (beat-to-beat variability: amplitude jitter + respiratory modulation)
    nb = types.shape[0]
    if resp_modulation is not None:
        resp_phase = uniform(rng, 0, 2 * np.pi)
        resp_depth = float(resp_modulation)
    # (scaled after the draws: the record's other numbers do not depend on the scale)
    resp_depth = float(resp_depth) * resp_scale
    params.update(respiration_phase_rad=float(resp_phase), respiration_amp_modulation=float(resp_depth))
    z = rng.standard_normal((nb, NW))  # amplitude jitter 1 + beat_jitter z per beat and wave
    ect = patient if ectopic is None else ectopic
    # RR to the next beat and the respiratory phase at each R (an exact kernel; twin:
    # _plan_kernels.beat_inputs_numpy), then NumPy's power and sine of them: ST-T centres,
    # widths and fiducials scale with RR^(1/3), amplitudes with 1 + resp_depth sin(phase)
    rows = np.empty((2, nb))
    inside = _plan_kernels.beat_inputs_kernel(r_times, nb, 2 * np.pi * breathing_rate / 60.0, resp_phase,
                                              float(duration), rows)
    rr_next = rows[0]
    f_repol = rr_next ** (1.0 / 3.0)
    resp = np.sin(rows[1])
    # Gaussians in time (the dipole ODE on a phase linear in time): a wave keeps its
    # shape when the RR interval changes across it (a phase with its rate switching at
    # each R peak would stretch one side of the QRS by RR_prev / RR_next). One kernel, over
    # beats x axes x waves (NumPy twin: _plan_kernels.beat_table_numpy); with the
    # fiducials (s from R) of each beat: normal / ectopic templates, ST-T scaled by RR^(1/3)
    table_args = (r_times, f_repol, resp, float(resp_depth), z, float(beat_jitter), types.view(np.uint32),
                  patient.tau, patient.sigma, patient.amp, ect.tau, ect.sigma, ect.amp, _REPOL_MASK,
                  _fiducials(patient), _fiducials(ect), float(duration))
    params.update(_patient_params(patient))
    if ectopic is not None and rhythm == "PVC":
        params.update(_patient_params(ectopic, "pvc"))
    params.update(n_beats=int(inside), cutoff_widths=DEFAULT_CUTOFF)

    atrial = None
    if rhythm == "AF":
        # AF's f waves stay slow next to the QRS: their peak slope at most ATRIAL_SLOPE_REL
        # of the QRS's peak spatial velocity, else they add to the QRS's own slope around
        # its onset and end and a velocity-threshold delineator measures a wider QRS (the cap
        # only binds for small, slow QRS complexes: >= 0.058 mV for every patient of the prior)
        vq = patient.max_velocity(QRS_WAVES)
        f0 = uniform(rng, 4.5, 8.0)
        a0 = uniform(rng, 0.03, float(np.clip(ATRIAL_SLOPE_REL * vq / (2 * np.pi * f0), 0.03, 0.12)))
        # rng.normal([-0.3, 0.4, -0.85], 0.2): the same draws and numbers (loc + scale z, z
        # standard normal, as NumPy's random_normal) without normal's ~10 µs of broadcasting
        d = _AF_DIRECTION + 0.2 * rng.standard_normal(3)
        atrial = ("AF", f0, a0, d / np.linalg.norm(d), uniform(rng, 0, 2 * np.pi),
                  rng.standard_normal(int(np.ceil(duration)) + 3), rng.standard_normal(int(np.ceil(duration)) + 3))
        params.update(fwave_hz=float(f0), fwave_mV=float(a0))
    elif rhythm == "AFL":
        # the published amplitude (FLUTTER_AMP), no slope cap: it held 69 % of the prior's
        # patients below 0.15 mV (median 0.13), while Liu's 0.161 mV over Sau's upslope (27 %
        # of a 200-ms cycle) is ~6 mV/s, 4-5 % of the prior's median QRS peak spatial
        # velocity (126 mV/s) against the cap's 3.5 % (the class test's QRS widths moved by
        # <= 2 ms over 300 records)
        f_fl = rhythm_params["flutter_rate"] / 60.0
        a0 = _flutter_amplitude(uniform(rng, 0.0, 1.0))
        d = _AFL_DIRECTION + 0.1 * rng.standard_normal(3)  # rng.normal([0.1, 1.0, 0.2], 0.1), as AF's
        # phase-locked: the F-wave nadir comes ``fr`` s before every R (the R times are
        # whole atrial cycles apart), so each conducted F wave keeps its place before its QRS
        fr = uniform(rng, *FLUTTER_FR)
        ph = 2 * np.pi * (0.7 - f_fl * (r_times[0] - fr))
        atrial = ("AFL", f_fl, a0, d / np.linalg.norm(d), float(np.mod(ph, 2 * np.pi)), None, None)
        win = (r_times[:nb] >= 0) & (r_times[:nb] < duration)
        params.update(flutter_mV=float(a0), flutter_fr_s=float(fr),
                      conduction_ratio=float(np.mean(rr_next[win]) * f_fl) if win.any()
                      else float(np.mean(rr_next) * f_fl))
    plan = _Plan(r_times, types, None, None, None, None, None, atrial, params, (rhythm, morphology),
                 table_args=table_args)
    return _table(plan) if table else plan


@lru_cache(maxsize=16)
def _conduction_cdf(patterns: tuple) -> list:
    """``Generator.choice``'s cumulative distribution of the conduction ``patterns`` drawn
    with :data:`CONDUCTION_WEIGHTS`: ``p = w / w.sum(); cdf = p.cumsum(); cdf /= cdf[-1]``
    (NumPy's own arithmetic) as Python floats."""
    w = np.array([CONDUCTION_WEIGHTS[c] for c in patterns])
    cdf = (w / w.sum()).cumsum()
    cdf /= cdf[-1]
    return cdf.tolist()


def _flutter_amplitude(u):
    """Flutter-wave amplitude a0 (mV) from one uniform draw ``u`` in [0, 1): the inverse CDF
    of :data:`FLUTTER_AMP`'s normal truncated to +-2 SD (one draw, as the uniform it replaces)."""
    nd, lo, hi = _flutter_amplitude_law()
    return nd.inv_cdf(lo + (hi - lo) * u)


@lru_cache(maxsize=1)
def _flutter_amplitude_law():
    """(NormalDist of :data:`FLUTTER_AMP`, its CDF at -2 SD and at +2 SD)."""
    from statistics import NormalDist

    nd = NormalDist(*FLUTTER_AMP)
    return nd, nd.cdf(FLUTTER_AMP[0] - 2 * FLUTTER_AMP[1]), nd.cdf(FLUTTER_AMP[0] + 2 * FLUTTER_AMP[1])


_SINUS_FAST = ("SR", "SB", "STACH")  # rhythms of _plan_sinus
_SERIES_LENGTHS = frozenset(_plan_kernels.SERIES_LENGTHS)


@lru_cache(maxsize=1)
def _sinus_fast() -> bool:
    """Whether :func:`_plan_sinus`'s forms were checked here (once per process): the
    uniform draws' arithmetic, a spectrum form, NumPy's irfft ufunc, the kernels' draws."""
    return bool(_uniform_matches() and _plan_kernels.spectrum_u_form() is not None
                and _irfft_direct() is not None and draws_match())


_SINUS_KEYS = ("heart_rate_bpm", "heart_rate_std_bpm", "breathing_rate_per_min", "lf_hf_ratio", "beat_jitter",
               "respiration_phase_rad", "respiration_amp_modulation")


def _sinus_params_template(patient, params):
    """A dict with the keys of a sinus record's params in ``_plan``'s order (those of
    ``params``, the drawn values', the patient's, ``n_beats``, ``cutoff_widths``) and the
    patient's values; cached on the (immutable) patient for the key set of ``params``."""
    head = tuple(params)
    cached = patient.__dict__.get("_sinus_params")
    if cached is not None and cached[0] == head:
        return cached[1]
    tmpl = dict(params)
    tmpl.update(dict.fromkeys(_SINUS_KEYS, 0.0))
    tmpl.update(_patient_params(patient))
    tmpl.update(n_beats=0, cutoff_widths=DEFAULT_CUTOFF)
    object.__setattr__(patient, "_sinus_params", (head, tmpl))
    return tmpl


def _plan_sinus(duration, fs, rng, rhythm, morphology, patient, lf_hf_ratio, beat_jitter, params, resp_scale=1.0):
    """``_plan``'s plan (``table=False``) of a sinus record (SR, SB, STACH) whose heart
    rate, its SD, the breathing rate and the respiratory modulation are all drawn: the
    same draws and numbers as ``_plan`` -> ``beat_schedule`` -> ``rhythm._sinus_rr`` make
    them, in three kernels that draw from ``rng``'s bit generator themselves
    (:mod:`._rng_kernels`) and the NumPy calls whose results the kernels cannot reproduce
    between them (``exp`` of the spectrum where NumPy's is not the C library's, the
    inverse FFT, ``RR^(1/3)``; the series' mean and power and ``sin`` too where the
    kernels' forms of them were not confirmed here): about 12 calls where ``_plan`` made
    ~60 (≈ 25 µs of a 10-s record). None (nothing drawn) if ``rng``'s
    bit generator has no ``ctypes`` interface. The plan carries ``render``: the arguments
    of ``_plan_kernels.sinus_render_kernel`` and the number of annotated beats of a record
    of ``n = round(duration fs)`` samples (``_render_finish``)."""
    bg = bitgen_pointers(rng)
    if bg is None:
        return None
    n_rec = int(round(duration * fs))
    duration = float(duration)
    lf_hf_ratio = float(lf_hf_ratio)
    hr_lo, hr_hi = _HR_RANGE[rhythm]
    # work space of the spectrum: rfft bins f, draws u, exponents e (2 per bin); room for
    # the longest series a drawn heart rate gives (nb <= 9.6 (duration + 5) + 160)
    cap = int(9.6 * duration + 220.0)
    # (the thread's work arrays w, spec, x: none of them leaves this function)
    work = getattr(_WORK, "sinus", None)
    if work is None or work[0] != cap:
        work = _WORK.sinus = (cap, np.empty(4 * cap), {})
    w = work[1]  # rfft bins, draws, exponents: w[:cap], w[cap:2 cap], w[2 cap:]
    form, irfft, loops = _SINUS_FORMS[0] if _SINUS_FORMS else _sinus_forms()
    # (NumPy's own draws take the bit generator's lock: so do these)
    with rng.bit_generator.lock:
        heart_rate, heart_rate_std, breathing_rate, n_beats, n, m = _plan_kernels.sinus_draw_kernel(
            bg, hr_lo, hr_hi, duration, w, cap, SINUS_HR_STD_BPM[0], SINUS_HR_STD_BPM[1])
        if n == 0:  # an rfft length rhythm._fft_length finds the slow way
            n = _fft_length(max(((n_beats + 4) * 60.0 / heart_rate * 1.5 + 16) * 4.0, 64))
            if n // 2 + 1 > cap:
                cap = n // 2 + 1
                w = np.empty(4 * cap)  # (not the thread's: cap no longer its size)
            m = _plan_kernels.sinus_spectrum_draw_kernel(bg, n, breathing_rate / 60.0, w[:cap], w[cap:2 * cap],
                                                         w[2 * cap:])
        sx = work[2].get(n)
        if sx is None:
            sx = work[2][n] = (np.empty(n // 2 + 1, np.complex128), np.empty(n), n in _SERIES_LENGTHS,
                               np.array([_IRFFT_SCALE.get(n) or _irfft_scale(n)]))
        spec, x, series_here, fct = sx
        if form == "kernel" or loops is None:
            if form != "kernel":
                v = w[2 * cap:2 * cap + 2 * m]
                np.exp(v, v)
            _plan_kernels.sinus_spectrum_kernel(w, cap, m, form == "kernel", lf_hf_ratio, spec)
            irfft(spec, fct[0], x)
        else:  # NumPy's exp and irfft loops in the kernel (the same functions on the same numbers)
            _plan_kernels.sinus_series_loop_kernel(w, cap, m, loops, lf_hf_ratio, spec, fct, x)
        rr_mean = 60.0 / heart_rate
        rr_std = 60.0 * heart_rate_std / heart_rate ** 2
        codes = np.empty(n_beats, np.uint32)
        z = np.empty((n_beats, NW))
        fb = np.empty(5 * n_beats + 1)  # rows, r_times, rr, resp (sinus_schedule_kernel)
        # the series' mean, power and the respiratory sine in the kernel where its forms of
        # them (NumPy's summation, OpenBLAS's dot, the C library's sin) were confirmed
        # (an int: the dot form, 0 for none -- one type for the kernels whichever it is)
        series_here = _SERIES_FORMS_MATCH[0] if series_here else 0
        if series_here:
            scale = 0.0
        else:
            x -= np.add.reduce(x) / n
            sd = math.sqrt(float(np.dot(x, x)) / n)
            scale = rr_std / sd if sd > 0 else 0.0
        if loops is None:
            status, nb, inside, resp_phase, resp_depth, m_ann = _plan_kernels.sinus_schedule_kernel(
                bg, x, scale, rr_mean, duration, breathing_rate, codes, z, fb, series_here, rr_std, float(fs), n_rec)
        else:  # and RR^(1/3) by NumPy's power loop, into fb[:nb]
            status, nb, inside, resp_phase, resp_depth, m_ann = _plan_kernels.sinus_schedule_cbrt_kernel(
                bg, x, scale, rr_mean, duration, breathing_rate, codes, z, fb, series_here, rr_std, float(fs), n_rec,
                loops, _plan_kernels.THIRD)
    if status == 1:
        raise ConfigError(f"heart_rate_std={heart_rate_std} bpm is too large for heart_rate="
                          f"{heart_rate} bpm: RR intervals below 0.2 s")
    if status:
        raise ConfigError("internal: beat schedule too short")  # pragma: no cover
    resp_depth = resp_depth * resp_scale
    r_times = fb[2 * n_beats:2 * n_beats + nb + 1]
    f_repol = fb[:nb] if loops is not None else fb[:nb] ** (1.0 / 3.0)
    resp = fb[4 * n_beats + 1:5 * n_beats + 1] if series_here else np.sin(fb[nb:2 * nb])
    # the params in _plan's key order from the patient's template (a copy and eight
    # stores: updating a new dict with the patient's 99 values cost ~2.5 µs a record)
    tmpl = _sinus_params_template(patient, params)
    out = tmpl.copy()
    out.update(params)
    out["heart_rate_bpm"] = heart_rate
    out["heart_rate_std_bpm"] = heart_rate_std
    out["breathing_rate_per_min"] = breathing_rate
    out["lf_hf_ratio"] = lf_hf_ratio
    beat_jitter = float(beat_jitter)
    out["beat_jitter"] = beat_jitter
    out["respiration_phase_rad"] = resp_phase
    out["respiration_amp_modulation"] = resp_depth
    out["n_beats"] = inside
    head = (r_times, f_repol, resp, resp_depth, z, beat_jitter, codes)
    table_tail, render_tmpl = _sinus_static(patient)
    # the _Plan as its __init__ fills it (field by field, in order) without its call
    plan = object.__new__(_Plan)
    object.__setattr__(plan, "__dict__", {
        "r_times": r_times, "types": codes.view(_U1)[:nb], "centres": None, "widths": None, "amps": None,
        "chans": None, "fid": None, "atrial": None, "params": out, "labels": (rhythm, morphology), "valid": True,
        "table_args": head + table_tail + (duration,),
        "render": head + (render_tmpl, duration, m_ann, n_rec, fs)})
    return plan


_U1 = np.dtype("<U1")
_WORK = threading.local()  # per thread: _plan_sinus's work arrays
_SINUS_FORMS = []  # (spectrum_u_form, the irfft ufunc, ufunc_loops) once _sinus_fast() held
_SERIES_FORMS_MATCH = []  # [_plan_kernels.series_forms_match()], filled with _SINUS_FORMS


def _sinus_forms():
    """``(_plan_kernels.spectrum_u_form(), _irfft_direct(), _plan_kernels.ufunc_loops())``,
    kept after the first call (each checked once per process; :func:`_plan_sinus` runs only
    after the first two passed), and ``series_forms_match()`` into ``_SERIES_FORMS_MATCH``."""
    if not _SINUS_FORMS:
        _SERIES_FORMS_MATCH.append(int(_plan_kernels.series_forms_match()))
        _SINUS_FORMS.append((_plan_kernels.spectrum_u_form(), _irfft_direct(), _plan_kernels.ufunc_loops()))
    return _SINUS_FORMS[0]


def _sinus_static(p: Patient):
    """A sinus plan's per-patient arguments: the tail of ``beat_table_kernel``'s (before
    ``duration``) and ``sinus_render_kernel``'s packed template, cached on the (immutable)
    patient."""
    cached = p.__dict__.get("_sinus_static")
    if cached is None:
        fid = _fiducials(p)
        cached = ((p.tau, p.sigma, p.amp, p.tau, p.sigma, p.amp, _REPOL_MASK, fid, fid), _render_template(p))
        object.__setattr__(p, "_sinus_static", cached)
    return cached


def _render_template(p: Patient) -> np.ndarray:
    """``sinus_render_kernel``'s packed template of a patient (tau, sigma, amp, the ST-T
    mask as 0/1, the fiducials), cached on the (immutable) patient."""
    cached = p.__dict__.get("_render_tmpl")
    if cached is None:
        cached = np.concatenate([p.tau.ravel(), p.sigma.ravel(), p.amp.ravel(), _REPOL_MASK.astype(np.float64),
                                 _fiducials(p)])
        cached.flags.writeable = False
        object.__setattr__(p, "_render_tmpl", cached)
    return cached


def _table(plan):
    """The plan with its beat table (per-beat Gaussians, fiducials, ``valid``) filled in."""
    plan.centres, plan.widths, plan.amps, plan.chans, plan.fid, _, valid = _plan_kernels.beat_table_kernel(
        *plan.table_args)
    plan.valid = bool(valid)
    return plan


def _render(plan, n, fs, backend):
    """``render_gaussians`` of the plan's Gaussians. The planner's kernel checked them
    (finite, widths > 0, axes 0-2: ``plan.valid``), so short records go straight to the
    renderer's kernel, as ``render_gaussians`` would send them after its own checks (≈ 30 µs
    of NumPy calls a record); anything else through ``render_gaussians``."""
    if backend == "numba" and plan.valid and n <= 100_000:
        # the three axes' recurrences side by side (bit for bit gaussian_time_kernel's
        # sums); its record lives in a flat buffer with 8 slots of slack after it
        flat = np.zeros(3 * n + 8)
        _kernels.gaussian_time_rows_kernel(0.0, float(fs), plan.centres, plan.widths, plan.amps, plan.chans,
                                           float(DEFAULT_CUTOFF), flat, n, _kernels.exp_table())
        return flat[:3 * n].reshape(3, n)
    return render_gaussians(plan.centres, plan.widths, plan.amps, plan.chans, n, fs, backend=backend)


def _atrial_signal(atrial, n, fs):
    """AF f-waves / flutter saw-tooth along a fixed atrial direction, (3, n) mV."""
    kind, f0, a0, d, ph, fm, am = atrial
    t = np.arange(n) / fs
    if kind == "AF":
        # dominant frequency and amplitude wander slowly (knots 1 s apart)
        knots = np.arange(fm.shape[0]) - 1.0
        f = f0 * (1.0 + 0.08 * np.interp(t, knots, fm))
        phase = ph + 2 * np.pi * np.cumsum(f) / fs
        a = a0 * np.clip(1.0 + 0.3 * np.interp(t, knots, am), 0.2, None)
        s = a * np.sin(phase)
    else:
        # negative saw-tooth in the inferior direction: slow descent (70 % of the cycle),
        # quicker upstroke
        from scipy.signal import sawtooth  # lazy: scipy.signal costs ~1.5 s to import

        s = -a0 * sawtooth(2 * np.pi * f0 * t + ph, width=0.7)
    return d[:, None] * s[None, :]


@lru_cache(maxsize=8)
def _af_knots(m: int) -> np.ndarray:
    """:func:`_atrial_signal`'s AF knots (``np.arange(m) - 1.0``: 1 s apart from -1 s)."""
    k = np.arange(m) - 1.0
    k.flags.writeable = False
    return k


@lru_cache(maxsize=1)
def _af_kernel_matches() -> bool:
    """Whether ``_plan_kernels.af_wave_kernel`` adds :func:`_atrial_signal`'s AF f-waves bit
    for bit here (its ``sin`` is the C library's; ``np.sin`` may be NumPy's own SIMD one), on
    records of 1-60 s at 250-1000 Hz; checked once per process."""
    rng = np.random.default_rng(20261207)
    try:
        for duration, fs in ((10.0, 500.0), (3.3, 250.0), (60.0, 1000.0), (7.0, 360.0), (0.5, 500.0)):
            n = int(round(duration * fs))
            d = rng.normal([-0.3, 0.4, -0.85], 0.2)
            m = int(np.ceil(duration)) + 3
            atrial = ("AF", rng.uniform(4.5, 8.0), rng.uniform(0.03, 0.12), d / np.linalg.norm(d),
                      rng.uniform(0, 2 * np.pi), rng.standard_normal(m) * 4.0, rng.standard_normal(m) * 4.0)
            vcg = rng.standard_normal((3, n))
            want = vcg + _atrial_signal(atrial, n, fs)
            _, f0, a0, d, ph, fm, am = atrial
            _plan_kernels.af_wave_kernel(vcg, float(fs), float(f0), float(a0), d, float(ph), _af_knots(m), fm, am)
            if vcg.tobytes() != want.tobytes():
                return False
        return True
    except Exception:  # pragma: no cover - a numba failure: the NumPy code it is
        return False


def _finish(plan, vcg, fs, annotations=None):
    """The record from a plan and its rendered Gaussians ``vcg`` (3, n), which it owns
    (atrial flutter is added in place), as are the plan's params (one record a plan);
    ``annotations``: ``_plan_kernels.annotations_kernel``'s result if already made."""
    n = vcg.shape[1]
    if plan.atrial is not None and plan.atrial[0] == "AFL":
        # scipy's saw-tooth (~20 NumPy calls over the record) as one exact kernel (twin:
        # _plan_kernels.flutter_numpy, which is _atrial_signal's code)
        _, f0, a0, d, ph, _, _ = plan.atrial
        _plan_kernels.flutter_kernel(vcg, float(fs), float(f0), float(ph), float(a0),
                                     np.ascontiguousarray(d, dtype=np.float64))
    elif plan.atrial is not None and vcg.flags.writeable and _af_kernel_matches():
        # AF's f-waves (two interpolations, a running sum, a sine: ~15 NumPy calls over the
        # record) added in place by one kernel (twin: _atrial_signal)
        _, f0, a0, d, ph, fm, am = plan.atrial
        _plan_kernels.af_wave_kernel(vcg, float(fs), float(f0), float(a0), np.ascontiguousarray(d, dtype=np.float64),
                                     float(ph), _af_knots(fm.shape[0]), np.ascontiguousarray(fm, dtype=np.float64),
                                     np.ascontiguousarray(am, dtype=np.float64))
    elif plan.atrial is not None:
        vcg = vcg + _atrial_signal(plan.atrial, n, fs)
    # all annotation kinds at once: sample index, -1 where absent (inf) or outside (NumPy
    # twin: _plan_kernels.annotations_numpy)
    if annotations is None:
        annotations = _plan_kernels.annotations_kernel(plan.r_times, plan.types.shape[0], plan.fid, float(fs), n)
    idx, s, rr = annotations
    ann = dict(zip(ANNOTATION_KEYS, s))
    # (the plan's params dict itself: a plan is made for one record and finished once)
    return _beats(vcg, float(fs), rr, ann, plan.labels, plan.params, plan.types[idx])


def _beats(vcg, fs, rr, annotations, labels, params, beat_types):
    """``Beats(vcg=vcg, fs=fs, ...)``: the same instance (its ``__dict__`` as the frozen
    dataclass's ``__init__`` fills it, field by field in order) without that ``__init__``'s
    seven ``object.__setattr__`` calls (~1.2 µs a record)."""
    b = object.__new__(Beats)
    object.__setattr__(b, "__dict__", {"vcg": vcg, "fs": fs, "rr": rr, "annotations": annotations,
                                       "labels": labels, "params": params, "beat_types": beat_types})
    return b


def synthesize(duration, fs, rng, *, heart_rate=None, rhythm="sinus", morphology="normal",
               patient=None, prior=None, heart_rate_std=None, breathing_rate=None,
               lf_hf_ratio=0.5, beat_jitter=0.03, resp_modulation=None, patient_sampler="auto",
               backend="numba", rhythm_prior=None, resp_scale=1.0) -> Beats:
    """Synthesize a labeled dipole (VCG) record of one patient.

    Parameters
    ----------
    duration : float, s;  fs : float, Hz (output rate; the model is exact at any rate)
    rng : numpy.random.Generator — the only source of randomness
    heart_rate : float, bpm, optional — drawn inside the rhythm's range when None; must lie
        inside the class range (``CLASSES[rhythm].limits["hr"]``)
    rhythm : "SR"/"sinus", "SB", "STACH", "AF", "AFL", "PVC", "PAC", "IAVB"
    morphology : "NORM"/"normal", "LBBB", "RBBB", "STE", "STD", "TINV", "LVH"
    patient : Patient, optional — fixed beat parameters (drawn from ``prior`` otherwise);
        used as is (the morphology is then only a label)
    prior : Prior, optional — default: the shipped normal prior
    heart_rate_std : float, bpm — McSharry RR variability (drawn 0.5-2.5 when None)
    breathing_rate : float, breaths/min — HF (RSA) peak and amplitude modulation
        (drawn 10-20 when None; stored as ``breathing_rate_per_min`` for motion/noise)
    lf_hf_ratio : float — McSharry LF/HF power ratio
    beat_jitter : float — relative beat-to-beat amplitude variability per wave
    resp_modulation : float, optional — relative amplitude modulation by breathing
        (drawn 0.02-0.08 when None)
    resp_scale : float — multiplies that modulation after it is drawn (the record's other
        numbers stay the same; stored as ``respiration_amp_modulation``). The modulation
        stands in for what breathing does to the projected beat -- the heart turning, the
        chest and its electrodes moving -- so a caller that simulates that geometrically
        (a dataset whose simulation has motion with the heart turning with respiration,
        :mod:`cardiosim.dataset.plan`) passes 0 rather than count breathing twice.
    patient_sampler : {"auto", "proposal", "rejection"} — how a patient is drawn from the
        prior (``prior.sample_patient``'s ``method``; stored as ``patient_sampler``)
    backend : "numba" or "numpy"
    rhythm_prior : dict or path, optional — the rhythm prior (AF rate and irregularity,
        ectopic coupling) to draw from: a file (``rhythm_prior.read_rhythm_prior``) or its
        dict; default: the shipped one (``rhythm_prior.DEFAULT_RHYTHM_PRIOR_PATH``)

    Returns
    -------
    Beats
    """
    plan = _plan(duration, fs, rng, heart_rate, rhythm, morphology, patient, prior, heart_rate_std,
                 breathing_rate, lf_hf_ratio, beat_jitter, resp_modulation, patient_sampler, table=False,
                 rhythm_prior=rhythm_prior if rhythm_prior is None else _rhythm_prior(rhythm_prior),
                 resp_scale=resp_scale)
    n = int(round(duration * fs))
    if backend == "numba" and n <= 100_000:
        return _render_finish(plan, n, fs, np.zeros(3 * n + 8))
    return _finish(_table(plan), _render(plan, n, fs, backend), fs)


def _rhythm_prior(rhythm_prior):
    """A rhythm prior given as a path read (cached) and checked; a dict or None as given."""
    if rhythm_prior is None or isinstance(rhythm_prior, dict):
        return rhythm_prior
    return read_rhythm_prior_cached(str(rhythm_prior))


def _render_finish(plan, n, fs, flat):
    """The record of a plan made with ``table=False``, rendered into ``flat`` (``3 n + 8``
    zeros): the beat table, its rendering (as :func:`_render`) and the annotations in one
    kernel call; a table with an invalid Gaussian renders nothing there and goes through
    :func:`_render` (its error)."""
    rd = plan.render
    if rd and rd[10] == n and rd[11] == fs:
        # one template: its packed form, the annotations into arrays sized here (no arrays
        # returned from the kernel, no beat-type lookup)
        m = rd[9]
        s, rr, bt = np.empty((len(ANNOTATION_KEYS), m), np.int64), np.empty(m), np.empty(m, np.uint32)
        if _plan_kernels.sinus_render_kernel(*rd[:9], float(fs), _CUTOFF, flat, n, _kernels.exp_table(), s, rr, bt):
            return _beats(flat[:3 * n].reshape(3, n), float(fs), rr, dict(zip(ANNOTATION_KEYS, s)), plan.labels,
                          plan.params, bt.view(_U1))
        return _finish(_table(plan), _render(plan, n, fs, "numba"), fs)
    *ann, ok = _plan_kernels.beat_render_kernel(*plan.table_args, float(fs), _CUTOFF, flat, n,
                                                _kernels.exp_table())
    if ok:
        return _finish(plan, flat[:3 * n].reshape(3, n), fs, ann)
    return _finish(_table(plan), _render(plan, n, fs, "numba"), fs)


def synthesize_batch(n_records, duration, fs, rng, **kwargs) -> list[Beats]:
    """``n_records`` independent records, drawn in record order from ``rng``.

    Keyword arguments as :func:`synthesize` (except ``backend``, always numba); the
    records equal ``n_records`` calls of :func:`synthesize` with the same ``rng``, their
    ``vcg`` views of one block. Records of up to 100,000 samples are made one after the
    other, each rendered right after its plan (its tables still in cache) by
    :func:`synthesize`'s one-call kernel; longer ones are planned first and rendered in
    parallel (numba ``prange``). (On this shared 2-core machine the parallel renderer of
    10-s records cost 0.10-0.12 ms a record under load against 0.02 serial -- its
    threads' spin-waits took the planner's core -- and no less CPU when idle.)
    """
    if int(n_records) != n_records or n_records < 1:
        raise ConfigError(f"n_records must be a positive integer, got {n_records!r}")
    kw = dict(heart_rate=None, rhythm="sinus", morphology="normal", patient=None, prior=None,
              heart_rate_std=None, breathing_rate=None, lf_hf_ratio=0.5, beat_jitter=0.03,
              resp_modulation=None, patient_sampler="auto", rhythm_prior=None, resp_scale=1.0)
    unknown = set(kwargs) - set(kw)
    if unknown:
        raise ConfigError(f"unknown synthesize_batch option(s) {sorted(unknown)}")
    kw.update(kwargs)
    kw["rhythm_prior"] = _rhythm_prior(kw["rhythm_prior"])
    n = int(round(duration * fs))
    if n <= 100_000:
        # one zeroed block for all records (a fresh buffer per record faulted its pages in
        # again every batch)
        block = np.zeros((int(n_records), 3 * n + 8))
        return [_render_finish(_plan(duration, fs, rng, **kw, table=False), n, fs, block[i])
                for i in range(int(n_records))]
    plans = [_plan(duration, fs, rng, **kw) for _ in range(int(n_records))]
    if all(p.valid for p in plans):  # checked by the planner's kernel (see _render)
        g_off = np.zeros(len(plans) + 1, np.int64)
        g_off[1:] = np.cumsum([p.centres.shape[0] for p in plans])
        cat = [np.concatenate([getattr(p, name) for p in plans]) for name in ("centres", "widths", "amps", "chans")]
        vcgs = np.zeros((len(plans), 3, n))
        _kernels.gaussian_time_batch_kernel(0.0, float(fs), *cat, g_off, float(DEFAULT_CUTOFF), vcgs)
    else:
        vcgs = render_gaussians_batch([(p.centres, p.widths, p.amps, p.chans) for p in plans], n, fs)
    return [_finish(p, v, fs) for p, v in zip(plans, vcgs)]
