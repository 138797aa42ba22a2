"""The hybrid beat render (``_beat_kernels.render_hybrid``: NumPy's ``exp`` between two
kernels) against its NumPy twin ``render_numpy`` (``Patient.render``'s NumPy code), bit
for bit, part by part; and the render form ``model`` picks."""

from __future__ import annotations

import numpy as np
import pytest

from cardiosim.ode import _beat_kernels as K
from cardiosim.ode import model as M
from cardiosim.ode.prior import sample_patient


def _case(p, waves, rr, fs=2000.0):
    ts, ss = M.scaled_timing(p.tau, p.sigma, rr)
    idx = list(waves)
    t = np.arange((ts[:, idx] - 5 * ss[:, idx]).min(), (ts[:, idx] + 5 * ss[:, idx]).max(), 1 / fs)
    return t, np.asarray(waves, np.int64), rr ** (1 / 3)


def test_gauss_arg_and_weighted_sum_kernels_equal_numpy_bit_for_bit(rng):
    if M._render_form() is None:  # the NumPy code runs: nothing to compare
        pytest.skip("no render form gives NumPy's results on this machine")
    p = sample_patient(rng, morphology="LBBB")
    for waves in (M.P_WAVES, M.QRS_WAVES, M.REPOL, tuple(range(M.NW))):
        for rr in (1.0, 0.47, 1.6):
            t, idx, f = _case(p, waves, rr)
            fac = np.ones(M.NW)
            fac[M._REPOL_MASK] = f
            tau, sigma = p.tau * fac, p.sigma * fac
            want_arg = -0.5 * ((t[None, None, :] - tau[:, idx, None]) / sigma[:, idx, None]) ** 2
            arg = np.empty((3, idx.size, t.size))
            K.gauss_arg_kernel(t, p.tau, p.sigma, idx, f, M._REPOL_MASK, arg)
            assert arg.tobytes() == want_arg.tobytes()
            g = np.exp(want_arg)
            out = np.empty((3, t.size))
            K.weighted_sum_kernel(p.amp, idx, g, out)
            assert out.tobytes() == np.einsum("ai,ait->at", p.amp[:, idx], g).tobytes()
            got = K.render_hybrid(t, p.tau, p.sigma, p.amp, idx, f, M._REPOL_MASK)
            assert got.tobytes() == K.render_numpy(t, p.tau, p.sigma, p.amp, idx, f, M._REPOL_MASK).tobytes()


def test_patient_render_uses_a_checked_form_and_equals_numpy(rng, monkeypatch):
    """``Patient.render`` in whichever form this machine passed equals the NumPy code."""
    assert M._render_form() in ("kernel", "hybrid", None)
    pats = [sample_patient(rng, morphology=m) for m in ("NORM", "RBBB", "TINV")]
    t = np.arange(-0.3, 0.6, 1 / 1000)
    fast = [p.render(t, w, rr).tobytes() for p in pats for w in (None, M.QRS_WAVES) for rr in (1.0, 0.6)]
    monkeypatch.setattr(M, "_fast_kernels", lambda: False)
    slow = [p.render(t, w, rr).tobytes() for p in pats for w in (None, M.QRS_WAVES) for rr in (1.0, 0.6)]
    assert fast == slow
