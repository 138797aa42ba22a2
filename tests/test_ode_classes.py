"""Each class's documented criteria, measured on generated records by a simple
delineator written here (independent of the generator's own annotation code)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from scipy.signal import find_peaks

from cardiosim.ode import CLASSES, synthesize

FS = 500.0


def delineate(vcg, fs, r, rr):
    """Intervals of one beat of a noise-free VCG (baseline 0) around R-peak sample ``r``.

    QRS: the run of samples (gaps < 40 ms) around the fastest one where the spatial
    velocity |dV/dt| exceeds 15 % of its peak within [R - 120 ms, R + 160 ms]. P: peak of |V| in the 300 ms before the QRS, onset where
    |V| falls below 5 % of that peak (P: the largest peak of |V| above 0.02 mV, prominence 0.01 mV, 280-30 ms before
    the QRS onset). T: peak of |V| after the QRS and before the next beat's P (up to
    R + 0.6 s, 0.85 RR, and RR - 0.3 s when RR >= 0.7 s), end by the tangent method
    (steepest descent extrapolated to zero). Returns a dict (s, mV, degrees).
    """
    v = vcg
    m = np.linalg.norm(v, axis=0)
    sv = np.linalg.norm(np.gradient(v, 1.0 / fs, axis=1), axis=0)
    a, b = r - int(0.12 * fs), r + int(0.16 * fs)
    w = sv[a:b]
    hot = w >= 0.15 * w.max()
    # the connected run (gaps < 40 ms) of fast samples around the fastest one
    gap = int(0.04 * fs)
    q_on = q_off = int(np.argmax(w))
    while q_on > 0 and hot[max(q_on - gap, 0):q_on].any():
        q_on -= 1 + int(np.argmax(hot[max(q_on - gap, 0):q_on][::-1]))
    while q_off < w.size - 1 and hot[q_off + 1:q_off + 1 + gap].any():
        q_off += 1 + int(np.argmax(hot[q_off + 1:q_off + 1 + gap]))
    q_on, q_off = a + q_on, a + q_off
    out = {"qrs": (q_off - q_on) / fs}
    kq = q_on + int(np.argmax(m[q_on:q_off + 1]))
    out["qrs_peak_mv"] = m[kq]
    area = v[:, q_on:q_off + 1].sum(axis=1)  # QRS area (mean QRS) vector
    axis = area / np.linalg.norm(area)
    out["st"] = float(v[:, min(q_off + int(0.06 * fs), v.shape[1] - 1)] @ axis)
    p0, p1 = max(q_on - int(0.28 * fs), 0), q_on - int(0.03 * fs)
    if p1 - p0 > 5:
        peaks, prop = find_peaks(m[p0:p1], prominence=0.01)
        keep = m[p0 + peaks] > 0.02
        if keep.any():
            j = np.flatnonzero(keep)[np.argmax(m[p0 + peaks[keep]])]  # the main P peak
            kp = p0 + peaks[j]
            below = np.flatnonzero(m[p0:kp] < 0.05 * m[kp])
            # P onset: |V| below 5 % of the P peak, or the trough before P when P sits on T
            onset = p0 + (below[-1] if below.size else prop["left_bases"][j])
            out["pr"] = (q_on - onset) / fs
    t0, t1 = q_off + int(0.04 * fs), min(r + int(min(0.6, 0.85 * rr) * fs), v.shape[1] - 1)
    if rr >= 0.7:  # the next beat's P (up to 0.3 s before its R) is not searched for T
        t1 = min(t1, r + int((rr - 0.3) * fs))
    if t1 - t0 > 10:
        kt = t0 + int(np.argmax(m[t0:t1]))
        d = np.gradient(m, 1.0 / fs)
        j = kt + int(np.argmin(d[kt:t1]))
        if d[j] < 0:
            qt = (j + m[j] / -d[j] / (1.0 / fs) - q_on) / fs
            out["qtc"] = qt / rr ** (1.0 / 3.0)
            cosang = (v[:, kt] @ axis) / m[kt]  # QRS area vector vs T peak vector
            out["qrs_t_angle"] = float(np.degrees(np.arccos(np.clip(cosang, -1, 1))))
    return out


def measure(b, beat_type="N"):
    """Delineate the beats of one type. After a short interval the previous T overlaps
    this beat's P (RR < 0.7 s) or QRS (RR < 0.35 s): those values are not measurable."""
    r = b.annotations["R_peak"]
    res = []
    for i, ri in enumerate(r):
        if b.beat_types[i] != beat_type or ri < 0.45 * FS or ri > b.vcg.shape[1] - 0.7 * FS:
            continue
        prev = (ri - r[i - 1]) / b.fs if i > 0 else 0.0
        if prev < 0.35:
            continue
        d = delineate(b.vcg, b.fs, ri, b.rr[i])
        if prev < 0.7:
            d.pop("pr", None)
        res.append(d)
    return res


# delineation uncertainty of this simple threshold delineator (one-sample jitter, P on
# T, wave tails): intervals ±10 ms, ST ±0.02 mV, angles ±10°, voltage ±0.1 mV
TOL = {"pr": 0.010, "qrs": 0.010, "qtc": 0.010, "st": 0.02, "qrs_t_angle": 10.0, "qrs_peak_mv": 0.1}


def _check(values, key, limits, name):
    lo, hi = limits
    x = np.array([v[key] for v in values if key in v])
    assert x.size >= 3, (name, key, "not measurable")
    tol = TOL[key if key in TOL else "qrs"]
    if lo is not None:
        assert x.min() >= lo - tol, (name, key, x.min(), lo)
    if hi is not None:
        assert x.max() <= hi + tol, (name, key, x.max(), hi)


MEASURED = ("pr", "qrs", "qtc", "st", "qrs_t_angle", "qrs_peak_mv")

# Besides 3 fixed seeds, N_FRESH more records per class come from an entropy fixed once
# (the date this test was written) and never tuned: the criteria must hold for records the
# generator was not adjusted to, and CI must be deterministic. To scan more, run with
# CARDIOSIM_FRESH_ENTROPY set to any integer.
N_FRESH = 40
FRESH = int(os.environ.get("CARDIOSIM_FRESH_ENTROPY", "20261125"))


def _seeds(base):
    return [base + k for k in range(3)] + [[FRESH, base, k] for k in range(N_FRESH)]


@pytest.mark.parametrize("name", ["NORM", "LBBB", "RBBB", "STE", "STD", "TINV", "LVH"])
def test_morphology_criteria(name):
    limits = CLASSES[name].limits
    for seed in _seeds(100):
        b = synthesize(8.0, FS, np.random.default_rng(seed), rhythm="SR", morphology=name,
                       heart_rate=70.0)
        vals = measure(b)
        for key in MEASURED:
            if key in limits:
                _check(vals, key, limits[key], (name, f"seed {seed}"))


@pytest.mark.parametrize("name", ["SR", "SB", "STACH", "AF", "AFL", "PAC", "IAVB", "PVC"])
def test_rhythm_criteria(name):
    limits = CLASSES[name].limits
    for seed in _seeds(200):
        # P is measured only where the previous T leaves it clear (RR >= 0.7 s)
        hr = 70.0 if name in ("SR", "IAVB", "PAC", "PVC") else None
        dur = 20.0 if name == "PVC" else 10.0  # enough ectopics away from the edges
        b = synthesize(dur, FS, np.random.default_rng(seed), rhythm=name, heart_rate=hr)
        vals = measure(b)
        name_seed = (name, f"seed {seed}")
        for key in MEASURED:
            if key in limits:
                _check(vals, key, limits[key], name_seed)
        if "hr" in limits and hr is None:
            lo, hi = limits["hr"]
            assert lo <= b.heart_rate <= hi, (name_seed, b.heart_rate)
        if name == "PVC":
            v = measure(b, "V")
            assert len(v) >= 1, name_seed
            _check(v * 3, "qrs", limits["pvc_qrs"], name_seed)  # every ectopic (>= 1) must comply


def test_velocity_trough_reads_the_mid_qrs_dip():
    """``model._velocity_trough`` reads the dip between the 12-lead velocity maxima: an
    out-and-back straight loop (one Gaussian along one direction) pauses at its apex (dip
    near 0), a loop turning between two non-collinear forces does not (dip > 0.25). The
    minimum used to be taken from the first to the last sample above 15 % of the peak --
    two samples at 0.15 by construction -- so no beat could exceed ~0.15."""
    from cardiosim.ode.model import NW, Patient, _velocity_trough

    tau, sigma, amp = np.zeros((3, NW)), np.full((3, NW), 0.01), np.zeros((3, NW))
    amp[:, 2] = [1.0, 0.3, 0.6]
    assert _velocity_trough(Patient(tau, sigma, amp)) < 0.1  # 0.07: the 1-ms grid straddles the apex
    tau[:, 2], tau[:, 3] = -0.012, 0.012
    amp[:, 2], amp[:, 3] = [0.8, 0.2, -0.6], [0.8, 0.2, 0.6]
    assert _velocity_trough(Patient(tau, sigma, amp)) > 0.25


def test_lbbb_redraw_loop_accepts(monkeypatch):
    """The LBBB loop's criterion is reachable: the 12-lead spatial velocity of the broad
    QRS does not pause (mid-QRS dip >= LBBB_MIN_TROUGH of the peak) in most draws, and every
    returned beat meets it (measured: 150 of 150 draws on 25 patients, dip 10-90 %
    0.30-0.39; before the septal forces were turned left-anterior, 0 of 300 draws: every
    beat was the 10th draw, dip 0.03-0.11 at the apex of a straight loop)."""
    from cardiosim.ode import model
    from cardiosim.ode.prior import sample_patient

    seen = []
    real = model._velocity_trough
    monkeypatch.setattr(model, "_velocity_trough", lambda q: seen.append(real(q)) or seen[-1])
    got = [real(sample_patient(np.random.default_rng([20261205, 13, k]), "LBBB")) for k in range(20)]
    seen = np.array(seen)
    assert np.mean(seen >= model.LBBB_MIN_TROUGH) >= 0.5, seen
    assert min(got) >= model.LBBB_MIN_TROUGH, got


@pytest.mark.parametrize("block, stream, wider", [("LBBB", 14, 0.03), ("RBBB", 16, 0.02)])
def test_bundle_branch_block_keeps_the_patients_pr(block, stream, wider):
    """A bundle-branch block leaves AV conduction alone: the blocked beat's PR (P onset to the
    wide QRS's onset) is its normal patient's, although its QRS starts earlier before the R
    fiducial (before, the P stayed put: LBBB's ran into the slurred QRS onset, RBBB's PR was
    7-35 ms shorter in these 8)."""
    from cardiosim.ode.model import apply_morphology
    from cardiosim.ode.prior import sample_patient

    for k in range(8):
        rng = np.random.default_rng([20261205, stream, k])
        p = sample_patient(rng)
        q, _ = apply_morphology(p, block, rng)
        assert abs(q.intervals()["pr"] - p.intervals()["pr"]) < 0.002, k
        assert q.intervals()["qrs"] > p.intervals()["qrs"] + wider, k


def test_ste_is_built_for_its_lead_specific_criterion():
    """The hand-built STE beat meets its class's 12-lead criterion (ST >= 0.10 mV in two
    contiguous leads, a lead of V2-V3 counting only from 0.25 mV) with the class margin on
    its template, as ``realism.measure`` reads it; and where the best pair is V2-V3 the
    build asks V2-V3 for 0.30 mV (their cut-point + 0.05), not the other leads' 0.15."""
    from cardiosim.ode import model
    from cardiosim.ode.prior import class_lead_margin, sample_patient
    from cardiosim.ode.realism import CONTIGUOUS, LI, lead_matrix

    assert model._ste_levels()[LI["V2"]] == model._ste_levels()[LI["V3"]] == 0.30
    assert model._ste_levels()[LI["V5"]] == 0.15
    M = lead_matrix()
    d = M[LI["V2"]] / np.linalg.norm(M[LI["V2"]]) + M[LI["V3"]] / np.linalg.norm(M[LI["V3"]])
    d /= np.linalg.norm(d)
    need = model._contiguous_st_scale(d, 0.15, model._ste_levels())
    u = M @ d * need
    lv = model._ste_levels()
    assert any(u[LI[a]] >= lv[LI[a]] - 1e-12 and u[LI[b]] >= lv[LI[b]] - 1e-12 for a, b in CONTIGUOUS)
    assert need > model._contiguous_st_scale(d, 0.15)  # one level for all leads asks less

    rng = np.random.default_rng([20261206, 31])
    ps = [sample_patient(rng, "STE") for _ in range(200)]
    tau, sigma, amp = (np.stack([getattr(p, a) for p in ps]) for a in ("tau", "sigma", "amp"))
    assert (class_lead_margin(tau, sigma, amp, "STE") >= 0).all()
