"""Conditions (e) and (f) of the sim-to-real benchmark: learning from unlabeled device data.

* ``e`` physics + refiner: condition (c)'s records passed through a SimGAN-style refiner
  (:mod:`cardiosim.torch.refine`) trained to make them look like *unlabeled* real
  recordings of the task's training subjects, with the Euler loss as its physics term.
  Labels and true R peaks are the simulation's, unchanged.
* ``f`` physics + masked pre-training: the classifier's encoder is first pre-trained as
  a masked autoencoder (:mod:`cardiosim.torch.pretrain`) on the same unlabeled real
  recordings together with condition (c)'s records (labels unused), then trained on (c)
  as every other condition.

Which unlabeled real recordings (never a test recording):

=========  ==========================================================================
task       unlabeled device data
=========  ==========================================================================
af         MIT-BIH 100, both channels, in 10-s windows: a 2-lead ambulatory (Holter)
           recording of a patient who is not among the CPSC 2021 test patients
quality    textile recordings of subjects 01-03 (the test sets use 04-05), every
           activity, the budget's electrode types, in 2-s windows
beats      the same textile subjects 01-03 in 10-s windows
=========  ==========================================================================
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from . import conditions as _cond
from . import tasks as _tasks

#: Textile subjects whose recordings serve as unlabeled device data (the test sets hold the others).
UNLABELED_TEXTILE_SUBJECTS = ("01", "02", "03")
#: Training steps of the refiner and of the masked pre-training per budget name.
REFINER_STEPS = {"quick": 8, "full": 150}
PRETRAIN_STEPS = {"quick": 8, "full": 200}


@dataclass
class LearnedTrainingSet(_cond.TrainingSet):
    """A :class:`~cardiosim.sim2real.conditions.TrainingSet` that also carries the
    unlabeled real windows (``(m, n_leads, T)``) the condition learns from."""

    unlabeled: np.ndarray | None = None


def _windows(x: np.ndarray, n: int) -> np.ndarray:
    """Non-overlapping ``n``-sample windows of ``x (leads, T)`` -> ``(k, leads, n)``."""
    k = x.shape[-1] // n
    return np.stack([x[:, i * n:(i + 1) * n] for i in range(k)]) if k else np.zeros((0, x.shape[0], n), np.float32)


def load_unlabeled(task: str, budget, data_dir) -> np.ndarray:
    """Unlabeled real windows of ``task`` at ``budget.fs`` (see the module docstring)."""
    import wfdb

    fs = float(budget.fs)
    setup = _cond.TASK_SETUP[task]
    n = int(round(setup["duration"] * fs))
    root = _tasks.resolve_data_dir(data_dir)
    if task == "af":
        # the MIT-BIH records of the folder (100 in the shared one), both channels
        ws = []
        for name in _tasks.mitdb_records(root, annotated=False):
            rec = wfdb.rdrecord(str(root / "mitdb" / name))
            ws.append(_windows(_tasks.resample(rec.p_signal.T.astype(np.float64), float(rec.fs), fs), n))
        w = np.concatenate(ws)
    elif task in ("quality", "beats"):
        # the noise model's fit subjects that the folder holds (01-03 in the shared one); a folder
        # of new subjects only has none that is not a test subject
        subjects = [s for s in UNLABELED_TEXTILE_SUBJECTS if s in _tasks.textile_subjects(root)[0]]
        if not subjects:
            raise _cond.NotApplicable(f"no textile record of subjects {', '.join(UNLABELED_TEXTILE_SUBJECTS)} "
                                      f"(unlabeled device data, never tested on) in {root / 'textile'}")
        recs = _tasks.read_textile(root, fs, subjects=subjects, electrodes=budget.textile_electrodes)
        w = np.concatenate([_windows(r.x[None], n) for r in recs])
        w = np.repeat(w, len(setup["leads"]), axis=1) if len(setup["leads"]) > 1 else w
    else:
        raise ConfigError(f"unknown task {task!r}")
    if len(w) < 2:
        raise _cond.NotApplicable(f"fewer than 2 unlabeled real windows for task {task!r}")
    return np.ascontiguousarray(w, dtype=np.float32)


def _physics_set(task, budget, seed, data_dir) -> tuple[_cond.TrainingSet, np.ndarray, list]:
    """Condition (c)'s training set, its clean records and true R peaks."""
    from ..qrs import detect_r_peaks

    recipes = _cond.physics_recipes(task, budget, seed, data_dir)
    sims = [_cond.simulate(r, _cond.TASK_SETUP[task]["leads"]) for r in recipes]
    # the same labels as condition (c) (until 2026-12-06 the quality task's (e) and (f) were
    # trained on the SNR flags instead of (c)'s artefact grades)
    ts = _cond._assemble(task, recipes, sims, _cond.physics_flags(task, sims))
    if any("clean" not in s for s in sims):
        raise ConfigError("the refiner's physics term needs the clean records (store_clean) of condition (c)")
    clean = np.concatenate([s["clean"] for s in sims])
    peaks = []
    for s in sims:
        for i in range(len(s["x"])):
            p = s["r_peaks"][i] if "r_peaks" in s else detect_r_peaks(s["clean"][i], s["fs"])
            peaks.append(np.asarray(p, dtype=np.int64))
    return ts, clean, peaks


def _steps(table: dict, budget) -> int:
    return int(table.get(budget.name, table["full"]))


def build_refined(task, budget, seed, data_dir=None) -> LearnedTrainingSet:
    """Condition (e): (c) refined towards the unlabeled real windows."""
    import json

    from ..torch.refine import fit_refiner, refine

    ts, clean, peaks = _physics_set(task, budget, seed, data_dir)
    real = load_unlabeled(task, budget, data_dir)
    res = fit_refiner(ts.x, real, fs=float(budget.fs), clean=clean, r_peaks=peaks,
                      steps=_steps(REFINER_STEPS, budget), batch=16, channels=16, seed=seed)
    # the same average-beat projection as in training (peaks None: the physics set has no beats)
    x = refine(res.refiner, ts.x, r_peaks=peaks if res.refiner.config["keep_average_beat"] else None,
               fs=float(budget.fs))
    settings = dict(res.settings, unlabeled="MIT-BIH 100" if task == "af" else
                    f"textile subjects {', '.join(UNLABELED_TEXTILE_SUBJECTS)}")
    info = dict(ts.info, refiner={k: v for k, v in settings.items() if k != "unlabeled"},
                refiner_final={k: float(np.mean(v[-10:])) for k, v in res.history.items() if v},
                n_unlabeled=int(len(real)))
    recipes = dict(ts.recipes, **{"refiner.json": json.dumps(settings, indent=1)})
    return LearnedTrainingSet(x=x, y=ts.y, peaks=ts.peaks, recipes=recipes, info=info, unlabeled=real)


def build_for_pretraining(task, budget, seed, data_dir=None) -> LearnedTrainingSet:
    """Condition (f)'s data: (c) plus the unlabeled real windows for pre-training."""
    ts, _, _ = _physics_set(task, budget, seed, data_dir)
    real = load_unlabeled(task, budget, data_dir)
    return LearnedTrainingSet(x=ts.x, y=ts.y, peaks=ts.peaks, recipes=ts.recipes,
                              info=dict(ts.info, n_unlabeled=int(len(real))), unlabeled=real)


def fit_pretrained(model, ts: LearnedTrainingSet, budget, seed, device):
    """Masked pre-training on unlabeled real + simulated windows, then the default training."""
    from ..torch.pretrain import pretrain_encoder
    from . import train as _train

    encoder = model.body if isinstance(model, _train.BeatNet) else model
    pool = np.concatenate([ts.unlabeled, ts.x]) if ts.unlabeled is not None else ts.x
    pretrain_encoder(encoder, pool, steps=_steps(PRETRAIN_STEPS, budget), batch=32, fs=float(budget.fs),
                     seed=seed, device=device)
    return _train.fit(model, ts.x, ts.y, budget, seed, device, peaks=ts.peaks)


_cond.register_condition(_cond.Condition(
    "e", "physics + refiner", "(c) refined by a SimGAN-style refiner (Euler physics term) trained on unlabeled "
    "real recordings of training subjects", build=build_refined), replace_existing=True)
_cond.register_condition(_cond.Condition(
    "f", "physics + masked pre-training", "(c) with the encoder first pre-trained as a masked autoencoder on "
    "unlabeled real recordings of training subjects and the simulated records", build=build_for_pretraining,
    fit=fit_pretrained), replace_existing=True)
