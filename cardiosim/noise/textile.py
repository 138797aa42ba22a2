"""Noise as a single-lead chest device records it, measured the same way on real and
simulated recordings, and fitted per electrode type x activity.

The real recordings (``$CARDIOSIM_DATA/textile``, Kalouskova's wearable-sensor set: 5
subjects x Ag/AgCl gel / dry chrome-nickel / textile electrodes x rest, arms, walk, run,
squats, ~60 s at 500 Hz in raw 12-bit ADC counts, gain unknown, every 2-s segment graded
1-4 for artefact by hand) fix what the simulated noise must look like. Because the gain is
unknown, everything is a ratio to the record's own QRS or a spectral *shape*:

* ``noise_to_qrs``: per 2-s segment, the RMS of the non-cardiac residual divided by the
  record's QRS peak-to-peak amplitude. The residual is the 1-40 Hz band-passed signal
  minus the record's median beat placed (least-squares amplitude) at every detected beat.
* ``kurtosis``: excess kurtosis of the record's residual between beats (bursts make it
  large; +-100 ms around each R peak is left out).
* ``psd``: Welch PSD of the residual between beats (+-100 ms around each R gated out with
  smoothed edges: the template misfit there is cardiac), normalised to unit power over 1-40 Hz.
* ``rail``: fraction of segments touching an ADC rail; ``contact``: fraction of segments
  with >= 0.1 s at a rail or flat (a lost contact).
* a grading rule: thresholds on ``log(noise_to_qrs)`` fitted to the graders' 1-4 labels, three
  per activity (the graders grade by activity too: :func:`fit_activity_grading_rule`) and three
  global ones for records of unknown activity (:func:`fit_grading_rule`).

Two fits of the same procedure ship: :data:`HELD_OUT_FIT_FILE`, fitted on subjects 01-03 only
(:data:`FIT_SUBJECTS`), which every comparison with real records runs against subjects 04-05
(:data:`HELD_OUT_SUBJECTS`: ``tests/test_noise_textile.py``, the README table, the sim-to-real
benchmark), and the default :data:`FIT_FILE`, fitted on all five subjects, whose expected error on
unseen subjects the leave-one-subject-out cross-validation reports (``python
scripts/fit_textile_noise.py --cross-validate``). :func:`fit_textile` makes either (refit with
``python scripts/fit_textile_noise.py [--subjects 01,02,03 --output FILE]``, which also measures
the simulated chest strap's QRS size that turns ratios into mV and calibrates each cell's level by
simulation: simulated records, measured by this same :func:`measure_record`, read the fit
subjects' median; the cardiac floor the measure reads on noiseless simulated records is part of
that calibration, so the script must be re-run when the ODE's beats change). A fit also holds
each activity's heart rate relative to rest (:func:`fit_heart_rate`), which :func:`draw_source_activity` gives ODE sources.
"""

from __future__ import annotations

import bisect
import functools
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import fft as _fft
from scipy import signal as _signal
from scipy import stats as _stats

from .._pcg64_kernels import _pcg64_address_last, pcg64_draws_match
from .._pcg64_kernels import standard_normal_into  # rng.standard_normal's numbers, faster
from .._scratch import scratch as _scratch
from ..errors import ConfigError, DataFormatError, SignalError
from . import _kernels

#: Electrode types and activities of the real recordings (names as in the simulator).
ELECTRODES: tuple[str, ...] = ("gel", "dry", "textile")
ACTIVITIES: tuple[str, ...] = ("rest", "arms", "walk", "run", "squats")
#: File-name spelling of the electrode types in ``textile/``.
FILE_ELECTRODE = {"gel": "AgAgCl", "dry": "CrNi", "textile": "textile"}
#: Validation split: :data:`HELD_OUT_FIT_FILE` is fitted on FIT_SUBJECTS only, and every
#: comparison with real records (tests, README tables, sim-to-real) runs that fit against
#: HELD_OUT_SUBJECTS, which it never saw.
FIT_SUBJECTS: tuple[str, ...] = ("01", "02", "03")
HELD_OUT_SUBJECTS: tuple[str, ...] = ("04", "05")
#: The shipped default (:data:`FIT_FILE`) is fitted on every subject: the validation above and
#: the leave-one-subject-out cross-validation (``scripts/fit_textile_noise.py --cross-validate``)
#: estimate how the procedure does on subjects it has not seen; the default uses all the data.
ALL_SUBJECTS: tuple[str, ...] = FIT_SUBJECTS + HELD_OUT_SUBJECTS
SEGMENT_S = 2.0
BAND_HZ = (1.0, 40.0)
FIT_FILE = Path(__file__).resolve().parent / "data" / "textile_fit.json"
#: The same procedure fitted on :data:`FIT_SUBJECTS` only: what validation against the
#: held-out subjects uses (``textile_fit = HELD_OUT_FIT_FILE`` in a NoiseConfig, ``fit=`` here).
HELD_OUT_FIT_FILE = Path(__file__).resolve().parent / "data" / "textile_fit_subjects_01-03.json"
_PSD_NPERSEG_S = 2.0
#: Probabilities at which the within-record distribution of segment levels is stored.
WITHIN_P = np.array([0.025, 0.05, 0.1, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.9, 0.95, 0.975])


@dataclass(frozen=True)
class RecordMeasures:
    """What :func:`measure_record` finds in one single-lead record.

    Attributes
    ----------
    noise_to_qrs : ndarray (n_segments,) -- residual RMS / record QRS peak-to-peak
    qrs_pp : float -- QRS peak-to-peak of the median beat (signal units)
    kurtosis : float -- excess kurtosis of the residual over the record
    f, psd : ndarray -- Welch PSD of the residual between beats (Hz, unit power over 1-40 Hz)
    rail : ndarray (n_segments,) bool -- segment touches a rail
    contact : ndarray (n_segments,) bool -- segment has >= 0.1 s railed or flat
    n_beats : int
    """

    noise_to_qrs: np.ndarray
    qrs_pp: float
    kurtosis: float
    f: np.ndarray
    psd: np.ndarray
    rail: np.ndarray
    contact: np.ndarray
    n_beats: int


@functools.lru_cache(maxsize=8)
def _band(fs: float):
    return _signal.butter(2, BAND_HZ, "bandpass", fs=fs, output="sos")


@functools.lru_cache(maxsize=8)
def _band_filtfilt(fs: float):
    """The measurement band-pass with its steady-state initial conditions and pad length
    (what scipy.signal.sosfiltfilt derives on every call), designed once per rate."""
    sos = _band(fs)
    return sos, _signal.sosfilt_zi(sos), _kernels.sosfiltfilt_padlen(sos)


def _run_mask(flags: np.ndarray, min_len: int) -> np.ndarray:
    """True on samples inside runs of ``flags`` at least ``min_len`` long."""
    out = np.zeros(flags.size, dtype=bool)
    if not flags.any():
        return out
    d = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    for a, b in zip(starts, stops):
        if b - a >= min_len:
            out[a:b] = True
    return out


def _own_spans(rp: np.ndarray, pre: int, post: int, p_lead: int) -> np.ndarray:
    """Per beat, the ``[start, stop)`` indices into its ``-pre ... +post`` window that are its
    own: from ``p_lead`` samples before its R (its P wave) to ``p_lead`` before the next R, the
    boundary kept in the later half of the RR interval (a fast beat's T wave ends where the next
    P begins), and moved into the two windows' overlap so that no sample between two beats is
    left unfitted up to RR = pre + post."""
    rr = rp[1:] - rp[:-1]
    edge = rp[1:] - np.minimum(p_lead, rr // 2)
    edge = np.clip(edge, rp[1:] - pre, rp[:-1] + post)
    lo = np.concatenate([[rp[0] - pre], edge])
    hi = np.concatenate([edge, [rp[-1] + post]])
    return np.stack([np.maximum(lo, rp - pre) - (rp - pre), np.minimum(hi, rp + post) - (rp - pre)], axis=1)


def _masked_median(beats: np.ndarray, spans: np.ndarray, lag: np.ndarray) -> np.ndarray:
    """Median over beats, per lag, of the samples inside each beat's own span; 0 at lags no
    beat owns."""
    m = np.full(beats.shape, np.nan)
    for j, (a, b) in enumerate(spans):
        m[j, a:b] = beats[j, a:b]
    owned = np.isfinite(m).any(axis=0)
    out = np.zeros(lag.size)
    out[owned] = np.nanmedian(m[:, owned], axis=0)
    return out


def residual(x: np.ndarray, fs: float):
    """Non-cardiac residual of one lead: detect the beats on the band-passed lead (1-40 Hz, zero
    phase; T waves as steep as a QRS are rejected); remove a baseline through the PR segments;
    align each beat to the median beat (+-3 samples) and subtract the median of its 9
    neighbouring beats with a least-squares amplitude, each beat over the samples it owns (its P
    wave to the next beat's); band-pass what is left.

    Returns ``(residual, y, template, r_peaks, qrs_pp)``: ``y`` the band-passed lead,
    ``template`` its median beat (-0.4 ... +0.8 s), ``qrs_pp`` the template's peak-to-peak
    within -60 ... +80 ms of R.
    """
    from ..qrs import detect_r_peaks

    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1 or x.size < 4 * fs:
        raise SignalError(f"need one lead of at least 4 s, got shape {x.shape} at {fs} Hz")
    if not np.all(np.isfinite(x)):
        raise SignalError("signal contains NaN or infinite samples")
    x0 = x - np.median(x)
    y = _signal.sosfiltfilt(_band(float(fs)), x0)
    r = detect_r_peaks(y, fs, refractory=0.25)
    # a chest lead's T wave can rival its QRS in size but not in steepness: drop detections
    # whose steepest slope (+-40 ms) is under 40 % of the steep beats'
    if r.size:
        d = np.abs(np.gradient(y))
        w = int(0.04 * fs)
        slope = np.array([d[max(0, i - w): i + w + 1].max() for i in r])
        r = r[slope >= 0.4 * np.percentile(slope, 90)]
    # windows long enough to tile every RR up to 1.2 s (50 bpm)
    pre, post = int(round(0.4 * fs)), int(round(0.8 * fs))
    if r.size < 3:
        raise SignalError(f"fewer than 3 beats detected in the record ({r.size})")
    # The beats are fitted before the band-pass, not after it: high-passed, a train of identical
    # beats is no longer one beat repeated -- each beat sits on an offset that follows the local
    # beat rate (the beats' mean over about a second), so heart-rate variability alone read as
    # noise. Instead a baseline through the PR segments (cubic spline, knots 70 ms before each R,
    # +-15 ms means: two mains periods) is removed, the beats are fitted to what is left, and
    # only their residual is band-passed.
    z = x0 - _pr_baseline(x0, r, fs)
    # zero padding lets beats near the ends be fitted too (their windows are cut)
    pad = pre + post + 3
    zp = np.pad(z, pad)
    rp = r + pad
    lag = np.arange(-pre, post)
    # Each beat owns its window only from its P wave to the next beat's: beyond that the window
    # holds the neighbours' T and QRS at lags that move with every RR. Medians, alignment and
    # amplitude taken over whole windows smeared those neighbours into the template and read them
    # as noise (docs/VALIDATION.md, "The cardiac floor").
    p_lead = int(round(0.2 * fs))
    spans = _own_spans(rp, pre, post, p_lead)
    # each beat aligned (+-3 samples) to the median beat, then fitted by the median of its
    # 9 neighbours (slow morphology changes with breathing and rate are cardiac, not noise)
    template = _masked_median(zp[rp[:, None] + lag[None, :]], spans, lag)
    shifts = np.arange(-3, 4)
    for j, i in enumerate(rp):
        a, b = spans[j]
        c = [float(zp[i + k + lag[a:b]] @ template[a:b]) for k in shifts]
        rp[j] = i + shifts[int(np.argmax(c))]
    spans = _own_spans(rp, pre, post, p_lead)
    beats = zp[rp[:, None] + lag[None, :]]
    fit = np.zeros_like(zp)
    for j, i in enumerate(rp):
        lo, hi = max(0, j - 4), j + 5
        local = _masked_median(beats[lo:hi], spans[lo:hi], lag)
        a, b = spans[j]
        tt = float(local[a:b] @ local[a:b])
        amp = float(np.clip(beats[j, a:b] @ local[a:b] / tt, 0.5, 1.5)) if tt > 0 else 1.0
        fit[i - pre + a: i - pre + b] = amp * local[a:b]
    res = _signal.sosfiltfilt(_band(float(fs)), z - fit[pad: pad + z.size])
    r = rp - pad
    # the QRS size is read on the band-passed median beat (as the graders saw the band-passed
    # record); within -60 ... +80 ms every beat owns its window
    yp = np.pad(y, pad)
    template = _masked_median(yp[rp[:, None] + lag[None, :]], spans, lag)
    q = template[pre - int(0.06 * fs): pre + int(0.08 * fs)]
    return res, y, template, r, float(q.max() - q.min())


def _pr_baseline(x: np.ndarray, r: np.ndarray, fs: float) -> np.ndarray:
    """Baseline of one lead through its PR segments: a natural cubic spline through the means of
    ``x`` over +-15 ms, 70 ms before each R peak; constant beyond the first and last knot."""
    from scipy.interpolate import CubicSpline

    half, lead = int(round(0.015 * fs)), int(round(0.07 * fs))
    k = r - lead
    k = k[(k - half >= 0) & (k + half < x.size)]
    if k.size == 0:
        return np.full(x.size, float(np.mean(x)))
    c = np.cumsum(np.concatenate([[0.0], x]))
    v = (c[k + half + 1] - c[k - half]) / (2 * half + 1)
    if k.size == 1:
        return np.full(x.size, float(v[0]))
    out = np.empty(x.size)
    out[: k[0]] = v[0]
    out[k[-1]:] = v[-1]
    out[k[0]: k[-1]] = CubicSpline(k, v, bc_type="natural")(np.arange(k[0], k[-1]))
    return out


def measure_record(x: np.ndarray, fs: float, *, rails: tuple[float, float] | None = None) -> RecordMeasures:
    """Measures of one single-lead record (see the module docstring).

    Parameters
    ----------
    x : ndarray (T,) -- the recorded lead (ADC counts or mV: only ratios are used)
    fs : float, Hz
    rails : (low, high), optional -- values at which the ADC saturates; ``None``: no rails
    """
    x = np.asarray(x, dtype=np.float64)
    res, _, _, r, qrs_pp = residual(x, fs)
    if not qrs_pp > 0:
        raise SignalError("QRS peak-to-peak of the median beat is zero")
    seg = int(round(SEGMENT_S * fs))
    n_seg = x.size // seg
    if n_seg < 1:
        raise SignalError(f"record shorter than one {SEGMENT_S}-s segment")
    # the first and last 0.5 s carry the band-pass's edge transients: left out
    edge = int(0.5 * fs)
    rs = res[: n_seg * seg].copy()
    rs[:edge] = np.nan
    rs[max(0, res.size - edge):] = np.nan
    rs = rs[: n_seg * seg].reshape(n_seg, seg)
    ratio = np.sqrt(np.nanmean(rs ** 2, axis=1)) / qrs_pp
    railed = np.zeros(x.size, dtype=bool) if rails is None else (x <= rails[0]) | (x >= rails[1])
    flat = np.concatenate([[False], np.diff(x) == 0])
    lost = _run_mask(railed | flat, int(0.1 * fs)) & (_run_mask(flat, int(0.1 * fs)) | railed)
    rail = railed[: n_seg * seg].reshape(n_seg, seg).any(axis=1)
    contact = lost[: n_seg * seg].reshape(n_seg, seg).any(axis=1)
    # kurtosis between beats: +-100 ms around each R left out, where beat-to-beat QRS
    # changes leave template-mismatch spikes that are cardiac, not noise
    between = np.ones(res.size, dtype=bool)
    h = int(0.1 * fs)
    for i in r:
        between[max(0, i - h): i + h] = False
    between[:edge] = False
    between[res.size - edge:] = False
    k = float(_stats.kurtosis(res[between], fisher=True))
    # the spectrum between beats too: the template misfit within +-100 ms of R is cardiac and
    # broadband (at rest it held 2-5x the 30-40 Hz share of the between-beat residual of the
    # fit subjects' dry and textile records, issue 14), and synthesised as stationary noise it
    # became a steady floor between the simulated beats. The gate's edges are smoothed (20-ms
    # Hann) so that it adds no broadband leakage; its mean square is divided out.
    w = np.hanning(max(3, int(0.02 * fs)))
    gate = np.convolve(between.astype(np.float64), w / w.sum(), mode="same")
    g = gate[edge: res.size - edge]
    f, p = _signal.welch(res[edge: res.size - edge] * g, fs=fs, nperseg=int(_PSD_NPERSEG_S * fs))
    p = p / max(float(np.mean(g ** 2)), 1e-12)
    inband = (f >= BAND_HZ[0]) & (f <= BAND_HZ[1])
    p = p / np.trapezoid(p[inband], f[inband])
    return RecordMeasures(ratio, qrs_pp, k, f, p, rail, contact, int(r.size))


# -- real recordings ------------------------------------------------------------------------------

def read_textile_record(folder, subject: str, electrode: str, activity: str):
    """One real record: ``(signal float64 counts [T], fs, grades int [n_segments])``."""
    import wfdb

    if electrode not in FILE_ELECTRODE:
        raise ConfigError(f"electrode must be one of {', '.join(ELECTRODES)}, got {electrode!r}")
    if activity not in ACTIVITIES:
        raise ConfigError(f"activity must be one of {', '.join(ACTIVITIES)}, got {activity!r}")
    stem = Path(folder) / f"{subject}_{FILE_ELECTRODE[electrode]}_{activity}"
    try:
        rec = wfdb.rdrecord(str(stem), physical=False)
        lab = np.loadtxt(f"{stem}.artifact.csv", delimiter=",", skiprows=1, dtype=np.int64, ndmin=2)
    except (OSError, ValueError) as exc:
        raise DataFormatError(f"cannot read textile record {stem}: {exc}") from None
    seg = int(round(SEGMENT_S * rec.fs))
    grades = np.zeros(rec.sig_len // seg, dtype=np.int64)
    for a, _, g in lab:
        if a // seg < grades.size:
            grades[a // seg] = g
    return rec.d_signal[:, 0].astype(np.float64), float(rec.fs), grades


REAL_RAILS = (0.0, 4095.0)  # 12-bit ADC of the real sensor


def subjects_in(folder) -> tuple[str, ...]:
    """Subjects of a folder of textile records, from the file names ``SS_ELECTRODE_ACTIVITY.hea``
    (sorted): what a fit or a comparison runs on when no subject list is given, so that a folder
    of other subjects (not 01-05) is read as it is.

    Raises
    ------
    DataFormatError
        The folder does not exist or holds no ``*.hea`` record.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataFormatError(f"no textile folder {folder}")
    found = tuple(sorted({p.name.split("_")[0] for p in folder.glob("*.hea")}))
    if not found:
        raise DataFormatError(f"no textile record (SS_ELECTRODE_ACTIVITY.hea) in {folder}")
    return found


def held_out_subjects(folder, fit: str | Path | None = HELD_OUT_FIT_FILE) -> tuple[str, ...]:
    """The subjects of ``folder`` (:func:`subjects_in`) that the fit ``fit`` (default the
    validation fit :data:`HELD_OUT_FIT_FILE`; ``None``: the shipped default) was not fitted on:
    04 and 05 in the shared folder, every subject in a folder of new ones.

    Raises
    ------
    ConfigError
        Every subject of the folder is one the fit was fitted on (nothing is held out).
    """
    fitted = set(load_fit(fit)["fit_subjects"])
    found = subjects_in(folder)
    held = tuple(s for s in found if s not in fitted)
    if not held:
        raise ConfigError(f"every subject in {folder} ({', '.join(found)}) is one the fit "
                          f"{fit or FIT_FILE} was fitted on: no held-out subject to compare with")
    return held


def _check_subjects(folder, subjects) -> None:
    """A :class:`DataFormatError` naming the requested subjects that have no record in ``folder``
    (before minutes of measuring stop at the first missing file)."""
    found = subjects_in(folder)
    missing = [s for s in subjects if s not in found]
    if missing:
        raise DataFormatError(f"subject(s) {', '.join(missing)} have no record in {folder} "
                              f"(subjects found: {', '.join(found)})")


def measure_real(folder, subjects) -> dict:
    """``{(electrode, activity): {'measures': [RecordMeasures], 'grades': [ndarray]}}`` of the
    records of ``subjects`` in ``folder`` (a :class:`DataFormatError` names subjects without
    records and the subjects found)."""
    _check_subjects(folder, subjects)
    out = {}
    for e in ELECTRODES:
        for a in ACTIVITIES:
            ms, gs = [], []
            for s in subjects:
                x, fs, g = read_textile_record(folder, s, e, a)
                m = measure_record(x, fs, rails=REAL_RAILS)
                n = min(m.noise_to_qrs.size, g.size)
                ms.append(m)
                gs.append(g[:n])
            out[(e, a)] = {"measures": ms, "grades": gs}
    return out


# -- summaries and the grading rule ---------------------------------------------------------------

def summarize(measures) -> dict:
    """Pooled summary of a list of :class:`RecordMeasures` (one electrode x activity)."""
    r = np.concatenate([m.noise_to_qrs for m in measures])
    q25, q50, q75 = np.percentile(r, [25, 50, 75])
    f = measures[0].f
    psd = np.exp(np.mean([np.log(np.interp(f, m.f, m.psd) + 1e-30) for m in measures], axis=0))
    return {"median": float(q50), "iqr": float(q75 - q25), "q25": float(q25), "q75": float(q75),
            "kurtosis": float(np.median([m.kurtosis for m in measures])),
            "rail_fraction": float(np.mean(np.concatenate([m.rail for m in measures]))),
            "contact_fraction": float(np.mean(np.concatenate([m.contact for m in measures]))),
            "f": f, "psd": psd, "n_segments": int(r.size)}


def compare_summaries(model: dict, real: dict) -> dict:
    """How a model's pooled summary reads against real records' (both :func:`summarize`
    dicts of one electrode x activity cell): the quantities issue 14's per-cell criteria are
    thresholds on.

    The model may be simulated records or other real records (the fit subjects' own, a
    perfect model of them: the floor set by how much subjects differ), so that both are
    judged by the same arithmetic.

    Parameters
    ----------
    model, real : dict
        :func:`summarize` of the model's and of the real records.

    Returns
    -------
    dict
        ``median_ratio`` and ``iqr_ratio`` (model / real, pooled 2-s segment ratios);
        ``kurtosis_ratio``: ``(3 + k_model) / (3 + k_real)`` of the excess kurtoses (the
        median over each side's records), i.e. of the kurtoses themselves; ``lsd_db``: RMS over
        1-40 Hz of ``10 log10(psd_model / psd_real)``, each side's PSD its records' mean
        log-spectrum (the real one read on the model's frequency grid); ``psd_diff_db``:
        that difference per frequency of ``f_band``.
    """
    f = np.asarray(model["f"])
    band = (f >= BAND_HZ[0]) & (f <= BAND_HZ[1])
    real_psd = np.interp(f[band], np.asarray(real["f"]), np.asarray(real["psd"]))
    diff = 10 * np.log10(np.asarray(model["psd"])[band] / real_psd)
    return {"median_ratio": float(model["median"] / real["median"]),
            "iqr_ratio": float(model["iqr"] / real["iqr"]),
            "kurtosis_ratio": float((3 + model["kurtosis"]) / (3 + real["kurtosis"])),
            "lsd_db": float(np.sqrt(np.mean(diff ** 2))),
            "f_band": f[band], "psd_diff_db": diff}


def fit_grading_rule(ratios: np.ndarray, grades: np.ndarray) -> np.ndarray:
    """Thresholds ``t1 < t2 < t3`` on ``noise_to_qrs`` (grade = 1 + #thresholds exceeded)
    that maximise agreement with the graders' labels (each threshold in turn, on the
    log-ratio grid of the data, repeated until stable)."""
    lr = np.log(np.asarray(ratios, dtype=np.float64))
    g = np.asarray(grades)
    grid = np.unique(np.percentile(lr, np.linspace(0, 100, 401)))
    t = np.array([np.percentile(lr, p) for p in (50, 75, 90)])

    def acc(tt):
        return np.mean(1 + (lr[:, None] > tt[None, :]).sum(axis=1) == g)

    for _ in range(10):
        old = t.copy()
        for k in range(3):
            lo = t[k - 1] if k > 0 else -np.inf
            hi = t[k + 1] if k < 2 else np.inf
            cand = grid[(grid > lo) & (grid < hi)]
            if cand.size:
                scores = [acc(np.concatenate([t[:k], [c], t[k + 1:]])) for c in cand]
                t[k] = cand[int(np.argmax(scores))]
        if np.array_equal(t, old):
            break
    return np.exp(t)


#: L2 penalty on the centred activity offsets of :func:`fit_activity_grading_rule`. The graders
#: graded every rest segment 1 (458 of 458, noise-to-QRS up to 0.17) and no running segment 1: the
#: unpenalised rest offset runs off to infinity (quasi-complete separation) and a simulated rest
#: record that lost its contact would still be graded 1. With this penalty the fit subjects' rest
#: thresholds are about 0.2 / 1.1 / 1.9, and the held-out accuracy and rank correlation move by
#: less than 0.01 from the unpenalised fit's (``scripts/grading_rule_study.py``).
GRADING_OFFSET_PENALTY = 1.0


def fit_activity_grading_rule(ratios, grades, activities, penalty: float = GRADING_OFFSET_PENALTY) -> dict:
    """Artefact-grading rule with one offset per activity: a cumulative-logit (ordinal logistic)
    model ``P(grade <= k) = sigmoid(c_k - (slope * log(noise_to_qrs) + offset[activity]))`` fitted
    by maximum likelihood (L2 ``penalty`` on the offsets about their mean), graded by the median
    of the fitted distribution: ``grade = 1 + #{k: score > c_k}``, i.e. per activity three
    thresholds on ``noise_to_qrs``. The graders grade by activity as well as by noise (the same
    noise is grade 1 at rest and grade 3 while running); slope and cut points are shared, so the
    rule has 4 parameters more than three global thresholds, not 15 x 3.

    Parameters
    ----------
    ratios : array (n,) -- noise-to-QRS per graded segment (:func:`measure_record`)
    grades : array (n,) int -- the graders' grades 1-4
    activities : array (n,) str -- the segment's activity, one of :data:`ACTIVITIES`
    penalty : float -- see :data:`GRADING_OFFSET_PENALTY`

    Returns
    -------
    dict
        ``slope``, ``cut_points`` (3), ``activity_offsets`` ({activity: offset}) and
        ``activity_thresholds_noise_to_qrs`` ({activity: [t1, t2, t3]}, increasing).

    Raises
    ------
    ConfigError
        An unknown activity, a grade outside 1-4, or inputs of different lengths.
    """
    from scipy import optimize
    from scipy.special import expit

    lr = np.log(np.asarray(ratios, dtype=np.float64))
    y = np.asarray(grades).astype(np.int64)
    act = np.asarray(activities)
    if not (lr.shape == y.shape == act.shape) or lr.ndim != 1 or lr.size == 0:
        raise ConfigError(f"ratios, grades and activities must be 1-D of one length, "
                          f"got {lr.shape}, {y.shape}, {act.shape}")
    if np.any((y < 1) | (y > 4)):
        raise ConfigError(f"grades must be 1-4, got {sorted(set(y.tolist()) - {1, 2, 3, 4})}")
    unknown = sorted(set(act.tolist()) - set(ACTIVITIES))
    if unknown:
        raise ConfigError(f"activity must be one of {', '.join(ACTIVITIES)}, got {unknown}")
    ai = np.array([ACTIVITIES.index(a) for a in act.tolist()], dtype=np.int64)
    n_a = len(ACTIVITIES)
    rows = np.arange(y.size)

    def unpack(th):
        off = th[1:1 + n_a] - th[1:1 + n_a].mean()        # centred: the cut points carry the level
        return th[0], off, np.cumsum(np.concatenate([th[1 + n_a:2 + n_a], np.exp(th[2 + n_a:])]))

    def nll(th):
        b, off, c = unpack(th)
        eta = b * lr + off[ai]
        cum = np.ones((y.size, 5))
        cum[:, 0] = 0.0
        cum[:, 1:4] = expit(c[None, :] - eta[:, None])
        p = cum[rows, y] - cum[rows, y - 1]
        return -np.sum(np.log(np.maximum(p, 1e-300))) + penalty * np.sum(off ** 2)

    th0 = np.zeros(n_a + 4)
    th0[0], th0[1 + n_a] = 1.0, float(np.median(lr))
    res = optimize.minimize(nll, th0, method="L-BFGS-B")
    b, off, c = unpack(res.x)
    if not b > 0:
        raise ConfigError(f"the grades do not rise with noise-to-QRS (fitted slope {b:.3g})")
    thr = {a: [float(np.exp((ck - off[i]) / b)) for ck in c] for i, a in enumerate(ACTIVITIES)}
    return {"slope": float(b), "cut_points": [float(v) for v in c],
            "activity_offsets": {a: float(off[i]) for i, a in enumerate(ACTIVITIES)},
            "activity_thresholds_noise_to_qrs": thr}


def grading_rule(ratios, grades, activities) -> dict:
    """The ``grading_rule`` entry of a fit, from the fit subjects' graded segments: the global
    thresholds (:func:`fit_grading_rule`, what grades a record whose activity is unknown) and the
    per-activity rule (:func:`fit_activity_grading_rule`, what grades one whose activity is
    known), each with its accuracy and Spearman rank correlation on the segments it was fitted on."""
    r = np.asarray(ratios, dtype=np.float64)
    g = np.asarray(grades)
    act = np.asarray(activities)
    thr = fit_grading_rule(r, g)
    by_act = fit_activity_grading_rule(r, g, act)
    t_seg = np.array([by_act["activity_thresholds_noise_to_qrs"][a] for a in act])
    g_act = 1 + (r[:, None] > t_seg).sum(axis=1)
    return {"thresholds_noise_to_qrs": [float(t) for t in thr],
            "accuracy_fit": float(np.mean(grade(r, thr) == g)),
            "spearman_fit": float(_stats.spearmanr(r, g).statistic),
            **by_act,
            "activity_accuracy_fit": float(np.mean(g_act == g)),
            "activity_spearman_fit": float(_stats.spearmanr(g_act, g).statistic),
            "activity_penalty": GRADING_OFFSET_PENALTY,
            "about": ("thresholds_noise_to_qrs: 3 global thresholds on noise-to-QRS (maximum accuracy), for "
                      "a record whose activity is unknown; activity_thresholds_noise_to_qrs: per activity, "
                      "from an ordinal-logistic model on log noise-to-QRS with one offset per activity "
                      "(noise.textile.fit_activity_grading_rule), for a record whose activity is known. "
                      "*_fit: on the fit subjects' own graded segments; held-out numbers: "
                      "scripts/grading_rule_study.py")}


def graded_segments(real: dict):
    """``(ratios, grades, activities)`` of every graded segment of :func:`measure_real`'s output
    (segments the graders left unlabelled, grade 0, left out)."""
    r, g, a = [], [], []
    for (_, act), v in real.items():
        for m, gg in zip(v["measures"], v["grades"]):
            keep = gg >= 1
            r.append(m.noise_to_qrs[: gg.size][keep])
            g.append(gg[keep])
            a.append(np.full(int(keep.sum()), act))
    return np.concatenate(r), np.concatenate(g), np.concatenate(a)


def grading_thresholds(activity: str | None = None, electrode: str | None = None, fit=None) -> np.ndarray:
    """The three noise-to-QRS thresholds that grade a record of ``activity`` on ``electrode``
    electrodes by the fit ``fit`` (:func:`load_fit`; default the shipped fit): the activity's
    (:func:`fit_activity_grading_rule`) when the activity is known and the fit has them, the
    global ones otherwise (``activity=None``, or a fit made before the per-activity rule: graded
    as before). The simulator's activity names (``walking``, ``arm_movement``...) read as the
    recorded activity they simulate (``motion.config.NOISE_ACTIVITY``). The electrode type is
    checked but does not move the thresholds: offsets per electrode x activity graded held-out
    subjects no better than per activity (``scripts/grading_rule_study.py``).

    Raises
    ------
    ConfigError
        An unknown activity or electrode type.
    """
    return _thresholds(_fit_key(fit), _grading_activity(activity, electrode))


def _grading_activity(activity, electrode):
    """The recorded activity (:data:`ACTIVITIES`) whose thresholds grade ``activity``, or None."""
    from ..motion.config import NOISE_ACTIVITY

    if electrode is not None and electrode not in ELECTRODES:
        raise ConfigError(f"electrode must be one of {', '.join(ELECTRODES)} (or None), got {electrode!r}")
    if activity is None:
        return None
    if activity not in NOISE_ACTIVITY:
        raise ConfigError(f"activity must be one of {', '.join(NOISE_ACTIVITY)} (or None), got {activity!r}")
    return NOISE_ACTIVITY[activity]


def grade(noise_to_qrs, thresholds) -> np.ndarray:
    """Artefact grade 1-4 from noise-to-QRS ratios and the rule's thresholds (int8)."""
    r = np.asarray(noise_to_qrs, dtype=np.float64)
    return (1 + (r[..., None] > np.asarray(thresholds, dtype=np.float64)).sum(axis=-1)).astype(np.int8)


def grade_fractions(grades) -> list[float]:
    g = np.asarray(grades)
    return [float(np.mean(g == k)) for k in (1, 2, 3, 4)]




def summarize_recording(x: np.ndarray, fs: float, *, rails: tuple[float, float] | None = None,
                        fit: str | None = None) -> dict:
    """What the textile noise model is fitted and judged with, measured on one lead of any
    recording (your device's, or a simulated record exported to WFDB): per 2-s segment the
    noise-to-QRS ratio (:func:`measure_record`) and its artefact grade by the shipped grading
    rule (fitted to the graders of textile subjects 01-03; ``fit``: another fit file's rule),
    summarised for the record.

    Returns
    -------
    dict with ``n_beats``, ``qrs_pp`` (the record's units), ``noise_to_qrs_median``, ``_q25``,
    ``_q75``, ``residual_kurtosis`` (excess, between beats), ``grade_fractions`` (grades 1-4),
    ``record_grade`` (grade of the median segment), ``rail_fraction``, ``contact_fraction`` and
    the per-segment ``noise_to_qrs`` and ``grades`` lists.

    Raises
    ------
    SignalError
        A lead shorter than 4 s, with NaN samples, or with fewer than 3 detectable beats.
    """
    m = measure_record(x, fs, rails=rails)
    thr = _thresholds(_fit_key(fit))
    g = grade(m.noise_to_qrs, thr)
    q25, q50, q75 = np.nanpercentile(m.noise_to_qrs, [25, 50, 75])
    return {"n_beats": m.n_beats, "qrs_pp": m.qrs_pp, "noise_to_qrs_median": float(q50),
            "noise_to_qrs_q25": float(q25), "noise_to_qrs_q75": float(q75), "residual_kurtosis": m.kurtosis,
            "grade_fractions": grade_fractions(g), "record_grade": int(grade(q50, thr)),
            "rail_fraction": float(np.mean(m.rail)), "contact_fraction": float(np.mean(m.contact)),
            "noise_to_qrs": [round(float(v), 6) for v in m.noise_to_qrs], "grades": [int(v) for v in g]}


def grade_lanes_shape(n_l: int, n_t: int, fs: float) -> tuple[tuple[int, int], int]:
    """``(shape, padlen)`` of the time-major float64 buffer in which :func:`artefact_grades`
    band-passes a record of ``n_l`` leads of ``n_t`` samples at ``fs`` Hz:
    ``[n_t + 2 padlen, 2 n_l]``, the record's noise and clean lanes in rows ``padlen`` to
    ``padlen + n_t - 1`` (see ``lanes`` of :func:`artefact_grades`)."""
    padlen = _band_filtfilt(float(fs))[2]
    return (int(n_t) + 2 * padlen, 2 * int(n_l)), padlen


def artefact_grades(recorded: np.ndarray, clean: np.ndarray, fs: float, fit: str | None = None, *,
                    activity: str | None = None, electrode: str | None = None, lanes: np.ndarray | None = None):
    """Artefact grade (1-4, the rule fitted to the graders' labels) of a simulated record,
    per 2-s segment and for the whole record.

    In a simulation the non-cardiac part is known: ``recorded - clean`` (the same device
    applied to the leads without electrode noise), band-passed 1-40 Hz as in
    :func:`measure_record`; each lead's QRS size is the median over segments of the
    band-passed clean lead's peak-to-peak. Per segment the ratio is the median over the
    leads; the record's grade is the grade of its median segment ratio.

    Parameters
    ----------
    recorded, clean : ndarray [n_leads, T] mV
    fs : float, Hz
    fit : str, optional
        Fit file whose grading rule grades (:func:`load_fit`; default the shipped fit).
    activity : str, optional
        The wearer's activity during the record (a simulator activity, ``motion.config.
        NOISE_ACTIVITY``): graded by that activity's thresholds (:func:`grading_thresholds`);
        ``None``: by the global thresholds, as before the per-activity rule.
    electrode : str, optional
        The electrode type (:data:`ELECTRODES`), checked; the rule does not depend on it.
    lanes : ndarray, optional
        A C-contiguous float64 buffer of :func:`grade_lanes_shape` whose rows ``padlen`` to
        ``padlen + T - 1`` already hold, time-major, ``recorded[l] - clean[l]`` (the difference
        in the leads' dtype) in column ``l`` and ``clean[l]`` in column ``n_leads + l`` -- as
        :func:`cardiosim.device.apply_device` writes them (``grade_lanes``) while it records:
        they are then not formed from the rows again. The caller vouches that they are
        these values; the buffer is overwritten. Without it a per-thread buffer is used.

    Returns
    -------
    grades : ndarray [n_segments] int8 (empty for records shorter than one segment)
    record_grade : int
    ratio : ndarray [n_segments] float64 -- noise-to-QRS per segment

    Raises
    ------
    ConfigError
        An unknown activity or electrode type.
    SignalError
        Recorded and clean leads of different shapes, or a record too short for the band-pass.
    """
    thr = grading_thresholds(activity, electrode, fit)
    rec = np.atleast_2d(np.asarray(recorded))
    cl = np.atleast_2d(np.asarray(clean))
    if rec.dtype != np.float32 or cl.dtype != np.float32:       # float32 device output stays float32
        rec, cl = rec.astype(np.float64), cl.astype(np.float64)
    if rec.shape != cl.shape:
        raise SignalError(f"recorded {rec.shape} and clean {cl.shape} leads differ in shape")
    seg = int(round(SEGMENT_S * fs))
    n_seg = rec.shape[1] // seg
    if n_seg == 0 or rec.shape[1] < 64:
        return np.zeros(0, dtype=np.int8), 1, np.zeros(0)
    # noise and clean leads band-passed in one numba pass over the stacked rows (the kernel is
    # scipy.signal.sosfiltfilt exactly; tests/test_noise_kernels.py)
    sos, zi, padlen = _band_filtfilt(float(fs))
    if rec.shape[1] <= padlen:
        raise SignalError(f"record of {rec.shape[1]} samples is too short for the {BAND_HZ} Hz band-pass")
    n_l, n_t = rec.shape
    # One numba pass (_kernels.artefact_grades_kernel): the rows [rec - cl; cl] formed straight
    # into a time-major buffer, band-passed there (scipy.signal.sosfiltfilt exactly;
    # tests/test_noise_kernels.py), then per lead the clean QRS size (median over segments of
    # the peak-to-peak), per segment the median over leads of noise RMS / QRS (inf for a lead
    # with no QRS at all: unreadable), graded by the thresholds -- NumPy's operations and order
    # (its twin is the NumPy code it replaced), read from that buffer with the leads side by
    # side. Every record of a dataset passes here with the same shapes: the ~1-MB buffer is
    # kept per thread (a fresh one costs its page faults anew on every record, 0.4 ms a
    # default record) and fully overwritten before it is read. An activity's rule is three
    # thresholds like the global one: the same kernel grades both.
    ratio = np.empty(n_seg)
    g = np.empty(n_seg, dtype=np.int8)
    if lanes is not None:
        if (not isinstance(lanes, np.ndarray) or lanes.dtype != np.float64 or not lanes.flags.c_contiguous
                or lanes.shape != (n_t + 2 * padlen, 2 * n_l)):
            raise SignalError(f"lanes must be a C-contiguous float64 array of shape {(n_t + 2 * padlen, 2 * n_l)}, "
                              f"got {getattr(lanes, 'shape', None)}")
        record_grade = _kernels.artefact_grades_lanes_kernel(sos, zi, lanes, n_l, n_t, padlen, n_seg, seg, thr,
                                                             ratio, g)
    else:
        record_grade = _kernels.artefact_grades_kernel(
            sos, zi, rec, cl, padlen, _scratch("textile.ext", (n_t + 2 * padlen, 2 * n_l), np.float64),
            n_seg, seg, thr, ratio, g)
    return g, int(record_grade), ratio


@functools.lru_cache(maxsize=64)
def _thresholds(key=None, activity: str | None = None) -> np.ndarray:
    """The grading rule's thresholds (float64, read-only) from the fit of ``key`` (:func:`_fit_key`):
    ``activity``'s (a recorded activity) where the fit has per-activity thresholds, else the global ones."""
    rule = _load_fit(key)["grading_rule"]
    by_act = rule.get("activity_thresholds_noise_to_qrs")
    chosen = by_act[activity] if activity is not None and by_act else rule["thresholds_noise_to_qrs"]
    thr = np.asarray(chosen, dtype=np.float64)
    thr.setflags(write=False)
    return thr


# -- heart rate per activity ---------------------------------------------------------------------

#: A record's heart rate is read only when its beat detection is regular: at most this
#: fraction of RR intervals more than 20 % away from the median (noisy running records
#: otherwise count artefacts as beats).
_HR_IRREGULAR_MAX = 0.2


def record_heart_rate(x: np.ndarray, fs: float) -> float:
    """Heart rate (bpm) of one single-lead record from the median RR interval of the beats
    :func:`residual` detects; NaN when the detection is irregular (more than 20 % of the
    intervals over 20 % from the median: detector failures, not arrhythmia, in these records)."""
    r = residual(x, fs)[3]
    rr = np.diff(r) / fs
    if rr.size < 5:
        return float("nan")
    med = float(np.median(rr))
    if np.mean(np.abs(rr / med - 1.0) > 0.2) > _HR_IRREGULAR_MAX:
        return float("nan")
    return 60.0 / med


def measure_heart_rates(folder, subjects) -> dict:
    """``{(subject, electrode): {activity: bpm}}`` of the real records (NaN: unreadable)."""
    out = {}
    for s in subjects:
        for e in ELECTRODES:
            out[(s, e)] = {a: record_heart_rate(*read_textile_record(folder, s, e, a)[:2]) for a in ACTIVITIES}
    return out


def fit_heart_rate(folder, subjects=FIT_SUBJECTS) -> dict:
    """Heart rate of each activity relative to rest, fitted on ``subjects``.

    Each subject wore each electrode type in one session (five activities, one after the
    other), so the ratio of an activity's rate to the same session's rest rate removes the
    subject's and the session's own level. Per activity: the median of ``log(HR / HR_rest)``
    over sessions and its robust spread (MAD * 1.4826), and the absolute rates' median.
    """
    hr = measure_heart_rates(folder, subjects)
    out = {}
    for a in ACTIVITIES:
        lr = np.array([np.log(v[a] / v["rest"]) for v in hr.values() if np.isfinite(v[a]) and np.isfinite(v["rest"])])
        bpm = np.array([v[a] for v in hr.values() if np.isfinite(v[a])])
        med = float(np.median(lr)) if lr.size else 0.0
        out[a] = {"log_ratio_to_rest_median": med,
                  "log_ratio_to_rest_sd": float(1.4826 * np.median(np.abs(lr - med))) if lr.size > 1 else 0.0,
                  "ratio_to_rest_median": float(np.exp(med)), "bpm_median": float(np.median(bpm)),
                  "n_sessions": int(lr.size)}
    out["rest"].update(log_ratio_to_rest_median=0.0, log_ratio_to_rest_sd=0.0, ratio_to_rest_median=1.0)
    return out


def activity_heart_rate(rng: np.random.Generator, activity: str, rest_bpm: float,
                        limits: tuple[float, float] = (20.0, 250.0), fit: str | None = None) -> float:
    """Heart rate (bpm) during ``activity`` of a heart beating ``rest_bpm`` at rest: the rest
    rate times a ratio drawn from the fit (log-normal, median and spread over the fit
    subjects' sessions, :func:`fit_heart_rate`; ``fit``: another fit file, :func:`load_fit`),
    kept inside ``limits`` (a rhythm class's rate range, so that the class stays what its
    label says)."""
    from ..motion.config import NOISE_ACTIVITY

    if activity not in NOISE_ACTIVITY:
        raise ConfigError(f"activity must be one of {', '.join(NOISE_ACTIVITY)}, got {activity!r}")
    row = load_fit(fit)["heart_rate"][NOISE_ACTIVITY[activity]]
    ratio = np.exp(row["log_ratio_to_rest_median"] + row["log_ratio_to_rest_sd"] * rng.standard_normal())
    return float(np.clip(rest_bpm * ratio, *limits))


def draw_source_activity(rng, activities: dict, rhythm: str, *, motion: bool = True,
                         fit: str | None = None):
    """Activity of an ODE source's wearer, drawn from the recipe's weights, the heart rate it
    implies and the rhythm class that rate makes: ``(activity, bpm or None, rhythm)``.

    ``None`` leaves the rate to the ODE: at rest (the ODE's resting ranges), without motion
    (``motion=False``: the wearer is at rest, as the noise then is), and for rhythms whose
    ventricular rate is not the sinus node's (AF, flutter). Otherwise the resting rate is
    drawn from the ODE's range for the rhythm and raised by :func:`activity_heart_rate`.

    A sinus rhythm is named by its rate (below 60 bpm bradycardia, above 100 tachycardia):
    a resting SR wearer who runs at 130 bpm records a sinus tachycardia, and that is the
    record's rhythm class (``SB``, ``SR`` or ``STACH``, its rate kept 2 % inside the class's
    limits, so that the measured rate meets the label). Capping the rate at the
    resting class's limit instead (until 2026-12-06) put half of the running SR records at
    exactly 100 bpm, where the textile subjects ran at a median 134 bpm. Rhythms with
    ectopy or a long PR on a sinus node (PVC, PAC, IAVB) keep their class and the
    sinus-rhythm rate limits (one rhythm class per record: "sinus tachycardia with PVCs" has
    none).

    Parameters
    ----------
    rng : numpy.random.Generator, or a callable with no arguments that returns one
        The draws' generator. A callable is called only when a draw can change the result:
        with one activity and a resting or non-sinus wearer nothing is drawn, and a
        source's own generator need not be built (``SeedSequence`` and ``PCG64``: ~18 µs).
        Where it is built, it draws what a Generator passed directly draws.
    activities : dict of str to float
        Weights of the activities (non-negative, positive sum).
    rhythm : str
        The resting rhythm class.
    motion : bool
    fit : str, optional
        Another textile fit file (:func:`load_fit`).

    Returns
    -------
    tuple
        ``(activity, bpm or None, rhythm)``.
    """
    from ..ode import CLASSES
    from ..ode import synth as _synth

    if not motion:
        return "rest", None, rhythm
    lazy = not isinstance(rng, np.random.Generator)
    names, cdf = _activity_cdf(tuple(activities.items()))
    pending = False  # the activity's draw not made yet (one activity, rng not built)
    if cdf is None:  # weights Generator.choice rejects: its own error
        rng = rng() if lazy else rng
        w = np.array([activities[n] for n in names], dtype=float)
        activity = names[int(rng.choice(len(names), p=w / w.sum()))]
    elif len(names) == 1 and lazy:
        activity, pending = names[0], True
    else:
        rng = rng() if lazy else rng
        # ``rng.choice(len(names), p=w / w.sum())``: one ``random()`` against choice's
        # normalised cumulative weights (``searchsorted(side="right")``), without its
        # argument checks (~19 µs a call)
        activity = names[bisect.bisect_right(cdf, rng.random())]
    ranges = getattr(_synth, "_HR_RANGE", {})
    rest_range = ranges.get(rhythm)
    if rhythm not in CLASSES or rest_range is None or rhythm in ("AF", "AFL") or activity in ("rest", "sitting"):
        return activity, None, rhythm
    if pending:  # the generator now draws: first the activity's draw, as choice made it
        rng = rng()
        rng.random()
    rest = float(rng.uniform(*rest_range))
    if rhythm in _SINUS_BY_RATE and all(r in ranges for r in _SINUS_BY_RATE):
        bpm = activity_heart_rate(rng, activity, rest, (20.0, 250.0), fit=fit)
        rhythm = "SB" if bpm < 60.0 else "SR" if bpm <= 100.0 else "STACH"
        lo, hi = CLASSES[rhythm].limits["hr"]
        return activity, float(np.clip(bpm, lo * _RATE_MARGIN, hi / _RATE_MARGIN)), rhythm
    # sinus-driven rhythms without a rate criterion of their own (PVC, PAC, IAVB) keep the
    # sinus-rhythm range: above it the record would be a sinus tachycardia
    limits = CLASSES[rhythm].limits.get("hr") or CLASSES["SR"].limits["hr"]
    return activity, activity_heart_rate(rng, activity, rest, limits, fit=fit), rhythm


@functools.lru_cache(maxsize=16)
def _activity_cdf(items: tuple) -> tuple[list, list | None]:
    """Sorted activity names of ``(name, weight)`` pairs and the cumulative distribution
    ``Generator.choice(len(names), p=w / w.sum())`` draws from (``cdf = p.cumsum();
    cdf /= cdf[-1]``, as a list), made once per weighting; the cdf is None for weights
    ``choice`` would reject (negative, non-finite, zero sum), which then go through it."""
    weights = dict(items)
    names = sorted(weights)
    w = np.array([weights[n] for n in names], dtype=float)
    total = w.sum()
    if not (np.all(np.isfinite(w)) and np.all(w >= 0) and total > 0):
        return names, None
    cdf = (w / total).cumsum()
    cdf /= cdf[-1]
    return names, cdf.tolist()


#: The sinus rhythm classes, named by the rate (:func:`draw_source_activity`).
_SINUS_BY_RATE = ("SB", "SR", "STACH")
#: An exercise rate is kept 2 % inside its class's limits (SR 61.2-98.0 bpm, STACH 102-147):
#: the record's RR variability must not carry its measured rate across the class boundary.
_RATE_MARGIN = 1.02


# -- the fitted file ------------------------------------------------------------------------------

def fit_textile(folder, subjects=FIT_SUBJECTS) -> dict:
    """Fit the per electrode x activity targets and the grading rule on ``subjects``.

    Returns the JSON-ready dict written to :data:`FIT_FILE` (every subject) or
    :data:`HELD_OUT_FIT_FILE` (:data:`FIT_SUBJECTS`) by :func:`write_fit`.

    Raises
    ------
    ConfigError
        Fewer than 2 subjects.
    DataFormatError
        A subject has no record in ``folder`` (named, with the subjects found), or a record of
        a subject cannot be read.
    """
    subjects = tuple(subjects)
    # one record per electrode x activity cell and subject: the between-record spread is a
    # pooled variance over the cells, which one subject cannot give (it divided by zero)
    if len(set(subjects)) < 2:
        raise ConfigError(f"a textile noise fit needs at least 2 subjects (the spread between records), "
                          f"got {list(subjects)}")
    _check_subjects(folder, subjects)
    found = subjects_in(folder)
    held = [s for s in found if s not in subjects]
    real = measure_real(folder, subjects)
    rule = grading_rule(*graded_segments(real))
    table = {}
    f_out = np.round(np.geomspace(BAND_HZ[0], BAND_HZ[1], 24), 3)
    # Noise is fitted in units of the typical QRS of all fit records (one sensor, one gain),
    # not record by record: the noise in mV follows activity and electrode, and the ratio
    # to a record's own QRS then varies with the body as it does in the real records.
    q_typ = float(np.median([m.qrs_pp for v in real.values() for m in v["measures"]]))
    # The spread of the level between records (subject, skin, fit) is pooled over all
    # cells: three records per cell cannot estimate it alone. Pooled variance of the record
    # medians about their cell's mean (one degree of freedom per cell used by the mean):
    # a robust spread of deviations from a 3-record median is biased low (one deviation
    # per cell is 0 by construction) and drops the loose-strap records that make the real
    # segments' interquartile range. Two versions: of the noise level in units of the
    # typical QRS, and of the ratio to each record's own QRS (what the measure reads; the
    # calibration script sets the simulated level spread from it and the simulated
    # patients' own QRS spread).
    cell_logs = {k: [np.log(m.noise_to_qrs * m.qrs_pp / q_typ) for m in v["measures"]] for k, v in real.items()}

    def pooled_sd(groups):
        groups = [np.asarray(g, dtype=np.float64) for g in groups if len(g) > 1]
        return float(np.sqrt(sum(((g - g.mean()) ** 2).sum() for g in groups) / sum(g.size - 1 for g in groups)))
    sd_between = pooled_sd([[np.median(lr) for lr in logs] for logs in cell_logs.values()])
    sd_between_ratio = pooled_sd([[np.median(np.log(m.noise_to_qrs)) for m in v["measures"]] for v in real.values()])
    for (e, a), v in real.items():
        table[f"{e}/{a}"] = cell_row(v["measures"], q_typ, f_out, sd_between, sd_between_ratio,
                                     grade_fractions(np.concatenate(v["grades"])))
    return {
        "about": ("Noise targets per electrode type x activity measured on the textile wearable recordings "
                  "(Kalouskova, GPL-3.0) by cardiosim.noise.textile; fitted on subjects "
                  f"{', '.join(subjects)}"
                  + (f" only, subjects {', '.join(held)} held out for validation" if held else
                     " (every subject: validation and cross-validation use fits that leave subjects out)")
                  + ". Refit: python scripts/fit_textile_noise.py [DATA_DIR] [--subjects ...] [--output FILE]"),
        "fit_subjects": list(subjects),
        "segment_s": SEGMENT_S,
        "band_hz": list(BAND_HZ),
        "grading_rule": rule,
        "psd_f_hz": [float(f) for f in f_out],
        "within_quantile_p": [float(v) for v in WITHIN_P],
        "qrs_pp_typical_counts": q_typ,
        "table": table,
        "heart_rate": fit_heart_rate(folder, subjects),
    }


#: The largest spectral-shape correction (dB) the calibration by simulation applies at any
#: frequency (:func:`spectrum_correction`): it corrects the measure acting twice on simulated
#: noise, not a spectrum the fit did not see.
SHAPE_LIMIT_DB = 6.0


def spectrum_correction(measures, target_db, f_out, previous_db) -> np.ndarray:
    """The next spectral-shape correction (dB on ``f_out``) of one cell: the previous one plus
    how far the simulated records' mean log-spectrum (``measures``, read by the same measure as
    the real records) falls below the fit subjects' (``target_db``), smoothed over neighbouring
    frequencies (1-2-1 on the log-spaced grid: the panel's own sampling wiggles are not chased)
    and kept within :data:`SHAPE_LIMIT_DB`.

    Both spectra are normalised to unit power over 1-40 Hz, so the correction is of shape only
    (the level is the level calibration's). Where the cardiac floor dominates (rest), the step
    under-corrects rather than overshoots: the floor's own spectrum does not move with it."""
    sm = summarize(measures)
    d = np.asarray(target_db, dtype=np.float64) - 10 * np.log10(np.interp(f_out, sm["f"], sm["psd"]))
    dp = np.concatenate([d[:1], d, d[-1:]])
    d = 0.25 * dp[:-2] + 0.5 * dp[1:-1] + 0.25 * dp[2:]
    return np.clip(np.asarray(previous_db, dtype=np.float64) + d, -SHAPE_LIMIT_DB, SHAPE_LIMIT_DB)


def cell_row(measures, q_typ: float, f_out, sd_between: float, sd_between_ratio: float,
             fractions: list[float]) -> dict:
    """One electrode x activity row of a fit table from the cell's record measures
    (:func:`measure_record`): the level ``log(noise_to_qrs * qrs_pp / q_typ)`` per segment
    (noise in units of the typical QRS ``q_typ`` of all the fit's records), its median, its
    spread inside a record (SD and quantiles), the pooled ratio statistics, the residual
    kurtosis and spectrum (on ``f_out``, dB), and the given between-record spreads and grade
    fractions. Used by :func:`fit_textile` and for a user's own device
    (:mod:`cardiosim.device_fit`)."""
    s = summarize(measures)
    psd = np.interp(f_out, s["f"], s["psd"])
    logs = [np.log(m.noise_to_qrs * m.qrs_pp / q_typ) for m in measures]
    within = [np.subtract(*np.percentile(lr, [75, 25])) / 1.349 for lr in logs]
    # the segments' spread inside a record (each record's own median removed), the
    # median over the cell's records of each quantile: activity comes in episodes, so
    # the distribution is skewed and heavy on the noisy side, not log-normal
    within_q = np.median([np.percentile(lr - np.median(lr), 100 * WITHIN_P) for lr in logs], axis=0)
    return {
        "log_level_mean": float(np.median(np.concatenate(logs))),
        "log_level_sd_between_records": sd_between,
        "log_level_sd_within_record": float(np.median(within)),
        "log_level_within_quantiles": [round(float(v), 4) for v in within_q],
        "log_level_within_scale": round(segment_average_scale(), 4),
        "log_ratio_sd_between_records": sd_between_ratio,
        "noise_to_qrs_median": s["median"], "noise_to_qrs_q25": s["q25"], "noise_to_qrs_q75": s["q75"],
        "residual_kurtosis": s["kurtosis"], "rail_fraction": s["rail_fraction"],
        "contact_fraction": s["contact_fraction"], "n_segments": s["n_segments"],
        "grade_fractions": fractions,
        "psd_db": [round(float(10 * np.log10(p)), 2) for p in psd],
    }


def write_fit(fit: dict, path: Path = FIT_FILE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(fit, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)


def clear_caches() -> None:
    """Forget the loaded fit and everything derived from it (after :func:`write_fit`)."""
    for fn in (_load_fit, _thresholds, _spectrum, _spectrum32, _spectrum_cols, _within_table, _activity_constants):
        fn.cache_clear()


def load_fit(fit: str | Path | None = None) -> dict:
    """The shipped fit (:data:`FIT_FILE`), or the fit file ``fit`` (e.g. one made from your own
    device's recordings by :func:`cardiosim.device_fit.fit_device_noise`), read once per
    process and path and checked for every part the simulation reads.

    Raises
    ------
    DataFormatError
        The file cannot be read, is not JSON, or lacks a part (named).
    """
    return _load_fit(_fit_key(fit))


#: What a fit file must hold: top-level keys, and per electrode x activity cell of its table.
FIT_KEYS = ("table", "psd_f_hz", "within_quantile_p", "grading_rule", "heart_rate", "qrs_pp_reference_mv")
FIT_CELL_KEYS = ("log_level_mean", "log_level_sd_between_records", "log_level_sd_within_record",
                 "residual_kurtosis", "psd_db")


def _fit_key(fit):
    """Cache key of a fit file: ``None`` for the shipped fit, else ``(path, mtime_ns, size)``, so
    that a fit rewritten in place (a refit in the same session) is read again, with everything
    derived from it (one ``os.stat`` per call, none for the shipped fit)."""
    if fit is None or str(fit) == "":
        return None
    try:
        st = os.stat(fit)
    except OSError as exc:
        raise DataFormatError(f"cannot read the textile noise fit {fit}: {exc.strerror or exc}") from None
    return (str(fit), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=8)
def _load_fit(key) -> dict:
    path = FIT_FILE if key is None else Path(key[0])
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataFormatError(f"cannot read the textile noise fit {path}: {exc}") from None
    if key is not None:
        check_fit(data, str(path))
    return data


def check_fit(fit: dict, name: str = "fit") -> None:
    """Raise :class:`DataFormatError` naming the first part of a fit dict the simulation
    needs and ``fit`` lacks (top-level keys, every electrode x activity cell and its keys, a
    spectrum per frequency, grading thresholds, a heart-rate row per activity)."""
    if not isinstance(fit, dict):
        raise DataFormatError(f"{name}: a textile noise fit is a JSON object, got {type(fit).__name__}")
    for key in FIT_KEYS:
        if key not in fit:
            raise DataFormatError(f"{name}: textile noise fit has no {key!r}")
    n_f = len(fit["psd_f_hz"])
    for e in ELECTRODES:
        for a in ACTIVITIES:
            row = fit["table"].get(f"{e}/{a}")
            if row is None:
                raise DataFormatError(f"{name}: textile noise fit has no cell {e}/{a}")
            for key in FIT_CELL_KEYS:
                if key not in row:
                    raise DataFormatError(f"{name}: cell {e}/{a} of the textile noise fit has no {key!r}")
            if len(row["psd_db"]) != n_f:
                raise DataFormatError(f"{name}: cell {e}/{a} has {len(row['psd_db'])} spectrum values for "
                                      f"{n_f} frequencies")
            if len(row.get("psd_db_calibration", row["psd_db"])) != n_f:
                raise DataFormatError(f"{name}: cell {e}/{a} has {len(row['psd_db_calibration'])} spectrum "
                                      f"calibration values for {n_f} frequencies")
            if "log_level_within_quantiles" in row and \
                    len(row["log_level_within_quantiles"]) != len(fit["within_quantile_p"]):
                raise DataFormatError(f"{name}: cell {e}/{a} has {len(row['log_level_within_quantiles'])} "
                                      f"within-record quantiles for {len(fit['within_quantile_p'])} probabilities")
    if "thresholds_noise_to_qrs" not in fit["grading_rule"] or len(fit["grading_rule"]["thresholds_noise_to_qrs"]) != 3:
        raise DataFormatError(f"{name}: the grading rule needs 3 thresholds_noise_to_qrs")
    by_act = fit["grading_rule"].get("activity_thresholds_noise_to_qrs")
    if by_act is not None:          # optional: a fit without it grades by the global thresholds
        for a in ACTIVITIES:
            t = by_act.get(a) if isinstance(by_act, dict) else None
            if t is None or len(t) != 3 or list(t) != sorted(t):
                raise DataFormatError(f"{name}: the grading rule needs 3 increasing "
                                      f"activity_thresholds_noise_to_qrs for {a!r}, got {t!r}")
    from ..motion.config import NOISE_ACTIVITY
    for a in sorted(set(NOISE_ACTIVITY.values())):
        if a not in fit["heart_rate"]:
            raise DataFormatError(f"{name}: textile noise fit has no heart_rate row {a!r}")


# -- synthesis of the fitted noise ----------------------------------------------------------------

_SLOW_TAU_S = 2.0    # correlation time of the segment-to-segment level changes


def segment_average_scale(tau_s: float = _SLOW_TAU_S, segment_s: float = SEGMENT_S) -> float:
    """Widening of the slow envelope's log-level that the fitted within-record quantiles
    need: they are quantiles of *2-s segment* levels, while the synthesis draws the level of
    every instant (an Ornstein-Uhlenbeck process of correlation time ``tau_s``), and a
    segment's level averages it over ``segment_s``. The mean of a stationary OU over a
    window ``T`` has ``r = 2 (tau/T)^2 (T/tau - 1 + exp(-T/tau))`` of its variance
    (0.736 for T = tau = 2 s): the instantaneous quantiles are the segment quantiles times
    ``1 / sqrt(r)`` (1.166), so the simulated segments have the fitted spread (without it
    the simulated records' within-record IQR/median came out 14 % below the fit subjects'
    on average over the 15 cells, as this predicts)."""
    x = float(segment_s) / float(tau_s)
    r = 2.0 / (x * x) * (x - 1.0 + np.exp(-x))
    return float(1.0 / np.sqrt(r))

_FAST_TAU_S = 0.15   # correlation time of the artefact bursts inside a segment
_MAX_FAST_SD = 1.0


_SLOW_RATE_HZ = 10.0  # sampling rates of the two envelope processes (linear interpolation to fs)
_FAST_RATE_HZ = 50.0


def _ou_len(n: int, fs: float, rate: float) -> int:
    """Samples of an envelope process at ``rate`` Hz covering ``n`` samples at ``fs``."""
    return math.ceil(n / fs * rate) + 2


@functools.lru_cache(maxsize=64)
def _spectrum(electrode: str, activity: str, n: int, fs: float, key=None):
    """Amplitude spectrum [n // 2 + 1] on the rfft grid of the fitted residual (plus the
    fit's ``psd_db_calibration`` where it has one; the measurement band-pass divided out;
    flat from 0.3 to 1 Hz, the 20-40 Hz log-log slope continued above 40 Hz but no shallower
    than f^-4), scaled so the 1-40 Hz band-passed
    noise has unit variance.

    Above 40 Hz nothing was measured. Since the spectrum is fitted between beats (issue 14),
    its 20-40 Hz slopes are shallow (f^-1.3 ... f^-2.7; -2.6 ... -6.3, median -4.3, when the
    QRS misfit was included): there the real residual approaches the real sensor's amplifier
    floor, which the ``white`` kind supplies on its own, so continuing the slope would add a
    second broadband floor above 40 Hz (and draw three times the random numbers); f^-4 caps it."""
    fitted = _load_fit(key)
    row = fitted["table"][f"{electrode}/{activity}"]
    fk = np.asarray(fitted["psd_f_hz"])
    # the measured spectrum is what the measure reads after the real sensor and the measure's
    # own baseline removal; the simulated noise passes a simulated device and the same measure
    # again, so the fit's shape calibration (scripts/fit_textile_noise.py) is added to it
    pk = 10 ** ((np.asarray(row["psd_db"]) + np.asarray(row.get("psd_db_calibration", 0.0))) / 10)
    _, h = _signal.sosfreqz(_band(fs), worN=fk, fs=fs)
    src = pk / np.maximum(np.abs(h) ** 2, 1e-3)          # zero-phase filter: |H|^2
    f = np.fft.rfftfreq(n, 1 / fs)
    lf = np.log(np.maximum(f, 1e-6))
    hi = fk >= 20.0
    slope = min(-4.0, float(np.polyfit(np.log(fk[hi]), np.log(src[hi]), 1)[0]))
    s = np.exp(np.interp(lf, np.log(fk), np.log(src)))
    above = f > fk[-1]
    s[above] = src[-1] * (f[above] / fk[-1]) ** slope
    s[f < 0.3] = 0.0
    _, hg = _signal.sosfreqz(_band(fs), worN=f, fs=fs)
    var_f = 4.0 / n ** 2 * float(np.sum(s * np.abs(hg) ** 2))
    amp = np.sqrt(s / var_f)
    amp.setflags(write=False)
    return amp


#: The fitted noise is synthesised up to the frequency above which its spectrum carries
#: less than this fraction of the power (the rule of :data:`cardiosim.noise.spectra.BAND_LIMIT_HZ`):
#: no random numbers are drawn for the bins beyond it.
_BAND_TAIL_FRACTION = 2e-4


@functools.lru_cache(maxsize=64)
def _spectrum32(electrode: str, activity: str, n: int, fs: float, key=None):
    """:func:`_spectrum` in float32, the precision the noise is synthesised in, cut after the
    last bin whose tail still holds :data:`_BAND_TAIL_FRACTION` of the power (the rest is
    zero: ``len`` of the result is the number of bins drawn)."""
    amp = _spectrum(electrode, activity, n, fs, key)
    p = amp.astype(np.float64) ** 2
    tail = np.cumsum(p[::-1])[::-1]                    # power in bins k.. (inclusive)
    k = int(np.searchsorted(-tail, -_BAND_TAIL_FRACTION * tail[0], side="right"))
    out = amp[:max(k, 2)].astype(np.float32)
    out.setflags(write=False)
    return out


@functools.lru_cache(maxsize=64)
def _spectrum_cols(electrode: str, activity: str, n: int, fs: float, key=None):
    """:func:`_spectrum32` with every bin's amplitude twice (real and imaginary part), float64:
    the column scale of the complex spectrum's float32 view."""
    out = np.repeat(_spectrum32(electrode, activity, n, fs, key).astype(np.float64), 2)
    out.setflags(write=False)
    return out


@functools.lru_cache(maxsize=64)
def _within_table(electrode: str, activity: str, key=None):
    """``(z_knots, q_knots, log(E[e^4L] / E[e^2L]^2))`` of the slow segment level ``L``: the
    fitted within-record quantiles of the log segment level (times the calibration's
    ``log_level_within_scale``) at the standard-normal quantiles of their probabilities, for
    the envelope's Gaussian copula; empty knots and ``None`` for a fit without the table
    (the slow level is then log-normal with ``log_level_sd_within_record``)."""
    fitted = _load_fit(key)
    row = fitted["table"][f"{electrode}/{activity}"]
    if "log_level_within_quantiles" not in row:
        return np.zeros(0), np.zeros(0), None
    z = _stats.norm.ppf(np.asarray(fitted["within_quantile_p"], dtype=np.float64))
    q = np.asarray(row["log_level_within_quantiles"], dtype=np.float64) * row.get("log_level_within_scale", 1.0)
    q = np.maximum.accumulate(q)
    zz = np.linspace(-6.0, 6.0, 4001)
    w = np.exp(-0.5 * zz ** 2)
    lq = np.interp(zz, z, q)
    m2 = np.sum(w * np.exp(2 * lq)) / w.sum()
    m4 = np.sum(w * np.exp(4 * lq)) / w.sum()
    for a in (z, q):
        a.setflags(write=False)
    return z, q, float(np.log(m4 / m2 ** 2))


def reference_qrs_pp_mv(fit: str | None = None) -> float:
    """QRS peak-to-peak (mV) of the simulated chest strap on the reference body, stored in
    the fit: the fitted noise-to-QRS ratios become mV through it."""
    return float(load_fit(fit)["qrs_pp_reference_mv"])


def typical_activity_rms_mv(electrode: str, activity: str, fit: str | None = None) -> float:
    """RMS per electrode (mV) of the ``activity`` noise of a typical record (the median
    record level, no SNR scaling) for ``electrode`` x ``activity``: what
    :func:`simulate_activity_noise` gives at its between-record deviate 0. The ``drift``
    kind's level is a multiple of it (:mod:`cardiosim.noise.drift`)."""
    if electrode not in ELECTRODES:
        raise ConfigError(f"electrode must be one of {', '.join(ELECTRODES)}, got {electrode!r}")
    if activity not in ACTIVITIES:
        raise ConfigError(f"activity must be one of {', '.join(ACTIVITIES)}, got {activity!r}")
    c = _activity_constants(electrode, activity, _fit_key(fit))
    return float(np.exp(c.log_level) * c.qrs_pp_mv / np.sqrt(2.0))


@functools.lru_cache(maxsize=1)
def _pocketfft_c2r():
    """scipy's pocketfft ``c2r`` (``(a, axes, lastsize, forward, inorm, out, nthreads)``), the
    function ``scipy.fft.irfft`` ends in after its argument checks and backend dispatch
    (~20 us a call here), or ``None`` -- then ``scipy.fft.irfft`` is used -- when this scipy
    does not have it under that name or it does not give ``scipy.fft.irfft``'s values bit
    for bit on a test spectrum (checked once per process)."""
    try:
        from scipy.fft._pocketfft import pypocketfft as pfft
        rng = np.random.default_rng(0)
        z = (rng.standard_normal((3, 1251)) + 1j * rng.standard_normal((3, 1251))).astype(np.complex64)
        z[:, 700:] = 0.0
        want = _fft.irfft(z, n=2500, axis=1, workers=1)
        got = pfft.c2r(z, (1,), 2500, False, 2, None, 1)
        if got.dtype == want.dtype and got.shape == want.shape and got.tobytes() == want.tobytes():
            return pfft.c2r
    except Exception:        # noqa: BLE001 - any failure: the public function
        pass
    return None


@dataclass(frozen=True)
class _ActivityConstants:
    """What :func:`simulate_activity_noise` derives from the fit for one electrode type x
    activity, the same every record (:func:`_activity_constants`)."""

    log_level: float
    sd_between: float
    sd_within: float
    sd_fast: float
    qrs_pp_mv: float
    a_slow: float
    a_fast: float
    z_knots: np.ndarray
    q_knots: np.ndarray


@functools.lru_cache(maxsize=64)
def _activity_constants(electrode: str, activity: str, key=None) -> _ActivityConstants:
    """The per-(electrode, activity) constants of :func:`simulate_activity_noise`, computed
    once (the same expressions it evaluated every record)."""
    fitted = _load_fit(key)
    row = fitted["table"][f"{electrode}/{activity}"]
    # the calibration makes the simulated chest strap, measured as the real records are, read
    # the fit subjects' median (scripts/fit_textile_noise.py: the simulated QRS sizes and the
    # ODE's own beat-to-beat variation, which the measure also counts, are accounted for)
    log_level = row["log_level_mean"] + row.get("log_level_calibration", 0.0)
    sd_w = row["log_level_sd_within_record"]
    z_knots, q_knots, slow_log_kurt = _within_table(electrode, activity, key)
    # the bursts carry the part of the fitted kurtosis the slow level changes do not: for an
    # envelope e^L, kurtosis = 3 E[e^4L] / E[e^2L]^2 (3 e^(4 sd^2) for a Gaussian L)
    k = max(row["residual_kurtosis"], 0.0)
    slow = 4.0 * sd_w ** 2 if slow_log_kurt is None else slow_log_kurt
    sd_f = float(np.sqrt(np.clip((np.log1p(k / 3.0) - slow) / 4.0, 0.0, _MAX_FAST_SD ** 2)))
    return _ActivityConstants(log_level=log_level, sd_between=row["log_level_sd_between_records"], sd_within=sd_w,
                              sd_fast=sd_f, qrs_pp_mv=float(fitted["qrs_pp_reference_mv"]),
                              a_slow=np.exp(-1.0 / (_SLOW_RATE_HZ * _SLOW_TAU_S)),
                              a_fast=np.exp(-1.0 / (_FAST_RATE_HZ * _FAST_TAU_S)), z_knots=z_knots, q_knots=q_knots)


def simulate_activity_noise(rng: np.random.Generator, n_electrodes: int, n: int, fs: float, *, electrode: str,
                            activity: str, scale: float = 1.0, params: dict | None = None,
                            fit: str | None = None) -> np.ndarray:
    """Noise [n_electrodes, n] mV (float32) of a worn device, fitted per electrode type x activity.

    Each electrode carries independent Gaussian noise with the fitted residual spectrum
    (drawn up to the frequency above which it holds < 0.02 % of the power), under an
    envelope shared by all electrodes (one body moves): a per-record level drawn from the
    between-record spread (a pooled variance over the fit subjects' records, less the
    simulated patients' own QRS spread), 2-s scale level changes whose distribution is the
    fit subjects' within-record distribution of segment levels (a Gaussian copula on a slow
    Ornstein-Uhlenbeck process: skewed toward noisy episodes, as activity comes in bouts),
    and short bursts that give the rest of the fitted kurtosis. A bipolar lead of
    two electrodes then has, in the median 2-s segment, the fitted noise-to-QRS ratio times
    :func:`reference_qrs_pp_mv` times ``scale``. ``fit``: a fit file (:func:`load_fit`; default
    the shipped fit of the textile recordings).
    """
    if electrode not in ELECTRODES:
        raise ConfigError(f"electrode must be one of {', '.join(ELECTRODES)}, got {electrode!r}")
    if activity not in ACTIVITIES:
        raise ConfigError(f"activity must be one of {', '.join(ACTIVITIES)} for the fitted noise, got {activity!r}")
    key = _fit_key(fit)
    c = _activity_constants(electrode, activity, key)
    sd_f = c.sd_fast
    # the record's level, then the two envelope processes' innovations, from one call (the
    # numbers one call per draw gives: Generator.standard_normal draws element by element)
    m_s = _ou_len(n, fs, _SLOW_RATE_HZ)
    w = np.empty(1 + m_s + (_ou_len(n, fs, _FAST_RATE_HZ) if sd_f > 0 else 0))
    addr = _pcg64_address_last(rng)
    seed = None
    if addr is not None and pcg64_draws_match():
        # and the seed of the spectrum's normals below (the next draw), in the same kernel call
        with rng.bit_generator.lock:
            seed = np.uint64(_kernels.normals_then_raw_pcg64_kernel(addr, w))
    else:
        standard_normal_into(rng, w)
    level = np.exp(c.log_level + c.sd_between * float(w[0]))
    rms = level * c.qrs_pp_mv * scale / np.sqrt(2.0)   # per electrode of a bipolar pair
    # envelope: 2-s scale level changes and short bursts (two OU processes, one numba pass)
    w_s = w[1:1 + m_s]
    w_f = w[1 + m_s:] if sd_f > 0 else np.zeros(0)
    env = np.empty(n, dtype=np.float32)        # computed in float64, stored in the noise's precision
    # interval by interval over cached interval starts (the per-sample kernel's values)
    starts = _kernels.activity_envelope_starts(n, float(fs), _SLOW_RATE_HZ, _FAST_RATE_HZ, m_s, w_f.shape[0])
    _kernels.activity_envelope_runs_kernel(w_s, c.a_slow, _SLOW_RATE_HZ, c.sd_within, w_f, c.a_fast, _FAST_RATE_HZ,
                                           sd_f, float(fs), rms, c.z_knots, c.q_knots, starts, env)
    # Gaussian noise of the fitted spectrum: complex normals on the rfft grid, drawn already
    # scaled by the amplitude spectrum straight into the complex64 buffer (its float32 view:
    # real and imaginary parts share their bin's amplitude), one single-precision inverse FFT
    cols = _spectrum_cols(electrode, activity, n, float(fs), key)
    z = np.empty((n_electrodes, n // 2 + 1), dtype=np.complex64)
    zf = z.view(np.float32)
    zf[:, cols.size:] = 0.0
    if seed is None:
        _kernels.normals_scaled(rng, _kernels.ones(n_electrodes), cols, zf)
    else:            # normals_scaled with the seed drawn above
        _kernels.seeded_normal_split_kernel(seed, _kernels.ones(n_electrodes), cols, zf, _kernels.ZIG256_KI,
                                            _kernels.ZIG256_WI, _kernels.ZIG256_FI)
    c2r = _pocketfft_c2r()
    x = c2r(z, (1,), n, False, 2, None, 1) if c2r is not None else _fft.irfft(z, n=n, axis=1, overwrite_x=True,
                                                                                workers=1)
    if x.dtype == np.float32 and x.ndim == 2 and x.flags.c_contiguous and x.shape[1] == env.shape[0]:
        _kernels.mul_rows_kernel(x, env)          # x *= env, one pass
    else:
        x *= env
    if params is not None:
        params.update({"activity_noise_electrode": electrode, "activity_noise_activity": activity,
                       "activity_noise_to_qrs": float(level * scale), "activity_noise_rms_mv": float(rms),
                       "activity_noise_burst_sd": sd_f})
    return x
