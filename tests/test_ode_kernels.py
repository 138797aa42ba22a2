"""Numba kernels of cardiosim.ode against their NumPy twins and against the ODE itself."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from cardiosim.errors import ConfigError, SignalError
from cardiosim.ode import _kernels, _reference, default_patient
from cardiosim.ode.dipole import (
    phase_from_r_peaks,
    render_dipole,
    render_dipole_batch,
    render_gaussians,
    render_gaussians_batch,
)


def _random_gaussians(rng, n_beats, n_ch=3):
    r = np.cumsum(rng.uniform(0.5, 1.2, n_beats + 1)) - 1.0
    g = 11 * n_ch * n_beats
    k = rng.integers(0, n_beats, g)
    centres = 2 * np.pi * (k + rng.uniform(-0.45, 0.45, g))
    widths = rng.uniform(0.02, 0.5, g)
    return r, centres, widths, rng.normal(0, 0.5, g), rng.integers(0, n_ch, g)


def test_phase_kernel_twin_and_r_peaks(rng):
    r, *_ = _random_gaussians(rng, 12)
    a = phase_from_r_peaks(r, 4000, 500.0, t0=-0.3)
    b = phase_from_r_peaks(r, 4000, 500.0, t0=-0.3, backend="numpy")
    np.testing.assert_allclose(a, b, atol=1e-9)
    # phase is 2πk at each R peak inside the window (exact piecewise-linear integral)
    fs = 1000.0
    grid = phase_from_r_peaks(r, int((r[-1] + 0.5) * fs), fs)
    k = np.flatnonzero(r >= 0)
    idx = np.round(r[k] * fs).astype(int)
    np.testing.assert_allclose(grid[idx], 2 * np.pi * k, atol=2 * np.pi / (fs * 0.5))


def test_gaussian_sum_numba_equals_numpy_twin(rng):
    r, c, w, a, ch = _random_gaussians(rng, 15)
    x1 = render_dipole(r, c, w, a, ch, 6000, 500.0)
    x2 = render_dipole(r, c, w, a, ch, 6000, 500.0, backend="numpy")
    assert np.abs(x1).max() > 0.5
    np.testing.assert_allclose(x1, x2, atol=1e-6, rtol=0)


def test_cutoff_truncation_is_below_documented_bound(rng):
    r, c, w, a, ch = _random_gaussians(rng, 8)
    exact = render_dipole(r, c, w, a, ch, 4000, 500.0, cutoff=40.0, backend="numpy")
    cut = render_dipole(r, c, w, a, ch, 4000, 500.0, cutoff=5.0)
    bound = np.exp(-12.5) * np.abs(a).sum()
    assert np.abs(exact - cut).max() <= bound


def test_batch_kernel_equals_single_records(rng):
    recs = [_random_gaussians(rng, n) for n in (6, 9, 12)]
    batch = render_dipole_batch(recs, 3000, 250.0)
    twin = render_dipole_batch(recs, 3000, 250.0, backend="numpy")
    for i, rec in enumerate(recs):
        np.testing.assert_allclose(batch[i], render_dipole(*rec, 3000, 250.0), atol=1e-12)
    np.testing.assert_allclose(batch, twin, atol=1e-6)


def _time_gaussians(rng, g, duration):
    # widths from 0.4 ms (under one sample: the direct-exp path) to 80 ms
    return (rng.uniform(-0.5, duration + 0.5, g), np.exp(rng.uniform(np.log(4e-4), np.log(0.08), g)),
            rng.normal(0, 0.5, g), rng.integers(0, 3, g))


@pytest.mark.parametrize("cutoff", [5.0, 40.0])
def test_time_kernel_numba_equals_numpy_twin(rng, cutoff):
    """The four-lane exp recurrence equals exp evaluated at every sample (NumPy twin),
    including windows shorter than four samples and cutoffs past its 30-width clamp."""
    c, w, a, ch = _time_gaussians(rng, 4000, 12.0)
    for fs, n in ((500.0, 6000), (128.0, 1536)):
        x1 = render_gaussians(c, w, a, ch, n, fs, t0=-0.13, cutoff=cutoff)
        x2 = render_gaussians(c, w, a, ch, n, fs, t0=-0.13, cutoff=cutoff, backend="numpy")
        assert np.abs(x2).max() > 1.0
        np.testing.assert_allclose(x1, x2, atol=1e-9, rtol=0)


def test_time_kernel_parallel_and_batch_equal_serial(rng):
    c, w, a, ch = _time_gaussians(rng, 30000, 240.0)
    n = 120_001  # > 100k samples: chunks of the time axis rendered on separate threads
    long = render_gaussians(c, w, a, ch, n, 500.0)
    serial = np.zeros((3, n))
    _kernels.gaussian_time_kernel(0.0, 500.0, c, w, a, ch.astype(np.int64), 5.0, serial)
    # runs restart at chunk borders: rounding-level differences only
    np.testing.assert_allclose(long, serial, rtol=0, atol=1e-10 * np.abs(serial).max())
    recs = [_time_gaussians(rng, k, 10.0) for k in (50, 400, 1)]
    batch = render_gaussians_batch(recs, 5000, 500.0)
    for i, rec in enumerate(recs):
        np.testing.assert_array_equal(batch[i], render_gaussians(*rec, 5000, 500.0))
    with pytest.raises(SignalError, match="widths must be positive"):
        render_gaussians([0.1], [0.0], [1.0], [0], 100, 500.0)
    with pytest.raises(SignalError, match="amps must be finite"):
        render_gaussians([0.1], [0.01], [np.nan], [0], 100, 500.0)
    with pytest.raises(SignalError, match="centres must be finite"):
        render_gaussians_batch([([np.inf], [0.01], [1.0], [0])], 100, 500.0)
    with pytest.raises(ConfigError, match="fs must be positive"):
        render_gaussians_batch(recs, 100, -1.0)


def test_direct_form_solves_the_sameni_ode():
    """x(θ) = Σ α exp(-Δθ²/2b²) must equal a fine RK45 solution of Sameni's ODE
    dx/dt = -Σ α ω/b² Δθ exp(-Δθ²/2b²), dθ/dt = ω, with ω changing at every beat."""
    p = default_patient()
    rr = np.array([0.9, 0.7, 1.1, 0.8])
    r = np.concatenate([[0.0], np.cumsum(rr)])
    fs = 500.0
    tau, sig, amp = p.tau[0], p.sigma[0], p.amp[0]
    on = amp != 0
    # same Gaussians in every beat, angles from the beat's RR on each side of R
    cen, wid, amps = [], [], []
    for k in range(1, 4):
        side = np.where(tau >= 0, rr[k], rr[k - 1])
        cen.append(2 * np.pi * (k + tau[on] / side[on]))
        wid.append(2 * np.pi * sig[on] / side[on])
        amps.append(amp[on])
    cen, wid, amps = map(np.concatenate, (cen, wid, amps))
    t0, t1 = r[1] - 0.35, r[3] + 0.5
    n = int((t1 - t0) * fs)
    direct = render_dipole(r, cen, wid, amps, np.zeros(cen.size, int), n, fs, t0=t0, n_channels=1,
                           cutoff=40.0)[0]
    theta = phase_from_r_peaks(r, n, fs, t0=t0)

    def rhs(t, x):
        k = min(np.searchsorted(r, t, side="right") - 1, len(rr) - 1)
        om = 2 * np.pi / rr[k]
        th = np.interp(t, t0 + np.arange(n) / fs, theta)
        d = th - cen
        return [-np.sum(amps * om / wid ** 2 * d * np.exp(-0.5 * (d / wid) ** 2))]

    tt = t0 + np.arange(n) / fs
    sol = solve_ivp(rhs, (tt[0], tt[-1]), [direct[0]], t_eval=tt, rtol=1e-10, atol=1e-12,
                    max_step=1 / fs)
    np.testing.assert_allclose(sol.y[0], direct, atol=1e-5)


def test_tachogram_walk_twin(rng):
    rr_t = 0.8 + 0.05 * rng.standard_normal(400)
    a = np.empty(50)
    b = np.empty(50)
    _kernels.tachogram_walk_kernel(rr_t, 4.0, a)
    _reference.tachogram_walk_kernel(rr_t, 4.0, b)
    np.testing.assert_allclose(a, b, atol=1e-12)


def test_ecgsyn_rk4_twin():
    omega = np.full(4000, 2 * np.pi / 0.8)
    ti = np.radians([-70.0, -15.0, 0.0, 15.0, 100.0])
    ai = np.array([1.2, -5.0, 30.0, -7.5, 0.75])
    bi = np.array([0.25, 0.1, 0.1, 0.1, 0.4])
    x0 = np.array([1.0, 0.0, 0.04])
    a = np.empty(1500)
    b = np.empty(1500)
    _kernels.ecgsyn_kernel(omega, 2000.0, ti, ai, bi, x0, 0.005, 0.25, 750.0, a)
    _reference.ecgsyn_kernel(omega, 2000.0, ti, ai, bi, x0, 0.005, 0.25, 750.0, b)
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert np.ptp(a) > 0.01


def test_bad_inputs_raise():
    with pytest.raises(SignalError, match="strictly increasing"):
        phase_from_r_peaks([0.0, 0.0, 1.0], 10, 100.0)
    with pytest.raises(SignalError, match="widths"):
        render_dipole([0.0, 1.0], [0.0], [-0.1], [1.0], [0], 10, 100.0)
    with pytest.raises(SignalError, match="channel"):
        render_dipole([0.0, 1.0], [0.0], [0.1], [1.0], [3], 10, 100.0)
    with pytest.raises(ConfigError, match="backend"):
        render_dipole([0.0, 1.0], [0.0], [0.1], [1.0], [0], 10, 100.0, backend="cuda")


def test_normal_beat_screen_equals_numpy_twin():
    """The numba screen of prior draws (``prior.screen_candidates``) against its NumPy twin,
    which delineates with ``Patient.span`` / ``t_end`` / ``max_velocity`` and a vectorised
    whole-beat check: same verdict for every candidate, same intervals."""
    from cardiosim.ode.prior import _candidates, default_prior, screen_candidates

    tau, sigma, amp = _candidates(default_prior(), np.random.default_rng(0), 1500)
    c1, iv1 = screen_candidates(tau, sigma, amp)
    c2, iv2 = screen_candidates(tau, sigma, amp, backend="numpy")
    np.testing.assert_array_equal(c1, c2)
    # every rejection reason occurs (QRS, PR, QTc, slow waves, whole-beat checks) and some pass
    assert set(np.unique(c1)) >= {0, 1, 2, 3, 4, 5}
    np.testing.assert_array_equal(np.isnan(iv1), np.isnan(iv2))
    ok = ~np.isnan(iv1)
    # QRS, PR on the same 1 kHz grid: equal, but for a crossing that sits on the threshold
    # within rounding (recurrence vs exact exp: ~1e-13), which moves by one sample; QT by
    # the tangent method: within 0.1 ms
    d = np.abs(iv1[ok] - iv2[ok])
    assert d.max() <= 1e-3 + 1e-9 and np.mean(d <= 1e-4) > 0.99, (d.max(), np.mean(d <= 1e-4))
    # stopping at the first accepted candidate finds the same one
    first = int(np.flatnonzero(c1 == 0)[0])
    cf, _ = screen_candidates(tau, sigma, amp, first_only=True)
    assert np.all(cf[:first] == c1[:first]) and cf[first] == 0 and np.all(cf[first + 1:] == -1)
    with pytest.raises(ConfigError, match="share shape"):
        screen_candidates(tau[:, :2], sigma, amp)


def test_lead_screen_equals_numpy_twin():
    """The 12-lead normal-limit screen (``prior.lead_violation``: PR baseline, ST, T,
    QRS voltage, band-limited 12-lead QRS duration, lead-II P size, shape and PR) against
    its vectorised NumPy twin: same violation (exp recurrence vs exp: ~1e-12 mV) and the
    same verdict wherever it is not a tie; candidates of every kind pass and fail."""
    from cardiosim.ode.prior import (LEAD_ST_LIMITS, _lead_args, _unpacked, default_prior, lead_violation,
                                     screen_candidates)

    prior = default_prior()
    z = np.random.default_rng(5).standard_normal((1500, 9 * 11))
    tau, sigma, amp = _unpacked(prior.proposal_mean + z @ prior._proposal_sqrt_cov.T)
    codes, _ = screen_candidates(tau, sigma, amp)
    idx = np.flatnonzero(codes == 0)[:300]
    a = lead_violation(tau[idx], sigma[idx], amp[idx])
    b = lead_violation(tau[idx], sigma[idx], amp[idx], backend="numpy")
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-9)
    clear = np.abs(b) > 1e-9
    np.testing.assert_array_equal(a[clear] <= 0, b[clear] <= 0)
    assert 0.05 < np.mean(a <= 0) < 0.95
    # the per-lead ST limits: V2-V3's own (LEAD_ST_LIMITS_V2V3) decide some of these
    # candidates (held to the other leads' LEAD_ST_LIMITS they fail), the same in both
    M, st_lims, t_leads, lims, rrs, qrs_rel = _lead_args()
    narrow = st_lims.copy()
    narrow[[7, 8]] = LEAD_ST_LIMITS
    arrs = [np.ascontiguousarray(x[idx]) for x in (tau, sigma, amp)]
    an, bn = np.empty(idx.size), np.empty(idx.size)
    _kernels.lead_violation_kernel(*arrs, M, narrow, t_leads, lims, rrs, qrs_rel, an)
    _reference.lead_violation_kernel(*arrs, M, narrow, t_leads, lims, rrs, qrs_rel, bn)
    np.testing.assert_allclose(an, bn, rtol=0, atol=1e-9)
    assert np.any((a <= 0) & (an > 1e-9)) and np.all(an >= a - 1e-12)


def _draw_screen_leads_before(z, mean, sqrt_cov, tau_b, sig_b, qrs_idx, rest_idx, lims, fs, M, st_lims, t_leads,
                              llims, rrs, qrs_rel, x, out):
    """``draw_screen_leads_kernel`` as it was before the 12-lead limits moved ahead of the
    whole-beat stages (its own numba pieces, called from Python in the old order)."""
    tb, sb, ab = np.empty((3, 11)), np.empty((3, 11)), np.empty((3, 11))
    out[:, :3] = np.nan
    out[:, 3] = -1.0
    for b in range(z.shape[0]):
        _kernels._affine(z[b], mean, sqrt_cov, qrs_idx, x)
        _kernels._unpack(x, qrs_idx, tau_b, sig_b, tb, sb, ab)
        ok, q0, vq2 = _kernels._screen_qrs(tb, sb, ab, lims, fs, out[b])
        if not ok:
            continue
        _kernels._affine(z[b], mean, sqrt_cov, rest_idx, x)
        _kernels._unpack(x, rest_idx, tau_b, sig_b, tb, sb, ab)
        if _kernels._p_ok(_kernels._p_lead(tb, sb, ab, M, int(llims[5])), llims) > 0.0:
            out[b, 3] = 8.0
            continue
        if _kernels._screen_rest(tb, sb, ab, lims, fs, q0, vq2, out[b]):
            if _kernels._lead_violation_one(tb, sb, ab, M, st_lims, t_leads, llims, rrs, qrs_rel, True) <= 0.0:
                return b
            out[b, 3] = 8.0
    return -1


def test_draw_screen_leads_order_keeps_the_accepted_draw():
    """The 12-lead limits checked before the whole-beat stages: the same accepted index and
    vector as the previous order on 60 batches of proposal draws (the one-at-a-time rejection
    sampler's result), the same code for every draw not rejected by the 12-lead limits, and
    code 8 only where the previous order rejected the draw too."""
    from cardiosim.ode.model import SIGMA_BOUNDS, TAU_BOUNDS
    from cardiosim.ode.prior import _QRS_IDX, _REST_IDX, SCREEN_FS, _lead_args, _screen_limits, default_prior

    prior = default_prior()
    args = (prior.proposal_mean, prior._proposal_sqrt_cov, TAU_BOUNDS, SIGMA_BOUNDS, _QRS_IDX, _REST_IDX,
            _screen_limits(), SCREEN_FS, *_lead_args())
    rng = np.random.default_rng(11)
    found = 0
    for _ in range(60):
        z = rng.standard_normal((16, 99), dtype=np.float32).astype(np.float64)
        x1, x2 = np.zeros(99), np.zeros(99)
        o1, o2 = np.empty((16, 4)), np.empty((16, 4))
        i1 = _kernels.draw_screen_leads_kernel(z, *args, x1, o1)
        i2 = _draw_screen_leads_before(z, *args, x2, o2)
        assert i1 == i2
        if i1 >= 0:
            found += 1
            assert x1.tobytes() == x2.tobytes()
        c1, c2 = o1[:, 3], o2[:, 3]
        assert np.array_equal(c1[c1 != 8], c2[c1 != 8])
        assert np.all(c2[c1 == 8] > 0)
    assert found > 30


def test_lead_screen_st_limits_per_lead():
    """An ST of +0.12 mV at J + 60 ms passes the screen in V2 and V3 (normal there up to
    0.15 mV, LEAD_ST_LIMITS_V2V3: Rautaharju et al. 2009) and fails it in V5 (LEAD_ST_LIMITS,
    0.08 mV), in the kernel and its twin. The beat: an accepted normal patient with one
    lead's ST raised to +0.12 mV -- ST enters the screen only as ST minus the lead's
    limits, so raising it by d is lowering that lead's limits by d. The lead's ST (the
    larger of the screen's two RRs) is read from the kernel itself, with every other lead
    unchecked and this one's upper limit at -1 mV."""
    from cardiosim.ode.prior import LEAD_ST_LIMITS, LEAD_ST_LIMITS_V2V3, _lead_args, sample_patient

    M, st_lims, t_leads, lims, rrs, qrs_rel = _lead_args()
    assert tuple(st_lims[7]) == tuple(st_lims[8]) == LEAD_ST_LIMITS_V2V3 == (-0.03, 0.15)
    assert tuple(st_lims[10]) == LEAD_ST_LIMITS == (-0.03, 0.08) and np.isinf(st_lims[3]).all()  # aVR
    p = sample_patient(np.random.default_rng(0))
    beat = [np.ascontiguousarray(x[None], np.float64) for x in (p.tau, p.sigma, p.amp)]

    def violation(st, kern=_kernels):
        out = np.empty(1)
        kern.lead_violation_kernel(*beat, M, st, t_leads, lims, rrs, qrs_rel, out)
        return out[0]

    assert violation(st_lims) == 0.0
    for lead, ok in ((7, True), (8, True), (10, False)):  # V2, V3, V5
        probe = np.tile([-np.inf, np.inf], (12, 1))
        probe[lead] = (-np.inf, -1.0)
        st = violation(probe) - 1.0
        assert -0.03 <= st <= st_lims[lead, 1]  # the beat as drawn is normal there
        raised = st_lims.copy()
        raised[lead] -= 0.12 - st  # this lead's ST now +0.12 mV
        for kern in (_kernels, _reference):
            v = violation(raised, kern)
            assert v == pytest.approx(0.0 if ok else 0.12 - 0.08, abs=1e-9), (lead, kern.__name__, v)


def test_fiducials_kernel_equals_patient_methods():
    """Template fiducials (``synth._fiducials``) from one numba kernel against the twin on
    ``Patient.track / span_of / t_end``: within 1 µs (the kernel renders Gaussians to ±5
    widths by an exp recurrence), for normal and class beats."""
    from cardiosim.ode.prior import sample_patient

    rng = np.random.default_rng(2)
    for morph in ("NORM", "LBBB", "RBBB", "STE", "TINV", "LVH"):
        p = sample_patient(rng, morphology=morph)
        a, b = np.empty(7), np.empty(7)
        _kernels.fiducials_kernel(p.tau, p.sigma, p.amp, 2000.0, a)
        _reference.fiducials_kernel(p.tau, p.sigma, p.amp, 2000.0, b)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
        assert np.all(np.isfinite(a)) and a[0] < a[2] < a[3] < a[4] < a[5] < a[6]
    silent = p.replace(amp=np.where(np.arange(11) < 2, 0.0, p.amp))  # no P (AF)
    _kernels.fiducials_kernel(silent.tau, silent.sigma, silent.amp, 2000.0, a)
    assert np.isinf(a[:2]).all() and np.isfinite(a[2:]).all()
