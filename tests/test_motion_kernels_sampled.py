"""The electrode offsets kept only at the trajectory samples (``simulate_motion(offsets_at=)``):
kernel against its NumPy twin bit for bit, and the whole Motion against the full-rate one."""

from __future__ import annotations

import numpy as np
import pytest

from cardiosim.errors import ConfigError
from cardiosim.motion import ACTIVITIES, simulate_motion
from cardiosim.motion._kernels import KERNELS, interpolation_table, pairwise_plan


def _plan_sum(x, plan):
    """Evaluate a pairwise plan in Python (leaf sums by np.add.reduce of <= 128 values)."""
    leaf_lo, leaf_n, program = plan
    stack = []
    for op in program:
        if op >= 0:
            stack.append(np.add.reduce(x[leaf_lo[op]:leaf_lo[op] + leaf_n[op]]))
        else:
            right = stack.pop()
            stack.append(stack.pop() + right)
    assert len(stack) == 1
    return 0.0 + stack[0]


@pytest.mark.parametrize("n", [2, 7, 8, 9, 127, 128, 129, 136, 500, 1000, 1250, 2560, 5000, 7681])
def test_pairwise_plan_is_numpys_summation_tree(n):
    rng = np.random.default_rng(n)
    x = rng.standard_normal(n) * np.exp(rng.uniform(-20, 20, n))   # large and small values: order shows
    plan = pairwise_plan(n)
    leaf_lo, leaf_n, _ = plan
    assert leaf_lo[0] == 0 and leaf_lo[-1] + leaf_n[-1] == n and np.all(leaf_n <= 128)
    assert np.all(leaf_lo[1:] == leaf_lo[:-1] + leaf_n[:-1])
    assert _plan_sum(x, plan).tobytes() == np.add.reduce(x).tobytes()


def _case(rng, rows, n, ratio):
    m = n if ratio == 0 else int(np.ceil((n - 1) / ratio)) + 2
    coef = rng.standard_normal((rows, 3))
    coef[::3, 2] = 0.0
    coef[1::3, 2] = -0.0                       # -0.0: skipped by the row kernel, a term here
    coef[2::3, :2] = 0.0
    basis = rng.standard_normal((3, n))
    basis[1, ::7] = 0.0
    basis[2, :4] = -0.0
    e = rng.standard_normal((rows, m))
    return coef, basis, e, interpolation_table(n, float(ratio))


@pytest.mark.parametrize("rows,n,ratio", [(27, 5000, 10.0), (30, 2560, 2.56), (9, 1000, 5.0), (5, 300, 0.0),
                                          (3, 100, 10.0), (16, 6, 0.0), (1, 129, 2.5)])
def test_sampled_kernel_is_its_numpy_twin_bit_for_bit(rows, n, ratio):
    kern, ref = KERNELS["slow_ou_affine_sampled"]
    rng = np.random.default_rng(rows * n)
    coef, basis, e, tables = _case(rng, rows, n, ratio)
    a = float(np.exp(-1.0 / (0.5 * 50.0)))
    c = float(np.sqrt(1 - a * a))
    coef_t = np.ascontiguousarray(coef.T)
    for at in (np.arange(n), np.unique(np.r_[np.arange(0, n, 20), n - 1]), np.array([0]), np.array([n - 1])):
        out_at = np.empty((at.size, rows))
        sums = np.empty(rows)
        assert kern(coef_t, basis, e, a, c, 0.003, *tables, *pairwise_plan(n), at, out_at, sums) == 0
        want_at, want_sums = ref(coef_t, basis, e, a, c, 0.003, *tables, at)
        assert out_at.tobytes() == want_at.tobytes()
        assert sums.tobytes() == want_sums.tobytes()


def test_sampled_kernel_refuses_non_finite_input():
    kern, _ = KERNELS["slow_ou_affine_sampled"]
    rng = np.random.default_rng(0)
    coef, basis, e, tables = _case(rng, 6, 300, 10.0)
    basis[0, 17] = np.inf
    out_at, sums = np.empty((1, 6)), np.empty(6)
    assert kern(np.ascontiguousarray(coef.T), basis, e, 0.9, 0.4, 0.01, *tables, *pairwise_plan(300),
                np.array([3]), out_at, sums) == 1


@pytest.mark.parametrize("fs", [40.0, 128.0, 500.0])
@pytest.mark.parametrize("activity", ACTIVITIES)
def test_offsets_at_gives_the_full_rate_motion_at_those_samples(fs, activity):
    """Same draws, same offsets at the samples asked for, same mean offset, same everything else."""
    pos = np.random.default_rng(5).normal(0, 0.1, (10, 3))
    pos[3, 0] = 0.0
    pos[4, 1] = 0.0                           # zero coefficients: terms the row kernel skips
    for positions in (None, pos):
        n = int(round(7.0 * fs))
        step = max(1, int(round(fs / 25.0)))
        at = np.arange(0, n, step)
        if at[-1] != n - 1:
            at = np.append(at, n - 1)
        g_full, g_at = np.random.default_rng(7), np.random.default_rng(7)
        full = simulate_motion(7.0, fs, g_full, activity=activity, n_electrodes=10, positions=positions)
        part = simulate_motion(7.0, fs, g_at, activity=activity, n_electrodes=10, positions=positions, offsets_at=at)
        assert full.offsets_at is None and np.array_equal(part.offsets_at, at)
        assert part.offsets.shape == (10, 3, at.size)
        assert part.offsets.tobytes() == np.ascontiguousarray(full.offsets[:, :, at]).tobytes()
        assert part.params == full.params             # mean_offset_m bit for bit
        for name in ("heart_rotation", "breathing", "contact_pressure", "muscle", "accelerometer"):
            assert getattr(part, name).tobytes() == getattr(full, name).tobytes(), name
        assert g_full.bit_generator.state == g_at.bit_generator.state


def test_offsets_at_errors():
    rng = np.random.default_rng(0)
    for bad in ([], [0, 500], [-1, 3], [5, 5], [7, 3], [[1, 2]]):
        with pytest.raises(ConfigError):
            simulate_motion(1.0, 500.0, rng, n_electrodes=3, offsets_at=np.array(bad, dtype=np.int64))


def test_numpy_twin_takes_offsets_at_too():
    """The reference simulator samples its full-rate offsets (bench_motion replays the calls
    simulate_record makes, offsets_at included, through it)."""
    from cardiosim.motion._reference import simulate_motion_ref
    at = np.r_[np.arange(0, 2500, 20), 2499]
    pos = np.random.default_rng(5).normal(0, 0.1, (9, 3))
    new = simulate_motion(5.0, 500.0, np.random.default_rng(3), activity="walk", n_electrodes=9, positions=pos,
                          offsets_at=at)
    ref = simulate_motion_ref(5.0, 500.0, np.random.default_rng(3), activity="walk", n_electrodes=9, positions=pos,
                              offsets_at=at)
    assert ref.offsets.shape == new.offsets.shape and np.array_equal(ref.offsets_at, at)
    np.testing.assert_allclose(new.offsets, ref.offsets, rtol=1e-12, atol=1e-15)
    assert new.params["mean_offset_m"] == pytest.approx(ref.params["mean_offset_m"], rel=1e-12)


def test_pressure_step_term_and_accelerometer_kernels_are_their_twins():
    rng = np.random.default_rng(4)
    kern, ref = KERNELS["add_outer"]
    x = rng.standard_normal((9, 1234))
    x[0, :3] = -0.0
    h, sig = rng.uniform(0.5, 1.5, 9) * 0.15, rng.standard_normal(1234)
    got = x.copy()
    kern(got, h, sig, 2.0)
    assert got.tobytes() == ref(x.copy(), h, sig, 2.0).tobytes()
    kern, ref = KERNELS["accel_finish"]
    acc = np.zeros((3, 1234))
    acc[2] = 9.80665
    acc[1, :5] = -0.0
    noise = rng.standard_normal((3, 1234))
    noise[0, :4] = [0.0, -0.0, 1e-300, -1e-300]     # signed zeros and float32 underflow survive the same
    out = np.empty((3, 1234), dtype=np.float32)
    kern(acc, noise, 0.02, out)
    assert out.tobytes() == ref(acc, noise, 0.02).tobytes()
