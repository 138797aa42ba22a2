"""A synthetic source built without the dataclass's checks (``synthetic._source`` after
``synthetic._solve_dipole`` checked the VCG and the dipole) equals the checked one, and a
source that would fail the checks still raises their errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cardiosim.errors import SignalError
from cardiosim.ode import _kernels, _reference
from cardiosim.sources import synthetic
from cardiosim.sources.base import CardiacSource


@pytest.fixture(scope="module")
def frank():
    from cardiosim.dataset.generate import PreparedRecipe, _block_state
    from cardiosim.dataset.recipe import Recipe

    st = _block_state(PreparedRecipe.of(Recipe.from_dict({"records": 4, "duration": 2.0})))
    return st.ref.forward, st.ref.frank_layout


def test_all_finite_kernel_equals_twin():
    rng = np.random.default_rng(0)
    for shape in ((3, 5000), (3, 1), (1, 7), (12, 33)):
        x = rng.standard_normal(shape) * 10.0 ** rng.uniform(-300, 300, shape)
        assert _kernels.all_finite_kernel(x) is _reference.all_finite_kernel(x) is True
        for bad in (np.nan, np.inf, -np.inf, -np.nan):
            y = x.copy()
            y.flat[rng.integers(y.size)] = bad
            assert _kernels.all_finite_kernel(y) is _reference.all_finite_kernel(y) is False
    big = np.full((3, 4), np.finfo(float).max)
    tiny = np.full((3, 4), 5e-324)
    assert _kernels.all_finite_kernel(big) and _kernels.all_finite_kernel(tiny)
    assert _kernels.all_finite_kernel(np.zeros((3, 0)))


def _fields(s):
    return {f.name: getattr(s, f.name) for f in dataclasses.fields(CardiacSource)}


def test_trusted_source_equals_checked(frank):
    from cardiosim.ode import synthesize

    for k, (rhythm, morph) in enumerate((("SR", "NORM"), ("AF", "NORM"), ("PVC", "NORM"), ("SR", "TINV"))):
        rng1, rng2 = np.random.default_rng([3, k]), np.random.default_rng([3, k])
        got = synthetic.synthetic_source(4.0, 500.0, rng1, *frank, rhythm=rhythm, morphology=morph)
        beats = synthesize(4.0, 500.0, rng2, rhythm=rhythm, morphology=morph)
        dipole = synthetic._dipole_from_vcg(beats.vcg, *frank)
        want = CardiacSource(dipole=dipole, fs=500.0, source_id="ode", labels=got.labels, heart_rate=got.heart_rate,
                             breathing_rate=got.breathing_rate, metadata=got.metadata,
                             annotations=got.annotations, beat_types=got.beat_types)
        a, b = _fields(got), _fields(want)
        assert list(got.__dict__) == list(want.__dict__)
        assert a["dipole"].tobytes() == b["dipole"].tobytes() and a["dipole"].dtype == np.float64
        assert a["dipole"].flags.c_contiguous
        for name in a:
            if name not in ("dipole", "annotations"):
                assert a[name] == b[name] or (a[name] != a[name] and b[name] != b[name]), name
        dataclasses.replace(got)  # the dataclass's own checks pass on it


def test_solve_dipole_checks(frank):
    rng = np.random.default_rng(1)
    v = rng.standard_normal((3, 50))
    d, checked = synthetic._solve_dipole(v, *frank)
    assert d.tobytes() == synthetic._dipole_from_vcg(v, *frank).tobytes()
    if synthetic._fast_solver(synthetic._frank_matrix(*frank)) is not None:
        assert checked
    v[1, 7] = np.nan
    with pytest.raises(SignalError, match="vcg contains NaN"):
        synthetic._solve_dipole(v, *frank)


def test_solve_dipole_non_finite_solution_is_not_checked(frank, monkeypatch):
    """A fast solve whose dipole is not finite: ``_dipole_from_vcg``'s own result, unchecked."""
    v = np.random.default_rng(2).standard_normal((3, 20))
    g = synthetic._frank_matrix(*frank)
    if synthetic._fast_solver(g) is None:
        pytest.skip("no fast solve on this machine")

    def overflowing(lu, perm, v, out):
        out[:] = np.inf

    monkeypatch.setattr(synthetic, "_fast_solver", lambda g: (overflowing, None, None))
    d, checked = synthetic._solve_dipole(v, *frank)
    assert not checked and np.all(np.isinf(d))


def test_trusted_source_falls_back_to_the_dataclass():
    d = np.zeros((3, 1))
    with pytest.raises(SignalError, match="shape"):
        synthetic._source(d, 500.0, "x", (), 60.0, 12.0, {}, {}, ())
    with pytest.raises(SignalError, match="sampling rate"):
        synthetic._source(np.zeros((3, 4)), float("nan"), "x", (), 60.0, 12.0, {}, {}, ())
    s = synthetic._source(np.zeros((3, 4)), 250.0, "x", ("a",), 60.0, 12.0, {"k": 1}, {}, ("N",))
    want = CardiacSource(dipole=np.zeros((3, 4)), fs=250.0, source_id="x", labels=("a",), heart_rate=60.0,
                         breathing_rate=12.0, metadata={"k": 1}, beat_types=("N",))
    assert list(s.__dict__) == list(want.__dict__)
    a, b = _fields(s), _fields(want)
    assert a.pop("dipole").tobytes() == b.pop("dipole").tobytes()
    assert repr(a) == repr(b)


def test_plan_ode_source_equals_synthetic_source_relabelled():
    """``plan._ode_source`` (the source built once from ``synthetic._synthetic_fields``) is
    ``synthetic_source``'s source with the dataset's labels and metadata set: every field, the
    metadata in its order, over sources of every default class."""
    import bisect

    from cardiosim.dataset import plan as P
    from cardiosim.dataset.generate import PreparedRecipe, _block_state
    from cardiosim.dataset.recipe import Recipe
    from cardiosim.noise.textile import draw_source_activity

    st = _block_state(PreparedRecipe.of(Recipe.from_dict({"records": 400, "duration": 3.0, "seed": 5})))
    recipe, lm = st.plan.recipe, st.plan.label_map
    seen = set()
    for src in range(40):
        got = st.plan.source(src, st.ref)
        rng = P.source_rng(recipe.seed, src)
        combos, cdf = P._class_cdf(tuple(recipe.source.classes.items()))
        rhythm, morph = combos[bisect.bisect_right(cdf, rng.random())]
        drawn = rhythm
        activity, hr, rhythm = draw_source_activity(lambda: P._generator(recipe.seed, src, 2),
                                                    recipe.simulation.activities, rhythm,
                                                    motion=recipe.simulation.motion,
                                                    fit=recipe.simulation.noise.textile_fit or None)
        ref = synthetic.synthetic_source(recipe.duration, recipe.source_fs, rng, st.ref.forward,
                                         st.ref.frank_layout, rhythm=rhythm, morphology=morph,
                                         source_id=f"ode:{src}", heart_rate=hr,
                                         patient_sampler=recipe.source.patient_sampler, prior=None,
                                         rhythm_prior=None, resp_scale=P._ode_resp_scale(recipe))
        seen.add((drawn, morph))
        want_meta = {**ref.metadata, "activity": activity, "rhythm_at_rest": drawn}
        assert list(got.metadata.items()) == list(want_meta.items())
        assert got.labels == lm.map_codes(ref.labels, "ode").labels
        assert got.dipole.tobytes() == ref.dipole.tobytes()
        assert list(got.__dict__) == list(ref.__dict__)
        for name in ("fs", "source_id", "residual", "residual_leads", "surface", "beat_types"):
            assert getattr(got, name) == getattr(ref, name), name
        for name in ("heart_rate", "breathing_rate"):
            assert np.float64(getattr(got, name)).tobytes() == np.float64(getattr(ref, name)).tobytes()
        assert list(got.annotations) == list(ref.annotations)
        assert all(got.annotations[k].tobytes() == ref.annotations[k].tobytes() for k in ref.annotations)
    assert len(seen) >= 10
