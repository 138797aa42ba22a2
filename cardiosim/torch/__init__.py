"""PyTorch integration: datasets, online shirt augmentation, a differentiable simulator.

torch is an optional extra (``pip install cardiosim[torch]``). Importing
``cardiosim`` never imports torch; importing ``cardiosim.torch`` does not either: the
names below are resolved on first access (PEP 562), so ``import cardiosim.torch`` is
cheap and a missing torch is reported with an installation hint when a torch-backed
name is actually used.

Public names
------------
gaussian_wave_dipole, gaussian_wave_derivative, phase_from_omega, GaussianWaveDipole
    Differentiable Gaussian-wave dipole model (Sameni et al. 2007; PHYSICS.md section 5).
infinite_lead_field, sphere_lead_field, project_dipole, montage_tensor, apply_montage,
simulate_leads
    Differentiable forward projection ``phi = L(r) @ p`` and device montage.
ecgsyn_z
    Differentiable ECGSYN (McSharry et al. 2003), fixed-step RK4 in torch.
euler_loss
    SimGAN's simulator ("Euler") loss (Golany et al., ICML 2020).
ShirtECGDataset
    Map-style Dataset over the netCDF files written by ``cardiosim.dataset``.
ShirtTransform, OnlineShirtDataset
    Online physical augmentation: a new shirt variant of a clean source on each call,
    and a Dataset of clean sources seen through it.
ResNet1dSE, set_trainable_stages, gradual_unfreezing, layerwise_param_groups, train_mode,
weighted_bce
    A compact SE-ResNet classifier and sim-to-real fine-tuning helpers.
Refiner, fit_refiner, refine, save_refiner, load_refiner
    SimGAN-style refiner trained on the user's unlabeled device recordings, with the
    Euler loss as its physics term (:mod:`cardiosim.torch.refine`).
pretrain_encoder
    Masked-autoencoder pre-training of the SE-ResNet encoder (:mod:`cardiosim.torch.pretrain`).
"""

from __future__ import annotations

import importlib

_NAMES = {
    "gaussian_wave_dipole": "dipole",
    "gaussian_wave_derivative": "dipole",
    "phase_from_omega": "dipole",
    "GaussianWaveDipole": "dipole",
    "infinite_lead_field": "forward",
    "sphere_lead_field": "forward",
    "project_dipole": "forward",
    "montage_tensor": "forward",
    "apply_montage": "forward",
    "simulate_leads": "forward",
    "euler_loss": "losses",
    "ecgsyn_z": "ecgsyn",
    "ShirtECGDataset": "dataset",
    "ShirtTransform": "transforms",
    "OnlineShirtDataset": "transforms",
    "ResNet1dSE": "models",
    "set_trainable_stages": "models",
    "gradual_unfreezing": "models",
    "layerwise_param_groups": "models",
    "train_mode": "models",
    "weighted_bce": "models",
    "Refiner": "refine",
    "fit_refiner": "refine",
    "refine": "refine",
    "save_refiner": "refine",
    "load_refiner": "refine",
    "pretrain_encoder": "pretrain",
}

__all__ = [
    "GaussianWaveDipole",
    "Refiner",
    "fit_refiner",
    "load_refiner",
    "pretrain_encoder",
    "refine",
    "save_refiner",
    "OnlineShirtDataset",
    "ResNet1dSE",
    "ShirtECGDataset",
    "ShirtTransform",
    "apply_montage",
    "ecgsyn_z",
    "euler_loss",
    "gaussian_wave_derivative",
    "gaussian_wave_dipole",
    "gradual_unfreezing",
    "infinite_lead_field",
    "layerwise_param_groups",
    "montage_tensor",
    "phase_from_omega",
    "project_dipole",
    "set_trainable_stages",
    "simulate_leads",
    "sphere_lead_field",
    "train_mode",
    "weighted_bce",
]


def __getattr__(name: str):
    try:
        module = _NAMES[name]
    except KeyError:
        raise AttributeError(f"module 'cardiosim.torch' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + __all__)
