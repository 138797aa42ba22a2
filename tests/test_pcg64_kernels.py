"""cardiosim._pcg64_kernels: Generator.standard_normal bit for bit from an inline PCG64."""

import threading

import numpy as np
import pytest

from cardiosim import _pcg64_kernels as K


def test_draws_match_numpy_on_this_machine():
    assert K.pcg64_draws_match()


@pytest.mark.parametrize("shape", [1, 7, (3, 5000), (30, 502), (2, 3, 4), 0, (0, 5)])
def test_same_numbers_and_stream_position_as_numpy(shape):
    for seed in (0, 1, 123456789, 2**63 + 5):
        a, b = np.random.default_rng(seed), np.random.default_rng(seed)
        got, want = K.standard_normal(a, shape), b.standard_normal(shape)
        assert got.dtype == want.dtype == np.float64 and got.shape == want.shape
        assert got.tobytes() == want.tobytes()
        # the stream continues where NumPy's does, for every kind of draw after it
        assert a.random() == b.random() and a.integers(1 << 40) == b.integers(1 << 40)
        assert a.standard_normal(3).tobytes() == b.standard_normal(3).tobytes()


def test_wedge_and_tail_draws_are_exercised_and_identical():
    """10^6 normals reach the ziggurat's slow paths (~1 % wedges, ~0.03 % beyond the
    tail radius 3.654): the kernel must follow NumPy through them too."""
    a, b = np.random.default_rng(99), np.random.default_rng(99)
    got, want = K.standard_normal(a, 1_000_000), b.standard_normal(1_000_000)
    assert np.sum(np.abs(want) > K.NOR_R) > 50
    assert got.tobytes() == want.tobytes()


def test_other_bit_generators_fall_back_to_numpy():
    for bg in (np.random.SFC64, np.random.Philox, np.random.PCG64DXSM, np.random.MT19937):
        a, b = np.random.Generator(bg(5)), np.random.Generator(bg(5))
        assert K._pcg64_address(a) is None
        assert K.standard_normal(a, (2, 9)).tobytes() == b.standard_normal((2, 9)).tobytes()


def test_generator_shared_by_threads_gives_numpys_multiset():
    """Threads drawing from one generator take turns on its lock: together they draw the
    numbers NumPy's calls would (in some order of whole calls), none twice or torn."""
    rng = np.random.default_rng(3)
    chunks, n, calls = [], 4096, 8

    def work():
        for _ in range(calls):
            chunks.append(K.standard_normal(rng, n))

    ts = [threading.Thread(target=work) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    want = np.random.default_rng(3).standard_normal(4 * calls * n).reshape(-1, n)
    got = np.array(sorted(chunks, key=lambda c: c[0]))
    assert np.array_equal(got, want[np.argsort(want[:, 0])])
