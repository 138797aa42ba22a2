"""Beats measured as a clinician's software would: 12-lead features of real and synthetic
records, independent of the generator's own fiducials, and their comparison.

Measures (one record, 12 standard leads, mV):

- R peaks: NeuroKit2's detector (``ecg_peaks``) on the 12-lead spatial velocity;
- the median beat of every lead around them (ectopic beats are outvoted);
- fiducials: NeuroKit2's wavelet delineator (``ecg_delineate(method="dwt")``) on the
  median beat of lead II repeated at the record's median RR gives the P onset; the QRS
  onset and offset are where the spatial velocity of the 12 median leads
  (``sqrt(sum (dV/dt)^2)``) leaves / returns to 15 % of its peak (the usual VCG criterion) (a QRS is as long as its longest lead, as in the global
  measurements of the AHA/ACCF/HRS recommendations, Kligfield et al., Circulation
  2007;115:1306; NeuroKit2's QRS bounds on one lead scatter by tens of ms here); the T end
  is global too (:func:`spatial_t_end`, since 2026-12-06): the tangent method (steepest
  descent of the T wave intersected with the isoelectric level; Postema et al., Heart
  Rhythm 2008;5:1015) on the spatial magnitude of the 12 median leads taken from their
  T-P level. NeuroKit2's lead-II T end, used before (kept as ``qt_ii``), lands on the T
  peak of some beats: on one synthetic patient it read QT 0.27-0.36 s as only the RR
  variability changed, where the global T end moves by < 10 ms; on the real normal-beat
  CinC 2021 records the two agree within 35 ms on 9 of 10 (JS20005: lead II 69 ms short);
- per lead: R (largest positive QRS deflection) and S (largest negative) amplitude, ST
  level at J + 60 ms, T amplitude (largest deflection between J + 80 ms and the T end),
  all against the PR-segment baseline (the 20 ms before the QRS onset);
- HR (from the RR intervals), PR, QRS, QT, QTc (Fridericia, QT / RR^(1/3), as the
  generator's classes), frontal QRS axis ``atan2(net aVF, net I)``.

:func:`flutter_evidence` / :func:`is_flutter` judge atrial flutter without subtracting
beats: atrial activity at 4-6 Hz repeating in the TQ (else inter-QRS) segments of II, III,
aVF and V1, RR intervals whole multiples of the atrial cycle.

:data:`FEATURES` are the scalar features compared between real and synthetic records
(:func:`compare`). :func:`real_records` reads the shared real 12-lead records with their
classes; :data:`HELD_OUT` names the records the validation prior
(``prior.VALIDATION_PRIOR_PATH``, today the shipped default itself) was not fitted to, on
which :func:`realism_table` reports (it refuses a prior fitted on the records it reports on).
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataFormatError, SignalError

LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
LI = {n: i for i, n in enumerate(LEADS)}
# anatomically contiguous lead pairs (limb leads in Cabrera order, neighbouring chest leads)
CONTIGUOUS = (("aVL", "I"), ("I", "aVR"), ("II", "aVF"), ("aVF", "III"), ("II", "III"),
              ("V1", "V2"), ("V2", "V3"), ("V3", "V4"), ("V4", "V5"), ("V5", "V6"))
BEFORE, AFTER = 0.40, 0.65  # s: median-beat window around R
QRS_SLOPE_REL = 0.15  # global QRS: 12-lead spatial velocity above this share of its peak

# SNOMED CT codes (CinC 2021) -> the generator's class names with real examples here
SNOMED_CLASSES = {"426783006": "SR", "426177001": "SB", "427084000": "STACH", "284470004": "PAC",
                  "427172004": "PVC", "164873001": "LVH", "55827005": "LVH", "59118001": "RBBB",
                  "59931005": "TINV", "164934002": "TAB", "164889003": "AF", "270492004": "IAVB"}
# codes that make a record's beat not normal (conduction, ST-T, hypertrophy, QT, MI)
ABNORMAL_BEAT = {"164873001", "55827005", "59118001", "713426002", "59931005", "164934002",
                 "55930002", "428750005", "111975006", "698252002", "164909002", "164931005",
                 "429622005", "164865005"}

# Records NOT used to fit the validation prior (prior.VALIDATION_PRIOR_PATH, the shipped NORM
# prior) nor the validation rhythm prior: every feature table and realism test reports on these
# only. Chosen before fitting, by
# alternating over the sorted record names within each group of normal-beat records, so both
# sources (Georgia, PTB-XL, Ningbo) are in both.
HELD_OUT = ("E07503", "E07511", "E07512", "HR06003", "JS20008", "cpsc2021/data_21_7",
            "cpsc2021/data_84_1", "cpsc2021/data_92_4")

FEATURES = ("hr", "pr", "qrs", "qtc", "axis", "R_II", "S_II", "R_V1", "S_V1", "R_V2", "S_V2",
            "R_V5", "S_V5", "R_V6", "R_aVL", "ST_II", "ST_V2", "ST_V5", "T_I", "T_II", "T_V2",
            "T_V5")


LEAD_MATRIX_PATH = Path(__file__).parent / "data" / "lead_matrix_standard12.json"


@lru_cache(maxsize=1)
def lead_matrix() -> np.ndarray:
    """(12, 3): the 12 standard leads (mV) of a Frank-axis VCG (mV) on the project's default
    torso (how :func:`cardiosim.sources.synthetic_source` puts ODE beats on it; computed
    from the lead field, ``data/lead_matrix_standard12.json`` says how)."""
    import json

    d = json.loads(LEAD_MATRIX_PATH.read_text())
    if tuple(d["leads"]) != LEADS:
        raise ConfigError(f"lead matrix rows {d['leads']} are not {LEADS}")
    m = np.array(d["matrix_mV_per_mV"], float)
    m.flags.writeable = False
    return m


def project12(vcg) -> np.ndarray:
    """12 standard leads (12, T) mV of a Frank VCG (3, T) mV (:func:`lead_matrix`)."""
    return lead_matrix() @ np.asarray(vcg, np.float64)


def _nk():
    import neurokit2 as nk  # validation dependency, imported only here

    return nk


def r_peaks(leads, fs):
    """R-peak samples: NeuroKit2's detector (``ecg_peaks``, method "neurokit") run on the
    12-lead spatial velocity ``sqrt(sum (dV/dt)^2)`` — QRS complexes of every shape and
    axis stand out in it and tall T or P waves do not — each peak refined to that
    signal's maximum within ±40 ms (one fiducial for all leads). A detection where that
    signal is under R_VELOCITY_MIN of the largest detected peak's is no QRS and is dropped:
    in a record of a few beats NeuroKit2's adaptive threshold can take a T wave for R (one at
    3 % of the QRS velocity in a 3-s AF record), while a wide ventricular beat keeps a third
    or more of a normal beat's velocity."""
    x = np.asarray(leads, np.float64)
    sv = np.sqrt((np.gradient(x, 1.0 / fs, axis=1) ** 2).sum(axis=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, info = _nk().ecg_peaks(sv / sv.max(), sampling_rate=int(round(fs)), method="neurokit")
    pk = np.asarray(info["ECG_R_Peaks"], int)
    w = int(0.04 * fs)
    pk = np.array([max(p - w, 0) + int(np.argmax(sv[max(p - w, 0):p + w + 1])) for p in pk], int)
    if pk.size:
        pk = pk[sv[pk] >= R_VELOCITY_MIN * sv[pk].max()]
    return pk


R_VELOCITY_MIN = 0.1  # of the largest detected peak's spatial velocity (r_peaks)


def _spatial_qrs_bounds(beat, r, fs):
    """Global QRS onset and offset (sample indices of ``beat (leads, T)``, R at ``r``): the
    connected run (gaps < 30 ms) around the steepest sample where the leads' spatial velocity
    is at least :data:`QRS_SLOPE_REL` of its peak, searched from 150 ms before to 200 ms after R."""
    slope = np.sqrt((np.gradient(beat, axis=1) ** 2).sum(axis=0))
    lo, hi = r - int(0.15 * fs), r + int(0.20 * fs)
    hot = np.flatnonzero(slope[lo:hi] >= QRS_SLOPE_REL * slope[lo:hi].max())
    k0 = int(np.argmax(slope[lo:hi]))
    runs = np.split(hot, np.flatnonzero(np.diff(hot) > int(0.03 * fs)) + 1)
    run = next(rn for rn in runs if rn[0] <= k0 <= rn[-1])
    return lo + run[0], lo + run[-1]


def median_beat(leads, fs, peaks):
    """Median beat (12, n) of the beats whose window fits the record, and its R index."""
    x = np.asarray(leads, np.float64)
    b, a = int(round(BEFORE * fs)), int(round(AFTER * fs))
    ok = peaks[(peaks - b >= 0) & (peaks + a < x.shape[1])]
    if ok.size < 2:
        raise SignalError(f"need >= 2 complete beats for a median beat, got {ok.size}")
    return np.median(np.stack([x[:, p - b:p + a] for p in ok]), axis=0), b


def _dwt_fiducials(beat, r, fs, rr):
    """NeuroKit2 dwt delineation of one median-beat lead tiled at interval ``rr`` (s):
    (P onset, QRS onset, QRS offset, T offset) as samples of ``beat`` (nan if not found)."""
    n = beat.shape[0]
    step = max(int(round(rr * fs)), r + 1)
    k = max(6, int(np.ceil(8.0 / rr)))  # NeuroKit2 segments need a few seconds
    sig = np.full(step * (k - 1) + n, np.nan)
    # each tile ends where the next begins (beat windows may be longer than RR)
    for j in range(k):
        seg = beat[: min(n, step)] if j < k - 1 else beat
        sig[j * step: j * step + seg.shape[0]] = seg
    sig = np.where(np.isnan(sig), beat[-1], sig)
    rp = np.arange(k) * step + r
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            _, w = _nk().ecg_delineate(sig, rp, sampling_rate=int(round(fs)), method="dwt")
        except Exception:  # noqa: BLE001 — NeuroKit2 fails on some flat/odd leads
            return (np.nan,) * 4
    out = []
    for key in ("ECG_P_Onsets", "ECG_R_Onsets", "ECG_R_Offsets", "ECG_T_Offsets"):
        v = np.asarray(w.get(key, []), float)[1:-1] - rp[1:-1] + r  # inner tiles
        v = v[np.isfinite(v)]
        out.append(float(np.median(v)) if v.size else np.nan)
    return tuple(out)


T_PEAK_RR = 0.70  # T peak searched up to R + 0.70 RR (the next P wave comes later)
T_END_RR = 0.85  # the T wave's descent searched up to R + 0.85 RR (before the next QRS)
T_MIN_MV = 0.05  # a T wave rising less than this above its trough has no T end (nan)


def _t_peak(y, lo, hi):
    """The largest local maximum of ``y[lo:hi]`` (sample index), None if there is none: a
    curve still rising at the window's end (the next P wave at a fast rate) has no T peak
    there, and its edge is not one."""
    from scipy.signal import find_peaks

    seg = y[int(lo):int(hi)]
    pk, _ = find_peaks(seg)
    return int(lo) + int(pk[np.argmax(seg[pk])]) if pk.size else None


def tangent_t_end(y, lo, peak_hi, hi):
    """T end of a non-negative T-wave curve ``y`` by the tangent method (Postema et al.,
    Heart Rhythm 2008;5:1015): the tangent at the steepest point of the T wave's descending
    limb intersected with the isoelectric level after it.

    The T peak is the largest local maximum of ``y[lo:peak_hi]``; the descending limb runs
    from it to the minimum of ``y`` up to ``hi`` (the T-P segment), whose value is the
    isoelectric level (the
    T-P level, not the PR level: an ST or baseline shift leaves a spatial curve above zero
    after the T wave). Returns a fractional sample index, or nan where no local maximum lies
    inside the window or it rises less than :data:`T_MIN_MV` above that level (no T wave).
    """
    y = np.asarray(y, np.float64)
    hi = min(int(hi), y.size - 1)
    peak_hi = min(int(peak_hi), hi)
    if peak_hi - lo < 3:
        return np.nan
    tpk = _t_peak(y, lo, peak_hi)
    if tpk is None:
        return np.nan
    tail = y[tpk:hi + 1]
    kmin = int(np.argmin(tail))
    base = float(tail[kmin])
    if y[tpk] - base < T_MIN_MV or kmin < 2:
        return np.nan
    d = np.gradient(y)
    k = tpk + int(np.argmin(d[tpk:tpk + kmin + 1]))
    if d[k] >= 0:
        return np.nan
    return float(k + (base - y[k]) / d[k])


def spatial_t_end(b, q_off, r, fs, rr):
    """Global T end (fractional sample of the median beat): the tangent method
    (:func:`tangent_t_end`) on the spatial magnitude of the 12 median leads ``b`` (12, n)
    measured from their T-P level, searched from the global QRS offset + 80 ms to
    R + :data:`T_END_RR` RR.

    One T end for all leads, as the AHA/ACCF/HRS recommendations measure QT across leads
    (Kligfield et al., Circulation 2007;115:1306): the magnitude ends when the last lead's T
    wave does, and one flat or biphasic lead does not move it. NeuroKit2's dwt T offset of a
    single lead lands on the T peak of some beats (lead II of the CinC 2021 record JS20005,
    of 3 of the 20 synthetic NORM test records: QT 290-300 ms where the wave ends at ~350).

    The isoelectric level is each lead's T-P level, not its PR level: after the 0.5 Hz
    high-pass (or with an ST or baseline shift) a lead can end its T wave away from its PR
    level, and a magnitude taken from the PR level dips to zero where the leads cross it,
    before the T wave ends (12-15 ms early on a hand-built single-dipole beat). The T-P
    point: after the steepest descent of the PR-referenced magnitude's T wave, the first
    sample where the 12 leads' spatial velocity (20-ms mean) has fallen to a tenth of its
    value there, or has its first minimum below half of it (the next P wave follows at
    once); failing both, the PR-referenced magnitude's minimum."""
    b = np.asarray(b, np.float64)
    lo = int(q_off) + int(0.08 * fs)
    peak_hi = min(r + int(T_PEAK_RR * rr * fs), b.shape[1] - 1)
    hi = min(r + int(T_END_RR * rr * fs), b.shape[1] - 2)
    if peak_hi - lo < 3:
        return np.nan
    mag = np.sqrt((b ** 2).sum(axis=0))
    tpk = _t_peak(mag, lo, peak_hi)
    if tpk is None:
        return np.nan
    kmin = tpk + int(np.argmin(mag[tpk:hi + 1]))
    if kmin - tpk < 2:
        return np.nan
    steep = tpk + int(np.argmin(np.gradient(mag)[tpk:kmin + 1]))
    w = max(int(round(0.02 * fs)), 1)
    vel = np.convolve(np.sqrt((np.gradient(b, axis=1) ** 2).sum(axis=0)), np.ones(w) / w, mode="same")
    vs, k_tp = vel[steep], kmin
    for i in range(steep + 1, hi):
        if vel[i] <= 0.1 * vs or (vel[i] <= 0.5 * vs and vel[i + 1] > vel[i]):
            k_tp = i
            break
    level = b[:, max(k_tp - w // 2, 0):k_tp + w // 2 + 1].mean(axis=1)
    mag_tp = np.sqrt(((b - level[:, None]) ** 2).sum(axis=0))
    return tangent_t_end(mag_tp, lo, peak_hi, min(k_tp + w, hi))


def lead_t_ends(b, q_off, r, fs, rr):
    """Per-lead tangent T ends (12,) of baseline-corrected median leads ``b``: each lead's T
    wave turned upright (by the sign of its largest deflection from the global QRS offset
    + 80 ms to R + :data:`T_PEAK_RR` RR) and read by :func:`tangent_t_end` (the manual method
    of Postema et al. 2008, lead by lead); and each lead's T amplitude (mV, absolute)."""
    b = np.asarray(b, np.float64)
    lo = int(q_off) + int(0.08 * fs)
    phi, hi = r + int(T_PEAK_RR * rr * fs), r + int(T_END_RR * rr * fs)
    phi = min(phi, b.shape[1] - 1)
    ends, amps = np.full(b.shape[0], np.nan), np.zeros(b.shape[0])
    for i in range(b.shape[0]):
        seg = b[i, lo:phi]
        if seg.size < 3:
            continue
        s = 1.0 if seg.max() >= -seg.min() else -1.0
        amps[i] = float(np.abs(seg).max())
        ends[i] = tangent_t_end(s * b[i], lo, phi, hi)
    return ends, amps


CLEAN_PAD_S = 2.0


def clean(leads, fs, *, pad_s=None):
    """0.5-40 Hz zero-phase band-pass (2nd-order Butterworth each way): baseline wander and
    mains out, the QRS-T shape kept (applied alike to real and synthetic records).

    ``pad_s`` (s): mirror the record (``padtype="even"``) over that long at each end before
    filtering; ``None`` keeps scipy's default (a few samples, point-reflected), with which the
    0.5-Hz high-pass's start-up transient reaches ~1.5 s into the record at its end. On
    MIT-BIH 100 (both leads, 200 random 10-s windows filtered alone against the same samples of
    the filtered 30-min record) the RMS error over the first / last 0.5 s is 14 % / 16 % of the
    window's RMS by default and 7.3 % / 7.7 % with ``pad_s = CLEAN_PAD_S`` (point-reflected 2-s
    padding 19 % / 17 %; 1 s and 4 s of mirror 7.9 / 8.6 % and 7.4 / 7.9 %); what is left is
    the baseline a 10-s window cannot know. :func:`flutter_evidence`, which reads every sample
    up to 0.5 s from the ends, uses the padding. :func:`measure` keeps the default: its
    features come from a median beat in which the end beats are 2-3 of 10-20, and the padding
    moved them little except where the global T end is ambiguous (the real LVH record JS20004:
    QTc 375 -> 549 ms, the T end taken 142 ms later) -- docs/VALIDATION.md, "The flutter
    check's edge".
    """
    from scipy.signal import butter, sosfiltfilt

    x = np.asarray(leads, np.float64)
    sos = butter(2, [0.5, min(40.0, 0.45 * fs)], btype="band", fs=fs, output="sos")
    if pad_s is not None and not (np.isfinite(pad_s) and pad_s > 0):
        raise ConfigError(f"pad_s must be a positive number of seconds or None, got {pad_s!r}")
    if pad_s is None:
        return sosfiltfilt(sos, x, axis=-1)
    pad = min(int(round(pad_s * fs)), x.shape[-1] - 1)
    return sosfiltfilt(sos, x, axis=-1, padtype="even", padlen=pad)


def measure(leads, fs, *, delineate=True):
    """Features of one 12-lead record (see the module docstring).

    Parameters
    ----------
    leads : ndarray (12, T), mV, in :data:`LEADS` order
    fs : float, Hz
    delineate : bool — run NeuroKit2's delineator (else rate and RR only)

    Returns
    -------
    dict — scalars ``hr`` (bpm), ``rr_cv``, ``pr``, ``qrs``, ``qt`` (global T end,
    :func:`spatial_t_end`), ``qtc``, ``qt_ii`` (NeuroKit2's lead-II T end, for comparison)
    (s), ``axis``
    (deg), ``R_<lead>``, ``S_<lead>``, ``ST_<lead>``, ``T_<lead>`` (mV, S as a positive
    depth); arrays ``peaks`` (samples), ``beat`` (12, n) median beat, ``r`` its R index,
    ``p_amp`` largest |deflection| of lead II between 250 and 40 ms before the QRS onset (mV)
    and ``p_corr`` the mean correlation of the beats' lead II in that window with the median;
    fiducials ``q_on``, ``q_off``, ``t_off`` (global), ``t_off_ii``, ``p_on`` (samples of
    ``beat``; ``t_off`` fractional, nan where no T wave is found) and ``beat_b`` (the median
    beat against its PR baseline).
    """
    x = np.asarray(leads, np.float64)
    if x.ndim != 2 or x.shape[0] != 12:
        raise ConfigError(f"leads must have shape (12, T) in the order {LEADS}, got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise SignalError("leads contain NaN or infinite samples")
    x = clean(x, fs)
    pk = r_peaks(x, fs)
    if pk.size < 3:
        raise SignalError(f"fewer than 3 beats detected ({pk.size})")
    rr = np.diff(pk) / fs
    out = {"peaks": pk, "hr": float(60.0 / rr.mean()), "rr_cv": float(rr.std() / rr.mean()),
           "rr_median": float(np.median(rr))}
    if not delineate:
        return out
    beat, r = median_beat(x, fs, pk)
    out["beat"], out["r"] = beat, r
    p_on, q_on, q_off, t_off_ii = _dwt_fiducials(beat[LI["II"]], r, fs, out["rr_median"])
    # global QRS: the 12-lead spatial velocity's 15 % points
    g_on, g_off = _spatial_qrs_bounds(beat, r, fs)
    # (NeuroKit2's own QRS bounds on one lead scatter by tens of ms on these beats: the
    # global 12-lead bounds are used; its P onset and T end are kept)
    q_on, q_off = int(g_on), int(g_off)
    base = beat[:, max(q_on - int(0.02 * fs), 0):q_on + 1].mean(axis=1)
    b = beat - base[:, None]
    out["qrs"] = (q_off - q_on) / fs
    out["pr"] = (q_on - p_on) / fs if np.isfinite(p_on) else np.nan
    # global T end: the tangent on the 12 leads' spatial magnitude (NeuroKit2's lead-II T
    # offset, kept as qt_ii, lands on the T peak of some beats)
    t_off = spatial_t_end(b, q_off, r, fs, out["rr_median"])
    out["qt"] = (t_off - q_on) / fs if np.isfinite(t_off) else np.nan
    out["qt_ii"] = (t_off_ii - q_on) / fs if np.isfinite(t_off_ii) else np.nan
    out["qtc"] = out["qt"] / out["rr_median"] ** (1.0 / 3.0)
    qrs = b[:, q_on:q_off + 1]
    j60 = min(q_off + int(0.06 * fs), b.shape[1] - 1)
    t_lo = q_off + int(0.08 * fs)
    t_hi = int(t_off) if np.isfinite(t_off) and t_off > t_lo + 5 else min(q_off + int(0.40 * fs), b.shape[1] - 1)
    t_hi = min(t_hi, r + int(0.85 * out["rr_median"] * fs))
    tw = b[:, t_lo:max(t_hi, t_lo + 1)]
    ti = np.argmax(np.abs(tw), axis=1)
    for i, name in enumerate(LEADS):
        out[f"R_{name}"] = float(max(qrs[i].max(), 0.0))
        out[f"S_{name}"] = float(max(-qrs[i].min(), 0.0))
        out[f"ST_{name}"] = float(b[i, j60])
        out[f"T_{name}"] = float(tw[i, ti[i]])
    net = qrs.max(axis=1) + qrs.min(axis=1)
    out["axis"] = float(np.degrees(np.arctan2(net[LI["aVF"]], net[LI["I"]])))
    p0, p1 = max(q_on - int(0.25 * fs), 0), max(q_on - int(0.04 * fs), 1)
    pw = b[LI["II"], p0:p1]
    out["p_amp"] = float(np.abs(pw).max()) if pw.size else 0.0
    # a P wave repeats beat after beat: mean correlation of each beat's P window (lead II)
    # with the median's (f-waves, or a T wave at varying RR, do not repeat)
    segs = [x[LI["II"], k - r + p0:k - r + p1] for k in pk if k - r + p0 >= 0 and k - r + p1 <= x.shape[1]]
    cc = [np.corrcoef(sg, beat[LI["II"], p0:p1])[0, 1] for sg in segs if np.std(sg) > 0]
    out["p_corr"] = float(np.mean(cc)) if cc and np.std(beat[LI["II"], p0:p1]) > 0 else 0.0
    out["q_on"], out["q_off"], out["t_off"], out["p_on"] = q_on, q_off, t_off, p_on
    out["t_off_ii"] = t_off_ii
    out["beat_b"] = b
    return out


# --- atrial flutter ----------------------------------------------------------------------

FLUTTER_LEADS = ("II", "III", "aVF", "V1")  # where flutter waves are best seen
FLUTTER_CL = (1.0 / 6.0, 1.0 / 4.0)  # s: atrial cycle of 4-6 Hz (240-360 /min)
FLUTTER_QTC_MAX = 0.46  # s: the T wave is over by QRS onset + 0.46 RR^(1/3) (Fridericia, upper limit)


def _global_qrs(x, fs, peaks):
    """QRS onset and offset (s from R) of the median beat: where the spatial velocity of
    the leads leaves / returns to :data:`QRS_SLOPE_REL` of its peak (as :func:`measure`)."""
    b, a = int(0.3 * fs), int(0.4 * fs)
    ok = peaks[(peaks - b >= 0) & (peaks + a < x.shape[1])]
    if ok.size < 2:
        raise SignalError(f"need >= 2 complete beats, got {ok.size}")
    med = np.median(np.stack([x[:, p - b:p + a] for p in ok]), axis=0)
    on, off = _spatial_qrs_bounds(med, b, fs)
    return (on - b) / fs, (off - b) / fs


def _align_qrs(x, fs, peaks, half=0.05, search=0.04):
    """R peaks re-timed by aligning each QRS (all leads, +-``half`` s) to the median QRS
    (the lag within +-``search`` s of largest summed product): one fiducial for every beat
    even where the spatial velocity's maximum jumps between two similar QRS peaks."""
    h, s = int(half * fs), int(search * fs)
    ok = (peaks - h - s >= 0) & (peaks + h + s < x.shape[1])
    if ok.sum() < 2:
        return peaks
    tpl = np.median(np.stack([x[:, p - h:p + h + 1] for p in peaks[ok]]), axis=0)
    out = peaks.copy()
    for i in np.flatnonzero(ok):
        p = peaks[i]
        seg = x[:, p - h - s:p + h + s + 1]
        score = [float(np.sum(seg[:, k:k + 2 * h + 1] * tpl)) for k in range(2 * s + 1)]
        out[i] = p - s + int(np.argmax(score))
    return out


def _explained(y, idx, nbins):
    """Share of ``sum y^2`` explained by the mean of ``y`` in each bin ``idx``."""
    n = np.bincount(idx, minlength=nbins)
    s = np.bincount(idx, y, minlength=nbins)
    den = float(np.dot(y, y))
    return float(np.sum(s[n > 0] ** 2 / n[n > 0]) / den) if den > 0 else 0.0


def flutter_evidence(leads, fs, names=LEADS, *, nbins=24, edge=0.5, tq_min=1.0, tq_total=1.5,
                     qtc_max=FLUTTER_QTC_MAX, rr_tol=0.02, flat_s=0.06):
    """Atrial-flutter evidence of one record, measured without the generator's fiducials
    and without subtracting beats (flutter waves locked to the QRS would go with them).

    1. R peaks (:func:`r_peaks`, each re-timed by aligning its QRS to the median QRS) and
       the global QRS of the median beat; each QRS (20 ms before to 40 ms after it) is
       bridged by a straight line. The leads are analysed as :func:`clean` leaves them
       (0.5-40 Hz, the band F waves are read in; mirrored over :data:`CLEAN_PAD_S` at the
       ends, so that the filter's end transient lies mostly inside the ``edge`` dropped: its
       5 % error band reaches 0.48 s at the end, median, against 0.94 s unpadded): a 5-Hz
       high-pass (used before) rings near its cut-off, in the flutter band, and turns any T
       or P wave into a 4-6 Hz oscillation (it made 7 of 20 synthetic sinus tachycardias
       "flutter").
    2. Atrial window: the TQ segments, from the latest normal end of the T wave (QRS onset
       + 0.46 RR^(1/3), QTc 460 ms Fridericia) to 20 ms before the next QRS, in the RR
       intervals where that is at least ``tq_min`` times 250 ms long. With less than
       ``tq_total`` s of them (2:1 conduction, fast 3:1: every visible F wave rides on the
       T wave) every inter-QRS sample is used instead (``window = "inter-QRS"``).
    3. Atrial cycle length ``cl``: the period of :data:`FLUTTER_CL` (1 ms steps) whose
       folding (the mean of the window's samples at each of ``nbins`` phases of the
       cycle) explains most of the window's power, summed over the flutter leads.
    4. Per flutter lead: ``periodic``, the share of the window's power that folding
       explains, and ``repeats``, the correlation of samples one cycle apart inside the
       same RR interval and the atrial window (``pairs_s`` s of such pairs). Folding alone
       cannot tell atrial waves from any signal periodic with a regular RR (a sinus P
       wave folds as well at RR / n); within one RR interval only activity that fills
       every cycle repeats: flutter waves are identical wave after wave, while the two
       humps of a sinus tachycardia's RR (T, then P) are different waves. ``flat``, the
       share of the window in ``flat_s``-long stretches moving by less than a tenth of
       the window's 5-95 % amplitude: an isoelectric baseline between atrial waves
       (sinus P waves, atrial tachycardia), which flutter waves do not have.
    5. ``rr_multiple``: the share of RR intervals within ``rr_tol`` s of n * cl with
       n >= 2 (fixed or variable conduction of one atrial rhythm).

    Parameters
    ----------
    leads : ndarray (n_leads, T), mV;  fs : float, Hz
    names : sequence of str — the lead names of the rows (any subset of :data:`LEADS` with
        at least one of :data:`FLUTTER_LEADS`; R peaks are found on all of them)

    Returns
    -------
    dict — ``hr`` (bpm), ``cl`` (s), ``rr_multiple``, ``window`` ("TQ" or "inter-QRS"),
    ``atrial_s`` (s of signal analysed), ``pairs_s`` and, per flutter lead present,
    ``{"periodic", "repeats", "flat"}``.
    """
    names = list(names)
    x = np.asarray(leads, np.float64)
    if x.ndim != 2 or x.shape[0] != len(names):
        raise ConfigError(f"leads must have shape ({len(names)}, T) for names {names}, got {x.shape}")
    present = [n for n in FLUTTER_LEADS if n in names]
    if not present:
        raise ConfigError(f"no flutter lead ({', '.join(FLUTTER_LEADS)}) among {names}")
    bad = ~np.isfinite(x)
    if bad.any():
        rows = sorted({names[i] for i in np.flatnonzero(bad.any(axis=1))})
        raise SignalError(f"{int(bad.sum())} NaN/inf samples in lead(s) {', '.join(rows)}")
    x = clean(x, fs, pad_s=CLEAN_PAD_S)  # every sample up to `edge` from the ends is read
    pk = r_peaks(x, fs)
    if pk.size < 3:
        raise SignalError(f"fewer than 3 beats detected ({pk.size})")
    pk = _align_qrs(x, fs, pk)
    q0, q1 = _global_qrs(x, fs, pk)
    T = x.shape[1]
    ii = np.arange(T)
    t = ii / fs
    rr = np.diff(pk) / fs
    gap = np.ones(T, bool)
    for p in pk:
        gap[max(p + int(round((q0 - 0.02) * fs)), 0):min(p + int(round((q1 + 0.04) * fs)) + 1, T)] = False
    beat = np.searchsorted(pk, ii, side="right") - 1  # the preceding R
    inner = (beat >= 0) & (beat < pk.size - 1)
    inner[:int(edge * fs)] = False
    inner[T - int(edge * fs):] = False
    zs = []
    for n in present:
        z = x[names.index(n)].copy()
        z[~gap] = np.interp(ii[~gap], ii[gap], z[gap])  # QRS bridged before filtering
        zs.append(z)
    tq = np.zeros(T, bool)
    for k in range(pk.size - 1):
        a = pk[k] + int(round((q0 + qtc_max * rr[k] ** (1.0 / 3.0)) * fs))
        b = pk[k + 1] + int(round((q0 - 0.02) * fs))
        if b - a >= tq_min * FLUTTER_CL[1] * fs:
            tq[a:b] = True
    tq &= inner
    window = "TQ" if tq.sum() >= tq_total * fs else "inter-QRS"
    use = tq if window == "TQ" else gap & inner
    if use.sum() < FLUTTER_CL[1] * fs * 3:
        raise SignalError("no inter-QRS signal to analyse")
    ys = [z[use] - z[use].mean() for z in zs]
    cls = np.arange(FLUTTER_CL[0], FLUTTER_CL[1] + 1e-9, 0.001)
    tu = t[use]
    folds = np.array([[_explained(y, np.minimum((tu % c / c * nbins).astype(int), nbins - 1), nbins)
                       for c in cls] for y in ys])
    j = int(np.argmax(folds.sum(axis=0)))
    cl = float(cls[j])
    out = {"hr": float(60.0 / rr.mean()), "cl": cl, "window": window, "atrial_s": float(use.sum() / fs)}
    n_cyc = np.round(rr / cl)
    out["rr_multiple"] = float(np.mean((np.abs(rr - n_cyc * cl) <= rr_tol) & (n_cyc >= 2)))
    # repetition inside each RR interval: samples one atrial cycle apart in the same
    # interval (a beat-periodic signal folds well at any whole fraction of a regular RR;
    # only activity that repeats every cycle between two QRS complexes correlates here)
    lag = int(round(cl * fs))
    pair = use[:-lag] & use[lag:] & (beat[:-lag] == beat[lag:])
    out["pairs_s"] = float(pair.sum() / fs)
    for n, z, f in zip(present, zs, folds[:, j]):
        a, b = z[:-lag][pair], z[lag:][pair]
        a, b = a - a.mean(), b - b.mean()
        den = float(np.sqrt(np.dot(a, a) * np.dot(b, b)))
        out[n] = {"periodic": float(f), "repeats": float(np.dot(a, b) / den) if den > 0 and pair.sum() > 1 else 0.0,
                  "flat": _flat_share(z, use, int(round(flat_s * fs)))}
    return out


def _flat_share(z, use, w, rel=0.1):
    """Share of the atrial window ``use`` lying in a ``w``-sample stretch (wholly inside
    the window) over which ``z`` moves by less than ``rel`` of the window's amplitude
    (5-95 percentile range): an isoelectric baseline between atrial waves."""
    from scipy.ndimage import maximum_filter1d, minimum_filter1d

    y = z[use]
    amp = float(np.subtract(*np.percentile(y, [95, 5])))
    if amp <= 0 or w < 2:
        return 0.0
    span = maximum_filter1d(z, w, mode="nearest") - minimum_filter1d(z, w, mode="nearest")
    inside = minimum_filter1d(use.astype(np.uint8), w, mode="constant") > 0  # whole stretch in the window
    flat = inside & (span < rel * amp)
    # every sample of a flat stretch counts (centres -> the stretch around them)
    covered = maximum_filter1d(flat.astype(np.uint8), w, mode="constant") > 0
    return float(np.sum(covered & use) / max(use.sum(), 1))


def is_flutter(ev, *, periodic=0.75, repeats=0.5, rr_multiple=0.9, flat=0.25):
    """Atrial flutter by :func:`flutter_evidence`: the RR intervals whole multiples (>= 2)
    of one atrial cycle of 4-6 Hz (a share ``rr_multiple`` of them), and in at least two of
    the flutter leads present (the one, if only one is) at least ``periodic`` of the atrial
    window's power repeating with that cycle, a within-RR correlation one cycle apart of
    at least ``repeats`` (in either window, where it holds >= 0.5 s of cycle pairs: the
    same wave every cycle), and in the TQ window at most ``flat`` of it isoelectric (no
    baseline between the waves; in the inter-QRS window the T wave sets the amplitude
    scale and the test is not made). Returns (bool, failed criteria)."""
    leads = [n for n in FLUTTER_LEADS if n in ev]
    need = repeats if ev["pairs_s"] >= 0.5 else -1.0
    # an isoelectric baseline between atrial waves (sinus P, atrial tachycardia) is read in
    # the T-Q interval; in the inter-QRS window the T wave sets the amplitude scale
    flat_max = flat if ev["window"] == "TQ" else 1.0
    good = [n for n in leads if ev[n]["periodic"] >= periodic and ev[n]["repeats"] >= need
            and ev[n]["flat"] <= flat_max]
    checks = {"rr_multiple": ev["rr_multiple"] >= rr_multiple, "atrial": len(good) >= min(2, len(leads))}
    bad = [k for k, v in checks.items() if not v]
    return not bad, bad


# --- real records ----------------------------------------------------------------------

def record_classes(dx_codes):
    """Generator classes of a CinC 2021 record from its SNOMED CT codes: (rhythm classes,
    morphology classes); NORM when no code makes the beat abnormal."""
    codes = set(dx_codes)
    cls = {SNOMED_CLASSES[c] for c in codes if c in SNOMED_CLASSES}
    rhythm = {c for c in cls if c in ("SR", "SB", "STACH", "PAC", "PVC", "AF", "IAVB")}
    morph = {c for c in cls if c in ("LVH", "RBBB", "TINV", "TAB")}
    if not codes & ABNORMAL_BEAT:
        morph.add("NORM")
    return rhythm, morph


def real_records(data_dir):
    """The shared CinC 2021 12-lead records: list of dicts ``name, leads (12, T) mV, fs,
    dx (SNOMED codes), rhythm, morphology (sets of class names), held_out (bool)``."""
    import wfdb

    folder = Path(data_dir) / "cinc2021"
    if not folder.is_dir():
        raise ConfigError(f"no cinc2021 folder in {data_dir}")
    recs = []
    for hea in sorted(folder.glob("*.hea")):
        r = wfdb.rdrecord(str(hea.with_suffix("")))
        # lead names matched without case: CinC 2021's sources spell aVR / AVR alike
        names = [str(n).strip().lower() for n in r.sig_name]
        missing = [n for n in LEADS if n.lower() not in names]
        if missing:
            raise DataFormatError(f"{hea}: record lacks the standard lead(s) {', '.join(missing)} "
                                  f"(has {', '.join(map(str, r.sig_name))})")
        idx = [names.index(n.lower()) for n in LEADS]
        dx = next((c.split(":", 1)[1].strip().split(",") for c in r.comments if c.startswith("Dx")), [])
        rh, mo = record_classes(dx)
        recs.append({"name": hea.stem, "leads": r.p_signal.T[idx], "fs": float(r.fs), "dx": dx,
                     "rhythm": rh, "morphology": mo, "held_out": hea.stem in HELD_OUT})
    return recs


def norm_held_out(recs, prior) -> list:
    """The real NORM records a NORM ``prior`` is judged on by default: the normal-beat records
    (not AF) that are in :data:`HELD_OUT`, or that the prior's fitting procedure never looked at
    (neither one of its ``sources`` nor a record its ``meta["records"]`` report lists as used or
    excluded). On the shared folder that is the HELD_OUT records; in a folder of other CinC 2021
    records, every normal-beat record of it -- none of them was fitted, and names fixed to
    today's records would select nothing there.

    Parameters
    ----------
    recs : list of dicts from :func:`real_records`
    prior : Prior

    Returns
    -------
    list of the selected dicts of ``recs``, in their order
    """
    looked_at = {str(s).split("/")[-1] for s in list(prior.sources) + list((prior.meta or {}).get("records", {}))}
    return [r for r in recs if "NORM" in r["morphology"] and "AF" not in r["rhythm"]
            and (r["held_out"] or r["name"] not in looked_at)]


# --- distributions ---------------------------------------------------------------------

def compare(real, synth, features=FEATURES):
    """Per feature: real 2.5-97.5 percentile range and median, synthetic IQR, the share of
    synthetic values inside the real range, and whether the real median lies inside the
    synthetic IQR.

    Parameters
    ----------
    real, synth : sequences of feature dicts (:func:`measure`)

    Returns
    -------
    list of dicts (feature, n_real, n_synth, real_lo, real_med, real_hi, syn_q1, syn_med,
    syn_q3, inside (0-1), median_in_iqr (bool))
    """
    rows = []
    for f in features:
        a = np.array([d.get(f, np.nan) for d in real], float)
        s = np.array([d.get(f, np.nan) for d in synth], float)
        a, s = a[np.isfinite(a)], s[np.isfinite(s)]
        if a.size < 2 or s.size < 4:
            continue
        lo, med, hi = np.percentile(a, [2.5, 50, 97.5])
        q1, smed, q3 = np.percentile(s, [25, 50, 75])
        rows.append({"feature": f, "n_real": int(a.size), "n_synth": int(s.size), "real_lo": lo,
                     "real_med": med, "real_hi": hi, "syn_q1": q1, "syn_med": smed, "syn_q3": q3,
                     "inside": float(np.mean((s >= lo) & (s <= hi))),
                     "median_in_iqr": bool(q1 <= med <= q3)})
    return rows


def markdown_table(rows, title=""):
    """A Markdown table of :func:`compare` rows (ms for intervals, mV, deg, bpm)."""
    scale = {"pr": 1e3, "qrs": 1e3, "qtc": 1e3}
    lines = [f"**{title}**", ""] if title else []
    lines += ["| feature | real n | real 2.5–50–97.5 % | synthetic IQR | synthetic inside real range | real median in synthetic IQR |",
              "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        k = scale.get(r["feature"], 1.0)
        unit = {"pr": " ms", "qrs": " ms", "qtc": " ms", "hr": " bpm", "axis": "°"}.get(r["feature"], " mV")
        lines.append(f"| {r['feature']}{unit} | {r['n_real']} | {k * r['real_lo']:.3g} – {k * r['real_med']:.3g} – "
                     f"{k * r['real_hi']:.3g} | {k * r['syn_q1']:.3g} – {k * r['syn_q3']:.3g} | "
                     f"{100 * r['inside']:.0f} % | {'yes' if r['median_in_iqr'] else 'no'} |")
    ok = sum(r["inside"] >= 0.9 and r["median_in_iqr"] for r in rows)
    lines += ["", f"{ok} of {len(rows)} features meet both criteria (>= 90 % inside the real range, real "
              "median inside the synthetic IQR)."]
    return "\n".join(lines)


# --- the README table --------------------------------------------------------------------

TABLE_CLASSES = ("NORM", "LVH", "RBBB", "TINV")


def _synthetic_features(morphology, rhythms, n, fs, rng, prior):
    """``n`` noiseless 10-s records of ``morphology`` drawn from ``prior`` (passed explicitly:
    the realism table must not fall back on the default, which saw the held-out records)."""
    from .synth import synthesize

    M = lead_matrix()
    out = []
    for k in range(n):
        rhythm = rhythms[k % len(rhythms)]
        b = synthesize(10.0, fs, rng, rhythm=rhythm, morphology=morphology, prior=prior)
        out.append(measure(M @ b.vcg, fs))
    return out


def realism_table(data_dir, *, n_synth=40, seed=20261205, classes=TABLE_CLASSES, prior=None,
                  norm_records=None, class_prior=None):
    """Real against synthetic 12-lead features per class (:func:`compare`), and Markdown.

    Real records: NORM — the held-out normal-beat records (:func:`norm_held_out`: :data:`HELD_OUT`
    and any record the prior's fit never looked at, e.g. every one of a folder of other CinC 2021
    records), or the records named in ``norm_records``; LVH, RBBB, TINV — every record of the class
    (the class morphologies are not fitted to records, and no NORM prior sees them).
    Synthetic: ``n_synth`` noiseless 10-s records per class, rhythms cycling through the
    real records' sinus rhythms; NORM drawn from ``prior``, the other classes from
    ``class_prior`` plus the class morphology.

    Parameters
    ----------
    prior : Prior, optional — the NORM rows' prior; default the validation prior
        (``prior.validation_prior``, fitted on the fit-set records only; today the shipped
        default itself)
    class_prior : Prior, optional — the NORM prior under the hand-built LVH, RBBB, TINV;
        default the shipped default (``prior.default_prior``: no record of those classes is
        in any NORM prior's fit, so the shipped generator is what is compared)
    norm_records : sequence of str, optional — record names to report NORM on (default the
        held-out normal-beat records). A NORM record the prior was fitted on raises
        ConfigError: a prior is not judged on its own fit records.

    Returns
    -------
    (dict class -> list of compare rows, str Markdown)

    A class with fewer than 2 distinct measurable real records in the folder is not compared
    (no range from one record): a warning names it and what was found. A real record the
    measure cannot read (:class:`SignalError`) is left out with a warning naming it.

    Raises
    ------
    ConfigError
        No class of ``classes`` has 2 distinct measurable real records in the folder; or a
        NORM record the prior was fitted on is to be reported on.
    """
    from .prior import default_prior, validation_prior

    prior = validation_prior() if prior is None else prior
    class_prior = default_prior() if class_prior is None else class_prior
    fitted = {s.split("/")[-1] for s in prior.sources}
    recs = real_records(data_dir)
    rng = np.random.default_rng(seed)
    tables, md = {}, []
    for cls in classes:
        if cls == "NORM":
            if norm_records is None:
                real = norm_held_out(recs, prior)
            else:
                want = set(norm_records)
                real = [r for r in recs if r["name"] in want]
                if len(real) != len(want):
                    raise ConfigError(f"norm_records not among the shared records: "
                                      f"{sorted(want - {r['name'] for r in real})}")
            seen_in_fit = sorted(r["name"] for r in real if r["name"] in fitted)
            if seen_in_fit:
                raise ConfigError(f"the prior was fitted on {', '.join(seen_in_fit)}: it cannot be judged on "
                                  "them (use prior.validation_prior() for the held-out records)")
        else:
            real = [r for r in recs if cls in r["morphology"]]
            class_fitted = {s.split("/")[-1] for s in class_prior.sources}
            seen_in_fit = sorted(r["name"] for r in real if r["name"] in class_fitted)
            if seen_in_fit:
                raise ConfigError(f"class_prior was fitted on {', '.join(seen_in_fit)} ({cls}): it cannot be "
                                  "judged on them")
        # identical records (E07509 and E07510 carry the same signal) count once
        uniq, seen = [], set()
        for r in real:
            key = np.round(r["leads"][:, :2000], 4).tobytes()
            if key not in seen:
                seen.add(key)
                uniq.append(r)
        # a record of another folder the measure cannot read (too few beats, ...) is named and
        # left out, not allowed to stop the whole table
        feats, kept = [], []
        for r in uniq:
            try:
                feats.append(measure(r["leads"], r["fs"]))
                kept.append(r)
            except SignalError as exc:
                warnings.warn(f"realism_table: {cls} record {r['name']} not measurable ({exc}); left out",
                              stacklevel=2)
        uniq = kept
        if len(uniq) < 2:  # no range from one record: said, not silently dropped
            warnings.warn(f"realism_table: {cls} not compared: {len(uniq)} distinct measurable real record(s) "
                          f"in {data_dir} ({', '.join(r['name'] for r in real) or 'none'}); need 2", stacklevel=2)
            continue
        rhythms = [sorted(r["rhythm"] & {"SR", "SB", "STACH"})[0] if r["rhythm"] & {"SR", "SB", "STACH"} else "SR"
                   for r in uniq]
        syn = _synthetic_features(cls, rhythms, n_synth, 500.0, rng, prior if cls == "NORM" else class_prior)
        rows = compare(feats, syn)
        tables[cls] = rows
        names = ", ".join(r["name"] for r in uniq)
        md.append(markdown_table(rows, f"{cls}: {len(uniq)} real records ({names}) against {n_synth} synthetic"))
    if not tables:
        raise ConfigError(f"no class of {', '.join(classes)} has 2 distinct measurable real records in "
                          f"{Path(data_dir) / 'cinc2021'}: nothing to compare")
    return tables, "\n\n".join(md)
