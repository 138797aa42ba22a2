"""Compile cardiosim's numba kernels into numba's on-disk cache ahead of use.

Every kernel is ``@njit(cache=True)``: numba compiles it on its first call and keeps the
machine code next to the source (``__pycache__``, or ``NUMBA_CACHE_DIR``), so later processes
load it in milliseconds. A fresh install's first ``cardiosim generate`` therefore spends most of
its time compiling (measured 2026-12-06 on a quiet 2-core machine: 36 s cold against 1.8 s warm
for 4 three-second records, ≈ 80 s of it inside numba's compiler counting nested kernels twice).
Several processes started together on a cold cache -- generation workers, a test suite's
workers, a cluster's nodes -- each compile the same kernels at once.

:func:`compile_kernels` pays that once, split into parts that touch disjoint kernels so they
can run in parallel processes: use it (or ``cardiosim warmup``) when building a container
image, after installing on a cluster node, or before starting several workers.
Nothing it does changes any result: numba's cache is keyed by each kernel's source, so the
compiled code is the code a first call would have compiled.
"""

from __future__ import annotations

import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager

import numpy as np

from .errors import ConfigError


def _warm_patients() -> None:
    """The prior's screens (the longest compile: ``draw_screen_leads_kernel`` and what it
    calls, ≈ 14 s), then a two-record default dataset for what only ``generate`` runs
    (int16 packing, the block's grades), then the torch batch transform. By the time this
    part reaches the shirt physics the ``records`` part has usually cached it, and it is
    loaded, not compiled again."""
    import tempfile
    from pathlib import Path

    from .dataset import Recipe, generate
    from .ode.classes import MORPHOLOGIES
    from .ode.prior import sample_patient

    rng = np.random.default_rng(0)
    for morphology in MORPHOLOGIES:   # each has its own screens and template kernels
        sample_patient(rng, morphology)
    with tempfile.TemporaryDirectory(prefix="cardiosim-warmup-") as tmp:
        recipe = Recipe.from_dict({"records": 2, "duration": 2.0, "seed": 0})
        generate(recipe, Path(tmp) / "warmup.nc", progress=False)
    _warm_transform()


def _warm_transform() -> None:
    """The online batch transform's kernels (``cardiosim.torch``), when torch is installed."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return
    from .simulate import default_context
    from .sources import synthetic_source
    from .ode.model import default_patient
    from .torch.transforms import ShirtTransform

    ctx = default_context()
    source = synthetic_source(2.0, 500.0, np.random.default_rng(0), ctx.forward, ctx.frank_layout,
                              patient=default_patient(), source_id="warmup")
    ShirtTransform(0, context=ctx, mode="batch").batch([source, source])


def _warm_records() -> None:
    """A fixed patient (no prior screen) through every rhythm's planner and renderer, the
    shirt physics of ``simulate_record`` (motion, lead fields, noise, device), the block engine's
    draws of several records at once (``_pcg64_kernels.draw_program``), the real-record
    path (surface source fit) on the simulated 12 leads, the R-peak detector and ECGSYN."""
    from .ode.ecgsyn import ecgsyn
    from .ode.classes import RHYTHMS
    from .ode.model import default_patient
    from .qrs import detect_r_peaks
    from .simulate import default_context, simulate_record
    from .sources import from_array, recording_to_source, synthetic_source
    from .geometry import make_layout

    rng = np.random.default_rng(0)
    ctx = default_context()
    patient = default_patient()
    record = None
    for rhythm in RHYTHMS:   # each rhythm's planner kernels
        source = synthetic_source(4.0, 500.0, rng, ctx.forward, ctx.frank_layout, rhythm=rhythm,
                                  patient=patient, source_id=f"warmup:{rhythm}")
        if record is None:
            record = simulate_record(source, rng, context=ctx, clean=True)
    # the block engine's draws of several records in one kernel call (motion's batched stage)
    from ._pcg64_kernels import draw_program_matches
    draw_program_matches()
    detect_r_peaks(record.ecg, record.fs)
    real = from_array(record.clean_ecg.astype(np.float64), record.fs, record.leads, source_id="warmup")
    recording_to_source(real, ctx.forward, make_layout("standard12", ctx.torso))
    ecgsyn(2.0, 500.0, rng)


#: name -> (function, what it compiles); the order is the order of submission (longest first)
PARTS = {
    "patients": (_warm_patients, "the ODE prior's patient screens, a two-record default dataset and "
                                 "the torch batch transform"),
    "records": (_warm_records, "rhythm planners, the shirt physics, real-record sources, QRS detection "
                               "and ECGSYN"),
}


def _run_part(name: str) -> float:
    t0 = time.perf_counter()
    PARTS[name][0]()
    return time.perf_counter() - t0


def compile_kernels(jobs: int = 2, parts=None) -> dict[str, float]:
    """Compile the kernels a default dataset, real-record sources and the transforms use.

    Parameters
    ----------
    jobs : int
        Processes to compile in (each part is one process; ``1`` runs the parts one after
        the other in this process, which then has every kernel loaded).
    parts : sequence of str, optional
        Names from :data:`PARTS` (default: all).

    Returns
    -------
    dict
        Seconds of wall time per part (a few seconds each when the cache is already warm).
    """
    if isinstance(jobs, bool) or not isinstance(jobs, (int, np.integer)) or jobs < 1:
        raise ConfigError(f"jobs must be a positive integer, got {jobs!r}")
    names = list(PARTS) if parts is None else list(parts)
    unknown = [n for n in names if n not in PARTS]
    if unknown:
        raise ConfigError(f"unknown warm-up part(s) {unknown}; choose from {list(PARTS)}")
    if jobs == 1 or len(names) == 1:
        return {n: _run_part(n) for n in names}
    # spawned, not forked: a fork would inherit this process's numba state and threads
    with ProcessPoolExecutor(max_workers=min(int(jobs), len(names)),
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {n: pool.submit(_run_part, n) for n in names}
        return {n: f.result() for n, f in futures.items()}


#: What a terminal user is told when a command starts compiling (see :func:`first_compile_notice`).
COMPILE_NOTICE = ("cardiosim: compiling numba kernels on first use (about 30 s on 2 cores, once per install; "
                  "`cardiosim warmup` does it ahead of time)\n")


@contextmanager
def first_compile_notice(stream=None):
    """Tell a terminal user, once, that numba is compiling -- the silent half minute of a
    fresh install's first ``generate``.

    Within the block, the first ``numba:compile`` event writes :data:`COMPILE_NOTICE` to
    ``stream`` (default ``sys.stderr``); nothing is written when the stream is not a terminal
    (logs, pipes, CI), as for the progress bar, or when everything comes from numba's cache.
    """
    from numba.core import event

    stream = sys.stderr if stream is None else stream
    if not getattr(stream, "isatty", lambda: False)():
        yield
        return

    class _Notice(event.Listener):
        said = False

        def on_start(self, ev):
            if not self.said:
                self.said = True
                stream.write(COMPILE_NOTICE)
                stream.flush()

        def on_end(self, ev):
            pass

    listener = _Notice()
    event.register("numba:compile", listener)
    try:
        yield
    finally:
        event.unregister("numba:compile", listener)
