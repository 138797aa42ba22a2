"""A compact 1-D ResNet with squeeze-and-excitation, and sim-to-real fine-tuning helpers.

Architecture: residual basic blocks (He et al., CVPR 2016) in 1-D, each recalibrating its
channels with a squeeze-and-excitation gate (Hu et al., CVPR 2018) -- the family that
won the PhysioNet/CinC 2020 and 2021 12-lead classification challenges (e.g. Zhao et
al. 2020 "SE-ResNet"). Small by default (about 0.2 M parameters) so it trains on a CPU.

Fine-tuning on device (real shirt) data after pre-training on synthetic shirt data uses
the usual transfer-learning tools: a lower learning rate for lower layers
(:func:`layerwise_param_groups`, "discriminative fine-tuning"), gradual unfreezing from
the top (:func:`set_trainable_stages`, :func:`gradual_unfreezing`; Howard & Ruder,
ULMFiT, ACL 2018), and per-sample loss weights to up-weight scarce device data
(:func:`weighted_bce`).
"""

from __future__ import annotations

from ..errors import ConfigError
from ._torch import torch

nn = torch.nn


class SqueezeExcitation1d(nn.Module):
    """Channel gate ``x * sigmoid(W2 relu(W1 mean_t(x)))`` (Hu et al. 2018)."""

    def __init__(self, channels: int, reduction: int = 8):
        super().__init__()
        hidden = max(4, channels // reduction)
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x):
        s = x.mean(dim=-1)
        g = torch.sigmoid(self.fc2(torch.relu(self.fc1(s))))
        return x * g[..., None]


class SEBasicBlock1d(nn.Module):
    """Two 1-D convolutions + batch norm, an SE gate, and a (projected) identity path."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, kernel: int = 7, reduction: int = 8):
        super().__init__()
        pad = kernel // 2
        self.conv1 = nn.Conv1d(c_in, c_out, kernel, stride=stride, padding=pad, bias=False)
        self.bn1 = nn.BatchNorm1d(c_out)
        self.conv2 = nn.Conv1d(c_out, c_out, kernel, padding=pad, bias=False)
        self.bn2 = nn.BatchNorm1d(c_out)
        self.se = SqueezeExcitation1d(c_out, reduction)
        self.skip = None
        if stride != 1 or c_in != c_out:
            self.skip = nn.Sequential(nn.Conv1d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm1d(c_out))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.se(self.bn2(self.conv2(y)))
        return torch.relu(y + (x if self.skip is None else self.skip(x)))


class ResNet1dSE(nn.Module):
    """Compact SE-ResNet for multi-label ECG classification.

    Parameters
    ----------
    n_leads : int
        Input channels.
    n_classes : int
        Output logits (use ``BCEWithLogitsLoss`` for multi-hot labels).
    widths : tuple of int
        Channels of each stage; every stage after the first halves the time axis.
    blocks_per_stage : int
    kernel : int
        Convolution length (odd).
    standardize : bool
        Z-score every lead of every record inside the network (removes device gain and
        offset differences between synthetic and real data).

    Input ``(batch, n_leads, T)`` float32 mV, output ``(batch, n_classes)`` logits.
    Stages for fine-tuning, bottom to top: ``model.stages`` (stem, stage 1..n, head).
    """

    def __init__(self, n_leads: int, n_classes: int, *, widths=(32, 64, 128), blocks_per_stage: int = 1,
                 kernel: int = 7, standardize: bool = True, dropout: float = 0.2):
        super().__init__()
        if n_leads < 1 or n_classes < 1:
            raise ConfigError(f"n_leads and n_classes must be >= 1, got {n_leads}, {n_classes}")
        if kernel % 2 == 0:
            raise ConfigError(f"kernel must be odd, got {kernel}")
        self.standardize = standardize
        self.stem = nn.Sequential(nn.Conv1d(n_leads, widths[0], 15, stride=2, padding=7, bias=False),
                                  nn.BatchNorm1d(widths[0]), nn.ReLU(), nn.MaxPool1d(3, 2, 1))
        layers = []
        c = widths[0]
        for i, w in enumerate(widths):
            blocks = [SEBasicBlock1d(c, w, stride=1 if i == 0 else 2, kernel=kernel)]
            blocks += [SEBasicBlock1d(w, w, kernel=kernel) for _ in range(blocks_per_stage - 1)]
            layers.append(nn.Sequential(*blocks))
            c = w
        self.layers = nn.ModuleList(layers)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(c, n_classes))

    @property
    def stages(self) -> list:
        return [self.stem, *self.layers, self.head]

    def features(self, x):
        if self.standardize:
            x = (x - x.mean(dim=-1, keepdim=True)) / (x.std(dim=-1, keepdim=True) + 1e-3)
        x = self.stem(x)
        for layer in self.layers:
            x = layer(x)
        return x.mean(dim=-1)

    def forward(self, x):
        return self.head(self.features(x))


def set_trainable_stages(model: ResNet1dSE, n_top: int) -> None:
    """Train only the top ``n_top`` stages (the head counts as one); freeze the rest.

    Frozen batch-norm layers are also put in eval mode by :func:`train_mode` so their
    running statistics stay those of pre-training.
    """
    stages = model.stages
    if not 1 <= n_top <= len(stages):
        raise ConfigError(f"n_top must be in [1, {len(stages)}], got {n_top}")
    for i, stage in enumerate(stages):
        trainable = i >= len(stages) - n_top
        for p in stage.parameters():
            p.requires_grad_(trainable)


def train_mode(model: ResNet1dSE) -> None:
    """``model.train()`` but keep batch norm of frozen stages in eval mode."""
    model.train()
    for stage in model.stages:
        if not any(p.requires_grad for p in stage.parameters()):
            for m in stage.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()


def gradual_unfreezing(model: ResNet1dSE, epoch: int, every: int = 1) -> int:
    """ULMFiT-style schedule: head only at epoch 0, one more stage every ``every`` epochs.

    Returns the number of trainable stages set.
    """
    if every < 1:
        raise ConfigError(f"every must be >= 1, got {every}")
    n = min(len(model.stages), 1 + epoch // every)
    set_trainable_stages(model, n)
    return n


def layerwise_param_groups(model: ResNet1dSE, lr: float, decay: float = 0.5) -> list[dict]:
    """Optimizer groups with learning rate ``lr * decay**k`` for the stage ``k`` below the head."""
    if not lr > 0 or not 0 < decay <= 1:
        raise ConfigError(f"need lr > 0 and 0 < decay <= 1, got lr={lr}, decay={decay}")
    stages = model.stages
    return [{"params": list(s.parameters()), "lr": lr * decay ** (len(stages) - 1 - i)}
            for i, s in enumerate(stages)]


def weighted_bce(logits, target, weight=None):
    """Binary cross-entropy averaged with per-sample weights ``(batch,)`` (e.g. device data x 3)."""
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, target.to(logits.dtype), reduction="none")
    loss = loss.mean(dim=-1)
    if weight is None:
        return loss.mean()
    weight = torch.as_tensor(weight, dtype=loss.dtype, device=loss.device)
    return (loss * weight).sum() / weight.sum()
