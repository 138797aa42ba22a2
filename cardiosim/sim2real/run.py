"""Run the sim-to-real benchmark: one task or all, every registered condition, every seed."""

from __future__ import annotations

import datetime
import platform
import time
from pathlib import Path

import numpy as np

from ..errors import CardiosimError, ConfigError
from . import conditions as _cond
from . import report as _report
from . import tasks as _tasks
from . import train as _train

TASKS = ("af", "quality", "beats")
#: Textile subjects the package's noise model is fitted on (scripts/fit_textile_noise.py) and
#: the train-on-real condition trains on; the textile test sets hold only the others.
TEXTILE_TRAIN_SUBJECTS = ("01", "02", "03")
TEXTILE_TEST_SUBJECTS = ("04", "05")
# (the subjects of the shared folder; :func:`cardiosim.sim2real.tasks.textile_subjects` reads them from any folder)


def _log(progress, msg):
    if progress:
        print(f"[sim2real {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------- test sets
def cpsc_held_out(groups=None) -> tuple:
    """CPSC 2021 patients no part of cardiosim was fitted on (the ODE's AF rhythm prior is
    fitted to the other patients' AF episodes, :mod:`cardiosim.ode.rhythm_prior`).

    Parameters
    ----------
    groups : iterable of str, optional
        The patients of a test set. Given, the result is those of them the validation rhythm
        prior was not fitted on (its ``sources``): 21 and 84 in the shared folder, every
        patient of a folder of other patients. Without, the shared folder's
        :data:`~cardiosim.ode.rhythm_prior.HELD_OUT_PATIENTS`.
    """
    try:
        from ..ode.rhythm_prior import HELD_OUT_PATIENTS, fitted_cpsc_patients
    except ImportError:  # pragma: no cover - before the rhythm prior existed nothing was fitted
        return ()
    if groups is None:
        return tuple(HELD_OUT_PATIENTS)
    fitted = fitted_cpsc_patients()
    return tuple(sorted({str(g) for g in groups} - fitted))


def _textile_test_subjects(data_dir) -> tuple:
    test = _tasks.textile_subjects(data_dir)[1]
    if not test:
        raise ConfigError(f"every textile subject in {Path(data_dir) / 'textile'} is one the noise model was "
                          "fitted on: no held-out subject to test on")
    return test


def load_test_sets(task: str, budget, data_dir) -> dict:
    """The real sets a task is scored on (see :mod:`cardiosim.sim2real.tasks`)."""
    fs = budget.fs
    if task == "af":
        s = _tasks.load_af(data_dir, fs, records=budget.af_records)
        held = np.isin(s.groups, cpsc_held_out(s.groups))
        return {"cpsc2021": s, "cpsc2021_heldout": s.subset(np.flatnonzero(held))}
    if task == "quality":
        return {"textile": _tasks.load_textile_segments(data_dir, fs, subjects=_textile_test_subjects(data_dir),
                                                        electrodes=budget.textile_electrodes),
                "cinc2011": _tasks.load_cinc2011(data_dir, fs, limit=budget.cinc2011_limit),
                "cpsc2021": _tasks.load_af(data_dir, fs, records=budget.af_records)}
    if task == "beats":
        return {"mitdb_nstdb": _tasks.load_mitdb_noisy(data_dir, fs, snrs_db=budget.mitdb_snrs,
                                                       seconds=budget.mitdb_seconds),
                "textile": _tasks.load_textile_beats(data_dir, fs, subjects=_textile_test_subjects(data_dir),
                                                     electrodes=budget.textile_electrodes)}
    raise ConfigError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")


def describe_test_sets(task: str, sets: dict) -> dict:
    out = {}
    for name, s in sets.items():
        d = {"n": len(s), "groups": sorted(set(map(str, s.groups)))}
        if np.any(np.isfinite(s.y)):
            d["n_positive"] = int(np.nansum(s.y))
        if "noisy" in s.meta:
            d["n_noisy"] = int(np.sum(s.meta["noisy"]))
        if s.peaks is not None:
            d["n_reference_beats"] = int(sum(int(np.sum(m[p])) for p, m in zip(s.peaks, s.mask)))
        out[name] = d
    # the subjects and patients of the sets themselves (the shared folder's 04-05 and 21/84, or
    # those of another folder)
    cpsc = sets.get("cpsc2021")
    held = cpsc_held_out(cpsc.groups) if cpsc is not None else cpsc_held_out()
    subj = sorted(set(map(str, sets["textile"].groups))) if "textile" in sets else list(TEXTILE_TEST_SUBJECTS)
    mit = sorted(set(map(str, sets["mitdb_nstdb"].groups))) if "mitdb_nstdb" in sets else ["100"]
    notes = {"af": "10-s windows labelled from the (AFIB/(N rhythm annotations, mixed windows dropped; "
                   f"too noisy = beat-agreement SQI < {_tasks.BSQI_NOISY} (annotated beats vs cardiosim.qrs); "
                   f"the ODE's AF rhythm prior was fitted on the AF episodes of the other patients, so "
                   f"'held out' = patients {', '.join(held) or 'all'} only",
             "quality": f"textile: subjects {', '.join(subj)} only (01-03 fit the noise model), "
                        f"2-s segments, unacceptable = grade >= {_tasks.UNACCEPTABLE_GRADE}; CinC 2011 set-a "
                        "record score = max over leads and 2-s windows",
             "beats": f"MIT-BIH {', '.join(mit)} MLII + NSTDB bw/ma noise at known SNRs (annotated beats); textile "
                      f"walk/run/squats of subjects {', '.join(subj)}: the recordings carry NO beat "
                      "annotations, the reference is the consensus of wfdb XQRS and NeuroKit2 (within 50 ms) "
                      "in segments graded 1 (running has no grade-1 segment)"}
    out["how"] = notes[task]
    return out


# --------------------------------------------------------------------------- scoring
def _af_scores(probs, trained_unreadable: bool):
    p_af = probs[:, 0]
    called = p_af >= 0.5
    gated = called & (probs[:, 1] < 0.5) if trained_unreadable and probs.shape[1] > 1 else called
    return p_af, called, gated


def _segments(x: np.ndarray, n: int) -> np.ndarray:
    """Split ``(m, leads, T)`` into ``(m * leads * k, 1, n)`` single-lead segments of ``n`` samples."""
    m, leads, t = x.shape
    k = t // n
    return x[:, :, :k * n].reshape(m, leads, k, n).reshape(m * leads * k, 1, n), leads * k


def score_classifier(task: str, model, sets: dict, trained_unreadable: bool, device) -> dict:
    """Per-test-set scores of one trained classifier: ``{set: {"score":..., "called":...}}``."""
    out = {}
    if task == "af":
        s = sets["cpsc2021"]
        p = _train.predict(model, s.x, device)
        score, called, gated = _af_scores(p, trained_unreadable)
        out["cpsc2021"] = {"score": score, "called": called}
        held = np.isin(s.groups, cpsc_held_out(s.groups))
        out["cpsc2021_heldout"] = {"score": score[held], "called": called[held]}
        noisy = s.meta["noisy"].astype(bool)
        out["cpsc2021_noisy"] = {"called_af": gated[noisy]}
        return out
    # quality: one lead, 2-s segments
    s = sets["textile"]
    p = _train.predict(model, s.x, device)[:, 0]
    out["textile"] = {"score": p, "called": p >= 0.5}
    c = sets["cinc2011"]
    n = s.x.shape[-1]
    seg, per = _segments(c.x, n)
    pc = _train.predict(model, seg, device)[:, 0].reshape(len(c.x), per).max(axis=1)
    out["cinc2011"] = {"score": pc, "called": pc >= 0.5}
    a = sets["cpsc2021"]
    keep = (a.y == 1) & ~a.meta["noisy"].astype(bool)
    seg, per = _segments(a.x[keep][:, 1:2], n)  # lead II, the task's lead
    pa = _train.predict(model, seg, device)[:, 0].reshape(int(keep.sum()), per).max(axis=1) if keep.any() else []
    out["cpsc2021_af_clean"] = {"called_unacceptable": np.asarray(pa) >= 0.5}
    return out


def _chunk_counts(ref, det, mask, fs, chunk_s=10.0) -> np.ndarray:
    """TP/FP/FN per ``chunk_s`` chunk, counting only reference and detections inside ``mask``."""
    ref = np.asarray(ref, dtype=np.int64)
    det = np.asarray(det, dtype=np.int64)
    ref = ref[mask[np.clip(ref, 0, len(mask) - 1)]] if ref.size else ref
    det = det[mask[np.clip(det, 0, len(mask) - 1)]] if det.size else det
    m_ref, m_det = _tasks.match_beats(ref, det, fs)
    c = int(round(chunk_s * fs))
    n_chunks = -(-len(mask) // c)
    out = np.zeros((n_chunks, 3), np.int64)
    np.add.at(out[:, 0], ref[m_ref] // c, 1)
    np.add.at(out[:, 1], det[~m_det] // c, 1)
    np.add.at(out[:, 2], ref[~m_ref] // c, 1)
    has = np.add.reduceat(mask.astype(int), np.arange(0, len(mask), c)) > 0
    return out[has]


def score_beats(detector, sets: dict, fs: float) -> dict:
    """``detector(x (leads, T)) -> peaks``; per-unit TP/FP/FN for each beats test set."""
    out = {}
    m = sets["mitdb_nstdb"]
    noisy = [k for k in range(len(m)) if m.meta["noise"][k] != "none"]
    counts = {k: _chunk_counts(m.peaks[k], detector(m.x[k]), m.mask[k], fs) for k in range(len(m))}
    out["mitdb_nstdb"] = {"counts": np.concatenate([counts[k] for k in noisy])}
    # every MIT-BIH record's chunks pooled per condition (one record, 100, in the shared folder;
    # taking the first clean entry alone dropped the others of another folder)
    out["mitdb_clean"] = {"counts": np.concatenate([counts[k] for k in range(len(m)) if k not in noisy])}
    per = {}
    for k in noisy:
        per.setdefault(f"mitdb_{m.meta['noise'][k]}_{m.meta['snr_db'][k]:g}dB", []).append(counts[k])
    for key, c in per.items():
        out[key] = {"counts": np.concatenate(c)}
    t = sets["textile"]
    tc, rates = [], []
    for k in range(len(t)):
        det = detector(t.x[k])
        tc.append(_chunk_counts(t.peaks[k], det, t.mask[k], fs))
        g = t.meta["grades"][k]
        bad = g >= _tasks.UNACCEPTABLE_GRADE
        good = g == 1
        if bad.any() and good.any():
            n_bad = np.sum(bad[np.clip(det, 0, len(g) - 1)]) if det.size else 0
            ref_good = np.sum(good[np.clip(t.peaks[k], 0, len(g) - 1)]) if len(t.peaks[k]) else 0
            rates.append((n_bad / bad.sum(), ref_good / good.sum()))
    out["textile"] = {"counts": np.concatenate(tc)}
    r = np.array(rates) if rates else np.zeros((0, 2))
    out["textile_noisy"] = {"rates": r}
    return out


# --------------------------------------------------------------------------- conditions
def _train_real_cv(task, budget, seed, sets, data_dir, device):
    """Condition (d): scores of models trained on real recordings of other patients/subjects."""
    if task == "af":
        s = sets["cpsc2021"]
        pats = sorted(set(s.groups))
        fold = {p: i % budget.cv_folds for i, p in enumerate(pats)}
        f = np.array([fold[g] for g in s.groups])
        probs = np.zeros((len(s), 2))
        for k in range(budget.cv_folds):
            tr = f != k
            if tr.all() or not (f == k).any():
                continue
            y = np.stack([s.y[tr], np.full(tr.sum(), np.nan)], axis=1)
            model = _train.make_model(task, s.x.shape[1], 2, budget, seed)
            _train.fit(model, s.x[tr], y, budget, seed, device)
            probs[f == k] = _train.predict(model, s.x[f == k], device)
        score, called, gated = _af_scores(probs, False)
        noisy = s.meta["noisy"].astype(bool)
        held = np.isin(s.groups, cpsc_held_out(s.groups))
        return {"cpsc2021": {"score": score, "called": called},
                "cpsc2021_heldout": {"score": score[held], "called": called[held]},
                "cpsc2021_noisy": {"called_af": gated[noisy]}}, \
            {"folds": {str(p): int(k) for p, k in fold.items()}}
    train = _tasks.textile_subjects(data_dir)[0]
    if not train:  # a folder of new subjects only: nothing of the noise model's subjects to train on
        raise _cond.NotApplicable(f"no textile record of the noise model's fit subjects "
                                  f"({', '.join(TEXTILE_TRAIN_SUBJECTS)}) in {Path(data_dir) / 'textile'} to train on")
    if task == "quality":
        tr = _tasks.load_textile_segments(data_dir, budget.fs, subjects=train,
                                          electrodes=budget.textile_electrodes)
        model = _train.make_model(task, 1, 1, budget, seed)
        _train.fit(model, tr.x, tr.y[:, None].astype(np.float32), budget, seed, device)
        sc = score_classifier(task, model, sets, False, device)
        sc.pop("cinc2011")  # trained on textile, not a cross-validation of CinC 2011
        return sc, {"train_subjects": list(train), "n": len(tr)}
    # beats: 10-s windows of subjects 01-03 whose five 2-s segments are all graded 1
    tr = _tasks.load_textile_beats(data_dir, budget.fs, subjects=train,
                                   electrodes=budget.textile_electrodes,
                                   activities=budget.textile_train_activities or _tasks.TEXTILE_ACTIVITIES)
    win = int(round(10.0 * budget.fs))
    xs, ps = [], []
    for k in range(len(tr)):
        for a in range(0, tr.x.shape[-1] - win + 1, win):
            if tr.mask[k][a:a + win].all():
                p = tr.peaks[k]
                xs.append(tr.x[k][:, a:a + win])
                ps.append(p[(p >= a) & (p < a + win)] - a)
    if len(xs) < 2:
        raise _cond.NotApplicable("fewer than 2 fully grade-1 10-s textile windows to train on")
    model = _train.make_model(task, 1, 1, budget, seed)
    _train.fit(model, np.stack(xs), None, budget, seed, device, peaks=ps)
    sc = score_beats(lambda x: _train.detect_beats(model, x, budget.fs, device), sets, budget.fs)
    for k in [k for k in sc if k.startswith("mitdb")]:
        sc.pop(k)  # one record: no cross-validation possible
    return sc, {"train_subjects": list(train), "n_windows": len(xs)}


def _train_simulated(task, cond, budget, seed, sets, data_dir, device, cache: dict):
    data_seed = seed if budget.data_per_seed else budget.seeds[0]
    if data_seed not in cache:
        cache.clear()
        cache[data_seed] = cond.build(task, budget, data_seed, data_dir)
    ts = cache[data_seed]
    n_out = ts.y.shape[1] if task != "beats" else 1
    model = _train.make_model(task, ts.x.shape[1], n_out, budget, seed)
    if cond.fit is not None:
        model = cond.fit(model, ts, budget, seed, device)
    else:
        _train.fit(model, ts.x, ts.y, budget, seed, device, peaks=ts.peaks)
    if task == "beats":
        sc = score_beats(lambda x: _train.detect_beats(model, x, budget.fs, device), sets, budget.fs)
    else:
        trained_unreadable = ts.y.shape[1] > 1 and bool(np.isfinite(ts.y[:, 1]).any())
        sc = score_classifier(task, model, sets, trained_unreadable, device)
    return sc, ts.info, ts.recipes


def _metrics(task, per_seed: list, sets, n_boot) -> dict:
    out = {}
    for name in per_seed[0]:
        vals = [p[name] for p in per_seed]
        first = next(iter(vals[0].values()))
        if len(first) == 0:  # an empty subset (e.g. no too-noisy window in a quick run)
            out[name] = {}
            continue
        if "counts" in vals[0]:
            out[name] = _report.beat_metrics([v["counts"] for v in vals], n_boot)
        elif "rates" in vals[0]:
            r = [v["rates"] for v in vals]
            ratio = lambda rr, i: float(np.sum(rr[i, 0]) / np.sum(rr[i, 1])) if len(i) and np.sum(rr[i, 1]) else np.nan
            out[name] = {"rate_ratio": _report.bootstrap(ratio, r, len(r[0]), n_boot) if len(r[0]) else
                         {"mean": float("nan")}}
        elif "score" in vals[0]:
            y = sets[name].y
            out[name] = _report.classification_metrics(y, [v["score"] for v in vals], [v["called"] for v in vals],
                                                       n_boot)
        else:
            key = next(iter(vals[0]))
            out[name] = {key: _report.share_metric([v[key] for v in vals], n_boot)}
    return out


def _pan_tompkins(sets, fs) -> dict:
    from ..qrs import detect_r_peaks
    return score_beats(lambda x: detect_r_peaks(x, fs), sets, fs)


def run(task: str, output, *, budget="full", conditions=None, data_dir=None, progress: bool = True,
        device=None) -> dict:
    """Run one task of the sim-to-real benchmark and write its report under ``output/<task>/``.

    Parameters
    ----------
    task : {'af', 'quality', 'beats'}
    output : path of the report folder (created)
    budget : 'full', 'quick' or a :class:`~cardiosim.sim2real.train.Budget`
    conditions : iterable of condition keys (default: every registered condition)
    data_dir : folder of real recordings (default ``$CARDIOSIM_DATA``)
    device : torch device (default: CUDA when present, else CPU)

    Returns
    -------
    dict
        The result written to ``results.json`` (metrics with 95 % intervals per condition).
    """
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    b = _train.get_budget(budget)
    bt = b.for_task(task)
    data_dir = _tasks.resolve_data_dir(data_dir)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    keys = list(_cond.CONDITIONS) if conditions is None else list(conditions)
    for k in keys:
        _cond.get_condition(k)
    _train.set_threads()
    device = _train.pick_device() if device is None else device
    t0 = time.perf_counter()
    sets = load_test_sets(task, b, data_dir)
    _log(progress, f"{task}: test sets {', '.join(f'{k} {len(v)}' for k, v in sets.items())}")
    result = {"task": task, "budget": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(bt).items()},
              "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "machine": f"{platform.machine()} {platform.system()}, {__import__('os').cpu_count()} cores",
              "device": str(device), "test_sets": describe_test_sets(task, sets),
              "unreadable_snr_db": _cond.UNREADABLE_SNR_DB, "conditions": {}}
    recipes = {}
    for k in keys:
        cond = _cond.get_condition(k)
        entry = {"name": cond.name, "description": cond.description}
        tc = time.perf_counter()
        per_seed, infos, cache = [], {}, {}
        try:
            for seed in bt.seeds:
                if cond.real_cv:
                    sc, info = _train_real_cv(task, bt, seed, sets, data_dir, device)
                else:
                    sc, info, texts = _train_simulated(task, cond, bt, seed, sets, data_dir, device, cache)
                    recipes.setdefault(k, {})[seed] = texts
                per_seed.append(sc)
                infos[str(seed)] = info
                _log(progress, f"{task} ({k}) {cond.name} seed {seed} done ({time.perf_counter() - tc:.0f} s)")
        except _cond.NotApplicable as exc:
            entry.update(status="n/a", reason=str(exc))
            _log(progress, f"{task} ({k}) {cond.name}: n/a ({exc})")
        except CardiosimError as exc:  # a simulator failure is a result too: report it, go on
            entry.update(status="error", reason=f"{type(exc).__name__}: {exc}")
            _log(progress, f"{task} ({k}) {cond.name}: FAILED ({exc})")
        else:
            entry.update(status="ok", train=infos, metrics=_metrics(task, per_seed, sets, b.n_boot))
        entry["seconds"] = round(time.perf_counter() - tc, 1)
        result["conditions"][k] = entry
    if task == "beats":
        pt = _pan_tompkins(sets, b.fs)
        result["reference_detector"] = {"name": "Pan-Tompkins (cardiosim.qrs, untrained)",
                                        "metrics": _metrics(task, [pt], sets, b.n_boot)}
    result["findings"] = _report.findings(result)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    paths = _report.write_result(result, recipes, output)
    _log(progress, f"{task}: wrote {paths['json']} ({result['seconds']:.0f} s)")
    return result


def run_all(output, *, budget="full", conditions=None, data_dir=None, progress: bool = True, device=None) -> dict:
    """Every task; also writes ``output/summary.md`` (all tables) and ``output/sim2real.png``."""
    t0 = time.perf_counter()
    results = {t: run(t, output, budget=budget, conditions=conditions, data_dir=data_dir, progress=progress,
                      device=device) for t in TASKS}
    output = Path(output)
    lines = [f"# cardiosim sim-to-real benchmark ({_train.get_budget(budget).name} budget)", "",
             f"{results['af']['date']}, {results['af']['machine']}, torch device {results['af']['device']}, "
             f"{time.perf_counter() - t0:.0f} s in all.", ""]
    for t, r in results.items():
        lines += [_report.table(r), "", f"Test sets: {r['test_sets']['how']}.", ""]
        lines += [f"- {f}" for f in r["findings"]] + [""]
    _report.write_atomic(output / "summary.md", "\n".join(lines))
    _report.figure(list(results.values()), output / "sim2real.png")
    return results
