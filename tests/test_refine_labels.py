"""A refined record keeps its label's defining features (issue 18).

The refiner is trained (physics term on) on simulated SR+NORM shirt records against real
12-lead CinC 2021 records labelled NORM -- only those the shipped ODE prior was fitted to
(``realism.HELD_OUT`` excluded) -- and applied to *other* simulated records of the same
recipe. The judge is independent of the generator: NeuroKit2-based delineation
(:func:`cardiosim.ode.realism.measure`) checked against the limits the generator
guarantees for NORM and SR (:data:`cardiosim.ode.classes.CLASSES`).

Finding (open): at this test's small budget the refiner keeps every record's rate but
not how often the NORM limits are met (3/8 refined vs 5/8 unrefined); that comparison is
an ``xfail`` that reports the numbers rather than a threshold tuned to pass.
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

N_TRAIN, N_EVAL = 8, 8
LIMITS = {**CLASSES["NORM"].limits, **CLASSES["SR"].limits}   # pr, qrs, qtc (s), hr (bpm)


def meets_norm(sig: np.ndarray, fs: float) -> tuple[bool, dict]:
    try:
        m = realism.measure(sig.astype(np.float64), fs)
    except SignalError:
        return False, {}
    ok = all(np.isfinite(m[k]) and (lo is None or m[k] >= lo) and (hi is None or m[k] <= hi)
             for k, (lo, hi) in LIMITS.items())
    return ok, {k: m[k] for k in LIMITS}


@pytest.fixture(scope="module")
def measured(data_dir):
    """Train once (physics on, default learning rate, 40 steps) and measure the evaluation
    records before and after refining."""
    torch.set_num_threads(1)
    recipe = Recipe.from_dict({"records": N_TRAIN + N_EVAL, "duration": 5.0, "seed": 18,
                               "source": {"classes": {"SR+NORM": 1.0}},
                               "output": {"store_clean": True, "pack_int16": False}})
    ds = simulate_block(recipe.to_toml(), 0, recipe.records)
    x, clean = ds["ecg"].values, ds["clean_ecg"].values
    fs, n_t = float(ds.attrs["sampling_rate"]), x.shape[-1]
    peaks = [p[(p >= 0) & (p < n_t)] for p in ds["beat_r_peak"].values]
    assert tuple(str(v) for v in ds["lead"].values) == realism.LEADS
    real = []
    for rec in realism.real_records(data_dir):
        if rec["held_out"] or rec["morphology"] != {"NORM"}:
            continue
        y = resample(rec["leads"], rec["fs"], fs)
        real += [y[:, k * n_t:(k + 1) * n_t] for k in range(y.shape[-1] // n_t)]
    assert len(real) >= 4, "too few real NORM windows"
    res = fit_refiner(x[:N_TRAIN], np.stack(real).astype(np.float32), fs=fs, clean=clean[:N_TRAIN],
                      r_peaks=peaks[:N_TRAIN], steps=40, batch=4, channels=8, seed=0)
    sim = x[N_TRAIN:]
    ref = refine_records(res.refiner, sim)
    change = float(np.abs(ref - sim).mean() / np.abs(sim).mean())
    before = [meets_norm(s, fs) for s in sim]
    after = [meets_norm(s, fs) for s in ref]
    print(f"NORM+SR criteria met: {sum(ok for ok, _ in before)}/{N_EVAL} simulated, "
          f"{sum(ok for ok, _ in after)}/{N_EVAL} refined; mean relative change {change:.2f}")
    return change, before, after


def test_refined_records_keep_their_rhythm(measured):
    change, before, after = measured
    assert change > 0.05, change          # not vacuous: the refiner changes the records
    pairs = [(mb, ma) for (_, mb), (_, ma) in zip(before, after) if mb and ma]
    assert len(pairs) >= N_EVAL // 2
    for mb, ma in pairs:                   # the delineator's rate: within 2 bpm of the unrefined record's
        assert abs(ma["hr"] - mb["hr"]) < 2.0, (mb, ma)


@pytest.mark.xfail(strict=False, reason="measured 2026-12-05 10:20 UTC (physics on, 40 steps): NORM+SR limits met "
                   "in 3/8 refined vs 5/8 unrefined records (20 steps at lr 3e-3: 2/8 vs 5/8; without the physics "
                   "term 4/8); the small-budget refiner moves the delineated P onset and T end. An open finding.")
def test_refined_norm_records_meet_norm_criteria_as_often(measured):
    _, before, after = measured
    assert sum(ok for ok, _ in after) >= sum(ok for ok, _ in before), (before, after)
