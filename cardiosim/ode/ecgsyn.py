"""McSharry's single-lead ECGSYN (IEEE TBME 2003;50:289), fixed-step RK4 in numba.

Unlike the dipole model, ECGSYN's ``z`` equation has the restoring term ``-(z - z0)``,
so ``z`` is not a function of the phase alone and needs a real integrator. The
parameterisation follows the reference code and NeuroKit2's port
(``neurokit2/ecg/ecg_simulate.py``): angles/amplitudes/widths of P Q R S T, widths scaled
by ``√(HR/60)``, P and T angles by ``(HR/60)^¼`` and Q, S angles by ``√(HR/60)``;
``ω = 2π/RR`` held constant for each beat from R peak to R peak; baseline
``z0 = 0.005 sin(2π 0.25 t)``; output rescaled to [-0.4, 1.2] mV as the reference does.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from .dipole import _backend
from .rhythm import rr_process

ECGSYN_TI_DEG = (-70.0, -15.0, 0.0, 15.0, 100.0)
ECGSYN_AI = (1.2, -5.0, 30.0, -7.5, 0.75)
ECGSYN_BI = (0.25, 0.1, 0.1, 0.1, 0.4)


def ecgsyn(duration, fs, rng, *, heart_rate=60.0, heart_rate_std=1.0, lf_hf_ratio=0.5,
           ti=ECGSYN_TI_DEG, ai=ECGSYN_AI, bi=ECGSYN_BI, fs_internal=None, z0_amp=0.005,
           z0_freq=0.25, rescale=True, backend="numba"):
    """Single-lead ECGSYN signal.

    Parameters
    ----------
    duration : float, s;  fs : float, Hz (output)
    rng : numpy.random.Generator (RR process phases)
    heart_rate, heart_rate_std : float, bpm;  lf_hf_ratio : float
    ti : (5,) degrees;  ai : (5,);  bi : (5,) rad — P Q R S T extrema at 60 bpm
    fs_internal : float, Hz — RK4 step rate, independent of ``fs`` (default max(4 fs, 2000))
    z0_amp, z0_freq : baseline wander of the reference model (mV, Hz)
    rescale : bool — map to [-0.4, 1.2] like the reference code
    backend : "numba" or "numpy"

    Returns
    -------
    ndarray, shape (round(duration * fs),), float64, mV
    """
    for name, v in (("duration", duration), ("fs", fs), ("heart_rate", heart_rate)):
        if not (np.isfinite(v) and v > 0):
            raise ConfigError(f"{name} must be positive, got {v!r}")
    ti, ai, bi = (np.asarray(x, np.float64) for x in (ti, ai, bi))
    if not (ti.shape == ai.shape == bi.shape and ti.ndim == 1):
        raise ConfigError(f"ti, ai, bi must be 1-D of equal length, got {ti.shape}, {ai.shape}, {bi.shape}")
    if np.any(bi <= 0):
        raise ConfigError(f"bi must be positive, got {bi}")
    fs_internal = max(4.0 * fs, 2000.0) if fs_internal is None else float(fs_internal)
    if not (np.isfinite(fs_internal) and fs_internal > 0):
        raise ConfigError(f"fs_internal must be positive, got {fs_internal!r}")
    hrfact = np.sqrt(heart_rate / 60.0)
    ti = np.radians(ti)
    if ti.size == 5:
        ti = ti * np.array([np.sqrt(hrfact), hrfact, 1.0, hrfact, np.sqrt(hrfact)])
    bi = bi * hrfact
    # per-beat RR from McSharry's process; ω constant from one R peak to the next
    rr_t = rr_process(duration + 10.0, rng, heart_rate=heart_rate, heart_rate_std=heart_rate_std,
                      lf_hf_ratio=lf_hf_ratio, fs_rr=4.0)
    n_int = int(np.ceil(duration * fs_internal)) + 2
    t_int = np.arange(n_int) / fs_internal
    beats = [0.0]
    while beats[-1] <= t_int[-1]:
        beats.append(beats[-1] + float(np.interp(beats[-1], np.arange(rr_t.size) / 4.0, rr_t)))
    beats = np.asarray(beats)
    k = np.searchsorted(beats, t_int, side="right") - 1
    omega = 2 * np.pi / np.diff(beats)[k]
    out = np.empty(int(round(duration * fs)))
    _backend(backend).ecgsyn_kernel(omega, fs_internal, ti, ai, bi, np.array([1.0, 0.0, 0.04]),
                                    float(z0_amp), float(z0_freq), float(fs), out)
    if rescale:
        lo, hi = out.min(), out.max()
        out = (out - lo) * 1.6 / (hi - lo) - 0.4
    return out
