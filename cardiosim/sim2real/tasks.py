"""Real test sets of the sim-to-real benchmark and how their windows are labelled.

Everything here reads real PhysioNet recordings (``$CARDIOSIM_DATA``, see
``shared/data/README.md``) and never anything simulated. Signals are resampled to the
benchmark rate (``fs``, 100 Hz by default) with ``scipy.signal.resample_poly``.

* ``af``: CPSC 2021 2-lead ambulatory records (200 Hz). Rhythm annotations mark the
  start of an AF episode with ``(AFIB`` and its end with ``(N``; 10-s windows entirely
  inside AF are AF (1), entirely outside are non-AF (0), windows that straddle a change
  are dropped. A window is *too noisy* when the annotated beats and the cardiosim
  R-peak detector disagree (beat-agreement SQI ``bSQI < 0.8``, Li, Clifford & Moody,
  Physiol Meas 2008): the annotators saw beats the signal no longer shows.
* ``quality``: textile/dry/Ag-AgCl wearable recordings graded by hand in 2-s segments
  (1 = little or no artefact .. 4 = severe); unacceptable = grade >= 3. CinC 2011 set-a
  12-lead mobile-phone ECGs graded acceptable / unacceptable.
* ``beats``: MIT-BIH 100 (MLII; every annotated record of ``mitdb/`` in another folder) with NSTDB ``bw`` and ``ma`` noise added at known SNRs
  (NSTDB definition, :mod:`cardiosim.noise.snr`); textile walking/running/squats records,
  which carry **no beat annotations**: their reference R peaks are the consensus of
  wfdb's XQRS and NeuroKit2 (both within 50 ms) in segments graded 1.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from math import gcd
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataFormatError

#: Beat symbols of the MIT-BIH annotation standard that are beats (not rhythm or noise marks).
BEAT_SYMBOLS = frozenset("NLRBAaJSVrFejnE/fQ?")
#: Matching tolerance between a detected and a reference beat (s), the ANSI/AAMI EC57 window.
BEAT_TOLERANCE_S = 0.15
#: Beat-agreement SQI under which a real window counts as too noisy to read.
BSQI_NOISY = 0.8
#: Textile grades at or above which a 2-s segment is unacceptable.
UNACCEPTABLE_GRADE = 3
TEXTILE_ACTIVITIES = ("rest", "arms", "walk", "run", "squats")
TEXTILE_ELECTRODES = ("AgAgCl", "CrNi", "textile")


def resolve_data_dir(data_dir=None) -> Path:
    """The folder of real recordings: ``data_dir``, else ``$CARDIOSIM_DATA``."""
    if data_dir is None:
        env = os.environ.get("CARDIOSIM_DATA")
        if not env:
            raise ConfigError("no data_dir given and CARDIOSIM_DATA is not set; pass the folder that holds "
                              "cpsc2021/, textile/, cinc2011/, mitdb/ and nstdb/")
        data_dir = env
    path = Path(data_dir)
    if not path.is_dir():
        raise DataFormatError(f"real-data folder {str(path)!r} does not exist")
    return path


def resample(x: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """Polyphase resampling along the last axis (rates rounded to whole Hz).

    The ends are extended along a fitted line (``padtype="line"``), not with zeros: real
    recordings carry a DC offset (CPSC 2021 about 5 mV, textile ADC counts), and zero
    padding turned it into a 1-2 mV edge transient at both ends of every real window --
    something no simulated training window has, and no device records.
    """
    a, b = int(round(fs_out)), int(round(fs_in))
    if a == b:
        return np.asarray(x, dtype=np.float32)
    from scipy.signal import resample_poly
    g = gcd(a, b)
    return resample_poly(np.asarray(x, dtype=np.float64), a // g, b // g, axis=-1,
                         padtype="line").astype(np.float32)


def _finite_signal(rec, where) -> np.ndarray:
    """``rec.p_signal`` as ``(leads, T)`` float64; a record with NaN/inf samples is refused
    (zero-filling them, as before, put flat segments into a real test set unannounced)."""
    sig = np.asarray(rec.p_signal, dtype=np.float64).T
    bad = ~np.isfinite(sig)
    if bad.any():
        leads = [str(rec.sig_name[i]) for i in np.flatnonzero(bad.any(axis=1))]
        raise DataFormatError(f"record {where}: {int(bad.sum())} NaN/inf samples in lead(s) {', '.join(leads)}; "
                              "the benchmark reads complete records only")
    return sig


@dataclass
class RealSet:
    """Windows of real recordings with their labels.

    Attributes
    ----------
    name : str
    x : ndarray, shape (n, n_leads, T), float32 (mV, or ADC counts for textile)
    y : ndarray, shape (n,), float (1/0; NaN where the set has no such label)
    groups : ndarray of str, shape (n,)
        Patient or subject of each window (cross-validation folds and cluster bootstrap).
    meta : dict of str -> ndarray (n,)
        Per-window facts (record, start sample, grade, activity, electrode, noisy flag ...).
    peaks : list of ndarray or None
        Beats task: reference R-peak sample indices of each window (at ``fs``).
    mask : list of ndarray or None
        Beats task: boolean per sample, True where the reference is valid.
    fs : float
    """

    name: str
    x: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    meta: dict = field(default_factory=dict)
    peaks: list | None = None
    mask: list | None = None
    fs: float = 100.0

    def __len__(self) -> int:
        return len(self.x)

    def subset(self, idx) -> "RealSet":
        idx = np.asarray(idx)
        pick = (lambda seq: None if seq is None else [seq[i] for i in idx])
        return RealSet(self.name, self.x[idx], self.y[idx], self.groups[idx],
                       {k: np.asarray(v)[idx] for k, v in self.meta.items()}, pick(self.peaks), pick(self.mask),
                       self.fs)


# --------------------------------------------------------------------------- af (CPSC 2021)
def af_intervals(samples, aux_notes, n_samples: int) -> list[tuple[int, int]]:
    """AF episodes ``[(start, stop), ...]`` (samples, stop exclusive) from CPSC 2021 rhythm notes.

    ``(AFIB`` opens an episode, ``(N`` closes it; an episode still open at the end of the
    record lasts to its end.
    """
    out, start = [], None
    for s, note in zip(samples, aux_notes):
        note = (note or "").strip()
        if note == "(AFIB" and start is None:
            start = int(s)
        elif note == "(N" and start is not None:
            out.append((start, int(s)))
            start = None
    if start is not None:
        out.append((start, int(n_samples)))
    return out


def label_windows(intervals, n_samples: int, window: int) -> np.ndarray:
    """Label consecutive non-overlapping windows of ``window`` samples.

    Returns int8 per complete window: 1 entirely inside AF, 0 entirely outside, -1 mixed.
    """
    af = np.zeros(n_samples, dtype=bool)
    for a, b in intervals:
        af[max(a, 0):min(b, n_samples)] = True
    n_win = n_samples // window
    frac = af[:n_win * window].reshape(n_win, window).mean(axis=1)
    return np.where(frac == 1.0, 1, np.where(frac == 0.0, 0, -1)).astype(np.int8)


def match_beats(ref, det, fs: float, tol_s: float = BEAT_TOLERANCE_S) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one matching in time order of detected beats ``det`` to reference beats ``ref``
    (sorted sample indices) within ``tol_s``: boolean 'matched' flags of each."""
    ref = np.asarray(ref, dtype=np.int64)
    det = np.asarray(det, dtype=np.int64)
    mr = np.zeros(len(ref), bool)
    md = np.zeros(len(det), bool)
    tol = tol_s * fs
    i = j = 0
    while i < len(ref) and j < len(det):
        d = det[j] - ref[i]
        if abs(d) <= tol:
            mr[i] = md[j] = True
            i += 1
            j += 1
        elif d < 0:
            j += 1
        else:
            i += 1
    return mr, md


def beat_agreement(ref, det, fs: float, tol_s: float = BEAT_TOLERANCE_S) -> tuple[int, int, int]:
    """(TP, FP, FN) of detected beats ``det`` against reference beats ``ref`` (sample indices)."""
    mr, md = match_beats(np.sort(np.asarray(ref, dtype=np.int64)), np.sort(np.asarray(det, dtype=np.int64)), fs,
                         tol_s)
    return int(mr.sum()), int((~md).sum()), int((~mr).sum())


def bsqi(ref, det, fs: float) -> float:
    """Beat-agreement SQI: matched / (ref + det - matched) (Li et al. 2008); 1 if both empty."""
    tp, fp, fn = beat_agreement(ref, det, fs)
    total = tp + fp + fn
    return 1.0 if total == 0 else tp / total


def load_af(data_dir=None, fs: float = 100.0, window_s: float = 10.0, records=None) -> RealSet:
    """CPSC 2021 windows labelled AF / non-AF (see module docstring).

    ``meta`` holds ``record``, ``start`` (sample at 200 Hz), ``bsqi`` and ``noisy``.
    Cached per arguments (the af and quality tasks both read it): do not modify the result.
    """
    return _load_af(str(resolve_data_dir(data_dir)), float(fs), float(window_s),
                    None if records is None else tuple(records))


@lru_cache(maxsize=4)
def _load_af(data_dir: str, fs: float, window_s: float, records) -> RealSet:
    import wfdb

    from ..qrs import detect_r_peaks

    from ..ode.rhythm_prior import cpsc_patient

    root = resolve_data_dir(data_dir) / "cpsc2021"
    found = sorted(p.stem for p in root.glob("*.hea"))
    names = found if records is None else list(records)
    if not names:
        raise DataFormatError(f"no CPSC 2021 records in {root}")
    # a record list names records of one folder (the quick budget's are the shared folder's):
    # in another folder they are named as missing, not left to a FileNotFoundError
    missing = [n for n in names if n not in found]
    if missing:
        raise DataFormatError(f"CPSC 2021 record(s) {', '.join(missing)} not in {root} ({len(found)} records there); "
                              "a budget's af_records names records of the shared folder (the quick budget's do): "
                              "use af_records=None, every record, for another folder (cardiosim sim2real "
                              "--budget full)")
    xs, ys, groups, meta = [], [], [], {"record": [], "start": [], "bsqi": [], "noisy": []}
    for name in names:
        rec = wfdb.rdrecord(str(root / name))
        ann = wfdb.rdann(str(root / name), "atr")
        fs0 = float(rec.fs)
        sig = _finite_signal(rec, root / name)
        n = sig.shape[1]
        win = int(round(window_s * fs0))
        labels = label_windows(af_intervals(ann.sample, ann.aux_note, n), n, win)
        beats = np.array([s for s, sym in zip(ann.sample, ann.symbol) if sym in BEAT_SYMBOLS], dtype=np.int64)
        for k, lab in enumerate(labels):
            if lab < 0:
                continue
            a, b = k * win, (k + 1) * win
            seg = sig[:, a:b]
            ref = beats[(beats >= a) & (beats < b)] - a
            q = bsqi(ref, detect_r_peaks(seg, fs0), fs0)
            xs.append(resample(seg, fs0, fs))
            ys.append(float(lab))
            groups.append(cpsc_patient(name))  # data_<patient>_<n>
            meta["record"].append(name)
            meta["start"].append(a)
            meta["bsqi"].append(q)
            meta["noisy"].append(q < BSQI_NOISY)
    if not xs:
        raise DataFormatError(f"no {window_s:g}-s window of {', '.join(names)} lies wholly inside or outside AF: "
                              "nothing to test on")
    return RealSet("cpsc2021", np.stack(xs), np.array(ys), np.array(groups),
                   {k: np.array(v) for k, v in meta.items()}, fs=fs)


# --------------------------------------------------------------------------- textile
@dataclass(frozen=True)
class TextileRecord:
    """One textile recording at the benchmark rate: signal, 2-s grades, reference peaks."""

    name: str
    subject: str
    electrode: str
    activity: str
    x: np.ndarray          # (T,) float32, ADC counts
    grades: np.ndarray     # (n_segments,) int
    segment: int           # samples per graded segment at fs
    fs: float


def _textile_names(root: Path, activities=None, subjects=None, electrodes=None) -> list[str]:
    out = []
    for p in sorted(root.glob("*.hea")):
        subj, electrode, activity = p.stem.split("_")
        if activities and activity not in activities:
            continue
        if subjects and subj not in subjects:
            continue
        if electrodes and electrode not in electrodes:
            continue
        out.append(p.stem)
    if not out:
        raise DataFormatError(f"no textile records in {root} for activities={activities}, subjects={subjects}")
    return out


@lru_cache(maxsize=128)
def _read_textile(path: str):
    import pandas as pd
    import wfdb

    rec = wfdb.rdrecord(path)
    grades = pd.read_csv(path + ".artifact.csv")
    return rec.p_signal[:, 0].astype(np.float64), float(rec.fs), grades


def read_textile(data_dir=None, fs: float = 100.0, *, activities=None, subjects=None, electrodes=None):
    """Textile records (list of :class:`TextileRecord`) at ``fs``."""
    root = resolve_data_dir(data_dir) / "textile"
    out = []
    for name in _textile_names(root, activities, subjects, electrodes):
        x, fs0, g = _read_textile(str(root / name))
        seg0 = int(g["end_sample"].iloc[0] - g["start_sample"].iloc[0])
        if not np.all(np.diff(g["start_sample"].to_numpy()) == seg0):
            raise DataFormatError(f"textile {name}: graded segments are not consecutive {seg0}-sample blocks")
        subj, electrode, activity = name.split("_")
        out.append(TextileRecord(name, subj, electrode, activity, resample(x, fs0, fs),
                                 g["artifact_grade"].to_numpy(dtype=int), int(round(seg0 * fs / fs0)), fs))
    return out


def textile_subjects(data_dir) -> tuple[tuple, tuple]:
    """``(train, test)`` textile subjects of ``data_dir/textile``: test, every subject the
    validation noise fit (:data:`~cardiosim.noise.textile.HELD_OUT_FIT_FILE`) was not fitted on
    (04, 05 in the shared folder; every subject of a folder of new ones); train, its fit
    subjects that are in the folder (01-03; none in a folder of new subjects)."""
    from ..noise import textile

    root = Path(data_dir) / "textile"
    found = textile.subjects_in(root)
    fitted = set(textile.load_fit(textile.HELD_OUT_FIT_FILE)["fit_subjects"])
    return tuple(s for s in found if s in fitted), tuple(s for s in found if s not in fitted)


def load_textile_segments(data_dir=None, fs: float = 100.0, **select) -> RealSet:
    """Every graded 2-s segment; ``y`` = 1 when unacceptable (grade >= 3)."""
    xs, ys, groups = [], [], []
    meta = {"record": [], "grade": [], "activity": [], "electrode": []}
    for r in read_textile(data_dir, fs, **select):
        for k, grade in enumerate(r.grades):
            seg = r.x[k * r.segment:(k + 1) * r.segment]
            if seg.size < r.segment:
                continue
            xs.append(seg[None])
            ys.append(float(grade >= UNACCEPTABLE_GRADE))
            groups.append(r.subject)
            meta["record"].append(r.name)
            meta["grade"].append(int(grade))
            meta["activity"].append(r.activity)
            meta["electrode"].append(r.electrode)
    return RealSet("textile", np.stack(xs), np.array(ys), np.array(groups),
                   {k: np.array(v) for k, v in meta.items()}, fs=fs)


CINC2011_QUALITY = ("acceptable", "unacceptable")


def cinc2011_reference(root):
    """The graded records of a CinC 2011 folder as a table with columns ``record`` and
    ``quality`` (``acceptable`` / ``unacceptable``), from the first of: ``REFERENCE.csv`` (the
    shared folder's), the challenge's own ``RECORDS-acceptable`` / ``RECORDS-unacceptable``
    lists, or each header's ``# quality: ...`` comment -- so that a folder of other set-a
    records, as PhysioNet distributes them, is read too.

    Raises
    ------
    DataFormatError
        No grading is found, a grade is neither acceptable nor unacceptable, or a graded
        record has no header in the folder (named).
    """
    import pandas as pd

    root = Path(root)
    if (root / "REFERENCE.csv").is_file():
        ref = pd.read_csv(root / "REFERENCE.csv", dtype={"record": str})
        how = "REFERENCE.csv"
    elif any((root / f"RECORDS-{q}").is_file() for q in CINC2011_QUALITY):
        rows = [(line.strip(), q) for q in CINC2011_QUALITY if (root / f"RECORDS-{q}").is_file()
                for line in (root / f"RECORDS-{q}").read_text().splitlines() if line.strip()]
        ref = pd.DataFrame(rows, columns=["record", "quality"])
        how = "RECORDS-acceptable/-unacceptable"
    else:
        rows = []
        for hea in sorted(root.glob("*.hea")):
            for line in hea.read_text(errors="replace").splitlines():
                if line.startswith("#") and line[1:].strip().lower().startswith("quality:"):
                    rows.append((hea.stem, line.split(":", 1)[1].strip().lower()))
                    break
        ref = pd.DataFrame(rows, columns=["record", "quality"])
        how = "'# quality:' header comments"
    if not len(ref) or not {"record", "quality"} <= set(ref.columns):
        raise DataFormatError(f"no CinC 2011 grading in {root}: expected REFERENCE.csv (record,quality), "
                              "RECORDS-acceptable / RECORDS-unacceptable, or '# quality: ...' header comments")
    bad = sorted(set(ref["quality"]) - set(CINC2011_QUALITY))
    if bad:
        raise DataFormatError(f"{root} ({how}): quality must be acceptable or unacceptable, got {bad}")
    missing = [r for r in ref["record"] if not (root / f"{r}.hea").is_file()]
    if missing:
        raise DataFormatError(f"{root} ({how}) grades {len(missing)} record(s) without a header there: "
                              f"{', '.join(missing[:10])}")
    return ref


def load_cinc2011(data_dir=None, fs: float = 100.0, limit: int | None = None) -> RealSet:
    """CinC 2011 set-a 12-lead records (graded as :func:`cinc2011_reference` reads them);
    ``y`` = 1 when graded unacceptable."""
    import pandas as pd
    import wfdb

    root = resolve_data_dir(data_dir) / "cinc2011"
    ref = cinc2011_reference(root)
    if limit is not None:  # keep both classes: the first `limit` of each
        ref = pd.concat([g.head(limit) for _, g in ref.groupby("quality")])
    xs, ys = [], []
    for name, q in zip(ref["record"], ref["quality"]):
        rec = wfdb.rdrecord(str(root / name))
        xs.append(resample(_finite_signal(rec, rec.record_name), rec.fs, fs))
        ys.append(float(q == "unacceptable"))
    names = ref["record"].to_numpy(dtype=str)
    return RealSet("cinc2011", np.stack(xs), np.array(ys), names, {"record": names}, fs=fs)


# --------------------------------------------------------------------------- beats
def consensus_peaks(x, fs: float, tol_s: float = 0.05) -> np.ndarray:
    """R peaks on which wfdb's XQRS and NeuroKit2 agree within ``tol_s`` (mean position)."""
    import warnings

    import neurokit2 as nk
    import wfdb.processing

    x = np.asarray(x, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        xq = np.sort(np.asarray(wfdb.processing.xqrs_detect(x, fs=fs, verbose=False), dtype=np.int64))
        _, info = nk.ecg_peaks(nk.ecg_clean(x, sampling_rate=int(round(fs))), sampling_rate=int(round(fs)))
    nkp = np.sort(np.asarray(info["ECG_R_Peaks"], dtype=np.int64))
    if xq.size == 0 or nkp.size == 0:
        return np.zeros(0, dtype=np.int64)
    j = np.clip(np.searchsorted(nkp, xq), 1, len(nkp) - 1) if len(nkp) > 1 else np.zeros(len(xq), dtype=int)
    cand = np.stack([nkp[np.maximum(j - 1, 0)], nkp[j]])
    near = cand[np.argmin(np.abs(cand - xq), axis=0), np.arange(len(xq))]
    ok = np.abs(near - xq) <= tol_s * fs
    return np.unique(np.round((xq[ok] + near[ok]) / 2).astype(np.int64))


@lru_cache(maxsize=128)
def _textile_consensus(path: str, fs: float) -> np.ndarray:
    x, fs0, _ = _read_textile(path)
    return np.round(consensus_peaks(x, fs0) * fs / fs0).astype(np.int64)


def load_textile_beats(data_dir=None, fs: float = 100.0, *, activities=("walk", "run", "squats"),
                       subjects=None, electrodes=None) -> RealSet:
    """Whole textile records with consensus reference peaks valid in grade-1 segments.

    ``mask`` is True in grade-1 segments (the only ones with a reference); ``meta`` gives
    the grade-1 and grade >= 3 durations for the detection-rate comparison.
    """
    root = resolve_data_dir(data_dir) / "textile"
    recs = read_textile(data_dir, fs, activities=activities, subjects=subjects, electrodes=electrodes)
    n = min(len(r.x) for r in recs)
    xs, peaks, masks, groups = [], [], [], []
    meta = {"record": [], "activity": [], "electrode": [], "grades": []}
    for r in recs:
        x = r.x[:n]
        grade_t = np.repeat(r.grades, r.segment)[:n]
        if grade_t.size < n:
            grade_t = np.concatenate([grade_t, np.full(n - grade_t.size, 4)])
        p = _textile_consensus(str(root / r.name), fs)
        xs.append(x[None])
        peaks.append(p[p < n])
        masks.append(grade_t == 1)
        groups.append(r.subject)
        meta["record"].append(r.name)
        meta["activity"].append(r.activity)
        meta["electrode"].append(r.electrode)
        meta["grades"].append(grade_t.astype(np.int8))
    meta["grades"] = np.stack(meta["grades"])
    return RealSet("textile", np.stack(xs), np.full(len(xs), np.nan), np.array(groups),
                   {k: np.asarray(v) for k, v in meta.items()}, peaks, masks, fs)


def mitdb_records(data_dir=None, annotated: bool = True) -> list[str]:
    """The MIT-BIH records of ``data_dir/mitdb`` (sorted; with ``annotated``, those with beat
    annotations ``.atr``): 100 in the shared folder, whichever are there in another.

    Raises
    ------
    DataFormatError
        No such record in the folder.
    """
    root = resolve_data_dir(data_dir) / "mitdb"
    names = sorted(h.stem for h in root.glob("*.hea") if not annotated or h.with_suffix(".atr").is_file())
    if not names:
        raise DataFormatError(f"no {'annotated ' if annotated else ''}MIT-BIH record (.hea"
                              f"{' with .atr' if annotated else ''}) in {root}")
    return names


def _mlii(rec) -> int:
    """Channel of a MIT-BIH record to test on: MLII where the record has it (channel 0 in most
    records, not in 102 and 104), else channel 0."""
    names = [str(n).strip().upper() for n in rec.sig_name]
    return names.index("MLII") if "MLII" in names else 0


def load_mitdb_noisy(data_dir=None, fs: float = 100.0, snrs_db=(12.0, 6.0, 0.0), seconds: float | None = None,
                     noises=("bw", "ma"), records=None) -> RealSet:
    """MIT-BIH records (MLII; default every annotated record of ``mitdb/``: 100 in the shared
    folder) plus NSTDB noise at each SNR (NSTDB definition, per lead).

    Per record, the clean record and one entry per (noise, SNR); ``meta`` has ``noise``,
    ``snr_db`` and ``record``. The noise gain follows Moody et al. (1984): signal power from
    the annotated normal beats' QRS amplitudes, noise power from 1-s RMS chunks
    (:mod:`cardiosim.noise.snr`).
    """
    import wfdb

    from ..noise import read_nstdb_noise, snr_gain

    root = resolve_data_dir(data_dir)
    names = mitdb_records(root) if records is None else list(records)
    noise_of = {kind: read_nstdb_noise(kind, root) for kind in noises}
    xs, refs, groups, meta = [], [], [], {"noise": [], "snr_db": [], "record": []}
    for name in names:
        head = wfdb.rdheader(str(root / "mitdb" / name))
        rec = wfdb.rdrecord(str(root / "mitdb" / name), channels=[_mlii(head)])
        ann = wfdb.rdann(str(root / "mitdb" / name), "atr")
        fs0 = float(rec.fs)
        x = rec.p_signal[:, 0].astype(np.float64)
        n = x.size if seconds is None else int(round(seconds * fs0))
        x = x[:n]
        beats = np.array([s for s, sym in zip(ann.sample, ann.symbol) if sym in BEAT_SYMBOLS and s < n],
                         dtype=np.int64)
        normal = np.array([s for s, sym in zip(ann.sample, ann.symbol) if sym == "N" and s < n], dtype=np.int64)
        ref = np.round(beats * fs / fs0).astype(np.int64)
        entries = [(resample(x, fs0, fs)[None], "none", np.inf)]
        for kind in noises:
            noise, fsn = noise_of[kind]
            if fsn != fs0:
                raise DataFormatError(f"NSTDB {kind} is at {fsn} Hz, MIT-BIH {name} at {fs0} Hz")
            nz = noise[0, :n]
            for snr in snrs_db:
                g = float(np.squeeze(snr_gain(nz[None], x[None], snr, fs=fs0, r_peaks=normal)))
                entries.append((resample(x + g * nz, fs0, fs)[None], kind, float(snr)))
        for v, kind, snr in entries:
            xs.append(v)
            refs.append(ref)
            groups.append(name)
            meta["noise"].append(kind)
            meta["snr_db"].append(snr)
            meta["record"].append(name)
    m = len(xs)
    n_out = min(len(v[0]) for v in xs)
    return RealSet("mitdb" + "+".join(names) + "+nstdb", np.stack([v[:, :n_out] for v in xs]), np.full(m, np.nan),
                   np.array(groups), {k: np.array(v) for k, v in meta.items()},
                   [r[r < n_out] for r in refs], [np.ones(n_out, dtype=bool)] * m, fs)
