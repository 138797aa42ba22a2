"""Train a compact 1-D SE-ResNet on synthetic shirt ECG; test on held-out (or real) data.

Pre-training: a cardiosim dataset (generated here from the ODE source unless --data is
given) is read with :class:`cardiosim.torch.ShirtECGDataset`; the model trains on the
``train`` split, picks its epoch on ``val`` and reports macro AUROC on ``test``
(chance = 0.5). ``--real DATASET`` adds "train on synthetic, test on real": any dataset
in the cardiosim schema (for example device recordings converted with
``cardiosim.dataset``) whose class names overlap.

Fine-tuning on device data (``--finetune DATASET``), the sim-to-real options:

* ``--finetune-lr``: a lower learning rate, decayed layer by layer toward the input
  (``--layer-decay``, discriminative fine-tuning);
* ``--unfreeze-every K``: gradual unfreezing, head first, one more stage every K epochs
  (ULMFiT, Howard & Ruder 2018);
* ``--device-weight W``: synthetic and device records are mixed and device records
  weigh W times more in the loss.

Run:  python examples/train_resnet_se.py --small            (about a minute on one CPU core)
      python examples/train_resnet_se.py --data synthetic.nc --epochs 30 --finetune shirt_device.nc
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from cardiosim.torch import (
    ResNet1dSE,
    ShirtECGDataset,
    gradual_unfreezing,
    layerwise_param_groups,
    train_mode,
    weighted_bce,
)

SMALL_CLASSES = ("SR+NORM", "AF+NORM", "STACH+NORM", "SR+LBBB")


def generate_data(path: Path, records: int, duration: float, seed: int, classes) -> Path:
    from cardiosim.dataset import Recipe, SourceRecipe, generate
    recipe = Recipe(seed=seed, records=records, duration=duration, forward="infinite",
                    splits={"train": 0.6, "val": 0.15, "test": 0.25},
                    source=SourceRecipe(kind="ode", classes={c: 1.0 for c in classes}))
    generate(recipe, path, progress=False, overwrite=True)
    return path


def load_split(path, split, decimate, class_names=None):
    """All records of one split as tensors ``x (n, leads, T')``, ``y (n, classes)``."""
    ds = ShirtECGDataset(path, split=split)
    if len(ds) == 0:
        return None, None, ds.classes
    loader = torch.utils.data.DataLoader(ds, batch_size=64)
    xs, ys = zip(*loader)
    x, y = torch.cat(xs), torch.cat(ys)
    if decimate > 1:  # the device band-limits; averaging is an adequate anti-alias filter here
        x = torch.nn.functional.avg_pool1d(x, decimate, decimate)
    if class_names is not None:  # align class columns by name with the training set
        cols = [ds.classes.index(c) if c in ds.classes else -1 for c in class_names]
        y = torch.stack([y[:, c] if c >= 0 else torch.full((len(y),), float("nan")) for c in cols], dim=1)
    return x, y, ds.classes


def macro_auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mean one-vs-rest AUROC over classes with both positives and negatives (Mann-Whitney)."""
    from scipy.stats import rankdata
    aucs = []
    for k in range(labels.shape[1]):
        y = labels[:, k]
        ok = ~np.isnan(y)
        y, s = y[ok], scores[ok, k]
        n1 = int(y.sum())
        n0 = len(y) - n1
        if n1 == 0 or n0 == 0:
            continue
        r = rankdata(s)
        aucs.append((r[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))
    return float(np.mean(aucs)) if aucs else float("nan")


def evaluate(model, x, y):
    model.eval()
    with torch.no_grad():
        p = torch.sigmoid(torch.cat([model(xb) for xb in x.split(128)])).numpy()
    return macro_auroc(p, y.numpy())


def fit(model, x, y, epochs, lr, batch, rng, *, weight=None, val=None, unfreeze_every=0, layer_decay=1.0, log=""):
    """Train; keep the weights of the best validation AUROC (if ``val`` is given)."""
    if unfreeze_every:
        gradual_unfreezing(model, 0, unfreeze_every)
    opt = torch.optim.Adam(layerwise_param_groups(model, lr, layer_decay), lr=lr)
    best, best_state = -1.0, None
    for epoch in range(epochs):
        if unfreeze_every:
            n = gradual_unfreezing(model, epoch, unfreeze_every)
        train_mode(model)
        order = torch.as_tensor(rng.permutation(len(x)))
        total = 0.0
        for i in range(0, len(x), batch):
            idx = order[i:i + batch]
            opt.zero_grad()
            loss = weighted_bce(model(x[idx]), y[idx], None if weight is None else weight[idx])
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        msg = f"{log}epoch {epoch + 1:2d}  loss {total / len(x):.4f}"
        if unfreeze_every:
            msg += f"  trainable stages {n}"
        if val is not None:
            auc = evaluate(model, *val)
            msg += f"  val AUROC {auc:.3f}"
            if auc > best:
                best, best_state = auc, {k: v.clone() for k, v in model.state_dict().items()}
        print(msg, flush=True)
    if best_state is not None:
        model.load_state_dict(best_state)
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, help="cardiosim dataset to train on (default: generate one)")
    ap.add_argument("--workdir", type=Path, default=Path("train_resnet_se"))
    ap.add_argument("--small", action="store_true",
                    help="4 ODE classes (labels NORM, AF, LBBB: STACH+NORM is labelled NORM), 200 records of 5 s, "
                         "12 epochs")
    ap.add_argument("--records", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--decimate", type=int, default=5, help="average-pool the input in time by this factor")
    ap.add_argument("--real", type=Path, help="dataset of real/device records for testing only")
    ap.add_argument("--finetune", type=Path, help="dataset of device records to fine-tune on")
    ap.add_argument("--finetune-epochs", type=int, default=10)
    ap.add_argument("--finetune-lr", type=float, default=None, help="default: --lr / 10")
    ap.add_argument("--layer-decay", type=float, default=0.5, help="LR factor per stage below the head")
    ap.add_argument("--unfreeze-every", type=int, default=2, help="epochs between unfreezing stages (0: off)")
    ap.add_argument("--device-weight", type=float, default=3.0, help="loss weight of device vs synthetic records")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.data is None:
        from synthetic_classes import TEN_CLASSES
        classes = SMALL_CLASSES if args.small else TEN_CLASSES
        records, duration = (200, 5.0) if args.small else (args.records, 10.0)
        args.data = generate_data(args.workdir / "synthetic.nc", records, duration, args.seed, classes)
        print(f"generated {records} records in {time.perf_counter() - t0:.1f} s -> {args.data}")
    if args.small:
        args.epochs = min(args.epochs, 12)
        args.finetune_epochs = min(args.finetune_epochs, 4)

    xtr, ytr, class_names = load_split(args.data, "train", args.decimate)
    # train only on classes that occur (the file's class axis is the whole vocabulary)
    used = [k for k in range(ytr.shape[1]) if ytr[:, k].sum() > 0]
    class_names = [class_names[k] for k in used]
    ytr = ytr[:, used]
    xva, yva, _ = load_split(args.data, "val", args.decimate, class_names)
    xte, yte, _ = load_split(args.data, "test", args.decimate, class_names)
    print(f"train {len(xtr)}, val {0 if xva is None else len(xva)}, test {len(xte)} records; "
          f"input {tuple(xtr.shape[1:])}; classes {class_names}")

    model = ResNet1dSE(xtr.shape[1], len(class_names))
    fit(model, xtr, ytr, args.epochs, args.lr, args.batch, rng, val=None if xva is None else (xva, yva))
    metrics = {"classes": class_names, "test_macro_auroc": evaluate(model, xte, yte)}
    print(f"synthetic test macro AUROC {metrics['test_macro_auroc']:.3f} (chance 0.5)")

    if args.real is not None:
        xr_, yr_, _ = load_split(args.real, "test", args.decimate, class_names)
        metrics["real_test_macro_auroc"] = evaluate(model, xr_, yr_)
        print(f"train on synthetic, test on real: macro AUROC {metrics['real_test_macro_auroc']:.3f}")

    if args.finetune is not None:
        xd, yd, _ = load_split(args.finetune, "train", args.decimate, class_names)
        xdt, ydt, _ = load_split(args.finetune, "test", args.decimate, class_names)
        yd = torch.nan_to_num(yd, nan=0.0)
        before = evaluate(model, xdt, ydt)
        x = torch.cat([xtr, xd])
        y = torch.cat([ytr, yd])
        w = torch.cat([torch.ones(len(xtr)), torch.full((len(xd),), args.device_weight)])
        fit(model, x, y, args.finetune_epochs, args.finetune_lr or args.lr / 10, args.batch, rng, weight=w,
            unfreeze_every=args.unfreeze_every, layer_decay=args.layer_decay, log="fine-tune ")
        metrics["device_test_macro_auroc_before"] = before
        metrics["device_test_macro_auroc_after"] = evaluate(model, xdt, ydt)
        print(f"device test macro AUROC: {before:.3f} before, "
              f"{metrics['device_test_macro_auroc_after']:.3f} after fine-tuning")

    metrics["seconds"] = time.perf_counter() - t0
    torch.save(model.state_dict(), args.workdir / "resnet_se.pt")
    (args.workdir / "metrics.json").write_text(json.dumps(metrics, indent=1))
    print(f"done in {metrics['seconds']:.1f} s; wrote {args.workdir / 'metrics.json'}")
    return metrics


if __name__ == "__main__":
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # for synthetic_classes.TEN_CLASSES
    main()
