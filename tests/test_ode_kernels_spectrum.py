"""The hybrid McSharry spectrum (``_plan_kernels.spectrum_hybrid``: NumPy's ``exp``
between two exact kernels) against its NumPy twin ``spectrum_numpy``, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from cardiosim.ode import _plan_kernels as K


def test_spectrum_arg_kernel_equals_numpy_exponents():
    for f, lf, hf, lw, hw, _ratio, _ph in K.spectrum_cases(np.random.default_rng(4)):
        e = np.empty((2, f.shape[0]))
        K.spectrum_arg_kernel(f, lf, hf, lw, hw, e)
        assert e[0].tobytes() == (-0.5 * ((f - lf) / lw) ** 2).tobytes()
        assert e[1].tobytes() == (-0.5 * ((f - hf) / hw) ** 2).tobytes()


def test_spectrum_hybrid_equals_numpy_bit_for_bit():
    """NumPy's exp in both: the rest (power, sqrt, cos/sin product) is exact arithmetic and
    the C library's cos/sin, which NumPy's complex exp also calls (where neither form
    passed the check, the NumPy code runs: nothing to compare)."""
    if K.spectrum_form() is None:
        pytest.skip("no spectrum form gives NumPy's results on this machine")
    cases = K.spectrum_cases(np.random.default_rng(9))
    assert K.spectrum_matches(cases, "hybrid")
    for case in cases:
        assert K.spectrum_hybrid(*case).tobytes() == K.spectrum_numpy(*case).tobytes()


@pytest.mark.parametrize("form", ["kernel", "hybrid"])
def test_spectrum_from_uniform_draws_gives_numpys_series(form):
    """``spectrum_u`` (phases 2π u formed in the kernel, zero-power bins +0 without cos/sin)
    against NumPy's spectrum of ``uniform``'s phases: equal up to the signs of zeros, and its
    inverse FFT bit for bit, in the form checked on this machine."""
    if K.spectrum_u_form() is None:
        pytest.skip("no spectrum_u form gives NumPy's results on this machine")
    if form == "kernel" and K.spectrum_u_form() != "kernel":
        pytest.skip("the C library's exp is not NumPy's here")
    cases = K.spectrum_u_cases(np.random.default_rng(11))
    assert K.spectrum_u_matches(cases, form)
    for f, lf, hf, lw, hw, ratio, u in cases:
        got = K.spectrum_u(f, lf, hf, lw, hw, ratio, u, form)
        want = K.spectrum_numpy(f, lf, hf, lw, hw, ratio, 0.0 + (2 * np.pi - 0.0) * u)
        assert np.array_equal(got, want)
        assert np.all(got[np.abs(want) == 0] == 0)
        n = 2 * (f.shape[0] - 1)
        assert np.fft.irfft(got, n).tobytes() == np.fft.irfft(want, n).tobytes()


def test_rr_series_same_as_before_spectrum_u(monkeypatch):
    """The RR process through ``spectrum_u`` equals the earlier path (phases drawn by
    ``uniform``, ``spectrum`` or NumPy) bit for bit, draw for draw."""
    from cardiosim.ode import rhythm

    if K.spectrum_u_form() is None:
        pytest.skip("no spectrum_u form here")
    args = dict(heart_rate=70.0, heart_rate_std=2.0, lf_hf_ratio=0.5, breathing_rate=13.0)
    new = [rhythm.rr_tachogram(n, np.random.default_rng(n), **args) for n in (5, 34, 120, 700)]
    monkeypatch.setattr(K, "spectrum_u_form", lambda: None)
    old = [rhythm.rr_tachogram(n, np.random.default_rng(n), **args) for n in (5, 34, 120, 700)]
    for a, b in zip(new, old):
        assert a.tobytes() == b.tobytes()
