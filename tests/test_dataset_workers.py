"""Forked local workers: one BLAS thread held across the fork, the warm-up record skipped
in a process that is already warm. Structure only -- the speed is the benchmark's
(benchmarks/bench_generate.py), never asserted here."""

import sys

import pytest

from cardiosim.dataset import Recipe, generate
from cardiosim.dataset.io import read_manifest

threadpoolctl = pytest.importorskip("threadpoolctl")

gen = sys.modules["cardiosim.dataset.generate"]
RECIPE = {"records": 6, "duration": 2.0, "seed": 5, "output": {"shard_size": 2}}


def _blas_threads() -> list:
    return [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]


def _worker_blas() -> tuple:
    """In a pool worker: (BLAS thread counts, the worker's ``_BLAS_HELD``)."""
    return _blas_threads(), sys.modules["cardiosim.dataset.generate"]._BLAS_HELD


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forked workers are Linux-only")
def test_forked_pool_holds_one_blas_thread_until_shutdown():
    before = _blas_threads()
    if not before:
        pytest.skip("no BLAS library that threadpoolctl controls")
    pool = gen._ForkedPool(1)
    try:
        assert gen._BLAS_HELD and set(_blas_threads()) == {1}
        counts, held = pool.submit(_worker_blas).result()
        # inherited from the parent, never changed in the worker
        assert set(counts) == {1} and held
        with gen._one_blas_thread():   # a no-op while held: the count stays 1
            assert set(_blas_threads()) == {1}
    finally:
        pool.shutdown()
    assert not gen._BLAS_HELD and _blas_threads() == before


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forked workers are Linux-only")
def test_forked_pool_releases_blas_when_it_cannot_start(monkeypatch):
    before = _blas_threads()

    def broken_submit(self, *args, **kwargs):
        raise OSError("no fork")

    monkeypatch.setattr(gen._ForkedPool, "submit", broken_submit)
    with pytest.raises(OSError):
        gen._ForkedPool(1)
    assert not gen._BLAS_HELD and _blas_threads() == before


def test_warm_process_skips_the_record_once_warm(monkeypatch):
    prepared = gen.PreparedRecipe.of(Recipe.from_dict({**RECIPE, "seed": 6}))
    calls = []
    real = gen.simulate_block
    monkeypatch.setattr(gen, "simulate_block", lambda *a, **k: calls.append(a[1:3]) or real(*a, **k))
    gen._warm_process(prepared)
    assert calls == [(0, 1)] and gen._block_state(prepared).warm
    gen._warm_process(prepared)   # warm now: nothing simulated
    assert calls == [(0, 1)]


def test_two_forked_workers_match_one_and_restore_blas(tmp_path):
    before = _blas_threads()
    r = Recipe.from_dict(RECIPE)
    generate(r, tmp_path / "one", workers=1, progress=False)
    generate(r, tmp_path / "two", workers=2, progress=False)
    one, two = read_manifest(tmp_path / "one")["shards"], read_manifest(tmp_path / "two")["shards"]
    assert len(one) == 3 and {k: v["sha256"] for k, v in one.items()} == {k: v["sha256"] for k, v in two.items()}
    assert not gen._BLAS_HELD and _blas_threads() == before


def test_one_blas_thread_limits_and_restores_through_the_kept_controller(monkeypatch):
    """Inside a block every BLAS library threadpoolctl sees runs one thread, as with
    ``threadpool_limits``; the counts are restored after; the controller is kept between
    blocks and made again once a module was imported since (it may have loaded a BLAS)."""
    before = _blas_threads()
    if not before:
        pytest.skip("no BLAS library that threadpoolctl controls")
    monkeypatch.setattr(gen, "_BLAS_HELD", False)
    monkeypatch.setattr(gen, "_BLAS_CONTROLLER", None)
    with gen._one_blas_thread():
        assert set(_blas_threads()) == {1}
    assert _blas_threads() == before
    first = gen._blas_controller()
    assert gen._blas_controller() is first          # kept while no module is imported
    monkeypatch.setitem(sys.modules, "cardiosim_test_new_module", type(sys)("cardiosim_test_new_module"))
    again = gen._blas_controller()
    assert again is not first
    with gen._one_blas_thread():
        assert set(_blas_threads()) == {1}
    assert _blas_threads() == before
