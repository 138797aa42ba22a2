"""``_rng_kernels.seed_state_kernel`` is NumPy's ``SeedSequence`` hash, and the dataset plan's
generators built from it (``plan._SeedWords``) behave as ``default_rng(SeedSequence(...))``."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

from cardiosim.dataset import plan
from cardiosim.ode._rng_kernels import KERNELS, seed_state_kernel, seed_state_numpy


def test_seed_state_kernel_equals_seed_sequence():
    assert KERNELS["seed_state"] == (seed_state_kernel, seed_state_numpy)
    rng = np.random.default_rng(0)
    cases = [np.array([], np.uint32), np.array([0], np.uint32), np.array([2 ** 32 - 1] * 9, np.uint32)]
    for _ in range(3000):
        n = int(rng.integers(1, 10))
        hi = 2 ** 32 if rng.random() < 0.5 else 100
        cases.append(rng.integers(0, hi, n, dtype=np.uint64).astype(np.uint32))
    for e in cases:
        for words in (4, 1, 7):
            a, b = np.empty(words, np.uint64), np.empty(words, np.uint64)
            seed_state_kernel(e, a)
            seed_state_numpy(e, b)
            assert a.tobytes() == b.tobytes(), e


@pytest.mark.parametrize("words", [(0, 0), (1, 5, 1), (7, 2 ** 32 - 1, 2), (12345, 99999, 3)])
def test_seed_words_generator_is_default_rng(words):
    got = plan._generator(*words)
    want = np.random.default_rng(np.random.SeedSequence(list(words)))
    assert isinstance(got.bit_generator.seed_seq, plan._SeedWords)
    assert got.bit_generator.state == want.bit_generator.state
    seq, ref = got.bit_generator.seed_seq, want.bit_generator.seed_seq
    assert np.array_equal(seq.entropy, ref.entropy) and seq.spawn_key == ref.spawn_key
    assert np.array_equal(seq.pool, ref.pool) and seq.pool_size == ref.pool_size
    assert seq.generate_state(4, np.uint64).tobytes() == ref.generate_state(4, np.uint64).tobytes()
    assert seq.generate_state(3).tobytes() == ref.generate_state(3).tobytes()
    # spawned children as a SeedSequence spawns them (counted across calls)
    for n in (2, 1):
        for a, b in zip(got.spawn(n), want.spawn(n)):
            assert a.random(3).tobytes() == b.random(3).tobytes()
    assert got.random(5).tobytes() == want.random(5).tobytes()
    for clone in (pickle.loads(pickle.dumps(got)), copy.deepcopy(got)):
        assert clone.bit_generator.state == got.bit_generator.state
    assert "SeedSequence" in repr(seq)
