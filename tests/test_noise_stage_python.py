"""The small kernels that replaced per-record NumPy passes of the noise stage (issue 16) give
the values of those passes bit for bit (each against its NumPy twin in ``KERNELS``), and the
stage's contract around them holds (a bad contact pressure is still a SignalError)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cardiosim.errors import SignalError
from cardiosim.noise import simulate_electrode_noise
from cardiosim.noise._kernels import KERNELS


@pytest.mark.parametrize("n", [1, 7, 5000])
def test_affine_f32_twin(rng, n):
    """``t * a + b`` in float32, each operation rounded: NumPy's multiply then in-place add,
    over the common-mode phase's range and beyond (large products, negative offsets)."""
    kern, ref = KERNELS["affine_f32"]
    t = (np.arange(n, dtype=np.float32) / np.float32(500.0)) * np.float32(rng.uniform(0.5, 300.0))
    for a, b in ((0.314159, 5.5), (1.8849556, 0.0), (-7.25, -3.0), (1e-7, 6.283)):
        for cast in (np.float32, float):          # float32 scalars, or Python floats rounded inside
            out = np.empty(n, dtype=np.float32)
            kern(t, cast(a), cast(b), out)
            assert out.tobytes() == ref(t, a, b).tobytes()


def test_in_range_twin(rng):
    """The beats inside ``[0, n)`` in order: none, all, and some on either side and at the ends."""
    kern, ref = KERNELS["in_range"]
    cases = [np.zeros(0, dtype=np.int64), np.array([-1, -1], dtype=np.int64),
             np.array([0, 4999, 5000, -1, 12, 5001, 2500], dtype=np.int64),
             rng.integers(-100, 5100, 300).astype(np.int64), np.arange(0, 5000, 400, dtype=np.int64)]
    for r in cases:
        out = np.full(r.size + 3, -7, dtype=np.int64)
        got = out[:kern(r, 5000, out)]
        want = ref(r, 5000)
        assert got.dtype == want.dtype == np.int64
        assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize("spread", [0.05, 1.0, 8.0])
def test_impedance_pressure_checked_twin(rng, spread):
    """The checked kernel writes the unchecked kernel's impedances and says whether every
    pressure is positive and finite, as ``positive_finite`` does (a zero, a negative value,
    NaN and inf each make it False)."""
    kern, ref = KERNELS["impedance_pressure_checked"]
    plain, _ = KERNELS["impedance_pressure"]
    n = 3001
    z0 = np.exp(rng.uniform(np.log(93e3), np.log(350e3), 9))
    zinf = np.exp(rng.uniform(np.log(20e3), np.log(56e3), 9))
    shape = np.exp(np.arange(n, dtype=np.float32) * np.float32(-1 / 1200 / 500))
    d0 = np.float32(np.exp(-1234.5 / 1200.0))
    pressure = np.exp(rng.normal(0.0, spread, (9, n)))
    out = np.empty((9, n), dtype=np.float32)
    want = np.empty_like(out)
    assert kern(z0, zinf, d0, shape, pressure, out)
    plain(z0, zinf, d0, shape, pressure, want)
    z_ref, ok_ref = ref(z0, zinf, d0, shape, pressure)
    assert ok_ref and out.tobytes() == want.tobytes() == z_ref.tobytes()
    for bad in (0.0, -1e-3, np.nan, np.inf):
        p = pressure.copy()
        p[4, 1234] = bad
        with np.errstate(all="ignore"):
            assert not kern(z0, zinf, d0, shape, p, out)
            assert not ref(z0, zinf, d0, shape, p)[1]


def test_bad_contact_pressure_still_raises(rng):
    """With the check folded into the impedance pass, a motion whose contact pressure is not
    positive and finite still stops the simulation with a SignalError naming it."""
    from cardiosim.motion import simulate_motion
    m = simulate_motion(1.0, 500.0, rng, n_electrodes=3)
    for bad in (0.0, -1.0, np.nan, np.inf):
        p = np.array(m.contact_pressure, dtype=np.float64, copy=True)
        p[1, 17] = bad
        with pytest.raises(SignalError, match="contact_pressure"):
            simulate_electrode_noise(3, 500, 500.0, np.random.default_rng(1),
                                     motion=dataclasses.replace(m, contact_pressure=p))


def test_noise_kinds_layout_cached():
    """``_noise_kinds`` gives the same (which, consts) arrays for the same layout (made once),
    with the values and dtypes the kernels take."""
    from cardiosim.simulate import _noise_kinds
    a = np.zeros((3, 10), dtype=np.float32)
    b = np.ones((3, 10), dtype=np.float32)
    c = np.broadcast_to(np.float32(0.5), (3, 10))
    k1 = _noise_kinds({"x": a, "y": c, "z": b}, (3, 10))
    k2 = _noise_kinds({"x": b, "y": c, "z": a}, (3, 10))
    assert k1[0][0] is a and k2[0][0] is b
    assert k1[1] is k2[1] and k1[2] is k2[2]
    assert k1[1].dtype == np.int64 and k1[1].tolist() == [0, -1, 1]
    assert k1[2].dtype == np.float32 and k1[2].tolist() == [0.0, 0.5, 0.0]


@pytest.mark.parametrize("n", [1, 7, 128, 129, 5000, 8192])
def test_sum_as_f32_f64_twin(rng, n):
    """The float64 envelope's sum read as float32 values equals the float32 copy's sum (what the
    contact rates summed before) and NumPy's, for constant envelopes (a motion's) and varied ones."""
    kern, ref = KERNELS["sum_as_f32_f64"]
    f32_kern, _ = KERNELS["sum_f32_as_f64"]
    for x in (np.full(n, 0.3), np.full(n, 1.0 / 3.0), rng.uniform(0.0, 2.0, n), np.exp(rng.normal(0.0, 3.0, n))):
        got = kern(x)
        assert got == ref(x) == f32_kern(x.astype(np.float32))
        assert kern(x.astype(np.float32)) == got


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,trim", [(5000, 0.05), (20000, 0.2), (3001, 0.0)])
def test_nstdb_powers_finite_equals_the_checking_kernel(rng, dtype, n, trim):
    """For finite clean leads the kernel that skips the finiteness pass writes the checking
    kernel's powers bit for bit (and the NumPy twin's signal powers), and reports a beat
    outside the record as it does."""
    from cardiosim.leads import make_montage
    from cardiosim.noise._kernels import lead_plan
    kern, ref = KERNELS["nstdb_powers_finite"]
    checking, _ = KERNELS["nstdb_powers"]
    m = np.ascontiguousarray(make_montage("standard12").matrix, dtype=np.float64)
    clean = (rng.standard_normal((12, n)) * 0.05).astype(dtype)
    r = np.arange(150, n - 60, 380, dtype=np.int64)
    clean[:, r] += rng.uniform(0.2, 2.0, (12, 1)).astype(dtype)
    xs = tuple((rng.standard_normal((9, n)) * rng.uniform(1e-3, 1.0, (9, 1))
                * np.exp(rng.standard_normal(n) * 0.5)).astype(dtype) for _ in range(4))
    c, h = 500, 25
    cut_s, cut_p = int(trim * r.size), int(trim * (n // c))
    s, p = np.empty(12), np.empty((4, 12))
    s2, p2 = np.empty(12), np.empty((4, 12))
    assert kern(clean, r, h, cut_s, *lead_plan(m), xs, c, cut_p, s, p) == 0
    assert checking(clean, r, h, cut_s, *lead_plan(m), xs, c, cut_p, s2, p2) == 0
    assert s.tobytes() == s2.tobytes() and p.tobytes() == p2.tobytes()
    s_ref, p_ref = ref(clean, r, h, trim, m, xs, c)
    np.testing.assert_array_equal(s, s_ref)
    np.testing.assert_allclose(p, p_ref, rtol=1e-12)       # the twin's chunk variance is np.var
    late = np.append(r, n).astype(np.int64)
    assert kern(clean, late, h, cut_s, *lead_plan(m), xs, c, cut_p, s, p) == 2


def _pcg64_pair(seed):
    from cardiosim._pcg64_kernels import _pcg64_address
    a, b = np.random.default_rng(seed), np.random.default_rng(seed)
    return a, _pcg64_address(a), b


@pytest.mark.parametrize("rows, m, k", [(9, 257, 40), (1, 5, 4), (3, 17, 0), (2, 9, 8), (12, 1025, 600)])
def test_drift_spectrum_pcg64_twin(rows, m, k):
    """The drift's level normal, zeros, bin normals and their scaling from one kernel call equal
    NumPy's calls (``standard_normal()``, ``np.zeros``, ``standard_normal((rows, 2 k))`` into the
    bins, the complex product by ``amp``) bit for bit, and leave the stream where they do."""
    kern, ref = KERNELS["drift_spectrum_pcg64"]
    for seed in (0, 1, 20261207):
        mine, addr, numpy_rng = _pcg64_pair(seed)
        amp = np.exp(np.random.default_rng(seed + 1).normal(0.0, 2.0, k))
        z = np.full((rows, m), 7.0 + 7.0j)
        level = kern(addr, amp, z)
        want_level, want = ref(numpy_rng, amp, rows, m)
        assert level == want_level
        assert z.tobytes() == want.tobytes()
        assert mine.random() == numpy_rng.random()


@pytest.mark.parametrize("size", [0, 1, 2, 605, 20_000])
def test_normals_then_raw_pcg64_twin(size):
    """The activity noise's innovations and the next raw word from one kernel call equal
    ``standard_normal(size)`` then ``bit_generator.random_raw()``, and leave the stream there."""
    kern, ref = KERNELS["normals_then_raw_pcg64"]
    for seed in (0, 7, 20261207):
        mine, addr, numpy_rng = _pcg64_pair(seed)
        out = np.full(size, 9.0)
        raw = kern(addr, out)
        want, want_raw = ref(numpy_rng, size)
        assert out.tobytes() == want.tobytes()
        assert np.uint64(raw) == want_raw
        assert mine.random() == numpy_rng.random()


def test_drift_and_activity_fall_back_without_pcg64():
    """A generator on another bit generator draws through NumPy (the kernels need PCG64's
    state): the drift and activity kinds give the same noise from a Philox generator as they
    did, record after record (the draws of the fallback path are NumPy's own)."""
    from cardiosim.noise.drift import simulate_drift
    from cardiosim.noise.textile import simulate_activity_noise
    a = np.random.Generator(np.random.Philox(5))
    b = np.random.Generator(np.random.Philox(5))
    x = simulate_drift(a, 3, 1000, 500.0, median_mv=0.1, log_sd=0.5, exponent=1.5)
    y = simulate_drift(b, 3, 1000, 500.0, median_mv=0.1, log_sd=0.5, exponent=1.5)
    assert x.tobytes() == y.tobytes() and np.isfinite(x).all()
    x = simulate_activity_noise(a, 3, 1000, 500.0, electrode="textile", activity="rest")
    y = simulate_activity_noise(b, 3, 1000, 500.0, electrode="textile", activity="rest")
    assert x.tobytes() == y.tobytes() and np.isfinite(x).all()


def test_drift_and_activity_equal_their_numpy_draws(monkeypatch):
    """With PCG64 the fused draws give the noise the NumPy-drawn path gives (the kernels'
    numbers are the Generator's): each kind once through the kernels, once with them off."""
    import cardiosim.noise.drift as drift
    import cardiosim.noise.textile as textile
    got_d = drift.simulate_drift(np.random.default_rng(3), 9, 5000, 500.0, median_mv=0.1, log_sd=0.5,
                                 exponent=1.5)
    got_a = textile.simulate_activity_noise(np.random.default_rng(4), 9, 5000, 500.0, electrode="textile",
                                            activity="walk")
    monkeypatch.setattr(drift, "_pcg64_address_last", lambda rng: None)
    monkeypatch.setattr(textile, "_pcg64_address_last", lambda rng: None)
    want_d = drift.simulate_drift(np.random.default_rng(3), 9, 5000, 500.0, median_mv=0.1, log_sd=0.5,
                                  exponent=1.5)
    want_a = textile.simulate_activity_noise(np.random.default_rng(4), 9, 5000, 500.0, electrode="textile",
                                             activity="walk")
    assert got_d.tobytes() == want_d.tobytes()
    assert got_a.tobytes() == want_a.tobytes()


@pytest.mark.parametrize("size", [0, 1, 9, 1000])
def test_uniform_then_raw_pcg64_twin(size):
    """The white kind's amplitudes (``uniform(low, high, size) * scale``) and the next raw word
    from one kernel call equal NumPy's two calls bit for bit, over ranges and scales."""
    kern, ref = KERNELS["uniform_then_raw_pcg64"]
    for seed in (0, 3, 20261207):
        for low, high, scale in ((2.0, 10.0, 1e-3), (0.0, 1.0, 1.0), (-3.5, 7.25, 0.1), (5.0, 5.0, 2.0)):
            mine, addr, numpy_rng = _pcg64_pair(seed)
            out = np.full(size, 9.0)
            raw = kern(addr, low, high, scale, out)
            want, want_raw = ref(numpy_rng, low, high, scale, size)
            assert out.tobytes() == want.tobytes()
            assert np.uint64(raw) == want_raw
            assert mine.random() == numpy_rng.random()


@pytest.mark.parametrize("lam_a, lam_b", [(0.0, 0.0), (1e-4, 0.003), (0.7, 2.5), (9.99, 0.0), (4.0, 9.5)])
def test_poisson_pair_pcg64_twin(lam_a, lam_b):
    """Two Poisson draws of rates below 10 from one kernel call equal ``rng.poisson`` twice (NumPy's
    multiplication method, zero rates drawing nothing), and leave the stream where it does."""
    kern, ref = KERNELS["poisson_pair_pcg64"]
    for seed in (0, 11, 20261207):
        for size in (1, 9, 500):
            mine, addr, numpy_rng = _pcg64_pair(seed)
            a = np.empty(size, dtype=np.int64)
            b = np.empty(size, dtype=np.int64)
            kern(addr, lam_a, lam_b, a, b)
            wa, wb = ref(numpy_rng, lam_a, lam_b, size)
            assert a.tolist() == wa.tolist() and b.tolist() == wb.tolist()
            assert mine.random() == numpy_rng.random()


def test_white_and_contact_equal_their_numpy_draws(monkeypatch):
    """With PCG64 the white kind's fused draws and the contact counts' kernel give the noise the
    NumPy-drawn path gives: records with contact events (high rates, a moving wearer) and
    without, once through the kernels, once with them off."""
    import cardiosim.noise.electrode as electrode
    from cardiosim.motion import simulate_motion
    from cardiosim.noise import NoiseConfig
    cfg = NoiseConfig(electrode="textile", contact_loss_rate_per_min=30.0, pop_rate_per_min=60.0)
    motion = simulate_motion(10.0, 500.0, np.random.default_rng(8), activity="walking", n_electrodes=9)

    def run(config, seed):
        en = simulate_electrode_noise(9, 5000, 500.0, np.random.default_rng(seed), config, motion=motion)
        return [v.tobytes() for v in en.by_kind.values()], repr(en.params), np.asarray(en.contact).tobytes()

    got = [run(c, s) for c in (cfg, None) for s in (1, 2)]
    assert any(p[1].count("contact_losses.e") and "'contact_events': 0" not in p[1] for p in got[:2])
    monkeypatch.setattr(electrode, "_pcg64_address_last", lambda rng: None)
    want = [run(c, s) for c in (cfg, None) for s in (1, 2)]
    assert got == want


def test_mul_rows_twin(rng):
    """Rows times a vector in place equals NumPy's broadcast product, float32 and float64."""
    kern, ref = KERNELS["mul_rows"]
    for dtype in (np.float32, np.float64):
        x = (rng.standard_normal((9, 5000)) * 10.0 ** rng.uniform(-30, 30, (9, 1))).astype(dtype)
        v = (rng.standard_normal(5000) * 10.0 ** rng.uniform(-8, 8, 5000)).astype(dtype)
        want = ref(x, v)
        with np.errstate(all="ignore"):
            kern(x, v)
        assert x.tobytes() == want.tobytes()
