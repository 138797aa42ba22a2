"""A refined record keeps its label's defining features (issue 18).

The refiner is trained (physics term on) on simulated SR+NORM shirt records against real
12-lead CinC 2021 records labelled NORM -- only those the shipped ODE prior was fitted to
(``realism.HELD_OUT`` excluded) -- and applied to *other* simulated records of the same
recipe. The judge is independent of the generator: NeuroKit2-based delineation
(:func:`cardiosim.ode.realism.measure`) checked against the limits the generator
guarantees for NORM and SR (:data:`cardiosim.ode.classes.CLASSES`).

History: without any beat term the refiner kept every record's rate but not how often
the NORM limits are met (3/8 refined vs 5/8 unrefined): it moved the delineated P onset
and T end. A beat-locked *penalty* (weight 2.0, chosen on seed 7) gave 7/8 vs 7/8 on one
ODE prior and 5/8 vs 8/8 on the next (94397ce) -- a weight does not hold across priors.
Since then the refinement is *projected* onto changes with a zero beat-locked average
(``keep_average_beat``, the default with R peaks; no weight to choose): measured on seed 18
at 15:00 UTC, 8/8 refined vs 8/8 unrefined with a mean relative change of 0.28; on seed 7
(not this test's) the delineated median-beat features moved by at most 3 bpm, 24 ms PR,
4 ms QRS, 0.03 mV ST and 0.09 mV T. Across the afternoon's priors: 6/8 refined vs 7/8
unrefined at e4dcca2 (7ffb307's prior), 7/8 vs 6/8 on the final prior (004d6b5, change 0.32);
on both, one record's delineated rate moved by ~16 bpm (extra beats detected).

Since 19d4e60 each refinement is also bounded, one scale per record, to 0.25 of the record's
QRS spatial velocity and 0.05 of its QRS spatial peak-to-peak (``max_slope_fraction``,
``max_amplitude_fraction``; chosen on seeds 4 and 6 and on seeds 1 and 2 with lr 4e-3, where
the bounded refiner lost no NORM record and misread no rate, while the unbounded one lost one
record on three of the four and on seed 2 read 74.8 for 67.2 bpm). On this seed (17:42 UTC,
after the noise stream changed in 1e37ea4): every rate kept exactly (rate check now a real
assert), NORM+SR 6/8 refined vs 7/8 unrefined (one PR 0.166 -> 0.110 s; xfail, see there),
mean relative change 0.06; without the bounds 7/8 vs 7/8.

Since 20:00 UTC the check runs on a larger sample: seeds 18-22 pooled, 8 training and 16
evaluation records each (80 records; about a minute per seed on one thread). Those seeds were
fixed before any of them was measured with this code and chose nothing for the record mode
(the default); for the residual mode they showed the unbounded variant amplifying its noise
into transients a detector counts as beats, after which its bounds were kept on, so for it
only the fresh seeds 23-27 are a verdict. Measured at 19:35-19:53 UTC
with the default refiner (record mode, projection, both bounds): 65 of 80 refined vs 65 of 80
unrefined keep the NORM+SR limits (per seed 10/12, 14/14, 13/12, 13/12, 15/15: seed 18 alone
still loses two), no rate misread; on the further fresh seeds 23-27, 63 vs 62. The residual
mode (``mode="residual"``, the refiner sees only ``ecg - clean_ecg``; README) measured 62 vs 65
on seeds 18-22 and 63 vs 62 on 23-27, level with the record mode, so it is not the default.

Since 22:45 UTC the label check is per record (its test says why): the records whose NORM
verdict survives 5 uV of white noise must keep it refined (>= 95 %), with no systematic shift
of PR, QRS or QTc, and a 1.25x time stretch of the same records (a label change) must fail
both. Designed on seeds 18-22 (which the pooled count had already been read on), then read on
the fresh seeds 23-27 as the verdict (numbers in the tests).
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cardiosim.dataset import Recipe, simulate_block  # noqa: E402
from cardiosim.errors import SignalError  # noqa: E402
from cardiosim.ode import realism  # noqa: E402
from cardiosim.ode.classes import CLASSES  # noqa: E402
from cardiosim.sources import resample  # noqa: E402
from cardiosim.torch.refine import fit_refiner, refine_records  # noqa: E402

N_TRAIN, N_EVAL = 8, 16
SEEDS = (18, 19, 20, 21, 22)
LIMITS = {**CLASSES["NORM"].limits, **CLASSES["SR"].limits}   # pr, qrs, qtc (s), hr (bpm)


def meets_norm(sig: np.ndarray, fs: float) -> tuple[bool, dict]:
    try:
        m = realism.measure(sig.astype(np.float64), fs)
    except SignalError:
        return False, {}
    ok = all(np.isfinite(m[k]) and (lo is None or m[k] >= lo) and (hi is None or m[k] <= hi)
             for k, (lo, hi) in LIMITS.items())
    return ok, {k: m[k] for k in LIMITS}


def simulated_norm(seed: int, n_records: int):
    """``(ecg, clean_ecg, fs, true R peaks)`` of ``n_records`` simulated SR+NORM shirt records (5 s)."""
    recipe = Recipe.from_dict({"records": n_records, "duration": 5.0, "seed": seed,
                               "source": {"classes": {"SR+NORM": 1.0}},
                               "output": {"store_clean": True, "pack_int16": False}})
    ds = simulate_block(recipe.to_toml(), 0, recipe.records)
    x, clean = ds["ecg"].values, ds["clean_ecg"].values
    fs, n_t = float(ds.attrs["sampling_rate"]), x.shape[-1]
    peaks = [p[(p >= 0) & (p < n_t)] for p in ds["beat_r_peak"].values]
    assert tuple(str(v) for v in ds["lead"].values) == realism.LEADS
    return x, clean, fs, peaks


def real_norm_windows(data_dir, fs: float, n_t: int) -> np.ndarray:
    """The CinC 2021 NORM records the ODE prior was fitted to (held-out ones excluded), cut
    into ``n_t``-sample windows at ``fs``."""
    real = []
    for rec in realism.real_records(data_dir):
        if rec["held_out"] or rec["morphology"] != {"NORM"}:
            continue
        y = resample(rec["leads"], rec["fs"], fs)
        real += [y[:, k * n_t:(k + 1) * n_t] for k in range(y.shape[-1] // n_t)]
    assert len(real) >= 4, "too few real NORM windows"
    return np.stack(real).astype(np.float32)


def repeat_verdicts(sim: np.ndarray, fs: float, rng: np.random.Generator, draws: int = 3) -> list[bool]:
    """The NORM+SR verdicts of ``sim`` plus ``draws`` independent draws of 5 uV white noise
    (below the 2-10 uV amplifier noise every device adds, ``NoiseConfig.white_uv``): the
    delineator's own repeatability on this record, whatever refines it. Where a draw flips
    the unrefined verdict, the delineator cannot decide the label of this record."""
    return [meets_norm(sim + rng.normal(0.0, 0.005, sim.shape), fs)[0] for _ in range(draws)]


def stretched(x: np.ndarray, factor: float) -> np.ndarray:
    """``x`` (leads, T) played ``factor`` times slower from its first sample, cropped to T:
    every interval (PR, QRS, QT, RR) times ``factor`` -- a change of the label itself, the
    negative control of the label checks."""
    t = np.arange(x.shape[-1])
    return np.stack([np.interp(t / factor, t, lead) for lead in x])


def label_check(data_dir, seed: int, n_train: int = N_TRAIN, n_eval: int = N_EVAL, real=None, **fit_kw):
    """Train a refiner (physics on, 40 steps) on the first ``n_train`` records of ``seed``,
    refine the next ``n_eval`` and delineate both. Returns ``(change, before, after, true_hr,
    repeats, stretch)``: each evaluation record's :func:`repeat_verdicts`, and its verdict
    when :func:`stretched` by 1.25 instead of refined (the negative control)."""
    x, clean, fs, peaks = simulated_norm(seed, n_train + n_eval)
    if real is None:
        real = real_norm_windows(data_dir, fs, x.shape[-1])
    kw = dict(steps=40, batch=4, channels=8, seed=0)
    kw.update(fit_kw)
    res = fit_refiner(x[:n_train], real, fs=fs, clean=clean[:n_train], r_peaks=peaks[:n_train], **kw)
    sim = x[n_train:].astype(np.float64)
    ref = refine_records(res.refiner, x[n_train:], clean=clean[n_train:], r_peaks=peaks[n_train:], fs=fs)
    ref = ref.astype(np.float64)
    change = float(np.abs(ref - sim).mean() / np.abs(sim).mean())
    before = [meets_norm(s, fs) for s in sim]
    after = [meets_norm(s, fs) for s in ref]
    rng = np.random.default_rng(seed)
    shams = [repeat_verdicts(s, fs, rng) for s in sim]
    stretch = [meets_norm(stretched(s, 1.25), fs) for s in sim]
    true_hr = [60.0 * fs / float(np.diff(np.sort(p)).mean()) for p in peaks[n_train:]]   # the simulation's own beats
    return change, before, after, true_hr, shams, stretch


@pytest.fixture(scope="module")
def measured(data_dir):
    """For each of ``SEEDS``: train once (physics on, default learning rate, 40 steps) and
    measure the evaluation records before and after refining; pooled over the seeds."""
    torch.set_num_threads(1)
    changes, before, after, true_hr, shams, stretch, real = [], [], [], [], [], [], None
    for seed in SEEDS:
        if real is None:
            x, _, fs, _ = simulated_norm(seed, 1)
            real = real_norm_windows(data_dir, fs, x.shape[-1])
        change, b, a, hr, sh, st = label_check(data_dir, seed, real=real)
        print(f"seed {seed}: NORM+SR criteria met {sum(ok for ok, _ in b)}/{N_EVAL} simulated, "
              f"{sum(ok for ok, _ in a)}/{N_EVAL} refined; mean relative change {change:.2f}; rates (true, "
              f"unrefined, refined): {[(round(t, 1), mb.get('hr'), ma.get('hr')) for t, (_, mb), (_, ma) in zip(hr, b, a)]}")
        changes.append(change)
        before += b
        after += a
        true_hr += hr
        shams += sh
        stretch += st
    return float(np.mean(changes)), before, after, true_hr, shams, stretch


@pytest.mark.slow
def test_refined_records_keep_their_rhythm(measured):
    """Wherever the delineator reads an unrefined record's rate right (within 2 bpm of the
    rate of the simulation's true R peaks), it reads the refined record's right too: the
    refiner adds no beat a detector counts and hides none. (Compared with the truth, not with
    the unrefined reading: a detector error on the unrefined record -- a beat counted in an
    edge artefact -- is no property of the refiner.) Was an xfail before the slope bound
    (:func:`cardiosim.torch.refine.bound_slope`): one record read at 78.7 instead of 62.9 bpm.
    With the bounds every rate here is read exactly as on the unrefined record (17:42 UTC);
    on the design seed 2 (lr 4e-3) the unbounded refiner read 74.8 for 67.2 bpm. Seeds 18-22
    pooled (80 records, 19:35 UTC): no rate misread; mean relative change 0.04."""
    change, before, after, true_hr, _, _ = measured
    assert change > 0.02, change          # not vacuous: the refiner changes the records
    read_right = [i for i, (_, mb) in enumerate(before) if mb and abs(mb["hr"] - true_hr[i]) < 2.0]
    assert len(read_right) >= len(before) // 2, (true_hr, before)
    for i in read_right:
        ma = after[i][1]
        assert ma and abs(ma["hr"] - true_hr[i]) < 2.0, (i, true_hr[i], before[i][1], ma)


def decidable_norm_records(before, repeats) -> list[int]:
    """Indices of the records that meet the NORM+SR limits unrefined *and* under every one of
    their :func:`repeat_verdicts`: those whose verdict the delineator can make."""
    return [i for i, (ok, _) in enumerate(before) if ok and all(repeats[i])]


def kept_share(before, after, repeats) -> tuple[int, int]:
    """``(kept, decidable)``: how many decidable NORM records still meet the limits after."""
    idx = decidable_norm_records(before, repeats)
    return sum(bool(after[i][0]) for i in idx), len(idx)


def interval_shift(before, after) -> np.ndarray:
    """10 %-trimmed mean change (s) of PR, QRS and QTc, each over the records where the
    delineator read that interval both before and after (a T end it does not find leaves
    QTc NaN: that record has no QTc to compare, and one NaN would make the mean NaN)."""
    from scipy.stats import trim_mean

    d = np.array([[ma[k] - mb[k] for k in ("pr", "qrs", "qtc")]
                  for (_, mb), (_, ma) in zip(before, after) if mb and ma])
    out = []
    for col in d.T:
        col = col[np.isfinite(col)]
        assert len(col) >= len(before) // 2, len(col)
        out.append(trim_mean(col, 0.1))
    return np.array(out)


def test_kept_share_counts_only_what_the_delineator_can_decide():
    """The bookkeeping on hand-made verdicts: a record that fails unrefined, or whose verdict
    a repeat flips, is not counted; a decidable record lost after is."""
    before = [(True, {}), (True, {}), (False, {}), (True, {})]
    repeats = [[True, True, True], [True, False, True], [True, True, True], [True, True, True]]
    after = [(False, {}), (False, {}), (True, {}), (True, {})]
    assert decidable_norm_records(before, repeats) == [0, 3]
    assert kept_share(before, after, repeats) == (1, 2)


def test_stretch_lengthens_every_interval_by_its_factor():
    """The negative control's change is what it says: a pulse train played 1.25× slower has
    its pulses 1.25× further apart."""
    x = np.zeros((1, 2000))
    x[0, ::200] = 1.0
    y = stretched(x, 1.25)
    assert np.array_equal(np.flatnonzero(y[0] > 0.99), np.arange(0, 2000, 250))


@pytest.mark.slow
def test_refined_records_keep_every_norm_verdict_the_delineator_can_decide(measured):
    """Per record, not pooled: of the evaluation records that meet the NORM+SR limits
    unrefined and under three draws of 5 uV white noise (:func:`repeat_verdicts`), >= 95 %
    (the beats issue's per-class share) still meet them refined. The negative control --
    the same records stretched 1.25× (:func:`stretched`), which changes the label -- must fail
    the same criterion.

    Measured 2026-12-05 22:45 UTC (tree of 3505cb3, the 9-feature NORM prior): seeds 18-22,
    65 of 65 decidable records kept (stretched: 10 of 65); fresh seeds 23-27, never used to
    design this check, 65 of 67 (stretched 10 of 67). An unconstrained refiner (no
    projection, no beat term, no bounds; mean relative change 0.23-0.45 against 0.02-0.07)
    kept 62 of 65 on seeds 18-22: NORM's interval limits survive even it at 40 steps, so this
    check guards against label changes of the stretch's kind, not against noise.

    Why not the pooled count (refined >= unrefined; an xfail until now): on seeds 18-22 at
    a11e501 it read 70 refined vs 72 unrefined of 80 (68 vs 67 on the tree above; 67 vs 69
    on seeds 23-27), and label-free perturbations of the refinement's size read 71 (the refinement mirrored, ``sim - change``), 69 (shifted by half the record)
    and 70 (5 uV white noise, all of five draws); one record's PR reads 0.138-0.202 s under
    5 uV of white noise. The pooled count compares two binomial counts whose difference the
    delineator's own repeatability sets; this check removes that repeatability."""
    _, before, after, _, repeats, stretch = measured
    kept, decidable = kept_share(before, after, repeats)
    assert decidable >= len(before) // 2, (decidable, len(before))   # not vacuous
    assert kept >= 0.95 * decidable, (kept, decidable, [(b, a) for b, a in zip(before, after) if b[0] != a[0]])
    kept_stretched, _ = kept_share(before, stretch, repeats)
    assert kept_stretched < 0.95 * decidable, (kept_stretched, decidable)   # the check can fail


@pytest.mark.slow
def test_refinement_does_not_shift_the_delineated_intervals(measured):
    """No systematic change of PR, QRS or QTc: their 10 %-trimmed mean change over the
    records delineated both before and after refining is within 4 ms (two samples at
    500 Hz, the delineator's resolution); the 1.25× stretch shifts them far beyond it.

    Measured 22:45 UTC: seeds 18-22 -0.33, 0.00, +0.29 ms; fresh seeds 23-27 +0.20, -0.06,
    -0.30 ms; stretched +38, +15, +61 ms. (The unconstrained refiner above: -2.8, +3.8,
    +0.4 ms.)"""
    _, before, after, _, _, stretch = measured
    shift = interval_shift(before, after)
    assert np.all(np.abs(shift) <= 0.004), dict(zip(("pr", "qrs", "qtc"), shift))
    assert np.any(np.abs(interval_shift(before, stretch)) > 0.004)   # the check can fail


def test_beat_term_sees_the_average_beat_not_beat_to_beat_noise():
    """Analytic cases of :func:`beat_locked_change`: a change repeated at every beat keeps
    its full size; one whose sign alternates between beats averages to exactly zero; white
    noise shrinks as 1/sqrt(beats)."""
    from cardiosim.torch.refine import BEAT_WINDOW_S, beat_locked_change, beat_windows

    fs, n_t = 250.0, 2500
    peaks = np.arange(200, 2300, 200)                       # 11 beats at 75 bpm, all windows inside
    (w,) = beat_windows([peaks], n_t, fs)
    width = int(round(BEAT_WINDOW_S[1] * fs)) - int(round(BEAT_WINDOW_S[0] * fs)) + 1
    assert w.shape == (len(peaks), width)
    assert beat_windows([np.array([5, 2490])], n_t, fs)[0].shape == (0, width)   # no whole window
    wave = np.sin(np.linspace(0, np.pi, 60))
    same, alt = np.zeros((1, 1, n_t)), np.zeros((1, 1, n_t))
    for k, p in enumerate(peaks):
        same[0, 0, p - 10:p + 50] = wave
        alt[0, 0, p - 10:p + 50] = wave * (-1) ** k
    scale = torch.ones(1, 1, 1, dtype=torch.float64)
    full = beat_locked_change(torch.as_tensor(same), [w], scale).item()
    assert full == pytest.approx(np.abs(wave).sum() / width, rel=1e-12)
    alt_peaks = peaks[:10]                                  # an even number of beats
    assert beat_locked_change(torch.as_tensor(alt), beat_windows([alt_peaks], n_t, fs), scale).item() \
        == pytest.approx(0.0, abs=1e-12)
    rng = np.random.default_rng(0)
    noise = torch.as_tensor(rng.standard_normal((1, 1, n_t)))
    got = beat_locked_change(noise, [w], scale).item()
    expected = np.sqrt(2 / np.pi) / np.sqrt(len(peaks))     # E|N(0, 1/n)|
    assert got == pytest.approx(expected, rel=0.15)


def test_average_beat_projection_is_the_least_squares_projection():
    """:func:`remove_average_beat` against the dense least-squares projection
    ``d - A (A^T A)^-1 A^T d`` (``A`` built explicitly), with windows that overlap (RR
    0.4-0.8 s against a 0.75-s window) and without: the result's sum over the beat windows
    is zero, a change repeated in every (non-overlapping) beat is removed entirely, and a
    change outside the windows or alternating in sign between beats is kept as it was."""
    from cardiosim.torch.refine import average_beat_projector, remove_average_beat

    fs, n_t = 500.0, 5000
    rng = np.random.default_rng(3)
    spaced = np.arange(300, 4700, 600)                                  # 50 bpm, windows apart
    crowded = np.cumsum(rng.integers(200, 400, 18)) + 200               # 75-150 bpm, windows overlap
    for peaks in (spaced, crowded):
        ((w, counts),) = average_beat_projector([peaks], n_t, fs)
        a = np.zeros((n_t, w.shape[1]))
        for row in w:
            a[row, np.arange(w.shape[1])] += 1.0
        d = rng.standard_normal((3, n_t))
        got = remove_average_beat(torch.as_tensor(d), w, counts).numpy()
        dense = d - (a @ np.linalg.solve(a.T @ a, a.T @ d.T)).T
        assert np.abs(got - dense).max() < 1e-10
        assert np.abs(a.T @ got.T).max() < 1e-10                        # zero beat-locked sum
    ((w, counts),) = average_beat_projector([spaced], n_t, fs)
    same, alt, outside = np.zeros((1, n_t)), np.zeros((1, n_t)), np.zeros((1, n_t))
    wave = np.hanning(80)
    for k, p in enumerate(spaced):
        same[0, p - 20:p + 60] = wave
        alt[0, p - 20:p + 60] = wave * (-1) ** k
    outside[0, :w.min()] = 1.0
    assert np.abs(remove_average_beat(torch.as_tensor(same), w, counts).numpy()).max() < 1e-12
    for keep in (alt, outside):
        assert np.abs(remove_average_beat(torch.as_tensor(keep), w, counts).numpy() - keep).max() < 1e-12
    assert average_beat_projector([np.array([10, 4995])], n_t, fs)[0][1] is None  # no whole window: nothing
    # the gradient (the Toeplitz solve's backward) against finite differences, windows overlapping
    ((w, counts),) = average_beat_projector([np.array([40, 70, 115, 150])], 240, 100.0)
    d = torch.tensor(rng.standard_normal((2, 240)), requires_grad=True)
    assert torch.autograd.gradcheck(lambda c: remove_average_beat(c, w, counts), (d,))


def test_a_refiner_trained_to_keep_the_average_beat_keeps_it():
    """Train a few steps on simulated-looking records (keep_average_beat on by default
    with R peaks), apply with the peaks: every record's beat-locked average is the
    input's to float32 rounding, while the record itself changed."""
    from cardiosim.torch.refine import beat_windows, fit_refiner, refine

    torch.set_num_threads(1)
    fs, n_t = 250.0, 1250
    rng = np.random.default_rng(5)
    peaks = [np.arange(60 + 7 * i, n_t - 120, 190) for i in range(6)]
    x = 0.05 * rng.standard_normal((6, 2, n_t)).astype(np.float32)
    for i, p in enumerate(peaks):
        x[i, :, p] += 1.0
    real = (0.3 * rng.standard_normal((6, 2, n_t))).astype(np.float32)
    res = fit_refiner(x, real, fs=fs, r_peaks=peaks, lambda_physics=0.0, steps=8, batch=3, channels=4,
                      lr=1e-2, seed=1)
    assert res.settings["keep_average_beat"] is True
    y = refine(res.refiner, x, r_peaks=peaks, fs=fs)
    with pytest.raises(Exception, match="keep the average beat"):
        refine(res.refiner, x)                                          # trained projected: peaks required
    res.refiner.config.update(keep_average_beat=False, max_slope_fraction=0.0, max_amplitude_fraction=0.0)
    free = refine(res.refiner, x)                                       # the same network, no projection or bound
    assert np.abs(y - x).mean() > 1e-4                                  # it did change the records
    for xi, yi, fi, w in zip(x, y, free, beat_windows(peaks, n_t, fs)):
        kept = np.abs((yi - xi)[:, w].mean(axis=1)).max()
        assert kept < 1e-6 * np.abs(xi).max() + 1e-3 * np.abs((fi - xi)[:, w].mean(axis=1)).max(), kept
    with pytest.raises(Exception, match="R peaks"):
        fit_refiner(x, real, fs=fs, lambda_physics=0.0, steps=1, batch=2, keep_average_beat=True)
    with pytest.raises(Exception, match="fs="):
        refine(res.refiner, x, r_peaks=peaks)
