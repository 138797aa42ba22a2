"""cardiosim.motion._batch: the motion of a sub-block of records against its oracle,
``simulate_motion`` record by record (the same bits, every generator left in the same state)."""

import numpy as np
import pytest

from cardiosim.errors import ConfigError
from cardiosim.motion import simulate_motion
from cardiosim.motion._batch import batch_key, simulate_motion_batch
from cardiosim.motion.config import ActivityConfig, BreathingConfig

FIELDS = ("offsets", "heart_rotation", "breathing", "contact_pressure", "muscle", "accelerometer", "offsets_at")


def _positions(n_rec, n_e, seed):
    rng = np.random.default_rng(seed)
    return np.stack([rng.uniform(-0.15, 0.15, (n_e, 3)) for _ in range(n_rec)])


@pytest.mark.parametrize("n_rec", [1, 3, 8])
@pytest.mark.parametrize("kind, n_e, duration, fs, given, breathing", [
    ("rest", 9, 10.0, 500.0, True, None),
    ("rest", 9, 4.0, 500.0, False, None),
    ("sitting", 4, 3.0, 250.0, True, BreathingConfig(rate_bpm=(10.0, 14.0), strain=0.03)),
    ("rest", 3, 6.0, 40.0, False, None),          # at or below the slow rate: no interpolation
])
def test_batch_equals_simulate_motion_record_by_record(n_rec, kind, n_e, duration, fs, given, breathing):
    act = ActivityConfig(kind=kind)
    n = int(round(duration * fs))
    assert batch_key(act, n_e, n, fs, breathing or BreathingConfig(), given) is not None
    pos = _positions(n_rec, n_e, n_rec)
    at = np.unique(np.append(np.arange(0, n, max(1, n // 37)), n - 1))
    rates = [11.0 + 0.7 * b for b in range(n_rec)] if given else None
    seeds = [1000 + 17 * b for b in range(n_rec)]
    want, states = [], []
    for b, s in enumerate(seeds):
        rng = np.random.default_rng(s)
        want.append(simulate_motion(duration, fs, rng, activity=act, breathing=breathing, n_electrodes=n_e,
                                    positions=pos[b], breathing_rate=None if rates is None else rates[b],
                                    offsets_at=at))
        states.append(rng.bit_generator.state)
    rngs = [np.random.default_rng(s) for s in seeds]
    got = simulate_motion_batch(duration, fs, rngs, activity=act, positions=pos, offsets_at=at, breathing=breathing,
                                breathing_rates=rates)
    assert len(got) == n_rec
    for b, (w, g) in enumerate(zip(want, got)):
        for f in FIELDS:
            x, y = getattr(w, f), getattr(g, f)
            assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes(), (b, f)
        assert g.fs == w.fs
        assert list(g.params.items()) == list(w.params.items()), b
        assert all(type(g.params[k]) is type(w.params[k]) for k in w.params), b
        assert rngs[b].bit_generator.state == states[b], b
    # the records' arrays are their own (rows of the sub-block's), not a scratch buffer
    if n_rec > 1:
        assert not np.shares_memory(got[0].contact_pressure, got[1].contact_pressure)


@pytest.mark.parametrize("kind", ["walk", "run", "arms", "squats", "posture_change", "arm_movement"])
def test_activities_with_steps_raises_or_posture_are_not_batched(kind):
    act = ActivityConfig(kind=kind)
    assert batch_key(act, 9, 5000, 500.0, BreathingConfig(), True) is None
    with pytest.raises(ConfigError, match="not one"):
        simulate_motion_batch(2.0, 500.0, [np.random.default_rng(0)], activity=act, positions=_positions(1, 9, 0),
                              offsets_at=np.array([0, 999]))


def test_batch_checks_its_inputs_as_simulate_motion_does():
    from cardiosim.errors import GeometryError

    act = ActivityConfig(kind="rest")
    with pytest.raises(ConfigError, match="positions"):
        simulate_motion_batch(2.0, 500.0, [np.random.default_rng(0)] * 2, activity=act, positions=_positions(1, 9, 0),
                              offsets_at=np.array([0, 999]))
    with pytest.raises(GeometryError, match="millimetres"):
        simulate_motion_batch(2.0, 500.0, [np.random.default_rng(0)], activity=act,
                              positions=1e3 * _positions(1, 9, 0), offsets_at=np.array([0, 999]))
    with pytest.raises(ConfigError, match="breathing_rates"):
        simulate_motion_batch(2.0, 500.0, [np.random.default_rng(0)], activity=act, positions=_positions(1, 9, 0),
                              offsets_at=np.array([0, 999]), breathing_rates=[0.0])
    with pytest.raises(ConfigError, match="offsets_at"):
        simulate_motion_batch(2.0, 500.0, [np.random.default_rng(0)], activity=act, positions=_positions(1, 9, 0),
                              offsets_at=np.array([5, 2]))


def test_batch_raises_the_first_failing_records_error():
    """The shared inputs are checked once when every record's own inputs pass; otherwise
    record by record, so the error is the first failing record's, as simulate_motion's."""
    from cardiosim.errors import GeometryError

    act = ActivityConfig(kind="rest")
    at = np.array([0, 999])
    good = [np.random.default_rng(i) for i in range(3)]
    pos = _positions(3, 9, 0)
    bad = pos.copy()
    bad[1, 4, 2] = np.nan
    with pytest.raises(GeometryError, match="finite"):
        simulate_motion_batch(2.0, 500.0, good, activity=act, positions=bad, offsets_at=at)
    with pytest.raises(ConfigError, match="duration"):        # record 0's error comes first
        simulate_motion_batch(-1.0, 500.0, good, activity=act, positions=bad, offsets_at=at)
    with pytest.raises(ConfigError, match="rng"):
        simulate_motion_batch(2.0, 500.0, good[:2] + [0], activity=act, positions=pos, offsets_at=at)
    with pytest.raises(ConfigError, match="fs"):
        simulate_motion_batch(2.0, -5.0, good, activity=act, positions=pos, offsets_at=at)
    far = pos.copy()
    far[2, 0, 0] = 3.0
    with pytest.raises(GeometryError, match="millimetres"):
        simulate_motion_batch(2.0, 500.0, good, activity=act, positions=far, offsets_at=at)
