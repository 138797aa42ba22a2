"""The global T end of ``realism.measure`` (tangent method on the 12 leads' spatial magnitude)
against independent references: a hand-built beat whose T wave ends at a known sample, the real
CinC 2021 normal-beat records read by two other methods, and its stability on one synthetic
patient as the RR variability changes (issue 13, item 2)."""

from __future__ import annotations

import numpy as np
import pytest

from cardiosim.ode.realism import (LEADS, lead_matrix, lead_t_ends, measure, real_records, spatial_t_end,
                                   tangent_t_end)

FS = 500.0


def _hand_built_record(t_end_ms, rr=0.9, dur=10.0, fs=FS, t_dipole=(0.25, 0.20, -0.10)):
    """A 12-lead record built without the generator: one dipole (Frank axes, mV) per wave
    projected by ``lead_matrix`` -- a P wave (Gaussian, R - 170 ms), a biphasic QRS (Gaussian
    derivative, R), and a T wave rising as a half cosine from R + 120 ms to its peak at
    ``t_end_ms`` - 110 ms and falling linearly to zero at R + ``t_end_ms``: its end is known by
    construction, and a straight descending limb is where the tangent method is exact.
    Returns (leads (12, T), R sample indices)."""
    n = int(dur * fs)
    t = np.arange(n) / fs
    rs = np.arange(0.5, dur - 0.7, rr)
    vcg = np.zeros((3, n))
    te = t_end_ms / 1e3
    tp = te - 0.110
    for r0 in rs:
        u = t - r0
        p = 0.12 * np.exp(-0.5 * ((u + 0.17) / 0.02) ** 2)
        q = -u / 0.012 * np.exp(-0.5 * (u / 0.012) ** 2) * 1.2 + 1.0 * np.exp(-0.5 * (u / 0.010) ** 2)
        up = np.where((u >= 0.12) & (u < tp), 0.5 - 0.5 * np.cos(np.pi * (u - 0.12) / (tp - 0.12)), 0.0)
        down = np.where((u >= tp) & (u < te), (te - u) / (te - tp), 0.0)
        tw = up + down
        vcg += np.outer((0.3, 0.6, 0.1), p) + np.outer((0.8, 0.9, -0.5), q) + np.outer(t_dipole, tw)
    return lead_matrix() @ vcg, np.round(rs * fs).astype(int)


def _end_after_true_r(m, rs):
    """``measure``'s T end in ms after the constructed R (the median beat is aligned on the
    detected R peaks, a few ms off the constructed ones)."""
    shift = np.median([p - rs[np.argmin(np.abs(rs - p))] for p in m["peaks"]])
    return (m["t_off"] - m["r"] + shift) / FS * 1e3


@pytest.mark.parametrize("t_end_ms, rr", [(360.0, 0.9), (400.0, 1.1), (300.0, 0.6)])
def test_spatial_t_end_exact_on_an_unfiltered_beat(t_end_ms, rr):
    """:func:`spatial_t_end` on the hand-built beat as built (median of its beats at the
    constructed R, PR-baseline corrected, no filter) finds the known end within 1 ms."""
    from cardiosim.ode.realism import median_beat

    x, rs = _hand_built_record(t_end_ms, rr)
    beat, r = median_beat(x, FS, rs)
    b = beat - beat[:, r - int(0.11 * FS):r - int(0.09 * FS)].mean(axis=1)[:, None]  # between P and QRS
    got_ms = (spatial_t_end(b, r + int(0.04 * FS), r, FS, rr) - r) / FS * 1e3
    assert abs(got_ms - t_end_ms) <= 1.0, (got_ms, t_end_ms)


@pytest.mark.parametrize("t_end_ms, rr", [(360.0, 0.9), (400.0, 1.1), (300.0, 0.6)])
def test_global_t_end_finds_a_known_end(t_end_ms, rr):
    """Through ``measure`` (R peaks, median beat, global QRS, all found by the measure) the
    global T end lies within 8 ms of the known end. The 0.5-40 Hz band of ``realism.clean``,
    applied alike to real and synthetic records, moves it (when written: 4-6 ms early, about
    half from the high-pass's drift under the T wave, half from the low-pass rounding the
    corners of the limb; exact without the band, test above)."""
    x, rs = _hand_built_record(t_end_ms, rr)
    m = measure(x, FS)
    got_ms = _end_after_true_r(m, rs)
    assert abs(got_ms - t_end_ms) <= 8.0, (got_ms, t_end_ms)


def test_global_t_end_ignores_lead_polarity_and_a_flat_lead():
    """The same end whichever way the T dipole points (inverted T in some leads, near-flat in
    others): the spatial magnitude does not depend on a lead's sign."""
    ends = []
    for d in ((0.25, 0.20, -0.10), (-0.25, 0.20, 0.30), (0.0, -0.3, 0.0)):
        x, rs = _hand_built_record(380.0, 0.9, t_dipole=d)
        ends.append(_end_after_true_r(measure(x, FS), rs))
    assert np.ptp(ends) <= 4.0 and abs(np.mean(ends) - 380.0) <= 8.0, ends


def test_tangent_t_end_refuses_no_t_wave():
    """No T peak inside the window (a curve still rising at its edge) or a wave below
    T_MIN_MV gives nan, not a number."""
    y = np.linspace(0.0, 1.0, 200)
    assert np.isnan(tangent_t_end(y, 10, 150, 190))
    assert np.isnan(tangent_t_end(0.01 * np.sin(np.linspace(0, np.pi, 200)), 10, 150, 190))
    tri = np.concatenate([np.linspace(0, 1, 50), np.linspace(1, 0, 51)[1:], np.zeros(100)])
    assert abs(tangent_t_end(tri, 0, 150, 190) - 99.0) < 1e-6


def _real_normal(data_dir):
    """Distinct real CinC 2021 normal-beat records (not AF), measured."""
    try:
        recs = real_records(data_dir)
    except Exception as exc:  # noqa: BLE001 — no cinc2021 folder in this data folder
        pytest.skip(f"no CinC 2021 records in {data_dir}: {exc}")
    out = []
    for r in recs:
        if "NORM" in r["morphology"] and "AF" not in r["rhythm"]:
            out.append((r["name"], r["fs"], measure(r["leads"], r["fs"])))
    if len(out) < 5:
        pytest.skip(f"fewer than 5 real normal-beat records in {data_dir}")
    return out


@pytest.fixture(scope="module")
def real_normal(data_dir):
    return _real_normal(data_dir)


def test_real_global_qt_agrees_with_lead_tangents(real_normal):
    """A second reading of the same T waves: the tangent method lead by lead (Postema et al.
    2008's manual method) on the three leads with the largest T waves, their median. On the
    real normal-beat records it agrees with the global T end within 15 ms on all but one
    record (the exception, when measured: JS20005, where V5's T wave trails into the next
    P wave), and the median difference is under 10 ms."""
    diffs = {}
    for name, fs, m in real_normal:
        ends, amps = lead_t_ends(m["beat_b"], m["q_off"], m["r"], fs, m["rr_median"])
        big = np.argsort(-amps)[:3]
        diffs[name] = (np.nanmedian(ends[big]) - m["t_off"]) / fs * 1e3
    d = np.abs(np.array(list(diffs.values())))
    assert np.sum(d > 15.0) <= 1 and np.median(d) < 10.0, diffs


def test_real_global_qt_agrees_with_lead_ii_wavelet(real_normal):
    """An independent method: NeuroKit2's wavelet T offset of lead II (``qt_ii``). On the real
    normal-beat records the median |difference| is under 20 ms and at least 80 % of the
    records agree within 35 ms (lead II's wavelet T end is the one that lands on the T peak
    of some beats: JS20005 read 69 ms shorter, when measured)."""
    d = np.array([abs(m["qt"] - m["qt_ii"]) * 1e3 for _, _, m in real_normal])
    assert np.all(np.isfinite(d)), d
    names = [n for n, _, _ in real_normal]
    assert np.median(d) < 20.0 and np.mean(d <= 35.0) >= 0.8, dict(zip(names, d.round()))


def test_real_normal_qtc(real_normal):
    """Real normal-beat records read a plausible QTc (Fridericia) by the global T end: every
    record within 320-470 ms and their median inside the NORM criterion's 350-460 ms. (When
    measured, 3 of the 10 read 339-347 ms, under the criterion's 350: a tangent reads QT
    shorter than a threshold reading, by up to 10 ms in 96 of 100 ECGs, Panicker et al.,
    J Electrocardiol 2009;42:348.)"""
    qtc = {n: m["qtc"] * 1e3 for n, _, m in real_normal}
    v = np.array(list(qtc.values()))
    assert np.all((v >= 320) & (v <= 470)) and 350 <= np.median(v) <= 460, qtc


def test_global_qt_stable_when_only_the_rr_variability_changes():
    """One synthetic patient at 92 bpm, RR SD 0.5-4.85 bpm (rhythm.SINUS_HR_STD_BPM's range),
    the beat unchanged: the global QT moves by less than 20 ms (measured < 10 ms over 10
    patients; NeuroKit2's lead-II T end moved by up to 90 ms on the same records, jumping from
    the T end to the T peak)."""
    from cardiosim.ode import synthesize
    from cardiosim.ode.prior import sample_patient

    M = lead_matrix()
    for pi in (1, 6):
        p = sample_patient(np.random.default_rng([4242, pi]), "NORM")
        qt = [measure(M @ synthesize(10.0, FS, np.random.default_rng([4243, pi, int(sd * 100)]), patient=p,
                                     heart_rate=92.0, heart_rate_std=sd).vcg, FS)["qt"] * 1e3
              for sd in (0.5, 2.0, 4.0, 4.85)]
        assert np.all(np.isfinite(qt)) and np.ptp(qt) < 20.0, (pi, qt)


def test_spatial_t_end_is_the_measures():
    """``measure``'s T end is :func:`spatial_t_end` on its own baseline-corrected median beat."""
    x, _ = _hand_built_record(360.0, 0.9)
    m = measure(x, FS)
    assert m["t_off"] == spatial_t_end(m["beat_b"], m["q_off"], m["r"], FS, m["rr_median"])
    assert len(LEADS) == m["beat_b"].shape[0]
