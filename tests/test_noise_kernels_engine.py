"""Kernels of the batched-engine work on the noise stage agree bit for bit with their NumPy
twins (the code they replaced), including the values that decide a branch."""

from __future__ import annotations

import numpy as np
import pytest

from cardiosim.noise._kernels import KERNELS


def _impedance_inputs(rng, n=3001):
    z0 = np.exp(rng.uniform(np.log(93e3), np.log(350e3), 9))
    zinf = np.exp(rng.uniform(np.log(20e3), np.log(56e3), 9))
    shape = np.exp(np.arange(n, dtype=np.float32) * np.float32(-1 / 1200 / 500))
    d0 = np.float32(np.exp(-1234.5 / 1200.0))
    return z0, zinf, d0, shape


@pytest.mark.parametrize("spread", [0.05, 1.0, 8.0])
def test_impedance_pressure_twin_bit_identical(rng, spread):
    """Decay and the division by sqrt(float32(pressure)) in one pass equal NumPy's passes
    (``impedance_decay`` then ``z /= np.sqrt(pressure, dtype=float32)``) bit for bit, over
    pressures from near 0 to large (sub-normal-free, the range motion produces and beyond)."""
    kern, ref = KERNELS["impedance_pressure"]
    z0, zinf, d0, shape = _impedance_inputs(rng)
    pressure = np.exp(rng.normal(0.0, spread, (9, shape.size)))
    out = np.empty((9, shape.size), dtype=np.float32)
    kern(z0, zinf, d0, shape, pressure, out)
    want = ref(z0, zinf, d0, shape, pressure)
    assert out.tobytes() == want.tobytes()


def test_impedance_pressure_equals_the_two_step_path(rng):
    """The kernel is the decay kernel followed by NumPy's in-place division (what
    ``_draw_impedance`` ran before), also where float64 pressures round to one float32."""
    kern, _ = KERNELS["impedance_pressure"]
    decay, _ = KERNELS["impedance_decay"]
    z0, zinf, d0, shape = _impedance_inputs(rng, 2000)
    pressure = 1.0 + rng.uniform(-1e-8, 1e-8, (9, 2000))     # many ties of the float32 cast
    pressure[0, :5] = [1e-30, 1e30, 0.5, 2.0, 4.0]
    a = np.empty((9, 2000), dtype=np.float32)
    decay(z0, zinf, d0, shape, a)
    a /= np.sqrt(pressure, dtype=np.float32)
    b = np.empty_like(a)
    kern(z0, zinf, d0, shape, pressure, b)
    assert a.tobytes() == b.tobytes()


def test_positive_finite_twin(rng):
    kern, ref = KERNELS["positive_finite"]
    x = np.exp(rng.normal(0.0, 3.0, (9, 5001)))
    assert kern(x) and ref(x)
    for bad in (0.0, -0.0, -1e-300, -5.0, np.nan, np.inf, -np.inf):
        for pos in ((0, 0), (4, 2500), (8, 5000)):
            y = x.copy()
            y[pos] = bad
            assert kern(y) == ref(y) is False
    assert kern(np.full((2, 3), 5e-324))          # the smallest positive double is positive


def test_electrode_noise_rejects_bad_pressure_as_before(rng):
    """simulate_electrode_noise still refuses a non-positive or non-finite contact pressure."""
    from types import SimpleNamespace

    from cardiosim.errors import SignalError
    from cardiosim.noise import simulate_electrode_noise

    n_e, n = 3, 1000
    for bad in (0.0, -1.0, np.nan, np.inf):
        p = np.ones((n_e, n))
        p[1, 7] = bad
        motion = SimpleNamespace(fs=500.0, breathing=np.zeros(n), contact_pressure=p, muscle=np.zeros(n),
                                 params={})
        with pytest.raises(SignalError, match="contact_pressure"):
            simulate_electrode_noise(n_e, n, 500.0, rng, motion=motion)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fs", [500.0, 250.0])
def test_two_section_filtfilt_equals_the_general_loop_and_scipy(rng, dtype, fs):
    """The measurement band-pass (two sections) takes the fused two-section loop: the same
    values bit for bit as the general per-section loop and as scipy.signal.sosfiltfilt."""
    from scipy import signal

    from cardiosim.noise._kernels import _filtfilt_sections, _filtfilt_two_sections, sosfiltfilt_scratch_kernel
    from cardiosim.noise.textile import _band_filtfilt

    sos, zi, padlen = _band_filtfilt(fs)
    assert sos.shape[0] == 2
    x = (np.cumsum(rng.standard_normal((24, 3001)), axis=1) * 0.05).astype(dtype)
    out = np.empty(x.shape)
    ext = np.empty((x.shape[1] + 2 * padlen, x.shape[0]))
    sosfiltfilt_scratch_kernel(sos, zi, x, padlen, out, ext)
    assert out.tobytes() == signal.sosfiltfilt(sos, x.astype(np.float64), axis=1).tobytes()
    a = rng.standard_normal((3001 + 2 * padlen, 5))
    b = a.copy()
    _filtfilt_two_sections(sos, zi, a, a.shape[0], 5)
    _filtfilt_sections(sos, zi, b, b.shape[0], 5)
    assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("order", [2, 4])
def test_sosfiltfilt_diff_equals_the_stacked_rows_path(rng, dtype, order):
    """The band-pass of [rec - cl; cl] formed inside the kernel equals what artefact_grades
    did before (np.subtract into rows of the dtype, the copy, sosfiltfilt_scratch_kernel) and
    scipy's sosfiltfilt of those rows, bit for bit, garbage in the scratch buffer included."""
    from scipy import signal

    from cardiosim.noise._kernels import sosfiltfilt_padlen, sosfiltfilt_scratch_kernel

    kern, ref = KERNELS["sosfiltfilt_diff"]
    sos = signal.butter(order, (1.0, 40.0), "bandpass", fs=500.0, output="sos")
    zi, padlen = signal.sosfilt_zi(sos), sosfiltfilt_padlen(sos)
    cl = (np.cumsum(rng.standard_normal((12, 2500)), axis=1) * 0.05).astype(dtype)
    rec = (cl + rng.standard_normal(cl.shape) * 0.02).astype(dtype)
    rows = np.empty((24, 2500), dtype=dtype)
    np.subtract(rec, cl, out=rows[:12])
    rows[12:] = cl
    want = np.empty(rows.shape)
    sosfiltfilt_scratch_kernel(sos, zi, rows, padlen, want, np.empty((2500 + 2 * padlen, 24)))
    got = np.full(rows.shape, np.nan)
    kern(sos, zi, rec, cl, padlen, got, rng.standard_normal((2500 + 2 * padlen, 24)))
    assert got.tobytes() == want.tobytes()
    if order == 2:
        assert got.tobytes() == ref(sos, rec, cl).tobytes()
    else:
        np.testing.assert_allclose(got, ref(sos, rec, cl), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("rows, cols", [(4, 7), (5, 1), (3, 201), (2, 2049), (9, 2)])
def test_seeded_normal_rows_continue_the_stream(rng, rows, cols):
    """The draw-as-you-map ziggurat kernel gives its oracle's values bit for bit for any row
    length (a row that ends on the low half of an output: the next row starts with its high
    half), into float32 and float64 rows, contiguous or strided (the complex spectrum view the
    activity noise fills), with a column scale or ones, leaving the columns beyond the scale
    untouched."""
    kern, ref = KERNELS["seeded_normal"]
    from cardiosim.noise._kernels import ZIG256_FI, ZIG256_KI, ZIG256_WI
    for seed in (1, 2**63 + 12345, 987654321):
        rs = rng.uniform(0.1, 3.0, rows)
        for cs in (rng.uniform(0.1, 3.0, cols), np.ones(cols)):   # the kernel skips a unit scale
            want = ref(seed, rs, cs, dtype=np.float64)
            for dtype in (np.float32, np.float64):
                full = np.full((rows, 2 * cols + 6), 9.0, dtype=dtype)
                out = full[:, :cols + 3]                         # rows strided (not C-contiguous)
                kern(np.uint64(seed), rs, cs, out, ZIG256_KI, ZIG256_WI, ZIG256_FI)
                np.testing.assert_array_equal(out[:, :cols], want.astype(dtype))
                assert np.all(full[:, cols:] == 9.0)
