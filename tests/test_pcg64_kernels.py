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


# --- draw_program: several generators' draws in one kernel call ------------------------------

PROGRAMS = [((K.RANDOM, 2), (K.NORMAL, 502), (K.RANDOM, 2), (K.NORMAL, 13554), (K.RANDOM, 9), (K.NORMAL, 15000)),
            ((K.RAW, 1), (K.RANDOM, 19), (K.RAW, 1), (K.NORMAL, 1001), (K.RAW, 1), (K.RANDOM, 5), (K.POISSON, 9),
             (K.POISSON, 9), (K.NORMAL, 1), (K.NORMAL, 400)),
            ((K.POISSON, 500), (K.RAW, 3), (K.POISSON, 1)),
            ((K.NORMAL, 1),), ((K.RANDOM, 1),), ((K.RANDOM, 0), (K.NORMAL, 0), (K.POISSON, 0), (K.RANDOM, 5)), ()]
SEEDS = [0, 1, 7, 123456789, 2**63 + 5, 42, 99, 2026]


def _lams(program, n_rec, seed=0):
    """Poisson rates over NumPy's multiplication method's range: 0 (no draw), tiny, up to 9.99."""
    n_p = sum(k == K.POISSON for k, _ in program)
    lam = np.random.default_rng(seed).choice([0.0, 1e-4, 0.05, 0.3, 1.0, 2.7, 6.0, 9.99], (n_rec, n_p))
    return lam


def test_draw_program_matches_numpy_on_this_machine():
    assert K.draw_program_matches()


@pytest.mark.parametrize("program", PROGRAMS)
def test_draw_program_equals_numpy_draws_and_stream_positions(program):
    """Kernel against its NumPy twin (``random``, ``standard_normal``, ``random_raw``, ``poisson``
    in program order, generator after generator): the same bits, and every stream left where
    NumPy leaves it (checked by the next draws of other kinds, ``integers`` and ``uniform``
    included)."""
    mine = [np.random.default_rng(s) for s in SEEDS]
    ref = [np.random.default_rng(s) for s in SEEDS]
    for rnd in range(2):
        lams = _lams(program, len(SEEDS), rnd)
        got = K.draw_program(mine, program, lams)
        want = K.draw_program_ref(ref, program, lams)
        for a, b in zip(got, want):
            assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    for a, b in zip(mine, ref):
        assert a.bit_generator.state == b.bit_generator.state
        assert a.integers(5, 1000) == b.integers(5, 1000) and a.uniform(0.2, 0.9) == b.uniform(0.2, 0.9)


def test_draw_program_poisson_equals_generator_poisson():
    """Poisson counts against ``Generator.poisson`` itself (not the twin), at rates through
    the multiplication method's range; at 10 and above (NumPy's PTRS) the call draws
    through NumPy."""
    for lam in (0.0, 1e-3, 0.17, 1.0, 4.5, 9.999, 10.0, 35.0):
        a, b = np.random.default_rng(11), np.random.default_rng(11)
        got = K.draw_program([a], ((K.POISSON, 2000), (K.RANDOM, 1)), [[lam]])
        assert got.k.tobytes() == b.poisson(lam, (1, 2000)).astype(np.int64).tobytes(), lam
        assert got.u[0, 0] == b.random(), lam


def test_draw_program_tail_and_wedge_paths_and_uniform_values():
    """Long normal runs reach the ziggurat's slow paths; a ``random()`` value turned into
    ``Generator.uniform(lo, hi)`` as ``lo + (hi - lo) * u`` is NumPy's ``uniform`` value;
    a raw word is ``random_raw``'s."""
    a, b = [np.random.default_rng(5)], [np.random.default_rng(5)]
    got = K.draw_program(a, ((K.NORMAL, 300_000), (K.RANDOM, 1000), (K.RAW, 4)))
    assert np.sum(np.abs(got.z) > K.NOR_R) > 10
    assert got.z.tobytes() == b[0].standard_normal((1, 300_000)).tobytes()
    lo, hi = 0.7, 1.3
    assert (lo + (hi - lo) * got.u[0]).tobytes() == b[0].uniform(lo, hi, 1000).tobytes()
    assert got.raw[0].tolist() == b[0].bit_generator.random_raw(4).tolist()


def test_draw_program_one_generator_twice_and_other_bit_generators():
    """The same generator twice draws its program twice in a row, as NumPy would; generators
    on other bit generators draw through NumPy (the same numbers)."""
    program = ((K.RANDOM, 3), (K.NORMAL, 4), (K.POISSON, 6), (K.RAW, 2))
    g, h = np.random.default_rng(3), np.random.default_rng(3)
    got = K.draw_program([g, g], program, [[2.0], [0.5]])
    want = K.draw_program_ref([h, h], program, [[2.0], [0.5]])
    assert all(a.tobytes() == b.tobytes() for a, b in zip(got, want))
    for bg in (np.random.Philox, np.random.MT19937):
        a, b = np.random.Generator(bg(5)), np.random.Generator(bg(5))
        got = K.draw_program([a], ((K.NORMAL, 10), (K.RANDOM, 2)))
        assert got.z.tobytes() == b.standard_normal((1, 10)).tobytes() and got.u.tobytes() == b.random((1, 2)).tobytes()
    assert [a.shape for a in K.draw_program([], ((K.RANDOM, 2),))] == [(0, 2), (0, 0), (0, 0), (0, 0)]


def test_draw_program_rejects_a_bad_program():
    from cardiosim.errors import ConfigError

    with pytest.raises(ConfigError, match="draw program"):
        K.draw_program([np.random.default_rng(0)], ((7, 3),))
    with pytest.raises(ConfigError, match="draw program"):
        K.draw_program([np.random.default_rng(0)], ((K.RANDOM, -1),))
    with pytest.raises(ConfigError, match="lams"):
        K.draw_program([np.random.default_rng(0)], ((K.POISSON, 1),))
