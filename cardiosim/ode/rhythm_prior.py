"""Rhythm priors fitted to annotated real records: AF ventricular rate and RR irregularity,
ectopic coupling intervals.

- AF: every 10-s window of consecutive beats inside an ``(AFIB`` episode of the CPSC 2021
  records (beat annotations, 200 Hz) gives a mean rate (bpm) and an RR coefficient of
  variation; (log rate, log CV) is modelled as a bivariate Gaussian, each window weighted
  so every record counts the same, its standard deviations widened by ``WIDEN`` (a few
  patients: the population is broader), truncated to the physiological box AF_BOUNDS.
- PVC / PAC coupling: ``RR(ectopic) / RR(preceding sinus)`` of every ``V`` / ``A`` beat
  preceded by two normal beats (MIT-BIH 100 and CPSC 2021), a normal distribution per
  kind, widened and truncated the same way (COUPLING_BOUNDS); with fewer than
  MIN_COUPLINGS annotated beats of a kind (outside AF), uniform over its bounds.

Two fits ship. The default, ``data/rhythm_prior.json`` (:data:`DEFAULT_RHYTHM_PRIOR_PATH`),
uses every annotated record (CPSC 2021 patients 8, 21, 35, 84, 92, 101 and MIT-BIH 100; in another
folder, its CPSC 2021 and annotated MIT-BIH records):
what generated datasets draw from. The validation fit, ``data/rhythm_prior_validation.json``
(:data:`VALIDATION_RHYTHM_PRIOR_PATH`), leaves out the records of the patients in
HELD_OUT_PATIENTS, and everything that reports on those patients uses it (the realism tests,
every ODE recipe of the sim-to-real benchmark, via ``[source] rhythm_prior``). Refit both with
``scripts/fit_ode_prior.py``; fit one to your own annotated records with ``cardiosim prior rhythm``
(:func:`rhythm_prior_from_records`).
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataFormatError

DEFAULT_RHYTHM_PRIOR_PATH = Path(__file__).parent / "data" / "rhythm_prior.json"
VALIDATION_RHYTHM_PRIOR_PATH = Path(__file__).parent / "data" / "rhythm_prior_validation.json"
HELD_OUT_PATIENTS = ("21", "84")  # CPSC 2021 patients data_21_* (non-AF) and data_84_* (AF)
WIDEN = 1.25
AF_BOUNDS = {"hr": (50.0, 170.0), "cv": (0.08, 0.45)}  # bpm; RR SD / mean
COUPLING_BOUNDS = {"PVC": (0.45, 0.85), "PAC": (0.45, 0.88)}
MIN_COUPLINGS = 5  # fewer annotated ectopics of a kind: uniform over its bounds


def af_windows(rr_s, in_af, win=10.0):
    """(rate bpm, CV) of consecutive ``win``-s runs of AF intervals ``rr_s`` (s)."""
    out, i = [], 0
    t = np.concatenate([[0.0], np.cumsum(rr_s)])
    while i < len(rr_s):
        j = int(np.searchsorted(t, t[i] + win))
        if j > len(rr_s):
            break
        if in_af[i:j].all() and j - i >= 5:
            r = rr_s[i:j]
            out.append((60.0 / r.mean(), r.std() / r.mean()))
        i = max(j, i + 1)
    return out


def _annotated(path, annotator="atr"):
    import wfdb

    try:
        a = wfdb.rdann(str(path), annotator)
        h = wfdb.rdheader(str(path))
    except (OSError, ValueError, IndexError) as exc:
        raise DataFormatError(f"cannot read record {path} with its .{annotator} beat annotations: {exc}") from None
    sym = np.array(a.symbol)
    state, states = None, []
    for s, aux in zip(sym, a.aux_note):
        if aux.startswith("("):
            state = aux.strip("\x00")
        states.append(state)
    beat = np.isin(sym, list("NVAaLRJjEeF"))
    return np.array(a.sample)[beat] / h.fs, sym[beat], np.array(states, dtype=object)[beat]


def cpsc_patient(record) -> str:
    """CPSC 2021 patient of a record named ``data_<patient>_<n>`` (the challenge's naming).

    Raises
    ------
    DataFormatError
        The name is not ``data_<patient>_<n>`` (the patient, hence leave-one-patient-out, could
        not be told).
    """
    parts = Path(str(record)).name.split("_")
    if len(parts) != 3 or parts[0] != "data" or not parts[1]:
        raise DataFormatError(f"CPSC 2021 record {record!r} is not named data_<patient>_<n>: its patient is unknown")
    return parts[1]


def fitted_cpsc_patients(prior=None) -> frozenset:
    """CPSC 2021 patients whose records a rhythm prior (default the validation prior,
    :data:`VALIDATION_RHYTHM_PRIOR_PATH`) was fitted on, read from its ``sources``: every other
    patient of a CPSC 2021 folder is held out from it (21 and 84 in the shared folder, every
    patient of a folder of other patients)."""
    prior = validation_rhythm_prior() if prior is None else prior
    return frozenset(cpsc_patient(s) for s in prior["sources"] if str(s).startswith("cpsc2021/"))


def _mitdb_records(data_dir: Path) -> list:
    """The annotated MIT-BIH records (``.hea`` with ``.atr``) of ``data_dir/mitdb``, sorted: 100 in
    the shared folder, whichever are there in another."""
    return sorted(h for h in (data_dir / "mitdb").glob("*.hea") if h.with_suffix(".atr").is_file())


def fit_rhythm_prior(data_dir, held_out=HELD_OUT_PATIENTS) -> dict:
    """Fit the rhythm prior (see module docstring) from ``data_dir/cpsc2021`` and the annotated
    records of ``data_dir/mitdb`` (100 in the shared folder), leaving out the CPSC 2021 patients
    ``held_out``; returns the JSON-ready dict.

    Raises
    ------
    ConfigError
        No record in either folder; or a patient of ``held_out`` has no record in
        ``data_dir/cpsc2021`` (it would be "held out" of a fit that never had it: in a folder of
        other patients, say which to leave out, ``()`` for none).
    """
    data_dir = Path(data_dir)
    cpsc = sorted((data_dir / "cpsc2021").glob("*.hea"))
    recs = cpsc + _mitdb_records(data_dir)
    if not recs:
        raise ConfigError(f"no cpsc2021 or mitdb records in {data_dir}")
    patients = sorted({cpsc_patient(r.stem) for r in cpsc})
    absent = [p for p in held_out if p not in patients]
    if absent:
        raise ConfigError(f"held-out patient(s) {', '.join(absent)} have no record in {data_dir / 'cpsc2021'} "
                          f"(patients there: {', '.join(patients) or 'none'}); pass held_out= the patients to "
                          "leave out, () for none")
    recs = [r for r in recs if not (r.parent.name == "cpsc2021" and cpsc_patient(r.stem) in held_out)]
    out = rhythm_prior_from_records([r.with_suffix("") for r in recs])
    out["held_out_patients"] = list(held_out)
    return out


def af_leave_one_patient_out(data_dir, n_draws: int = 4000, seed: int = 3) -> dict:
    """Leave one AF patient out: for each CPSC 2021 patient with ``(AFIB`` episodes, the prior
    fitted on every other record (:func:`fit_rhythm_prior` with that patient held out) against
    the patient's own 10-s AF windows: the share of them inside the 2.5-97.5 % range of the
    prior's (rate, RR CV) draws, as ``{patient: (n_windows, share)}`` -- how the shipped
    default, fitted on all of them, should cover an AF patient it has not seen.

    Raises
    ------
    ConfigError
        Fewer than 2 patients with AF windows in ``data_dir/cpsc2021`` (the patients found are
        named): there is no other AF patient to fit on, and an empty result would say nothing.
    """
    data_dir = Path(data_dir)
    found = {}
    for hea in sorted((data_dir / "cpsc2021").glob("*.hea")):
        t, _, st = _annotated(hea.with_suffix(""))
        w = af_windows(np.diff(t), st[:-1] == "(AFIB")
        if w:
            found.setdefault(cpsc_patient(hea.stem), []).extend(w)
    if len(found) < 2:
        raise ConfigError(f"leave-one-AF-patient-out needs 10-s AF windows ('(AFIB' episodes) of at least 2 "
                          f"patients in {data_dir / 'cpsc2021'}; found them for {', '.join(sorted(found)) or 'none'}")
    out = {}
    for patient, windows in sorted(found.items()):
        prior = json.loads(json.dumps(fit_rhythm_prior(data_dir, held_out=(patient,))))
        rng = np.random.default_rng(seed)
        draws = np.array([draw_af(rng, prior) for _ in range(n_draws)])
        lo, hi = np.percentile(draws, [2.5, 97.5], axis=0)
        real = np.array(windows)
        out[patient] = (len(real), float(np.all((real >= lo) & (real <= hi), axis=1).mean()))
    return out


def rhythm_prior_from_records(records, annotator: str = "atr") -> dict:
    """The rhythm prior (module docstring) of annotated WFDB ``records`` (paths without
    extension; beat annotations ``<record>.<annotator>`` with rhythm changes such as
    ``(AFIB`` / ``(N`` in their aux notes, as PhysioNet's AF databases and MIT-BIH have):
    every 10-s window inside an ``(AFIB`` episode gives a rate and an RR coefficient of
    variation, every V / A beat after two N beats outside AF a coupling ratio. Each record
    counts the same. Returns the JSON-ready dict (``read_rhythm_prior`` reads it back;
    ``[source] rhythm_prior`` in a recipe uses its file).

    Raises
    ------
    DataFormatError
        A record or its annotation file cannot be read (named).
    ConfigError
        Fewer than 3 AF windows in all the records together.
    """
    af, weights, coup, used = [], [], {"PVC": [], "PAC": []}, []
    for rec in records:
        rec = Path(rec)
        t, sym, st = _annotated(rec, annotator)
        rr = np.diff(t)
        w = af_windows(rr, st[:-1] == "(AFIB")
        af += w
        weights += [1.0 / max(len(w), 1)] * len(w)
        for i in range(2, len(sym) - 1):
            kind = {"V": "PVC", "A": "PAC"}.get(sym[i])
            if kind and sym[i - 1] == "N" and sym[i - 2] == "N" and st[i] != "(AFIB":
                coup[kind].append((t[i] - t[i - 1]) / (t[i - 1] - t[i - 2]))
        used.append(f"{rec.parent.name}/{rec.name}")
    if len(af) < 3:
        raise ConfigError(f"fewer than 3 10-s AF windows in {len(used)} record(s) (need beat annotations with "
                          f"'(AFIB' rhythm episodes)")
    x = np.log(np.array(af))
    wts = np.array(weights) / np.sum(weights)
    mean = wts @ x
    cov = ((x - mean).T * wts) @ (x - mean) * WIDEN ** 2
    out = {"format": "cardiosim.ode.RhythmPrior/1", "sources": used, "held_out_patients": [],
           "widen": WIDEN,
           "af": {"log_hr_cv_mean": mean.tolist(), "log_hr_cv_cov": cov.tolist(), "bounds": AF_BOUNDS,
                  "n_windows": len(af), "observed_hr_range": [float(np.exp(x[:, 0]).min()), float(np.exp(x[:, 0]).max())],
                  "observed_cv_range": [float(np.exp(x[:, 1]).min()), float(np.exp(x[:, 1]).max())]},
           "coupling": {}}
    for kind, c in coup.items():
        c = np.array(c)
        if c.size < MIN_COUPLINGS:  # too few to fit a spread: uniform over the bounds
            out["coupling"][kind] = {"uniform": True, "bounds": COUPLING_BOUNDS[kind], "n": int(c.size),
                                     "observed": c.tolist()}
            continue
        out["coupling"][kind] = {"mean": float(c.mean()), "sd": float(c.std(ddof=1) * WIDEN),
                                 "bounds": COUPLING_BOUNDS[kind], "n": int(c.size),
                                 "observed_range": [float(c.min()), float(c.max())]}
    return out


def write_rhythm_prior(d, path):
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(d, indent=1))
    tmp.replace(path)


def read_rhythm_prior(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"rhythm prior file not found: {path}")
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataFormatError(f"cannot read the rhythm prior {path}: {exc}") from None
    if not isinstance(d, dict) or d.get("format") != "cardiosim.ode.RhythmPrior/1":
        raise DataFormatError(f"{path} is not a cardiosim rhythm prior")
    return d


@lru_cache(maxsize=1)
def default_rhythm_prior() -> dict:
    return read_rhythm_prior(DEFAULT_RHYTHM_PRIOR_PATH)


def validation_rhythm_prior() -> dict:
    """The rhythm prior fitted without the HELD_OUT_PATIENTS' records (see the module docstring)."""
    return read_rhythm_prior_cached(str(VALIDATION_RHYTHM_PRIOR_PATH))


def read_rhythm_prior_cached(path: str) -> dict:
    """:func:`read_rhythm_prior`, once per process and file version (path, modification time,
    size: a prior refitted in place in the same session is read again). Raises
    DataFormatError naming the file if it is missing or not a rhythm prior, or lacks the
    ``af`` / ``coupling`` parts the generator draws from."""
    try:
        st = os.stat(path)
    except OSError:
        raise DataFormatError(f"rhythm prior file not found: {path}") from None
    return _read_rhythm_prior_version(str(path), st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=8)
def _read_rhythm_prior_version(path: str, mtime_ns: int, size: int) -> dict:
    d = read_rhythm_prior(path)
    for part, keys in (("af", ("log_hr_cv_mean", "log_hr_cv_cov", "bounds")), ("coupling", ("PVC", "PAC"))):
        missing = [k for k in keys if k not in d.get(part, {})]
        if missing:
            raise DataFormatError(f"{path}: rhythm prior lacks {part}.{', '.join(missing)}")
    return d


def _truncated(draw, lo, hi, what):
    for _ in range(1000):
        v = draw()
        if np.all((v >= lo) & (v <= hi)):
            return v
    raise ConfigError(f"the {what} prior puts (almost) no mass inside {lo}-{hi}")  # pragma: no cover


def draw_af(rng, prior=None):
    """(ventricular rate bpm, RR coefficient of variation) of one AF record."""
    af = (prior or default_rhythm_prior())["af"]
    m, c = np.array(af["log_hr_cv_mean"]), np.array(af["log_hr_cv_cov"])
    b = af["bounds"]
    lo, hi = np.array([b["hr"][0], b["cv"][0]]), np.array([b["hr"][1], b["cv"][1]])
    factor = _mvn_factor(tuple(m.tolist()), tuple(map(tuple, c.tolist())))
    if factor is None:
        v = _truncated(lambda: np.exp(rng.multivariate_normal(m, c)), lo, hi, "AF rate/CV")
    else:
        v = _truncated(lambda: np.exp(_mvn_draw(rng, m, factor)), lo, hi, "AF rate/CV")
    return float(v[0]), float(v[1])


def _mvn_draw(rng, mean, factor):
    """``rng.multivariate_normal(mean, cov)`` from the factor its default method (SVD)
    computes on every call: ``mean + z @ (u sqrt(s)).T``, z standard normal, as NumPy forms
    it (same draws from ``rng``)."""
    x = rng.standard_normal(mean.shape).reshape(-1, mean.shape[0])
    x = mean + x @ factor.T
    x.shape = mean.shape
    return x


@lru_cache(maxsize=8)
def _mvn_factor(mean, cov):
    """The factor ``u sqrt(s)`` of ``cov``'s SVD (``Generator.multivariate_normal`` redoes
    the SVD and a PSD check at every draw: ~160 µs of the ~170 of a draw) if
    :func:`_mvn_draw` with it gives ``multivariate_normal``'s draws bit for bit here
    (checked once per covariance on 16 draws), else None (then ``multivariate_normal``)."""
    m, c = np.array(mean), np.array(cov)
    try:
        u, s, vh = np.linalg.svd(c)
        if not np.allclose(np.dot(vh.T * s, vh), c, rtol=1e-8, atol=1e-8):
            return None  # not PSD: multivariate_normal warns at every draw
        factor = u * np.sqrt(s)
        a, b = np.random.default_rng(20261206), np.random.default_rng(20261206)
        for _ in range(16):
            if a.multivariate_normal(m, c).tobytes() != _mvn_draw(b, m, factor).tobytes():
                return None
        return factor if a.random() == b.random() else None
    except Exception:  # a covariance NumPy warns or raises about: its own code says so
        return None


def draw_coupling(kind, rng, prior=None):
    """Coupling ratio RR(ectopic) / RR(sinus) of a PVC or PAC record."""
    c = (prior or default_rhythm_prior())["coupling"][kind]
    lo, hi = c["bounds"]
    if c.get("uniform"):
        return float(rng.uniform(lo, hi))
    return float(_truncated(lambda: rng.normal(c["mean"], c["sd"]), lo, hi, f"{kind} coupling"))
