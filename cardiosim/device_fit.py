"""The textile noise model fitted to your own device's recordings.

The shipped ``activity`` noise (:mod:`cardiosim.noise.textile`) is fitted to one chest strap
worn by five people. A team with hours of its own device's recordings -- no labels needed --
can fit the cells it has recordings for (electrode type x activity) to them instead:

1. every recording is measured as the shipped fit's recordings were
   (:func:`cardiosim.noise.textile.measure_record`: per 2-s segment the non-cardiac residual's
   RMS over the record's QRS peak-to-peak; the residual's spectrum and kurtosis between beats);
   since only ratios and spectral shapes are used, the recordings may be in any unit (ADC
   counts too) and of any gain;
2. the cell's row of the fit table is rebuilt from them (:func:`cardiosim.noise.textile.cell_row`:
   level, its spread inside a record, bursts, spectrum), the rest of the table kept from the
   base fit (the shipped one, or an earlier fit of yours, so cells can be added one by one);
3. the cell's level is calibrated by simulation: records simulated through *your* device
   profile (``device``), measured by the same function, are brought to read the recordings'
   median noise-to-QRS (the simulated QRS sizes and the cardiac floor the measure reads on
   noiseless records are accounted for as in ``scripts/fit_textile_noise.py``).

The result is a fit file for ``[simulation.noise] textile_fit`` in a recipe, or the
``fit`` argument of the textile functions; ``cardiosim noise fit`` is the command line.
Provenance (recordings, their SHA-256, device, calibration) is stored in the file's
``user_cells``.
"""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path

import numpy as np

from .errors import ConfigError, LeadError, SignalError
from .noise import textile


#: Recordings needed before their own between-record spread replaces the base fit's.
MIN_RECORDS_FOR_SPREAD = 6


def measure_recordings(signals, *, rails=None) -> list:
    """:func:`cardiosim.noise.textile.measure_record` of every ``(x, fs)`` in ``signals``
    (one lead each, any unit). Raises :class:`SignalError` naming the recording that cannot be
    measured (too short, NaN samples, fewer than 3 beats) -- nothing is silently dropped."""
    out = []
    for i, (x, fs) in enumerate(signals):
        try:
            out.append(textile.measure_record(np.asarray(x, dtype=np.float64), float(fs), rails=rails))
        except SignalError as exc:
            raise SignalError(f"recording {i}: {exc}") from None
    if not out:
        raise SignalError("no recordings to fit")
    return out


def fitted_cell(measures, electrode: str, activity: str, base: dict) -> dict:
    """The fit table row of ``electrode``/``activity`` rebuilt from ``measures`` (uncalibrated).

    The level is in units of the recordings' own typical QRS (their median QRS peak-to-peak),
    as the shipped fit's is in units of its recordings'. The spread of the level between
    records needs many records: with :data:`MIN_RECORDS_FOR_SPREAD` or more their sample SD (log)
    is used, else the base fit's value (pooled over its 15 cells; a 3-record SD is off by about
    half: on the shipped fit's own recordings it read 0.78-1.13 against the pooled 0.66). Grade fractions are the base fit's grading rule applied to the
    recordings' ratios (there are no graders' labels)."""
    _check_cell(electrode, activity)
    q_typ = float(np.median([m.qrs_pp for m in measures]))
    f_out = np.asarray(base["psd_f_hz"], dtype=np.float64)
    old = base["table"][f"{electrode}/{activity}"]
    if len(measures) >= MIN_RECORDS_FOR_SPREAD:
        med_level = [np.median(np.log(m.noise_to_qrs * m.qrs_pp / q_typ)) for m in measures]
        med_ratio = [np.median(np.log(m.noise_to_qrs)) for m in measures]
        sd_between, sd_ratio = float(np.std(med_level, ddof=1)), float(np.std(med_ratio, ddof=1))
    else:
        sd_between = float(old["log_level_sd_between_records"])
        sd_ratio = float(old.get("log_ratio_sd_between_records", sd_between))
    r = np.concatenate([m.noise_to_qrs for m in measures])
    fractions = textile.grade_fractions(textile.grade(r, base["grading_rule"]["thresholds_noise_to_qrs"]))
    return textile.cell_row(measures, q_typ, f_out, sd_between, sd_ratio, fractions)


def _check_cell(electrode: str, activity: str) -> None:
    if electrode not in textile.ELECTRODES:
        raise ConfigError(f"electrode must be one of {', '.join(textile.ELECTRODES)}, got {electrode!r}")
    if activity not in textile.ACTIVITIES:
        raise ConfigError(f"activity must be one of {', '.join(textile.ACTIVITIES)}, got {activity!r}")


def _simulated_measures(fit_path: str, electrode: str, activity: str, device: str, lead: int, n_records: int,
                        duration: float, seed: int, level_scale: float) -> list:
    """Measures of ``n_records`` simulated records (SR+NORM ODE patients, the same patients
    and draws for every ``level_scale``: common random numbers) through ``device``'s lead
    ``lead`` with the ``fit_path`` noise of the cell at ``level_scale``."""
    from .noise.config import NoiseConfig
    from .simulate import SimulationConfig, simulate_record
    from .sources import synthetic_source

    ctx = _context(device)
    cfg = SimulationConfig(activities={activity: 1.0},
                           noise=NoiseConfig(electrode=electrode, activity_level_scale=level_scale,
                                             textile_fit=fit_path))
    rails = (-ctx.device.input_range_mv, ctx.device.input_range_mv - ctx.device.lsb_mv)
    out = []
    for i in range(n_records):
        key = (device, seed, i, duration)
        if key not in _SOURCES:
            if len(_SOURCES) >= 256:       # one panel's patients are reused pass after pass, not kept forever
                _SOURCES.clear()
            _SOURCES[key] = synthetic_source(duration, 500.0, np.random.default_rng([seed, i]), ctx.forward,
                                             ctx.frank_layout, rhythm="SR", morphology="NORM", source_id=f"fit:{i}")
        rec = simulate_record(_SOURCES[key], np.random.default_rng([seed, i, 1]), context=ctx, config=cfg)
        if not 0 <= lead < rec.ecg.shape[0]:
            raise ConfigError(f"lead {lead} is out of range; device {device!r} records {rec.ecg.shape[0]} leads")
        out.append(textile.measure_record(rec.ecg[lead], rec.fs, rails=rails))
    return out


_SOURCES: dict = {}
_CONTEXTS: dict = {}


def _context(device: str):
    if device not in _CONTEXTS:
        from .simulate import make_context
        _CONTEXTS[device] = make_context(device)
    return _CONTEXTS[device]


def _pooled_median(measures) -> float:
    return float(np.median(np.concatenate([m.noise_to_qrs for m in measures])))


def calibrate_cell(fit: dict, electrode: str, activity: str, *, device: str = "chest_strap_500hz", lead: int = 0,
                   n_records: int = 24, duration: float = 30.0, seed: int = 0, refinements: int = 3,
                   progress=None, spectrum_passes: int = 2) -> dict:
    """Calibrate the level of one cell of ``fit`` (mutated and returned) by simulation.

    Simulated records through ``device`` (its lead ``lead``), measured by the same function as
    the recordings, are brought to read the row's ``noise_to_qrs_median``: the cardiac floor
    ``f`` (what the measure reads with the noise off) is measured on the same patients, and the
    level scale ``s`` is corrected ``refinements`` times by ``want / sqrt(m^2 - f^2)`` with
    ``want = sqrt(target^2 - f^2)`` (noise adds to the floor in quadrature), every record at the
    cell's median level while calibrating (the between-record spread set to 0, so the panel's
    median is not also the sampling error of its level draws). The between-record spread of
    the level is then what the recordings' ratio spread leaves after the simulated patients'
    own QRS spread. Where the floor alone reaches the target the cell is marked
    ``calibration_floor_limited`` (no noise level can match it: the excess is cardiac).

    The spectral shape is calibrated in the first ``spectrum_passes`` passes as the shipped fits'
    are (:func:`cardiosim.noise.textile.spectrum_correction`, stored as ``psd_db_calibration``):
    the simulated records' mean log-spectrum, read by the same measure, is brought to the
    recordings' (the measure otherwise acts twice on simulated noise)."""
    _check_cell(electrode, activity)
    say = progress or (lambda msg: None)
    key = f"{electrode}/{activity}"
    row = fit["table"][key]
    target = float(row["noise_to_qrs_median"])
    spread = row["log_level_sd_between_records"]
    row["log_level_sd_between_records"] = 0.0
    row["log_level_calibration"] = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "calibrating.json")

        def measure(scale):
            textile.clear_caches()         # the file is rewritten between passes
            Path(path).write_text(json.dumps(fit))
            return _simulated_measures(path, electrode, activity, device, lead, n_records, duration, seed, scale)

        panel0 = measure(0.0)
        floor = _pooled_median(panel0)
        sd_qrs = float(np.std(np.log([m.qrs_pp for m in panel0]), ddof=1)) if len(panel0) > 1 else 0.0
        want = float(np.sqrt(max(target ** 2 - floor ** 2, (0.5 * target) ** 2)))
        s = 1.0
        f_out = np.asarray(fit["psd_f_hz"], dtype=np.float64)
        shape = np.zeros(f_out.size)
        row.pop("psd_db_calibration", None)
        for k in range(refinements + 1):
            panel = measure(s)
            m = _pooled_median(panel)
            say(f"{key}: pass {k + 1}: level scale {s:.3f} reads {m:.4f} (target {target:.4f}, floor {floor:.4f})")
            if k < refinements:
                s *= float(want / np.sqrt(max(m * m - floor * floor, (0.05 * m) ** 2)))
                if k < spectrum_passes:
                    shape = textile.spectrum_correction(panel, row["psd_db"], f_out, shape)
                    row["psd_db_calibration"] = [round(float(v), 2) for v in shape]
        textile.clear_caches()
    sd_ratio = float(row.get("log_ratio_sd_between_records", spread))
    row["log_level_sd_between_records"] = round(float(np.sqrt(max(sd_ratio ** 2 - sd_qrs ** 2,
                                                                   (0.5 * sd_ratio) ** 2))), 4)
    row["log_level_calibration"] = round(float(np.log(s)), 4)
    row["calibration_floor_noise_to_qrs"] = round(floor, 5)
    row["calibration_floor_limited"] = bool(floor > 0.87 * target)
    row["calibration_reads_noise_to_qrs"] = round(m, 5)
    return fit


def fit_device_noise(recordings, electrode: str, activity: str, output=None, *, channel: int | str = 0,
                     device: str = "chest_strap_500hz", lead: int = 0, base=None, n_records: int = 24,
                     duration: float = 30.0, seed: int = 0, refinements: int = 3, progress=None) -> dict:
    """Fit the ``electrode`` x ``activity`` cell of the textile noise model to your recordings.

    Parameters
    ----------
    recordings : sequence of WFDB record paths, or of ``(x, fs)`` (one lead, any unit)
        Recordings of your device worn during ``activity`` with ``electrode`` electrodes, each
        at least 4 s with 3 or more beats; tens of seconds each, several wearers, fit best.
    electrode : {'gel', 'dry', 'textile'}
    activity : {'rest', 'arms', 'walk', 'run', 'squats'}
    output : path, optional
        Where to write the fit (JSON, atomically); also returned.
    channel : int or str
        Channel of the WFDB records to read (index or name).
    device : str
        Device profile (name or TOML path) the calibration simulates: the one your recipes use.
    lead : int
        Lead of ``device`` that corresponds to the recordings' channel.
    base : path or dict, optional
        Fit whose other cells are kept (default the shipped fit): fit cells one at a time.
    n_records, duration, seed, refinements :
        Calibration panel: simulated records, their length (s), their seed, correction passes.
    progress : callable(str), optional

    Returns
    -------
    dict -- the fit (the JSON written to ``output``), with ``user_cells[cell]`` recording
    what it was fitted to.
    """
    from ._atomic import atomic_path
    from .dataset.io import sha256_file

    _check_cell(electrode, activity)
    base_fit = copy.deepcopy(textile.load_fit(None if base is None else base) if not isinstance(base, dict) else base)
    textile.check_fit(base_fit, "base fit")
    signals, provenance = [], []
    for r in recordings:
        if isinstance(r, (tuple, list)) and len(r) == 2 and not isinstance(r[0], (str, Path)):
            signals.append((np.asarray(r[0], dtype=np.float64), float(r[1])))
            provenance.append({"recording": f"array {len(provenance)}"})
        else:
            x, fs, name = _read_channel(r, channel)
            signals.append((x, fs))
            hea = Path(str(r)).with_suffix(".hea") if Path(str(r)).suffix != ".hea" else Path(str(r))
            provenance.append({"recording": str(Path(str(r)).resolve()), "channel": name,
                               "header_sha256": sha256_file(hea) if hea.is_file() else ""})
    measures = measure_recordings(signals)
    key = f"{electrode}/{activity}"
    base_fit["table"][key] = fitted_cell(measures, electrode, activity, base_fit)
    calibrate_cell(base_fit, electrode, activity, device=device, lead=lead, n_records=n_records, duration=duration,
                   seed=seed, refinements=refinements, progress=progress)
    base_fit.setdefault("user_cells", {})[key] = {
        "recordings": provenance, "n_segments": int(sum(m.noise_to_qrs.size for m in measures)),
        "device": device, "lead": lead,
        "calibration": {"n_records": n_records, "duration_s": duration, "seed": seed, "refinements": refinements},
        "how": "cardiosim.device_fit.fit_device_noise",
    }
    textile.check_fit(base_fit, "fitted")
    if output is not None:
        with atomic_path(output) as tmp:
            Path(tmp).write_text(json.dumps(base_fit, indent=1, sort_keys=True) + "\n")
    return base_fit


def _read_channel(path, channel):
    """``(x float64, fs, channel name)`` of one channel of a WFDB record (any unit)."""
    from .sources.wfdb_reader import read_wfdb_signal

    x, fs, names, _ = read_wfdb_signal(path, lead_names=False, require_volts=False)
    names = [str(n) for n in names]
    if isinstance(channel, str) and not channel.isdigit():
        if channel not in names:
            raise LeadError(f"{path}: unknown channel {channel!r}; the record has {', '.join(names)}")
        k = names.index(channel)
    else:
        k = int(channel)
        if not 0 <= k < len(names):
            raise LeadError(f"{path}: channel {k} is out of range; the record has {len(names)} channels")
    return x[k], float(fs), names[k]
