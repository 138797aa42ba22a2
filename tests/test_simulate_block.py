"""The stage-wise block path (``simulate.simulate_records``, the dataset's sub-blocks) against
its oracle, ``simulate_record`` record by record: the same bits for any sub-block size."""

import numpy as np
import pytest

from cardiosim.device.failures import FailureConfig
from cardiosim.errors import ConfigError
from cardiosim.simulate import (ClassicAugmentConfig, SimulationConfig, STAGES, make_context, simulate_record,
                                simulate_records)
from cardiosim.sources import CardiacSource


@pytest.fixture(scope="module")
def shirt_context():
    return make_context("shirt12_500hz")


@pytest.fixture(scope="module")
def strap_context():
    return make_context("chest_strap_500hz")


@pytest.fixture(scope="module")
def sources(shirt_context):
    """Seven ODE sources of 4 s (annotated: the SNR takes their R peaks; some with a breathing
    rate, one made for an activity) and one without annotations (the QRS detector's path)
    with a non-dipolar residual."""
    from cardiosim.inverse import dipole_from_vcg
    from cardiosim.ode import synthesize

    out = []
    for seed in range(7):
        beats = synthesize(4.0, 500.0, np.random.default_rng(100 + seed))
        dipole = dipole_from_vcg(beats.vcg, shirt_context.forward, shirt_context.frank_layout)
        meta = {"activity": "walk"} if seed == 3 else {}
        out.append(CardiacSource(dipole=dipole, fs=500.0, source_id=f"ode-{seed}", heart_rate=60.0 + seed,
                                 breathing_rate=12.0 + seed if seed % 2 else float("nan"), annotations=beats.annotations,
                                 beat_types=tuple(beats.beat_types), metadata=meta))
    residual = 0.01 * np.random.default_rng(7).standard_normal((2, out[0].dipole.shape[1]))
    out.append(CardiacSource(dipole=out[0].dipole[:, ::-1].copy(), fs=500.0, source_id="reversed", heart_rate=70.0,
                             residual=residual, residual_leads=("V1", "II")))
    return out


def _fields(rec) -> dict:
    return {"ecg": rec.ecg, "clean_ecg": rec.clean_ecg, "accelerometer": rec.accelerometer,
            "displacement": rec.displacement, "params": rec.params_json(), "snr_db": rec.snr_db, "fs": rec.fs,
            "annotations": {k: v.tolist() for k, v in rec.annotations.items()}, "beat_types": rec.beat_types,
            "leads": rec.leads, "heart_rate": rec.heart_rate}


def _assert_same(a, b, what):
    fa, fb = _fields(a), _fields(b)
    for k in fa:
        if isinstance(fa[k], np.ndarray) or isinstance(fb[k], np.ndarray):
            assert fa[k] is not None and fb[k] is not None and fa[k].dtype == fb[k].dtype, (what, k)
            assert fa[k].tobytes() == fb[k].tobytes() and fa[k].shape == fb[k].shape, (what, k)
        else:
            assert fa[k] == fb[k], (what, k)


CONFIGS = {
    "default": (SimulationConfig(), {}),
    "activities, failures, augment": (
        SimulationConfig(activities={"rest": 1.0, "walk": 1.0, "run": 1.0, "arms": 1.0},
                         augment=ClassicAugmentConfig(amplitude_scale=(0.8, 1.2), lead_dropout=0.2),
                         failures=FailureConfig(electrode_off=0.3, channel_flat=0.2)), {"clean": True}),
    "noiseless, static": (SimulationConfig.noiseless(), {"clean": True}),
    "rest and sitting, failures": (
        SimulationConfig(activities={"rest": 1.0, "sitting": 2.0}, failures=FailureConfig(electrode_off=0.2)), {}),
    "no device": (SimulationConfig(), {"device_stage": False, "clean": True}),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_stage_wise_block_equals_record_by_record_for_any_sub_block(name, sources, shirt_context, strap_context):
    """Every record of ``simulate_records`` with sub-blocks of 1, 3 and 8 (and one larger than
    the records) equals ``simulate_record`` on its own, and leaves its generator in the same
    state; the records mix two bodies' contexts (one per record)."""
    cfg, kw = CONFIGS[name]
    contexts = [shirt_context if j % 3 else strap_context for j in range(len(sources))]
    seeds = [11 * j + 5 for j in range(len(sources))]
    oracle, states = [], []
    for src, ctx, seed in zip(sources, contexts, seeds):
        rng = np.random.default_rng(seed)
        oracle.append(simulate_record(src, rng, context=ctx, config=cfg, **kw))
        states.append(rng.bit_generator.state)
    for block in (1, 3, 8, 20):
        rngs = [np.random.default_rng(s) for s in seeds]
        timings: dict = {}
        got = simulate_records(sources, rngs, contexts=contexts, config=cfg, block=block, timings=timings, **kw)
        assert len(got) == len(oracle)
        for j, (a, b) in enumerate(zip(oracle, got)):
            _assert_same(a, b, f"{name}, block {block}, record {j}")
            assert rngs[j].bit_generator.state == states[j], (name, block, j)
        assert set(timings) == {n for n, _ in STAGES} | {"start", "finish"}
        assert all(t >= 0 for t in timings.values())


def test_batched_motion_mixing_three_devices(sources, shirt_context, strap_context, monkeypatch):
    """The batched motion stage (records grouped by activity, electrode count and whether the
    source gives the breathing rate) with the 3-lead 250-Hz shirt, the 12-lead shirt and the chest
    strap mixed in one sub-block: every record equals ``simulate_record``'s, and the batched
    function did make records."""
    import cardiosim.motion._batch as motion_batch

    made = {"motion": 0}

    def spy(module, name, key):
        real = getattr(module, name)

        def wrapped(*a, **kw):
            out = real(*a, **kw)
            made[key] += len(out)
            return out
        monkeypatch.setattr(module, name, wrapped)

    spy(motion_batch, "simulate_motion_batch", "motion")
    shirt3 = make_context("shirt3_250hz")
    cfg = SimulationConfig(activities={"rest": 3.0, "sitting": 1.0, "walk": 1.0})
    contexts = [(shirt3, shirt_context, strap_context)[j % 3] for j in range(len(sources))] * 2
    srcs = list(sources) * 2
    seeds = [7 * j + 1 for j in range(len(srcs))]
    oracle = [simulate_record(s, np.random.default_rng(k), context=c, config=cfg) for s, c, k in
              zip(srcs, contexts, seeds)]
    for block in (3, 8, 16):
        got = simulate_records(srcs, [np.random.default_rng(k) for k in seeds], contexts=contexts, config=cfg,
                               block=block)
        for j, (a, b) in enumerate(zip(oracle, got)):
            _assert_same(a, b, f"block {block}, record {j}")
    assert made["motion"] >= 6, made


def test_records_of_a_sub_block_do_not_share_memory(sources, shirt_context):
    """Each position of a sub-block has its own per-thread leads buffer: no returned record is
    a view of another's (or of a buffer the next sub-block overwrites)."""
    rngs = [np.random.default_rng(j) for j in range(len(sources))]
    got = simulate_records(sources, rngs, contexts=shirt_context, clean=True, block=3)
    kept = [{k: np.array(getattr(r, k), copy=True) for k in ("ecg", "clean_ecg", "accelerometer")} for r in got]
    simulate_records(sources[:3], [np.random.default_rng(99 + j) for j in range(3)], contexts=shirt_context,
                     clean=True, block=3)
    for j, r in enumerate(got):
        for k, before in kept[j].items():
            np.testing.assert_array_equal(getattr(r, k), before, err_msg=f"record {j} {k} changed")
            for other in got[j + 1:]:
                assert not np.shares_memory(getattr(r, k), getattr(other, k)), (j, k)


def test_simulate_records_checks_its_arguments(sources, shirt_context):
    with pytest.raises(ConfigError, match="one generator per source"):
        simulate_records(sources[:2], [np.random.default_rng(0)], contexts=shirt_context)
    with pytest.raises(ConfigError, match="one context per source"):
        simulate_records(sources[:2], [np.random.default_rng(0)] * 2, contexts=[shirt_context])
    with pytest.raises(ConfigError, match="block"):
        simulate_records(sources[:2], [np.random.default_rng(0)] * 2, contexts=shirt_context, block=0)
    with pytest.raises(TypeError, match="Generator"):
        simulate_records(sources[:1], [42], contexts=shirt_context)
    assert simulate_records([], [], contexts=shirt_context) == []


@pytest.mark.parametrize("sub_block", [1, 3])
def test_dataset_blocks_equal_for_any_sub_block(sub_block, monkeypatch):
    """``simulate_block`` with sub-blocks of 1 and 3 records equals the default (8) variable
    by variable, bit for bit."""
    import importlib

    from cardiosim.dataset import Recipe

    gen = importlib.import_module("cardiosim.dataset.generate")   # (the package's `generate` is the function)

    recipe = Recipe(records=10, seed=3, duration=4.0)
    want = gen.simulate_block(recipe, 0, 10)
    monkeypatch.setattr(gen, "_SUB_BLOCK", sub_block)
    got = gen.simulate_block(recipe, 0, 10)
    _assert_same_dataset(want, got)


@pytest.mark.parametrize("name", ["strap, two bodies, activities, failures, clean", "3-lead shirt at 250 Hz, dry, SNR"])
def test_dataset_blocks_of_other_recipes_equal_record_by_record(name, monkeypatch):
    """Recipes off the default path (the chest strap, two bodies, four activities of which two
    batched, failures, stored clean leads in float32; the 3-lead 250-Hz shirt with dry
    electrodes and an SNR target): sub-blocks of 8 (the batched stages) equal sub-blocks of 1
    (every stage record by record), variable by variable."""
    import importlib

    from cardiosim.dataset import Recipe

    gen = importlib.import_module("cardiosim.dataset.generate")
    recipe = Recipe.from_dict({
        "strap, two bodies, activities, failures, clean": {
            "records": 12, "seed": 5, "duration": 4.0, "device": "chest_strap_500hz", "body": {"bodies": 2},
            "simulation": {"activities": {"rest": 2, "walk": 1, "run": 1, "sitting": 1},
                           "failures": {"electrode_off": 0.2}},
            "output": {"store_clean": True, "pack_int16": False}},
        "3-lead shirt at 250 Hz, dry, SNR": {
            "records": 10, "seed": 9, "duration": 3.0, "device": "shirt3_250hz",
            "simulation": {"noise": {"electrode": "dry", "snr_db": {"white": [20, 30]}}}},
    }[name])
    want = gen.simulate_block(recipe, 0, recipe.records)
    monkeypatch.setattr(gen, "_SUB_BLOCK", 1)
    got = gen.simulate_block(recipe, 0, recipe.records)
    _assert_same_dataset(want, got)


def _assert_same_dataset(want, got) -> None:
    """Every variable of ``got`` equals ``want``'s: numbers bit for bit (dtype too), the rest by value."""
    assert set(got.variables) == set(want.variables)
    for name in want.variables:
        a, b = want[name].values, got[name].values
        if a.dtype.kind in "biuf":
            assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), name
        else:
            assert a.tolist() == b.tolist(), name
