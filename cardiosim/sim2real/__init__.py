"""Sim-to-real benchmark: does physics beat naive augmentation on real recordings? (issue 15)

Three tasks scored on real PhysioNet recordings (:mod:`cardiosim.sim2real.tasks`): AF in
CPSC 2021 ambulatory records, signal quality in graded wearable and CinC 2011 records,
R peaks in MIT-BIH 100 with NSTDB noise and in wearable recordings during motion. Each
is trained the same way under every registered condition
(:mod:`cardiosim.sim2real.conditions`: (a) clean, (b) classic augmentation, (c) physics,
(d) real by cross-validation, (e) physics + refiner and (f) physics + masked pre-training
(:mod:`cardiosim.sim2real.learned`), and any added with :func:`register_condition`).

    from cardiosim.sim2real import run, run_all
    result = run("af", "report/", budget="quick")     # or run_all("report/")

Needs torch and matplotlib (``pip install cardiosim[all]``) and neurokit2 for the
textile beat reference.
"""

from .conditions import CONDITIONS, Condition, NotApplicable, TrainingSet, register_condition
from . import learned  # noqa: E402,F401  (registers (e) refiner and (f) masked pre-training)
from .run import TASKS, run, run_all
from .train import BUDGETS, Budget

__all__ = ["BUDGETS", "Budget", "CONDITIONS", "Condition", "NotApplicable", "TASKS", "TrainingSet",
           "register_condition", "run", "run_all"]
