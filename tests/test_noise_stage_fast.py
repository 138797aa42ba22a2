"""The faster kernels of the noise stage (issue 16) give the values of the kernels they replace
bit for bit: each new kernel against the old one (its oracle, itself tested against a NumPy or
pure-Python twin elsewhere) and against that twin, over shapes, scales and the values that
take a branch."""

from __future__ import annotations

import numpy as np
import pytest

from cardiosim.noise._kernels import KERNELS, ZIG256_FI, ZIG256_KI, ZIG256_WI


# --- normals: the split ziggurat kernel -----------------------------------------------------

@pytest.mark.parametrize("rows, cols", [(1, 1), (1, 2), (2, 1), (3, 7), (4, 7), (5, 1), (9, 2), (3, 201),
                                        (2, 2049), (9, 5000), (9, 2402)])
def test_split_normals_equal_the_one_loop_kernel(rng, rows, cols):
    """Every row length (odd lengths: a row that ends on a low half hands the high half to the
    next row), float32 and float64, contiguous and strided rows, a column scale or ones: the
    split kernel writes what :func:`seeded_normal_kernel` writes, and nothing beyond the scale."""
    from cardiosim.noise._kernels import seeded_normal_kernel, seeded_normal_split_kernel
    for seed in (0, 1, 2**63 + 12345, 2**64 - 1, 987654321):
        rs = rng.uniform(0.1, 3.0, rows)
        for cs in (rng.uniform(0.1, 3.0, cols), np.ones(cols)):
            for dtype in (np.float32, np.float64):
                for strided in (False, True):
                    a = np.full((rows, 2 * cols + 6), 9.0, dtype=dtype)
                    b = a.copy()
                    wa, wb = (a[:, :cols + 3], b[:, :cols + 3]) if strided else (a, b)
                    seeded_normal_kernel(np.uint64(seed), rs, cs, wa, ZIG256_KI, ZIG256_WI, ZIG256_FI)
                    seeded_normal_split_kernel(np.uint64(seed), rs, cs, wb, ZIG256_KI, ZIG256_WI, ZIG256_FI)
                    assert a.tobytes() == b.tobytes()


def test_split_normals_twin(rng):
    """The split kernel against the pure-Python oracle (rejections on both streams: a few
    thousand samples take the wedge and tail paths)."""
    kern, ref = KERNELS["seeded_normal_split"]
    for seed, rows, cols in ((0, 3, 3000), (2**64 - 1, 2, 5), (123456789, 1, 4101)):
        rs = rng.uniform(0.1, 3.0, rows)
        cs = rng.uniform(0.1, 3.0, cols)
        out = np.full((rows, cols + 7), 9.0, dtype=np.float32)
        kern(np.uint64(seed), rs, cs, out, ZIG256_KI, ZIG256_WI, ZIG256_FI)
        np.testing.assert_array_equal(out[:, :cols], ref(seed, rs, cs))
        assert np.all(out[:, cols:] == 9.0)


def test_split_normals_slow_path_share():
    """The seeds above do reach the slow path (about 1.5 % of the candidates fall outside their
    layer's rectangle): a large draw equals the one-loop kernel's, tails included."""
    from cardiosim.noise._kernels import seeded_normal_kernel, seeded_normal_split_kernel
    a = np.empty((4, 100_001))
    b = np.empty((4, 100_001))
    seeded_normal_kernel(np.uint64(42), np.ones(4), np.ones(100_001), a, ZIG256_KI, ZIG256_WI, ZIG256_FI)
    seeded_normal_split_kernel(np.uint64(42), np.ones(4), np.ones(100_001), b, ZIG256_KI, ZIG256_WI, ZIG256_FI)
    assert a.tobytes() == b.tobytes()
    assert np.abs(a).max() > 3.6541528853610088          # a tail value (beyond R) among them


def test_public_draws_unchanged():
    """``standard_normal`` and ``normals_scaled`` (now on the split kernel) draw the one-loop
    kernel's numbers from the same single seed."""
    from cardiosim.noise._kernels import (draw_seed, normals_scaled, ones, seeded_normal_kernel,
                                          standard_normal)
    seed = draw_seed(np.random.default_rng(11))
    want = np.empty((1, 9 * 777), dtype=np.float32)
    seeded_normal_kernel(seed, np.ones(1), ones(9 * 777), want, ZIG256_KI, ZIG256_WI, ZIG256_FI)
    assert standard_normal(np.random.default_rng(11), (9, 777)).tobytes() == want.reshape(9, 777).tobytes()
    amp = np.linspace(1e-3, 2e-3, 9)
    want = np.empty((9, 5000), dtype=np.float32)
    seeded_normal_kernel(seed, amp, ones(5000), want, ZIG256_KI, ZIG256_WI, ZIG256_FI)
    got = normals_scaled(np.random.default_rng(11), amp, ones(5000), np.empty((9, 5000), dtype=np.float32))
    assert got.tobytes() == want.tobytes()


# --- the noisy and noiseless leads in one call ----------------------------------------------

def _kinds(rng, n_e, n, pattern):
    """``(arrays, which, consts)`` as ``simulate._noise_kinds`` gives them for a pattern of kinds
    (an array, or a float: a broadcast constant)."""
    arrays, which, consts, full = [], [], [], []
    for p in pattern:
        if p is None:
            a = (rng.standard_normal((n_e, n)) * rng.uniform(1e-3, 2.0)).astype(np.float32)
            which.append(len(arrays))
            arrays.append(a)
            consts.append(0.0)
            full.append(a)
        else:
            which.append(-1)
            consts.append(p)
            full.append(np.broadcast_to(np.float32(p), (n_e, n)))
    return (tuple(arrays), np.array(which, dtype=np.int64), np.array(consts, dtype=np.float32)), full


@pytest.mark.parametrize("montage", ["standard12", "frank", "easi", "limb3", "lead_i"])
@pytest.mark.parametrize("pattern", [(None,), (None, None), (None, None, None, 0.0, None), (0.5, None, None),
                                     (None, -0.0, None, None, None, None, 2.0, None, None), (None,) * 9])
@pytest.mark.parametrize("unit", [True, False])
def test_stage_leads_equal_the_device_kernels(rng, montage, pattern, unit):
    """Both sets of leads equal what the device kernels write (``noisy_sum_montage_rows_kernel``
    for the noisy rows, ``montage_rows_kernel`` for the noiseless ones) bit for bit, for every
    grouping of the kinds (one to nine, constants anywhere), with and without a contact mask,
    and the NumPy twin (the ``ElectrodeNoise`` sums and ``einsum``) to rounding."""
    from cardiosim.device._kernels import montage_rows_kernel, noisy_sum_montage_rows_kernel
    from cardiosim.leads import make_montage
    from cardiosim.noise._kernels import leads_limit
    kern, ref = KERNELS["stage_leads"]
    m = np.ascontiguousarray(make_montage(montage).matrix, dtype=np.float64)
    n_l, n_e = m.shape
    for n in (5000, 1234, 511, 1):
        phi = rng.standard_normal((n_e, n)) * 2.0
        kinds, full = _kinds(rng, n_e, n, pattern)
        contact = (np.broadcast_to(np.float32(1.0), (n_e, n)) if unit
                   else rng.uniform(0.0, 1.0, (n_e, n)).astype(np.float32))
        got = np.full((2 * n_l, n), np.nan)
        stage = got[n_l:n_l + n_e] if n_l >= n_e else np.full((n_e, n), np.nan)
        assert kern(m, phi, contact, unit, *kinds, leads_limit(m), got, stage) == 0
        want = np.full((2 * n_l, n), np.nan)
        assert noisy_sum_montage_rows_kernel(m, phi, contact, unit, *kinds, want, 0) == 0
        assert montage_rows_kernel(m, phi, want, n_l) == 0
        assert got.tobytes() == want.tobytes()
        noisy, clean = ref(m, phi, contact, full)
        np.testing.assert_allclose(got[:n_l], noisy, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(got[n_l:], clean, rtol=1e-12, atol=1e-12)


def test_stage_leads_report_what_they_do_not_cover(rng):
    """A non-finite or huge electrode value (noiseless or noisy) is counted, so the caller takes
    the device kernels' path and its own finiteness check; the limit keeps every lead finite."""
    from cardiosim.leads import make_montage
    from cardiosim.noise._kernels import leads_limit
    kern, _ = KERNELS["stage_leads"]
    m = np.ascontiguousarray(make_montage("standard12").matrix, dtype=np.float64)
    lim = leads_limit(m)
    assert 1e290 < lim < 1e300
    n = 2000
    kinds, _ = _kinds(rng, 9, n, (None, None, 0.0))
    one = np.broadcast_to(np.float32(1.0), (9, n))
    rows = np.empty((24, n))
    for bad in (np.nan, np.inf, -np.inf, 2 * lim):
        phi = rng.standard_normal((9, n))
        phi[4, 777] = bad
        assert kern(m, phi, one, True, *kinds, lim, rows, rows[12:21]) >= 1
    noisy_bad = (kinds[0][0].copy(),) + kinds[0][1:]
    noisy_bad[0][2, 5] = np.inf
    assert kern(m, rng.standard_normal((9, n)), one, True, noisy_bad, kinds[1], kinds[2], lim, rows, rows[12:21]) == 1
    phi = np.full((9, n), lim)                  # the largest values the kernel passes: finite leads
    phi[::2] = -lim
    zero = (np.zeros((9, n), dtype=np.float32),), np.array([0, -1], dtype=np.int64), np.zeros(2, dtype=np.float32)
    assert kern(m, phi, one, True, *zero, lim, rows, np.empty((9, n))) == 0
    assert np.all(np.isfinite(rows))


def test_stage_leads_wrapper_declines_what_it_does_not_cover(rng):
    """``_stage_leads_into`` gives the kernel's leads (a montage with fewer leads than
    electrodes staged in a buffer of its own) and declines (False) a contact of the wrong
    shape or a leads buffer too small."""
    from cardiosim.leads import make_montage
    from cardiosim.noise.electrode import ElectrodeNoise, _stage_leads_into
    n = 1000
    kinds, full = _kinds(rng, 9, n, (None, None))
    en = ElectrodeNoise(by_kind={"white": full[0], "activity": full[1]},
                        contact=np.broadcast_to(np.float32(1.0), (9, n)), impedance=np.ones((9, 1)), fs=500.0)
    m = np.ascontiguousarray(make_montage("standard12").matrix, dtype=np.float64)
    rows = np.empty((24, n))
    phi = rng.standard_normal((9, n))
    assert _stage_leads_into(m, phi, en, kinds, rows)
    want = rows.copy()
    few = np.empty((6, n))
    assert _stage_leads_into(np.ascontiguousarray(m[:3]), phi, en, kinds, few)
    assert few[:3].tobytes() == want[:3].tobytes() and few[3:].tobytes() == want[12:15].tobytes()
    assert not _stage_leads_into(m, phi, en, kinds, np.empty((20, n)))
    en_bad = ElectrodeNoise(by_kind=en.by_kind, contact=np.ones((9, 1), dtype=np.float32),
                            impedance=np.ones((9, 1)), fs=500.0)
    assert not _stage_leads_into(m, rng.standard_normal((9, n)), en_bad, kinds, rows)
