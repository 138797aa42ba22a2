"""Per-record helpers made cheaper must draw and compute exactly what the plain NumPy code did."""

import numpy as np
import pytest

from cardiosim.errors import ConfigError, SamplingRateError
from cardiosim.frames import rotation_matrix
from cardiosim.simulate import SimulationConfig
from cardiosim.sources.recording import resample_ratio


@pytest.mark.parametrize("acts", [{"rest": 1.0}, {"rest": 0.5, "walk": 0.3, "run": 0.2},
                                  {"run": 1, "arms": 2, "squats": 3, "walk": 1e-4, "rest": 7},
                                  {"walk": 0.3, "rest": 0.7, "run": 0.0}])
def test_activity_draw_is_generator_choice(acts):
    cfg = SimulationConfig(activities=acts)
    names = sorted(acts)
    w = np.array([acts[n] for n in names], dtype=float)
    for seed in range(500):
        a, b = np.random.default_rng(seed), np.random.default_rng(seed)
        assert cfg.draw_activity(a) == names[int(b.choice(len(names), p=w / w.sum()))]
        assert a.random() == b.random()       # the same stream position after it


def test_rotation_about_named_axes_equals_the_vector_form():
    for name, vec in (("x", [1.0, 0, 0]), ("y", [0, 1.0, 0]), ("z", [0, 0, 1.0])):
        for ang in (0.0, 0.3, -1.2, np.pi):
            r = rotation_matrix(name, ang)
            assert r.tobytes() == rotation_matrix(np.array(vec), ang).tobytes()
            np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-15)
    r = rotation_matrix("z", np.pi / 2)
    r[0, 0] = 5.0                                  # a caller's copy: the cached terms stay
    np.testing.assert_allclose(rotation_matrix("z", np.pi / 2) @ [1.0, 0, 0], [0, 1.0, 0], atol=1e-15)
    with pytest.raises(ConfigError, match="unknown rotation axis"):
        rotation_matrix("w", 0.1)


def test_resample_ratio_cached_and_still_checked():
    assert resample_ratio(500.0, 250.0) == (1, 2) == resample_ratio(500.0, 250.0)
    assert resample_ratio(360, 500) == (25, 18)
    for bad in ((500.0, float("nan")), (500.0, -1.0), (500.0, 500.0 * np.pi)):
        for _ in range(2):                         # an error is raised again, not cached
            with pytest.raises((SamplingRateError, ConfigError)):
                resample_ratio(*bad)
