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


def test_to_params_equals_stacked_values(rng):
    for morph in ("NORM", "LBBB", "TINV"):
        p = sample_patient(rng, morphology=morph)
        want = dict(zip(_param_names("patient"), np.stack([p.tau, p.sigma, p.amp], axis=-1).ravel().tolist()))
        got = p.to_params()
        assert list(got.items()) == list(want.items())
        assert all(type(v) is float for v in got.values())


def test_unpack_patient_kernel_equals_unpacked():
    """The accepted draw's arrays (``unpack_patient_kernel`` with NumPy's exp) against
    ``prior._unpacked``, on proposal draws far into the clipped tails and on the bounds."""
    from cardiosim.ode.model import NW, SIGMA_BOUNDS, TAU_BOUNDS
    from cardiosim.ode.prior import _unpacked, default_prior

    prior = default_prior()
    rng = np.random.default_rng(8)
    z = rng.standard_normal((400, 9 * NW)) * rng.uniform(0.5, 4.0, (400, 1))
    v = prior.proposal_mean + z @ prior._proposal_sqrt_cov.T
    v[0, :3 * NW] = np.tile(TAU_BOUNDS[:, 0], 3)
    v[1, 3 * NW:6 * NW] = np.log(np.tile(SIGMA_BOUNDS[:, 1], 3))
    for x in v:
        want = _unpacked(x[None])
        got = [np.empty((3, NW)) for _ in range(3)]
        _kernels.unpack_patient_kernel(x, np.exp(x[3 * NW:6 * NW]), TAU_BOUNDS, SIGMA_BOUNDS, *got)
        for g, w in zip(got, want):
            assert g.tobytes() == np.ascontiguousarray(w[0]).tobytes()


def test_patient_checks_unchanged():
    """``Patient``'s checks in one kernel call: valid arrays (C and F order, lists) are taken
    as before; non-finite values and non-positive widths raise the same errors."""
    from cardiosim.errors import ConfigError
    from cardiosim.ode import _beat_kernels
    from cardiosim.ode.model import Patient, default_patient

    p = default_patient()
    q = Patient(np.asfortranarray(p.tau), p.sigma.tolist(), p.amp)
    for a, b in ((q.tau, p.tau), (q.sigma, p.sigma), (q.amp, p.amp)):
        assert a.tobytes() == b.tobytes() and not a.flags.writeable
    huge = np.full((3, 11), 1e308)  # finite; sums overflow
    Patient(huge, p.sigma, huge)
    for name, bad, match in (("tau", np.nan, "non-finite"), ("sigma", np.inf, "non-finite"),
                             ("amp", -np.inf, "non-finite"), ("sigma", 0.0, "positive"), ("sigma", -1e-3, "positive")):
        arrs = {"tau": p.tau.copy(), "sigma": p.sigma.copy(), "amp": p.amp.copy()}
        arrs[name][1, 4] = bad
        assert _beat_kernels.patient_check_kernel(arrs["tau"], arrs["sigma"], arrs["amp"]) != 0
        with pytest.raises(ConfigError, match=match):
            Patient(**arrs)
    with pytest.raises(ConfigError, match="shape"):
        Patient(p.tau[:, :3], p.sigma, p.amp)
