"""The 12-lead measure kernels of the morphology classes (``_beat_kernels.t_end12_kernel``,
``velocity_trough_kernel``, ``lead_magnitude_kernel``) against their NumPy twins
(``model._t_end12_numpy``, ``model._trough_velocity_numpy``, ``np.linalg.norm(M @ v,
axis=0)``), bit for bit; and ``model._rotation``'s cross product against ``np.cross``."""

from __future__ import annotations

import numpy as np
import pytest

from cardiosim.ode import _beat_kernels as K
from cardiosim.ode import model as M
from cardiosim.ode.prior import sample_patient


def _need_kernels():
    if not M._lead_kernels():  # the NumPy code runs instead: nothing to compare
        pytest.skip("the 12-lead kernels do not give NumPy's results on this machine")


def test_lead_magnitude_equals_numpy(rng):
    _need_kernels()
    lm = M._lead_matrix_c()
    for n in (2, 3, 6, 11, 24, 129, 800):
        for scale in (1e-9, 1e-3, 1.0, 1e3):
            v = rng.standard_normal((3, n)) * scale
            v[:, 0] = 0.0  # an all-zero sample
            got = np.empty(n)
            K.lead_magnitude_kernel(lm, v, got)
            np.testing.assert_array_equal(got, np.linalg.norm(lm @ v, axis=0))


def test_t_end12_and_trough_equal_numpy_twins(rng):
    _need_kernels()
    pats = [M.default_patient()]
    for i in range(30):
        pats.append(sample_patient(rng, morphology=["NORM", "LBBB", "RBBB", "STE", "STD", "TINV", "LVH"][i % 7]))
    # edge cases: ST-T slots near silence but not silent, a very wide and a very narrow T
    base = M.default_patient()
    amp = base.amp.copy()
    amp[:, list(M.REPOL)] *= 1e-5
    pats.append(base.replace(amp=amp))
    for f in (0.3, 2.5):
        sigma = base.sigma.copy()
        sigma[:, list(M.REPOL)] *= f
        pats.append(base.replace(sigma=sigma))
    for p in pats:
        fresh = M.Patient(p.tau, p.sigma, p.amp)
        got = M._t_end12_fast(fresh)
        assert got is not None
        assert np.float64(got).tobytes() == np.float64(M._t_end12_numpy(fresh)).tobytes()
        assert M._t_end12(fresh) == M._t_end12_numpy(fresh)
        np.testing.assert_array_equal(M._trough_velocity_fast(fresh), M._trough_velocity_numpy(fresh))


def test_t_end12_silent_repolarisation_left_to_numpy():
    """A silent ST-T: the kernel declines (status 1) and the NumPy code decides (its error)."""
    _need_kernels()
    base = M.default_patient()
    amp = base.amp.copy()
    amp[:, list(M.REPOL)] = 0.0
    p = base.replace(amp=amp)
    assert M._t_end12_fast(p) is None
    with pytest.raises(TypeError):
        M._t_end12(p)


def test_rotation_cross_product_equals_numpy(rng):
    for _ in range(2000):
        u = rng.standard_normal(3) * 10.0 ** rng.uniform(-6, 6)
        v = rng.standard_normal(3)
        u0, u1, u2 = u
        v0, v1, v2 = v
        w = np.array([u1 * v2 - u2 * v1, u2 * v0 - u0 * v2, u0 * v1 - u1 * v0])
        np.testing.assert_array_equal(w, np.cross(u, v))
    # the rotation itself: unit vectors onto unit vectors, and the antiparallel case
    for _ in range(50):
        a = M._unit(rng.standard_normal(3))
        b = M._unit(rng.standard_normal(3))
        np.testing.assert_allclose(M._rotation(a, b) @ a, b, atol=1e-12)
    np.testing.assert_allclose(M._rotation(a, -a) @ a, -a, atol=1e-12)


def test_corrcoef01_is_numpy_corrcoef(rng):
    """``ectopic_ventricular``'s correlation: ``np.corrcoef(x, y)[0, 1]`` bit for bit,
    including near-collinear pairs, constant rows (NumPy's own NaN) and short vectors."""
    for n in (2, 3, 17, 960):
        X = np.empty((2, n))
        for k in range(200):
            x = rng.standard_normal(n) * 10.0 ** rng.uniform(-4, 2)
            y = rng.standard_normal(n) + rng.uniform(-5, 5)
            if k % 5 == 0:
                y = x * rng.uniform(-2, 2) + 1e-13 * rng.standard_normal(n)
            want = np.corrcoef(x, y)[0, 1]
            assert np.float64(M._corrcoef01(X, x, y)).tobytes() == np.float64(want).tobytes()
    x = rng.standard_normal(960)
    with pytest.warns(RuntimeWarning):
        got = M._corrcoef01(np.empty((2, 960)), x, np.full(960, 0.5))
    assert np.isnan(got)
