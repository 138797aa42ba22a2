"""Conditions (e) refiner and (f) masked pre-training of the sim-to-real benchmark."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")

from cardiosim.evaluate import nearest_source_distances  # noqa: E402
from cardiosim.sim2real import CONDITIONS, learned, tasks, train  # noqa: E402



@pytest.fixture
def data(data_dir):
    for sub in ("textile", "mitdb"):
        if not (data_dir / sub).is_dir():
            pytest.skip(f"{sub}/ not in the real-data folder {data_dir}")
    return data_dir


def test_conditions_e_and_f_are_registered():
    assert CONDITIONS["e"].build is learned.build_refined
    assert CONDITIONS["f"].fit is learned.fit_pretrained


def test_conditions_e_and_f_learn_condition_c_labels():
    """(e) and (f) are condition (c)'s data refined / pre-trained on: the same quality labels
    (artefact grade >= 3 or lost contact), not the SNR flags they were trained on until 2026-12-06."""
    from cardiosim.sim2real import conditions as C

    b = train.get_budget("quick").for_task("quality")
    ts, _, _ = learned._physics_set("quality", b, 0, None)
    ref = C.build_physics("quality", b, seed=0)
    np.testing.assert_array_equal(ts.y, ref.y)
    np.testing.assert_array_equal(ts.x, ref.x)


@pytest.mark.shared_records("textile/01_textile_rest", "textile/02_textile_rest", "textile/03_textile_rest")
def test_unlabeled_data_never_comes_from_test_subjects(data, monkeypatch):
    seen = []
    real_read = tasks.read_textile

    def spy(*a, **kw):
        seen.append(kw.get("subjects"))
        return real_read(*a, **kw)

    monkeypatch.setattr(tasks, "read_textile", spy)
    b = train.get_budget("quick").for_task("quality")
    w = learned.load_unlabeled("quality", b, data)
    assert seen and all(set(s) == {"01", "02", "03"} for s in seen)
    from cardiosim.sim2real.run import TEXTILE_TEST_SUBJECTS
    assert not set(learned.UNLABELED_TEXTILE_SUBJECTS) & set(TEXTILE_TEST_SUBJECTS)
    assert w.shape[1:] == (1, int(2.0 * b.fs)) and len(w) > 100
    af = learned.load_unlabeled("af", train.get_budget("quick").for_task("af"), data)
    assert af.shape[1:] == (2, int(10.0 * b.fs))


@pytest.mark.shared_records("textile/01_textile_rest", "textile/02_textile_rest", "textile/03_textile_rest")
def test_refined_training_set_is_stored_with_its_settings_and_copies_no_real_record(data):
    b = train.get_budget("quick").for_task("quality")
    train.set_threads()
    ts = learned.build_refined("quality", b, 0, data)
    assert ts.x.shape[0] == ts.y.shape[0] and np.all(np.isfinite(ts.x))
    settings = json.loads(ts.recipes["refiner.json"])
    assert settings["unlabeled"].startswith("textile subjects 01, 02, 03")
    assert settings["lambda_physics"] > 0 and settings["physics_fit_r2_median"] is not None
    # privacy (issue 18): refined windows are no nearer the real training windows than those are to each other
    real = ts.unlabeled[:200]
    d_ref = nearest_source_distances(ts.x[:32], real).distance
    d_real = nearest_source_distances(real[:32], real, exclude=np.arange(32)).distance
    assert np.median(d_ref) >= 0.9 * np.median(d_real)


@pytest.mark.shared_records("textile/01_textile_rest", "textile/02_textile_rest", "textile/03_textile_rest")
def test_masked_pretraining_condition_trains_a_working_model(data):
    b = train.get_budget("quick").for_task("quality")
    train.set_threads()
    ts = learned.build_for_pretraining("quality", b, 0, data)
    assert ts.unlabeled is not None and len(ts.unlabeled) > 100
    model = train.make_model("quality", ts.x.shape[1], ts.y.shape[1], b, 0)
    before = [p.detach().clone() for p in model.stem.parameters()]
    model = learned.fit_pretrained(model, ts, b, 0, "cpu")
    assert any(not np.allclose(a.numpy(), p.detach().numpy()) for a, p in zip(before, model.stem.parameters()))
    prob = train.predict(model, ts.x[:8], "cpu")
    assert prob.shape == (8, ts.y.shape[1]) and np.all((prob >= 0) & (prob <= 1))
