"""The ODE source stage's fast forms against the code they replace, bit for bit: the
dataset plan's generators, the VCG finiteness check of a synthetic source, a patient's
flattened parameters."""

from __future__ import annotations

import numpy as np
import pytest

from cardiosim.dataset import plan
from cardiosim.ode import _kernels
from cardiosim.ode.model import _param_names
from cardiosim.ode.prior import sample_patient


@pytest.mark.parametrize("words", [(0, 0), (1, 5), (0, 2 ** 31, 1), (2 ** 32 - 1, 7, 2), (2 ** 32, 3, 1),
                                   (3, 2 ** 40), (12345, 99999, 3), (True, 2), (np.int64(4), 9, 1)])
def test_plan_generators_equal_default_rng_of_the_list(words):
    """``plan._generator(*words)`` (a uint32 array's SeedSequence where every word fits) is
    ``default_rng(SeedSequence(list(words)))``: same state, same draws; and the plan's
    record, source, split and body generators are built from it."""
    want = np.random.default_rng(np.random.SeedSequence(list(words)))
    got = plan._generator(*words)
    assert got.bit_generator.state == want.bit_generator.state
    assert got.random(4).tobytes() == want.random(4).tobytes()
    assert got.standard_normal(3).tobytes() == want.standard_normal(3).tobytes()


def test_plan_generators_raise_as_seed_sequence():
    with pytest.raises(ValueError):
        np.random.SeedSequence([-1, 2])
    with pytest.raises(ValueError):
        plan._generator(-1, 2)


def test_record_and_source_rng_unchanged():
    for seed, i in ((0, 0), (1, 17), (7, 2 ** 33)):
        a = plan.record_rng(seed, i).random(3)
        b = np.random.default_rng(np.random.SeedSequence([seed, i])).random(3)
        assert a.tobytes() == b.tobytes()
        a = plan.source_rng(seed, i).random(3)
        b = np.random.default_rng(np.random.SeedSequence([seed, i, 1])).random(3)
        assert a.tobytes() == b.tobytes()


def test_all_finite_kernel_equals_numpy():
    rng = np.random.default_rng(3)
    v = rng.standard_normal((3, 5000)) * 10.0 ** rng.uniform(-300, 300, (3, 5000))
    assert _kernels.all_finite_kernel(v) is bool(np.all(np.isfinite(v))) is True
    for bad in (np.inf, -np.inf, np.nan, -np.nan):
        for pos in ((0, 0), (2, 4999), (1, 2500)):
            w = v.copy()
            w[pos] = bad
            assert _kernels.all_finite_kernel(w) is bool(np.all(np.isfinite(w))) is False
    edge = np.array([[np.finfo(float).max, -np.finfo(float).max, 5e-324, -0.0]])
    assert _kernels.all_finite_kernel(edge) is True
    assert _kernels.all_finite_kernel(np.empty((3, 0))) is True


def test_to_params_equals_stacked_values(rng):
    for morph in ("NORM", "LBBB", "TINV"):
        p = sample_patient(rng, morphology=morph)
        want = dict(zip(_param_names("patient"), np.stack([p.tau, p.sigma, p.amp], axis=-1).ravel().tolist()))
        got = p.to_params()
        assert list(got.items()) == list(want.items())
        assert all(type(v) is float for v in got.values())
