"""Oracles of the source stage's fast paths: each gives what the code it replaced gave, bit
for bit and with the same draws (``cardiosim generate``'s ODE sources, issue 16)."""

from __future__ import annotations

import numpy as np
import pytest

from cardiosim.noise import textile
from cardiosim.ode import _rng_kernels


def _draw_source_activity_before(rng, activities, rhythm, *, motion=True, fit=None):
    """``textile.draw_source_activity`` as it was before its fast path (``Generator.choice``)."""
    from cardiosim.ode import CLASSES
    from cardiosim.ode import synth as _synth

    if not motion:
        return "rest", None, rhythm
    names = sorted(activities)
    w = np.array([activities[n] for n in names], dtype=float)
    activity = names[int(rng.choice(len(names), p=w / w.sum()))]
    ranges = getattr(_synth, "_HR_RANGE", {})
    rest_range = ranges.get(rhythm)
    if rhythm not in CLASSES or rest_range is None or rhythm in ("AF", "AFL") or activity in ("rest", "sitting"):
        return activity, None, rhythm
    rest = float(rng.uniform(*rest_range))
    if rhythm in textile._SINUS_BY_RATE:
        bpm = textile.activity_heart_rate(rng, activity, rest, (20.0, 250.0), fit=fit)
        rhythm = "SB" if bpm < 60.0 else "SR" if bpm <= 100.0 else "STACH"
        lo, hi = CLASSES[rhythm].limits["hr"]
        return activity, float(np.clip(bpm, lo * textile._RATE_MARGIN, hi / textile._RATE_MARGIN)), rhythm
    limits = CLASSES[rhythm].limits.get("hr") or CLASSES["SR"].limits["hr"]
    return activity, textile.activity_heart_rate(rng, activity, rest, limits, fit=fit), rhythm


MIXES = [{"rest": 1.0}, {"run": 1.0}, {"walk": 2.0}, {"rest": 1.0, "walk": 2.0, "run": 1.0, "arms": 0.5},
         {"squats": 0.0, "run": 3.0, "rest": 1.0}, {"sitting": 1.0}]
RHYTHMS = ["SR", "SB", "STACH", "AF", "AFL", "PVC", "PAC", "IAVB"]


@pytest.mark.parametrize("mix", MIXES, ids=lambda m: "+".join(sorted(m)))
def test_draw_source_activity_matches_choice_and_draws_the_same(mix):
    """A Generator passed directly, or built lazily by a callable, gives the old
    ``Generator.choice`` code's results, and the generator ends where it ended there."""
    for seed in range(40):
        for rhythm in RHYTHMS:
            for motion in (True, False):
                want_rng = np.random.default_rng([seed, 7])
                want = _draw_source_activity_before(want_rng, mix, rhythm, motion=motion)
                got_rng = np.random.default_rng([seed, 7])
                assert textile.draw_source_activity(got_rng, mix, rhythm, motion=motion) == want
                assert got_rng.random() == want_rng.random()  # the same stream position
                built = []

                def make():
                    built.append(np.random.default_rng([seed, 7]))
                    return built[-1]

                assert textile.draw_source_activity(make, mix, rhythm, motion=motion) == want
                assert len(built) <= 1
                if built:  # where built, it ends where the old code left its generator
                    ref = np.random.default_rng([seed, 7])
                    _draw_source_activity_before(ref, mix, rhythm, motion=motion)
                    assert built[0].random() == ref.random()


def test_draw_source_activity_builds_no_generator_when_nothing_is_drawn():
    def never():
        raise AssertionError("the generator was built")

    assert textile.draw_source_activity(never, {"rest": 1.0}, "SR") == ("rest", None, "SR")
    assert textile.draw_source_activity(never, {"run": 1.0}, "AF") == ("run", None, "AF")
    assert textile.draw_source_activity(never, {"run": 1.0}, "SR", motion=False) == ("rest", None, "SR")


def test_draw_source_activity_bad_weights_raise_as_choice_did():
    for bad in ({"rest": -1.0, "run": 2.0}, {"rest": 0.0}, {"rest": np.nan}):
        with pytest.raises(ValueError) as want:
            _draw_source_activity_before(np.random.default_rng(1), bad, "SR")
        with pytest.raises(ValueError) as got:
            textile.draw_source_activity(np.random.default_rng(1), bad, "SR")
        assert str(got.value) == str(want.value)


@pytest.mark.parametrize("kind", ["PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64"])
def test_bitgen_pointers_read_from_the_capsule_are_the_ctypes_interfaces(kind):
    for seed in range(5):
        bg = getattr(np.random, kind)(seed)
        got = _rng_kernels.bitgen_pointers(np.random.Generator(bg))
        assert got.tolist() == _rng_kernels._ctypes_pointers(bg).tolist()
        assert got.tolist() == _rng_kernels._capsule_pointers(bg).tolist()
    assert _rng_kernels._CAPSULE_OK[getattr(np.random, kind)] is True


def test_synthetic_source_metadata_as_the_loop_made_it():
    """The metadata comprehension keeps the old loop's keys, values, order and beat types."""
    from cardiosim.ode import synthesize
    from cardiosim.simulate import make_context
    from cardiosim.sources import synthetic_source

    ctx = make_context()
    for rhythm, morphology in (("SR", "NORM"), ("AFL", "NORM"), ("PVC", "NORM")):
        src = synthetic_source(10.0, 500.0, np.random.default_rng(3), ctx.forward, ctx.frank_layout,
                               rhythm=rhythm, morphology=morphology)
        beats = synthesize(10.0, 500.0, np.random.default_rng(3), rhythm=rhythm, morphology=morphology)
        meta = {"ode_class": f"{rhythm}+{morphology}"}
        for k, v in beats.params.items():
            if isinstance(v, (int, float, str, bool)):
                meta[f"ode_{k}"] = v
        assert list(src.metadata.items()) == list(meta.items())
        assert src.beat_types == tuple(str(t) for t in beats.beat_types)
        assert all(type(t) is str for t in src.beat_types)
