"""Classic (non-physical) ECG augmentations, for comparing naive and physical augmentation.

Each takes signals ``x [..., n_leads, T]`` and a ``numpy.random.Generator``; returns
``(augmented array of x's dtype, params dict)``. One draw per call (per record when
called per record), as in common ECG augmentation libraries.
"""

from __future__ import annotations

import numpy as np

from ..config import check_range
from ..errors import ConfigError, SignalError


def _check(x):
    x = np.asarray(x)
    if x.ndim < 2 or x.shape[-1] < 2:
        raise SignalError(f"x must have shape [..., n_leads, T] with T >= 2, got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise SignalError("x contains NaN or inf samples")
    return x


def _check_rng(rng):
    if not isinstance(rng, np.random.Generator):
        raise ConfigError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")


def amplitude_scale(x, rng, scale=(0.5, 2.0), *, per_lead: bool = False):
    """Multiply by a log-uniform factor in ``scale`` (one per record, or per lead)."""
    x = _check(x)
    _check_rng(rng)
    check_range("scale[0]", scale[0], 0.0, lo_open=True)
    check_range("scale[1]", scale[1], scale[0])
    shape = x.shape[:-1] + (1,) if per_lead else x.shape[:-2] + (1, 1)
    g = np.exp(rng.uniform(np.log(scale[0]), np.log(scale[1]), shape))
    return (x * g).astype(x.dtype, copy=False), {"scale": g.squeeze()}


def time_warp(x, rng, max_warp: float = 0.1, n_knots: int = 4):
    """Smooth monotone time warp: the local speed ``1 + w(t)`` with ``|w| <= max_warp``
    interpolated (cubic) between ``n_knots`` random knots, normalised so both ends stay
    fixed; the signal is linearly interpolated at the warped times."""
    from scipy.interpolate import CubicSpline
    x = _check(x)
    _check_rng(rng)
    check_range("max_warp", max_warp, 0.0, 0.9)
    if int(n_knots) != n_knots or n_knots < 2:
        raise ConfigError(f"n_knots must be an integer >= 2, got {n_knots!r}")
    n = x.shape[-1]
    knots = rng.uniform(-max_warp, max_warp, n_knots)
    u = np.linspace(0, 1, n)
    speed = 1.0 + np.clip(CubicSpline(np.linspace(0, 1, n_knots), knots)(u), -max_warp, max_warp)
    tau = np.concatenate([[0.0], np.cumsum(0.5 * (speed[1:] + speed[:-1]))])
    tau *= (n - 1) / tau[-1]
    flat = x.reshape(-1, n)
    out = np.empty_like(flat, dtype=np.float64)
    grid = np.arange(n, dtype=np.float64)
    for i in range(flat.shape[0]):
        out[i] = np.interp(tau, grid, flat[i])
    return out.reshape(x.shape).astype(x.dtype, copy=False), {"warp_knots": knots, "warped_time": tau}


def lead_dropout(x, rng, p: float = 0.1, *, min_keep: int = 1):
    """Set whole leads to zero with probability ``p`` each (at least ``min_keep`` kept)."""
    x = _check(x)
    _check_rng(rng)
    check_range("p", p, 0.0, 1.0)
    n_leads = x.shape[-2]
    if int(min_keep) != min_keep or not 0 <= min_keep <= n_leads:
        raise ConfigError(f"min_keep must be an integer in [0, {n_leads}], got {min_keep!r}")
    drop = rng.random(x.shape[:-1]) < p
    flat = drop.reshape(-1, n_leads)
    for row in flat:
        kept = np.flatnonzero(~row)
        if kept.size < min_keep:
            restore = rng.choice(np.flatnonzero(row), min_keep - kept.size, replace=False)
            row[restore] = False
    drop = flat.reshape(drop.shape)
    out = np.where(drop[..., None], 0, x).astype(x.dtype, copy=False)
    return out, {"dropped": drop}


def lead_mixing(x, rng, alpha: float = 0.1):
    """Mix leads linearly: ``y = (I + alpha R) x`` with ``R`` Gaussian (zero diagonal,
    entries N(0, 1/n_leads)), one matrix per record: cross-talk between channels."""
    x = _check(x)
    _check_rng(rng)
    check_range("alpha", alpha, 0.0)
    n_leads = x.shape[-2]
    r = rng.standard_normal(x.shape[:-2] + (n_leads, n_leads)) / np.sqrt(n_leads)
    idx = np.arange(n_leads)
    r[..., idx, idx] = 0.0
    m = np.eye(n_leads) + alpha * r
    return np.matmul(m, x).astype(x.dtype, copy=False), {"mixing": m}
