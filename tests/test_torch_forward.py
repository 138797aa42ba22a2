"""Differentiable forward projection and montage in torch.

References: the closed forms of PHYSICS.md section 4 evaluated in NumPy here, the
NumPy montages of cardiosim.leads, Einthoven/Goldberger identities, and the
cardiosim.forward models when they exist (peer implementation as oracle).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cardiosim.errors import ConfigError, GeometryError, LeadError
from cardiosim.leads import make_montage
from cardiosim.torch import forward as F

SIGMA = 0.2


def _sphere_points(n, radius, rng):
    v = rng.normal(size=(n, 3))
    return radius * v / np.linalg.norm(v, axis=1, keepdims=True)


def test_infinite_lead_field_matches_closed_form(rng):
    pts = rng.normal(scale=0.15, size=(9, 3))
    r0 = np.array([0.01, -0.02, 0.03])
    p = rng.normal(scale=1e-4, size=3)
    lf = F.infinite_lead_field(torch.as_tensor(pts), torch.as_tensor(r0), SIGMA).numpy()
    d = pts - r0
    phi_ref = d @ p / (4 * np.pi * SIGMA * np.linalg.norm(d, axis=1) ** 3)
    np.testing.assert_allclose(lf @ p, phi_ref, rtol=1e-13)


def test_sphere_lead_field_centred_dipole_is_three_times_infinite(rng):
    R = 0.1
    pts = torch.as_tensor(_sphere_points(20, R, rng))
    r0 = torch.zeros(3, dtype=torch.float64)
    np.testing.assert_allclose(F.sphere_lead_field(pts, R, r0, SIGMA).numpy(),
                               3 * F.infinite_lead_field(pts, r0, SIGMA).numpy(), rtol=1e-12)


def test_sphere_lead_field_matches_image_series_for_radial_dipole():
    # Independent check off-centre: radial dipole q at distance f on the z axis of an
    # insulated sphere; surface potential by the classical Legendre series (Wilson &
    # Bayley 1950; Frank 1952):
    # phi(theta) = q / (4 pi sigma R^2) * sum_{n>=1} (2n+1) (f/R)^(n-1) P_n(cos theta).
    from scipy.special import eval_legendre
    R, f, q = 0.1, 0.05, 1.0
    theta = np.linspace(0.05, np.pi - 0.05, 9)
    pts = np.stack([R * np.sin(theta), 0 * theta, R * np.cos(theta)], axis=1)
    lf = F.sphere_lead_field(torch.as_tensor(pts), R, torch.tensor([0.0, 0.0, f], dtype=torch.float64), SIGMA)
    phi = lf.numpy() @ np.array([0.0, 0.0, q])
    ns = np.arange(1, 400)
    series = np.array([np.sum((2 * ns + 1) * (f / R) ** (ns - 1) * eval_legendre(ns, np.cos(t))) for t in theta])
    ref = q / (4 * np.pi * SIGMA * R ** 2) * series
    np.testing.assert_allclose(phi, ref, rtol=1e-9)


def test_peer_forward_models_agree_if_available(rng):
    from cardiosim import forward as fwd  # the project's own module: a broken import fails the test
    r0 = np.array([0.01, 0.0, -0.02])
    pts = _sphere_points(12, 0.1, rng)
    peer = fwd.make_infinite_model(r0, conductivity=SIGMA).lead_field(pts)
    np.testing.assert_allclose(F.infinite_lead_field(torch.as_tensor(pts), torch.as_tensor(r0), SIGMA).numpy(),
                               peer, rtol=1e-10)
    if hasattr(fwd, "make_sphere_model"):
        peer_s = fwd.make_sphere_model(0.1, r0, conductivity=SIGMA).lead_field(pts)
        np.testing.assert_allclose(F.sphere_lead_field(torch.as_tensor(pts), 0.1, torch.as_tensor(r0), SIGMA).numpy(),
                                   peer_s, rtol=1e-8)


@pytest.mark.parametrize("name", ["standard12", "frank", "easi", "limb3", "patch"])
def test_montage_matches_numpy_montage(name, rng):
    m = make_montage(name)
    phi = rng.normal(size=(2, len(m.electrodes), 17))
    got = F.apply_montage(F.montage_tensor(name), torch.as_tensor(phi)).numpy()
    np.testing.assert_allclose(got, m.apply(phi), rtol=1e-13, atol=1e-15)


def test_simulate_leads_obeys_einthoven_and_goldberger(rng):
    pts = torch.as_tensor(_sphere_points(9, 0.12, rng))
    p = torch.as_tensor(rng.normal(scale=1e-4, size=(3, 50)))
    leads = F.simulate_leads(p, pts, torch.zeros(3, dtype=torch.float64)).numpy()
    i, ii, iii, avr, avl, avf = leads[:6]
    np.testing.assert_allclose(i + iii, ii, atol=1e-12)
    np.testing.assert_allclose(avr + avl + avf, 0, atol=1e-12)
    # mV: a 0.1 mA.m dipole at 12 cm in 0.2 S/m gives ~ 1e-4/(4 pi 0.2 0.0144) V = 2.8 mV scale
    assert 0.1 < np.abs(leads).max() < 50


def test_simulate_leads_gradcheck_positions_dipole_and_source(rng):
    pts = torch.as_tensor(_sphere_points(9, 0.12, rng)).requires_grad_(True)
    p = torch.as_tensor(rng.normal(scale=1e-4, size=(3, 4))).requires_grad_(True)
    r0 = torch.tensor([0.01, 0.02, -0.01], dtype=torch.float64, requires_grad=True)
    for model, kw in (("infinite", {}), ("sphere", {"radius": 0.12})):
        assert torch.autograd.gradcheck(lambda a, b, c, m=model, k=kw: F.simulate_leads(b, a, c, model=m, **k),
                                        (pts, p, r0))


def test_gradient_moves_electrode_toward_target_lead():
    # Optimise the V1 electrode position so V1 matches the signal of a displaced electrode
    rng = np.random.default_rng(5)
    base = torch.as_tensor(_sphere_points(9, 0.12, rng))
    p = torch.as_tensor(rng.normal(scale=1e-4, size=(3, 40)))
    r0 = torch.zeros(3, dtype=torch.float64)
    moved = base.clone()
    moved[3] += torch.tensor([0.0, 0.0, 0.02], dtype=torch.float64)
    target = F.simulate_leads(p, moved, r0)
    pos = base.clone().requires_grad_(True)
    opt = torch.optim.Adam([pos], lr=2e-3)
    first = None
    for _ in range(200):
        opt.zero_grad()
        loss = ((F.simulate_leads(p, pos, r0) - target) ** 2).mean()
        first = first or loss.item()
        loss.backward()
        opt.step()
    assert loss.item() < first / 100


def test_bad_inputs_raise():
    pts = torch.zeros(2, 3, dtype=torch.float64)
    with pytest.raises(GeometryError, match="coincides"):
        F.infinite_lead_field(pts, torch.zeros(3, dtype=torch.float64))
    with pytest.raises(ConfigError, match="-1"):
        F.infinite_lead_field(pts + 1, torch.zeros(3, dtype=torch.float64), conductivity=-1)
    with pytest.raises(GeometryError, match="inside"):
        F.sphere_lead_field(pts + 1, 0.1, torch.tensor([0.2, 0, 0], dtype=torch.float64))
    with pytest.raises(LeadError, match="9 electrodes"):
        F.apply_montage(F.montage_tensor("standard12"), torch.zeros(3, 5))
    with pytest.raises(ConfigError, match="bem"):
        F.simulate_leads(torch.zeros(3, 5), pts + 1, torch.zeros(3), model="bem")
    assert math.isfinite(float(F.infinite_lead_field(pts + 1, torch.zeros(3, dtype=torch.float64)).sum()))
