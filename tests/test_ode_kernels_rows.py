"""The three-row renderer (``_kernels.gaussian_time_rows_kernel``: the axes' exp recurrences
side by side in one vector loop) against the per-Gaussian kernel ``gaussian_time_kernel``
bit for bit, and against the NumPy oracle (``_reference``, an ``exp`` per sample) within the
recurrences' rounding."""

from __future__ import annotations

import numpy as np
import pytest

from cardiosim.ode import _kernels, _reference, synth
from cardiosim.ode.classes import CLASSES
from cardiosim.ode.dipole import DEFAULT_CUTOFF

RHYTHMS = [n for n, c in CLASSES.items() if c.kind == "rhythm"]
MORPHS = [n for n, c in CLASSES.items() if c.kind == "morphology"]


def _rows(t0, fs, c, w, a, ch, cut, n):
    flat = np.zeros(3 * n + 8)
    _kernels.gaussian_time_rows_kernel(t0, fs, c, w, a, ch, cut, flat, n, _kernels.exp_table())
    assert not flat[3 * n:].any()  # the slack takes only +0.0
    # the inline exp (where checked) and math.exp: the same record
    plain = np.zeros(3 * n + 8)
    _kernels.gaussian_time_rows_kernel(t0, fs, c, w, a, ch, cut, plain, n, np.empty(0, np.uint64))
    assert plain.tobytes() == flat.tobytes()
    return flat[:3 * n].reshape(3, n)


def test_inline_exp_is_math_exp():
    """``_kernels._exp`` on the checked table equals ``math.exp`` in the kernels (the check's
    arguments and fresh ones); glibc's table layout (entry 1: 1.0's bits)."""
    tab = _kernels.exp_table_values()
    assert int(tab[0]) == 0 and int(tab[1]) == 0x3FF0000000000000
    if _kernels.exp_table().shape[0] == 0:
        pytest.skip("the C library's exp is not the FMA table algorithm here (math.exp used)")
    rng = np.random.default_rng(8)
    for x in (_kernels.exp_check_args(rng), rng.uniform(-40.0, 5.0, 300_000), -rng.uniform(0, 1e-3, 10_000)):
        got, want = np.empty_like(x), np.empty_like(x)
        _kernels.exp_kernel(x, _kernels.exp_table(), got)
        _kernels.math_exp_kernel(x, want)
        assert got.tobytes() == want.tobytes()


def _serial(t0, fs, c, w, a, ch, cut, n):
    out = np.zeros((3, n))
    _kernels.gaussian_time_kernel(t0, fs, c, w, a, ch, cut, out)
    return out


@pytest.mark.parametrize("rhythm", RHYTHMS)
def test_rows_kernel_equals_serial_kernel_on_every_class(rhythm):
    for j, morph in enumerate(MORPHS):
        for fs in (100.0, 250.0, 500.0, 1000.0):
            plan = synth._plan(10.0, fs, np.random.default_rng(j), None, rhythm, morph, None, None, None, None,
                               0.5, 0.03, None)
            n = int(round(10.0 * fs))
            args = (0.0, fs, plan.centres, plan.widths, plan.amps, plan.chans, DEFAULT_CUTOFF, n)
            got = _rows(*args)
            assert got.tobytes() == _serial(*args).tobytes()
            oracle = np.zeros((3, n))
            _reference.gaussian_time_kernel(*args[:-1], oracle)
            np.testing.assert_allclose(got, oracle, rtol=0, atol=1e-9 * max(1.0, np.abs(oracle).max()))


def test_rows_kernel_equals_serial_kernel_on_edge_cases():
    """Windows of 1-3 samples, clipped at the record's ends, under two samples per width
    (evaluated directly), zero amplitudes, cutoffs beyond the clamp, empty rows."""
    rng = np.random.default_rng(20261206)
    for _ in range(600):
        g = int(rng.integers(0, 40))
        n = int(rng.integers(1, 700))
        c = rng.uniform(-0.5, 2.0, g)
        w = np.exp(rng.uniform(np.log(5e-4), np.log(0.3), g))
        a = rng.normal(size=g)
        a[rng.random(g) < 0.1] = 0.0
        ch = rng.integers(0, 3, g)
        args = (float(rng.uniform(-0.3, 0.3)), float(rng.choice([100.0, 250.0, 500.0, 1000.0])), c, w, a, ch,
                float(rng.choice([1.0, 5.0, 40.0])), n)
        assert _rows(*args).tobytes() == _serial(*args).tobytes()


def test_synthesize_record_is_a_contiguous_three_row_array():
    b = synth.synthesize(2.0, 500.0, np.random.default_rng(0))
    assert b.vcg.shape == (3, 1000) and b.vcg.flags.c_contiguous and b.vcg.dtype == np.float64
