"""The artefact-grading rule by activity (issue 14, item 3).

The graders of the real textile records grade by activity as well as by noise: every rest
segment is grade 1 (noise-to-QRS up to 0.17), no running segment is. The rule is an ordinal-
logistic model on log noise-to-QRS with one offset per activity
(:func:`cardiosim.noise.textile.fit_activity_grading_rule`); ``scripts/grading_rule_study.py``
compares it with the global thresholds and other candidates. Held-out numbers here are the
validation fit's (subjects 01-03) on subjects 04-05.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from cardiosim.errors import ConfigError, DataFormatError
from cardiosim.noise import textile


@pytest.fixture(scope="module")
def held_out_segments(data_dir):
    path = data_dir / "textile"
    if not path.is_dir():
        pytest.skip(f"textile recordings not found at {path}")
    return textile.graded_segments(textile.measure_real(path, textile.held_out_subjects(path)))


def test_activity_rule_grades_held_out_subjects_better(held_out_segments):
    """Fitted on 01-03, graded on 04-05 (926 segments), measured 2026-12-06: the per-activity
    rule agrees with the graders in 71.2 % of the segments (global thresholds 60.4 %), rank
    correlation of its grades with theirs 0.76 (global 0.61), and its grade fractions lie a
    median total-variation distance 0.14 from the graders' per electrode x activity cell (global
    0.29). Asserted a little below the measured values."""
    r, g, act = held_out_segments
    fit = textile.HELD_OUT_FIT_FILE
    new = np.concatenate([textile.grade(r[act == a], textile.grading_thresholds(a, fit=fit))
                          for a in textile.ACTIVITIES])
    g_new = np.concatenate([g[act == a] for a in textile.ACTIVITIES])
    old = textile.grade(r, textile.grading_thresholds(None, fit=fit))
    assert np.mean(new == g_new) >= 0.70
    assert stats.spearmanr(new, g_new).statistic >= 0.74
    assert np.mean(new == g_new) > np.mean(old == g) + 0.08      # old: 0.604
    assert stats.spearmanr(new, g_new).statistic > stats.spearmanr(old, g).statistic + 0.05   # old: 0.61


def test_activity_rule_recovers_known_offsets():
    """Grades drawn from a known cumulative-logit model with per-activity offsets (plenty of
    segments, every grade at every activity) are refitted to the model's thresholds."""
    rng = np.random.default_rng(0)
    n = 20_000
    act = rng.choice(np.array(textile.ACTIVITIES), n)
    offsets = {"rest": -1.5, "arms": 1.0, "walk": -0.5, "run": 1.2, "squats": -0.2}
    slope, cuts = 3.0, np.array([-8.0, -5.0, -3.0])
    lr = rng.normal(np.log(0.05), 0.9, n)
    eta = slope * lr + np.array([offsets[a] for a in act])
    u = rng.random(n)
    cum = 1 / (1 + np.exp(-(cuts[None, :] - eta[:, None])))
    g = 1 + (u[:, None] > cum).sum(axis=1)
    rule = textile.fit_activity_grading_rule(np.exp(lr), g, act, penalty=0.0)
    assert abs(rule["slope"] - slope) < 0.15
    # the offsets are centred; the truth's centred offsets are recovered
    mean = np.mean(list(offsets.values()))
    for a, o in offsets.items():
        assert abs(rule["activity_offsets"][a] - (o - mean)) < 0.12, (a, rule["activity_offsets"])
        # thresholds do not depend on where the offsets are centred
        np.testing.assert_allclose(rule["activity_thresholds_noise_to_qrs"][a], np.exp((cuts - o) / slope), rtol=0.1)


def test_activity_rule_keeps_rest_thresholds_finite():
    """Every rest segment grade 1 (the real graders'): the offset penalty keeps rest's
    thresholds finite, so a very noisy rest record (a lost contact) is still graded 4."""
    rng = np.random.default_rng(1)
    act = np.repeat(np.array(["rest", "arms", "walk", "run", "squats"]), 300)
    r = np.exp(rng.normal(np.log(0.05), 0.8, act.size))
    g = np.where(act == "rest", 1, textile.grade(r, [0.03, 0.1, 0.2]))
    rule = textile.fit_activity_grading_rule(r, g, act)
    t_rest = rule["activity_thresholds_noise_to_qrs"]["rest"]
    assert np.all(np.isfinite(t_rest)) and t_rest == sorted(t_rest)
    thr = rule["activity_thresholds_noise_to_qrs"]
    assert all(t_rest[0] > thr[a][0] for a in textile.ACTIVITIES if a != "rest")   # the most lenient
    assert textile.grade(np.inf, t_rest) == 4


def test_unknown_activity_or_electrode_is_refused(rng):
    rec = rng.standard_normal((1, 5000))
    with pytest.raises(ConfigError, match="activity must be one of"):
        textile.artefact_grades(rec, rec * 0.5, 500.0, activity="swimming")
    with pytest.raises(ConfigError, match="electrode must be one of"):
        textile.artefact_grades(rec, rec * 0.5, 500.0, activity="run", electrode="copper")
    with pytest.raises(ConfigError, match="activity must be one of"):
        textile.fit_activity_grading_rule([0.1, 0.2], [1, 2], ["rest", "swimming"])
    with pytest.raises(ConfigError, match="grades must be 1-4"):
        textile.fit_activity_grading_rule([0.1, 0.2], [0, 2], ["rest", "run"])


def _record(rng, n=10_000):
    clean = (np.cumsum(rng.standard_normal((2, n)), axis=1) * 0.02)
    clean[:, ::250] += 1.0
    return clean + 0.05 * rng.standard_normal((2, n)), clean


def test_activity_moves_the_grades_of_the_same_noise(rng):
    """The same record is graded by its activity's thresholds (the simulator's names read as the
    recorded activity they simulate), and without an activity by the global ones."""
    rec, clean = _record(rng)
    ratio = textile.artefact_grades(rec, clean, 500.0)[2]
    for act, recorded in (("run", "run"), ("running", "run"), ("rest", "rest"), ("sitting", "rest")):
        g, rg, _ = textile.artefact_grades(rec, clean, 500.0, activity=act, electrode="textile")
        np.testing.assert_array_equal(g, textile.grade(ratio, textile.grading_thresholds(recorded)))
        assert rg == int(textile.grade(np.median(ratio), textile.grading_thresholds(recorded)))
    g0 = textile.artefact_grades(rec, clean, 500.0)[0]
    np.testing.assert_array_equal(g0, textile.grade(ratio, load_global()))


def load_global():
    return textile.load_fit()["grading_rule"]["thresholds_noise_to_qrs"]


def test_old_format_fit_grades_as_before(tmp_path, rng):
    """A fit file without the per-activity rule (made before it) grades every activity by its
    global thresholds, as it did; a malformed per-activity entry is refused when read."""
    fit = json.loads(textile.FIT_FILE.read_text())
    for k in [k for k in fit["grading_rule"] if k not in ("thresholds_noise_to_qrs", "accuracy_fit", "spearman_fit")]:
        del fit["grading_rule"][k]
    old = tmp_path / "old_fit.json"
    old.write_text(json.dumps(fit))
    rec, clean = _record(rng)
    g_none, rg_none, ratio = textile.artefact_grades(rec, clean, 500.0, fit=str(old))
    for act in ("rest", "run", "arm_movement"):
        g, rg, _ = textile.artefact_grades(rec, clean, 500.0, fit=str(old), activity=act, electrode="gel")
        np.testing.assert_array_equal(g, g_none)
        assert rg == rg_none
    np.testing.assert_array_equal(g_none, textile.grade(ratio, fit["grading_rule"]["thresholds_noise_to_qrs"]))
    fit["grading_rule"]["activity_thresholds_noise_to_qrs"] = {"rest": [0.3, 0.2, 0.1]}
    bad = tmp_path / "bad_fit.json"
    bad.write_text(json.dumps(fit))
    with pytest.raises(DataFormatError, match="activity_thresholds_noise_to_qrs"):
        textile.load_fit(bad)


@pytest.mark.parametrize("which", [textile.FIT_FILE, textile.HELD_OUT_FIT_FILE])
def test_shipped_fits_carry_the_activity_rule(which):
    """Both shipped fits hold the per-activity rule, fitted on their own subjects (the global
    thresholds, for records without an activity, are unchanged)."""
    rule = textile.load_fit(which)["grading_rule"]
    for a in textile.ACTIVITIES:
        t = rule["activity_thresholds_noise_to_qrs"][a]
        assert len(t) == 3 and t == sorted(t)
    # stricter while running than walking, lenient at rest: what the graders did
    thr = rule["activity_thresholds_noise_to_qrs"]
    assert thr["run"][0] < thr["walk"][0] < thr["rest"][0]
    assert rule["activity_accuracy_fit"] > rule["accuracy_fit"]
