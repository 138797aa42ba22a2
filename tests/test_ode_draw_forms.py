"""The forms the class draws' kernels take on this machine (``model._render_exp_table``: the
exp source, glibc's table or NumPy's own ``exp`` loop; ``model._dot3_form``: OpenBLAS's
3-vector ``ddot``), against their NumPy twins bit for bit *whichever form is chosen*; and
whole class draws with the kernels against the NumPy code."""

from __future__ import annotations

import numpy as np
import pytest

from cardiosim.ode import _beat_kernels as K
from cardiosim.ode import model as M
from cardiosim.ode.prior import sample_patient

CLASSES = ("NORM", "LBBB", "RBBB", "STE", "STD", "TINV", "LVH")


def _loop_source():
    """NumPy's exp loop as a render source, where its table could be read here."""
    from cardiosim.ode._plan_kernels import ufunc_loops

    loops = ufunc_loops()
    return None if loops is None else (int(loops[0]), int(loops[1]))


def test_dot3_form_equals_numpy_dot():
    """``_dot3`` in the chosen form against ``u @ v`` and ``u.dot(u)`` (OpenBLAS's ``ddot``),
    sizes over sixteen decades; None (the NumPy code) only where neither form matched."""
    form = M._dot3_form()
    if form is None:
        assert not M._tinv_kernels()
        pytest.skip("neither 3-vector dot form is OpenBLAS's here: the NumPy code runs")
    rng = np.random.default_rng(11)
    for _ in range(3000):
        a = rng.standard_normal(3) * 10.0 ** rng.uniform(-8.0, 8.0)
        b = rng.standard_normal(3) * 10.0 ** rng.uniform(-8.0, 8.0)
        assert np.float64(K.dot3_kernel(a, b, form)).tobytes() == np.float64(a @ b).tobytes()
        assert np.float64(K.dot3_kernel(a, a, form)).tobytes() == np.float64(a.dot(a)).tobytes()


def test_exp_loop_render_equals_numpy_twin():
    """``render_exp_kernel`` on NumPy's exp loop against ``render_numpy`` on drawn beats of
    every class, every group, three RR and pivots, grids far past the slots (exponents
    below the underflow edge) and slots silent on some axes (+0.0 and -0.0): wherever NumPy's
    loop could be read and a render form holds (on any machine: the loop is NumPy's exp)."""
    ex = _loop_source()
    if ex is None or M._render_form() is None:
        pytest.skip("NumPy's exp loop could not be read here (or no render form holds)")
    rng = np.random.default_rng(12)
    for i in range(14):
        p = sample_patient(rng, morphology=CLASSES[i % 7])
        amp = np.array(p.amp)
        if i % 2:
            amp[rng.random(amp.shape) < 0.4] = 0.0
            amp[rng.random(amp.shape) < 0.2] = -0.0
        for waves in (M.P_WAVES, M.QRS_WAVES, M.REPOL, tuple(range(M.NW))):
            idx = np.asarray(waves, np.int64)
            for rr, q in ((1.0, 0.0), (0.55, -0.04), (1.4, -0.05)):
                f = rr ** (1 / 3)
                for t in (np.arange(-0.3, 0.7, 1 / 2000), np.linspace(-2.0, 2.5, 997)):
                    got = np.full((3, t.shape[0]), np.nan)
                    K.render_exp_kernel(t, p.tau, p.sigma, amp, idx, f, M._REPOL_MASK, got, q, ex)
                    want = K.render_numpy(t, p.tau, p.sigma, amp, idx, f, M._REPOL_MASK, q)
                    assert got.tobytes() == want.tobytes()


def test_exp_loop_kept_gaussians_equal_numpy():
    """``slot_exps_kernel`` on NumPy's exp loop keeps ``np.exp`` of the exponents, +0.0 below
    ``EXP_ZERO`` (what ``slot_sum_kernel`` skips), and ``slot_sum_kernel`` of them is the
    render."""
    ex = _loop_source()
    if ex is None or M._render_form() is None:
        pytest.skip("NumPy's exp loop could not be read here (or no render form holds)")
    rng = np.random.default_rng(13)
    ia = M._index_array(M.REPOL)
    for i in range(7):
        p = sample_patient(rng, morphology=CLASSES[i])
        t = np.linspace(-3.0, 3.0, 1201)
        xs, g = np.empty((3, 3, t.shape[0])), np.empty((3, 3, t.shape[0]))
        K.slot_exps_kernel(t, p.tau, p.sigma, ia, ex, xs, g)
        assert g.tobytes() == np.exp(xs).tobytes()
        assert not np.signbit(g[xs < K.EXP_ZERO]).any() and (g[xs < K.EXP_ZERO] == 0.0).all()
        out = np.empty((3, t.shape[0]))
        K.slot_sum_kernel(xs, g, p.amp, ia, out)
        assert out.tobytes() == K.render_numpy(t, p.tau, p.sigma, p.amp, list(M.REPOL), 1.0, M._REPOL_MASK).tobytes()


def test_render_exp_source_is_checked():
    """The exp source handed to the kernels is the form's: glibc's table in the ``"kernel"``
    form, NumPy's loop in the ``"hybrid"`` form, or None; and the beat's render in it equals
    the NumPy code."""
    ex = M._render_exp_table()
    form = M._render_form()
    if ex is None:
        pytest.skip("no exp source holds here: the NumPy code runs")
    assert form in ("kernel", "hybrid")
    assert isinstance(ex, tuple) == (form == "hybrid")
    rng = np.random.default_rng(14)
    p = sample_patient(rng, morphology="TINV")
    t = np.arange(-0.3, 0.6, 1 / 1000)
    for rr in (1.0, 0.6):
        idx = M._ALL_IDX
        want = K.render_numpy(t, p.tau, p.sigma, p.amp, idx, rr ** (1 / 3), M._REPOL_MASK, p._pivot(rr))
        assert p.render(t, None, rr).tobytes() == want.tobytes()


@pytest.mark.parametrize("morphology", CLASSES)
def test_class_draws_equal_numpy_code(morphology, monkeypatch):
    """Whole draws of a class with the kernels this machine passed (whatever they are) equal
    the draws with the fused kernels off (no exp source: the T-inversion and 12-lead kernels
    off too) and with every kernel off (the NumPy code)."""
    def draws():
        out = []
        for seed in range(6):
            p = sample_patient(np.random.default_rng(seed), morphology)
            out.append((p.tau.tobytes(), p.sigma.tobytes(), p.amp.tobytes()))
        return out

    fast = draws()
    monkeypatch.setattr(M, "_render_exp_table", lambda: None)
    monkeypatch.setattr(M, "_lead_kernels", lambda: False)
    monkeypatch.setattr(M, "_tinv_kernels", lambda: False)
    assert draws() == fast
    monkeypatch.setattr(M, "_fast_kernels", lambda: False)
    assert draws() == fast
