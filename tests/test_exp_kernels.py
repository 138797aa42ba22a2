"""glibc's exp inline (cardiosim._exp_kernels) against the functions it stands in for."""

import numpy as np
import pytest

from cardiosim._exp_kernels import exp_check_args, exp_rows_inplace_kernel, exp_table, exp_table_values, np_exp_table


def test_np_exp_table_is_the_checked_table_or_empty():
    """The table for np.exp's replacements is math.exp's checked table where np.exp agrees with
    it, and empty (the kernels then call math.exp, not the inline algorithm) otherwise."""
    tab = np_exp_table()
    assert not tab.flags.writeable
    if tab.shape[0]:
        assert tab is exp_table() and tab.tobytes() == exp_table_values().tobytes()


@pytest.mark.parametrize("tab_kind", ["checked", "empty"])
def test_exp_rows_inplace_is_numpy_exp_bit_for_bit(tab_kind):
    """Both branches of the kernel: the inline table against np.exp (where the once-per-process
    check hands the table out), the empty table against the C library's exp (Python's
    ``math.exp``; NumPy's own where NumPy calls it, not where it has its own SIMD exp, as on
    AVX-512): log contact pressures (rows of an OU process, mean removed), the check's
    arguments and the edges the inline path leaves to math.exp (|x| < 2^-54, |x| >= 512,
    inf, nan, underflow)."""
    import math

    tab = np_exp_table() if tab_kind == "checked" else np.empty(0, np.uint64)
    if tab_kind == "checked" and tab.shape[0] == 0:
        pytest.skip("glibc's algorithm does not reproduce np.exp on this machine: its callers run np.exp")
    rng = np.random.default_rng(5)
    logp = np.cumsum(rng.normal(0.0, 0.02, (9, 5000)), axis=1)
    logp -= logp.mean(axis=1, keepdims=True)
    edges = np.array([0.0, -0.0, 2.0 ** -54, -(2.0 ** -55), 511.9, 512.0, -512.0, -745.13, -750.0, 709.78, 710.0,
                      np.inf, -np.inf, np.nan, 1e-300, -1e-300])
    for x in (logp, exp_check_args(rng).reshape(-1, 1)[:, [0, 0]], edges.reshape(2, -1)):
        got = np.ascontiguousarray(x, dtype=np.float64).copy()
        exp_rows_inplace_kernel(got, tab)
        if tab.shape[0]:
            with np.errstate(over="ignore"):   # the edges overflow on purpose
                want = np.exp(x)
        else:
            want = np.array([_c_exp(math, v) for v in np.ravel(x)]).reshape(x.shape)
        assert got.tobytes() == want.tobytes()


def _c_exp(math, v):
    """The C library's exp of ``v`` (``math.exp`` raises on overflow where C returns inf)."""
    try:
        return math.exp(v)
    except OverflowError:
        return math.inf


def test_np_exp_check_is_silent():
    """The once-per-process check behind ``np_exp_table`` overflows ``np.exp`` on purpose (its
    edge arguments); a user's ``generate`` must not see a RuntimeWarning from it."""
    import warnings

    from cardiosim import _exp_kernels

    saved = list(_exp_kernels._NP_EXP_TABLE)
    _exp_kernels._NP_EXP_TABLE.clear()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            tab = _exp_kernels.np_exp_table()
        assert tab.shape[0] in (0, _exp_kernels.exp_table().shape[0])
    finally:
        _exp_kernels._NP_EXP_TABLE[:] = saved


def test_np_log10_loop_is_np_log10_bit_for_bit():
    """NumPy's log10 loop called from a kernel (where the once-per-process check hands it
    out) is ``np.log10`` bit for bit: SNR-like ratios, every tail length, the edges."""
    from cardiosim._exp_kernels import np_log10_loop, unary_loop_kernel

    loop = np_log10_loop()
    if loop is None:
        pytest.skip("NumPy's log10 loop is not callable from kernels here: the NumPy code runs")
    assert not loop.flags.writeable and loop.dtype == np.uint64 and loop.shape == (2,)
    rng = np.random.default_rng(8)
    x = np.concatenate([10.0 ** rng.uniform(-14, 14, 20_000), rng.uniform(0.5, 2.0, 1000),
                        np.array([0.0, -0.0, -3.0, 5e-324, np.inf, -np.inf, np.nan, 1.0, 10.0, 100.0])])
    with np.errstate(all="ignore"):
        for n in (1, 2, 3, 7, 8, 9, 15, 16, 17, 52, 1000, x.shape[0]):
            for a in (0, 1, 5):
                got = x[a:a + n].copy()
                unary_loop_kernel(loop, got)
                assert got.tobytes() == np.log10(x[a:a + n]).tobytes(), (n, a)


def test_the_ufunc_loops_are_read_from_numpys_tables():
    """The loop addresses the planner and the SNR kernels call are the ones in NumPy's ufunc
    tables (read once, checked against the ufunc's own fields), where the layout is NumPy 2's."""
    from cardiosim._exp_kernels import _ufunc_table_loop, np_log10_loop
    from cardiosim.ode import _plan_kernels

    assert _plan_kernels._ufunc_table_loop is _ufunc_table_loop   # one reader, shared
    loops = _plan_kernels.ufunc_loops()
    if loops is not None:
        assert tuple(int(v) for v in loops[:2]) == _ufunc_table_loop(np.exp, "d->d")
    log10 = np_log10_loop()
    if log10 is not None:
        assert tuple(int(v) for v in log10) == _ufunc_table_loop(np.log10, "d->d")
    assert _ufunc_table_loop(np.log10, "no-such-signature") is None


def test_np_log10_loop_check_is_silent():
    """The check behind ``np_log10_loop`` takes log10 of 0 and negatives on purpose (NumPy's
    loop called from a kernel raises the CPU's flags, NumPy clears them before its next
    checked call): a user sees no RuntimeWarning from it, then or after."""
    import warnings

    from cardiosim import _exp_kernels

    saved = list(_exp_kernels._NP_LOG10_LOOP)
    _exp_kernels._NP_LOG10_LOOP.clear()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            loop = _exp_kernels.np_log10_loop()
            assert np.log10(np.array([2.0, 3.0])).shape == (2,) and float(np.exp(np.float64(1.0))) > 2.7
        assert loop is None or (loop.dtype == np.uint64 and loop.shape == (2,))
    finally:
        _exp_kernels._NP_LOG10_LOOP[:] = saved
