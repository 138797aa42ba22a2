"""Deterministic, parallel, resumable dataset generation.

Records are generated in blocks (one block per shard). A block is a pure function of
(recipe, block range), so the result is bit-identical whether blocks run in this
process, in ``workers`` local processes or on a dask.distributed cluster, and whatever
the shard size. Directory outputs are resumable: finished shards are listed in
``manifest.json`` with their SHA-256 and skipped on a rerun of the same recipe.
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from collections import OrderedDict
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import multiprocessing as mp
import threading

import numpy as np

from .._scratch import empty_without_huge_pages
from .._version import __version__
from ..errors import CardiosimError, ConfigError, DataFormatError
from . import io as _io
from .plan import make_plan, record_rng
from .recipe import Recipe
from .schema import encoding_for, records_to_dataset
from .storage import quantise_signals, resolve_compression, signal_quanta


class SourceFailureWarning(UserWarning):
    """Some source records could not be read or reconstructed; their records were skipped."""


@dataclass(frozen=True)
class GenerationSummary:
    """What a generation run produced."""

    output: Path
    n_records: int
    n_generated: int
    n_shards: int
    classes: tuple
    class_counts: tuple
    bytes_written: int
    seconds: float
    n_failed: int = 0

    def __str__(self) -> str:
        rate = self.n_generated / self.seconds if self.seconds > 0 else float("nan")
        counts = ", ".join(f"{c} {n}" for c, n in zip(self.classes, self.class_counts) if n)
        resumed = "" if self.n_generated >= self.n_records else f" ({self.n_records - self.n_generated} already done)"
        if self.n_failed:
            resumed += f"; {self.n_failed} skipped (source failed, listed in the manifest)"
        return (f"wrote {self.n_records} records{resumed} to {self.output} in {self.n_shards} "
                f"file{'s' if self.n_shards != 1 else ''}, {self.bytes_written / 1e6:.1f} MB, "
                f"{self.seconds:.1f} s ({rate:.1f} records/s)\n  classes: {counts or 'none'}")


@dataclass(frozen=True)
class PreparedRecipe:
    """A recipe parsed once, with the TOML text stored in the output's ``recipe`` attribute.

    This (picklable) object is what blocks receive, in this process, in local worker
    processes or on dask workers: the TOML is parsed once where the run starts, never again
    per block or per record.
    """

    recipe: Recipe
    toml: str

    @classmethod
    def of(cls, recipe) -> "PreparedRecipe":
        """From a :class:`Recipe`, its TOML text or a ``PreparedRecipe``."""
        if isinstance(recipe, PreparedRecipe):
            return recipe
        if isinstance(recipe, Recipe):
            return cls(recipe, recipe.to_toml())
        if isinstance(recipe, str):
            return _parse_recipe(recipe)
        raise TypeError(f"recipe must be a Recipe, its TOML text or a PreparedRecipe, got {type(recipe).__name__}")


@lru_cache(maxsize=4)
def _parse_recipe(text: str) -> PreparedRecipe:
    return PreparedRecipe(Recipe.from_toml(text), text)


class _BlockState:
    """What one process needs to simulate blocks of one recipe, built once per process:
    the plan, the reference body's context and (lazily) the other bodies' contexts."""

    _MAX_BODIES = 64  # each context holds a body's lead field; keep a bounded number

    def __init__(self, prepared: PreparedRecipe):
        self.recipe, self.toml = prepared.recipe, prepared.toml
        self.plan = make_plan(self.recipe)
        self._contexts: OrderedDict = OrderedDict()
        self._body_params: dict = {}
        self.ref = self.context(0)
        self.noise_kinds = _noise_kinds(self.recipe)
        # Set once this process has simulated a record of the recipe: its kernels are loaded
        # and _warm_process has nothing left to do.
        self.warm = False

    def context(self, k: int):
        """Simulation context of body ``k`` of the recipe's population (lead field cached on disk)."""
        ctx = self._contexts.get(k)
        if ctx is None:
            ctx = self._contexts[k] = _make_body_context(self.recipe, k)
            while len(self._contexts) > self._MAX_BODIES:
                self._contexts.popitem(last=False)
        else:
            self._contexts.move_to_end(k)
        return ctx

    def body_params(self, k: int) -> tuple:
        """Body ``k``'s torso parameters as ``(name, value)`` pairs for the record parameters."""
        out = self._body_params.get(k)
        if out is None:
            out = self._body_params[k] = _torso_param_items(self.recipe, k)
        return out


_STATES: OrderedDict = OrderedDict()  # recipe TOML -> _BlockState (the last two recipes used)


def _block_state(recipe) -> _BlockState:
    prepared = PreparedRecipe.of(recipe)
    state = _STATES.get(prepared.toml)
    if state is None:
        state = _STATES[prepared.toml] = _BlockState(prepared)
        while len(_STATES) > 2:
            _STATES.popitem(last=False)
    return state


def _state(recipe):
    """``(recipe, plan, reference context)`` of a recipe (or its TOML), built once per process."""
    st = _block_state(recipe)
    return st.recipe, st.plan, st.ref


def _make_body_context(recipe: Recipe, k: int):
    import dataclasses

    from ..geometry import make_torso
    from ..simulate import make_context

    params = recipe.body.torso_params(recipe.seed, k)
    torso, electrodes = recipe.body.user_body()  # a user's mesh / electrode file, else (None, None)
    torso = torso if params is None else make_torso(params, name=f"body{k}")
    layout = electrodes if electrodes is not None else recipe.layout or None
    ctx = make_context(recipe.device, forward=recipe.forward, torso=torso, layout=layout)
    if recipe.sampling_rate and recipe.sampling_rate != ctx.device.fs:
        ctx = dataclasses.replace(ctx, device=dataclasses.replace(ctx.device, fs=float(recipe.sampling_rate)))
    return ctx


def _torso_param_items(recipe: Recipe, body: int) -> tuple:
    import dataclasses

    params = recipe.body.torso_params(recipe.seed, body)
    if params is None:
        return ()
    out = []
    for k, v in dataclasses.asdict(params).items():
        if isinstance(v, (tuple, list)):
            out.extend((f"torso_{k}_{'xyz'[j]}", float(x)) for j, x in enumerate(v))
        else:
            out.append((f"torso_{k}", v))
    return tuple(out)


def _noise_kinds(recipe: Recipe) -> tuple:
    if not recipe.simulation.add_noise:
        return ()
    from ..noise import SNR_KINDS

    return tuple(k for k in recipe.simulation.noise.kinds if k in SNR_KINDS)


#: Set while a forked pool (:class:`_ForkedPool`) holds this process -- and, inherited, its
#: workers -- at one BLAS thread: blocks then leave OpenBLAS's thread count alone.
_BLAS_HELD = False


@contextmanager
def _one_blas_thread():
    """Run NumPy's BLAS on one thread inside a block.

    A record's matrix products are small (12 x 9 by 9 x 5000); on a busy 2-core machine
    OpenBLAS's worker threads spin-wait against the other processes and made the whole
    record 3.5x slower (124 vs 37 ms measured). Parallelism comes from the worker processes.
    Nothing to do while a :class:`_ForkedPool` holds the whole process at one thread.
    """
    if _BLAS_HELD:
        yield
        return
    controller = _blas_controller()
    if controller is None:  # threadpoolctl is optional: only speed depends on it
        yield
        return
    with controller.limit(limits=1, user_api="blas"):
        yield


#: ``(len(sys.modules) when made, threadpoolctl.ThreadpoolController)`` of this process.
_BLAS_CONTROLLER: tuple | None = None


def _blas_controller():
    """This process's ``ThreadpoolController`` (None without threadpoolctl), made again only
    when modules were imported since (a new one may load another BLAS). ``threadpool_limits``
    itself inspects every loaded library on each call: 3.3 ms a block, 0.02 ms through a kept
    controller (measured 2026-12-07)."""
    global _BLAS_CONTROLLER
    n = len(sys.modules)
    if _BLAS_CONTROLLER is not None and _BLAS_CONTROLLER[0] == n:
        return _BLAS_CONTROLLER[1]
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    controller = ThreadpoolController()
    _BLAS_CONTROLLER = (len(sys.modules), controller)
    return controller


def _check_postprocess(recipe: Recipe, postprocess) -> None:
    if recipe.refine.model and postprocess is None:
        raise ConfigError(f"the recipe applies a refiner ([refine] model = {recipe.refine.model!r}), which needs "
                          "torch: use cardiosim.torch.refine.generate_refined or the CLI (cardiosim generate)")
    if postprocess is not None and not callable(postprocess):
        raise ConfigError(f"postprocess must be callable, got {type(postprocess).__name__}")


def simulate_block(recipe, start: int, stop: int, failures: list | None = None, postprocess=None):
    """Simulate records ``start .. stop-1`` and return them as an ``xarray.Dataset``.

    ``recipe`` is a :class:`Recipe`, its TOML text or a :class:`PreparedRecipe`; the
    output's ``recipe`` attribute is that TOML. With ``failures`` (a list), records whose
    real source record cannot be read or reconstructed are skipped and ``(index, source,
    message)`` appended to it -- the output then has gaps in its ``record`` coordinate and
    ``None`` is returned if no record of the block succeeded. Without it, the first such
    error is raised.

    ``postprocess`` (picklable callable, ``xarray.Dataset -> xarray.Dataset``) is applied
    to the block's float records before int16 packing, in the process that simulates
    them; it must treat every record on its own so that blocks stay bit-identical for any
    shard size. A recipe with ``[refine] model`` requires one
    (:func:`cardiosim.torch.refine.generate_refined` builds it).
    """
    return _simulate_block(recipe, start, stop, failures, postprocess)[0]


#: Records a block simulates stage by stage at once (:func:`cardiosim.simulate.simulate_records`):
#: ~3 MB each in flight between stages, so a sub-block's working set stays near the last-level
#: cache while each stage's per-call Python is shared by its records. Any value gives the same bits.
_SUB_BLOCK = 8

#: When a dict (benchmarks, profiling): receives the CPU seconds of each stage of the blocks this
#: process simulates (``simulate_records(timings=...)``), of making their sources (``'source'``)
#: and of copying and packing their records into the block (``'keep'``); None (the default)
#: times nothing.
_STAGE_TIMES: dict | None = None


def _simulate_block(recipe, start: int, stop: int, failures: list | None = None, postprocess=None,
                    reuse_buffers: bool = False):
    """:func:`simulate_block` and the int16 codes of the signals it packed itself:
    ``(ds, [(array, scale_factor, fill, codes), ...])`` for
    :func:`cardiosim.dataset.storage.known_int16_codes` (``(None, [])`` without records).

    ``reuse_buffers``: the block's signal arrays are the calling thread's, reused by its next
    block (the caller drops the dataset before that: :func:`write_block`); otherwise new."""
    from ..simulate import simulate_records

    st = _block_state(recipe)
    recipe, plan, ref = st.recipe, st.plan, st.ref
    _check_postprocess(recipe, postprocess)
    records, indices, splits, folds, variants = [], [], [], [], []
    cached = (None, None, None)
    # int16 grid applied record by record as each is copied into the block (in cache), unless a
    # postprocess must see the float records first
    pack_now = recipe.output.pack_int16 and postprocess is None
    arrays = _BlockArrays(stop - start, signal_quanta(_BlockArrays.NAMES, ref.device.input_range_mv)
                          if pack_now else {}, reuse=reuse_buffers and postprocess is None)
    with _one_blas_thread():
        # Stage-wise over sub-blocks (simulate.simulate_records): each stage runs over a
        # sub-block's records before the next, every record drawing from its own generator in
        # simulate_record's order, so the records are the same for any sub-block size.
        times = _STAGE_TIMES
        clock = time.process_time
        for lo in range(start, stop, _SUB_BLOCK):
            t0 = clock() if times is not None else 0.0
            todo = []   # (index, source, body, src, variant) of the sub-block's records
            for i in range(lo, min(lo + _SUB_BLOCK, stop)):
                src, variant = plan.locate(i)
                if cached[0] != src:
                    # Sources are estimated on the reference body, then projected through the source's body.
                    try:
                        cached = (src, plan.source(src, ref), None)
                    except CardiosimError as exc:
                        if failures is None or recipe.source.kind == "ode":
                            raise
                        cached = (src, None, f"{type(exc).__name__}: {exc}")
                source = cached[1]
                if source is None:
                    failures.append((i, f"{recipe.source.kind}:{src}", cached[2]))
                    continue
                todo.append((i, source, plan.body(src), src, variant))
            if times is not None:
                times["source"] = times.get("source", 0.0) + clock() - t0
            if not todo:
                continue
            recs = simulate_records([t[1] for t in todo], [record_rng(recipe.seed, t[0]) for t in todo],
                                    contexts=[st.context(t[2]) for t in todo], config=recipe.simulation,
                                    clean=recipe.output.store_clean, block=_SUB_BLOCK, timings=times)
            t0 = clock() if times is not None else 0.0
            for (i, source, body, src, variant), rec in zip(todo, recs):
                rec.params["body_index"] = body
                rec.params.update(st.body_params(body))
                records.append(arrays.keep(rec, len(records)))
                indices.append(i)
                splits.append(plan.split(src, source.metadata))
                folds.append(int(source.metadata.get("strat_fold", -1)))
                variants.append(variant)
            del recs
            if times is not None:
                times["keep"] = times.get("keep", 0.0) + clock() - t0
    if not records:
        return None, []
    st.warm = True
    ds = records_to_dataset(records, indices=indices, classes=plan.classes, splits=splits, folds=folds,
                              variants=variants, noise_kinds=st.noise_kinds, recipe_toml=st.toml,
                              seed=recipe.seed, device_name=ref.device.name, label_map=plan.label_map,
                              stacked=arrays.stacked(len(records)))
    del records
    if postprocess is not None:
        ds = postprocess(ds)
    if recipe.output.pack_int16:
        # Quantised in memory exactly as a CF reader decodes the int16 file: a block and its
        # file hold the same float32 numbers (cardiosim.dataset.storage). The block's own arrays
        # were packed record by record (raising here what packing them whole raises); the rest in
        # place when the block's arrays are this function's own (a postprocess may keep references).
        done = arrays.check_quantised(ds)
        ds, _ = quantise_signals(ds, ref.device.input_range_mv, inplace=postprocess is None, done=done)
        return ds, arrays.packed(ds, done)
    return ds, []


_CODES = threading.local()


def _block_buffer(name: str, shape: tuple, dtype=np.int16) -> np.ndarray:
    """A per-thread buffer ``[record, ...]`` of a block's ``name``, reused by the thread's next
    block. A block's arrays are tens of MB (61 MB of float32 ``ecg`` in a default 256-record
    shard, beyond glibc's largest mmap threshold): fresh ones are new mappings whose huge pages
    the kernel zeroes (and may compact for) again every block -- system time 0.10-0.13 ms a
    record in steady state on this project's VM, 0.04-0.07 reused; 0.07-1.5 ms a record when
    the block size changes. The int16 codes are read only by the writer inside ``write_block``; the
    float32 signals are reused only for ``write_block``, which drops its dataset before the
    thread's next block."""
    bufs = getattr(_CODES, "bufs", None)
    if bufs is None:
        bufs = _CODES.bufs = {}
    key = (name, np.dtype(dtype).str)
    buf = bufs.get(key)
    if buf is None or buf.shape[1:] != shape[1:] or buf.shape[0] < shape[0]:
        # 4-KiB pages: no wait for huge-page compaction at a worker's first block (_scratch)
        buf = bufs[key] = empty_without_huge_pages(shape, dtype)
    return buf[:shape[0]]


def _release_block_buffers() -> None:
    """Drop the calling thread's block buffers (at the end of ``generate``: a user's process
    does not keep ~100 MB for a next block that may never come)."""
    _CODES.__dict__.pop("bufs", None)


class _BlockArrays:
    """A block's ``ecg``, ``clean_ecg`` and ``accelerometer`` arrays ``[record, ...]`` float32,
    filled record by record as each is simulated (while it is in cache) and handed to
    ``records_to_dataset`` stacked: it would otherwise read every record back from memory and
    stack it into a new array. With ``quanta`` (``{name: q}``) a record is written on its
    int16 grid (:func:`cardiosim.dataset.storage.quantise_into`, the values
    ``quantise_signals`` gives) and the block's peak and finiteness are kept for
    :meth:`check_quantised`. Allocated at the block's first record (its shapes); a record of
    another shape turns the name off and ``records_to_dataset`` stacks it (and reports the
    mismatch) as before."""

    NAMES = ("ecg", "clean_ecg", "accelerometer")

    def __init__(self, capacity: int, quanta: dict | None = None, reuse: bool = False):
        self.capacity = capacity
        self.reuse = reuse
        self.quanta = dict(quanta or {})
        self.arrays: dict = {}
        self.off: set = set()
        self.n_t = None
        self.peak: dict = {}
        self.finite: dict = {}
        self.codes: dict = {}   # name -> int16 codes of the packed rows (what the writer stores)

    def keep(self, rec, i: int):
        """``rec`` with its arrays copied (or packed) to row ``i`` and replaced by that row."""
        import dataclasses

        from .storage import quantise_into

        if self.n_t is None:
            self.n_t = rec.ecg.shape[-1]
        parts = {"ecg": rec.ecg, "clean_ecg": rec.clean_ecg,
                 "accelerometer": None if rec.accelerometer is None else rec.accelerometer[:, :self.n_t]}
        new = {}
        for name, part in parts.items():
            if name in self.off:
                continue
            if part is None or part.dtype != np.float32 or part.ndim != 2:
                self.off.add(name)
                continue
            arr = self.arrays.get(name)
            if arr is None:
                shape = (self.capacity,) + part.shape
                arr = self.arrays[name] = _block_buffer(name, shape, np.float32) if self.reuse else \
                    empty_without_huge_pages(shape, np.float32)
            if part.shape != arr.shape[1:]:
                self.off.add(name)
                continue
            q = self.quanta.get(name)
            if q is None:
                arr[i] = part
            else:
                codes = self.codes.get(name)
                if codes is None:
                    codes = self.codes[name] = _block_buffer(name, arr.shape)
                peak, finite = quantise_into(np.ascontiguousarray(part), q, arr[i], codes[i])
                self.peak[name] = max(self.peak.get(name, 0.0), peak)
                self.finite[name] = self.finite.get(name, True) and finite
            if part.shape == getattr(rec, name).shape:   # (a longer accelerometer keeps its own)
                new[name] = arr[i]
        return dataclasses.replace(rec, **new) if new else rec

    def stacked(self, n: int) -> dict:
        """``{name: array[:n]}`` of the names every record so far went into."""
        return {name: arr[:n] for name, arr in self.arrays.items() if name not in self.off}

    def check_quantised(self, ds) -> tuple:
        """Raise, in packing order, what packing the block's packed arrays whole would raise;
        returns the names of ``ds`` they hold (packed already)."""
        from .storage import check_quantised

        done = []
        for name, q in self.quanta.items():
            if name in self.arrays and name not in self.off and name in ds.variables and \
                    np.may_share_memory(ds.variables[name].values, self.arrays[name]):
                check_quantised(name, q, "m s-2" if name == "accelerometer" else "mV", self.peak[name],
                                self.finite[name])
                done.append(name)
        return tuple(done)

    def packed(self, ds, done) -> list:
        """``(array of ds, scale_factor, fill, int16 codes)`` of each name in ``done``."""
        from .storage import INT16_FILL

        out = []
        for name in done:
            x = ds.variables[name].values
            codes = self.codes[name][:x.shape[0]]
            if x.shape == codes.shape:
                out.append((x, np.float32(self.quanta[name]), INT16_FILL, codes))
        return out


def _encoding(recipe: Recipe, ds, ctx, on_grid=()) -> dict:
    out = recipe.output
    names = tuple(n for n in ds.variables if any(ds.variables[n].values is a for a in on_grid))
    return encoding_for(ds, compression=_compression(out.compression), complevel=out.complevel,
                        pack_int16=out.pack_int16, full_scale_mv=ctx.device.input_range_mv, on_grid=names)


@lru_cache(maxsize=8)
def _compression(requested: str) -> str:
    """The filter this process writes (``requested`` or the zlib fallback, warned once)."""
    return resolve_compression(requested)


def write_block(recipe, start: int, stop: int, path: str, postprocess=None) -> dict:
    """Simulate a block and write it atomically to ``path``.

    Returns the block's manifest entry: ``sha256`` (None when every record failed and
    no file was written), ``start``, ``stop``, ``n_records`` and ``failed``.
    """
    from .storage import known_int16_codes

    failures: list = []
    ds, packed = _simulate_block(recipe, start, stop, failures, postprocess, reuse_buffers=True)
    entry = {"start": start, "stop": stop, "n_records": 0, "sha256": None,
             "failed": [{"record": i, "source": s, "error": e} for i, s, e in failures]}
    if ds is not None:
        st = _block_state(recipe)
        # The signals packed record by record are on the int16 grid (packing raised otherwise)
        # and their codes are known: the writer neither checks their range nor derives the
        # codes again (nothing touches ds between packing and writing).
        with known_int16_codes(packed):
            _io.write_netcdf(ds, path, _encoding(st.recipe, ds, st.ref, on_grid=tuple(p[0] for p in packed)))
        # bytes: the cheap integrity check of open_dataset / info (a truncated shard changes size).
        entry.update(sha256=_io.sha256_file(path), bytes=os.path.getsize(path), n_records=int(ds.sizes["record"]),
                     label_counts=[int(c) for c in ds["label"].values.sum(axis=0)])
    return entry


def _check_output(output: Path, overwrite: bool) -> None:
    parent = output.parent if output.suffix == ".nc" else output.parent
    if not parent.exists():
        raise ConfigError(f"output folder {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK):
        raise ConfigError(f"output folder {str(parent)!r} is not writable")
    if output.suffix == ".nc" and output.exists() and not overwrite:
        raise ConfigError(f"output file {str(output)!r} exists; pass --overwrite to replace it")
    if output.suffix != ".nc" and output.exists() and not output.is_dir():
        raise ConfigError(f"output {str(output)!r} exists and is not a directory")


def _progress(total: int, enabled: bool, initial: int = 0):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="rec", desc="generating", disable=not enabled,
                file=sys.stderr, dynamic_ncols=True, smoothing=0.1)


SCHEDULER_TIMEOUT_S = 5.0


def _executor(workers: int, scheduler: str | None, fork: bool = False):
    if scheduler is not None:
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError:
            raise ConfigError("scheduler given but dask.distributed is not installed; "
                              "pip install 'cardiosim[distributed]'") from None
        if scheduler in ("", "local"):
            cluster = LocalCluster(n_workers=max(1, workers), threads_per_worker=1, processes=True,
                                   dashboard_address=None)
            return _DaskExecutor(Client(cluster), cluster)
        try:
            # A scheduler that does not answer within seconds is down or mistyped: say so in one line.
            client = Client(scheduler, timeout=SCHEDULER_TIMEOUT_S)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ConfigError(f"cannot reach the dask scheduler {scheduler!r} within {SCHEDULER_TIMEOUT_S:g} s "
                              f"({type(exc).__name__}); check --scheduler") from None
        return _DaskExecutor(client, None)
    if workers <= 1:
        return None
    # This process simulates blocks too (_run_blocks): workers - 1 more processes.
    if fork:
        # Forked from this process, whose plan, lead field and numba kernels are already
        # loaded (_fork_safe says when that is safe): a worker starts in milliseconds instead
        # of ~6 s of CPU (imports, state, kernel loading).
        return _ForkedPool(workers - 1)
    # spawn: numba's threading layer, OpenMP and forked parents do not mix safely.
    return ProcessPoolExecutor(max_workers=workers - 1, mp_context=mp.get_context("spawn"),
                               initializer=_die_with_parent, initargs=(os.getpid(),))


class _ForkedPool(ProcessPoolExecutor):
    """A fork-context process pool that holds this process and its workers at one BLAS
    thread from before the fork until :meth:`shutdown`.

    OpenBLAS stops its threads around ``fork`` and starts them again, in the parent and in
    the child, at the next change of its thread count; a started thread busy-waits ~0.1 s
    (``sched_yield``) before it sleeps. With the count changed block by block
    (:func:`_one_blas_thread`), that restart landed in each process's first block: ~70 ms of
    run-queue wait each (``/proc/thread-self/schedstat``; first blocks of 64 records ~0.50 s
    instead of ~0.42 s). Set once before the fork, the one-thread count is inherited and
    never changed again while the pool lives, so no BLAS thread starts in either process
    (blocks keep running BLAS on one thread, as :func:`_one_blas_thread` would).
    """

    def __init__(self, n: int):
        global _BLAS_HELD
        self._blas_limit = None
        if not _BLAS_HELD:
            try:
                from threadpoolctl import threadpool_limits
            except ImportError:  # optional: only speed depends on it
                pass
            else:
                self._blas_limit = threadpool_limits(limits=1, user_api="blas")
                _BLAS_HELD = True
        try:
            super().__init__(max_workers=n, mp_context=mp.get_context("fork"), initializer=_die_with_parent,
                             initargs=(os.getpid(),))
            # A fork-context pool starts all its processes at the first submit: done here, in
            # this thread, before any other starts.
            self.submit(int).result()
        except BaseException:
            self._release_blas()
            raise

    def _release_blas(self) -> None:
        global _BLAS_HELD
        if self._blas_limit is not None:
            self._blas_limit, limit = None, self._blas_limit
            _BLAS_HELD = False
            limit.restore_original_limits()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        try:
            super().shutdown(wait=wait, cancel_futures=cancel_futures)
        finally:
            self._release_blas()


#: ``CARDIOSIM_WORKER_START=spawn`` forces spawned local workers (default: fork when safe).
WORKER_START_ENV = "CARDIOSIM_WORKER_START"


def _fork_safe(postprocess=None) -> bool:
    """Whether local workers may be forked from this process rather than spawned.

    Forking copies a process that has built the block state and loaded the compiled kernels,
    so workers need no warm-up. It is safe only while nothing in this process runs threads
    whose locks a child could inherit held: Linux, the main thread with no other Python thread
    (tqdm's idle monitor aside), numba's parallel
    threading layer not started, torch not imported (its OpenMP pool does not survive a fork)
    and no postprocess (the refiner runs torch). Otherwise workers are spawned, as before.
    """
    import threading

    if os.environ.get(WORKER_START_ENV, "").strip().lower() == "spawn":
        return False
    if not sys.platform.startswith("linux") or "fork" not in mp.get_all_start_methods():
        return False
    # tqdm's monitor thread (a daemon left by any earlier progress bar) only sleeps and
    # touches tqdm's own lock, which a worker never uses.
    others = [t for t in threading.enumerate() if t is not threading.main_thread()
              and not (t.daemon and type(t).__name__ == "TMonitor")]
    if postprocess is not None or "torch" in sys.modules or others or threading.current_thread() is not \
            threading.main_thread():
        return False
    try:
        from numba.np.ufunc import parallel as _numba_parallel
        return not _numba_parallel._is_initialized
    except (ImportError, AttributeError):  # a numba without this flag: do not guess
        return False


def _die_with_parent(parent_pid: int, poll_s: float = 0.5) -> None:
    """Worker initializer: end this worker as soon as the generating process is gone.

    Without it a killed ``cardiosim generate`` leaves its workers finishing shards that no
    manifest will list. On Linux the kernel sends SIGKILL on the parent's death
    (``prctl(PR_SET_PDEATHSIG)``); everywhere a daemon thread also polls the parent's pid
    (a reparented worker sees another ``getppid()``).
    """
    import signal
    import threading

    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            PR_SET_PDEATHSIG = 1
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # no usable libc: the poll below still works
            pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)

    def watch():
        while True:
            time.sleep(poll_s)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="cardiosim-parent-watch", daemon=True).start()


class _DaskExecutor:
    """Adapter giving a dask Client the submit/shutdown surface of concurrent.futures."""

    def __init__(self, client, cluster):
        self.client, self.cluster = client, cluster

    def submit(self, fn, *args):
        return self.client.submit(fn, *args, pure=False)

    def as_completed(self, futures):
        from dask.distributed import as_completed as dask_as_completed
        return dask_as_completed(futures)

    def shutdown(self):
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _warm_process(prepared) -> None:
    """A worker process's first task: build the block state and load the compiled kernels
    (one record, discarded, unless the process has simulated one already), so that it takes
    real blocks only once it is fast. Best effort:
    a failure here (a source that cannot be read, a recipe that needs a postprocess) is
    left for the real blocks to report."""
    try:
        # A process that has already simulated a record of this recipe (a second run, a
        # benchmark's warm-up) skips the record: in the fork path it costs ~18 ms while the
        # other core waits for the fork.
        if not _block_state(prepared).warm:
            simulate_block(prepared, 0, 1, failures=[])
    except Exception:  # noqa: BLE001 - the blocks raise it with their own context
        pass


def _run_blocks(executor, n_remote: int, tasks, local, remote, done, warm=None) -> None:
    """Run ``tasks`` (``(key, args)`` pairs) and hand each result to ``done(key, result)``:
    ``local(*args)`` in this process, ``remote(*args)`` on ``executor`` (``n_remote`` processes).

    Without an executor every task runs here, in order. A dask executor gets every task.
    With a local process pool this process is one of the workers: a feeder thread keeps
    each pool process busy with the next task as soon as it finishes one, while this
    thread runs the next task itself -- its state (plan, lead field, compiled kernels) is
    already built, so it works while the pool processes start up, and ``workers = 2``
    costs one process start, not two. ``warm`` (``(fn, args)``, optional) runs first in each
    pool slot: a process gets blocks only once it has started up, so a slow start never
    leaves this process waiting for the last block at the end. Blocks are pure functions of the recipe and their
    range, so who runs which changes nothing in the output; ``done`` is called under a
    lock, one result at a time.
    """
    if executor is None:
        for key, args in tasks:
            done(key, local(*args))
        return
    if isinstance(executor, _DaskExecutor):
        futures = {executor.submit(remote, *args): key for key, args in tasks}
        for fut in _completed(executor, futures):
            done(futures[fut], fut.result())
        return
    import threading
    from collections import deque
    from concurrent.futures import FIRST_COMPLETED, wait

    pending = deque(tasks)
    take_lock, done_lock = threading.Lock(), threading.Lock()
    errors: list = []
    local_done = threading.Event()   # this process has run out of tasks
    idle_warmups: list = []           # warm-ups still running when nothing is left to give them

    def take():
        with take_lock:
            return pending.popleft() if pending and not errors else None

    warm_key = object()

    def feed():
        in_flight: dict = {}   # future -> task key (warm_key for a warm-up)
        try:
            for _ in range(n_remote):
                task = (warm_key, warm[1]) if warm is not None else take()
                if task is not None:
                    fn = warm[0] if task[0] is warm_key else remote
                    in_flight[executor.submit(fn, *task[1])] = task[0]
            while in_flight:
                finished, _ = wait(in_flight, timeout=0.2, return_when=FIRST_COMPLETED)
                for fut in finished:
                    key = in_flight.pop(fut)
                    result = fut.result()
                    if key is not warm_key:
                        with done_lock:
                            done(key, result)
                    task = take()            # this slot's next block
                    if task is not None:
                        in_flight[executor.submit(remote, *task[1])] = task[0]
                if local_done.is_set() and in_flight and all(k is warm_key for k in in_flight.values()):
                    # A short run: this process did every block while a pool process was still
                    # starting. Nothing is left for it; do not wait for its warm-up.
                    idle_warmups.extend(in_flight)
                    break
        except BaseException as exc:  # handed to the main thread, which re-raises it
            errors.append(exc)

    feeder = threading.Thread(target=feed, name="cardiosim-block-feeder", daemon=True)
    feeder.start()
    try:
        while (task := take()) is not None:
            result = local(*task[1])
            with done_lock:
                done(task[0], result)
    except BaseException:
        errors.append(None)  # stops the feeder from submitting more
        raise
    finally:
        local_done.set()
    feeder.join()
    if idle_warmups:
        _stop_pool_processes(executor)
    if errors:
        raise errors[0]


def _stop_pool_processes(executor) -> None:
    """End a local pool's processes that are only warming up (no block of ours runs there):
    ``shutdown`` would otherwise wait for the warm-up. Their caches (lead field, numba) are
    written atomically, so stopping one mid-write leaves nothing half-written."""
    for proc in list((getattr(executor, "_processes", None) or {}).values()):
        try:
            proc.terminate()
        except (OSError, AttributeError):  # already gone
            pass


def _completed(executor, futures):
    return executor.as_completed(futures) if isinstance(executor, _DaskExecutor) else as_completed(futures)


def generate(recipe: Recipe, output, *, workers: int = 1, scheduler: str | None = None, progress: bool = True,
             overwrite: bool = False, postprocess=None) -> GenerationSummary:
    """Generate the dataset described by ``recipe`` into ``output``.

    Parameters
    ----------
    recipe : Recipe
    output : str or Path
        ``*.nc``: one netCDF file (held in memory while generating; for small datasets).
        Anything else: a directory of shards of ``recipe.output.shard_size`` records plus
        ``manifest.json`` -- memory bounded by one shard per worker, resumable.
    workers : int
        Local processes simulating blocks, this one included (``workers - 1`` are started);
        ignored for the data: output is identical for any value.
    scheduler : str, optional
        Address of a dask.distributed scheduler, or ``'local'`` for a LocalCluster.
    progress : bool
        Show a progress bar with records/s and ETA on stderr.
    overwrite : bool
        Replace an existing single-file output.
    postprocess : callable, optional
        Applied to every block of records in the worker before writing (see
        :func:`simulate_block`); required by a recipe with ``[refine] model``.

    Returns
    -------
    GenerationSummary
    """
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    output = Path(output)
    _check_output(output, overwrite)
    t0 = time.perf_counter()
    prepared = PreparedRecipe.of(recipe)  # parsed once; blocks and workers receive it parsed
    pinned = prepared.recipe.pinned()  # a user's body: absolute paths and SHA-256 into the stored recipe
    if pinned is not prepared.recipe:
        prepared = PreparedRecipe.of(pinned)
    recipe = prepared.recipe
    _check_postprocess(recipe, postprocess)
    plan = _block_state(prepared).plan  # validates sources and builds the lead field once here
    n = plan.n_records
    if output.suffix == ".nc":
        return _generate_file(recipe, prepared, plan, output, n, workers, scheduler, progress, t0, postprocess)
    return _generate_shards(recipe, prepared, plan, output, n, workers, scheduler, progress, t0, postprocess)


def _local_executor(prepared, workers: int, scheduler, postprocess):
    """``(executor, warm)`` for :func:`_run_blocks`: forked local workers (after warming this
    process, so they inherit its loaded kernels and need no warm-up) when :func:`_fork_safe`,
    else spawned ones that warm up first, or dask, or none."""
    fork = scheduler is None and workers > 1 and _fork_safe(postprocess)
    if fork:
        _warm_process(prepared)
    warm = None if fork else (_warm_process, (prepared,))
    return _executor(workers, scheduler, fork=fork), warm


def _blocks(n: int, size: int):
    return [(k, k * size, min(n, (k + 1) * size)) for k in range(-(-n // size))]


def _generate_file(recipe, prepared, plan, output, n, workers, scheduler, progress, t0, postprocess=None):
    import xarray as xr

    # Blocks of the file are independent of the worker count; 64 records keep workers busy.
    blocks = _blocks(n, 64)
    parts, failures = {}, {}
    executor, warm = _local_executor(prepared, workers, scheduler, postprocess)
    bar = _progress(n, progress)
    def done(key, result):
        k, a, b = key
        parts[k], failures[k] = result
        bar.update(b - a)

    try:
        _run_blocks(executor, workers - 1, [((k, a, b), (prepared, a, b, postprocess)) for k, a, b in blocks],
                    _simulate_block_reporting, _simulate_block_reporting, done, warm=warm)
    finally:
        bar.close()
        if executor is not None:
            executor.shutdown()
    failed = [f for k, _, _ in blocks for f in failures[k]]
    kept = [parts[k] for k, _, _ in blocks if parts[k] is not None]
    _report_failures(failed)
    if not kept:
        raise DataFormatError(f"every record failed; first error: {failed[0][1]}: {failed[0][2]}")
    ds = xr.concat(kept, dim="record", data_vars="minimal", coords="minimal", compat="override", join="override",
                   combine_attrs="override") if len(kept) > 1 else kept[0]
    _io.write_netcdf(ds, output, _encoding(recipe, ds, _block_state(prepared).ref))
    counts = tuple(int(c) for c in ds["label"].values.sum(axis=0))
    return GenerationSummary(output, int(ds.sizes["record"]), int(ds.sizes["record"]), 1, plan.classes, counts,
                             output.stat().st_size, time.perf_counter() - t0, len(failed))


def _generate_shards(recipe, prepared, plan, output, n, workers, scheduler, progress, t0, postprocess=None):
    output.mkdir(exist_ok=True)
    digest = recipe.digest()
    blocks = _blocks(n, recipe.output.shard_size)
    manifest = _io.read_manifest(output)
    if manifest is None:
        if any(output.iterdir()):
            raise ConfigError(f"output directory {str(output)!r} is not empty and has no {_io.MANIFEST}; "
                              f"choose an empty or new directory")
        manifest = {"format": "cardiosim-shards-1", "cardiosim_version": __version__, "recipe_sha256": digest,
                    "recipe": prepared.toml, "n_records": n, "shard_size": recipe.output.shard_size,
                    "n_shards": len(blocks), "compression": _compression(recipe.output.compression), "shards": {}}
        _io.write_json_atomic(manifest, output / _io.MANIFEST)
    elif manifest.get("recipe_sha256") != digest:
        raise ConfigError(f"output directory {str(output)!r} holds a dataset made with a different recipe; "
                          f"refusing to mix them (use a new output directory)")
    done = {}
    for name, info in manifest["shards"].items():
        path = output / name
        if info["sha256"] is None or (path.exists() and _io.sha256_file(path) == info["sha256"]):
            done[name] = info
    todo = [(k, a, b) for k, a, b in blocks if _io.shard_name(k) not in done]
    already = sum(b - a for k, a, b in blocks if _io.shard_name(k) in done)
    manifest["shards"] = done
    executor, warm = _local_executor(prepared, workers, scheduler, postprocess) if todo else (None, None)
    bar = _progress(n, progress, initial=already)

    def record(k, entry):
        # Listed only after the shard file is complete and renamed into place.
        manifest["shards"][_io.shard_name(k)] = entry
        _io.write_json_atomic(manifest, output / _io.MANIFEST)
        bar.update(entry["stop"] - entry["start"])

    try:
        tasks = [(k, (prepared, a, b, str(output / _io.shard_name(k)), postprocess)) for k, a, b in todo]
        _run_blocks(executor, workers - 1, tasks, write_block, write_block, record, warm=warm)
    finally:
        bar.close()
        _release_block_buffers()        # this thread's (blocks run here too); workers exit
        if executor is not None:
            executor.shutdown()
    for stale in output.glob(".shard-*.tmp"):
        stale.unlink()
    failed = [(f["record"], f["source"], f["error"]) for e in manifest["shards"].values() for f in e["failed"]]
    _report_failures(failed)
    # Totals come from the manifest: reopening every shard would cost memory and time
    # proportional to the dataset.
    counts = tuple(int(sum(e.get("label_counts", [0] * len(plan.classes))[c] for e in manifest["shards"].values()))
                   for c in range(len(plan.classes)))
    n_ok = sum(int(e["n_records"]) for e in manifest["shards"].values())
    size = sum(f.stat().st_size for f in output.glob(_io.SHARD_GLOB))
    n_files = sum(1 for e in manifest["shards"].values() if e["sha256"] is not None)
    return GenerationSummary(output, n_ok, n - already, n_files, plan.classes, counts, size,
                             time.perf_counter() - t0, len(failed))


def _simulate_block_reporting(recipe, start: int, stop: int, postprocess=None):
    failures: list = []
    return simulate_block(recipe, start, stop, failures, postprocess), failures


def _report_failures(failed) -> None:
    """Warn (once, with the first few) about source records that could not be used."""
    if not failed:
        return
    import warnings

    first = "; ".join(f"record {i} ({s}): {e}" for i, s, e in failed[:3])
    warnings.warn(f"{len(failed)} record(s) skipped because their source failed: {first}"
                  + (" ..." if len(failed) > 3 else ""), SourceFailureWarning, stacklevel=3)
