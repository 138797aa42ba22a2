"""Fit the Gaussian-wave dipole beat to real beats; collect fits into priors.

Each Frank axis of a beat ``y`` (mV, ``t`` s from the R peak) is modelled as
``y_a(t) ≈ c_a + Σ_i α_ai exp(-(t - tau_ai)² / 2 sigma_ai²)`` over the 11 wave slots of
:mod:`cardiosim.ode.model` — Sameni et al.'s per-channel Gaussian fit of the average
beat (EURASIP J Adv Signal Process 2007:43407). Amplitudes and offset enter linearly and
are solved exactly by least squares for any timing (variable projection, Golub &
Pereyra 1973); only the 22 timing parameters per axis go to
``scipy.optimize.least_squares``, inside per-slot bounds that keep each slot in its role.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from ..errors import ConfigError, SignalError
from .model import (
    NW,
    P_WAVES,
    QRS_WAVES,
    REPOL,
    SIGMA_BOUNDS,
    T_WAVES,
    TAU_BOUNDS,
    Patient,
    default_patient,
)
from .prior import Prior


@dataclass(frozen=True)
class FitResult:
    """Result of :func:`fit_beat`.

    patient : Patient — timing converted to RR = 1 s (R-peak fiducial at 0 s)
    residual : float — ``‖y - ŷ‖ / ‖y - mean_t y‖`` over all channels (normalised residual)
    offset : ndarray (C,) mV — fitted constant baseline per channel
    model : ndarray (C, n) mV — the fitted beat
    success : bool — optimiser convergence flag of every axis
    """

    patient: Patient
    residual: float
    offset: np.ndarray
    model: np.ndarray
    success: bool


def _design(t, tau, sigma):
    g = np.exp(-0.5 * ((t[:, None] - tau[None, :]) / sigma[None, :]) ** 2)
    return np.hstack([g, np.ones((t.shape[0], 1))])  # (n, 12): 11 Gaussians + offset


RIDGE = 1e-6  # relative Tikhonov weight on Gaussian amplitudes: no cancelling pairs


def _solve(G, y):
    """Amplitudes + offset: least squares with a small ridge on the Gaussian amplitudes
    (overlapping slots could otherwise cancel with huge opposite amplitudes)."""
    k = G.shape[1] - 1
    lam = RIDGE * G.shape[0]
    A = np.vstack([G, np.hstack([np.sqrt(lam) * np.eye(k), np.zeros((k, 1))])])
    coef, *_ = np.linalg.lstsq(A, np.concatenate([y, np.zeros(k)]), rcond=None)
    return coef


def _fit_channel(t, y, scale, x0, lo, hi, ynorm, starts, fixed_timing=False):
    if fixed_timing:  # amplitudes and offset only: linear, one solution
        G = _design(t, x0[:NW], np.exp(x0[NW:]))
        coef = _solve(G, y)
        return x0[:NW] / scale, np.exp(x0[NW:]) / scale, coef, G @ coef, True

    def parts(x):
        tau, sig = x[:NW], np.exp(x[NW:])
        G = _design(t, tau, sig)
        Q, _ = np.linalg.qr(G)
        return tau, sig, G, Q, _solve(G, y)

    def resid(x):
        _, _, G, _, coef = parts(x)
        return (G @ coef - y) / ynorm

    def jac(x):
        # Kaufman's variable-projection Jacobian: -(I - Q Qᵀ) (∂G/∂x) coef
        tau, sig, G, Q, coef = parts(x)
        u = (t[:, None] - tau[None, :]) / sig[None, :]
        g = G[:, :NW] * coef[None, :NW]
        D = np.hstack([g * u / sig[None, :], g * u * u])  # ∂/∂tau, ∂/∂log sigma
        return (D - Q @ (Q.T @ D)) / ynorm

    best = None
    for xs in [x0] + starts:
        r = least_squares(resid, xs, jac=jac, bounds=(lo, hi), x_scale="jac", max_nfev=500)
        if best is None or r.cost < best.cost:
            best = r
    G = _design(t, best.x[:NW], np.exp(best.x[NW:]))
    coef = _solve(G, y)
    return best.x[:NW] / scale, np.exp(best.x[NW:]) / scale, coef, G @ coef, best.success


def _data_init(t, vcg, scale):
    """Starting timing from the beat itself: P and T slots around the largest deflections
    before / after the QRS, the six QRS slots spread over ±40 ms (same for every axis)."""
    p = default_patient()
    tau, sigma = p.tau.copy(), p.sigma.copy()
    m = np.linalg.norm(vcg - np.median(vcg, axis=1, keepdims=True), axis=0)

    def peak(lo, hi):
        sel = (t >= lo) & (t <= hi)
        return float(t[sel][np.argmax(m[sel])]) if sel.any() else 0.5 * (lo + hi)

    tp = peak(-0.28, -0.07)
    tt = peak(0.12 * scale[9], min(0.45 * scale[9], t[-1]))
    tau[:, 0], tau[:, 1] = tp - 0.015, tp + 0.015
    tau[:, 2:8] = np.linspace(-0.04, 0.04, 6)
    sigma[:, 2:8] = 0.008
    tau[:, 8] = 0.5 * (0.05 + tt)
    tau[:, 9], tau[:, 10] = tt - 0.03, tt + 0.03
    return Patient(tau / scale, sigma / scale, p.amp)


def _start_at(p, rr):
    """``p`` (timing at RR = 1 s) in :func:`fit_beat`'s frame at interval ``rr``: timing that the
    fit's division by ``f = RR^(1/3)`` maps to the centres the model renders at ``rr``
    (:func:`cardiosim.ode.model.scaled_timing`, ``tau f + q (1 - f)`` about the QRS onset ``q``):
    the ST/T centres moved by ``q (1 - f) / f``. Before 2026-12-07 starts were taken as scaled about
    R, up to 7 ms off at 114 bpm, and sub-median fits started from their median's fit settled
    elsewhere (docs/VALIDATION.md)."""
    if rr == 1.0:
        return p
    f = rr ** (1.0 / 3.0)
    tau = np.array(p.tau, np.float64)
    tau[:, list(REPOL)] += p.qrs_onset() * (1.0 - f) / f
    return Patient(tau, p.sigma, p.amp)


def _extrema_start(t, y, x0):
    """Start with each role's slots on the channel's largest local extrema in the role's
    window (peak picking, as Sameni et al. initialise their Gaussian fits)."""
    from scipy.signal import find_peaks

    x = x0.copy()
    a = np.abs(y - np.median(y))
    for slots, lo, hi in ((P_WAVES, x0[0] - 0.05, -0.05), (QRS_WAVES, -0.06, 0.06),
                          (T_WAVES, 0.08, t[-1])):
        sel = np.flatnonzero((t >= lo) & (t <= hi))
        if sel.size < 3:
            continue
        pk, _ = find_peaks(a[sel])
        if pk.size == 0:
            continue
        top = pk[np.argsort(a[sel][pk])[::-1][:len(slots)]]
        x[list(slots)[:top.size]] = np.sort(t[sel][top])
    return x


def fit_beat(beat, fs, *, r_index, rr=1.0, lead_vectors=None, init=None, n_restarts=2, rng=None,
             fixed_timing=False):
    """Fit one (average) beat.

    Parameters
    ----------
    beat : ndarray, shape (C, n), mV — a VCG (C = 3, Frank X, Y, Z) or ECG leads
    fs : float, Hz
    r_index : int — sample of the R-peak fiducial in ``beat`` (becomes t = 0)
    rr : float, s — the beat's RR interval (ST/T timing is converted to RR = 1 s with the
        model's RR^(1/3) law about the QRS onset, :func:`cardiosim.ode.model.scaled_timing`)
    lead_vectors : ndarray (C, 3), optional — lead ``c = lead_vectors[c] · dipole``.
        C >= 3 (full column rank): the VCG is recovered by least squares, then fitted.
        C = 1: one Gaussian set is fitted and the dipole is its minimum-norm vector
        ``α l / |l|²`` (a single lead cannot see the other directions).
    init : Patient, optional — starting timing (default: three starts — slots around the
        beat's own P, QRS and T, on its largest local extrema, and the hand-set normal beat)
    n_restarts : int — extra starts with jittered timing (needs ``rng``); the best is kept
    rng : numpy.random.Generator, optional
    fixed_timing : bool — keep ``init``'s centres and widths and fit only the amplitudes and
        offsets (a linear least-squares problem with one solution; needs ``init``)

    Returns
    -------
    FitResult
    """
    y = np.atleast_2d(np.asarray(beat, np.float64))
    if not np.all(np.isfinite(y)):
        raise SignalError("beat contains NaN or infinite samples")
    if fixed_timing and init is None:
        raise ConfigError("fixed_timing needs an init patient (whose timing is kept)")
    C, n = y.shape
    if not (0 <= r_index < n):
        raise ConfigError(f"r_index={r_index} outside the beat of {n} samples")
    if not (np.isfinite(rr) and 0.25 < rr < 3.0):
        raise ConfigError(f"rr must be in (0.25, 3) s, got {rr!r}")
    if lead_vectors is None:
        if C != 3:
            raise ConfigError(f"a beat of {C} channels needs lead_vectors (C, 3)")
        L = np.eye(3)
    else:
        L = np.asarray(lead_vectors, np.float64)
        if L.shape != (C, 3):
            raise ConfigError(f"lead_vectors must have shape ({C}, 3), got {L.shape}")
        if C == 2 or (C >= 3 and np.linalg.matrix_rank(L) < 3):
            raise ConfigError("lead_vectors must be one lead or have rank 3")
    vcg = y if C == 1 or lead_vectors is None else np.linalg.lstsq(L, y, rcond=None)[0]
    t = (np.arange(n) - r_index) / fs
    scale = np.ones(NW)
    scale[list(REPOL)] = rr ** (1.0 / 3.0)
    # starting patients are at RR = 1 s (the law of this function's output): into the fit's frame
    inits = [_data_init(t, vcg, scale), _start_at(default_patient(), rr)] if init is None else [_start_at(init, rr)]
    lo = np.concatenate([TAU_BOUNDS[:, 0] * scale, np.log(SIGMA_BOUNDS[:, 0] * scale)])
    hi = np.concatenate([TAU_BOUNDS[:, 1] * scale, np.log(SIGMA_BOUNDS[:, 1] * scale)])
    ynorm = np.linalg.norm(vcg - vcg.mean(axis=1, keepdims=True))
    if ynorm == 0:
        raise SignalError("beat is constant; nothing to fit")
    tau = np.zeros((3, NW))
    sigma = np.zeros((3, NW))
    amp = np.zeros((3, NW))
    model_v = np.zeros_like(vcg)
    offs = np.zeros(vcg.shape[0])
    ok = True
    for ch in range(vcg.shape[0]):
        x0, *starts = [np.clip(np.concatenate([p0.tau[ch] * scale, np.log(p0.sigma[ch] * scale)]),
                               lo + 1e-9, hi - 1e-9) for p0 in inits]
        if init is None:
            starts.append(np.clip(_extrema_start(t, vcg[ch], x0), lo + 1e-9, hi - 1e-9))
        if n_restarts and rng is not None and not fixed_timing:
            for _ in range(int(n_restarts)):
                xs = x0 + np.concatenate([rng.normal(0, 0.008, NW) * scale, rng.normal(0, 0.25, NW)])
                starts.append(np.clip(xs, lo + 1e-9, hi - 1e-9))
        tc, sc, coef, mod, succ = _fit_channel(t, vcg[ch], scale, x0, lo, hi, ynorm, starts, fixed_timing)
        ok &= bool(succ)
        model_v[ch] = mod
        offs[ch] = coef[-1]
        if vcg.shape[0] == 1:  # single lead: min-norm dipole, shared timing
            lv = L[0]
            tau[:], sigma[:] = tc, sc
            amp = np.outer(lv / (lv @ lv), coef[:NW])
        else:
            tau[ch], sigma[ch], amp[ch] = tc, sc, coef[:NW]
    model = model_v if (C == 1 or lead_vectors is None) else L @ model_v
    if C != 1 and lead_vectors is not None:
        offs = L @ offs
    res = float(np.linalg.norm(model - y) / np.linalg.norm(y - y.mean(axis=1, keepdims=True)))
    # slots of one role are interchangeable (and ST/T overlap): order them by centre
    for grp in (list(P_WAVES), list(QRS_WAVES), list(REPOL)):
        o = np.argsort(tau[:, grp], axis=1)
        for arr in (tau, sigma, amp):
            arr[:, grp] = np.take_along_axis(arr[:, grp], o, axis=1)
    patient = Patient(tau, sigma, amp)
    if fixed_timing:
        # the start's centres and widths, exactly (converting back below would move the ST/T
        # centres by the change of the QRS onset, which depends on the amplitudes: < 1 ms)
        return FitResult(Patient(np.array(init.tau, np.float64), np.array(init.sigma, np.float64), amp), res,
                         offs, model, ok)
    if rr != 1.0:
        # the model scales the ST/T centres about the patient's QRS onset q (model.scaled_timing:
        # tau f + q (1 - f)); the fit above divided them by f alone, which renders the same beat
        # at ``rr`` only once they are moved by -q (1 - f) / f (q: the fitted QRS, which no RR moves)
        f = rr ** (1.0 / 3.0)
        tau = tau.copy()
        tau[:, list(REPOL)] -= patient.qrs_onset() * (1.0 - f) / f
        patient = Patient(tau, sigma, amp)
    return FitResult(patient, res, offs, model, ok)


def beat_window(rr):
    """(before, after) s around the R peak holding one beat's P-QRS-T and no neighbour:
    the next P starts about 0.25 s before the next R, the previous T ends about 0.4 s
    after the previous R."""
    return min(0.30, max(0.20, rr - 0.40)), min(0.55, rr - 0.25)


def median_beat(signal, fs, r_peaks, before=0.30, after=0.55):
    """Median of the beats of ``signal`` (C, T) mV around ``r_peaks`` (sample indices).

    Returns (beat (C, n), r_index, rr_median_s). Beats whose window leaves the record are
    not used; raises if fewer than 3 remain.
    """
    signal = np.atleast_2d(np.asarray(signal, np.float64))
    r_peaks = np.asarray(r_peaks, int)
    b, a = int(round(before * fs)), int(round(after * fs))
    ok = r_peaks[(r_peaks - b >= 0) & (r_peaks + a < signal.shape[1])]
    if ok.size < 3:
        raise SignalError(f"need >= 3 complete beats for a median beat, got {ok.size}")
    stack = np.stack([signal[:, r - b:r + a] for r in ok])
    rr = float(np.median(np.diff(r_peaks))) / fs
    return np.median(stack, axis=0), b, rr


def fit_prior(fits, groups=None, morphology="NORM", shrinkage=0.5, sources=(), meta=None) -> Prior:
    """Gaussian prior from fitted patients.

    Parameters
    ----------
    fits : sequence of Patient — one per fitted beat
    groups : sequence of hashable, optional — record of each fit; the mean is the mean of
        record means (each record weighs the same) and the covariance is between-record
        plus mean within-record covariance
    shrinkage : float in [0, 1] — weight of the diagonal target (few records: the full
        covariance is poorly determined, Ledoit & Wolf 2004)
    Returns
    -------
    Prior
    """
    V = np.stack([f.to_vector() for f in fits])
    if V.shape[0] < 2:
        raise ConfigError(f"need >= 2 fits for a prior, got {V.shape[0]}")
    if not 0.0 <= shrinkage <= 1.0:
        raise ConfigError(f"shrinkage must be in [0, 1], got {shrinkage!r}")
    groups = np.zeros(V.shape[0], int) if groups is None else np.asarray(groups)
    uniq = list(dict.fromkeys(groups.tolist()))
    means = np.stack([V[groups == g].mean(0) for g in uniq])
    within = sum(np.cov(V[groups == g].T, bias=True) * (groups == g).sum() for g in uniq) / V.shape[0]
    between = np.cov(means.T) if len(uniq) > 1 else np.zeros_like(within)
    S = within + between
    m = 3 * NW
    floor = np.concatenate([np.full(m, 0.002 ** 2), np.full(m, 0.03 ** 2), np.full(m, 0.01 ** 2)])
    cov = (1 - shrinkage) * S + shrinkage * np.diag(np.diag(S)) + np.diag(floor)
    cov = 0.5 * (cov + cov.T)
    return Prior(means.mean(0), cov, morphology, int(V.shape[0]), len(uniq), tuple(sources),
                 dict(meta or {}, shrinkage=shrinkage))


FS_FIT = 250.0  # Hz: records are band-passed and resampled to this rate before fitting
FIT_BAND_HZ = (0.5, 40.0)
MAX_FIT_RESIDUAL = 0.10  # dipolar part of the normalised residual (see fit_records_prior)


def _prepare(leads, fs):
    """0.5-40 Hz zero-phase band-pass, then resampling to FS_FIT (polyphase)."""
    from fractions import Fraction

    from scipy.signal import butter, resample_poly, sosfiltfilt

    sos = butter(2, FIT_BAND_HZ, btype="band", fs=fs, output="sos")
    x = sosfiltfilt(sos, np.asarray(leads, np.float64), axis=1)
    fr = Fraction(FS_FIT / fs).limit_denominator(1000)
    return x if fr == 1 else resample_poly(x, fr.numerator, fr.denominator, axis=1)


def _r_peaks(vcg, fs):
    """R peaks: maxima of the spatial velocity at least 250 ms apart and above 40 % of
    its 99th percentile, refined to the spatial magnitude's maximum within ±30 ms."""
    from scipy.signal import find_peaks

    sv = np.linalg.norm(np.gradient(vcg, axis=1), axis=0)
    pk, _ = find_peaks(sv, height=0.4 * np.percentile(sv, 99), distance=int(0.25 * fs))
    mag = np.linalg.norm(vcg - np.median(vcg, axis=1, keepdims=True), axis=0)
    w = int(0.03 * fs)
    return np.array([max(p - w, 0) + int(np.argmax(mag[max(p - w, 0):p + w + 1])) for p in pk], int)


#: an aligned fit is kept when its residual is at most this much above the record's free fit
ALIGN_TOLERANCE = 0.01


@dataclass
class _RecordFit:
    """One record of :func:`fit_records_prior` between its passes: its prepared leads ``x``, R
    peaks ``pk``, beat window, median beat (R at ``r_index``, interval ``rr``), current fit and
    report entry."""

    name: str
    x: np.ndarray
    pk: np.ndarray
    before: float
    after: float
    beat: np.ndarray
    r_index: int
    rr: float
    fit: FitResult
    entry: dict


def _align_decompositions(fitted, lead_vectors, rng, log=None):
    """Refit every record's median beat starting from one reference decomposition, in place.

    A beat is a sum of Gaussians in many nearly equivalent ways: fitted one by one, records of
    the same class (even of the same patient) settle in different decompositions, and the mean
    of their parameter vectors -- the prior's mean -- then renders no beat like theirs (three
    records of one known LVH patient: R in V5 1.8 mV from the mean against 2.4 in every record).
    The reference is the record fitted best (lowest residual); each other record is refitted
    from it (with a few jittered restarts) and the aligned fit replaces its free fit unless its
    residual is more than :data:`ALIGN_TOLERANCE` above it. ``entry["aligned"]`` says which.
    """
    ref = min(fitted, key=lambda r: r.fit.residual)
    for r in fitted:
        if r is ref:
            r.entry["aligned"] = "reference"
            continue
        al = fit_beat(r.beat, FS_FIT, r_index=r.r_index, rr=r.rr, lead_vectors=lead_vectors, init=ref.fit.patient,
                      rng=rng, n_restarts=2)
        keep = al.residual <= r.fit.residual + ALIGN_TOLERANCE
        if log:
            log(f"{r.name}: refitted from {ref.name}'s decomposition, residual {al.residual:.3f} "
                f"(free {r.fit.residual:.3f}){'' if keep else ': kept the free fit'}")
        r.entry["aligned"] = bool(keep)
        r.entry["aligned_residual"] = al.residual
        if keep:
            r.fit = al


def fit_records_prior(records, lead_vectors, rng, *, group=4, shrinkage=0.05, log=None, meta=None,
                      morphology="NORM", min_records=2, basis=None) -> Prior:
    """The prior of class ``morphology`` from real records of that class (``scripts/fit_ode_prior.py``,
    ``scripts/class_prior_holdout.py`` and ``cardiosim prior fit [--class C]``).

    Per record: FIT_BAND_HZ band-pass and resampling to FS_FIT, R peaks on the spatial
    velocity of the least-squares dipole, ``fit_beat`` of the median beat through
    ``lead_vectors``, then of the medians of consecutive groups of ``group`` beats (beat-
    to-beat variability). With ``basis="common"`` (the default of class priors since 2026-12-07)
    the records' fits are first aligned to one decomposition (:func:`_align_decompositions`), then every
    median and sub-median is refitted on their common centres and widths, amplitudes only
    (:func:`_common_basis`): the model is linear in the amplitudes there, so the prior's mean
    renders the records' average beat projected on that basis, and the timing spread is the
    aligned fits' between-record spread (:func:`_with_timing_spread`). With ``basis="own"``
    each record keeps its own fit and its sub-medians refit the timing (the procedure of
    the shipped NORM prior, ``data/normal_prior.json``). Why: fitted the old way, three records
    of one known LVH patient gave a prior whose mean rendered R in V5 at 1.8 mV against the
    records' 2.4; over known patients 11-20 the mean rendered like the records for 4 of 10,
    on the common basis for 10 of 10 (``tests/test_ode_class_prior.py``, docs/CLASS_PRIORS.md).
    The model lies in the range of ``lead_vectors``, so the fit's normalised residual splits exactly into a non-dipolar part (what no dipole through
    this torso explains) and the fit's own; records whose own part is >= MAX_FIT_RESIDUAL
    are left out. :func:`fit_prior` pools the fits (each record weighs the same).

    Parameters
    ----------
    records : iterable of (name, leads (C, T) mV, fs Hz)
    lead_vectors : ndarray (C, 3) — lead = lead_vectors @ Frank VCG
    rng : numpy.random.Generator (fit restarts)
    log : callable(str), optional — progress lines
    morphology : str — the class the records show (``classes.MORPHOLOGIES``), stored as
        ``Prior.morphology``: "NORM" (default) is the normal beat that the hand-built
        classes start from; any other class makes a class prior, p(eta | class), which
        ``prior.sample_patient`` draws that class from directly (class screens, no
        hand-built morphology on top). The caller selects the records of the class.
    min_records : int — fewest records that must be fitted (default 2; a class with few
        real examples, e.g. one of two TINV records held out, can use 1: the prior's
        spread is then that record's beat-to-beat variation and the covariance floor only)
    basis : {"common", "own"}, optional — one Gaussian basis for every record or each record's
        own fit (see above); default "common" for a class prior, "own" for NORM (the shipped
        NORM prior's procedure, whose held-out evaluation has not been repeated on a common
        basis); stored in ``meta["basis"]``

    Returns
    -------
    Prior — ``meta["records"]`` says per record what was fitted or why it was left out
    """
    from .classes import CLASSES

    if morphology not in CLASSES or CLASSES[morphology].kind != "morphology":
        known = ", ".join(n for n, c in CLASSES.items() if c.kind == "morphology")
        raise ConfigError(f"unknown morphology class {morphology!r}; known: {known}")
    if int(min_records) < 1:
        raise ConfigError(f"min_records must be >= 1, got {min_records!r}")
    if basis is None:
        basis = "own" if morphology == "NORM" else "common"
    if basis not in ("common", "own"):
        raise ConfigError(f"basis must be 'common' or 'own', got {basis!r}")
    M = np.asarray(lead_vectors, np.float64)
    pinv = np.linalg.pinv(M)
    fits, groups, used, report, fitted = [], [], [], {}, []
    for name, leads, fs in records:
        try:
            x = _prepare(leads, fs)
            pk = _r_peaks(pinv @ x, FS_FIT)
            before, after = beat_window(np.median(np.diff(pk)) / FS_FIT)
            beat, ri, rr = median_beat(x, FS_FIT, pk, before, after)
            res = fit_beat(beat, FS_FIT, r_index=ri, rr=rr, lead_vectors=M, rng=rng, n_restarts=6)
        except (SignalError, ConfigError, ValueError) as e:
            report[name] = {"used": False, "reason": f"{type(e).__name__}: {e}"}
            continue
        y = beat - beat.mean(axis=1, keepdims=True)
        nondip = float(np.linalg.norm(y - M @ (pinv @ y)) / np.linalg.norm(y))
        own = float(np.sqrt(max(res.residual ** 2 - nondip ** 2, 0.0)))
        entry = {"rr_s": rr, "n_beats": int(pk.size), "residual": res.residual, "non_dipolar_residual": nondip,
                 "fit_residual": own, "intervals_rr1_s": res.patient.intervals()}
        if log:
            log(f"{name}: {pk.size} beats, RR {rr:.3f} s, residual {res.residual:.3f} (fit {own:.3f})")
        if own >= MAX_FIT_RESIDUAL:
            report[name] = dict(entry, used=False, reason=f"fit residual >= {MAX_FIT_RESIDUAL}")
            continue
        fitted.append(_RecordFit(name, x, pk, before, after, beat, ri, rr, res, entry))
    common = None
    if basis == "common" and fitted:
        if len(fitted) > 1:
            _align_decompositions(fitted, M, rng, log)
        common = _common_basis([r.fit.patient for r in fitted])
    for r in fitted:
        name, x, pk, before, after, beat, ri, rr, res, entry = (r.name, r.x, r.pk, r.before, r.after, r.beat,
                                                                r.r_index, r.rr, r.fit, r.entry)
        if common is not None:
            free = res
            res = fit_beat(beat, FS_FIT, r_index=ri, rr=rr, lead_vectors=M, init=common, fixed_timing=True)
            entry["common_basis_residual"] = res.residual
            if log:
                log(f"{name}: on the common basis, residual {res.residual:.3f} (own {free.residual:.3f})")
        sub = []
        for g0 in range(0, pk.size - group + 1, group):
            try:
                b, ri2, _ = median_beat(x, FS_FIT, pk[g0:g0 + group], before, after)
            except SignalError:  # group at the record edge without 3 complete beats
                continue
            r2 = fit_beat(b, FS_FIT, r_index=ri2, rr=rr, lead_vectors=M, init=res.patient, rng=rng, n_restarts=0,
                          fixed_timing=common is not None)
            fits.append(r2.patient)
            groups.append(name)
            sub.append(r2.residual)
        fits.append(res.patient)
        groups.append(name)
        used.append(name)
        report[name] = dict(entry, used=True, sub_median_residuals=sub)
    if len(used) < int(min_records):
        raise ConfigError(f"fewer than {int(min_records)} {morphology} records could be fitted ({len(used)} of "
                          f"{len(report)}); reasons: {sorted({v.get('reason', 'fitted') for v in report.values()})}")
    prior = fit_prior(fits, groups, morphology=morphology, shrinkage=shrinkage, sources=tuple(used),
                      meta=dict(meta or {}, fs_fit_hz=FS_FIT, band_hz=list(FIT_BAND_HZ), records=report,
                                basis=basis))
    if common is not None and len(fitted) > 1:
        prior = _with_timing_spread(prior, [r.fit.patient for r in fitted], shrinkage)
    return prior


def _common_basis(patients):
    """One set of Gaussian centres and widths for every record: the records' mean centres and
    mean log widths (amplitudes are refitted on it)."""
    tau = np.mean([p.tau for p in patients], axis=0)
    sigma = np.exp(np.mean([np.log(p.sigma) for p in patients], axis=0))
    return Patient(tau, sigma, np.mean([p.amp for p in patients], axis=0))


def _with_timing_spread(prior, free, shrinkage):
    """``prior`` (fitted on a common basis: no timing spread but the floor) with the
    between-record covariance of the records' aligned centres and log widths added to its
    timing block (shrunk toward its diagonal as :func:`fit_prior` does). Not the free fits':
    theirs mixes decompositions, a spread no patient has (with it, the class-screened draws
    of one known LVH patient's prior had their median QRS axis 17 degrees off the records')."""
    V = np.stack([p.to_vector() for p in free])[:, :2 * 3 * NW]
    S = np.cov(V.T)
    S = (1 - shrinkage) * S + shrinkage * np.diag(np.diag(S))
    cov = prior.cov.copy()
    k = 2 * 3 * NW
    cov[:k, :k] += S
    return dataclasses.replace(prior, cov=0.5 * (cov + cov.T))

