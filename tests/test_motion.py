"""Activity and breathing -> offsets, heart rotation, pressure, accelerometer."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from cardiosim.errors import ConfigError, GeometryError
from cardiosim.motion import ACTIVITIES, ActivityConfig, BreathingConfig, G, simulate_motion

FS = 100.0


@pytest.mark.parametrize("activity", ACTIVITIES)
def test_shapes_and_types(rng, activity):
    m = simulate_motion(10.0, FS, rng, activity=activity, n_electrodes=5)
    assert m.offsets.shape == (5, 3, 1000) and m.offsets.dtype == np.float64
    assert m.heart_rotation.shape == (3, 1000)
    assert m.breathing.shape == (1000,)
    assert m.contact_pressure.shape == (5, 1000) and np.all(m.contact_pressure > 0)
    assert m.accelerometer.shape == (3, 1000) and m.accelerometer.dtype == np.float32
    assert m.muscle.shape == (1000,)
    assert m.params["activity"] == activity
    assert np.all(np.abs(m.offsets) < 0.1)                      # centimetres, not metres
    mean = m.accelerometer.mean(axis=1)
    if activity != "posture_change":                             # activity is zero-mean; gravity stays
        np.testing.assert_allclose(mean, [0, 0, G], atol=0.5)
    else:
        assert np.linalg.norm(mean) < G + 0.5


def test_rest_gravity_upright(rng):
    m = simulate_motion(20.0, FS, rng, activity="rest")
    np.testing.assert_allclose(m.accelerometer.mean(axis=1), [0, 0, G], atol=0.02)


def test_walking_cadence_in_accelerometer(rng):
    for act, cad in (("walking", 1.8), ("running", 2.7)):
        m = simulate_motion(30.0, FS, rng, activity=act)
        f, p = signal.periodogram(m.accelerometer[2] - m.accelerometer[2].mean(), FS)
        assert f[np.argmax(p)] == pytest.approx(cad, abs=0.05)
    walk = simulate_motion(30.0, FS, np.random.default_rng(1), activity="walking")
    run = simulate_motion(30.0, FS, np.random.default_rng(1), activity="running")
    assert run.accelerometer[2].std() > 2 * walk.accelerometer[2].std()
    assert run.muscle.mean() > walk.muscle.mean()
    assert run.contact_pressure.std() > walk.contact_pressure.std()


def test_posture_change_rotates_gravity(rng):
    m = simulate_motion(20.0, FS, rng, activity="posture_change")
    a0, a1 = m.accelerometer[:, :200].mean(axis=1), m.accelerometer[:, -200:].mean(axis=1)
    upright, supine = np.array([0, 0, G]), np.array([0, -G, 0])
    pair = (a0, a1) if m.params["posture_to_upright"] == 0 else (a1, a0)
    # activity jitter (SD ~0.06 m/s^2, 0.3-s correlation) stays well inside 0.3 m/s^2
    np.testing.assert_allclose(pair[0], upright, atol=0.3)
    np.testing.assert_allclose(pair[1], supine, atol=0.3)


def test_breathing_rate_depth_and_heart_rotation(rng):
    m = simulate_motion(60.0, FS, rng, breathing_rate=15.0,
                        breathing=BreathingConfig(rate_variability=0.0, depth=(1.0, 1.0)))
    f, p = signal.periodogram(m.breathing - m.breathing.mean(), FS)
    assert f[np.argmax(p)] == pytest.approx(0.25, abs=0.01)
    depth = m.params["breathing_depth"]
    assert m.breathing.min() >= 0 and m.breathing.max() == pytest.approx(depth, rel=1e-3)
    # heart rotation follows respiration with the PHYSICS.md section 2 amplitudes
    amp = np.abs(m.heart_rotation).max(axis=1)
    np.testing.assert_allclose(amp, np.array([0.10, 0.08, 0.07]) * depth, rtol=1e-3)
    assert np.corrcoef(m.heart_rotation[0], m.breathing)[0, 1] > 0.999


def test_rotation_is_tangential_and_stretch_radial(rng):
    pos = np.array([[0.0, -0.15, 0.0], [0.15, 0.0, 0.05], [-0.1, -0.1, -0.05]])
    still = ActivityConfig(kind="walking", slip_sd_m=0.0, bounce_m=0.0, jitter_sd_m=0.0, rotation_sd_rad=0.03)
    m = simulate_motion(10.0, FS, rng, activity=still, positions=pos, n_electrodes=3,
                        breathing=BreathingConfig(strain=0.0, rise_m=0.0))
    d = m.offsets[:, :2, :]
    radial = np.einsum("ek,ekt->et", pos[:, :2], d)
    assert np.max(np.abs(radial)) < 1e-12                       # rotation: tangential only
    assert np.max(np.abs(m.offsets[:, 2])) < 1e-15
    assert np.max(np.abs(d)) > 1e-3
    m = simulate_motion(10.0, FS, rng, positions=pos, n_electrodes=3,
                        activity=ActivityConfig(kind="rest", slip_sd_m=0, rotation_sd_rad=0, jitter_sd_m=0),
                        breathing=BreathingConfig(strain=0.02, rise_m=0.0))
    cross = pos[:, 0:1] * m.offsets[:, 1] - pos[:, 1:2] * m.offsets[:, 0]
    assert np.max(np.abs(cross)) < 1e-15                        # stretch: radial only
    r = np.linalg.norm(pos[:, :2], axis=1)
    got = np.linalg.norm(m.offsets[:, :2], axis=1).max(axis=1)
    np.testing.assert_allclose(got, 0.02 * np.ptp(m.breathing) * r, rtol=1e-9)


def test_reproducible_and_errors(rng):
    a = simulate_motion(5.0, FS, np.random.default_rng(3), activity="arm_movement")
    b = simulate_motion(5.0, FS, np.random.default_rng(3), activity="arm_movement")
    np.testing.assert_array_equal(a.offsets, b.offsets)
    with pytest.raises(ConfigError, match="jogging"):
        simulate_motion(5.0, FS, rng, activity="jogging")
    with pytest.raises(ConfigError, match="cadense"):
        ActivityConfig.from_dict({"kind": "walking", "cadense": 2})
    with pytest.raises(GeometryError, match="millimetres"):
        simulate_motion(5.0, FS, rng, n_electrodes=1, positions=np.array([[100.0, -150.0, 0.0]]))
    with pytest.raises(ConfigError):
        simulate_motion(-1.0, FS, rng)


def test_upsample_kernel_twin_and_slow_ou_statistics(rng):
    from cardiosim.motion._kernels import KERNELS
    from cardiosim.motion import slow_ou
    kern, ref = KERNELS["upsample_linear_add"]
    x = rng.standard_normal((4, 60))
    for ratio in (1.0, 10.0, 7.3):
        n = int((60 - 2) * ratio) + 1
        base = rng.standard_normal((4, n))
        out = base.copy()
        kern(x, ratio, out)
        np.testing.assert_allclose(out, ref(x, ratio, base), rtol=1e-12, atol=1e-12)
    # the slow OU keeps its variance and correlation time (exact AR(1) at 50 Hz)
    y = slow_ou(np.random.default_rng(4), 40, 20000, 500.0, tau_s=0.5, sd=2.0)
    assert y.std() == pytest.approx(2.0, rel=0.1)
    lag = int(0.5 * 500)
    c = np.mean([np.corrcoef(r[:-lag], r[lag:])[0, 1] for r in y])
    assert c == pytest.approx(np.exp(-1.0), abs=0.08)


def test_config_toml_round_trip():
    import tomllib
    from cardiosim.config import dumps_toml
    for cfg in (ActivityConfig(kind="running", cadence_hz=3.0), BreathingConfig(rate_bpm=(8.0, 10.0))):
        assert type(cfg).from_dict(tomllib.loads(dumps_toml(cfg.to_dict()))) == cfg
