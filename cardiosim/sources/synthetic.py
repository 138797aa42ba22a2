"""ODE beats as a CardiacSource: the synthetic counterpart of :func:`recording_to_source`."""

from __future__ import annotations

import math

import numpy as np

from ..errors import GeometryError, LeadError, SignalError
from .base import CardiacSource

#: Frank lead matrices ``G_frank`` (mV per A m) already built and checked, by forward model
#: (its identity: forward models are not changed once built) and Frank electrodes (names and
#: positions); a few entries, oldest dropped first.
_FRANK_G: dict = {}
_FRANK_G_SIZE = 8
#: for each cached ``G_frank`` (by identity; the entry holds it): the kernel and factors of the fast
#: solve, or None where it does not give ``numpy.linalg.solve`` bit for bit (:func:`_fast_solver`)
_FRANK_LU: dict = {}
#: ``"ode_" + name`` of every ODE parameter name seen (the metadata keys of a source)
_META_KEYS: dict = {}
#: the parameter values kept in a source's metadata
_META_TYPES = (int, float, str, bool)


def _frank_matrix(forward, frank_layout) -> np.ndarray:
    """``G_frank`` of :func:`cardiosim.inverse.dipole_from_vcg` on ``forward`` at the Frank
    electrodes of ``frank_layout``, with its checks (3 leads, condition number <= 1e8), built
    once per forward model and layout: the lead field at the seven electrodes, the montage
    product and the condition number are the same for every record of a torso."""
    names = tuple(frank_layout.electrodes)
    key = (id(forward), names, np.asarray(frank_layout.positions, dtype=np.float64).tobytes())
    hit = _FRANK_G.get(key)
    if hit is not None and hit[0] is forward:  # the entry holds ``forward``: its id is not reused
        return hit[1]
    from ..inverse.dipole import lead_transfer

    g = lead_transfer(forward, frank_layout, "frank")
    if g.shape != (3, 3):
        raise LeadError(f"montage 'frank' must give 3 leads (X, Y, Z), got {g.shape[0]}")
    cond = np.linalg.cond(g)
    if not np.isfinite(cond) or cond > 1e8:
        raise GeometryError(f"Frank lead matrix is singular on this torso (condition number {cond:.3g})")
    g.setflags(write=False)
    while len(_FRANK_G) >= _FRANK_G_SIZE:
        _FRANK_G.pop(next(iter(_FRANK_G)))
    _FRANK_G[key] = (forward, g)
    return g


def _fast_solver(g: np.ndarray):
    """``(kernel, lu, perm)``: the first of :func:`cardiosim.ode._kernels.lu3_solve_kernel`
    (OpenBLAS's Haswell rounding) and :func:`~cardiosim.ode._kernels.lu3_solve_fma_kernel`
    (its SkylakeX rounding) that gives ``numpy.linalg.solve(g, v)`` bit for bit on this
    machine (checked once per matrix on 4,096 columns whose magnitudes span 16 decades and on
    ``g``'s own columns), else None (then ``numpy.linalg.solve`` is used). Cached with ``g``."""
    hit = _FRANK_LU.get(id(g))
    if hit is not None and hit[0] is g:
        return hit[1]
    from scipy.linalg import lu_factor

    from ..ode._kernels import lu3_solve_fma_kernel, lu3_solve_kernel

    lu, piv = lu_factor(g, check_finite=False)
    perm = np.arange(3, dtype=np.int64)
    for i, p in enumerate(piv):
        perm[i], perm[p] = perm[p], perm[i]
    rng = np.random.default_rng(20261205)
    v = rng.standard_normal((3, 4096)) * 10.0 ** rng.uniform(-8.0, 8.0, (1, 4096))
    v = np.concatenate([v, g, np.eye(3)], axis=1)
    want = np.linalg.solve(g, v)
    out = np.empty_like(v)
    lu = np.ascontiguousarray(lu)
    fast = None
    # which BLAS kernel numpy's OpenBLAS picked (by CPU) decides the rounding to copy
    for kernel in (lu3_solve_kernel, lu3_solve_fma_kernel):
        kernel(lu, perm, v, out)
        if np.array_equal(out, want):
            fast = (kernel, lu, perm)
            break
    while len(_FRANK_LU) >= _FRANK_G_SIZE:
        _FRANK_LU.pop(next(iter(_FRANK_LU)))
    _FRANK_LU[id(g)] = (g, fast)
    return fast


def _dipole_from_vcg(vcg_mV, forward, frank_layout) -> np.ndarray:
    """:func:`cardiosim.inverse.dipole_from_vcg` (bit for bit: the same ``G`` and solve) with
    ``G_frank`` cached per forward model and layout (:func:`_frank_matrix`), solved by a
    numba kernel with ``numpy.linalg.solve``'s rounding where it was checked to give it
    (:func:`_fast_solver`: ``solve`` costs ~0.5 ms on a 10-s record, the kernel ~10 us)."""
    v = np.asarray(vcg_mV, dtype=np.float64)
    if v.ndim != 2 or v.shape[0] != 3:
        raise SignalError(f"vcg must have shape (3, T), got {v.shape}")
    if not np.all(np.isfinite(v)):
        raise SignalError("vcg contains NaN or infinite samples")
    g = _frank_matrix(forward, frank_layout)
    fast = _fast_solver(g)
    if fast is None:
        return np.linalg.solve(g, v)
    kernel, lu, perm = fast
    out = np.empty_like(v)
    kernel(lu, perm, v, out)
    return out


def _solve_dipole(vcg_mV, forward, frank_layout):
    """``(dipole, checked)``: :func:`_dipole_from_vcg`'s dipole, and whether it went through
    the fast solve with the VCG and the dipole checked finite there (one pass over the dipole
    by ``all_finite_kernel``, which is ``np.all(np.isfinite(.))``), so the source built from it
    needs no checks of its own; else ``_dipole_from_vcg`` itself (its checks, its errors)
    and False."""
    all_finite_kernel = (_ODE_FNS[0] if _ODE_FNS else _ode_fns())[1]
    v = np.asarray(vcg_mV, dtype=np.float64)
    if v.ndim == 2 and v.shape[0] == 3 and v.flags.c_contiguous:
        fast = _fast_solver(_frank_matrix(forward, frank_layout))
        if fast is not None:
            kernel, lu, perm = fast
            out = np.empty_like(v)
            kernel(lu, perm, v, out)
            # one check covers both: a NaN or infinite VCG sample makes every dipole sample
            # that depends on it NaN or infinite (the substitutions multiply it by nonzero
            # finite factors: the factors of a finite, nonsingular G), so a finite dipole
            # means a finite VCG
            if all_finite_kernel(out):
                return out, True
    return _dipole_from_vcg(vcg_mV, forward, frank_layout), False


def _source(dipole, fs, source_id, labels, heart_rate, breathing_rate, metadata, annotations, beat_types):
    """``CardiacSource(dipole=..., fs=..., ...)`` (no residual or surface field) for a dipole
    already checked to be finite float64 of shape (3, T): the same instance (its ``__dict__``
    as the frozen dataclass's ``__init__`` fills it, field by field in order) without the
    ``__init__`` and ``__post_init__`` that would check the 15,000 values again (~20 µs a
    record); where ``__post_init__`` would object (fewer than two samples, a sampling rate
    that is not finite and positive), the dataclass itself (its error)."""
    if dipole.shape[1] >= 2 and type(fs) is float and 0.0 < fs < math.inf:
        src = object.__new__(CardiacSource)
        object.__setattr__(src, "__dict__", {
            "dipole": dipole, "fs": fs, "source_id": source_id, "labels": labels, "residual": None,
            "residual_leads": (), "heart_rate": heart_rate, "breathing_rate": breathing_rate, "metadata": metadata,
            "surface": None, "annotations": annotations, "beat_types": beat_types})
        return src
    return CardiacSource(dipole=dipole, fs=fs, source_id=source_id, labels=labels, heart_rate=heart_rate,
                         breathing_rate=breathing_rate, metadata=metadata, annotations=annotations,
                         beat_types=beat_types)


def synthetic_source(duration: float, fs: float, rng: np.random.Generator, forward, frank_layout, *,
                     rhythm: str = "SR", morphology: str = "NORM", source_id: str = "ode",
                     **synthesize_kwargs) -> CardiacSource:
    """Synthesize beats with :func:`cardiosim.ode.synthesize` and turn them into a dipole source.

    The ODE produces a Frank-axis vectorcardiogram in mV; the dipole (A m, LPS) is the one
    whose Frank-network VCG on the given torso model equals it
    (:func:`cardiosim.inverse.dipole_from_vcg`), so synthetic and real sources share units
    and torso.

    Parameters
    ----------
    duration : float, s
    fs : float, Hz
    rng : numpy.random.Generator
    forward : forward model of the reference torso (``.lead_field``)
    frank_layout : ElectrodeLayout with the Frank electrodes on that torso
    rhythm, morphology : str
        Class names of :data:`cardiosim.ode.CLASSES`.
    source_id : str
    **synthesize_kwargs
        Passed to :func:`cardiosim.ode.synthesize` (heart_rate, patient, prior, ...).

    Returns
    -------
    CardiacSource
        Labels (rhythm, morphology), heart rate from the RR series, the breathing rate that
        modulates the rhythm, and every ODE parameter in ``metadata`` (prefixed ``ode_``).
    """
    fields, checked = _synthetic_fields(duration, fs, rng, forward, frank_layout, rhythm=rhythm,
                                        morphology=morphology, source_id=source_id, **synthesize_kwargs)
    return _source(**fields) if checked else CardiacSource(**fields)


_ODE_FNS = []  # [(ode.synthesize, ode._kernels.all_finite_kernel, _pairwise_kernels.pairwise_sum_flat)]


def _ode_fns() -> tuple:
    """The ODE functions a synthetic source uses, imported (lazily: sources need not load the
    ODE package) once, not at every source (a function-level import costs ~0.8 µs)."""
    if not _ODE_FNS:
        from .._pairwise_kernels import pairwise_sum_flat
        from ..ode import synthesize
        from ..ode._kernels import all_finite_kernel
        _ODE_FNS.append((synthesize, all_finite_kernel, pairwise_sum_flat))
    return _ODE_FNS[0]


#: the parameter value types that go into a source's metadata exactly (``isinstance`` of
#: ``_META_TYPES`` holds for them)
_META_EXACT = frozenset((int, float, str, bool))


def _synthetic_fields(duration, fs, rng, forward, frank_layout, *, rhythm, morphology, source_id,
                      **synthesize_kwargs):
    """:func:`synthetic_source`'s work: ``(fields, checked)``, the ``CardiacSource`` fields as
    keywords and whether its dipole was checked (:func:`_solve_dipole`: then
    :func:`_source` builds it without the dataclass's checks). The dataset plan builds its
    sources from these directly, with its own labels and metadata."""
    synthesize, _, pairwise_sum_flat = _ODE_FNS[0] if _ODE_FNS else _ode_fns()
    beats = synthesize(duration, fs, rng, rhythm=rhythm, morphology=morphology, **synthesize_kwargs)
    dipole, checked = _solve_dipole(beats.vcg, forward, frank_layout)
    rr = np.asarray(beats.rr, dtype=float)
    if rr.ndim == 1 and rr.size and rr.flags.c_contiguous:
        # np.mean's sum (NumPy's pairwise order) and division in one kernel call
        hr = float(60.0 / (pairwise_sum_flat(rr, 0, rr.shape[0]) / rr.shape[0]))
    else:
        hr = float(60.0 / rr.mean()) if rr.size else float("nan")
    meta = {"ode_class": f"{rhythm}+{morphology}"}
    keys = _META_KEYS  # the ~110 parameter names repeat record after record: their names built once
    params = beats.params
    values = params.values()
    if _META_EXACT.issuperset(map(type, values)):
        # every value kept (the common case): names and values zipped, no per-value isinstance
        try:
            meta.update(zip(map(keys.__getitem__, params), values))
        except KeyError:  # a name not seen before (rare: no superset check of the names each record)
            keys.update((k, f"ode_{k}") for k in params if k not in keys)
            meta = {"ode_class": meta["ode_class"]}
            meta.update(zip(map(keys.__getitem__, params), values))
    else:
        if not keys.keys() >= params.keys():
            keys.update((k, f"ode_{k}") for k in params if k not in keys)
        # (one comprehension: the loop with a look-up and a store per name cost ~10 µs more)
        meta.update({keys[k]: v for k, v in params.items() if isinstance(v, _META_TYPES)})
    bt = beats.beat_types
    fields = dict(dipole=dipole, fs=float(beats.fs), source_id=source_id, labels=tuple(beats.labels),
                  heart_rate=hr, breathing_rate=float(params.get("breathing_rate_per_min", np.nan)),
                  metadata=meta, annotations={k: np.asarray(v, dtype=np.int64) for k, v in beats.annotations.items()},
                  # (a str array's tolist() gives the same str values as str() of each)
                  beat_types=tuple(bt.tolist() if isinstance(bt, np.ndarray) and bt.dtype.kind == "U"
                                   else (str(t) for t in bt)))
    return fields, checked
