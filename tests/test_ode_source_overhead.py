"""The source's per-record Python trimmed without changing a number (issue 16):
``Patient.replace`` (the unchanged arrays shared), ``_solve_dipole``'s one finiteness check and
``_synthetic_fields``'s parameter names (no superset check a record)."""

from __future__ import annotations

import numpy as np
import pytest

from cardiosim.errors import ConfigError, SignalError
from cardiosim.ode.model import Patient, default_patient
from cardiosim.sources import synthetic


def test_replace_equals_the_constructor():
    p = default_patient()
    rng = np.random.default_rng(0)
    for kw in ({}, {"amp": p.amp * 1.5}, {"tau": p.tau + 0.001, "sigma": p.sigma.tolist()},
               {"sigma": np.asfortranarray(p.sigma * 1.1)}, {"amp": (p.amp + rng.standard_normal((3, 11))).tolist()}):
        got = p.replace(**kw)
        want = Patient(kw.get("tau", p.tau), kw.get("sigma", p.sigma), kw.get("amp", p.amp))
        assert type(got) is Patient and list(got.__dict__) == ["tau", "sigma", "amp"]
        for name in ("tau", "sigma", "amp"):
            a, b = getattr(got, name), getattr(want, name)
            assert a.tobytes() == b.tobytes() and a.dtype == np.float64
            assert (a.flags.c_contiguous, a.flags.f_contiguous) == (b.flags.c_contiguous, b.flags.f_contiguous)
            assert not a.flags.writeable
            if name in kw:  # a new array is the patient's own copy
                assert a is not kw[name] and not np.shares_memory(a, np.asarray(kw[name]))
    # the caller's array changed afterwards leaves the patient as it was
    amp = p.amp.copy()
    q = p.replace(amp=amp)
    amp[0, 0] += 1.0
    assert q.amp[0, 0] == p.amp[0, 0]


def test_replace_raises_the_constructors_errors():
    p = default_patient()
    for name, bad, match in (("tau", np.nan, "non-finite"), ("sigma", np.inf, "non-finite"),
                             ("amp", -np.inf, "non-finite"), ("sigma", 0.0, "positive")):
        arr = getattr(p, name).copy()
        arr[1, 4] = bad
        with pytest.raises(ConfigError, match=match):
            p.replace(**{name: arr})
    with pytest.raises(ConfigError, match="shape"):
        p.replace(tau=p.tau[:, :3])


@pytest.fixture(scope="module")
def frank():
    from cardiosim.dataset.generate import PreparedRecipe, _block_state
    from cardiosim.dataset.recipe import Recipe

    st = _block_state(PreparedRecipe.of(Recipe.from_dict({"records": 4, "duration": 2.0})))
    return st.ref.forward, st.ref.frank_layout


def test_solve_dipole_non_finite_vcg_raises(frank):
    """Only the dipole is checked: a NaN or infinite VCG sample anywhere (either pivot row,
    alone or with others) still makes it non-finite, so ``_dipole_from_vcg`` raises."""
    rng = np.random.default_rng(4)
    for row in range(3):
        for bad in (np.nan, np.inf, -np.inf):
            v = rng.standard_normal((3, 40))
            v[row, 11] = bad
            with pytest.raises(SignalError, match="vcg contains NaN"):
                synthetic._solve_dipole(v, *frank)
    v = rng.standard_normal((3, 40))
    v[:, 5] = np.inf
    with pytest.raises(SignalError, match="vcg contains NaN"):
        synthetic._solve_dipole(v, *frank)


def test_synthetic_fields_new_parameter_name(frank, monkeypatch):
    """A parameter name not seen before gets its metadata name, in the parameters' order."""
    monkeypatch.setattr(synthetic, "_META_KEYS", {})
    from cardiosim.ode import synth

    real = synth.synthesize

    def with_new(*a, **k):
        b = real(*a, **k)
        b.params["zz_new_name"] = 1.5
        return b

    monkeypatch.setattr(synthetic, "_ODE_FNS", [(with_new, *synthetic._ode_fns()[1:])])
    for seed in range(2):
        fields, _ = synthetic._synthetic_fields(2.0, 500.0, np.random.default_rng(seed), *frank, rhythm="SR",
                                                morphology="NORM", source_id="x")
        meta = fields["metadata"]
        beats = real(2.0, 500.0, np.random.default_rng(seed), rhythm="SR", morphology="NORM")
        want = ["ode_class"] + [f"ode_{k}" for k in beats.params] + ["ode_zz_new_name"]
        assert list(meta) == want and meta["ode_zz_new_name"] == 1.5
        assert [meta[f"ode_{k}"] for k in beats.params] == list(beats.params.values())


def test_conduction_draw_equals_generator_choice():
    """``_plan``'s AFL conduction draw is ``rng.choice(len(w), p=w / w.sum())``: the same index
    and the generator left in the same state, for every pattern set the floor can leave."""
    import bisect

    from cardiosim.ode import synth

    for ok in (synth.CONDUCTION_PATTERNS, ("3:1", "4:1"), ("4:1",), ("2:1", "4:1"), ("3:1",)):
        w = np.array([synth.CONDUCTION_WEIGHTS[c] for c in ok])
        for seed in range(300):
            a, b = np.random.default_rng(seed), np.random.default_rng(seed)
            want = int(a.choice(len(w), p=w / w.sum()))
            assert bisect.bisect_right(synth._conduction_cdf(ok), b.random()) == want
            assert a.bit_generator.state == b.bit_generator.state


def test_atrial_direction_draws_equal_generator_normal():
    """``loc + scale * rng.standard_normal(3)`` is ``rng.normal(loc, scale)`` bit for bit."""
    from cardiosim.ode import synth

    for loc, scale in ((synth._AF_DIRECTION, 0.2), (synth._AFL_DIRECTION, 0.1)):
        for seed in range(500):
            a, b = np.random.default_rng(seed), np.random.default_rng(seed)
            want = a.normal(loc.tolist(), scale)
            got = loc + scale * b.standard_normal(3)
            assert got.tobytes() == want.tobytes()
            assert a.bit_generator.state == b.bit_generator.state


def test_truncated_gamma_scale_kernel_equals_twin():
    """The bisection kernel with scipy's gammaincc loop gives ``rhythm._truncated_gamma_scale``
    bit for bit wherever the once-per-process check took it (else the twin runs: nothing to
    compare)."""
    from cardiosim.ode import _plan_kernels
    from cardiosim.ode.rhythm import _truncated_gamma_scale

    loop = _plan_kernels.gammaincc_loop()
    if loop is None:
        pytest.skip("scipy's gammaincc loop not confirmed here: rhythm._truncated_gamma_scale runs")
    rng = np.random.default_rng(7)
    buf = np.empty(5)
    for cv, hr, floor in zip(rng.uniform(0.1, 0.5, 200), rng.uniform(50.0, 150.0, 200), rng.uniform(0.25, 0.9, 200)):
        shape, mean = 1.0 / cv ** 2, 60.0 / hr
        got = _plan_kernels.truncated_gamma_scale_kernel(float(shape), float(mean), float(floor), loop, buf)
        assert np.float64(got).tobytes() == np.float64(_truncated_gamma_scale(shape, mean, floor)).tobytes()


def test_af_schedule_unchanged_by_the_kernel(monkeypatch):
    """AF beat schedules with the kernel and with the twin (the check failing) are the same."""
    from cardiosim.ode import _plan_kernels
    from cardiosim.ode.synth import synthesize

    got = [synthesize(10.0, 500.0, np.random.default_rng(s), rhythm="AF") for s in range(6)]
    monkeypatch.setattr(_plan_kernels, "gammaincc_loop", lambda: None)
    want = [synthesize(10.0, 500.0, np.random.default_rng(s), rhythm="AF") for s in range(6)]
    for a, b in zip(got, want):
        assert a.rr.tobytes() == b.rr.tobytes() and a.vcg.tobytes() == b.vcg.tobytes()
