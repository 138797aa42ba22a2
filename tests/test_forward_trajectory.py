"""The lead-field-along-trajectory kernel against its NumPy twin and against np.interp."""

import numpy as np
import pytest

from cardiosim.forward._kernels import potentials_along_trajectory, potentials_along_trajectory_numpy, rotate_small_numpy


@pytest.mark.parametrize("n_j", [3, 7])
def test_kernel_matches_numpy_twin_and_np_interp(n_j):
    rng = np.random.default_rng(0)
    n_t, n_e = 1000, 9
    times = np.append(np.arange(0, n_t, 20), n_t - 1)  # the generator's 25 Hz grid at 500 Hz
    lf = rng.normal(size=(len(times), n_e, n_j))
    src = rng.normal(size=(n_j, n_t))
    got = potentials_along_trajectory(lf, times, src)
    np.testing.assert_allclose(got, potentials_along_trajectory_numpy(lf, times, src), rtol=1e-12, atol=1e-12)
    # independent oracle: np.interp of every lead-field entry, then the sum over components
    e, j = 4, n_j - 1
    lf_e = np.stack([np.interp(np.arange(n_t), times, lf[:, e, c]) for c in range(n_j)])
    np.testing.assert_allclose(got[e], (lf_e * src).sum(axis=0), rtol=1e-12, atol=1e-12)
    assert j >= 2


def test_samples_outside_the_trajectory_hold_the_end_values():
    lf = np.array([[[1.0, 0.0, 0.0]], [[3.0, 0.0, 0.0]]])
    src = np.ones((3, 10))
    out = potentials_along_trajectory(lf, np.array([2, 6]), src)
    np.testing.assert_allclose(out[0], [1, 1, 1, 1.5, 2, 2.5, 3, 3, 3, 3])


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="do not match"):
        potentials_along_trajectory(np.zeros((3, 2, 3)), np.arange(2), np.zeros((3, 5)))


@pytest.mark.parametrize("n_j", [3, 7])
def test_rotated_pass_equals_rotating_the_dipole_first(n_j):
    """``angles=`` turns the dipole rows inside the pass: the rotation done first
    (rotate_small_numpy, NumPy's cos and sin; the kernel's series agree to a few ulps), and the
    NumPy twin on the rotated source; extra rows do not turn."""
    from cardiosim.forward._kernels import rotate_small_numpy

    rng = np.random.default_rng(1)
    n_t, n_e = 800, 9
    times = np.append(np.arange(0, n_t, 20), n_t - 1)
    lf = rng.normal(size=(len(times), n_e, n_j))
    src = rng.normal(size=(n_j, n_t))
    ang = rng.normal(0.0, 0.1, size=(3, n_t))
    got = potentials_along_trajectory(lf, times, src, ang)
    turned = src.copy()
    turned[:3] = rotate_small_numpy(src[:3], ang)
    series = src.copy()
    series[:3] = rotate_small_numpy(src[:3], ang, series=True)
    np.testing.assert_array_equal(got, potentials_along_trajectory(lf, times, series))
    scale = np.abs(lf).max() * np.abs(src).max()
    np.testing.assert_allclose(got, potentials_along_trajectory(lf, times, turned), rtol=0, atol=1e-14 * scale)
    np.testing.assert_allclose(got, potentials_along_trajectory_numpy(lf, times, turned), rtol=1e-12, atol=1e-12)
    # independent check of the rotation: a quarter turn about z takes x to y
    q = rotate_small_numpy(np.array([[1.0], [0.0], [0.0]]), np.array([[0.0], [0.0], [np.pi / 2]]))
    np.testing.assert_allclose(q[:, 0], [0.0, 1.0, 0.0], atol=1e-15)
    with pytest.raises(ValueError, match="rotation angles"):
        potentials_along_trajectory(lf, times, src, ang[:, :-1])


@pytest.mark.parametrize("n_j", [3, 5])
def test_segment_runs_equal_sample_by_sample_sums(n_j):
    """The kernel's run-by-run loops give, bit for bit, the per-sample sum
    ``acc += (lf[s] (1 - w) + lf[s + 1] w) v`` over the components in order (plain Python
    floats), with and without the heart rotation."""
    from cardiosim.forward._kernels import _knot_table

    rng = np.random.default_rng(n_j)
    times = np.array([0, 7, 8, 30, 59])
    lf = rng.standard_normal((len(times), 3, n_j))
    src = rng.standard_normal((n_j, 60))
    ang = rng.standard_normal((3, 60)) * 0.1
    xp = times.astype(np.float64)

    seg_t, w_t, omw = np.empty(60, dtype=np.int64), np.empty(60), np.empty(60)
    _knot_table.py_func(xp, seg_t, w_t, omw)              # plain Python floats
    assert np.array_equal(omw, 1.0 - w_t)
    assert np.all(xp[seg_t] <= np.arange(60)) and np.all((w_t >= 0) & (w_t <= 1))

    def by_sample(v):
        out = np.empty((3, 60))
        for t in range(60):
            seg, w = int(seg_t[t]), float(w_t[t])
            for e in range(3):
                acc = 0.0
                for j in range(n_j):
                    acc += (float(lf[seg, e, j]) * (1.0 - w) + float(lf[seg + 1, e, j]) * w) * float(v[j, t])
                out[e, t] = acc
        return out

    np.testing.assert_array_equal(potentials_along_trajectory(lf, times, src), by_sample(src))
    turned = src.copy()
    turned[:3] = rotate_small_numpy(src[:3], ang, series=True)   # the kernel's cosines and sines
    np.testing.assert_array_equal(potentials_along_trajectory(lf, times, src, ang), by_sample(turned))


def test_small_angle_cos_sin_agree_with_numpy():
    """The trajectory kernel's cosines and sines (Taylor series below 0.5 rad, ``math``
    beyond) against NumPy's: within 2 ulps of 1 for the cosine and of the angle for the
    sine over the respiratory range and its boundary, equal beyond it."""
    from cardiosim.forward._kernels import cos_sin_small_kernel

    x = np.concatenate([np.linspace(-0.5, 0.5, 100_001), [0.0, -0.0, 1e-300, 0.4999999999999999],
                        np.linspace(0.5, 3.0, 11), -np.linspace(0.5, 3.0, 11)])
    cs = np.empty((2, x.size))
    cos_sin_small_kernel(x[None, :], cs)
    small = np.abs(x) < 0.5
    c, s = np.cos(x[small]), np.sin(x[small])
    assert np.all(np.abs(cs[0, small] - c) <= 2 * np.spacing(c))
    assert np.all(np.abs(cs[1, small] - s) <= 2 * np.spacing(np.abs(s)))
    np.testing.assert_array_equal(cs[:, ~small], np.stack([np.cos(x[~small]), np.sin(x[~small])]))
    assert np.signbit(cs[1, 100_002]) and np.signbit(np.sin(x[100_002]))   # sin(-0.0) = -0.0


@pytest.mark.parametrize("case", ["small", "mixed", "boundary", "nonfinite"])
def test_rotated_kernel_paths_equal_the_per_sample_rotation(case):
    """The rotated kernel's two loops (branch-free series when every angle is below 0.5 rad,
    else :func:`_cos_sin_small` sample by sample) against the dipole turned first with the
    kernel's own cosines and sines (``rotate_small_numpy(series=True)``), bit for bit."""
    rng = np.random.default_rng(7)
    n_t, n_e = 333, 4
    times = np.append(np.arange(0, n_t, 20), n_t - 1)
    lf = rng.standard_normal((len(times), n_e, 3))
    src = rng.standard_normal((3, n_t))
    ang = rng.standard_normal((3, n_t)) * 0.1
    if case == "mixed":
        ang[1, ::17] = 0.9
        ang[2, 5] = -3.0
    elif case == "boundary":
        ang[0, :4] = [0.5, -0.5, 0.4999999999999999, -0.4999999999999999]
    elif case == "nonfinite":
        ang[2, 10] = np.nan
        src[1, 20] = np.inf
    turned = src.copy()
    turned[:3] = rotate_small_numpy(src[:3], ang, series=True)
    np.testing.assert_array_equal(potentials_along_trajectory(lf, times, src, ang),
                                  potentials_along_trajectory(lf, times, turned))
