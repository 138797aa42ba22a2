"""The output dataset: simulated records -> ``xarray.Dataset`` in the DESIGN.md schema.

In memory (what :func:`records_to_dataset` returns and :func:`cardiosim.dataset.open_dataset`
gives back):

| name             | dims                     | dtype   | meaning                                             |
| ---------------- | ------------------------ | ------- | --------------------------------------------------- |
| ecg              | record, lead, time       | float32 | simulated device recording, mV                      |
| clean_ecg        | record, lead, time       | float32 | the same device recording without noise (optional)  |
| label            | record, class            | int8    | multi-hot labels (flag_values 0 1)                  |
| source_id        | record                   | str     | provenance of the cardiac source                    |
| split            | record                   | str     | train / val / test (per source record)              |
| fold             | record                   | int16   | PTB-XL strat_fold, -1 (the _FillValue) when none    |
| variant          | record                   | int32   | variant number of the source record                 |
| displacement     | record, electrode, space | float32 | mean electrode displacement on the body, m          |
| snr_db           | record, noise            | float32 | realised SNR per noise kind, dB (NaN: off)          |
| snr_lead_db      | record, noise, lead      | float32 | realised SNR per noise kind and lead, dB            |
| heart_rate       | record                   | float32 | min-1 (beats per minute)                            |
| artefact_grade   | record (, segment)       | int8    | artefact grade 1-4 per record (per 2-s segment)     |
| accelerometer    | record, axis, time       | float32 | device accelerometer, m s-2 (if simulated)          |
| beat_<wave>      | record, beat             | int32   | ground-truth sample index at the output rate, -1 none|
| beat_type        | record, beat             | str     | WFDB beat symbol (N, V, A, Q), "" past the last beat|
| param_<name>     | record                   | float64 or str | one variable per simulation parameter        |

``beat_<wave>`` are ``p_onset, p_peak, qrs_onset, r_peak, qrs_offset, t_peak, t_offset``
(ODE sources: the generator's own delineation, :class:`cardiosim.ode.Beats`; real sources:
``r_peak`` only, from the QRS detector on the noiseless projection). The ``beat`` axis is
sized for 300 beats/min over the record, so it is the same in every shard of a recipe.
:func:`parameters` turns the ``param_*`` variables into a pandas DataFrame.

Coordinates ``record`` (int), ``time`` (s) and the string labels ``lead``, ``class``,
``electrode``, ``space``, ``noise``, ``axis``; ``class_snomed`` and ``class_scp`` give the
SNOMED CT and SCP-ECG codes of each class (space-separated, from the label map).

On disk (:func:`encode_cf`, applied by :func:`cardiosim.dataset.write_netcdf`) the files
follow CF-1.11: the string labels become auxiliary coordinate variables ``lead_name(lead)``,
``class_name(class)``, ... (CF section 6.1: coordinate variables are numeric), the time
axis is called ``elapsed_time`` (CF keeps ``time`` for dates), units are UDUNITS, and
integer variables with missing entries carry ``_FillValue``.
:func:`decode_cf` restores the in-memory form.

Attributes: ``sampling_rate``, ``device``, ``recipe`` (TOML), ``seed``,
``cardiosim_version``, ``Conventions``, ``title``, ``history``, ``source``.
Only strings and numbers are stored as attributes; storage settings live in ``.encoding``.
No wall-clock time is written, so the same recipe gives a byte-identical file.
"""

from __future__ import annotations

import math
import re

import numpy as np
import xarray as xr

from .._version import __version__
from ..errors import ConfigError, SignalError

SPACE = ("x", "y", "z")
AXIS = ("x", "y", "z")
CONVENTIONS = "CF-1.11"
#: Ground-truth waves stored per beat (keys of :attr:`SimulatedRecord.annotations`).
ANNOTATION_KEYS = ("P_onset", "P_peak", "QRS_onset", "R_peak", "QRS_offset", "T_peak", "T_offset")
#: Highest heart rate the ``beat`` axis has room for (beats per minute).
MAX_BEAT_RATE = 300.0
_STRING_AXES = ("lead", "class", "electrode", "space", "noise", "axis", "vcg_lead", "ode_wave")
_PARAM_PREFIX = "param_"
_INT_FILL = -1
ELAPSED_TIME = "elapsed_time"  # the name of the time axis on disk (encode_cf)


def annotation_variable(key: str) -> str:
    """Dataset variable of an annotation key: ``'QRS_onset'`` -> ``'beat_qrs_onset'``."""
    return "beat_" + key.lower()


def beat_capacity(n_samples: int, fs: float) -> int:
    """Size of the ``beat`` axis for records of ``n_samples`` at ``fs`` Hz (MAX_BEAT_RATE)."""
    return int(math.ceil(n_samples / fs * MAX_BEAT_RATE / 60.0)) + 1


_PLAIN = (float, int, str, bool)
_PLAIN_SET = frozenset(_PLAIN)
_FLOAT = {float}


def _flat_params(params: dict) -> dict:
    """Scalars as they are; arrays/lists spread into ``key[i,j]`` entries; None dropped."""
    if set(map(type, params.values())) <= _PLAIN_SET:   # the common case: every value a plain scalar
        return params
    out = {}
    for key, value in params.items():
        if type(value) in _PLAIN:          # the common case first: most parameters are plain scalars
            out[key] = value
        elif value is None:
            continue
        elif isinstance(value, (list, tuple, np.ndarray)):
            arr = np.asarray(value)
            if arr.ndim == 1:
                for i, v in enumerate(arr.tolist()):
                    out[f"{key}[{i}]"] = v
            else:
                for idx in np.ndindex(arr.shape):
                    out[f"{key}[{','.join(map(str, idx))}]"] = arr[idx].item()
        elif isinstance(value, np.generic):
            out[key] = value.item()
        else:
            out[key] = value
    return out


def _param_var_name(key: str) -> str:
    return _PARAM_PREFIX + re.sub(r"[^A-Za-z0-9_]", "_", key)


# Parameter families stored as arrays rather than one variable per member:
# ``<family>.e<k>`` per electrode k, ``<family>.<lead>`` per device lead, and
# ``<family>.<X|Y|Z>.<wave>.<quantity>`` per Frank axis and ODE wave (the Gaussian-wave
# patient). Their axes are the same in every shard.
_ELECTRODE_KEY = re.compile(r"^(?P<fam>[^.\[\]]+)\.e(?P<i>\d+)$")
_WAVE_KEY = re.compile(r"^(?P<fam>[^.\[\]]+)\.(?P<ax>[XYZ])\.(?P<wave>[A-Za-z0-9]+)\.(?P<q>[A-Za-z0-9_]+)$")
VCG_LEADS = ("X", "Y", "Z")


def _ode_waves() -> tuple:
    from ..ode import WAVES
    return tuple(WAVES)


def _family_of_uncached(key: str, n_electrodes: int, waves: tuple, leads: tuple = ()):
    """``(variable name, dims after record, index)`` of a family member, or None for a scalar."""
    m = _ELECTRODE_KEY.match(key)
    if m and int(m["i"]) < n_electrodes:
        return _param_var_name(m["fam"]), ("electrode",), (int(m["i"]),)
    m = _WAVE_KEY.match(key)
    if m and m["wave"] in waves:
        return (_param_var_name(f"{m['fam']}_{m['q']}"), ("vcg_lead", "ode_wave"),
                (VCG_LEADS.index(m["ax"]), waves.index(m["wave"])))
    head, _, last = key.rpartition(".")
    if head and last in leads and "[" not in key:
        return _param_var_name(head), ("lead",), (leads.index(last),)
    return None


_FAMILY_OF: dict = {}


def _family_of(key: str, n_electrodes: int, waves: tuple, leads: tuple = ()):
    """:func:`_family_of_uncached`, remembered: a block asks it the same ~300 keys (three
    regular expressions each) that every block of the recipe asks."""
    arg = (key, n_electrodes, waves, leads)
    hit = _FAMILY_OF.get(arg, _FAMILY_OF)
    if hit is _FAMILY_OF:
        if len(_FAMILY_OF) > 65536:   # bounded whatever the parameter names
            _FAMILY_OF.clear()
        hit = _FAMILY_OF[arg] = _family_of_uncached(key, n_electrodes, waves, leads)
    return hit


def _parameter_variables(records, n_electrodes: int, leads: tuple = ()) -> dict:
    """Typed variables holding every record's parameters (NaN / "" where a record lacks one).

    Numbers (int, float, bool) are float64 with ``parameter_type`` telling which they were;
    strings stay strings; families (see ``_family_of``) become arrays over ``electrode`` or
    (``vcg_lead``, ``ode_wave``). Attribute ``parameter`` gives the original key (with
    ``{electrode}`` or ``{axis}``/``{wave}`` placeholders for families).
    """
    waves = _ode_waves()
    n = len(records)
    columns = _parameter_columns([_flat_params(r.params) for r in records], n)
    out, owner = {}, {}
    families: dict = {}
    for key in sorted(columns):
        values = columns[key]
        kinds = set(map(type, values))
        missing = type(None) in kinds
        kinds.discard(type(None))
        fam = _family_of(key, n_electrodes, waves, leads) if kinds <= {bool, int, float} else None
        if fam is not None:
            name, dims, idx = fam
            entry = families.get(name)
            if entry is None:   # (built once per family, not once per member)
                entry = families[name] = {"dims": dims, "kinds": set(), "template": key,
                                          "data": np.full((n,) + tuple(
                                              {"electrode": n_electrodes, "vcg_lead": 3, "lead": len(leads),
                                               "ode_wave": len(waves)}[d] for d in dims), np.nan)}
            entry["kinds"] |= kinds
            if missing:
                for i, v in enumerate(values):
                    if v is not None:
                        entry["data"][(i,) + idx] = float(v)
            else:
                entry["data"][(slice(None),) + idx] = values if kinds == _FLOAT else [float(v) for v in values]
            continue
        name = _param_var_name(key)
        if name in owner:
            raise ConfigError(f"parameters {owner[name]!r} and {key!r} map to the same variable {name!r}")
        owner[name] = key
        if kinds <= {str}:
            data, kind = np.array(["" if v is None else v for v in values] if missing else values, dtype=object), "str"
        elif kinds <= {bool, int, float}:
            kind = _number_kind(kinds)
            data = np.array([np.nan if v is None else float(v) for v in values] if missing else
                            values if kinds == {float} else [float(v) for v in values], dtype=np.float64)
        else:
            raise ConfigError(f"parameter {key!r} mixes value types {sorted(k.__name__ for k in kinds)}")
        out[name] = (("record",), data, {"long_name": f"simulation parameter {key}", "parameter": key,
                                          "parameter_type": kind})
    for name, entry in families.items():
        if name in owner:
            raise ConfigError(f"parameter family {entry['template']!r} and {owner[name]!r} map to {name!r}")
        m = _ELECTRODE_KEY.match(entry["template"])
        if entry["dims"] == ("lead",):
            pattern = entry["template"].rpartition(".")[0] + ".{lead}"
        elif m:
            pattern = f"{m['fam']}.e{{electrode}}"
        else:
            pattern = "{fam}.{{axis}}.{{wave}}.{q}".format(**_WAVE_KEY.match(entry["template"]).groupdict())
        out[name] = (("record",) + entry["dims"], entry["data"], {
            "long_name": f"simulation parameter {pattern}", "parameter": pattern,
            "parameter_type": _number_kind(entry["kinds"])})
    return out


def _parameter_columns(flats: list, n: int) -> dict:
    """key -> one value per record (None where a record lacks the key), from the records' flat
    parameter dicts. Records whose keys come in the same order (nearly always all of a block)
    are transposed together with ``zip``: no Python step per record and key."""
    groups: dict = {}
    for i, f in enumerate(flats):
        groups.setdefault(tuple(f), []).append(i)
    if len(groups) == 1:
        keys = next(iter(groups))
        return {key: list(col) for key, col in zip(keys, zip(*[f.values() for f in flats]))}
    # Several key sets (e.g. rhythms with their own parameters): each group's columns are
    # scattered into lists (the values stay the Python objects they were). A plain loop: the
    # groups are small (a few records each), where NumPy's per-call cost outweighed its loop.
    partial: dict = {}
    for keys, rows in groups.items():
        for key, col in zip(keys, zip(*[flats[i].values() for i in rows])):
            full = partial.get(key)
            if full is None:
                full = partial[key] = [None] * n
            for i, v in zip(rows, col):
                full[i] = v
    return partial


def _number_kind(kinds: set) -> str:
    return "bool" if kinds == {bool} else "int" if kinds <= {bool, int} else "float"


def _annotation_variables(records, n_t: int, fs: float) -> dict:
    cap = beat_capacity(n_t, fs)
    n = len(records)
    arrays = {k: np.full((n, cap), _INT_FILL, dtype=np.int32) for k in ANNOTATION_KEYS}
    types = np.full((n, cap), "", dtype=object)
    if not _fill_annotations_at_once(records, n_t, cap, arrays, types):
        _fill_annotations(records, n_t, cap, arrays, types)
    out = {}
    for k in ANNOTATION_KEYS:
        out[annotation_variable(k)] = (("record", "beat"), arrays[k], {
            "long_name": f"ground-truth {k.replace('_', ' ')} of each beat, as a sample index along time",
            "units": "1", "comment": "index i is at time i / sampling_rate; -1: no such wave or no beat"})
    out["beat_type"] = (("record", "beat"), types, {
        "long_name": "WFDB beat annotation symbol (N normal/conducted, V ventricular, A atrial premature, "
                     "Q unclassified); empty past the last beat"})
    return out


def _fill_annotations_at_once(records, n_t: int, cap: int, arrays: dict, types) -> bool:
    """The block's beats written with one masked assignment per variable, when each wave is
    in every record or in none, as one index per beat within ``-1 .. n_t - 1``; False (nothing
    written) otherwise -- :func:`_fill_annotations` then goes record by record and names the
    record at fault."""
    counts = np.array([len(r.beat_types) for r in records], dtype=np.int64)
    if counts.size == 0 or counts.max() > cap:
        return False
    anns = [r.annotations or {} for r in records]
    stacked = {}
    for k in ANNOTATION_KEYS:
        present = sum(k in a for a in anns)
        if present == 0:
            continue            # no record has this wave (real sources: R peaks only): stays -1
        if present < len(anns):
            return False
        parts = [np.asarray(a[k], dtype=np.int64) for a in anns]
        if any(p.ndim != 1 for p in parts) or not np.array_equal([p.size for p in parts], counts):
            return False
        v = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        if v.size and (v.min() < -1 or v.max() >= n_t):
            return False
        stacked[k] = v
    mask = np.arange(cap)[None, :] < counts[:, None]   # row-major: record by record, beat by beat
    types[mask] = [str(t) for r in records for t in r.beat_types]
    for k, v in stacked.items():
        arrays[k][mask] = v
    return True


def _fill_annotations(records, n_t: int, cap: int, arrays: dict, types) -> None:
    for i, r in enumerate(records):
        ann = r.annotations or {}
        n_beats = len(r.beat_types)
        if n_beats > cap:
            raise SignalError(f"record {r.source_id!r} has {n_beats} beats, more than the {cap} its "
                              f"{n_t} samples hold at {MAX_BEAT_RATE:g} beats/min")
        types[i, :n_beats] = [str(t) for t in r.beat_types]
        for k in ANNOTATION_KEYS:
            if k in ann:
                v = np.asarray(ann[k], dtype=np.int64)
                if v.shape != (n_beats,):
                    raise SignalError(f"record {r.source_id!r}: annotation {k} has {v.size} entries for "
                                      f"{n_beats} beats")
                if np.any((v < -1) | (v >= n_t)):
                    raise SignalError(f"record {r.source_id!r}: annotation {k} outside 0..{n_t - 1}")
                arrays[k][i, :n_beats] = v


def _class_code_coords(classes, label_map) -> dict:
    coords = {}
    for system, label in (("snomed", "SNOMED CT concept ids"), ("scp", "SCP-ECG statement codes")):
        codes = [" ".join(label_map.codes_for(c, system)) if label_map is not None else "" for c in classes]
        coords[f"class_{system}"] = ("class", np.array(codes, dtype=object),
                                     {"long_name": f"{label} of each class (space-separated; empty: none)"})
    return coords


def _stacked(stacked: dict, name: str, records, part, copy: bool) -> np.ndarray:
    """``np.stack([part(r) for r in records]).astype(np.float32, copy=copy)``, or the caller's
    stacked array ``stacked[name]`` (checked: float32, one row per record of its shape)."""
    arr = stacked.get(name)
    if arr is None:
        return np.stack([part(r) for r in records]).astype(np.float32, copy=copy)
    want = (len(records),) + part(records[0]).shape
    if not isinstance(arr, np.ndarray) or arr.dtype != np.float32 or arr.shape != want:
        raise SignalError(f"stacked {name} must be float32 of shape {want}, got "
                          f"{getattr(arr, 'dtype', type(arr).__name__)} {getattr(arr, 'shape', '')}")
    return arr


def records_to_dataset(records, *, indices, classes, splits, folds, variants, noise_kinds, recipe_toml: str,
                       seed: int, device_name: str, label_map=None, stacked=None) -> xr.Dataset:
    """Assemble simulated records into one ``xarray.Dataset`` (in-memory form, module docstring).

    Parameters
    ----------
    records : sequence of SimulatedRecord
        All with the same leads, electrodes, sampling rate and length.
    indices : sequence of int
        Global record indices (the ``record`` coordinate).
    classes : sequence of str
        Label vocabulary; every record label must be in it.
    splits, folds, variants : sequences, one per record
    noise_kinds : sequence of str
        The ``noise`` coordinate (constant over the dataset).
    label_map : LabelMap, optional
        Source of the ``class_snomed`` / ``class_scp`` codes (empty codes without it).
    stacked : dict, optional
        ``'ecg'``, ``'clean_ecg'`` and/or ``'accelerometer'``: the records' arrays already
        stacked along a first ``record`` axis, float32 (what stacking them here would give:
        ``ecg``, ``clean_ecg`` and ``accelerometer[:, :T]``), used as they are. A block writes each record into such
        an array as it is simulated, while the record is still in cache, instead of reading
        every record back here.
    """
    stacked = dict(stacked or {})
    if len(records) == 0:
        raise SignalError("cannot build a dataset from zero records")
    first = records[0]
    n_t = first.ecg.shape[1]
    for r in records:
        if r.ecg.shape != first.ecg.shape or r.leads != first.leads or r.fs != first.fs:
            raise SignalError(f"record {r.source_id!r} has shape {r.ecg.shape} at {r.fs} Hz with leads {r.leads}; "
                              f"expected {first.ecg.shape} at {first.fs} Hz with {first.leads}")
    classes = tuple(classes)
    class_index = {c: k for k, c in enumerate(classes)}
    label = np.zeros((len(records), len(classes)), dtype=np.int8)
    for i, r in enumerate(records):
        for lab in r.labels:
            if lab not in class_index:
                raise SignalError(f"record {r.source_id!r} has label {lab!r} outside the dataset classes {classes}")
            label[i, class_index[lab]] = 1
    noise_kinds = tuple(noise_kinds)
    snr = np.full((len(records), len(noise_kinds)), np.nan, dtype=np.float32)
    for i, r in enumerate(records):
        for k, kind in enumerate(noise_kinds):
            if kind in r.snr_db:
                snr[i, k] = r.snr_db[kind]
    # per-lead realised SNR (cardiosim.noise.scale_electrode_noise puts it in the params)
    snr_lead = np.full((len(records), len(noise_kinds), len(first.leads)), np.nan, dtype=np.float32)
    # the keys formed once per block, not once per record (row assignment casts to float32 as
    # element assignment does)
    lead_keys = [f"noise_snr_lead_db.{kind}.{lead}" for kind in noise_kinds for lead in first.leads]
    if lead_keys:
        flat = snr_lead.reshape(len(records), -1)
        for i, r in enumerate(records):
            get = r.params.get
            flat[i] = [get(key, np.nan) for key in lead_keys]
    snr_how = sorted({f"{r.params.get('noise_snr_definition', 'nstdb')} definition, "
                      f"targets {r.params.get('noise_snr_targeting', 'none')}" for r in records})
    fs = float(first.fs)
    data_vars = {
        "ecg": (("record", "lead", "time"), _stacked(stacked, "ecg", records, lambda r: r.ecg, copy=False),
                {"units": "mV", "long_name": "simulated device ECG"}),
        "label": (("record", "class"), label, {"long_name": "multi-hot class labels",
                                               "flag_values": np.array([0, 1], dtype=np.int8),
                                               "flag_meanings": "absent present"}),
        "source_id": (("record",), np.array([r.source_id for r in records], dtype=object),
                      {"long_name": "provenance of the cardiac source"}),
        "split": (("record",), np.array(list(splits), dtype=object),
                  {"long_name": "data split; all variants of a source record share it"}),
        "fold": (("record",), np.asarray(folds, dtype=np.int16),
                 {"long_name": "PTB-XL strat_fold", "comment": "-1 (the _FillValue on disk): no fold"}),
        "variant": (("record",), np.asarray(variants, dtype=np.int32),
                    {"long_name": "shirt variant number of the source record"}),
        "displacement": (("record", "electrode", "space"), np.stack([r.displacement for r in records]).astype(np.float32),
                         {"units": "m", "long_name": "mean electrode displacement from the layout position (LPS frame)"}),
        "snr_db": (("record", "noise"), snr, {
            "units": "1", "long_name": "realised signal-to-noise ratio per noise kind, in decibels",
            "comment": "10 log10(signal power / noise power), pooled over the leads (sum S / sum N); UDUNITS has "
                       "no decibel, hence units 1; NaN: noise off",
            "snr_definition": "; ".join(snr_how), "snr_pooling": "pooled over leads (per lead: snr_lead_db)"}),
        "snr_lead_db": (("record", "noise", "lead"), snr_lead, {
            "units": "1", "long_name": "realised signal-to-noise ratio per noise kind and lead, in decibels",
            "comment": "NSTDB definition (cardiosim.noise.snr); per-lead targets are met where the montage allows, "
                       "the rest is what was reached; NaN: not measured",
            "snr_definition": "; ".join(snr_how)}),
        "heart_rate": (("record",), np.array([r.heart_rate for r in records], dtype=np.float32),
                       {"units": "min-1", "long_name": "mean heart rate of the source, beats per minute"}),
    }
    if any(r.clean_ecg is not None for r in records):
        if not all(r.clean_ecg is not None and r.clean_ecg.shape == first.ecg.shape for r in records):
            raise SignalError("either every record of a dataset carries clean_ecg of the ecg's shape or none")
        data_vars["clean_ecg"] = (("record", "lead", "time"), _stacked(stacked, "clean_ecg", records, lambda r: r.clean_ecg,
                                                                copy=True),
                                  {"units": "mV", "long_name": "simulated device ECG without noise",
                                   "comment": "same record, garment, motion and device as ecg; no electrode noise"})
    if all(r.accelerometer is not None for r in records):
        acc = _stacked(stacked, "accelerometer", records, lambda r: r.accelerometer[:, :n_t], copy=True)
        data_vars["accelerometer"] = (("record", "axis", "time"), acc,
                                      {"units": "m s-2", "long_name": "device accelerometer (LPS axes)"})
    data_vars.update(_annotation_variables(records, n_t, fs))
    data_vars.update(_grade_variables(records, n_t, fs))
    data_vars.update(_parameter_variables(records, len(first.electrodes), tuple(first.leads)))
    coords = {
        "record": ("record", np.asarray(indices, dtype=np.int64), {"long_name": "record index in the dataset"}),
        "lead": ("lead", np.array(first.leads, dtype=object), {"long_name": "device lead"}),
        "time": ("time", np.arange(n_t, dtype=np.float64) / fs,
                 {"units": "s", "long_name": "time since the start of the record"}),
        "class": ("class", np.array(classes, dtype=object), {"long_name": "label class"}),
        "electrode": ("electrode", np.array(first.electrodes, dtype=object), {"long_name": "electrode"}),
        "space": ("space", np.array(SPACE, dtype=object), {"long_name": "LPS axis (+x left, +y posterior, +z superior)"}),
        "noise": ("noise", np.array(noise_kinds, dtype=object), {"long_name": "noise kind"}),
    }
    coords.update(_class_code_coords(classes, label_map))
    if "accelerometer" in data_vars:
        coords["axis"] = ("axis", np.array(AXIS, dtype=object), {"long_name": "accelerometer axis"})
    if any("vcg_lead" in v[0] for v in data_vars.values()):
        coords["vcg_lead"] = ("vcg_lead", np.array(VCG_LEADS, dtype=object), {"long_name": "Frank VCG lead"})
        coords["ode_wave"] = ("ode_wave", np.array(_ode_waves(), dtype=object),
                              {"long_name": "Gaussian wave of the ODE beat model"})
    attrs = {
        "title": "cardiosim synthetic wearable ECG",
        "Conventions": CONVENTIONS,
        "sampling_rate": fs,
        "device": device_name,
        "recipe": recipe_toml,
        "seed": int(seed),
        "cardiosim_version": __version__,
        "history": f"generated by cardiosim {__version__} from the stored recipe",
        "source": "cardiosim physics-based simulation (https://github.com/cardiosim/cardiosim)",
    }
    # Every data variable above is a NumPy array of its final dtype: wrapped as it is
    # (fastpath), not checked and converted again (a pandas round trip per str variable).
    data_vars = {k: xr.Variable(v[0], v[1], v[2], fastpath=True) if isinstance(v[1], np.ndarray) else v
                 for k, v in data_vars.items()}
    return xr.Dataset(data_vars=data_vars, coords=coords, attrs=attrs)


def _grade_variables(records, n_t: int, fs: float) -> dict:
    """Artefact grade 1-4 per record and per 2-s segment (:func:`cardiosim.noise.textile.artefact_grades`),
    when the records carry them (noisy simulations)."""
    if not records or not all("artefact_grade" in r.params for r in records):
        return {}
    n_seg = int(n_t // round(2.0 * fs))
    seg = np.zeros((len(records), n_seg), dtype=np.int8)
    for i, r in enumerate(records):
        digits = str(r.params.get("artefact_grade_segments", ""))
        if len(digits) != n_seg:
            raise SignalError(f"record {r.source_id!r} has {len(digits)} segment grades, expected {n_seg}")
        seg[i] = [int(c) for c in digits]
    about = "1 little or no artefact ... 4 severe; rule fitted to human graders of real chest-strap records"
    return {"artefact_grade": (("record",), np.array([r.params["artefact_grade"] for r in records], dtype=np.int8),
                               {"long_name": "artefact grade of the record", "comment": about}),
            "artefact_grade_segment": (("record", "segment"), seg,
                                       {"long_name": "artefact grade per 2-s segment", "comment": about})}


#: Variables with at least this many bytes a record are chunked one record per chunk.
RECORD_CHUNK_MIN_BYTES = 4096
#: Smaller per-record variables: chunks of up to this many bytes (whole records).
SMALL_CHUNK_BYTES = 1 << 18


def encoding_for(ds: xr.Dataset, *, compression: str = "zlib", complevel: int = 4, pack_int16: bool = False,
                 full_scale_mv: float | None = None, on_grid=()) -> dict:
    """netCDF4 encodings: one chunk per record for the signals (``ecg``, ``clean_ecg``,
    ``accelerometer``: random access by record); variables of under
    :data:`RECORD_CHUNK_MIN_BYTES` a record (labels, beats, SNRs, parameter families) in
    chunks of up to :data:`SMALL_CHUNK_BYTES` (a whole shard at the default 256 records):
    compressing and indexing them record by record cost 0.5 ms of CPU a record in the
    writer, and reading one record of them decompresses at most that much.

    With ``pack_int16``, ``ecg`` (and ``clean_ecg``; ``accelerometer`` over +-16 g, see
    :mod:`cardiosim.dataset.storage`) is stored as int16 with CF
    ``scale_factor = full_scale_mv / 32767`` -- the device's body-referred input range
    (ADC range / gain), so the packing never clips a sample the device could record and
    is the same in every shard (12 uV steps for the 12-lead shirt's +-400 mV).
    Integer variables with missing entries (``fold``, ``beat_*``) get ``_FillValue = -1``.
    Packed variables named in ``on_grid`` are already on their int16 grid
    (:func:`cardiosim.dataset.storage.quantise` raised otherwise; its values lie within
    ``+-full * (1 + 2**-23)``): their range is not scanned again.
    """
    from .storage import filter_encoding, pack_encoding, quantum

    # Variables, not DataArrays: ds[name] / ds.data_vars build a DataArray (with its
    # coordinates) per access, ~40 us each over a block's ~140 variables.
    variables = ds.variables
    coord_names = set(ds.coords)
    sizes = ds.sizes
    n_rec = sizes.get("record")
    enc: dict = {}
    for name, var in variables.items():
        if name in coord_names or var.dtype == object:
            continue
        # HDF5 filters (zstd / blosc_lz4 / zlib, with byte shuffle): see cardiosim.dataset.storage.
        chunk = None
        dims = var.dims
        if "record" in dims and len(dims) > 1:
            per_record = var.dtype.itemsize * math.prod(sizes[d] for d in dims if d != "record")
            rows = 1 if per_record >= RECORD_CHUNK_MIN_BYTES else \
                max(1, min(n_rec, SMALL_CHUNK_BYTES // max(per_record, 1)))
            chunk = tuple(rows if d == "record" else sizes[d] for d in dims)
        e: dict = filter_encoding(compression, complevel, var.dtype.itemsize * math.prod(chunk) if chunk else None)
        if chunk:
            e["chunksizes"] = chunk
        if var.dtype.kind == "f":
            e["_FillValue"] = np.float32(np.nan) if name in ("snr_db", "snr_lead_db") else \
                np.float64(np.nan) if str(name).startswith(_PARAM_PREFIX) else None
        if name == "fold" or str(name).startswith("beat_"):
            e["_FillValue"] = var.dtype.type(_INT_FILL)
        enc[name] = e
    if pack_int16:
        if not full_scale_mv or full_scale_mv <= 0:
            raise ConfigError("pack_int16 needs the device's full-scale range in mV")
        from .storage import ACCEL_FULL_SCALE

        for name in ("ecg", "clean_ecg", "ecg_simulated", "accelerometer"):
            if name not in variables:
                continue
            full = ACCEL_FULL_SCALE if name == "accelerometer" else full_scale_mv
            if name not in on_grid:
                values = variables[name].values
                # two reductions instead of np.abs's full-size temporary (same peak, NaN included)
                peak = max(float(values.max()), -float(values.min())) if values.size else 0.0
                if peak > full * (1 + 1e-6):
                    raise SignalError(f"{name} reaches {peak:.4g}, beyond the int16 packing range +-{full:.4g}")
            enc[name].update(pack_encoding(quantum(full)))
    for name in ds.coords:
        if variables[name].dtype.kind == "f":
            enc[name] = {"_FillValue": None}
    return enc


def encode_cf(ds: xr.Dataset) -> xr.Dataset:
    """The on-disk (CF) form of a dataset in the in-memory form.

    String dimension coordinates become auxiliary coordinates ``<dim>_name`` (CF 6.1), and
    the ``time`` axis becomes ``elapsed_time``: CF reserves a dimension called ``time``
    for a time coordinate with a reference date (``units = "s since ..."``), and a
    record's time is seconds since its own start, not a date.
    """
    rename = {d: f"{d}_name" for d in _STRING_AXES if d in ds.coords and d in ds.dims}
    out = ds.rename_vars(rename)
    for old, new in rename.items():
        out[new].encoding = dict(ds[old].encoding)
    if "time" in out.dims:
        out = out.rename({"time": ELAPSED_TIME})
    return out


def decode_cf(ds: xr.Dataset) -> xr.Dataset:
    """The in-memory form of a dataset read from disk (inverse of :func:`encode_cf`).

    Also gives back the integer type (with -1 for missing) of ``fold`` and ``beat_*``,
    which xarray's CF decoding turned into floats with NaN.
    """
    if ELAPSED_TIME in ds.dims and "time" not in ds.dims:
        ds = ds.rename({ELAPSED_TIME: "time"})
    rename = {f"{d}_name": d for d in _STRING_AXES
              if f"{d}_name" in ds.variables and ds[f"{d}_name"].dims == (d,)}
    ds = ds.rename_vars(rename)
    for d in rename.values():
        if d not in ds.indexes:  # a lazily opened variable is renamed without an index
            ds = ds.set_xindex(d)
    for name, var in ds.data_vars.items():
        enc = var.encoding
        dtype = enc.get("dtype")
        if (dtype is not None and np.dtype(dtype).kind == "i" and var.dtype.kind == "f"
                and enc.get("_FillValue") == _INT_FILL and "scale_factor" not in enc):
            new = var.fillna(_INT_FILL).astype(dtype)
            new.attrs, new.encoding = var.attrs, enc
            ds[name] = new
    return ds


def parameters(ds: xr.Dataset):
    """Per-record simulation parameters of ``ds`` as a ``pandas.DataFrame``.

    One row per record (index: the ``record`` coordinate), one column per parameter with
    its original name (``'garment_slip_m'``, ``'noise_bw_rms_mv.e3'``,
    ``'source_ode_patient.X.QRS3.amp_mV'``...). Integer and boolean parameters come back
    as pandas' nullable ``Int64`` / ``boolean``; a record that lacks a parameter has a
    missing value there (and a family member missing from every record has no column).
    """
    import pandas as pd

    columns = {}
    for n in sorted(str(k) for k in ds.data_vars if str(k).startswith(_PARAM_PREFIX)):
        var = ds[n]
        if var.dims[0] != "record" or "parameter" not in var.attrs:
            continue
        kind = var.attrs.get("parameter_type", "float")
        values = np.asarray(var.values)
        pattern = var.attrs["parameter"]
        if var.ndim == 1:
            columns[pattern] = _typed_column(values, kind)
            continue
        for idx in np.ndindex(values.shape[1:]):
            col = values[(slice(None),) + idx]
            if np.all(np.isnan(col)):
                continue
            names = dict(zip(var.dims[1:], idx))
            key = pattern.format(electrode=names.get("electrode"),
                                 lead=str(ds["lead"].values[names["lead"]]) if "lead" in names else None,
                                 axis=VCG_LEADS[names["vcg_lead"]] if "vcg_lead" in names else None,
                                 wave=str(ds["ode_wave"].values[names["ode_wave"]]) if "ode_wave" in names else None)
            columns[key] = _typed_column(col, kind)
    index = pd.Index(np.asarray(ds["record"].values), name="record") if "record" in ds.coords else None
    return pd.DataFrame({k: columns[k] for k in sorted(columns)}, index=index)


def _typed_column(values: np.ndarray, kind: str):
    import pandas as pd

    if kind == "str":
        return pd.array([str(v) if v != "" else None for v in values], dtype="string")
    if kind == "int":
        return pd.array([None if np.isnan(v) else int(v) for v in values], dtype="Int64")
    if kind == "bool":
        return pd.array([None if np.isnan(v) else bool(v) for v in values], dtype="boolean")
    return values.astype(np.float64)
