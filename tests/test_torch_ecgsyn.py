"""Differentiable ECGSYN against the numba RK4 of cardiosim.ode (peer oracle) and gradcheck."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cardiosim.errors import ConfigError
from cardiosim.torch.ecgsyn import ecgsyn_z

# ECGSYN reference-code defaults (PHYSICS.md section 5)
TI = np.radians([-70.0, -15.0, 0.0, 15.0, 100.0])
AI = np.array([1.2, -5.0, 30.0, -7.5, 0.75])
BI = np.array([0.25, 0.1, 0.1, 0.1, 0.4])


def _kernel():
    from cardiosim import ode  # the project's own module: a broken import is a failure, not a skip
    from cardiosim.ode import _kernels
    return ode, _kernels.ecgsyn_kernel


def test_matches_numba_ecgsyn_kernel():
    _, kernel = _kernel()
    fs_int = 1000.0
    rr = np.array([0.9, 0.8, 1.05, 0.85])
    beats = np.concatenate([[0.0], np.cumsum(rr)])
    t = np.arange(int(3.0 * fs_int)) / fs_int
    omega = 2 * np.pi / rr[np.searchsorted(beats, t, side="right") - 1]
    x0 = np.array([1.0, 0.0, 0.04])
    ref = np.empty(t.size)
    kernel(omega, fs_int, TI, AI, BI, x0, 0.005, 0.25, fs_int, ref)
    got = ecgsyn_z(torch.as_tensor(omega), fs_int, torch.as_tensor(TI), torch.as_tensor(AI), torch.as_tensor(BI))
    np.testing.assert_allclose(got.numpy()[:-1], ref, rtol=0, atol=1e-10)
    assert np.ptp(ref) > 0.01           # a real ECG-like excursion, not a flat line


def test_batch_matches_single_runs():
    omega = torch.full((2, 300), 2 * np.pi * 1.1, dtype=torch.float64)
    ai = torch.as_tensor(np.stack([AI, 0.5 * AI]))
    out = ecgsyn_z(omega, 500.0, torch.as_tensor(TI), ai, torch.as_tensor(BI))
    for k in range(2):
        one = ecgsyn_z(omega[k], 500.0, torch.as_tensor(TI), ai[k], torch.as_tensor(BI))
        torch.testing.assert_close(out[k], one)


def test_gradcheck_parameters_and_rate():
    ti = torch.as_tensor(TI).clone().requires_grad_(True)
    ai = torch.as_tensor(AI).clone().requires_grad_(True)
    bi = torch.as_tensor(BI).clone().requires_grad_(True)
    omega = torch.full((25,), 2 * np.pi, dtype=torch.float64, requires_grad=True)
    # start just before the R event so the window holds the QRS (phase -0.3 rad)
    x0 = (float(np.cos(-0.3)), float(np.sin(-0.3)), 0.0)

    def f(om, t, a, b):
        return ecgsyn_z(om, 100.0, t, a, b, x0=x0)

    assert torch.autograd.gradcheck(f, (omega, ti, ai, bi))


def test_bad_widths_raise():
    with pytest.raises(ConfigError, match="widths"):
        ecgsyn_z(torch.ones(3, dtype=torch.float64), 100.0, torch.as_tensor(TI), torch.as_tensor(AI),
                 torch.as_tensor(-BI))
