"""Numba kernels of cardiosim.noise agree with their NumPy twins."""

from __future__ import annotations

import numpy as np
import pytest

from cardiosim.noise._kernels import KERNELS


def _stable_ar(rng, p):
    # random poles inside the unit circle -> stable polynomial 1 + a1 z^-1 + ...
    poles = []
    for _ in range(p // 2):
        r, th = rng.uniform(0.3, 0.97), rng.uniform(0, np.pi)
        poles += [r * np.exp(1j * th), r * np.exp(-1j * th)]
    if p % 2:
        poles.append(rng.uniform(-0.9, 0.9))
    return np.real(np.poly(poles))[1:]


@pytest.mark.parametrize("p,n_seg", [(1, 1), (2, 1), (12, 1), (6, 5)])
def test_ar_filter_twin(rng, p, n_seg):
    kern, ref = KERNELS["ar_filter"]
    n = 3000
    a = np.stack([_stable_ar(rng, p) for _ in range(n_seg)])
    e = rng.standard_normal(n)
    seg = int(np.ceil(n / n_seg))
    out = np.zeros(n)
    kern(e, a, seg, out)
    np.testing.assert_allclose(out, ref(e, a, seg), rtol=1e-9, atol=1e-9)


def test_contact_twin(rng):
    kern, ref = KERNELS["contact"]
    n, fs = 20000, 500.0
    for _ in range(5):
        k = rng.integers(0, 8)
        starts = np.sort(rng.integers(-100, n, k)).astype(np.int64)
        durs = rng.integers(1, 2000, k).astype(np.int64)
        levels = rng.uniform(-1000, 1000, k)
        taus = rng.uniform(0.05, 2.0, k)
        m, o = np.ones(n), np.zeros(n)
        kern(starts, durs, levels, taus, fs, 0.05, m, o)
        m2, o2 = ref(starts, durs, levels, taus, fs, 0.05, n)
        np.testing.assert_allclose(m, m2, atol=1e-12)
        np.testing.assert_allclose(o, o2, rtol=1e-10, atol=1e-10)


def test_ziggurat_twin(rng):
    kern, ref = KERNELS["ziggurat"]
    from cardiosim.noise._kernels import ZIG_FN, ZIG_KN, ZIG_WN
    u = rng.bit_generator.random_raw(6000).view(np.uint32)
    out = np.empty(10000)
    filled, used = kern(u, out, 0, ZIG_KN, ZIG_WN, ZIG_FN)
    vals, used_ref = ref(u, 10000)
    assert filled == vals.size == 10000 and used == used_ref
    np.testing.assert_array_equal(out, vals)
    # a stream that runs out stops cleanly and reports how far it got
    filled, used = kern(u[:100], np.empty(500), 0, ZIG_KN, ZIG_WN, ZIG_FN)
    assert filled <= used <= 100


def test_ziggurat_is_standard_normal():
    """standard_normal (the seeded 256-layer ziggurat): moments, KS, both tails, beyond R."""
    from scipy import stats
    from cardiosim.noise._kernels import standard_normal
    x = standard_normal(np.random.default_rng(11), (400_000,), dtype=np.float64)
    assert abs(x.mean()) < 5 * np.sqrt(1 / x.size)
    assert abs(x.var() - 1) < 5 * np.sqrt(2 / x.size)
    assert stats.kstest(x, "norm").pvalue > 1e-3
    tail = np.mean(np.abs(x) > 3.5)                      # wedges below R = 3.65, tail beyond
    expect = 2 * stats.norm.sf(3.5)
    assert abs(tail - expect) < 5 * np.sqrt(expect / x.size)
    far = np.mean(np.abs(x) > 3.8)                       # the tail algorithm beyond R
    expect = 2 * stats.norm.sf(3.8)
    assert abs(far - expect) < 5 * np.sqrt(expect / x.size)
    assert abs(np.mean(x > 0) - 0.5) < 5 * np.sqrt(0.25 / x.size)
    # reproducible from the generator state, float32 by default
    a = standard_normal(np.random.default_rng(3), (9, 100))
    b = standard_normal(np.random.default_rng(3), (9, 100))
    assert a.dtype == np.float32 and np.array_equal(a, b)


def test_seeded_normal_twin(rng):
    """The fused xoshiro256++ + 256-layer ziggurat kernel gives its pure-Python oracle's values
    bit for bit (rows longer and shorter than a block, per-row and per-column scales), and
    leaves the columns beyond the scale untouched."""
    kern, ref = KERNELS["seeded_normal"]
    from cardiosim.noise._kernels import ZIG256_FI, ZIG256_KI, ZIG256_WI
    for seed, rows, cols in ((0, 3, 3000), (2**64 - 1, 2, 5), (123456789, 1, 4100)):
        rs = rng.uniform(0.1, 3.0, rows)
        cs = rng.uniform(0.1, 3.0, cols)
        out = np.full((rows, cols + 7), 9.0, dtype=np.float32)
        kern(np.uint64(seed), rs, cs, out, ZIG256_KI, ZIG256_WI, ZIG256_FI)
        np.testing.assert_array_equal(out[:, :cols], ref(seed, rs, cs))
        assert np.all(out[:, cols:] == 9.0)


def test_seeded_normal_one_seed_per_call():
    """Each draw takes one 64-bit seed from the Generator: what later draws give does not
    depend on how many numbers earlier draws asked for (records and blocks of any size stay
    independent), and a draw is reproducible from the Generator's state."""
    from cardiosim.noise._kernels import standard_normal
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    standard_normal(a, 10)
    standard_normal(b, 100_000)
    np.testing.assert_array_equal(standard_normal(a, (9, 500)), standard_normal(b, (9, 500)))
    assert a.uniform() == b.uniform()
    x = standard_normal(np.random.default_rng(3), (2, 4000))
    y = standard_normal(np.random.default_rng(3), (2, 4000))
    assert x.dtype == np.float32 and np.array_equal(x, y)
    assert not np.array_equal(x[0], x[1])


@pytest.mark.parametrize("factor", [1, 2, 4, 5])
def test_upsample_cubic_twin_and_accuracy(rng, factor):
    kern, ref = KERNELS["upsample_cubic"]
    x = rng.standard_normal((3, 200))
    out = np.empty((3, 200 * factor))
    kern(x, factor, out)
    np.testing.assert_allclose(out, ref(x, factor), rtol=1e-12, atol=1e-12)
    short = np.empty((3, 200 * factor - factor // 2))           # cropped output
    kern(x, factor, short)
    np.testing.assert_allclose(short, ref(x, factor, short.shape[1]), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(out[:, ::factor], x)                 # interpolating
    # a band-limited periodic signal well below the low-rate Nyquist is reproduced
    m = 400
    t_lo = np.arange(m) / m
    t_hi = np.arange(m * factor) / (m * factor)
    lo = np.sin(2 * np.pi * 5 * t_lo)[None]
    hi = np.empty((1, m * factor))
    kern(lo, factor, hi)
    np.testing.assert_allclose(hi[0], np.sin(2 * np.pi * 5 * t_hi), atol=2e-3)


@pytest.mark.parametrize("with_fast", [True, False])
@pytest.mark.parametrize("with_table", [True, False])
def test_activity_envelope_twin(rng, with_fast, with_table):
    kern, ref = KERNELS["activity_envelope"]
    n, fs = 7001, 500.0
    w_s = rng.standard_normal(int(np.ceil(n / fs * 10)) + 2)
    w_f = rng.standard_normal(int(np.ceil(n / fs * 50)) + 2) if with_fast else np.zeros(0)
    z = np.array([-1.96, -1.0, 0.0, 0.5, 1.64]) if with_table else np.zeros(0)
    q = np.array([-0.5, -0.2, 0.0, 0.3, 1.5]) if with_table else np.zeros(0)
    args = (w_s, 0.95, 10.0, 0.3, w_f, 0.87, 50.0, 0.4, fs, 0.02, z, q)
    out = np.empty(n)
    kern(*args, out)
    np.testing.assert_allclose(out, ref(*args, n), rtol=1e-10)


@pytest.mark.parametrize("with_fast", [True, False])
@pytest.mark.parametrize("with_table", [True, False])
@pytest.mark.parametrize("n,fs", [(7001, 500.0), (5000, 500.0), (2500, 250.0), (3600, 360.0), (1280, 128.0),
                                  (999, 97.3)])
def test_activity_envelope_runs_bit_identical(rng, with_fast, with_table, n, fs):
    """The interval-by-interval envelope equals the per-sample kernel's bit for bit (float32
    and float64 outputs), at rates whose sample times are not exact in binary."""
    from cardiosim.noise._kernels import (activity_envelope_kernel, activity_envelope_runs_kernel,
                                          activity_envelope_starts)
    w_s = rng.standard_normal(int(np.ceil(n / fs * 10)) + 2)
    w_f = rng.standard_normal(int(np.ceil(n / fs * 50)) + 2) if with_fast else np.zeros(0)
    z = np.array([-1.96, -1.0, 0.0, 0.5, 1.64]) if with_table else np.zeros(0)
    q = np.array([-0.5, -0.2, 0.0, 0.3, 1.5]) if with_table else np.zeros(0)
    args = (w_s, 0.95, 10.0, 0.3, w_f, 0.87, 50.0, 0.4, fs, 0.02, z, q)
    starts = activity_envelope_starts(n, fs, 10.0, 50.0, w_s.size, w_f.size)
    assert starts[0] == 0 and starts[-1] == n and np.all(np.diff(starts) > 0)
    for dtype in (np.float32, np.float64):
        want, got = np.empty(n, dtype=dtype), np.empty(n, dtype=dtype)
        activity_envelope_kernel(*args, want)
        activity_envelope_runs_kernel(*args, starts, got)
        assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize("order,band", [(2, (1.0, 40.0)), (4, (0.5, 40.0)), (2, 0.5)])
def test_sosfiltfilt_twin(rng, order, band):
    from scipy import signal

    from cardiosim.noise._kernels import sosfiltfilt_padlen

    kern, ref = KERNELS["sosfiltfilt"]
    kind = "highpass" if np.isscalar(band) else "bandpass"
    sos = signal.butter(order, band, kind, fs=500.0, output="sos")
    x = (np.cumsum(rng.standard_normal((5, 3000)), axis=1) + 3.0).astype(np.float32)
    out = np.empty(x.shape)
    kern(sos, signal.sosfilt_zi(sos), x, sosfiltfilt_padlen(sos), out)
    np.testing.assert_allclose(out, ref(sos, x), rtol=1e-9, atol=1e-9 * np.abs(x).max())


def test_sosfiltfilt_scratch_kernel_equals_the_allocating_one(rng):
    """With a caller's scratch buffer holding garbage, the same bits as the kernel that
    allocates its own (which the scipy twin test above checks)."""
    from scipy import signal

    from cardiosim.noise._kernels import sosfiltfilt_padlen, sosfiltfilt_scratch_kernel

    kern, _ = KERNELS["sosfiltfilt"]
    sos = signal.butter(2, (1.0, 40.0), "bandpass", fs=500.0, output="sos")
    zi, padlen = signal.sosfilt_zi(sos), sosfiltfilt_padlen(sos)
    x = (np.cumsum(rng.standard_normal((6, 2000)), axis=1) + 3.0).astype(np.float32)
    want, got = np.empty(x.shape), np.full(x.shape, np.nan)
    kern(sos, zi, x, padlen, want)
    ext = rng.standard_normal((x.shape[1] + 2 * padlen, x.shape[0]))
    sosfiltfilt_scratch_kernel(sos, zi, x, padlen, got, ext)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lead_chunk_var_twin(rng, dtype):
    """Per-chunk lead variance without forming the leads = np.var of the chunks of
    ``matrix @ x`` (standard 12-lead matrix, a large baseline offset, a partial last chunk)."""
    from cardiosim.leads import make_montage
    kern, ref = KERNELS["lead_chunk_var"]
    m = make_montage("standard12").matrix
    x = (rng.standard_normal((9, 5250)) * rng.uniform(0.01, 1.0, (9, 1)) + rng.uniform(-50, 50, (9, 1))).astype(dtype)
    out = np.empty((12, 10))
    kern(np.ascontiguousarray(m, dtype=np.float64), x, 500, out)
    np.testing.assert_allclose(out, ref(m, x, 500), rtol=1e-9)


def test_qrs_pp_twin(rng):
    kern, ref = KERNELS["qrs_pp"]
    x = rng.standard_normal((12, 3000)).astype(np.float32)
    r = np.array([0, 5, 700, 1500, 2990, 2999], dtype=np.int64)
    out = np.empty((12, r.size))
    kern(x, r, 25, out)
    np.testing.assert_array_equal(out, ref(x, r, 25))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_powerline_twin_bit_identical(rng, dtype):
    """The fused potential divider gives NumPy's three-pass result bit for bit (same
    operations, same order, same precision), for a varying and a constant impedance."""
    kern, ref = KERNELS["powerline"]
    v = rng.standard_normal(3000).astype(dtype)
    for z in (rng.uniform(1e3, 1e6, (9, 3000)).astype(dtype), rng.uniform(1e3, 1e6, (9, 1)).astype(dtype)):
        out = np.empty((9, 3000), dtype=dtype)
        kern(v, z, dtype(1e9), out)
        np.testing.assert_array_equal(out, ref(v, z, 1e9))


def test_mains_sum_twin_bit_identical(rng):
    kern, ref = KERNELS["mains_sum"]
    t = np.arange(4000, dtype=np.float32) / np.float32(500.0)
    tables = np.stack([np.sin(2 * np.pi * 50 * t), np.cos(2 * np.pi * 50 * t), np.sin(2 * np.pi * 150 * t),
                       np.cos(2 * np.pi * 150 * t)]).astype(np.float32)
    coef = rng.uniform(-1, 1, 4).astype(np.float32)
    mod = np.sin(np.float32(0.6) * t + np.float32(1.0))
    out = np.empty(t.size, dtype=np.float32)
    kern(coef, tables, mod, np.float32(0.2), np.float32(87.5), out)
    np.testing.assert_array_equal(out, ref(coef, tables, mod, np.float32(0.2), np.float32(87.5)))


def test_impedance_twin_bit_identical(rng):
    kern, ref = KERNELS["impedance"]
    z_inf = rng.uniform(2e4, 6e4, 9).astype(np.float32)
    dz = rng.uniform(0, 3e5, 9).astype(np.float32)
    decay = np.exp(np.arange(3000, dtype=np.float32) * np.float32(-1e-4))
    out = np.empty((9, 3000), dtype=np.float32)
    kern(z_inf, dz, decay, out)
    np.testing.assert_array_equal(out, ref(z_inf, dz, decay))


def test_add3_twin_bit_identical(rng):
    kern, ref = KERNELS["add3"]
    p, a, b, c = (rng.standard_normal((9, 3000)).astype(np.float32) * s for s in (1.0, 1e-3, 0.3, 1e4))
    out = np.empty_like(p)
    kern(p, a, b, c, out)
    np.testing.assert_array_equal(out, ref(p, a, b, c))


def test_add4_twin_bit_identical(rng):
    kern, ref = KERNELS["add4"]
    p, a, b, c, d = (rng.standard_normal((9, 3000)).astype(np.float32) * s for s in (1.0, 1e-3, 0.3, 1e4, 3e-2))
    out = np.empty_like(p)
    kern(p, a, b, c, d, out)
    np.testing.assert_array_equal(out, ref(p, a, b, c, d))


def test_scale_bins_twin_bit_identical(rng):
    """The drift's bins scaled by a real amplitude as NumPy's complex product gives them,
    signed zeros included (a zero part keeps the sign NumPy's ``(x a - y 0, x 0 + y a)`` gives)."""
    kern, ref = KERNELS["scale_bins"]
    z = rng.standard_normal((9, 2 * 300)).view(np.complex128)
    z.real[:, :8] = [0.0, -0.0, 0.0, -0.0, 1.0, -1.0, 0.0, -0.0]
    z.imag[:, :8] = [0.0, 0.0, -0.0, -0.0, -0.0, 0.0, 2.0, -2.0]
    amp = rng.uniform(0.0, 2.0, 250)
    amp[:3] = [0.0, 1.0, 0.5]
    for first in (0, 1, 3):
        got = z.copy()
        kern(got, amp, first)
        assert got.tobytes() == ref(z, amp, first).tobytes()


def test_electrode_noise_apply_matches_numpy_sum(rng):
    """ElectrodeNoise.apply (fused for three and for four kinds) equals contact * potentials plus
    the kinds summed one after another in float32, for 2 to 5 kinds and a partial contact."""
    from cardiosim.noise import ElectrodeNoise
    phi = rng.standard_normal((9, 2000)).astype(np.float32)
    names = ("white", "activity", "powerline", "em", "drift")
    kinds = {k: (rng.standard_normal((9, 2000)) * 0.1).astype(np.float32) for k in names}
    for n_k in (2, 3, 4, 5):
        for contact in (np.broadcast_to(np.float32(1.0), (9, 2000)), rng.uniform(0, 1, (9, 2000)).astype(np.float32)):
            by = dict(list(kinds.items())[:n_k])
            by["contact"] = np.broadcast_to(np.float32(0.0), (9, 2000))
            en = ElectrodeNoise(by_kind=by, contact=contact, impedance=np.ones((9, 1)), fs=500.0)
            want = phi * contact
            for k in list(kinds)[:n_k]:
                want += kinds[k]
            np.testing.assert_array_equal(en.apply(phi), want)


@pytest.mark.parametrize("montage", ["standard12", "frank", "easi", "limb3", "lead_i"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lead_chunk_var_multi_twin_and_bit_identical(rng, montage, dtype):
    """The planned kernel (every kind in one call, the Wilson terminal summed once per chunk)
    agrees with its NumPy twin and gives :func:`lead_chunk_var_kernel`'s values bit for bit
    (the SNRs stored in datasets must not move), with and without a baseline offset."""
    from cardiosim.leads import make_montage
    from cardiosim.noise._kernels import lead_chunk_var_kernel, lead_plan
    kern, ref = KERNELS["lead_chunk_var_multi"]
    m = np.ascontiguousarray(make_montage(montage).matrix, dtype=np.float64)
    for offset, (n, c) in ((0.0, (5000, 500)), (50.0, (5250, 500)), (3.0, (1001, 128))):
        xs = tuple((rng.standard_normal((m.shape[1], n)) * rng.uniform(1e-4, 10.0, (m.shape[1], 1))
                    + rng.uniform(-offset, offset, (m.shape[1], 1))).astype(dtype) for _ in range(3))
        out = np.empty((3, m.shape[0], n // c))
        kern(*lead_plan(m), xs, c, out)
        np.testing.assert_allclose(out, ref(m, xs, c), rtol=1e-9)
        for i, x in enumerate(xs):
            one = np.empty((m.shape[0], n // c))
            lead_chunk_var_kernel(m, x, c, one)
            np.testing.assert_array_equal(out[i], one)


def test_lead_plan_shares_the_wilson_terminal():
    from cardiosim.leads import make_montage
    from cardiosim.noise._kernels import lead_plan
    term_e, term_w, n_terms, start, save = lead_plan(make_montage("standard12").matrix)
    assert n_terms.tolist() == [2, 2, 2, 3, 3, 3] + [4] * 6
    assert start.tolist() == [0] * 7 + [3] * 5          # V2..V6 start from V1's terminal
    assert save.tolist() == [0] * 6 + [3] + [0] * 5
    np.testing.assert_array_equal(term_e[6, :4], [0, 1, 2, 3])
    # no shared prefix: nothing saved, every lead from its first term
    _, _, _, start, save = lead_plan(np.array([[1.0, -1.0, 0.0], [1.0, 0.0, -1.0]]))
    assert start.tolist() == [0, 0] and save.tolist() == [0, 0]


@pytest.mark.parametrize("n", list(range(1, 20)) + [31, 64, 127, 128, 129, 200, 257, 1000, 5000, 12345])
def test_pairwise_sum_is_numpys_sum(rng, n):
    """The kernels' sum is NumPy's along the last axis bit for bit (its pairwise order), for
    whole rows and for rows cut at both ends (a trimmed mean's slice)."""
    from cardiosim.noise._kernels import pairwise_sum, pairwise_sum_flat
    a = np.sort(rng.standard_normal((20, n)) * 10 ** rng.uniform(-3, 3, (20, n)), axis=-1)
    for row, want in zip(a, a.sum(axis=-1)):
        assert pairwise_sum(row, 0, n) == want
        assert pairwise_sum_flat(row, 0, n) == want
    cut = n // 5
    if n - 2 * cut > 0:
        for row, want in zip(a, a[:, cut:n - cut].sum(axis=-1)):
            assert 0.0 + pairwise_sum(row, cut, n - 2 * cut) == want


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,trim", [(5000, 0.05), (20000, 0.05), (20000, 0.2), (3001, 0.0)])
def test_nstdb_powers_twin_bit_identical(rng, dtype, n, trim):
    """Signal and noise powers in one call equal the NumPy code's (``trimmed_mean`` of the
    QRS peak-to-peak and of the chunk RMS) bit for bit, with cuts of 0 and more values; a
    NaN in the clean leads or a beat outside the record is reported, not measured."""
    from cardiosim.leads import make_montage
    from cardiosim.noise._kernels import lead_plan
    kern, ref = KERNELS["nstdb_powers"]
    m = np.ascontiguousarray(make_montage("standard12").matrix, dtype=np.float64)
    clean = (rng.standard_normal((12, n)) * 0.05).astype(dtype)
    r = np.arange(150, n - 60, 380, dtype=np.int64)
    clean[:, r] += rng.uniform(0.2, 2.0, (12, 1)).astype(dtype)
    xs = tuple((rng.standard_normal((9, n)) * rng.uniform(1e-3, 1.0, (9, 1))
                * np.exp(rng.standard_normal(n) * 0.5)).astype(dtype) for _ in range(3))
    c, h = 500, 25
    cut_s, cut_p = int(trim * r.size), int(trim * (n // c))
    s, p = np.empty(12), np.empty((3, 12))
    assert kern(clean, r, h, cut_s, *lead_plan(m), xs, c, cut_p, s, p) == 0
    s_ref, p_ref = ref(clean, r, h, trim, m, xs, c)
    np.testing.assert_array_equal(s, s_ref)
    np.testing.assert_allclose(p, p_ref, rtol=1e-12)       # the twin's chunk variance is np.var
    # bit for bit the NumPy path of noise.snr on the chunk variances the kernels compute
    from cardiosim.noise._kernels import lead_chunk_var_kernel
    from cardiosim.noise.snr import trimmed_mean
    var = np.empty((3, 12, n // c))
    for i, x in enumerate(xs):
        lead_chunk_var_kernel(m, x, c, var[i])
    np.testing.assert_array_equal(p, trimmed_mean(np.sqrt(var), trim) ** 2)
    bad = clean.copy()
    bad[3, 7] = np.nan
    assert kern(bad, r, h, cut_s, *lead_plan(m), xs, c, cut_p, s, p) == 1
    bad[3, 7] = -np.inf
    assert kern(bad, r, h, cut_s, *lead_plan(m), xs, c, cut_p, s, p) == 1
    late = np.append(r, n).astype(np.int64)
    assert kern(clean, late, h, cut_s, *lead_plan(m), xs, c, cut_p, s, p) == 2


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_all_finite_twin(rng, dtype):
    kern, ref = KERNELS["all_finite"]
    x = rng.standard_normal((12, 5001)).astype(dtype) * dtype(1e30)
    assert kern(x) and ref(x)
    assert kern(x[:, ::3]) and kern(x[::2])          # views of any layout (device.apply passes them)
    for bad in (np.nan, np.inf, -np.inf):
        for pos in ((0, 0), (5, 2500), (11, 5000)):
            y = x.copy()
            y[pos] = bad
            assert kern(y) == ref(y) is False


def test_impedance_decay_twin_bit_identical(rng):
    """The fused impedance (decay product, difference and sum in one pass) equals NumPy's
    float32 passes bit for bit."""
    kern, ref = KERNELS["impedance_decay"]
    z0 = np.exp(rng.uniform(np.log(93e3), np.log(350e3), 9))
    zinf = np.exp(rng.uniform(np.log(20e3), np.log(56e3), 9))
    shape = np.exp(np.arange(3000, dtype=np.float32) * np.float32(-1 / 1200 / 500))
    d0 = np.float32(np.exp(-1234.5 / 1200.0))
    out = np.empty((9, 3000), dtype=np.float32)
    kern(z0, zinf, d0, shape, out)
    np.testing.assert_array_equal(out, ref(z0, zinf, d0, shape))


@pytest.mark.parametrize("seed", range(6))
def test_artefact_ratio_twin_bit_identical(seed):
    """The artefact grading statistics in one pass equal NumPy's (ptp, median, mean of
    squares, sqrt, division, inf for a lead without QRS, thresholds) bit for bit, with odd
    and even numbers of leads and segments, ties and silent clean leads."""
    from cardiosim.noise.textile import load_fit

    kern, ref = KERNELS["artefact_ratio"]
    thr = np.asarray(load_fit()["grading_rule"]["thresholds_noise_to_qrs"], dtype=np.float64)
    rng = np.random.default_rng(seed)
    for trial in range(120):
        n_l, n_seg, seg = int(rng.integers(1, 14)), int(rng.integers(1, 8)), int(rng.integers(1, 300))
        filt = rng.standard_normal((2 * n_l, n_seg * seg + int(rng.integers(0, 40)))) * 10 ** rng.uniform(-3, 1)
        filt[:n_l] *= 10 ** rng.uniform(-3, 1)
        if trial % 5 == 0:
            filt[n_l + int(rng.integers(0, n_l))] = 0.0               # no QRS: unreadable (inf)
        if trial % 7 == 0:
            filt = np.round(filt, 1)                                  # ties in the medians
        ratio, grades = np.empty(n_seg), np.empty(n_seg, np.int8)
        record = kern(filt, n_l, n_seg, seg, thr, ratio, grades)
        want_ratio, want_grades, want_record = ref(filt, n_l, n_seg, seg, thr)
        np.testing.assert_array_equal(ratio.view(np.int64), want_ratio.view(np.int64))
        np.testing.assert_array_equal(grades, want_grades)
        assert record == want_record


def test_artefact_ratio_kernel_loads_from_numbas_cache(tmp_path):
    """A kernel calling the recursive pairwise sum could be compiled but not loaded back from
    numba's cache (an LLVM 'unresolved symbol' abort in the next process); the artefact
    kernel uses the flat sum: a second process loads it and gets the same numbers."""
    import os
    import subprocess
    import sys

    code = ("import numpy as np\n"
            "from cardiosim.noise._kernels import artefact_ratio_kernel\n"
            "f = np.random.default_rng(1).standard_normal((4, 3000))\n"
            "r, g = np.empty(3), np.empty(3, np.int8)\n"
            "print(artefact_ratio_kernel(f, 2, 3, 1000, np.array([0.1, 0.2, 0.4]), r, g), r.tolist())\n")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    outs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
            for _ in range(2)]
    assert all(o.returncode == 0 for o in outs), [o.stderr[-500:] for o in outs]
    assert outs[0].stdout == outs[1].stdout and any(tmp_path.rglob("*.nbi"))


def _snr_db_c_log10(s, p):
    """``snr_db_ref`` with the C library's ``log10`` (the kernel's): NumPy's where NumPy's
    ``log10`` is the C library's, which it is not everywhere (SVML's on AVX-512)."""
    import math

    log10 = np.frompyfunc(math.log10, 1, 1)
    lead = 10 * log10(s / p).astype(np.float64)
    pooled = 10 * log10(s.sum() / p.sum(axis=1)).astype(np.float64)
    return np.concatenate([pooled[:, None], lead], axis=1).ravel()


@pytest.mark.parametrize("n_k,n_l", [(4, 12), (1, 1), (3, 7), (2, 8), (5, 15), (1, 200)])
def test_snr_db_twin_bit_identical(rng, n_k, n_l):
    """The realised SNRs in one kernel call are the NumPy expressions with the C library's
    ``log10`` bit for bit (pairwise sums of 1-200 leads), NumPy's own wherever the
    once-per-process check lets ``scale_electrode_noise`` use the kernel, and nothing is
    written when a power is zero or NaN."""
    from cardiosim.noise.snr import _snr_db_kernel_matches
    kern, ref = KERNELS["snr_db"]
    uses_kernel = _snr_db_kernel_matches()
    for _ in range(10):
        s = 10.0 ** rng.uniform(-8, 2, n_l)
        p = 10.0 ** rng.uniform(-12, 3, (n_k, n_l))
        out = np.empty(n_k * (1 + n_l))
        assert kern(s, p, out)
        assert out.tobytes() == _snr_db_c_log10(s, p).tobytes()
        if uses_kernel:
            assert out.tobytes() == ref(s, p).tobytes()
    for bad in (0.0, np.nan, -1.0):
        p2 = p.copy()
        p2[-1, -1] = bad
        out = np.full(n_k * (1 + n_l), 7.0)
        assert not kern(s, p2, out) and ref(s, p2) is None and np.all(out == 7.0)
    # the check turns the kernel off only where NumPy's log10 is not the C library's
    import math
    x = 10.0 ** np.random.default_rng(20261207).uniform(-14, 14, 100_000)
    assert uses_kernel or np.log10(x).tobytes() != np.array([math.log10(v) for v in x]).tobytes()


def test_burst_kernels_twins_bit_identical(rng):
    kern, ref = KERNELS["burst_arg"]
    for lo, c, hw, n in ((0, 12.3, 55.5, 400), (1234, 1700.71, 150.2, 1801), (4000, 4999.9, 40.0, 1000)):
        out = np.empty(n, dtype=np.float32)
        kern(lo, np.float32(c), np.float32(hw), out)
        assert out.tobytes() == ref(lo, np.float32(c), np.float32(hw), n).tobytes()
    kern, ref = KERNELS["add_scaled"]
    env = rng.uniform(0, 1, 3000).astype(np.float32)
    x = rng.uniform(0, 1, 700).astype(np.float32)
    got = env.copy()
    kern(got, 1500, np.float32(0.731), x)
    assert got.tobytes() == ref(env, 1500, np.float32(0.731), x).tobytes()


def test_envelope_without_motion_matches_numpy_passes():
    """The muscle envelope at rest (bursts by two kernels around NumPy's exp) equals its NumPy
    twin bit for bit and leaves the Generator where it does, over 400 records at four rates."""
    from cardiosim.noise.electrode import _envelope_without_motion, _envelope_without_motion_ref
    bursts = 0
    for seed in range(100):
        for n, fs in ((5000, 500.0), (2500, 250.0), (3600, 360.0), (30000, 500.0)):
            a, b = np.random.default_rng(seed), np.random.default_rng(seed)
            got, want = _envelope_without_motion(a, n, fs), _envelope_without_motion_ref(b, n, fs)
            assert got.dtype == want.dtype == np.float32 and got.tobytes() == want.tobytes()
            assert a.random() == b.random()
            bursts += int(np.any(got != np.float32(0.1)))
    assert bursts > 200


def test_sum_f32_as_f64_twin_bit_identical(rng):
    """NumPy's float64 sum of float32 values (one cast buffer up to 8,192 values): the muscle
    envelope's mean in the contact kind."""
    kern, ref = KERNELS["sum_f32_as_f64"]
    for n in list(range(1, 140)) + [255, 256, 257, 1280, 2500, 3600, 5000, 8191, 8192]:
        x = (rng.uniform(0.0, 2.0, n) ** 3).astype(np.float32)
        assert np.float64(kern(x)).tobytes() == np.float64(ref(x)).tobytes(), n


@pytest.mark.parametrize("n_k,n_l", [(4, 12), (1, 1), (3, 7), (2, 8), (5, 15), (1, 200), (9, 40)])
def test_snr_db_loop_twin_bit_identical(rng, n_k, n_l):
    """The realised SNRs with NumPy's own ``log10`` loop called from the kernel
    (``snr_db_loop_kernel``; where ``np_log10_loop`` confirmed the loop here) are the NumPy
    expressions bit for bit on every machine, and nothing is written when a power is zero
    or NaN."""
    from cardiosim._exp_kernels import np_log10_loop
    from cardiosim.noise._kernels import snr_db_loop_kernel, snr_db_ref

    loop = np_log10_loop()
    if loop is None:
        pytest.skip("NumPy's log10 loop is not callable from kernels here: the NumPy lines run")
    for _ in range(10):
        s = 10.0 ** rng.uniform(-8, 2, n_l)
        p = 10.0 ** rng.uniform(-12, 3, (n_k, n_l))
        out = np.empty(n_k * (1 + n_l))
        assert snr_db_loop_kernel(s, p, out, loop)
        assert out.tobytes() == snr_db_ref(s, p).tobytes()
    for bad in (0.0, np.nan, -1.0):
        p2 = p.copy()
        p2[-1, -1] = bad
        out = np.full(n_k * (1 + n_l), 7.0)
        assert not snr_db_loop_kernel(s, p2, out, loop) and np.all(out == 7.0)


def test_snr_db_form_gives_the_numpy_lines_whichever_form_this_machine_takes(rng):
    """``scale_electrode_noise``'s measured SNRs (the fast path, in the form ``_snr_db_form``
    chose here: the C library's log10, NumPy's loop, or none) equal the NumPy lines' (the
    form forced to None) bit for bit, key for key."""
    from cardiosim.leads import make_montage
    from cardiosim.noise import NoiseConfig, simulate_electrode_noise
    from cardiosim.noise import snr as snr_mod

    fs, n = 500.0, 5000
    m = make_montage("standard12")
    r = np.arange(200, n - 100, 400)
    phi = np.zeros((9, n))
    for q in r:
        phi[:, q - 10:q + 10] += np.hanning(20) * rng.uniform(0.2, 1.0, (9, 1))
    clean = m.apply(phi)
    en = simulate_electrode_noise(9, n, fs, rng, NoiseConfig(kinds=("white", "bw", "em", "emg", "powerline")))
    form = snr_mod._snr_db_form()
    got = snr_mod.scale_electrode_noise(en, m, clean, r_peaks=r, snr_db={})   # every kind measured
    saved = list(snr_mod._SNR_DB_FORM)
    snr_mod._SNR_DB_FORM[:] = [None]
    try:
        want = snr_mod.scale_electrode_noise(en, m, clean, r_peaks=r, snr_db={})
    finally:
        snr_mod._SNR_DB_FORM[:] = saved
    assert list(got.params) == list(want.params)
    keys = [k for k in want.params if k.startswith(("snr_db.", "snr_lead_db."))]
    assert len(keys) > 4 * 12
    assert np.array([got.params[k] for k in keys]).tobytes() == np.array([want.params[k] for k in keys]).tobytes()
    assert form is None or form[0] in ("kernel", "loop")
