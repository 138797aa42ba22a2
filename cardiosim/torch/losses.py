"""Simulator losses for physics-informed generators.

SimGAN (Golany, Radinsky, Freedman, "SimGANs: Simulator-Based Generative Adversarial
Networks for ECG Synthesis to Improve Deep ECG Classification", ICML 2020) adds to the
GAN objective an "Euler loss": one explicit Euler step of the ECG ODE, started from the
generated sample at ``t``, should land on the generated sample at ``t + dt``. Here the
ODE is the Gaussian-wave dipole model (Sameni et al. 2007, PHYSICS.md section 5), with
the optional ECGSYN restoring term ``-k (x - x0)`` (McSharry et al. 2003) that SimGAN
used on its single axis.
"""

from __future__ import annotations

from ..errors import ConfigError, SignalError
from ._torch import torch
from .dipole import gaussian_wave_derivative


def euler_loss(signal: torch.Tensor, phase: torch.Tensor, omega: torch.Tensor | float,
               fs: float, centers: torch.Tensor, alphas: torch.Tensor, widths: torch.Tensor,
               *, restoring: float = 0.0, baseline: torch.Tensor | float = 0.0,
               reduction: str = "mean") -> torch.Tensor:
    """Mean squared residual of one explicit Euler step of the dipole ODE.

    ``r[t] = x[t+1] - x[t] - dt * (f(theta[t], omega[t]) - restoring * (x[t] - baseline))``

    Parameters
    ----------
    signal : Tensor, shape (..., n_axes, T), mV
        Generated VCG (or single-axis beat with ``n_axes = 1``).
    phase : Tensor, shape (..., T), radians
    omega : Tensor (..., T) or float, rad/s
    fs : float, Hz
    centers, alphas, widths : Tensor, shape (..., n_axes, K)
    restoring : float, 1/s
        ECGSYN's restoring rate (1 in McSharry et al.); 0 for the pure dipole model.
    baseline : Tensor broadcastable to (..., n_axes, T) or float, mV
    reduction : {"mean", "sum", "none"}

    Returns
    -------
    Tensor, mV**2 (scalar, or shape (..., n_axes, T-1) for ``reduction="none"``)
    """
    if not fs > 0:
        raise SignalError(f"sampling rate fs must be positive, got {fs!r}")
    if signal.shape[-1] != phase.shape[-1]:
        raise SignalError(f"signal has {signal.shape[-1]} samples, phase has {phase.shape[-1]}")
    dt = 1.0 / fs
    om = omega[..., :-1] if isinstance(omega, torch.Tensor) and omega.ndim else omega
    f = gaussian_wave_derivative(phase[..., :-1], om, centers, alphas, widths)
    x0 = signal[..., :-1]
    if restoring:
        b = baseline[..., :-1] if isinstance(baseline, torch.Tensor) and baseline.ndim else baseline
        f = f - restoring * (x0 - b)
    residual = signal[..., 1:] - x0 - dt * f
    if reduction == "mean":
        return (residual ** 2).mean()
    if reduction == "sum":
        return (residual ** 2).sum()
    if reduction == "none":
        return residual ** 2
    raise ConfigError(f"unknown reduction {reduction!r}; expected 'mean', 'sum' or 'none'")
