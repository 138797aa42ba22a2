"""Budgets, models and the training loop of the sim-to-real benchmark.

Every condition trains the same small network with the same fixed budget: the
project's 1-D SE-ResNet (:class:`cardiosim.torch.ResNet1dSE`, z-scored input, so ADC
counts and mV look alike) for the window classifiers, and the same residual SE stages
with a per-frame 1x1-convolution head (:class:`BeatNet`) for R-peak detection. No
early stopping or model selection on anything real: the model is the average of the weights
at the end of each epoch of the second half of training (stochastic weight averaging,
Izmailov et al. 2018), its batch-norm statistics recomputed on the training windows. Until
2026-12-06 the last epoch was the model: with Adam at a constant learning rate the last
iterate's loss on held-out *simulated* data jumped by up to 3.6x from one epoch to the next
(docs/sim2real/rerun_e53052c/README.md). The device is CUDA when available, else the CPU (same
code path).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from ..torch import ResNet1dSE
from ..torch._torch import torch

nn = torch.nn


@dataclass(frozen=True)
class Budget:
    """Fixed training budget and test-set size of one benchmark run.

    Attributes
    ----------
    name : str
    fs : float, Hz
        Rate of every model input (simulated and real).
    n_train : dict task -> int
        Simulated training records per condition and seed.
    epochs, batch, lr :
        Adam, constant learning rate.
    average_from : float or None
        Fraction of ``epochs`` after which the weights at each epoch's end enter the
        model's running average (0.5: the second half); None keeps the last epoch's weights
        and their batch-norm statistics as they are.
    seeds : tuple of int, or dict task -> tuple of int
        Training seeds (each also seeds its simulated data); per task in the full budget.
    widths, beat_widths : tuple of int
        Channels of the SE-ResNet stages (classifiers, beat detector).
    real_variants : int
        Shirt variants of each real CinC 2021 source (task ``af``; 0: ODE only).
    forward : str
        Volume conductor of the simulations.
    cv_folds : int
        Folds (by patient) of the train-on-real condition on CPSC 2021.
    n_boot : int
        Bootstrap replicates of the 95 % intervals.
    af_records, cinc2011_limit, mitdb_seconds, textile_electrodes, textile_train_activities :
        Test/real-training subsets (``None``: everything).
    data_per_seed : bool
        Simulate new training data for every seed (True), or once with seed 0 (quick runs).
    """

    name: str
    fs: float = 100.0
    n_train: dict = field(default_factory=lambda: {"af": 480, "quality": 960, "beats": 320})
    # 12 epochs with the average of epochs 7-12: held-out simulated AF loss (next seed's set,
    # conditions a/b/c) 0.185/0.558/0.494 with 6 epochs, last kept -> 0.084/0.444/0.186
    epochs: int = 12
    batch: int = 32
    lr: float = 3e-3
    average_from: float | None = 0.5
    seeds: tuple | dict = (0, 1, 2)
    widths: tuple = (8, 16, 32)
    beat_widths: tuple = (8, 16)
    real_variants: int = 2
    forward: str = "bem"
    cv_folds: int = 3
    n_boot: int = 1000
    af_records: tuple | None = None
    cinc2011_limit: int | None = None
    mitdb_seconds: float | None = 600.0
    mitdb_snrs: tuple = (12.0, 6.0, 0.0)
    textile_electrodes: tuple | None = None
    textile_train_activities: tuple | None = None
    data_per_seed: bool = True

    def for_task(self, task: str) -> "Budget":
        """A view whose ``n_train`` is the count of ``task`` and ``seeds`` its seeds (what
        conditions and the runner read)."""
        import dataclasses
        if task not in self.n_train or (isinstance(self.seeds, dict) and task not in self.seeds):
            raise ConfigError(f"budget {self.name!r} has no n_train or seeds for task {task!r}")
        seeds = self.seeds[task] if isinstance(self.seeds, dict) else self.seeds
        if len(seeds) == 0:
            raise ConfigError(f"budget {self.name!r} has no seeds for task {task!r}")
        return dataclasses.replace(self, n_train=int(self.n_train[task]), seeds=tuple(int(x) for x in seeds))


BUDGETS = {
    # AF gets six seeds: with three, one seed's failure moved a condition's mean AUROC by 0.1 and
    # the ranking of physics and classic flipped between runs (README, sim-to-real benchmark)
    "full": Budget("full", seeds={"af": (0, 1, 2, 3, 4, 5), "quality": (0, 1, 2), "beats": (0, 1, 2)}),
    # seconds per task: for development and the test suite, not for conclusions
    "quick": Budget("quick", n_train={"af": 24, "quality": 48, "beats": 16}, epochs=2, batch=16, widths=(8, 16),
                    beat_widths=(8, 16), real_variants=0, forward="bem", cv_folds=2, n_boot=100,
                    af_records=("data_101_6", "data_8_4", "data_21_7", "data_84_3"), cinc2011_limit=8,
                    mitdb_seconds=60.0, mitdb_snrs=(6.0,), textile_electrodes=("textile",),
                    textile_train_activities=("rest", "walk"), data_per_seed=False),
}


def get_budget(budget) -> Budget:
    if isinstance(budget, Budget):
        return budget
    if budget not in BUDGETS:
        raise ConfigError(f"unknown budget {budget!r}; expected one of {', '.join(BUDGETS)} or a Budget")
    return BUDGETS[budget]


def pick_device():
    """CUDA when present, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class BeatNet(nn.Module):
    """The SE-ResNet stages of :class:`ResNet1dSE` with a per-frame R-peak logit.

    Input ``(batch, n_leads, T)``; output ``(batch, frames)`` logits, one per ``stride``
    samples (``stride = 4 * 2**(len(widths) - 1)``): frame ``k`` covers samples
    ``[k*stride, (k+1)*stride)`` and is positive when an R peak falls in it.
    """

    def __init__(self, n_leads: int, widths=(16, 32)):
        super().__init__()
        self.body = ResNet1dSE(n_leads, 1, widths=widths)
        self.out = nn.Conv1d(widths[-1], 1, 1)
        self.stride = 4 * 2 ** (len(widths) - 1)

    def forward(self, x):
        b = self.body
        x = (x - x.mean(dim=-1, keepdim=True)) / (x.std(dim=-1, keepdim=True) + 1e-3)
        x = b.stem(x)
        for layer in b.layers:
            x = layer(x)
        return self.out(x)[:, 0]


def make_model(task: str, n_leads: int, n_outputs: int, budget: Budget, seed: int):
    """The task's untrained model, its initial weights drawn from ``seed`` alone.

    Weights are initialised inside :func:`torch.random.fork_rng`, so they depend on
    ``seed`` and not on whatever drew from torch's global generator before (other
    conditions, seeds or tasks of the same run), and the caller's generator state is left
    as it was. Before this, a condition's seed-0 model differed between a run of every
    condition and a run of that condition alone (AF physics seed 0: AUROC 0.62 vs 0.88).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        if task == "beats":
            return BeatNet(n_leads, budget.beat_widths)
        return ResNet1dSE(n_leads, n_outputs, widths=budget.widths)


def frame_targets(peaks, n_frames: int, stride: int) -> np.ndarray:
    """``(n, n_frames)`` float32: 1 where a frame holds an R peak."""
    y = np.zeros((len(peaks), n_frames), np.float32)
    for i, p in enumerate(peaks):
        k = np.asarray(p, dtype=np.int64) // stride
        y[i, k[(k >= 0) & (k < n_frames)]] = 1.0
    return y


def _n_frames(model, n_leads: int, n_t: int) -> int:
    with torch.no_grad():
        was = model.training
        model.eval()
        n = model(torch.zeros(1, n_leads, n_t)).shape[-1]
        model.train(was)
    return int(n)


def fit(model, x: np.ndarray, y: np.ndarray | None, budget: Budget, seed: int, device=None, *, peaks=None):
    """Train ``model`` on ``x (n, leads, T)`` with targets ``y (n, outputs)`` (NaN masked) or,
    for :class:`BeatNet`, the R peaks ``peaks``. Fixed budget; returns the model (eval mode)."""
    device = pick_device() if device is None else device
    torch.manual_seed(seed)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 99]))
    if isinstance(model, BeatNet):
        y = frame_targets(peaks, _n_frames(model, x.shape[1], x.shape[2]), model.stride)
    if len(x) < 2:
        raise ConfigError(f"need at least 2 training windows, got {len(x)}")
    model.to(device)
    xt = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32))
    yt = torch.as_tensor(np.ascontiguousarray(y, dtype=np.float32))
    opt = torch.optim.Adam(model.parameters(), lr=budget.lr)
    model.train()
    avg, n_avg = None, 0
    start = _average_start(budget)
    for epoch in range(budget.epochs):
        order = rng.permutation(len(xt))
        for i in range(0, len(order) - 1, budget.batch):  # skip a last batch of one (batch norm)
            idx = torch.as_tensor(order[i:i + budget.batch])
            if len(idx) < 2:
                continue
            xb, yb = xt[idx].to(device), yt[idx].to(device)
            logits = model(xb)
            ok = torch.isfinite(yb)
            if not bool(ok.any()):
                continue
            loss = nn.functional.binary_cross_entropy_with_logits(logits[ok], yb[ok])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if epoch >= start:
            avg, n_avg = _accumulate(avg, n_avg, model)
    if avg is not None:
        model.load_state_dict(avg)
        recompute_batchnorm(model, xt, budget.batch, device)
    model.eval()
    return model


def _average_start(budget: Budget) -> int:
    """First epoch (0-based) whose end weights enter the average; ``epochs``: none do."""
    f = getattr(budget, "average_from", None)
    if f is None:
        return budget.epochs
    if not 0.0 <= float(f) < 1.0:
        raise ConfigError(f"average_from must be in [0, 1) or None, got {f!r}")
    return min(budget.epochs - 1, int(np.floor(float(f) * budget.epochs)))


def _accumulate(avg, n: int, model):
    """Running mean of ``model``'s floating-point state (integer buffers: the latest)."""
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if avg is None:
        return sd, 1
    for k, v in sd.items():
        if v.is_floating_point():
            avg[k] += (v - avg[k]) / (n + 1)
        else:
            avg[k] = v
    return avg, n + 1


def recompute_batchnorm(model, x, batch: int, device) -> None:
    """Batch-norm running statistics of ``model`` recomputed as plain means over ``x``.

    Averaged weights never produced the running statistics they are stored with, so they
    are measured again (train-mode forward passes, no gradient, cumulative average); the
    windows are the training windows, nothing real.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
    was = model.training
    model.train()
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = x[i:i + batch]
            if len(xb) < 2:
                continue
            model(xb.to(device))
    for m, mo in zip(bns, momenta):
        m.momentum = mo
    model.train(was)


def predict(model, x: np.ndarray, device=None, batch: int = 256) -> np.ndarray:
    """Sigmoid outputs of ``model`` for ``x (n, leads, T)``."""
    device = pick_device() if device is None else device
    model.to(device).eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = torch.as_tensor(np.ascontiguousarray(x[i:i + batch], dtype=np.float32)).to(device)
            out.append(torch.sigmoid(model(xb)).cpu().numpy())
    return np.concatenate(out)


def decode_peaks(prob: np.ndarray, stride: int, fs: float, *, threshold: float = 0.5,
                 refractory_s: float = 0.25) -> np.ndarray:
    """R-peak sample indices from per-frame probabilities: local maxima above ``threshold``,
    greedy non-maximum suppression within ``refractory_s``, placed at the frame centre."""
    p = np.asarray(prob, dtype=float)
    if p.size == 0:
        return np.zeros(0, dtype=np.int64)
    left = np.concatenate([[-np.inf], p[:-1]])
    right = np.concatenate([p[1:], [-np.inf]])
    cand = np.flatnonzero((p >= threshold) & (p >= left) & (p > right))
    gap = max(1, int(np.ceil(refractory_s * fs / stride)))
    kept: list[int] = []
    for k in cand[np.argsort(-p[cand], kind="stable")]:
        if all(abs(k - j) >= gap for j in kept):
            kept.append(int(k))
    return np.sort(np.array(kept, dtype=np.int64)) * stride + stride // 2


def detect_beats(model: BeatNet, x: np.ndarray, fs: float, device=None, *, window_s: float = 10.0,
                 margin_s: float = 1.0) -> np.ndarray:
    """R peaks of one long signal ``x (leads, T)``: overlapping ``window_s`` windows (the
    training length, so the in-network z-scoring sees what it saw in training), keeping each
    window's detections away from its edges."""
    n = x.shape[-1]
    win, margin = int(round(window_s * fs)), int(round(margin_s * fs))
    step = win - 2 * margin
    starts = list(range(0, max(1, n - win + 1), step))
    if starts[-1] + win < n:
        starts.append(n - win)
    chunks = np.stack([x[:, s:s + win] for s in starts]) if n >= win else x[None]
    probs = predict(model, chunks, device)
    out = []
    for s, p in zip(starts, probs):
        det = decode_peaks(p, model.stride, fs) + s
        lo = s + (margin if s > 0 else 0)
        hi = s + win - (margin if s + win < n else 0)
        out.append(det[(det >= lo) & (det < hi)])
    peaks = np.unique(np.concatenate(out)) if out else np.zeros(0, dtype=np.int64)
    # windows overlap by 2 margins: drop duplicates closer than 0.25 s (keep the first)
    keep = np.concatenate([[True], np.diff(peaks) >= 0.25 * fs]) if peaks.size else peaks.astype(bool)
    return peaks[keep]


def set_threads() -> None:
    """One intra-op thread: these models are small, and on a shared 2-core machine a second
    thread made a training step 7x slower (spin-waiting against other processes)."""
    torch.set_num_threads(1)
