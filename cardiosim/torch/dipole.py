"""Differentiable Gaussian-wave dipole model in torch.

Sameni, Clifford, Jutten & Shamsollahi, "Multichannel ECG and noise modeling: application
to maternal and fetal ECG signals", EURASIP J Adv Signal Process 2007:43407
(PHYSICS.md section 5). Each Frank axis ``a`` of the cardiac dipole is a sum of Gaussian
waves in cardiac phase ``theta``:

    dtheta/dt = omega,
    dx_a/dt   = -sum_i alpha_ai * omega / b_ai**2 * dtheta_ai * exp(-dtheta_ai**2 / (2 b_ai**2)),
    dtheta_ai = wrap(theta - theta_ai) in [-pi, pi).

Because ``dx_a/dtheta`` depends only on ``theta``, the ODE has the exact direct form

    x_a(theta) = sum_i alpha_ai * exp(-dtheta_ai**2 / (2 b_ai**2)),

whatever the heart-rate course ``omega(t)``; only the phase needs integrating. The
direct form is what :func:`gaussian_wave_dipole` evaluates, so gradients flow to the
centres, amplitudes, widths and the phase (hence to ``omega``) exactly.

Different axes may have different numbers of waves (10, 8 and 9 in the adult set);
:func:`pack_parameters` pads them with zero-amplitude waves, which contribute nothing
and receive zero gradient in ``alpha``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..errors import ConfigError, SignalError
from ._torch import torch

TWO_PI = 2.0 * math.pi

# Adult parameter set (OSET test scripts; FECGSYN load_gparam case 1), radians;
# PHYSICS.md section 5.  Rows: Frank X, Y, Z, each as (theta_i, alpha_i, b_i).
ADULT_PARAMETERS: dict[str, tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]] = {
    "X": ((-1.09, -0.83, -0.19, -0.07, 0.0, 0.06, 0.22, 1.2, 1.42, 1.68),
          (0.03, 0.08, -0.13, 0.85, 1.11, 0.75, 0.06, 0.1, 0.17, 0.39),
          (0.0906, 0.1057, 0.0453, 0.0378, 0.0332, 0.0302, 0.0378, 0.6040, 0.3020, 0.1812)),
    "Y": ((-1.1, -0.9, -0.76, -0.11, -0.01, 0.065, 0.8, 1.58),
          (0.035, 0.015, -0.019, 0.32, 0.51, -0.32, 0.04, 0.08),
          (0.07, 0.07, 0.04, 0.055, 0.037, 0.0604, 0.450, 0.3)),
    "Z": ((-1.1, -0.93, -0.7, -0.4, -0.15, 0.095, 1.05, 1.25, 1.55),
          (-0.03, -0.14, -0.035, 0.045, -0.4, 0.46, -0.12, -0.2, -0.35),
          (0.03, 0.12, 0.04, 0.4, 0.045, 0.05, 0.8, 0.4, 0.2)),
}


def wrap_phase(x: torch.Tensor) -> torch.Tensor:
    """Wrap angles (radians) to ``[-pi, pi)``; derivative 1 away from the cut."""
    return torch.remainder(x + math.pi, TWO_PI) - math.pi


def pack_parameters(axes: Sequence[tuple[Sequence[float], Sequence[float], Sequence[float]]],
                    *, dtype=torch.float64, device=None):
    """Pad per-axis Gaussian parameters to common-width tensors.

    Parameters
    ----------
    axes : sequence of (theta_i, alpha_i, b_i), one per axis
        Centres (rad), amplitudes (mV) and widths (rad) of each axis' waves; the axes may
        have different numbers of waves.

    Returns
    -------
    centers, alphas, widths : Tensor, shape (n_axes, K)
        Padding waves have ``alpha = 0``, ``b = 1``, ``theta = 0``, so they add nothing.
    """
    k = max(len(a[0]) for a in axes)
    centers = torch.zeros(len(axes), k, dtype=dtype, device=device)
    alphas = torch.zeros_like(centers)
    widths = torch.ones_like(centers)
    for row, (th, al, b) in enumerate(axes):
        if not (len(th) == len(al) == len(b)):
            raise ConfigError(f"axis {row}: theta, alpha, b lengths differ ({len(th)}, {len(al)}, {len(b)})")
        n = len(th)
        centers[row, :n] = torch.as_tensor(np.asarray(th, dtype=float), dtype=dtype)
        alphas[row, :n] = torch.as_tensor(np.asarray(al, dtype=float), dtype=dtype)
        widths[row, :n] = torch.as_tensor(np.asarray(b, dtype=float), dtype=dtype)
    return centers, alphas, widths


def adult_parameters(*, dtype=torch.float64, device=None):
    """The adult (OSET / FECGSYN) parameter set as padded ``(3, 10)`` tensors (X, Y, Z)."""
    return pack_parameters([ADULT_PARAMETERS[a] for a in "XYZ"], dtype=dtype, device=device)


def _check_widths(widths):
    bad = widths.detach() <= 0
    if bool(bad.any()):
        raise ConfigError(f"Gaussian widths b must be positive, got {widths.detach()[bad].flatten()[:5].tolist()}")


def gaussian_wave_dipole(phase: torch.Tensor, centers: torch.Tensor, alphas: torch.Tensor,
                         widths: torch.Tensor) -> torch.Tensor:
    """Direct form of the Gaussian-wave dipole model.

    Parameters
    ----------
    phase : Tensor, shape (..., T), radians
        Cardiac phase ``theta(t)`` (any real value; differences are wrapped).
    centers, alphas, widths : Tensor, shape (..., n_axes, K)
        Wave centres (rad), amplitudes (mV), widths (rad, > 0). Leading dimensions
        broadcast against those of ``phase``.

    Returns
    -------
    Tensor, shape (..., n_axes, T), mV
        ``x_a(t) = sum_i alpha_ai exp(-wrap(theta(t) - theta_ai)**2 / (2 b_ai**2))``.
    """
    _check_widths(widths)
    d = wrap_phase(phase[..., None, None, :] - centers[..., None])          # (..., A, K, T)
    g = torch.exp(-0.5 * (d / widths[..., None]) ** 2)
    return (alphas[..., None] * g).sum(dim=-2)


def gaussian_wave_derivative(phase: torch.Tensor, omega: torch.Tensor, centers: torch.Tensor,
                             alphas: torch.Tensor, widths: torch.Tensor) -> torch.Tensor:
    """Right-hand side of the Gaussian-wave ODE, ``dx_a/dt`` (mV/s).

    Parameters
    ----------
    phase : Tensor, shape (..., T), radians
    omega : Tensor, shape (..., T) or broadcastable, rad/s
        Angular heart rate ``dtheta/dt``.
    centers, alphas, widths : Tensor, shape (..., n_axes, K)

    Returns
    -------
    Tensor, shape (..., n_axes, T), mV/s
        ``-sum_i alpha_ai omega / b_ai**2 * dtheta_ai * exp(-dtheta_ai**2 / (2 b_ai**2))``
        (Sameni et al. 2007).
    """
    _check_widths(widths)
    d = wrap_phase(phase[..., None, None, :] - centers[..., None])
    b2 = widths[..., None] ** 2
    g = torch.exp(-0.5 * d * d / b2)
    f = -(alphas[..., None] / b2 * d * g).sum(dim=-2)                      # dx/dtheta
    omega = torch.as_tensor(omega, dtype=f.dtype, device=f.device)
    return f * omega[..., None, :] if omega.ndim else f * omega


def phase_from_omega(omega: torch.Tensor, fs: float, theta0: float | torch.Tensor = 0.0,
                     *, method: str = "euler") -> torch.Tensor:
    """Integrate ``dtheta/dt = omega`` on a sample grid.

    Parameters
    ----------
    omega : Tensor, shape (..., T), rad/s
    fs : float, Hz
    theta0 : float or Tensor, shape (...), radians
        Phase at the first sample.
    method : {"euler", "trapezoid"}
        ``"euler"``: ``theta[n] = theta0 + sum_{m<n} omega[m] / fs`` (omega held over each
        sample interval); ``"trapezoid"``: the trapezoidal rule.

    Returns
    -------
    Tensor, shape (..., T), radians, not wrapped (wrapping happens in the model).
    """
    if not fs > 0:
        raise SignalError(f"sampling rate fs must be positive, got {fs!r}")
    if method == "euler":
        steps = omega[..., :-1] / fs
    elif method == "trapezoid":
        steps = 0.5 * (omega[..., 1:] + omega[..., :-1]) / fs
    else:
        raise ConfigError(f"unknown phase integration method {method!r}; expected 'euler' or 'trapezoid'")
    zero = torch.zeros_like(omega[..., :1])
    theta0 = torch.as_tensor(theta0, dtype=omega.dtype, device=omega.device)
    return theta0[..., None] + torch.cat([zero, torch.cumsum(steps, dim=-1)], dim=-1)


class GaussianWaveDipole(torch.nn.Module):
    """Learnable Gaussian-wave dipole (3 Frank axes, K waves each).

    Parameters
    ----------
    centers, alphas, widths : array-like, shape (n_axes, K)
        Initial centres (rad), amplitudes (mV), widths (rad). Default: the adult set of
        PHYSICS.md section 5 (padded to K = 10).
    learn_widths : bool
        Learn ``log b`` (keeps widths positive) or keep them fixed.

    ``forward(phase)`` with ``phase`` shape ``(..., T)`` returns the VCG ``(..., n_axes, T)`` mV.
    """

    def __init__(self, centers=None, alphas=None, widths=None, *, learn_widths: bool = True,
                 dtype=torch.float64):
        super().__init__()
        if centers is None and alphas is None and widths is None:
            centers, alphas, widths = adult_parameters(dtype=dtype)
        c = torch.as_tensor(centers, dtype=dtype)
        a = torch.as_tensor(alphas, dtype=dtype)
        b = torch.as_tensor(widths, dtype=dtype)
        if not (c.shape == a.shape == b.shape and c.ndim == 2):
            raise ConfigError(f"centers, alphas, widths must share a shape (n_axes, K); got "
                              f"{tuple(c.shape)}, {tuple(a.shape)}, {tuple(b.shape)}")
        if bool((b <= 0).any()):
            raise ConfigError(f"Gaussian widths must be positive, got {b[b <= 0].tolist()}")
        self.centers = torch.nn.Parameter(c.clone())
        self.alphas = torch.nn.Parameter(a.clone())
        self.log_widths = torch.nn.Parameter(b.log(), requires_grad=learn_widths)

    @property
    def widths(self) -> torch.Tensor:
        return self.log_widths.exp()

    def forward(self, phase: torch.Tensor) -> torch.Tensor:
        return gaussian_wave_dipole(phase, self.centers, self.alphas, self.widths)

    def synthesize(self, heart_rate: float | torch.Tensor, duration: float, fs: float,
                   theta0: float = -math.pi) -> torch.Tensor:
        """VCG ``(n_axes, T)`` mV at a heart rate (bpm, scalar or ``(T,)``) for ``duration`` s."""
        n = round(duration * fs)
        hr = torch.as_tensor(heart_rate, dtype=self.alphas.dtype)
        omega = (TWO_PI * hr / 60.0) * torch.ones(n, dtype=self.alphas.dtype) if hr.ndim == 0 else TWO_PI * hr / 60.0
        return self(phase_from_omega(omega, fs, theta0))
