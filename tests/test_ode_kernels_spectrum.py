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
