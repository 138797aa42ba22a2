"""The differentiable Gaussian-wave dipole model and the SimGAN Euler loss.

References: a NumPy direct form written here from PHYSICS.md section 5 (Sameni et al.
2007), scipy's solve_ivp integrating the ODE form, and the numba model of
``cardiosim.ode`` when it exposes its parameters.
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cardiosim.errors import ConfigError
from cardiosim.torch import dipole as D
from cardiosim.torch.losses import euler_loss


def numpy_direct_form(phase, centers, alphas, widths):
    """x_a(theta) = sum_i alpha_ai exp(-wrap(theta - theta_ai)^2 / (2 b_ai^2)); PHYSICS.md §5."""
    out = np.zeros((len(centers), len(phase)))
    for a, (th, al, b) in enumerate(zip(centers, alphas, widths)):
        for ti, ai, bi in zip(th, al, b):
            d = (phase - ti + np.pi) % (2 * np.pi) - np.pi
            out[a] += ai * np.exp(-d ** 2 / (2 * bi ** 2))
    return out


def adult_lists():
    return [D.ADULT_PARAMETERS[a] for a in "XYZ"]


def test_import_cardiosim_does_not_import_torch():
    code = "import sys, cardiosim, cardiosim.torch; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(__import__("pathlib").Path(__file__).parents[1]))


def test_direct_form_matches_numpy_reference_across_phase_wraps():
    phase = np.linspace(-3 * np.pi, 5 * np.pi, 4001)          # several wraps
    c, a, b = D.adult_parameters()
    got = D.gaussian_wave_dipole(torch.as_tensor(phase), c, a, b).numpy()
    ref = numpy_direct_form(phase, *zip(*[(np.array(t), np.array(al), np.array(bb)) for t, al, bb in adult_lists()]))
    assert got.shape == (3, phase.size)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)
    # one beat per 2 pi: the 4001 samples span 4 periods of 1000 samples each
    np.testing.assert_allclose(got[:, :1000], got[:, 1000:2000], atol=1e-12)
    assert np.ptp(got[0]) > 1.0                     # the R wave of X is there


def test_direct_form_is_exact_solution_of_the_ode_with_varying_heart_rate():
    from scipy.integrate import solve_ivp

    c, a, b = D.adult_parameters()
    cn, an, bn = c.numpy(), a.numpy(), b.numpy()

    def omega(t):  # heart rate drifting 60 -> ~100 bpm with a respiratory ripple
        return 2 * np.pi * (1.0 + 0.3 * t + 0.1 * np.sin(2 * np.pi * 0.25 * t))

    def rhs(t, y):
        th = y[0]
        d = (th - cn + np.pi) % (2 * np.pi) - np.pi
        dx = -(an * omega(t) / bn ** 2 * d * np.exp(-d ** 2 / (2 * bn ** 2))).sum(axis=1)
        return np.concatenate([[omega(t)], dx])

    theta0 = -np.pi
    x0 = numpy_direct_form(np.array([theta0]), cn, an, bn)[:, 0]
    t = np.linspace(0, 3, 1501)
    sol = solve_ivp(rhs, (0, 3), np.concatenate([[theta0], x0]), t_eval=t, rtol=1e-10, atol=1e-12,
                    max_step=1e-3, method="DOP853")
    direct = D.gaussian_wave_dipole(torch.as_tensor(sol.y[0]), c, a, b).numpy()
    np.testing.assert_allclose(direct, sol.y[1:], atol=2e-7)


def test_derivative_equals_autograd_time_derivative_of_direct_form():
    c, a, b = D.adult_parameters()
    phase = torch.linspace(-np.pi, np.pi, 501, dtype=torch.float64, requires_grad=True)
    omega = torch.full_like(phase, 2 * np.pi * 1.2)
    x = D.gaussian_wave_dipole(phase, c, a, b)
    for axis in range(3):
        (g,) = torch.autograd.grad(x[axis].sum(), phase, retain_graph=True)   # dx/dtheta per sample
        f = D.gaussian_wave_derivative(phase.detach(), omega, c, a, b)[axis]
        np.testing.assert_allclose(f.numpy(), (g * omega).numpy(), rtol=1e-10, atol=1e-9)


def test_phase_from_omega_integrates_constant_and_ramp():
    fs = 250.0
    omega = torch.full((1000,), 2 * math.pi, dtype=torch.float64)          # 60 bpm
    th = D.phase_from_omega(omega, fs, theta0=0.5)
    np.testing.assert_allclose(th.numpy(), 0.5 + 2 * np.pi * np.arange(1000) / fs, atol=1e-12)
    t = torch.arange(1000, dtype=torch.float64) / fs
    th2 = D.phase_from_omega(3.0 * t, fs, method="trapezoid")             # exact for a ramp
    np.testing.assert_allclose(th2.numpy(), 1.5 * t.numpy() ** 2, atol=1e-12)
    with pytest.raises(ConfigError, match="simpson"):
        D.phase_from_omega(omega, fs, method="simpson")


def test_gradcheck_direct_form_all_inputs():
    c, a, b = D.adult_parameters()
    # a few waves per axis keep gradcheck cheap; avoid the wrap cut by staying inside (-pi, pi)
    c, a, b = (x[:, 2:6].clone().requires_grad_(True) for x in (c, a, b))
    phase = torch.linspace(-0.6, 0.6, 23, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(D.gaussian_wave_dipole, (phase, c, a, b))
    assert torch.autograd.gradgradcheck(D.gaussian_wave_dipole, (phase, c, a, b))


def test_gradcheck_through_heart_rate_integration():
    c, a, b = (x[:, 2:6] for x in D.adult_parameters())
    omega = torch.full((20,), 2 * np.pi * 1.1, dtype=torch.float64, requires_grad=True)

    def f(om):
        return D.gaussian_wave_dipole(D.phase_from_omega(om, 50.0, -0.3), c, a, b)

    assert torch.autograd.gradcheck(f, (omega,))


def test_module_fits_perturbed_amplitudes_and_widths():
    target_model = D.GaussianWaveDipole()
    phase = torch.linspace(-np.pi, np.pi, 400, dtype=torch.float64)
    with torch.no_grad():
        target = target_model(phase)
    g = torch.Generator().manual_seed(0)
    model = D.GaussianWaveDipole()
    with torch.no_grad():
        model.alphas.mul_(1 + 0.3 * torch.randn(model.alphas.shape, generator=g, dtype=torch.float64))
        model.log_widths.add_(0.2 * torch.randn(model.log_widths.shape, generator=g, dtype=torch.float64))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss0 = torch.mean((model(phase) - target) ** 2).item()
    for _ in range(300):
        opt.zero_grad()
        loss = torch.mean((model(phase) - target) ** 2)
        loss.backward()
        opt.step()
    assert loss.item() < loss0 / 100


def test_nonpositive_width_raises():
    c, a, b = D.adult_parameters()
    b[1, 3] = -0.1
    with pytest.raises(ConfigError, match="-0.1"):
        D.gaussian_wave_dipole(torch.zeros(5, dtype=torch.float64), c, a, b)


def _exact_vcg(fs, duration=2.0):
    c, a, b = D.adult_parameters()
    n = int(duration * fs)
    omega = torch.full((n,), 2 * np.pi * 75 / 60, dtype=torch.float64)
    phase = D.phase_from_omega(omega, fs, -np.pi)
    return D.gaussian_wave_dipole(phase, c, a, b), phase, omega, (c, a, b)


def test_euler_loss_vanishes_at_second_order_on_exact_solutions():
    losses = []
    for fs in (500.0, 1000.0, 2000.0):
        x, phase, omega, params = _exact_vcg(fs)
        losses.append(euler_loss(x, phase, omega, fs, *params).item())
    # Euler's local error is O(dt^2), so the mean squared residual falls as dt^4
    assert 12 < losses[0] / losses[1] < 20 and 12 < losses[1] / losses[2] < 20
    x, phase, omega, params = _exact_vcg(500.0)
    noisy = x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert euler_loss(noisy, phase, omega, 500.0, *params).item() > 100 * losses[0]


def test_euler_loss_restoring_term_matches_ecgsyn_step():
    # with alpha = 0 the ODE is dz/dt = -(z - z0): an Euler step is exact for z = z0 + (1-dt)^n
    fs = 100.0
    n = 50
    z = torch.as_tensor(0.2 + 0.5 * (1 - 1 / fs) ** np.arange(n))[None]
    c, a, b = D.adult_parameters()
    loss = euler_loss(z, torch.zeros(n, dtype=torch.float64), 1.0, fs, c[:1], 0 * a[:1], b[:1],
                      restoring=1.0, baseline=0.2)
    assert loss.item() < 1e-30
    assert euler_loss(z, torch.zeros(n, dtype=torch.float64), 1.0, fs, c[:1], 0 * a[:1], b[:1]).item() > 1e-6


def test_gradcheck_euler_loss():
    c, a, b = (x[:, 3:6].clone().requires_grad_(True) for x in D.adult_parameters())
    x = (0.1 * torch.randn(3, 15, generator=torch.Generator().manual_seed(2), dtype=torch.float64)).requires_grad_(True)
    phase = torch.linspace(-0.4, 0.4, 15, dtype=torch.float64)

    def f(sig, cc, aa, bb):
        return euler_loss(sig, phase, 7.0, 50.0, cc, aa, bb, restoring=1.0)

    assert torch.autograd.gradcheck(f, (x, c, a, b))


def _numba_model():
    from cardiosim import ode  # the project's own module: a broken import is a failure, not a skip
    from cardiosim.ode.dipole import phase_from_r_peaks
    return ode, phase_from_r_peaks


@pytest.mark.parametrize("variable_rr", [False, True])
def test_matches_numba_model_on_same_parameters(variable_rr):
    """The numba direct form of cardiosim.ode (unwrapped per-beat centres, 5-width cutoff)
    and this wrapped torch form agree to 1e-5 mV on a patient's per-axis waves."""
    ode, phase_from_r_peaks = _numba_model()
    from cardiosim.ode.model import scaled_timing

    fs, duration, rr0 = 500.0, 6.0, 0.8
    rng = np.random.default_rng(3)
    rr = rr0 + (0.08 * rng.standard_normal(12) if variable_rr else np.zeros(12))
    r_times = np.concatenate([[-0.9], -0.9 + np.cumsum(rr)])          # R peaks covering the record
    patient = ode.default_patient()
    tau = patient.tau + rng.normal(0, 0.004, patient.tau.shape)        # axes get their own centres
    tau, sigma = scaled_timing(tau, patient.sigma, rr0)
    theta_i, b_i = 2 * np.pi * tau / rr0, 2 * np.pi * sigma / rr0     # (3, n_waves) rad
    # numba: one Gaussian per axis, wave and beat, centred at theta_i + 2 pi k (unwrapped phase)
    k = np.arange(len(r_times))
    centres = (theta_i[None] + 2 * np.pi * k[:, None, None]).ravel()
    widths = np.broadcast_to(b_i, (len(k),) + b_i.shape).ravel()
    amps = np.broadcast_to(patient.amp, (len(k),) + b_i.shape).ravel()
    chans = np.broadcast_to(np.arange(3)[:, None], (len(k),) + b_i.shape).ravel()
    n = int(duration * fs)
    ref = ode.render_dipole(r_times, centres, widths, amps, chans, n, fs)
    # torch: the same waves, per axis, on the same phase
    phase = torch.as_tensor(phase_from_r_peaks(r_times, n, fs))
    got = D.gaussian_wave_dipole(phase, torch.as_tensor(theta_i), torch.as_tensor(patient.amp.copy()),
                                 torch.as_tensor(b_i)).numpy()
    assert np.ptp(ref[0]) > 0.5
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)
