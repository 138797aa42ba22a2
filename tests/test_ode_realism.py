"""The ODE classes judged by an independent delineator on the 12 standard leads.

Every record is synthesized noiseless, projected through the project's lead field to the
12 standard leads (``cardiosim.ode.realism.lead_matrix``, checked below against the live
lead field) and measured by ``cardiosim.ode.realism.measure``: NeuroKit2's R-peak detector
and wavelet delineator (``ecg_delineate(method="dwt")``, P onset) on median beats, global
12-lead QRS bounds and T end (spatial velocity; tangent method on the spatial magnitude,
``realism.spatial_t_end``, tested in tests/test_realism_qt.py), plus simple median-beat
amplitudes — nothing of the generator's own fiducials. Each class's defining
criteria must hold in >= 95 % of RECORDS_PER_CLASS records (seeds fixed once, never tuned).

Criteria (clinical, per lead):
- NORM: PR 120-200 ms, QRS < 110 ms, QTc 350-460 ms, ST at J + 60 ms within -0.05...+0.10 mV
  in I, II, V4-V6, T upright in I, II, V3-V6;
- LBBB: QRS >= 120 ms, V1 predominantly negative (QS/rS), V6 a broad monophasic R that is
  notched (two maxima) or slurred (its slope falls below a third of its peak while the
  R is above 30 % of its height);
- RBBB: QRS >= 120 ms, terminal forces positive in V1 (R') and negative in I and V6 (wide S);
- STE: ST elevation >= +0.10 mV in two contiguous leads, where a lead of V2-V3 counts only
  from +0.25 mV (since 2026-12-06; the recommendations' V2-V3 cut-point is 0.2 mV for men
  >= 40 y, 0.25 mV for men < 40 y, 0.15 mV for women: a sex- and age-less STE must be
  abnormal for every adult, and the NORM screen allows up to 0.15 mV there); STD: ST <=
  -0.05 mV in two contiguous leads (Rautaharju et al., AHA/ACCF/HRS recommendations,
  Circulation 2009;119:e241); no accepted NORM beat meets the STE criterion;
- TINV: T <= -0.10 mV in two contiguous leads; LVH: Sokolow-Lyon S(V1) + R(V5/V6) >= 3.5
  mV, or Cornell R(aVL) + S(V3) > 2.8 mV, or R(aVL) >= 1.1 mV;
- SR 60-100 bpm, SB < 60, STACH > 100 (P wave present); AF: no P wave (< 0.05 mV in the
  median beat, or not repeating: beats' correlation with it < 0.8) and irregular RR (coefficient of variation >= 0.06); AFL: RR intervals
  whole multiples (>= 2) of one atrial cycle of 4-6 Hz, and atrial activity repeating with
  that cycle in the TQ (else inter-QRS) segments of II, III, aVF, V1, without subtracting
  any beat (``realism.flutter_evidence`` / ``is_flutter``); IAVB: PR > 200 ms;
  PVC: >= 1 premature beat of a different, wide QRS; PAC: >= 1 premature beat with the
  usual QRS (correlation > 0.95).
"""

from __future__ import annotations

import os
import zlib

import numpy as np
import pytest

from cardiosim.ode import synthesize
from cardiosim.ode.realism import CONTIGUOUS, LEADS, LI, flutter_evidence, is_flutter, lead_matrix, measure

from conftest import PTBXL_FIXTURE_RECORDS

FS = 500.0
DUR = 10.0
# 20 records per class keep CI fast (one may fail: >= 95 % of 20); the README's
# rates were measured with CARDIOSIM_REALISM_RECORDS=30
RECORDS_PER_CLASS = int(os.environ.get("CARDIOSIM_REALISM_RECORDS", "20"))
ENTROPY = 20261205  # fixed once, the day this test was written


def records(rhythm, morphology, n=RECORDS_PER_CLASS):
    M = lead_matrix()
    for k in range(n):
        b = synthesize(DUR, FS, np.random.default_rng([ENTROPY, zlib.crc32(f'{rhythm}+{morphology}'.encode()), k]),
                       rhythm=rhythm, morphology=morphology)
        yield b, M @ b.vcg


def _contiguous(values, test):
    return any(test(values[a]) and test(values[b]) for a, b in CONTIGUOUS)


# STE's per-lead cut-points (mV, ST at J + 60 ms), stated here independently of the
# generator (test_ste_cut_points_are_the_generators checks they agree)
STE_ST_MIN, STE_ST_MIN_V2V3 = 0.10, 0.25


def ste_ok(st):
    """ST elevation in two contiguous leads (``st``: lead name -> ST, mV), a lead of V2-V3
    counting only from STE_ST_MIN_V2V3, every other one from STE_ST_MIN."""
    def up(n):
        return st[n] >= (STE_ST_MIN_V2V3 if n in ("V2", "V3") else STE_ST_MIN)
    return any(up(a) and up(b) for a, b in CONTIGUOUS)


def _slurred_or_notched(x, fs):
    """A notched (two maxima > 50 % of R) or slurred (slope below a third of its peak
    while the R is above 30 % of its height, on its upstroke or downstroke) positive R."""
    r = x.max()
    if r <= 0:
        return False
    above = np.flatnonzero(x >= 0.3 * r)
    seg = x[above[0]:above[-1] + 1]
    from scipy.signal import find_peaks

    pk, _ = find_peaks(seg, height=0.5 * r, prominence=0.02 * r)
    if pk.size >= 2:
        return True
    d = np.gradient(seg)
    top = int(np.argmax(seg))
    up, down = d[:top], -d[top + 1:]
    return bool((up.size > 3 and (up[1:-1] < up.max() / 3).any() and up[0] > up.max() / 3)
                or (down.size > 3 and (down[1:-1] < down.max() / 3).any() and down[-1] > down.max() / 3))


def morphology_ok(name, m, fs=FS):
    """(passed, reason) of a morphology class's criteria on measured features ``m``."""
    st = {n: m[f"ST_{n}"] for n in LEADS}
    t = {n: m[f"T_{n}"] for n in LEADS}
    b, q0, q1 = m["beat_b"], m["q_on"], m["q_off"]
    if name == "NORM":
        checks = {"pr": 0.120 <= m["pr"] <= 0.200, "qrs": m["qrs"] < 0.110,
                  "qtc": 0.350 <= m["qtc"] <= 0.460,
                  "st": all(-0.05 <= st[n] <= 0.10 for n in ("I", "II", "V4", "V5", "V6")),
                  "t": all(t[n] > 0 for n in ("I", "II", "V3", "V4", "V5", "V6"))}
    elif name == "LBBB":
        v1, v6 = b[LI["V1"], q0:q1 + 1], b[LI["V6"], q0:q1 + 1]
        checks = {"qrs": m["qrs"] >= 0.120, "v1_negative": -v1.min() > v1.max(),
                  "v6_r": v6.max() > -v6.min() and _slurred_or_notched(v6, fs)}
    elif name == "RBBB":
        term = slice(max(q1 - int(0.04 * fs), q0), q1 + 1)
        checks = {"qrs": m["qrs"] >= 0.120, "v1_rprime": b[LI["V1"], term].max() > 0.05,
                  "wide_s": b[LI["I"], term].min() < -0.02 and b[LI["V6"], term].min() < -0.02}
    elif name == "STE":
        checks = {"st": ste_ok(st)}
    elif name == "STD":
        checks = {"st": _contiguous(st, lambda v: v <= -0.05)}
    elif name == "TINV":
        checks = {"t": _contiguous(t, lambda v: v <= -0.10)}
    elif name == "LVH":
        sok = m["S_V1"] + max(m["R_V5"], m["R_V6"])
        checks = {"voltage": sok >= 3.5 or m["R_aVL"] + m["S_V3"] > 2.8 or m["R_aVL"] >= 1.1}
    else:
        raise KeyError(name)
    bad = [k for k, v in checks.items() if not v]
    return not bad, bad


def _beat_windows(x, peaks, fs):
    a, b = int(0.06 * fs), int(0.10 * fs)
    ok = peaks[(peaks - a >= 0) & (peaks + b < x.shape[1])]
    return ok, np.stack([x[:, p - a:p + b].ravel() for p in ok])


def _ectopics(x, m, fs, kind):
    """Beats premature by >= 10 % of the median RR whose QRS differs from (PVC: correlation
    < 0.8 with the median QRS, and wider) or matches (PAC: > 0.95) the median beat's."""
    pk, w = _beat_windows(x, m["peaks"], fs)
    med = np.median(w, axis=0)
    corr = np.array([np.corrcoef(v, med)[0, 1] for v in w])
    idx = np.searchsorted(m["peaks"], pk)
    prev = np.array([(m["peaks"][i] - m["peaks"][i - 1]) / fs if i > 0 else np.inf for i in idx])
    early = prev < 0.9 * m["rr_median"]
    if kind == "PVC":
        return int(np.sum(early & (corr < 0.8)))
    return int(np.sum(early & (corr > 0.95)))


def _p_present(m):
    """A P wave: >= 0.05 mV in lead II before the QRS, repeating beat after beat."""
    return m["p_amp"] >= 0.05 and m["p_corr"] >= 0.8


def rhythm_ok(name, m, x, fs=FS):
    hr = m["hr"]
    if name == "SR":
        checks = {"hr": 60 <= hr <= 100, "p": _p_present(m)}
    elif name == "SB":
        checks = {"hr": hr < 60, "p": _p_present(m)}
    elif name == "STACH":
        checks = {"hr": hr > 100, "p": _p_present(m)}
    elif name == "IAVB":
        checks = {"pr": m["pr"] > 0.200}
    elif name == "AF":
        checks = {"no_p": m["p_amp"] < 0.05 or m["p_corr"] < 0.8, "irregular": m["rr_cv"] >= 0.06}
    elif name == "AFL":
        # no beat subtracted (flutter waves locked to the QRS would go with it): atrial
        # activity at 4-6 Hz in the TQ / inter-QRS segments of II, III, aVF, V1, RR whole
        # multiples of the atrial cycle (realism.flutter_evidence)
        ok, bad = is_flutter(flutter_evidence(x, fs))
        checks = {k: k not in bad for k in ("rr_multiple", "atrial")}
    elif name in ("PVC", "PAC"):
        checks = {"ectopic": _ectopics(x, m, fs, name) >= 1}
    else:
        raise KeyError(name)
    bad = [k for k, v in checks.items() if not v]
    return not bad, bad


def pass_rate(kind, name, n=RECORDS_PER_CLASS):
    """Share of ``n`` records of a class meeting its criteria, and the failures."""
    fails = []
    for k, (b, x) in enumerate(records(name if kind == "rhythm" else "SR",
                                       "NORM" if kind == "rhythm" else name, n)):
        need = kind == "morphology" or name in ("SR", "SB", "STACH", "IAVB", "AF")
        try:
            m = measure(x, FS, delineate=need)
            ok, bad = morphology_ok(name, m) if kind == "morphology" else rhythm_ok(name, m, x)
        except Exception as e:  # noqa: BLE001 — a record the delineator cannot read fails
            ok, bad = False, [f"{type(e).__name__}: {e}"]
        if not ok:
            fails.append((k, bad))
    return 1.0 - len(fails) / n, fails


def test_lead_matrix_is_the_projects_lead_field():
    """The shipped VCG -> 12-lead matrix equals the one from the live lead field."""
    from cardiosim.inverse.dipole import lead_transfer
    from cardiosim.simulate import make_context

    ctx = make_context(layout="standard12")
    m = lead_transfer(ctx.forward, ctx.layout) @ np.linalg.inv(
        lead_transfer(ctx.forward, ctx.frank_layout, "frank"))
    np.testing.assert_allclose(lead_matrix(), m, atol=1e-5)


# Classes that do not yet reach 95 % on this measure (pass rate when last measured, and
# the main failure): they run and are reported as expected failures, not hidden; a class
# that reaches 95 % shows up as XPASS. NORM left this list on 2026-12-06 with the global
# T end (realism.spatial_t_end): 1.00 of these 20 (0.80 with NeuroKit2's lead-II T end, every
# miss a QTc below 350 ms read at the T peak), 0.983 of 120 and 0.9875 of 240 other records
# (seeds k 1000-1119 and 2000-2239; misses: PR in 2, ST in 3, no QTc).
BELOW_TARGET = {
    "AFL": "0.95 of these 20 since the check's band-pass is mirror-padded (2026-12-07, second session; was 0.90), "
           "but 0.896 of 460 fresh seeds never looked at before (k 200-599 and 3000-3059: 48 misses, 'atrial' in "
           "47; 0.87 of k 200-499 without the padding): the seeds k 0-199 that flutter work was developed and "
           "reported on over several sessions read 0.967 of 180. By conduction: 3:1 31 of 62 missed (92-116 bpm, "
           "T waves filling the inter-QRS window of II and aVF), 2:1 15 of 124 (125-165 bpm), 2:1/4:1 2 of 83, "
           "4:1 none of 191 (docs/VALIDATION.md, \"The flutter check's edge\"). Re-measured 2026-12-07 (third "
           "session, generator unchanged): fresh k 5000-5399 0.902 (3:1 23 of 55 missed, 2:1 13 of 119, 2:1/4:1 3 of "
           "82, 4:1 0 of 144), fresh k 7000-7299 (run once) 0.917 (3:1 10 of 31, 2:1 15 of 96, 2:1/4:1 0 of 75, "
           "4:1 0 of 98). Why, split into the F waves alone and the QRS-T alone in the check's window: in the misses "
           "an F-wave trough lies under the T peak and the two cancel (their cross term -0.27 of lead II's window "
           "power in 3:1 misses, median, against +0.14 in passes; 3:1 passes 0.22 when the F nadir falls 0.20-0.25 s "
           "after the preceding R, 0.67-0.73 from 0.30 s). Not changed, as no published value says it is wrong: the F "
           "nadir-to-R interval (synth.FLUTTER_FR, unsourced) moves 2:1 between 0.78 and 1.00 but no value lifts 3:1 "
           "above 0.73; a plateau-then-sharp-negative F wave (the published morphology) lowers both; 3:1 reaches 0.93 "
           "only with the T halved or ~0.86 with F waves 1.5x the published amplitude",
}
# Every other class on fresh seeds k 3000-3059 (60 records each, run once, 2026-12-07): SR, SB, STACH, AF,
# IAVB, PAC, NORM, RBBB, STE, STD, TINV, LVH 1.00; LBBB 0.983; PVC 0.967; AFL 0.933.


def _params(names):
    return [pytest.param(n, marks=pytest.mark.xfail(reason=f"{n}: {BELOW_TARGET[n]}", strict=False))
            if n in BELOW_TARGET else n for n in names]


@pytest.mark.parametrize("name", _params(["NORM", "LBBB", "RBBB", "STE", "STD", "TINV", "LVH"]))
def test_morphology_criteria_12lead(name):
    rate, fails = pass_rate("morphology", name)
    assert rate >= 0.95, (name, rate, fails)


def _st_features(**st):
    m = {f"ST_{n}": 0.0 for n in LEADS} | {f"T_{n}": 0.3 for n in LEADS}
    m.update({f"ST_{n}": v for n, v in st.items()}, beat_b=None, q_on=0, q_off=0)
    return m


@pytest.mark.parametrize("st, ste", [
    (dict(V2=0.12, V3=0.12), False),  # normal V2-V3 elevation (NORM allows up to 0.15 there)
    (dict(V2=0.22, V3=0.22), False),  # abnormal for men >= 40 y only
    (dict(V2=0.24, V3=0.30), False),
    (dict(V2=0.26, V3=0.26), True),
    (dict(V5=0.12, V6=0.12), True),
    (dict(V5=0.12, V6=0.09), False),
    (dict(II=0.10, aVF=0.10), True),
    (dict(V3=0.12, V4=0.30), False),  # V3 counts from 0.25 in any pair
    (dict(V3=0.26, V4=0.11), True),
    (dict(V1=0.11, V2=0.26), True),
])
def test_ste_criterion_is_lead_specific(st, ste):
    """STE: >= 0.10 mV in two contiguous leads, a lead of V2-V3 counting only from 0.25 mV."""
    assert morphology_ok("STE", _st_features(**st))[0] is ste


def test_ste_cut_points_are_the_generators():
    """The test's STE cut-points are the ones the generator builds and screens STE beats for."""
    from cardiosim.ode.classes import STE_ST_MIN as gen_min, STE_ST_MIN_V2V3 as gen_v2v3
    from cardiosim.ode.prior import LEAD_ST_LIMITS, LEAD_ST_LIMITS_V2V3

    assert (gen_min, gen_v2v3) == (STE_ST_MIN, STE_ST_MIN_V2V3)
    # the NORM screen's upper ST limits sit below them, so the labels cannot overlap
    assert LEAD_ST_LIMITS[1] < STE_ST_MIN and LEAD_ST_LIMITS_V2V3[1] < STE_ST_MIN_V2V3


def test_norm_beats_never_meet_the_ste_criterion():
    """No accepted NORM patient (400 draws of the shipped prior) meets the STE criterion on its
    12-lead template (``prior.template_measures``: ST at J + 60 ms as ``measure`` reads it),
    and none reaches the V2-V3 cut-point. Of 15,000 draws 22 met the single 0.10 mV cut-point
    (19 through V2 or V3) and 3 meet this one, in leads cut at 0.10 mV where the NORM screen's
    own ST reading differs from this one (docs/VALIDATION.md, left open)."""
    from cardiosim.ode.prior import sample_patient, template_measures

    rng = np.random.default_rng([ENTROPY, 5])
    ps = [sample_patient(rng, "NORM") for _ in range(400)]
    st = template_measures(*(np.stack([getattr(p, a) for p in ps]) for a in ("tau", "sigma", "amp")))["ST"]
    hits = [k for k, row in enumerate(st) if ste_ok(dict(zip(LEADS, row)))]
    assert not hits, (hits, st[hits].round(3))
    assert st[:, [LI["V2"], LI["V3"]]].max() < STE_ST_MIN_V2V3


def test_norm_records_never_meet_the_ste_criterion():
    """... nor any NORM record of the 12-lead test, measured by ``measure``."""
    for k, (_, x) in enumerate(records("SR", "NORM")):
        m = measure(x, FS)
        assert not ste_ok({n: m[f"ST_{n}"] for n in LEADS}), (k, {n: round(m[f"ST_{n}"], 3) for n in LEADS})


@pytest.mark.parametrize("name", _params(["SR", "SB", "STACH", "AF", "AFL", "IAVB", "PVC", "PAC"]))
def test_rhythm_criteria_12lead(name):
    rate, fails = pass_rate("rhythm", name)
    assert rate >= 0.95, (name, rate, fails)


def _cpsc_windows(data_dir, per_record=12):
    """Non-overlapping 10-s windows of the CPSC 2021 records (leads I, II; 200 Hz) lying in
    one annotated rhythm: (signal (2, n), lead names, fs, is_af)."""
    import wfdb

    for hea in sorted((data_dir / "cpsc2021").glob("*.hea")):
        rec = str(hea.with_suffix(""))
        r, ann = wfdb.rdrecord(rec), wfdb.rdann(rec, "atr")
        x, fs = r.p_signal.T, float(r.fs)
        rhythm = np.full(x.shape[1], "(N", dtype=object)
        marks = [(s, a.strip("\x00")) for s, a in zip(ann.sample, ann.aux_note) if a.startswith("(")]
        for (s0, a), (s1, _) in zip(marks, marks[1:] + [(x.shape[1], "")]):
            rhythm[s0:s1] = a
        w = int(10 * fs)
        for st in list(range(0, x.shape[1] - w, w))[:per_record]:
            kinds = set(rhythm[st:st + w])
            if len(kinds) == 1:
                yield x[:, st:st + w], list(r.sig_name), fs, kinds.pop() == "(AFIB"


def test_flutter_check_rejects_real_non_flutter_records(data_dir):
    """The AFL check is not trivially passed: none of the 25 real 12-lead CinC 2021 records
    (sinus rhythm, sinus tachycardia 104-123 bpm and bradycardia, PAC, PVC, LVH, RBBB,
    T-wave changes) and none of the CPSC 2021 10-s windows of real AF or sinus rhythm
    (leads I and II: lead II the only flutter lead) is taken for flutter (measured: 0 of
    25, 0 of 76 AF and 0 of 107 non-AF windows)."""
    from cardiosim.ode.realism import real_records

    taken = [r["name"] for r in real_records(data_dir) if is_flutter(flutter_evidence(r["leads"], r["fs"]))[0]]
    assert taken == []
    n = {True: 0, False: 0}
    fp = {True: 0, False: 0}
    for x, names, fs, af in _cpsc_windows(data_dir):
        n[af] += 1
        fp[af] += is_flutter(flutter_evidence(x, fs, names))[0]
    assert n[True] >= 50 and n[False] >= 50, n
    assert fp[True] <= 0.02 * n[True] and fp[False] <= 0.02 * n[False], (fp, n)


# STACH was an xfail from 2026-12-06 (the NORM screen's new T waves: 2 of these 20, 138-139 bpm, and 4 of
# 80 fresh, 126-143 bpm, taken) until 2026-12-07: 0 of these 20 and 0 of 80 fresh (k 20-99) since the ST/T
# slots scale about the QRS onset, again 0 and 0 with the check's mirror-padded band-pass. The blind
# spot itself stays pinned by test_flutter_check_sinus_tachycardia_at_2to1_flutter_rates.
@pytest.mark.parametrize("name", ["SR", "SB", "AF", "PAC", "PVC", "IAVB", "STACH"])
def test_flutter_check_rejects_synthetic_non_flutter_rhythms(name):
    """The AFL check on the other rhythm classes (20 noiseless records each): >= 95 %
    rejected (measured: none of any class taken). Sinus tachycardia is the 2:1-flutter
    trap of ECG reading (no TQ segment; a P and a T wave between two QRS complexes): 7 of
    20 were taken while the check analysed 5-40 Hz band-passed leads (the high-pass rang
    at 4-6 Hz on every T and P wave) and skipped the within-RR test in the inter-QRS
    window; on the 0.5-40 Hz leads, with T and P required to be the same wave one atrial
    cycle apart, none is."""
    taken = []
    for k, (_, x) in enumerate(records(name, "NORM")):
        ev = flutter_evidence(x, FS)
        if is_flutter(ev)[0]:
            taken.append((k, ev["window"]))
    assert len(taken) <= 0.05 * RECORDS_PER_CLASS, taken


@pytest.mark.parametrize("hr", [140.0, 150.0])
def test_flutter_check_sinus_tachycardia_at_2to1_flutter_rates(hr):
    """The check's known blind spot, pinned so that it is seen if it grows: at 140-150 bpm a
    sinus tachycardia's P wave sits on the T wave and the ECG is that of 2:1 flutter with
    hidden F waves (no ECG reading separates them). Measured when written: 3 of 20 taken at
    140 bpm and 1 of 20 at 150 bpm, as many as by the previous 5-40 Hz check."""
    M = lead_matrix()
    taken = sum(is_flutter(flutter_evidence(M @ synthesize(DUR, FS, np.random.default_rng([777, int(hr), k]),
                                                           rhythm="STACH", heart_rate=hr).vcg, FS))[0]
                for k in range(20))
    assert taken <= 4, taken


def test_flutter_check_sees_the_isoelectric_baseline():
    """``flat``: a sawtooth (70 % descent) has no isoelectric stretch; a 100-ms P-like wave
    every 240 ms (the same cycle, a baseline between the waves) has one most of the time,
    and is refused in the TQ window even though it repeats every cycle."""
    from cardiosim.ode.realism import _flat_share
    from scipy.signal import sawtooth

    fs = 500.0
    t = np.arange(int(4 * fs)) / fs
    use = np.ones(t.size, bool)
    saw = -0.1 * sawtooth(2 * np.pi * t / 0.24, width=0.7)
    ph = np.mod(t, 0.24)
    p = 0.1 * np.where(ph < 0.1, np.sin(np.pi * ph / 0.1) ** 2, 0.0)
    assert _flat_share(saw, use, int(0.06 * fs)) == 0.0
    assert _flat_share(p, use, int(0.06 * fs)) > 0.4
    ev = {"window": "TQ", "pairs_s": 2.0, "rr_multiple": 1.0}
    ev.update({n: {"periodic": 0.99, "repeats": 0.99, "flat": 0.45} for n in ("II", "III", "aVF", "V1")})
    assert is_flutter(ev) == (False, ["atrial"])
    ev.update({n: {"periodic": 0.99, "repeats": 0.99, "flat": 0.0} for n in ("II", "III", "aVF", "V1")})
    assert is_flutter(ev) == (True, [])


def test_compare_flags_a_shifted_distribution():
    """compare(): a synthetic sample from the real distribution passes both criteria, one
    shifted by 3 SD fails both (analytic: 95 % of N(0,1) lies inside its 2.5-97.5 %)."""
    from cardiosim.ode.realism import compare

    rng = np.random.default_rng(0)
    real = [{"qrs": v} for v in rng.normal(0, 1, 4000)]
    same = compare(real, [{"qrs": v} for v in rng.normal(0, 1, 2000)], ("qrs",))[0]
    shifted = compare(real, [{"qrs": v} for v in rng.normal(3, 1, 2000)], ("qrs",))[0]
    assert abs(same["inside"] - 0.95) < 0.02 and same["median_in_iqr"]
    assert shifted["inside"] < 0.6 and not shifted["median_in_iqr"]


# --- NORM distributions against the held-out real records (issue 13, item 3) -----------------
# Target per feature: >= 90 % of synthetic records inside the real 2.5-97.5 % range and the real
# median inside the synthetic IQR (realism.compare), real = the 5 held-out normal-beat records
# (realism.HELD_OUT, never fitted), synthetic = realism_table's 40 noiseless records. With 5
# records the first half is nearly out of reach for any generator: the 2.5-97.5 % range of 5
# draws holds ~60 % of their own distribution, so a generator that IS the real distribution meets
# both on 1.4 of 22 features on average (Monte Carlo, Gaussian, 5 real vs 40 synthetic: 0.063 per
# feature), and 5 of these 40 synthetic records taken as the "real" ones against the other 35 meet
# them on 0.9 of 22. What is measured is pinned: the features that meet both pass, the others are
# xfail with their numbers (the shipped prior, scripts/ode_realism_table.py, as in the README), and
# NORM_DIST_MIN_MET is a floor on the count. The prior's proposal is matched to 9 features: 7 measured
# on the 4 fit-set records (E07500, E07506, E07508, HR06004) and T in V5 and I set from published
# healthy populations (prior.PUBLISHED_T_MEANS; scripts/fit_ode_prior.py --published-t T_V5,T_I),
# never on these held-out ones.
NORM_DIST_BELOW_TARGET = {  # measured 2026-12-06: published-T proposal (fit_ode_prior.py --published-t T_V5,T_I)
    # and the fitted sinus RR SD (rhythm.SINUS_HR_STD_BPM); re-measured with the ST-T scaled about the QRS onset
    # (model.scaled_timing, tests/test_ode_qt_rate.py)
    "hr": "68 % inside the real 58.8-122 bpm, real median 92.6 outside the synthetic IQR 63.4-92.2",
    "pr": "100 % inside the real 130-206 ms, real median 144 outside the synthetic IQR 148-166",
    "qrs": "68 % inside the real 62.2-80.4 ms, real median 66 inside the synthetic IQR 62-72",
    "qtc": "100 % inside the real 340-430 ms, real median 385 outside the synthetic IQR 389-408 (global T end, "
           "ST-T scaled about the QRS onset, 2026-12-06; scaled about R: 98 %, IQR 392-410; with NeuroKit2's "
           "lead-II T end: 88 % inside 334-430, median 392 inside the IQR 388-417)",
    "R_II": "48 % inside the real 0.155-1.09 mV, real median 0.877 outside the synthetic IQR 0.895-1.36",
    "S_II": "38 % inside the real 0.0642-0.307 mV, real median 0.0935 outside the synthetic IQR 0-0.0839",
    "R_V1": "75 % inside the real 0.00969-0.607 mV, real median 0.148 inside the synthetic IQR 0.0106-0.177",
    "R_V2": "78 % inside the real 0.0257-0.571 mV, real median 0.386 outside the synthetic IQR 0.0693-0.338",
    "R_V5": "100 % inside the real 0.325-1.99 mV, real median 0.885 outside the synthetic IQR 0.919-1.22",
    "S_V5": "57 % inside the real 0.0512-0.617 mV, real median 0.329 outside the synthetic IQR 0.00105-0.11",
    "R_aVL": "65 % inside the real 0.0356-0.445 mV, real median 0.156 outside the synthetic IQR 0.196-0.488",
    "ST_II": "100 % inside the real -0.0112-0.0864 mV, real median 9.46e-05 outside the synthetic IQR 0.00273-0.0167",
    "ST_V2": "75 % inside the real 0.00495-0.115 mV, real median 0.0701 outside the synthetic IQR 0.00468-0.04",
    "ST_V5": "80 % inside the real -0.00471-0.0695 mV, real median 0.042 outside the synthetic IQR 0.00407-0.0246",
    "T_I": "70 % inside the real 0.0633-0.293 mV, real median 0.135 outside the synthetic IQR 0.192-0.294",
    "T_II": "100 % inside the real 0.127-0.507 mV, real median 0.273 outside the synthetic IQR 0.302-0.415",
    "T_V5": "65 % inside the real 0.105-0.513 mV, real median 0.371 outside the synthetic IQR 0.431-0.53",
}
# of 22: axis, S in V1, S in V2, R in V6, T in V2 (QTc by the global T end since 2026-12-06: 100 % inside the
# real range, the real median 385 ms just under the synthetic IQR 389-408; by lead II's wavelet T end it
# had the median inside the IQR but 88-91 % inside the range, read in 34-36 of the 40). 7 with the proposal before the published T targets (PR, axis and R in V5 then; PR and R in V5 now
# miss by a hair: real median 144 ms vs IQR 148-168, 0.885 vs 0.919-1.24 mV); a refit of that proposal with
# its own record targets (same seeds) met 5 as well, and lost PR and R in V5 too.
NORM_DIST_MIN_MET = 5


@pytest.fixture(scope="module")
def norm_rows(data_dir):
    from cardiosim.ode.realism import realism_table

    tables, _ = realism_table(data_dir, classes=("NORM",))
    return {r["feature"]: r for r in tables["NORM"]}


def _dist_params():
    from cardiosim.ode.realism import FEATURES

    return [pytest.param(f, marks=pytest.mark.xfail(reason=f"{f}: {NORM_DIST_BELOW_TARGET[f]}", strict=False))
            if f in NORM_DIST_BELOW_TARGET else f for f in FEATURES]


@pytest.mark.parametrize("feature", _dist_params())
def test_norm_distribution_against_held_out_records(norm_rows, feature):
    r = norm_rows[feature]
    # the folder's NORM records no prior was fitted on: 5 in the shared folder (realism.HELD_OUT)
    assert r["n_real"] >= 3 and r["n_synth"] >= 38, r
    assert r["inside"] >= 0.9 and r["median_in_iqr"], r


def test_norm_t_in_v5_near_the_published_population(norm_rows):
    """The synthetic median T in V5 (realism.measure on realism_table's 40 NORM records) lies
    within 30 % of an independent reference: the published healthy-population mean, 0.444 mV in
    men and 0.317 mV in women (Haarmark et al., J Electrocardiol 2010;43:31-39; 1,081 subjects),
    0.38 mV for both sexes in equal shares. Measured 0.475 mV (+25 %: near the men's mean); the
    proposal matched to the four fit records' T had 0.553 mV (+45 %)."""
    from cardiosim.ode.prior import PUBLISHED_T_V5

    assert abs(PUBLISHED_T_V5 - 0.5 * (0.444 + 0.317)) < 1e-12
    med = norm_rows["T_V5"]["syn_med"]
    assert abs(med / PUBLISHED_T_V5 - 1.0) <= 0.30, med


def test_norm_distributions_count(norm_rows):
    """A floor on the count of NORM features meeting both criteria on the held-out records."""
    met = [f for f, r in norm_rows.items() if r["inside"] >= 0.9 and r["median_in_iqr"]]
    assert len(norm_rows) == 22 and len(met) >= NORM_DIST_MIN_MET, met


@pytest.mark.shared_records("cinc2021/E07509", "cinc2021/HR06004", "cinc2021/HR06001")
def test_real_record_classes_from_snomed(data_dir):
    from cardiosim.ode.realism import HELD_OUT, real_records

    recs = {r["name"]: r for r in real_records(data_dir)}
    assert recs["E07509"]["morphology"] == {"RBBB"} and "SB" in recs["E07509"]["rhythm"]
    assert recs["HR06004"]["morphology"] == {"NORM"}
    assert "NORM" not in recs["HR06001"]["morphology"]  # ST changes
    assert {n for n, r in recs.items() if r["held_out"]} == {h for h in HELD_OUT if "/" not in h}


def test_af_rhythm_prior_covers_held_out_patients(data_dir):
    """The AF prior fitted without CPSC 2021 patients 21 and 84 (the validation fit; the
    shipped default also uses them) against patient 84's real 10-s AF windows: >= 90 % of
    them inside the synthetic 2.5-97.5 % range of rate and RR coefficient of variation; slow
    regular AF (CV <= 0.12) and fast AF (> 110 bpm) are both drawn."""
    from cardiosim.ode.rhythm_prior import (HELD_OUT_PATIENTS, _annotated, af_windows, cpsc_patient, draw_af,
                                            validation_rhythm_prior)

    prior = validation_rhythm_prior()
    assert not any(s.split("_")[1] in HELD_OUT_PATIENTS for s in prior["sources"] if s.startswith("cpsc"))
    # the folder's patients the validation prior was not fitted on (21 and 84 here: only 84 has AF)
    fitted = {cpsc_patient(s.split("/")[-1]) for s in prior["sources"] if s.startswith("cpsc")}
    real = []
    for hea in sorted((data_dir / "cpsc2021").glob("data_*.hea")):
        if cpsc_patient(hea.stem) in fitted:
            continue
        t, _, st = _annotated(hea.with_suffix(""))
        real += af_windows(np.diff(t), st[:-1] == "(AFIB")
    real = np.array(real)
    assert len(real) >= 20
    rng = np.random.default_rng(3)
    syn = np.array([draw_af(rng, prior) for _ in range(4000)])
    lo, hi = np.percentile(syn, [2.5, 97.5], axis=0)
    inside = np.all((real >= lo) & (real <= hi), axis=1).mean()
    assert inside >= 0.9, (inside, lo, hi)
    assert np.mean(syn[:, 1] <= 0.12) > 0.03 and np.mean(syn[:, 0] > 110) > 0.2


@pytest.mark.shared_records(*PTBXL_FIXTURE_RECORDS)
def test_prior_fit_cli_on_a_ptbxl_folder(ptbxl_folder, tmp_path):
    """``cardiosim prior fit --source ptbxl:PATH`` fits the NORM-only records and writes a
    prior a recipe can name (``[source] prior``)."""
    from cardiosim.cli import main
    from cardiosim.dataset import Recipe
    from cardiosim.ode.prior import read_prior

    out = tmp_path / "prior.npz"
    assert main(["prior", "fit", "--source", f"ptbxl:{ptbxl_folder}", "--output", str(out),
                 "--max-records", "2", "--proposal-draws", "0", "--exclude-folds", ""]) == 0
    prior = read_prior(out)
    assert prior.n_records == 2 and all(s.startswith("ptbxl:") for s in prior.sources)
    assert prior.meta["command"].startswith("cardiosim prior fit")
    assert Recipe.from_dict({"source": {"prior": str(out)}}).source.prior == str(out)
    from cardiosim.errors import ConfigError
    with pytest.raises(ConfigError, match="ODE source only"):
        Recipe.from_dict({"source": {"kind": "wfdb", "path": "x", "prior": str(out)}})


def test_flutter_evidence_refuses_bad_input():
    """NaN samples, a wrong shape or no flutter lead are named, not analysed."""
    from cardiosim.errors import ConfigError, SignalError

    x = lead_matrix() @ synthesize(6.0, 500.0, np.random.default_rng(2), rhythm="AFL").vcg
    x[LI["V1"], 100:110] = np.nan
    with pytest.raises(SignalError, match="10 NaN/inf samples in lead.s. V1"):
        flutter_evidence(x, 500.0)
    with pytest.raises(ConfigError, match="must have shape"):
        flutter_evidence(x[:3], 500.0)
    with pytest.raises(ConfigError, match="no flutter lead"):
        flutter_evidence(x[:1], 500.0, names=["I"])


# -- realism.clean's ends ---------------------------------------------------------------------------

def _edge_errors(x, fs, pad_s, n_windows, seed):
    """RMS error over the first and last 0.5 s of 10-s windows cleaned alone, against the same
    samples of the whole record cleaned at once (the reference: a filter that saw the data on
    both sides), as a fraction of the window's RMS; medians over ``n_windows`` windows."""
    from cardiosim.ode.realism import clean

    full = clean(x, fs)  # the long record's own ends lie outside every window
    n, k = int(10 * fs), int(0.5 * fs)
    starts = np.random.default_rng(seed).integers(int(3 * fs), x.shape[-1] - n - int(3 * fs), n_windows)
    first, last = [], []
    for s in starts:
        ref = full[:, s:s + n]
        err = clean(x[:, s:s + n], fs, pad_s=pad_s) - ref
        rms = np.sqrt(np.mean(ref ** 2))
        first.append(np.sqrt(np.mean(err[:, :k] ** 2)) / rms)
        last.append(np.sqrt(np.mean(err[:, -k:] ** 2)) / rms)
    return np.median(first), np.median(last)


def test_clean_padding_follows_the_long_record_at_the_ends():
    """A 10-s window cleaned alone against the same samples cleaned inside a 60-s synthetic
    record: with the mirror padding (``pad_s = CLEAN_PAD_S``) the first and last 0.5 s are
    nearer the long record's than with scipy's default padding, at both ends (measured: 9.5 % /
    10.2 % of the RMS padded against 12.9 % / 14.7 %; a noiseless record has no wander, so
    less to gain than a real one)."""
    from cardiosim.ode.realism import CLEAN_PAD_S

    b = synthesize(60.0, FS, np.random.default_rng(5), rhythm="SR", morphology="NORM")
    x = lead_matrix()[[LEADS.index("II"), LEADS.index("V2")]] @ b.vcg
    pad = _edge_errors(x, FS, CLEAN_PAD_S, 30, 1)
    default = _edge_errors(x, FS, None, 30, 1)
    assert pad[0] < default[0] and pad[1] < default[1], (pad, default)


def test_clean_padding_on_a_real_record(data_dir):
    """The same on MIT-BIH 100 (both leads, 30 min, real baseline wander), the record the padding
    was chosen on: measured 14 % / 16 % of the RMS over the first / last 0.5 s by default,
    7.3 % / 7.7 % padded (200 windows, seed 0); here (60 windows, seed 1) 12.6 % / 18.3 % against
    7.8 % / 9.5 %."""
    import wfdb

    from cardiosim.ode.realism import CLEAN_PAD_S

    path = data_dir / "mitdb" / "100"
    if not path.with_suffix(".hea").exists():
        pytest.skip(f"no MIT-BIH record 100 in {data_dir / 'mitdb'}")
    r = wfdb.rdrecord(str(path))
    x = r.p_signal.T.astype(np.float64)
    pad = _edge_errors(x, r.fs, CLEAN_PAD_S, 60, 1)
    default = _edge_errors(x, r.fs, None, 60, 1)
    assert max(pad) < 0.12, pad
    assert pad[0] < 0.75 * default[0] and pad[1] < 0.75 * default[1], (pad, default)


@pytest.mark.parametrize("pad_s", [0.0, -1.0, float("nan")])
def test_clean_refuses_a_padding_that_is_not_a_positive_duration(pad_s):
    from cardiosim.errors import ConfigError
    from cardiosim.ode.realism import clean

    with pytest.raises(ConfigError, match="pad_s must be a positive number of seconds"):
        clean(np.zeros((2, 1000)), 500.0, pad_s=pad_s)
