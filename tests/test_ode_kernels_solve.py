"""The 3x3 Frank solve kernels against their oracle, ``numpy.linalg.solve``.

Each kernel copies the rounding of one OpenBLAS ``dgesv`` kernel (Haswell, SkylakeX); the
source uses the one that the once-per-matrix check in ``sources.synthetic._fast_solver``
finds equal to ``numpy.linalg.solve`` on this machine. These tests check that the choice
holds beyond the check's own columns (fresh matrices and right-hand sides, ODE VCGs), so
the check is a sound gate, and that a matrix no kernel reproduces falls back to ``solve``.
"""

from __future__ import annotations

import numpy as np

from cardiosim.ode._kernels import lu3_solve_fma_kernel, lu3_solve_kernel
from cardiosim.sources import synthetic


def _matrices(n=12):
    rng = np.random.default_rng(7)
    out = []
    while len(out) < n:
        g = rng.normal(0.0, 1.0, (3, 3)) * 10.0 ** rng.uniform(-2.0, 5.0)
        if np.linalg.cond(g) < 1e6:
            out.append(g)
    return out


def test_the_checked_kernel_gives_numpy_solve_bit_for_bit_on_fresh_columns():
    rng = np.random.default_rng(11)
    used = set()
    for g in _matrices():
        synthetic._FRANK_LU.clear()
        fast = synthetic._fast_solver(g)
        if fast is None:
            continue
        kernel, lu, perm = fast
        used.add(kernel)
        v = rng.standard_normal((3, 5000)) * 10.0 ** rng.uniform(-6.0, 6.0, (1, 5000))
        out = np.empty_like(v)
        kernel(lu, perm, v, out)
        assert np.array_equal(out, np.linalg.solve(g, v))
    synthetic._FRANK_LU.clear()
    # every kernel that passed is one of the two twins (a cache entry holds nothing else)
    assert used <= {lu3_solve_kernel, lu3_solve_fma_kernel}


def test_the_kernels_agree_with_solve_to_rounding():
    """Whichever BLAS this machine has, both kernels solve the system (to a few ulps)."""
    from scipy.linalg import lu_factor

    rng = np.random.default_rng(5)
    for g in _matrices(4):
        lu, piv = lu_factor(g)
        perm = np.arange(3, dtype=np.int64)
        for i, p in enumerate(piv):
            perm[i], perm[p] = perm[p], perm[i]
        v = rng.standard_normal((3, 200))
        want = np.linalg.solve(g, v)
        for kernel in (lu3_solve_kernel, lu3_solve_fma_kernel):
            out = np.empty_like(v)
            kernel(np.ascontiguousarray(lu), perm, v, out)
            np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())


def test_a_matrix_no_kernel_reproduces_falls_back_to_solve(monkeypatch):
    """If neither kernel passes the check, the source solves with ``numpy.linalg.solve``."""
    from cardiosim.ode import _kernels

    def wrong(lu, perm, v, out):
        out[:] = 0.0

    monkeypatch.setattr(_kernels, "lu3_solve_kernel", wrong)
    monkeypatch.setattr(_kernels, "lu3_solve_fma_kernel", wrong)
    g = _matrices(1)[0]
    synthetic._FRANK_LU.clear()
    try:
        assert synthetic._fast_solver(g) is None
    finally:
        synthetic._FRANK_LU.clear()
