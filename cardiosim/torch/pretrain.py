"""Masked-autoencoder pre-training of the SE-ResNet encoder on unlabeled records.

He et al., "Masked Autoencoders Are Scalable Vision Learners", CVPR 2022, transferred to
1-D ECG (e.g. Zhang et al. 2022 "MaeFE"; Sawano et al. 2024 on PTB-XL): hide most of a
record in random patches, have an encoder and a light decoder reconstruct what was
hidden, keep the encoder. With a convolutional encoder (the project's
:class:`~cardiosim.torch.ResNet1dSE`) the hidden patches are set to zero in the
z-scored input (no mask tokens: a convolution sees the zeros); the decoder predicts
the whole record but the loss counts only hidden samples, which is what makes the task
non-trivial.

The user's unlabeled device recordings and unlabeled simulated records are pre-trained
on together; fine-tuning on labeled simulated records then starts from the encoder
(:func:`pretrain_encoder` then any training loop, e.g. :func:`cardiosim.sim2real.train.fit`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError, SignalError
from ._torch import torch
from .models import ResNet1dSE

nn = torch.nn


class MaskedDecoder(nn.Module):
    """Upsampling decoder from the encoder's last feature map back to ``n_leads`` samples.

    Transposed convolutions undo the encoder's strides (stem 4x, then 2x per stage after
    the first); the output is cropped or padded to the input length.
    """

    def __init__(self, width: int, n_leads: int, n_up: int, channels: int = 32):
        super().__init__()
        mods, c = [], width
        for _ in range(n_up):
            mods += [nn.ConvTranspose1d(c, channels, 4, stride=2, padding=1), nn.GELU()]
            c = channels
        mods.append(nn.Conv1d(c, n_leads, 7, padding=3))
        self.net = nn.Sequential(*mods)

    def forward(self, h, n_t: int):
        y = self.net(h)
        if y.shape[-1] >= n_t:
            return y[..., :n_t]
        return nn.functional.pad(y, (0, n_t - y.shape[-1]))


def _encode(model: ResNet1dSE, x):
    h = model.stem(x)
    for layer in model.layers:
        h = layer(h)
    return h


def patch_mask(n: int, n_t: int, patch: int, ratio: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean ``(n, n_t)`` mask, True where hidden: ``round(ratio * n_patches)`` random
    patches of ``patch`` samples per record (the last partial patch included)."""
    n_p = -(-n_t // patch)
    k = int(round(ratio * n_p))
    m = np.zeros((n, n_p), dtype=bool)
    for i in range(n):
        m[i, rng.choice(n_p, size=k, replace=False)] = True
    return np.repeat(m, patch, axis=1)[:, :n_t]


@dataclass
class PretrainResult:
    """Encoder (the same ``ResNet1dSE`` object, pre-trained), decoder and loss history.

    ``history["masked_mse"]``: reconstruction error of hidden samples per step (z-scored
    units; 1.0 = predicting zeros); ``history["baseline_mse"]``: the same for linear
    interpolation across each hidden patch, a reference an encoder must beat.
    """

    encoder: ResNet1dSE
    decoder: MaskedDecoder
    history: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)


def _interp_baseline(z: np.ndarray, mask: np.ndarray) -> float:
    """MSE over hidden samples of linear interpolation from the visible ones."""
    err, cnt = 0.0, 0
    t = np.arange(z.shape[-1])
    for i in range(z.shape[0]):
        vis = ~mask[i]
        if vis.sum() < 2:
            continue
        for lead in range(z.shape[1]):
            est = np.interp(t[mask[i]], t[vis], z[i, lead, vis])
            err += float(((est - z[i, lead, mask[i]]) ** 2).sum())
            cnt += int(mask[i].sum())
    return err / max(cnt, 1)


def pretrain_encoder(model: ResNet1dSE, unlabeled, *, steps: int = 300, batch: int = 32, lr: float = 2e-3,
                     mask_ratio: float = 0.5, patch_s: float = 0.2, fs: float, seed: int = 0, device=None,
                     progress: bool = False) -> PretrainResult:
    """Masked pre-training of ``model``'s stem and stages on ``unlabeled (n, n_leads, T)``.

    Parameters
    ----------
    model : ResNet1dSE
        Pre-trained in place (its head is untouched).
    unlabeled : array (n, n_leads, T)
        Real device recordings and/or simulated records, any gain (z-scored per lead).
    steps, batch, lr : Adam schedule
    mask_ratio : float in (0, 1)
        Share of patches hidden (MAE: 0.75 for images; ECG is less redundant, 0.5).
    patch_s : float, s
        Patch length (about one QRS-T: the encoder must infer waves from neighbours).
    fs : float, Hz
    seed : int
    device : torch device or None

    Returns
    -------
    PretrainResult
    """
    if not isinstance(model, ResNet1dSE):
        raise ConfigError(f"pretrain_encoder needs a ResNet1dSE, got {type(model).__name__}")
    x = np.asarray(unlabeled)
    if x.ndim != 3 or len(x) < 2:
        raise SignalError(f"unlabeled must have shape (n >= 2, n_leads, T), got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise SignalError("unlabeled records contain NaN or inf samples")
    if model.stem[0].in_channels != x.shape[1]:
        raise SignalError(f"the model takes {model.stem[0].in_channels} leads, the records have {x.shape[1]}")
    if not 0 < mask_ratio < 1:
        raise ConfigError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
    if not fs > 0 or not patch_s > 0:
        raise ConfigError(f"fs and patch_s must be positive, got {fs}, {patch_s}")
    patch = max(1, int(round(patch_s * fs)))
    x = x.astype(np.float32)
    z = (x - x.mean(-1, keepdims=True)) / (x.std(-1, keepdims=True) + 1e-3)
    if device is None:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(seed)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    width = model.layers[-1][-1].conv2.out_channels
    decoder = MaskedDecoder(width, x.shape[1], n_up=2 + len(model.layers) - 1)
    model.to(device)
    decoder.to(device)
    params = [p for s in (model.stem, *model.layers) for p in s.parameters()] + list(decoder.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    hist = {"masked_mse": []}
    probe_mask = patch_mask(min(len(z), 64), z.shape[-1], patch, mask_ratio, rng)
    hist["baseline_mse"] = _interp_baseline(z[:len(probe_mask)], probe_mask)
    it = range(steps)
    if progress:
        from tqdm.auto import tqdm
        it = tqdm(it, desc="masked pre-training", unit="step")
    model.train()
    decoder.train()
    for _ in it:
        idx = rng.choice(len(z), size=min(batch, len(z)), replace=False)
        zb = torch.as_tensor(z[idx]).to(device)
        m = torch.as_tensor(patch_mask(len(idx), z.shape[-1], patch, mask_ratio, rng)).to(device)
        inp = zb.masked_fill(m[:, None, :], 0.0)
        # the model's own standardisation is bypassed: the input is already z-scored and
        # masked samples must stay exactly zero
        rec = decoder(_encode(model, inp), zb.shape[-1])
        mm = m[:, None, :].expand_as(zb)
        loss = ((rec - zb)[mm] ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        hist["masked_mse"].append(loss.item())
    model.eval()
    decoder.eval()
    settings = {"steps": steps, "batch": batch, "lr": lr, "mask_ratio": mask_ratio, "patch_s": patch_s,
                "fs": float(fs), "seed": seed, "n_records": int(len(z))}
    return PretrainResult(model, decoder, hist, settings)


def masked_reconstruction_error(result: PretrainResult, records, *, fs: float, seed: int = 1) -> dict:
    """Hidden-sample MSE of the pre-trained encoder/decoder on ``records`` next to the
    linear-interpolation baseline (both in z-scored units), with fresh masks."""
    x = np.asarray(records, dtype=np.float32)
    z = (x - x.mean(-1, keepdims=True)) / (x.std(-1, keepdims=True) + 1e-3)
    s = result.settings
    patch = max(1, int(round(s["patch_s"] * fs)))
    rng = np.random.default_rng(np.random.SeedSequence([seed, 8]))
    m = patch_mask(len(z), z.shape[-1], patch, s["mask_ratio"], rng)
    dev = next(result.encoder.parameters()).device
    with torch.no_grad():
        zt = torch.as_tensor(z).to(dev)
        mt = torch.as_tensor(m).to(dev)
        rec = result.decoder(_encode(result.encoder, zt.masked_fill(mt[:, None, :], 0.0)), z.shape[-1])
        mm = mt[:, None, :].expand_as(zt)
        mse = float(((rec - zt)[mm] ** 2).mean())
    return {"model_mse": mse, "interpolation_mse": _interp_baseline(z, m), "zero_mse": float((z[np.broadcast_to(
        m[:, None, :], z.shape)] ** 2).mean())}
