"""cardiosim.noise._batch: the electrode noise of a sub-block of records against its oracle,
``simulate_electrode_noise`` record by record (the same bits, every generator left in the same
state), for the default kinds and their variants."""

import warnings

import numpy as np
import pytest

from cardiosim.errors import ConfigError
from cardiosim.motion import simulate_motion
from cardiosim.noise import NoiseConfig, simulate_electrode_noise
from cardiosim.noise._batch import batch_key, simulate_electrode_noise_batch


def _motions(n_rec, n_e, duration, fs, activity, seed=0):
    pos = np.random.default_rng(seed).uniform(-0.12, 0.12, (n_e, 3))
    return [simulate_motion(duration, fs, np.random.default_rng(seed + 1 + b), activity=activity, n_electrodes=n_e,
                            positions=pos) for b in range(n_rec)]


with warnings.catch_warnings():     # the em target of a config without em: drawn, changes nothing
    warnings.simplefilter("ignore")
    CONFIGS = {
        "default (textile)": NoiseConfig(electrode="textile"),
        "dry, SNR targets": NoiseConfig(electrode="dry", snr_db={"white": (20.0, 30.0), "activity": (5.0, 15.0),
                                                                 "em": (10.0, 12.0), "drift": (0.0, 10.0)}),
        "gel, fixed mains, 60 Hz x 5": NoiseConfig(electrode="gel", powerline_coupling="fixed", powerline_hz=60,
                                                   powerline_harmonics=5),
        "many contact events, flat": NoiseConfig(electrode="textile", contact_loss_rate_per_min=30.0,
                                                 pop_rate_per_min=40.0, contact_loss_mode="flat"),
        "kinds reordered": NoiseConfig(electrode="textile", kinds=("drift", "contact", "powerline", "white"),
                                       contact_loss_rate_per_min=20.0, pop_rate_per_min=20.0),
        "contact first, no drift": NoiseConfig(electrode="dry", kinds=("contact", "activity", "white"),
                                               contact_loss_rate_per_min=10.0, contact_loss_mode="saturated"),
        "white only": NoiseConfig(electrode="textile", kinds=("white",)),
    }


def _same(want, got, what):
    assert list(want.by_kind) == list(got.by_kind), what
    for k in want.by_kind:
        a, b = want.by_kind[k], got.by_kind[k]
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), (what, k)
    for f in ("contact", "impedance"):
        a, b = np.asarray(getattr(want, f)), np.asarray(getattr(got, f))
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), (what, f)
    assert list(want.params.items()) == list(got.params.items()), what
    assert all(type(want.params[k]) is type(got.params[k]) for k in want.params), what
    assert want.snr_targets == got.snr_targets and want.fs == got.fs, what
    assert want.noise.tobytes() == got.noise.tobytes(), what


@pytest.mark.parametrize("n_rec", [1, 3, 8])
@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("activity, n_e, duration, fs", [("rest", 9, 10.0, 500.0), ("walk", 4, 3.0, 250.0)])
def test_batch_equals_simulate_electrode_noise_record_by_record(name, n_rec, activity, n_e, duration, fs):
    cfg = CONFIGS[name]
    motions = _motions(n_rec, n_e, duration, fs, activity, seed=n_rec)
    n = int(round(duration * fs))
    assert batch_key(cfg, n_e, n, fs, motions[0]) is not None
    seeds = [300 + 13 * b for b in range(n_rec)]
    want, states = [], []
    for b, s in enumerate(seeds):
        rng = np.random.default_rng(s)
        want.append(simulate_electrode_noise(n_e, n, fs, rng, cfg, motion=motions[b]))
        states.append(rng.bit_generator.state)
    rngs = [np.random.default_rng(s) for s in seeds]
    got = simulate_electrode_noise_batch(n_e, n, fs, rngs, cfg, motions)
    assert len(got) == n_rec
    for b in range(n_rec):
        _same(want[b], got[b], (name, b))
        assert rngs[b].bit_generator.state == states[b], (name, b)
    if n_rec > 1:
        for k, v in got[0].by_kind.items():
            if v.strides != (0, 0):
                assert not np.shares_memory(v, got[1].by_kind[k]), k
    if "contact_events" in want[0].params and "many" in name:
        assert any(w.params["contact_events"] > 0 for w in want)     # the event draws are exercised


def test_records_without_motion_or_with_other_kinds_are_not_batched():
    motion = _motions(1, 9, 2.0, 500.0, "rest")[0]
    assert batch_key(NoiseConfig(electrode="textile"), 9, 1000, 500.0, None) is None
    for kinds in (("bw",), ("white", "em"), ("emg",), ("recorded",)):
        assert batch_key(NoiseConfig(electrode="textile", kinds=kinds), 9, 1000, 500.0, motion) is None


def test_batch_checks_its_inputs():
    motions = _motions(2, 9, 2.0, 500.0, "rest")
    cfg = NoiseConfig(electrode="textile")
    with pytest.raises(ConfigError, match="one motion per generator"):
        simulate_electrode_noise_batch(9, 1000, 500.0, [np.random.default_rng(0)], cfg, motions)
    with pytest.raises(ConfigError, match="batch_key"):
        simulate_electrode_noise_batch(9, 1000, 500.0, [np.random.default_rng(0)] * 2,
                                       NoiseConfig(electrode="textile", kinds=("bw",)), motions)
    with pytest.raises(ConfigError, match="batch_key"):    # two fitted activities in one call
        simulate_electrode_noise_batch(9, 1000, 500.0, [np.random.default_rng(0)] * 2, cfg,
                                       [motions[0], _motions(1, 9, 2.0, 500.0, "walk")[0]])
    with pytest.raises(ConfigError, match="NoiseConfig"):
        simulate_electrode_noise_batch(9, 1000, 500.0, [np.random.default_rng(0)] * 2, {}, motions)
