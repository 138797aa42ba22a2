"""Differentiable ECGSYN (McSharry et al., IEEE TBME 2003;50:289; PHYSICS.md section 5).

ECGSYN moves a point on a limit cycle of radius 1 in the (x, y) plane at angular rate
``omega`` and pushes ``z`` with Gaussian events at angles ``theta_i`` plus a restoring
term toward the baseline ``z0(t)``::

    dx/dt = a x - omega y,      dy/dt = a y + omega x,      a = 1 - sqrt(x^2 + y^2)
    dz/dt = -sum_i a_i dtheta_i exp(-dtheta_i^2 / (2 b_i^2)) - (z - z0(t))
    dtheta_i = wrap(atan2(y, x) - theta_i),  z0(t) = A sin(2 pi f t)

Because of the restoring term, ``z`` is not a function of the phase alone (unlike the
Gaussian-wave dipole model), so this integrates it with the same fixed-step RK4 as
``cardiosim.ode`` (its numba kernel is the test oracle). Every step is a torch
operation, so gradients reach ``a_i, b_i, theta_i``, ``omega`` and the initial state --
the simulator SimGAN (Golany et al., ICML 2020) differentiates through. The Python loop
costs about 10-20 us per step: use it for short windows or small batches.
"""

from __future__ import annotations

import math

from ..errors import ConfigError
from ._torch import torch

TWO_PI = 2.0 * math.pi


def _deriv(t, x, y, z, w, ti, ai, bi, z0_amp, z0_freq):
    a0 = 1.0 - torch.sqrt(x * x + y * y)
    dx = a0 * x - w * y
    dy = a0 * y + w * x
    d = torch.atan2(y, x)[..., None] - ti
    d = d - torch.round(d / TWO_PI) * TWO_PI          # wrap to [-pi, pi] as ECGSYN does
    s = (ai * d * torch.exp(-0.5 * (d / bi) ** 2)).sum(dim=-1)
    dz = -s - (z - z0_amp * math.sin(TWO_PI * z0_freq * t))
    return dx, dy, dz


def ecgsyn_z(omega: torch.Tensor, fs_int: float, ti: torch.Tensor, ai: torch.Tensor, bi: torch.Tensor, *,
             x0=(1.0, 0.0, 0.04), z0_amp: float = 0.005, z0_freq: float = 0.25) -> torch.Tensor:
    """Integrate ECGSYN with fixed-step RK4 and return ``z`` at every step.

    Parameters
    ----------
    omega : Tensor, shape (..., N), rad/s
        Angular rate held over each internal step.
    fs_int : float, Hz
        Internal step rate (``h = 1 / fs_int``).
    ti, ai, bi : Tensor, shape (..., K)
        Event angles (rad), amplitudes and widths (rad, > 0); leading dims broadcast.
    x0 : (x, y, z) initial state (floats or tensors of shape (...)).
    z0_amp, z0_freq : baseline wander amplitude (mV) and frequency (Hz).

    Returns
    -------
    Tensor, shape (..., N + 1)
        ``z`` at ``t = n / fs_int``, ``n = 0..N`` (the reference model's units).
    """
    if not fs_int > 0:
        raise ConfigError(f"fs_int must be positive, got {fs_int!r}")
    if bool((bi.detach() <= 0).any()):
        raise ConfigError(f"ECGSYN widths bi must be positive, got {bi.detach().flatten().tolist()}")
    h = 1.0 / fs_int
    shape = omega.shape[:-1]
    x, y, z = (torch.as_tensor(v, dtype=omega.dtype).expand(shape) if not isinstance(v, torch.Tensor)
               else v.expand(shape) for v in x0)
    zs = [z]
    for n in range(omega.shape[-1]):
        t = n * h
        w = omega[..., n]
        k1 = _deriv(t, x, y, z, w, ti, ai, bi, z0_amp, z0_freq)
        k2 = _deriv(t + h / 2, x + h / 2 * k1[0], y + h / 2 * k1[1], z + h / 2 * k1[2], w, ti, ai, bi,
                    z0_amp, z0_freq)
        k3 = _deriv(t + h / 2, x + h / 2 * k2[0], y + h / 2 * k2[1], z + h / 2 * k2[2], w, ti, ai, bi,
                    z0_amp, z0_freq)
        k4 = _deriv(t + h, x + h * k3[0], y + h * k3[1], z + h * k3[2], w, ti, ai, bi, z0_amp, z0_freq)
        x = x + h / 6 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0])
        y = y + h / 6 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1])
        z = z + h / 6 * (k1[2] + 2 * k2[2] + 2 * k3[2] + k4[2])
        zs.append(z)
    return torch.stack(zs, dim=-1)
