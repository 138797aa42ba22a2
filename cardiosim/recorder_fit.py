"""Which front end recorded a set of real resting 12-lead records: their high-pass corner.

Real 12-lead records reach a user through their recorder's front end and export, and some are
high-passed well above the diagnostic 0.05 Hz (AHA; Kligfield et al., Circulation 2007). Below
0.5 Hz such a high-pass is the only thing that makes a record's power *rise* with frequency:
electrode drift and respiration fall (``cardiosim.noise.drift``). So a source (the CinC 2021
record-name prefix, :func:`cardiosim.noise.drift.resting_source`) whose records' median power
rises from 0.1 to 0.5 Hz (:func:`rising_sources`) gets a corner: the corner of :data:`CORNER_GRID`
through which simulated resting 12-lead records, at the drift level fitted to the other recorders,
read the source's own wander ratios (:func:`corner_by_wander`). The 0.1-0.7 Hz shape that tells a
high-passed source from the others is too flat above 0.2 Hz to place its corner from a few records
(simulated, five records: 0.35 Hz read anywhere from 0.2 to 0.6), the wander level is not (within
one grid step from five records, exact from twelve). Sources whose power falls keep
:data:`cardiosim.noise.drift.DIAGNOSTIC_CORNER_HZ`.

Used by ``scripts/fit_holter_drift.py`` (which ships its result in
:data:`cardiosim.noise.drift.RESTING_CORNER_HZ`) and by ``tests/test_noise_drift.py`` for sources of
a data folder that the shipped table does not know. Sits above :mod:`cardiosim.dataset`, since it
simulates (as :mod:`cardiosim.device_fit` does).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from .errors import ConfigError, SignalError
from .noise import drift

#: Where the low-frequency shape is read (Hz; dB re the first).
LOW_F = (0.1, 0.2, 0.3, 0.4, 0.5, 0.7)
#: Candidate corners (Hz) of a source whose power rises below 0.5 Hz.
CORNER_GRID = (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6)


def low_shape(signals, fs: float) -> np.ndarray:
    """Median over ``signals`` (1-D windows, mean removed, Hann) of the periodogram at
    :data:`LOW_F`, in dB relative to its value at 0.1 Hz.

    Raises
    ------
    SignalError
        No signals, or non-finite samples.
    """
    from scipy import signal as sp

    rows = []
    for v in signals:
        v = np.asarray(v, dtype=np.float64)
        if not np.all(np.isfinite(v)):
            raise SignalError("low_shape: a signal has non-finite samples")
        v = v - v.mean()
        f, p = sp.periodogram(v * sp.windows.hann(v.size), fs)
        rows.append(10 * np.log10(np.interp(LOW_F, f, p) + 1e-30))
    if not rows:
        raise SignalError("low_shape: no signals")
    m = np.median(rows, axis=0)
    return m - m[0]


def resting_signals(data_dir, names, leads=("I", "II")) -> tuple[list, float]:
    """The first :data:`cardiosim.noise.drift.WINDOW_S` seconds of ``leads`` of the CinC 2021
    records ``names`` under ``data_dir/cinc2021`` and their rate (one rate for all: a
    :class:`SignalError` otherwise)."""
    import wfdb

    out, rates = [], set()
    for n in names:
        rec = wfdb.rdrecord(str(Path(data_dir) / "cinc2021" / n))
        fs = float(rec.fs)
        rates.add(fs)
        for ld in leads:
            if ld not in rec.sig_name:
                raise SignalError(f"CinC 2021 record {n} has no lead {ld!r}")
            out.append(rec.p_signal[: int(round(drift.WINDOW_S * fs)), rec.sig_name.index(ld)])
    if len(rates) > 1:
        raise SignalError(f"records {list(names)} are sampled at different rates {sorted(rates)} Hz")
    return out, rates.pop()


#: Percentiles of the wander ratio compared (the drift fit's).
WANDER_Q = (10, 25, 50, 75, 90)


def rising_sources(data_dir, names, skip=(), log=None) -> dict:
    """``{source: low_shape}`` of the CinC 2021 sources among ``names`` whose median power rises
    from 0.1 to 0.5 Hz (:func:`low_shape` at 0.5 Hz > 0 dB): high-passed above the drift band.
    Sources in ``skip`` are not read. ``log`` (a callable) receives every source's shape."""
    names = tuple(names)
    if not names:
        raise ConfigError("rising_sources: no record names")
    by_source: dict = {}
    for n in names:
        by_source.setdefault(drift.resting_source(n), []).append(n)
    out = {}
    for src, sel in sorted(by_source.items()):
        if src in skip:
            continue
        sigs, fs = resting_signals(data_dir, sel)
        shape = low_shape(sigs, fs)
        rising = bool(shape[LOW_F.index(0.5)] > 0.0)
        if log:
            log(f"  source {src} ({len(sel)} records): shape dB re 0.1 Hz at {LOW_F} Hz "
                f"{np.round(shape, 1).tolist()} -> {'rising: high-passed' if rising else 'falling: 0.05 Hz'}")
        if rising:
            out[src] = shape
    return out


def simulated_wander(recipe) -> np.ndarray:
    """Wander ratios (:func:`cardiosim.noise.drift.wander_ratio_db`, every window of leads I and
    II) of the records ``recipe`` (a :class:`cardiosim.dataset.Recipe`) makes, simulated in
    memory."""
    from .dataset.generate import PreparedRecipe, simulate_block

    ds = simulate_block(PreparedRecipe.of(recipe), 0, recipe.records)
    leads = [str(v) for v in ds["lead"].values]
    for ld in ("I", "II"):
        if ld not in leads:
            raise ConfigError(f"the recipe's device records no lead {ld!r} (leads {leads})")
    x = ds["ecg"].values[:, [leads.index("I"), leads.index("II")]].astype(np.float64)
    fs = float(ds.attrs["sampling_rate"])
    return np.concatenate([drift.wander_ratio_db(r, fs) for r in x.reshape(-1, x.shape[-1])])


def simulated_resting_wander(corner_hz: float, records: int, seed: int, noise: dict | None = None) -> np.ndarray:
    """:func:`simulated_wander` of ``records`` resting 12-lead records
    (``sim2real.conditions.resting_12lead_recipe``, ``noise`` merged into ``[simulation.noise]``)
    through a front end with its high-pass at ``corner_hz`` (:func:`cardiosim.noise.drift.recorder_profile`)."""
    from .sim2real.conditions import resting_12lead_recipe

    with tempfile.TemporaryDirectory() as tmp:
        return simulated_wander(resting_12lead_recipe(records, seed, dict(noise or {}),
                                                      device=drift.recorder_profile(corner_hz, tmp)))


def corner_by_wander(real_ratios, records: int, seed: int, noise: dict | None = None, grid=CORNER_GRID,
                     log=None) -> tuple[float, dict]:
    """The corner of ``grid`` whose simulated resting records (the drift ``noise``: the level
    fitted to the other recorders) read the wander ratios ``real_ratios`` of a high-passed
    source: least RMS difference of the :data:`WANDER_Q` percentiles. ``(corner, {corner: dB})``.

    With the drift's level known, how much of it a record keeps in 0.1-0.3 Hz is a steep function
    of the corner (simulated, 0.1 to 0.6 Hz: about 20 dB), where the 0.1-0.7 Hz *shape* of a few
    records hardly tells 0.25 from 0.6 Hz (``tests/test_noise_drift.py``)."""
    real = np.asarray(real_ratios, dtype=np.float64).ravel()
    if real.size == 0 or not np.all(np.isfinite(real)):
        raise SignalError(f"corner_by_wander needs finite wander ratios of the source's records, got {real.size} "
                          f"values{'' if real.size == 0 else ' with non-finite ones'}")
    real_q = np.percentile(real, WANDER_Q)
    dist = {}
    for c in grid:
        sim_q = np.percentile(simulated_resting_wander(c, records, seed, noise), WANDER_Q)
        dist[c] = float(np.sqrt(np.mean((sim_q - real_q) ** 2)))
    best = min(dist, key=dist.get)
    if log:
        log("    wander percentiles, RMS dB by corner: " + ", ".join(f"{c:g}: {d:.1f}" for c, d in dist.items())
            + f" -> {best:g} Hz")
    return best, dist


def fit_recorder_corners(data_dir, names, seed: int, *, records: int = 120, noise: dict | None = None,
                         skip=(), log=None) -> dict:
    """``{source: corner Hz}`` of the CinC 2021 sources among ``names`` (under
    ``data_dir/cinc2021``) that were high-passed above the drift band (:func:`rising_sources`),
    each source's corner by :func:`corner_by_wander` on its records' wander ratios, simulated
    with ``records`` records, ``seed`` and the drift ``noise`` (default: as shipped). Sources in
    ``skip`` and sources whose power falls are left out."""
    out = {}
    for src in rising_sources(data_dir, names, skip=skip, log=log):
        sel = [n for n in names if drift.resting_source(n) == src]
        out[src], _ = corner_by_wander(drift.resting_wander(data_dir, sel), records, seed, noise, log=log)
    return out
