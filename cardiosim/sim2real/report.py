"""Metrics with bootstrap intervals, and the benchmark's table, figures, JSON and recipes.

Intervals: each bootstrap replicate draws one training seed at random and resamples the
test units (windows, records or 10-s beat chunks) with replacement; the 2.5 and 97.5
percentiles of the metric over the replicates form the 95 % interval, so it holds both
the training-seed spread and the test-set sampling error. The point value is the mean
over seeds of the metric on the whole test set.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def auroc(y, score) -> float:
    """Area under the ROC curve (Mann-Whitney U with mid-ranks); NaN with one class only."""
    from scipy.stats import rankdata

    y = np.asarray(y, dtype=float)
    s = np.asarray(score, dtype=float)
    n1 = int((y == 1).sum())
    n0 = int((y == 0).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    r = rankdata(s)
    return float((r[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def f1_score(y, called) -> float:
    y = np.asarray(y).astype(bool)
    c = np.asarray(called).astype(bool)
    tp = int((y & c).sum())
    denom = 2 * tp + int((~y & c).sum()) + int((y & ~c).sum())
    return float(2 * tp / denom) if denom else float("nan")


def _summary(point_per_seed, boots) -> dict:
    boots = np.asarray([b for b in boots if np.isfinite(b)])
    per_seed = [float(v) for v in point_per_seed]
    finite = [v for v in per_seed if np.isfinite(v)]
    return {"mean": float(np.mean(finite)) if finite else float("nan"),
            "lo": float(np.percentile(boots, 2.5)) if boots.size else float("nan"),
            "hi": float(np.percentile(boots, 97.5)) if boots.size else float("nan"),
            "per_seed": per_seed}


def bootstrap(stat, per_seed_inputs: list, n_units: int, n_boot: int, seed: int = 0) -> dict:
    """Mean over seeds and 95 % interval of ``stat(inputs, idx)``.

    ``per_seed_inputs[k]`` is whatever ``stat`` needs for seed ``k``; ``idx`` selects
    test units (``np.arange(n_units)`` for the point value).
    """
    rng = np.random.default_rng(seed)
    full = np.arange(n_units)
    point = [stat(inp, full) for inp in per_seed_inputs]
    boots = []
    for _ in range(n_boot):
        k = int(rng.integers(len(per_seed_inputs)))
        boots.append(stat(per_seed_inputs[k], rng.integers(0, n_units, n_units)))
    return _summary(point, boots)


def classification_metrics(y, scores_per_seed, called_per_seed, n_boot: int) -> dict:
    """AUROC and F1 of binary labels ``y`` against per-seed scores and calls."""
    y = np.asarray(y, dtype=float)
    inputs = list(zip(scores_per_seed, called_per_seed))
    return {"auroc": bootstrap(lambda inp, i: auroc(y[i], inp[0][i]), inputs, len(y), n_boot),
            "f1": bootstrap(lambda inp, i: f1_score(y[i], inp[1][i]), inputs, len(y), n_boot, seed=1),
            "n": int(len(y)), "n_positive": int((y == 1).sum())}


def share_metric(called_per_seed, n_boot: int) -> dict:
    """Share of units called positive (e.g. too-noisy windows called AF)."""
    n = len(called_per_seed[0]) if called_per_seed else 0
    if n == 0:
        return {"mean": float("nan"), "lo": float("nan"), "hi": float("nan"), "per_seed": [], "n": 0}
    out = bootstrap(lambda c, i: float(np.mean(np.asarray(c)[i])), list(called_per_seed), n, n_boot, seed=2)
    out["n"] = int(n)
    return out


def beat_metrics(counts_per_seed, n_boot: int) -> dict:
    """Sensitivity and PPV from per-seed ``(n_units, 3)`` TP/FP/FN counts."""
    def se(c, i):
        tp, fn = c[i, 0].sum(), c[i, 2].sum()
        return float(tp / (tp + fn)) if tp + fn else float("nan")

    def ppv(c, i):
        tp, fp = c[i, 0].sum(), c[i, 1].sum()
        return float(tp / (tp + fp)) if tp + fp else float("nan")

    cs = [np.asarray(c) for c in counts_per_seed]
    n = len(cs[0])
    return {"sensitivity": bootstrap(se, cs, n, n_boot), "ppv": bootstrap(ppv, cs, n, n_boot, seed=1),
            "n_units": int(n), "n_reference_beats": int(cs[0][:, 0].sum() + cs[0][:, 2].sum())}


# --------------------------------------------------------------------------- table
#: Headline columns per task: (test set, metric, column title).
HEADLINE = {
    "af": [("cpsc2021", "auroc", "CPSC 2021 AUROC"), ("cpsc2021", "f1", "CPSC 2021 F1"),
           ("cpsc2021_heldout", "auroc", "held-out patients AUROC"),
           ("cpsc2021_noisy", "called_af", "noisy windows called AF")],
    "quality": [("textile", "auroc", "textile AUROC (grade>=3)"), ("textile", "f1", "textile F1"),
                ("cinc2011", "auroc", "CinC 2011 AUROC"), ("cpsc2021_af_clean", "called_unacceptable",
                                                          "clean AF windows called unacceptable")],
    "beats": [("mitdb_nstdb", "sensitivity", "MIT-BIH 100 + NSTDB Se"), ("mitdb_nstdb", "ppv", "MIT-BIH 100 + NSTDB PPV"),
              ("textile", "sensitivity", "textile Se"), ("textile", "ppv", "textile PPV"),
              ("textile_noisy", "rate_ratio", "beats/min grade>=3 / grade 1")],
}


def fmt(m) -> str:
    if not isinstance(m, dict) or not np.isfinite(m.get("mean", np.nan)):
        return "n/a"
    if np.isfinite(m.get("lo", np.nan)):
        return f"{m['mean']:.3f} [{m['lo']:.3f}, {m['hi']:.3f}]"
    return f"{m['mean']:.3f}"


def table(result: dict) -> str:
    """Markdown table of one task's result (rows: conditions)."""
    cols = HEADLINE[result["task"]]
    lines = [f"| {result['task']} condition | " + " | ".join(c[2] for c in cols) + " |",
             "| --- |" + " --- |" * len(cols)]
    for key, cond in result["conditions"].items():
        cells = []
        for test, metric, _ in cols:
            m = cond.get("metrics", {}).get(test, {}).get(metric)
            cells.append(fmt(m) if cond.get("status") == "ok" else cond.get("status", "n/a"))
        lines.append(f"| ({key}) {cond['name']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def findings(result: dict) -> list[str]:
    """Plain statements of the goal (c) > (b) > (a) on each headline metric (interval-aware)."""
    out = []
    conds = result["conditions"]
    for test, metric, title in HEADLINE[result["task"]]:
        if metric in ("called_af", "called_unacceptable", "rate_ratio"):
            continue
        vals = {k: conds[k]["metrics"].get(test, {}).get(metric) for k in ("a", "b", "c")
                if k in conds and conds[k].get("status") == "ok"}
        vals = {k: v for k, v in vals.items() if v and np.isfinite(v["mean"])}
        for hi, lo in (("c", "b"), ("b", "a")):
            if hi in vals and lo in vals:
                a, b = vals[hi], vals[lo]
                if a["lo"] > b["hi"]:
                    verdict = "beats (intervals do not overlap)"
                elif a["mean"] > b["mean"]:
                    verdict = "is higher, but the intervals overlap"
                else:
                    verdict = "does NOT beat"
                out.append(f"{result['task']} {title}: ({hi}) {a['mean']:.3f} {verdict} ({lo}) {b['mean']:.3f}")
    return out


# --------------------------------------------------------------------------- files
def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o).__name__)


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def write_result(result: dict, recipes: dict, output: Path) -> dict:
    """Write ``results.json``, ``table.md``, the recipes and ``figure.png`` of one task under
    ``output/<task>/``; returns the paths."""
    out = Path(output) / result["task"]
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    rdir = out / "recipes"
    rdir.mkdir(exist_ok=True)
    for cond, per_seed in recipes.items():
        for seed, texts in per_seed.items():
            for name, text in texts.items():
                p = rdir / f"{cond}_seed{seed}_{name}"
                write_atomic(p, text)
                paths.setdefault("recipes", []).append(str(p.relative_to(output)))
    result = dict(result, recipe_files=paths.get("recipes", []))
    write_atomic(out / "results.json", json.dumps(result, indent=1, default=_json_default))
    write_atomic(out / "table.md", table(result) + "\n")
    paths["json"] = out / "results.json"
    paths["table"] = out / "table.md"
    paths["figure"] = figure([result], out / "figure.png")
    return paths


def figure(results: list, path: Path) -> Path:
    """Headline metrics with 95 % intervals, one panel per (task, metric), one point per condition."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(r, test, metric, title) for r in results for test, metric, title in HEADLINE[r["task"]]]
    n = len(panels)
    ncol = min(4, n)
    nrow = -(-n // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 2.6 * nrow), squeeze=False)
    names: dict = {}
    for ax, (r, test, metric, title) in zip(axes.flat, panels):
        keys = list(r["conditions"])
        for j, k in enumerate(keys):
            c = r["conditions"][k]
            m = c.get("metrics", {}).get(test, {}).get(metric) if c.get("status") == "ok" else None
            if m and np.isfinite(m["mean"]):
                lo = m["mean"] - m["lo"] if np.isfinite(m["lo"]) else 0
                hi = m["hi"] - m["mean"] if np.isfinite(m["hi"]) else 0
                ax.errorbar([j], [m["mean"]], yerr=[[max(lo, 0)], [max(hi, 0)]], fmt="o", capsize=3,
                            color=f"C{j % 10}")
            else:
                ax.text(j, 0.5, "n/a", ha="center", va="center", transform=ax.get_xaxis_transform(), fontsize=8)
        # letters only under the points (the names overlap at this size); the names in one key below
        ax.set_xticks(range(len(keys)), [f"({k})" for k in keys], fontsize=7)
        names.update({k: r["conditions"][k]["name"] for k in keys})
        ax.set_xlim(-0.5, len(keys) - 0.5)
        ax.set_title(f"{r['task']}: {title}", fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    key = "   ".join(f"({k}) {v}" for k, v in names.items())
    fig.tight_layout(rect=(0, 0.04 if key else 0, 1, 1))
    if key:
        fig.text(0.5, 0.01, key, ha="center", va="bottom", fontsize=8)
    tmp = Path(path).with_name(Path(path).stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return Path(path)
