"""Sinus heart-rate variability: the drawn RR SD range and real records it was not fitted on.

``rhythm.SINUS_HR_STD_BPM`` is fitted by ``scripts/fit_sinus_hrv.py`` to the validation rhythm
prior's records (CPSC 2021 without patients 21 and 84, MIT-BIH 100). Reported on here: CinC 2021
resting 12-lead records coded sinus rhythm only (never used by any rhythm fit) and the CPSC 2021
patients the validation rhythm prior holds out.
"""

from __future__ import annotations

import numpy as np
import pytest

from cardiosim.evaluate import detect_r_peaks, rmssd
from cardiosim.ode import synthesize
from cardiosim.ode.rhythm import SINUS_HR_STD_BPM

def test_rmssd_of_known_intervals_and_editing():
    fs = 250.0
    rr = np.array([0.80, 0.84, 0.80, 0.84, 0.80, 0.84, 0.80])          # s: successive differences 40 ms
    peaks = np.concatenate([[0.0], np.cumsum(rr)]) * fs
    assert rmssd(peaks, fs) == pytest.approx(40.0)
    missed = np.delete(peaks, 3)                                      # a missed beat: a 1.64-s interval
    assert np.isnan(rmssd(missed, fs))
    assert np.isnan(rmssd(peaks[:5], fs))                             # 4 intervals: too few
    with pytest.raises(Exception, match="sampling rate"):
        rmssd(peaks, 0.0)
    with pytest.raises(Exception, match="increasing"):
        rmssd(np.array([0.0, 200.0, np.nan, 600.0, 800.0, 1000.0]), fs)
    with pytest.raises(Exception, match="increasing"):
        rmssd(peaks[::-1], fs)


@pytest.mark.parametrize("rhythm", ["SR", "SB", "STACH", "PAC", "IAVB"])
def test_sinus_rhythms_draw_their_rr_sd_from_the_fitted_range(rhythm):
    """The fast sinus planner and the general one alike."""
    sd = [synthesize(10.0, 250.0, np.random.default_rng(s), rhythm=rhythm).params["heart_rate_std_bpm"]
          for s in range(40)]
    assert SINUS_HR_STD_BPM[0] <= min(sd) and max(sd) <= SINUS_HR_STD_BPM[1]
    # spread over the range, not stuck at the old 0.5-2.5 bpm
    assert max(sd) > 3.0 and min(sd) < 2.0


def _resting_rmssd(records):
    """The records' RMSSD (R peaks detected in lead II), NaN windows left out."""
    out = []
    for rec in records:
        x = rec.p_signal[:, rec.sig_name.index("II")]
        out.append(rmssd(detect_r_peaks(x, float(rec.fs)), float(rec.fs)))
    out = np.array(out)
    out = out[np.isfinite(out)]
    if out.size < 3:
        pytest.skip("fewer than 3 readable sinus-only CinC 2021 records")
    return out


def test_resting_wearer_hrv_against_resting_records(resting_sinus_records):
    """Simulated shirt wearers at rest (ODE sinus rhythm, normal beats; R peaks detected in
    lead II, as in the real records): the real resting records' median RMSSD inside the
    simulated interquartile range. With the old 0.5-2.5 bpm range the simulated IQR was
    8-26 ms against a real median of 30 ms here."""
    from cardiosim.dataset import Recipe
    from cardiosim.dataset.generate import PreparedRecipe, simulate_block

    real = _resting_rmssd(resting_sinus_records)
    n = 60
    recipe = Recipe.from_dict({"records": n, "duration": 10.0, "seed": 5, "device": "shirt12_500hz",
                               "source": {"kind": "ode", "classes": {"SR+NORM": 1.0}},
                               "output": {"shard_size": n}})
    ds = simulate_block(PreparedRecipe.of(recipe), 0, n)
    x = ds["ecg"].values[:, list(ds["lead"].values).index("II")].astype(np.float64)
    sim = np.array([rmssd(detect_r_peaks(row, 500.0), 500.0) for row in x])
    sim = sim[np.isfinite(sim)]
    q1, q3 = np.percentile(sim, [25, 75])
    assert sim.size >= 0.9 * n
    assert q1 <= np.median(real) <= q3, (np.median(real), q1, q3)


def test_held_out_cpsc_patients_inside_the_simulated_range(data_dir):
    """The CPSC 2021 patients the validation rhythm prior holds out: every record's median
    RMSSD over its annotated sinus windows inside the 5-95 % range of simulated 10-s SR
    records (exact R times on both sides)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("fit_sinus_hrv", Path(__file__).parents[1] / "scripts" /
                                                  "fit_sinus_hrv.py")
    fit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fit)
    _, report = fit.record_sets(data_dir)
    per = fit.window_rmssd(data_dir, report)
    if not per:
        pytest.skip(f"no annotated sinus windows of the held-out CPSC 2021 patients in {data_dir}")
    sim = fit.simulated_rmssd(SINUS_HR_STD_BPM[1] / fit.BASE_RANGE[1], 200, seed=3)
    lo, hi = np.nanpercentile(sim, [5, 95])
    for name, v in per.items():
        assert lo <= np.median(v) <= hi, (name, np.median(v), lo, hi)
