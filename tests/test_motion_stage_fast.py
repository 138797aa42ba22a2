"""Fused kernels of the batched motion stage (cardiosim.motion._batch) against their NumPy
twins, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from cardiosim.motion._kernels import KERNELS, breathing_kernel


def _waveform(rng, n):
    """A breathing waveform as the batch makes it (breathing_kernel on a rate-variability row)."""
    b01, cyc = np.empty(n), np.empty(n)
    breathing_kernel(rng.normal(0.0, 0.15, n), 0.25, 500.0, rng.uniform(), 0.4, b01, cyc)
    return b01


@pytest.mark.parametrize("n", [2, 7, 8, 129, 1000, 5000, 7681])
@pytest.mark.parametrize("case", ["waveform", "wide", "zeros", "nan"])
def test_breathing_finish_kernel_is_its_numpy_twin(n, case):
    kern, ref = KERNELS["breathing_finish"]
    rng = np.random.default_rng(n)
    b01 = _waveform(rng, n)
    if case == "wide":      # values of every size: the order of the mean's additions shows
        b01 = rng.standard_normal(n) * np.exp(rng.uniform(-20, 20, n))
    elif case == "zeros":
        b01[::3] = 0.0
        b01[1::5] = 1.0
    elif case == "nan":
        b01[n // 2] = np.nan
    depth, strain, rise = rng.uniform(0.5, 1.5), 0.02, 0.004
    rot_amp = np.array([0.05, -0.03, 0.08]) * depth
    basis = rng.standard_normal((3, n)) * 0.01
    breath, bc, heart = np.empty(n), np.empty(n), np.empty((3, n))
    got_basis = basis.copy()
    kern(b01, depth, rot_amp, strain, rise, breath, bc, heart, got_basis)
    want = ref(b01, depth, rot_amp, strain, rise, basis)
    for got, exp in zip((breath, bc, heart, got_basis), want):
        assert got.shape == exp.shape and got.tobytes() == exp.tobytes()
    assert got_basis[0].tobytes() == basis[0].tobytes()     # row 0 is not touched


@pytest.mark.parametrize("tab_kind", ["np", "empty"])
def test_exp_centred_rows_kernel_is_exp_of_the_centred_rows(tab_kind):
    """One pass of ``exp(x - mean)``: the subtraction and ``exp_rows_inplace_kernel`` (what the
    batch ran before) bit for bit, and ``np.exp`` where the table is NumPy's."""
    from cardiosim._exp_kernels import exp_rows_inplace_kernel, np_exp_table

    kern, ref = KERNELS["exp_centred_rows"]
    rng = np.random.default_rng(3)
    x = rng.standard_normal((9, 5003)) * 0.2
    x[0, :6] = [0.0, -0.0, 1e-300, 800.0, -800.0, np.nan]       # tiny, overflowing, underflowing, NaN
    x[1, 10] = np.inf
    mean = x[:, 11:].mean(axis=1)
    mean[2] = 0.0
    tab = np_exp_table() if tab_kind == "np" else np.empty(0, np.uint64)
    got = x.copy()
    kern(got, mean, tab)
    with np.errstate(invalid="ignore"):          # inf - inf
        two_pass = x - mean[:, None]
    exp_rows_inplace_kernel(two_pass, tab)
    assert got.tobytes() == two_pass.tobytes()
    if tab.size:
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            assert got.tobytes() == ref(x, mean).tobytes()


@pytest.mark.parametrize("kind, batched", [("rest", False), ("walk", False), ("rest", True)])
def test_contact_pressure_is_numpys_exp_whichever_form_this_machine_takes(monkeypatch, batched, kind):
    """The contact pressure (and everything else) in the form this machine takes -- glibc's exp
    inline where ``np_exp_table`` confirmed it is ``np.exp`` here, else ``np.exp`` itself (on
    AVX-512 NumPy's own SIMD exp: not the C library's ``math.exp``) -- is the NumPy code's
    (``np.exp`` forced by an empty table) bit for bit, in ``simulate_motion`` and the batch."""
    from cardiosim.motion import _batch, simulate as sim
    from cardiosim.motion.config import ActivityConfig

    act = ActivityConfig(kind=kind)   # (activities with steps are not batched)
    pos = np.random.default_rng(2).uniform(-0.15, 0.15, (3, 9, 3))
    at = np.arange(0, 2500, 50)

    def run():
        if batched:
            rngs = [np.random.default_rng(40 + b) for b in range(3)]
            return _batch.simulate_motion_batch(5.0, 500.0, rngs, activity=act, positions=pos, offsets_at=at,
                                                breathing_rates=[11.0, 12.5, 14.0])
        return [sim.simulate_motion(5.0, 500.0, np.random.default_rng(40 + b), activity=act, n_electrodes=9,
                                    positions=pos[b], offsets_at=at) for b in range(3)]

    got = run()
    empty = np.empty(0, np.uint64)
    monkeypatch.setattr(sim, "np_exp_table", lambda: empty)
    monkeypatch.setattr(_batch, "np_exp_table", lambda: empty)
    want = run()
    for g, w in zip(got, want):
        for f in ("contact_pressure", "offsets", "accelerometer", "breathing"):
            x, y = getattr(g, f), getattr(w, f)
            assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes(), f
        assert g.params == w.params
    # and the pressure of the NumPy code is np.exp of its log (positive, finite)
    assert all(np.all(g.contact_pressure > 0) and np.all(np.isfinite(g.contact_pressure)) for g in got)
