"""The noise stage's faster draws give the numbers of the slower ones bit for bit: the
branch-free sign of the 256-layer ziggurat, PCG64 normals written in place
(``_pcg64_kernels.standard_normal_into``), and the drift's direct ``c2r``."""

import numpy as np
import pytest

from cardiosim import _pcg64_kernels as P
from cardiosim.noise import _kernels as K


def _zig256_fast_select(v):
    """The ziggurat's fast-path value with the sign by a select (the kernel's earlier form)."""
    v = int(v)
    x = (v >> 9) * K.ZIG256_WI[v & 0xFF]
    return -x if (v >> 8) & 1 else x


def test_zig256_sign_as_product_is_negation_bit_for_bit():
    """``x * (1 - 2 sign)`` is ``-x`` exactly, -0.0 included (a zero magnitude with the sign set)."""
    rng = np.random.default_rng(4)
    vs = np.concatenate([np.array([0, 1, 255, 256, 257, 511, 2**32 - 1, 2**31, 2**31 + 256], dtype=np.uint32),
                         rng.integers(0, 2**32, 5000, dtype=np.uint32)])
    for v in vs:
        got = K._zig256_fast(np.uint32(v), K.ZIG256_WI)
        want = _zig256_fast_select(v)
        assert np.float64(got).tobytes() == np.float64(want).tobytes(), int(v)
    assert np.signbit(K._zig256_fast(np.uint32(256), K.ZIG256_WI))


@pytest.mark.parametrize("shape", [1, 7, 1000, (3, 500), (9, 436), (0, 5)])
def test_standard_normal_into_matches_numpy(shape):
    for seed in (0, 1, 2**63 + 5):
        a, b = np.random.default_rng(seed), np.random.default_rng(seed)
        out = np.full(shape, 7.0)
        assert P.standard_normal_into(a, out) is out
        assert out.tobytes() == b.standard_normal(shape).tobytes()
        assert a.random() == b.random() and a.integers(1 << 40) == b.integers(1 << 40)


def test_standard_normal_into_strided_targets():
    """A slice of a complex spectrum's float view (the drift's bins 1 .. k) and a strided 1-D
    view are filled in place, in C order, with NumPy's numbers; nothing else is written."""
    a, b = np.random.default_rng(9), np.random.default_rng(9)
    z = np.zeros((9, 257), dtype=np.complex128)
    P.standard_normal_into(a, z.view(np.float64)[:, 2:2 * 218 + 2])
    want = np.zeros_like(z)
    want[:, 1:219] = b.standard_normal((9, 2 * 218)).view(np.complex128)
    assert z.tobytes() == want.tobytes()
    x = np.zeros(31)
    P.standard_normal_into(a, x[1::3])
    assert x[1::3].tobytes() == b.standard_normal(10).tobytes() and not np.any(x[0::3]) and not np.any(x[2::3])


def test_standard_normal_into_wedges_and_tails():
    a, b = np.random.default_rng(99), np.random.default_rng(99)
    got = P.standard_normal_into(a, np.empty((4, 250_000)))
    want = b.standard_normal((4, 250_000))
    assert np.sum(np.abs(want) > P.NOR_R) > 50
    assert got.tobytes() == want.tobytes()


def test_standard_normal_into_other_bit_generators_and_dtypes_use_numpy():
    for bg in (np.random.SFC64, np.random.Philox, np.random.MT19937):
        a, b = np.random.Generator(bg(5)), np.random.Generator(bg(5))
        assert P.standard_normal_into(a, np.empty((2, 9))).tobytes() == b.standard_normal((2, 9)).tobytes()
    a, b = np.random.default_rng(2), np.random.default_rng(2)
    out = P.standard_normal_into(a, np.empty(11, dtype=np.float32))
    np.testing.assert_array_equal(out, b.standard_normal(11).astype(np.float32))
    assert P.pcg64_draws_match()


def test_drift_c2r_is_numpys_irfft():
    from cardiosim.noise.drift import _c2r_matching_irfft
    for m, rows in ((512, 9), (1024, 12), (256, 1)):
        c2r = _c2r_matching_irfft(m, rows)
        assert c2r is not None
        z = np.random.default_rng(m + rows).standard_normal((rows, 2 * (m // 2 + 1))).view(np.complex128)
        z[:, 0] = 0.0
        assert c2r(z, (1,), m, False, 2, None, 1).tobytes() == np.fft.irfft(z, m, axis=1).tobytes()


def test_standard_normal_into_remembered_address_follows_the_generator():
    """The remembered address is the last generator's: fresh generators (their memory reused),
    two generators alternating and a state reset all draw NumPy's numbers."""
    for i in range(300):
        a, b = np.random.default_rng(i), np.random.default_rng(i)
        assert P.standard_normal_into(a, np.empty(5)).tobytes() == b.standard_normal(5).tobytes()
        del a, b
    a1, b1 = np.random.default_rng(1), np.random.default_rng(1)
    a2, b2 = np.random.default_rng(2), np.random.default_rng(2)
    for _ in range(3):
        assert P.standard_normal_into(a1, np.empty(3)).tobytes() == b1.standard_normal(3).tobytes()
        assert P.standard_normal_into(a2, np.empty(3)).tobytes() == b2.standard_normal(3).tobytes()
    a1.bit_generator.state = b2.bit_generator.state
    assert P.standard_normal_into(a1, np.empty(4)).tobytes() == b2.standard_normal(4).tobytes()
