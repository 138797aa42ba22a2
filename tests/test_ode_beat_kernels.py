"""The beat template's numba kernels (``ode._beat_kernels``) against their NumPy twins,
bit for bit: ``model`` uses them only where they give NumPy's results exactly."""

from __future__ import annotations

import numpy as np

from cardiosim.ode import _beat_kernels as K
from cardiosim.ode import model as M
from cardiosim.ode.prior import sample_patient


def test_beat_kernels_equal_numpy_twins_bit_for_bit(rng):
    if not M._fast_kernels():  # neither render form matches: the NumPy code runs instead
        import pytest

        pytest.skip("no render form gives NumPy's results on this machine")
    cases = []
    for i in range(24):
        p = sample_patient(rng, morphology=["NORM", "LBBB", "RBBB", "STE", "TINV", "LVH"][i % 6])
        for waves in (M.P_WAVES, M.QRS_WAVES, M.T_WAVES, M.REPOL, tuple(range(M.NW))):
            for rr in (1.0, 0.55, 1.4):
                ts, ss = M.scaled_timing(p.tau, p.sigma, rr)
                idx = list(waves)
                t = np.arange((ts[:, idx] - 5 * ss[:, idx]).min(), (ts[:, idx] + 5 * ss[:, idx]).max(), 1 / 2000)
                cases.append((t, p.tau, p.sigma, p.amp, np.asarray(waves, np.int64), rr ** (1 / 3),
                              M._REPOL_MASK, 1 / 2000))
    # the form model uses here (the C library's exp, or NumPy's own between two kernels)
    assert K.matches_numpy(cases, render=M._render_form())
    # NumPy's exp between the kernels: the rest of the arithmetic is NumPy's on any machine
    assert K.matches_numpy(cases, render="hybrid")


def test_patient_measures_same_with_and_without_kernels(rng, monkeypatch):
    """span, peak vector, QRS axis and a whole class morphology: the kernel path (cached
    measures) gives the NumPy path's values exactly."""
    pats = [sample_patient(rng) for _ in range(6)]

    def measures(p):
        q = M.Patient(p.tau, p.sigma, p.amp)  # fresh: no cached measures
        out = [q.span(M.QRS_WAVES), q.span(M.P_WAVES), q.span(M.REPOL, rr=0.7, rel=0.02), q.t_end(),
               q.t_end(rr=0.6), q.max_velocity(M.QRS_WAVES), q.max_velocity(M.P_WAVES), q.max_velocity(M.REPOL),
               q.peak_vector(M.QRS_WAVES).tobytes(), q.peak_vector(M.T_WAVES).tobytes(), q.qrs_axis().tobytes()]
        for morph in ("LBBB", "RBBB", "STE", "LVH"):
            r, prm = M.apply_morphology(q, morph, np.random.default_rng(7))
            out += [r.tau.tobytes(), r.sigma.tobytes(), r.amp.tobytes(), sorted(prm.items())]
        return out

    fast = [measures(p) for p in pats]
    assert M._fast_kernels() in (True, False)
    monkeypatch.setattr(M, "_fast_kernels", lambda: False)
    slow = [measures(p) for p in pats]
    assert fast == slow


def test_render_exp_kernel_equals_render_kernel_bit_for_bit(rng):
    """``render_exp_kernel`` (glibc's exp inline, two passes a slot) against ``render_kernel``
    (``math.exp`` a sample) and, where NumPy's exp is the C library's, the NumPy twin: drawn
    patients of every class, every group, three RR, plus grids far past the slots (exponents
    below -512 and below the underflow edge), samples on a centre (exponent 0) and a
    NaN-free narrow slot."""
    from cardiosim.ode._kernels import exp_table

    tab = exp_table()
    if tab.shape[0] == 0:
        import pytest

        pytest.skip("the C library's exp is not glibc's algorithm here: render_exp_kernel is not used")
    cases = []
    for i in range(21):
        p = sample_patient(rng, morphology=["NORM", "LBBB", "RBBB", "STE", "STD", "TINV", "LVH"][i % 7])
        for waves in (M.P_WAVES, M.QRS_WAVES, M.REPOL, tuple(range(M.NW))):
            for rr, q in ((1.0, 0.0), (0.55, -0.04), (1.4, -0.05)):
                ts, ss = M.scaled_timing(p.tau, p.sigma, rr, q)
                idx = list(waves)
                t = np.arange((ts[:, idx] - 5 * ss[:, idx]).min(), (ts[:, idx] + 5 * ss[:, idx]).max(), 1 / 2000)
                cases.append((t, p.tau, p.sigma, p.amp, np.asarray(waves, np.int64), rr ** (1 / 3), q))
        # a long grid (exponents down past -746) and one through every slot's centre
        cases.append((np.linspace(-2.0, 2.5, 4001), p.tau, p.sigma, p.amp, M._ALL_IDX, 1.0, 0.0))
        cases.append((np.sort(p.tau.ravel()), p.tau, p.sigma, p.amp, M._ALL_IDX, 1.0, 0.0))
    tau = np.full((3, M.NW), 0.01)
    sigma = np.full((3, M.NW), 1e-4)  # narrow: most exponents far below -746
    cases.append((np.arange(-0.1, 0.1, 5e-4), tau, sigma, np.ones((3, M.NW)), M._ALL_IDX, 0.8, 0.0))
    # slots silent on some axes (+0.0 and -0.0: render_exp_kernel skips them), among them a
    # NaN sample, an infinite sample and an infinite centre (not skipped where a NaN would
    # reach the sum); against the NumPy twin too where NumPy's exp is the C library's
    silent = []
    for k in range(8):
        p = sample_patient(rng, morphology=["LBBB", "RBBB", "NORM", "TINV"][k % 4])
        amp = np.array(p.amp)
        amp[rng.random(amp.shape) < 0.5] = 0.0
        amp[rng.random(amp.shape) < 0.2] = -0.0
        tau = np.array(p.tau)
        t = np.arange(-0.3, 0.6, 1 / 2000)
        if k == 5:
            t[[3, 700]] = [np.nan, np.inf]
        if k == 6:
            tau[1, 4] = np.inf
            t[10] = np.inf
        silent.append((t, tau, p.sigma, amp, M._ALL_IDX, 0.9, -0.03))
    for t, tau, sigma, amp, idx, f, q in silent:
        got = np.full((3, t.shape[0]), np.nan)
        K.render_exp_kernel(t, tau, sigma, amp, idx, f, M._REPOL_MASK, got, q, tab)
        if M._render_form() == "kernel":
            with np.errstate(invalid="ignore", over="ignore"):
                want = K.render_numpy(t, tau, sigma, amp, idx, f, M._REPOL_MASK, q)
            assert got.tobytes() == want.tobytes()
        cases.append((t, tau, sigma, amp, idx, f, q))
    for t, tau, sigma, amp, idx, f, q in cases:
        want = np.empty((3, t.shape[0]))
        got = np.full((3, t.shape[0]), np.nan)
        K.render_kernel(t, tau, sigma, amp, idx, f, M._REPOL_MASK, want, q)
        K.render_exp_kernel(t, tau, sigma, amp, idx, f, M._REPOL_MASK, got, q, tab)
        assert got.tobytes() == want.tobytes()
    if M._render_form() == "kernel":
        checked = [(t, tau, sigma, amp, idx, f, M._REPOL_MASK, 1 / 2000, q) for t, tau, sigma, amp, idx, f, q in cases
                   if np.all(np.isfinite(t)) and np.all(np.isfinite(tau))]
        assert K.matches_numpy(checked, render="exp")
        assert M._render_exp_table() is tab


def test_tangent_end_kernel_equals_numpy_twin_bit_for_bit(rng):
    """``tangent_end_kernel`` against ``Patient.t_end``'s NumPy code on repolarisation
    tracks of drawn patients (three RR, the 0.1 % window and others: two samples, the whole
    track, windows ending before the peak, a flat and a rising one)."""
    cases = []
    for i in range(14):
        p = sample_patient(rng, morphology=["NORM", "LBBB", "RBBB", "STE", "STD", "TINV", "LVH"][i % 7])
        for rr in (1.0, 0.6, 1.3):
            t, v = p.track(M.REPOL, rr)
            i0, i1 = M.Patient.span_of(t, v, M.REPOL, 0.001)
            n = t.shape[0]
            cases += [(t, v, i0, i1), (t, v, 0, n), (t, v, i0, i0 + 2), (t, v, 0, n // 3), (t, v, n // 2, n)]
    t = np.arange(0.0, 0.1, 1 / 2000)
    cases += [(t, np.zeros((3, t.shape[0])), 0, t.shape[0]), (t, np.vstack([t, t, t]), 3, 40)]
    for t, v, i0, i1 in cases:
        v = np.ascontiguousarray(v)
        got = K.tangent_end_kernel(t, v, i0, i1, 1 / 2000)
        want = K.tangent_end_numpy(t, v, i0, i1, 1 / 2000)
        assert np.float64(got).tobytes() == np.float64(want).tobytes()


def test_span_kernel_equals_track_and_span_of(rng):
    """``span_kernel`` (grid, render, measure and threshold in one call) against
    ``Patient.track`` + ``Patient.span_of`` (their NumPy forms: ``np.arange``, ``render_numpy``,
    ``np.gradient`` / ``np.linalg.norm``, ``np.flatnonzero``) on drawn patients of every
    class, every group, three RR and pivots, two thresholds and grids, and a silent group."""
    tab = M._render_exp_table()  # (glibc's exp table, or NumPy's exp loop on AVX-512 machines)
    if tab is None:
        import pytest

        pytest.skip("span_kernel's exp sources do not give NumPy's results here")
    pats = [sample_patient(rng, morphology=["NORM", "LBBB", "RBBB", "STE", "STD", "TINV", "LVH"][i % 7])
            for i in range(14)]
    silent = M.Patient(pats[0].tau, pats[0].sigma, np.where(np.arange(M.NW) < 2, 0.0, pats[0].amp))
    for p in pats + [silent]:
        for waves in (M.P_WAVES, M.QRS_WAVES, M.T_WAVES, M.REPOL, tuple(range(M.NW))):
            qrs = waves == M.QRS_WAVES
            for rr, q in ((1.0, 0.0), (0.6, -0.045), (1.3, -0.03)):
                f = rr ** (1 / 3)
                for rel, fs in ((0.05, 2000.0), (0.02, 1000.0)):
                    rel = M.QRS_VELOCITY_REL if qrs else rel
                    st, a, b = K.span_kernel(p.tau, p.sigma, p.amp, np.asarray(waves, np.int64), f,
                                             M._REPOL_MASK, q, fs, rel, qrs, tab)
                    lo, hi, amax = K.bounds_numpy(p.tau, p.sigma, p.amp, waves, f, M._REPOL_MASK, q)
                    if amax < 1e-6:
                        assert st == 1
                        continue
                    t = np.arange(lo, hi, 1.0 / fs)
                    v = K.render_numpy(t, p.tau, p.sigma, p.amp, waves, f, M._REPOL_MASK, q)
                    m = K.speed_numpy(v, 1.0 / fs) if qrs else K.magnitude_numpy(v)
                    i0, i1 = K.first_last_numpy(m, rel)
                    assert st == 0
                    assert np.float64(a).tobytes() == t[i0].tobytes()
                    assert np.float64(b).tobytes() == t[i1].tobytes()


def test_exp_lanes_equal_math_exp_bit_for_bit():
    """The four-lane inline exp (``_exp_main_run``, glibc's algorithm as LLVM vector
    operations) against ``math.exp`` on ``_kernels.exp_table``'s check arguments (every table
    slot and its edges, the underflow edge, tiny and huge arguments, inf, nan), in every
    alignment of the lanes."""
    from cardiosim.ode import _kernels as KK

    tab = KK.exp_table()
    if tab.shape[0] == 0:
        import pytest

        pytest.skip("the C library's exp is not glibc's algorithm here")
    x = KK.exp_check_args(np.random.default_rng(4))
    want = np.empty_like(x)
    KK.math_exp_kernel(x, want)
    for shift in range(4):
        got = np.full(x.shape[0] - shift, np.nan)
        K.exp_lanes_kernel(x[shift:], tab, got)
        assert got.tobytes() == want[shift:].tobytes()


def test_peak_kernel_equals_peak_vector_numpy(rng):
    """``peak_kernel`` against ``Patient.peak_vector``'s NumPy code (``np.arange``,
    ``render_numpy``, ``np.linalg.norm``, ``np.argmax``) over the groups of drawn patients of
    every class, at two grid rates, and a grid too short for it."""
    tab = M._render_exp_table()  # (glibc's exp table, or NumPy's exp loop on AVX-512 machines)
    if tab is None:
        import pytest

        pytest.skip("peak_kernel's exp sources do not give NumPy's results here")
    for i in range(21):
        p = sample_patient(rng, morphology=["NORM", "LBBB", "RBBB", "STE", "STD", "TINV", "LVH"][i % 7])
        for waves in (M.P_WAVES, M.QRS_WAVES, M.T_WAVES, M.REPOL):
            lo, hi = M.Patient(p.tau, p.sigma, p.amp).span(waves)
            for fs in (2000.0, 1000.0):
                t = np.arange(lo, hi + 0.5 / fs, 1.0 / fs)
                v = K.render_numpy(t, p.tau, p.sigma, p.amp, waves, 1.0, M._REPOL_MASK)
                want = v[:, np.argmax(np.linalg.norm(v, axis=0))]
                got = np.full(3, np.nan)
                assert K.peak_kernel(p.tau, p.sigma, p.amp, np.asarray(waves, np.int64), M._REPOL_MASK, lo,
                                     hi + 0.5 / fs, 1.0 / fs, tab, got)
                assert got.tobytes() == np.ascontiguousarray(want).tobytes()
    got = np.full(3, np.nan)
    assert not K.peak_kernel(p.tau, p.sigma, p.amp, M._ALL_IDX, M._REPOL_MASK, 0.0, 0.0004, 1 / 2000, tab, got)
    assert not K.peak_kernel(p.tau, p.sigma, p.amp, M._ALL_IDX, M._REPOL_MASK, np.nan, np.nan, 1 / 2000, tab, got)
    assert np.isnan(got).all()


def test_tinv_shortfall_kernel_equals_numpy_twin_bit_for_bit(rng):
    """The T-inversion turn's shortfall from kept Gaussians (``slot_exps_kernel``,
    ``tinv_shortfall_kernel``) against ``_tinv_shortfall_numpy`` (``Patient.track``, ``rows @
    v``) on drawn beats of several classes, every territory pair, random turns (also silent
    and sign-flipped repolarisations and a grid start past the T), and ``slot_sum_kernel``
    against ``Patient.render``."""
    import pytest

    if not M._tinv_kernels():
        pytest.skip("the shortfall kernels do not give NumPy's results on this machine")
    pats = [sample_patient(rng, morphology=m) for m in ("NORM", "LBBB", "RBBB", "TINV", "LVH", "STE")]
    n_cmp = 0
    for p in pats:
        q1 = p.span(M.QRS_WAVES)[1]
        for terr in M.TINV_TERRITORIES:
            _, rows_all, _, lu = M._tinv_pairs(terr)
            for rows, rows_u in zip(rows_all, lu):
                for shift in (0.0, 0.1, 0.3, 5.0):
                    depth = rng.uniform(*M.TINV_DEPTH_MV)
                    short_of = M._tinv_shortfall_fast(p, q1 + shift, rows, rows_u, depth)
                    if short_of is None:  # (< 2 samples after q1 + shift: the NumPy code decides)
                        assert shift == 5.0
                        continue
                    for turn in range(4):
                        amp = np.array(p.amp)
                        if turn == 3:
                            amp[:, list(M.REPOL)] = 0.0  # silent: None as Patient.track's None
                        else:
                            amp[:, list(M.REPOL)] = rng.normal(0.0, 0.5, (3, 3)) @ amp[:, list(M.REPOL)]
                        want = M._tinv_shortfall_numpy(p, amp, q1 + shift, rows, rows_u, depth)
                        got = short_of.short_of(amp)
                        assert (got is None) == (want is None)
                        if want is not None:
                            assert np.float64(got).tobytes() == np.float64(want).tobytes()
                            n_cmp += 1
    assert n_cmp > 100
    # the weighted sum of kept Gaussians is the render itself
    p = pats[0]
    ia = M._index_array(M.REPOL)
    t = np.arange(-0.1, 0.6, 1 / 500)
    xs, g = np.empty((3, 3, t.shape[0])), np.empty((3, 3, t.shape[0]))
    K.slot_exps_kernel(t, p.tau, p.sigma, ia, M._render_exp_table(), xs, g)
    out = np.empty((3, t.shape[0]))
    K.slot_sum_kernel(xs, g, p.amp, ia, out)
    np.testing.assert_array_equal(out, K.render_numpy(t, p.tau, p.sigma, p.amp, list(M.REPOL), 1.0, M._REPOL_MASK))


def test_t_end12_pair_kernel_equals_numpy_twin_bit_for_bit(rng):
    """Two beats of one timing (a turn of the repolarisation's amplitudes) in one call
    (``t_end12_pair_kernel``) against ``_t_end12_numpy`` of each, and a silent second beat
    left to the NumPy code (status 1)."""
    import pytest

    if not (M._lead_kernels() and M._tinv_kernels()):
        pytest.skip("the 12-lead kernels do not give NumPy's results on this machine")
    n_cmp = 0
    for i in range(30):
        p = sample_patient(rng, morphology=["NORM", "TINV", "LBBB", "STE", "LVH"][i % 5])
        amp = np.array(p.amp)
        amp[:, list(M.REPOL)] = rng.normal(0.0, 0.5, (3, 3)) @ amp[:, list(M.REPOL)]
        q = M.Patient(p.tau, p.sigma, amp)
        out = np.empty(2)
        st = K.t_end12_pair_kernel(p.tau, p.sigma, p.amp, q.amp, M._index_array(M.REPOL), M._REPOL_MASK, 2000.0,
                                   M._lead_matrix_c(), M._render_exp_table(), out)
        assert st == 0
        assert (float(out[0]), float(out[1])) == (M._t_end12_numpy(p), M._t_end12_numpy(q))
        assert M._t_end12_pair(p, q) == (M._t_end12_numpy(p), M._t_end12_numpy(q))
        n_cmp += 1
    amp = np.array(p.amp)
    amp[:, list(M.REPOL)] = 0.0
    assert K.t_end12_pair_kernel(p.tau, p.sigma, p.amp, amp, M._index_array(M.REPOL), M._REPOL_MASK, 2000.0,
                                 M._lead_matrix_c(), M._render_exp_table(), np.empty(2)) == 1


def test_trough_rel_kernel_equals_numpy_twin_bit_for_bit(rng):
    """The LBBB mid-QRS dip (``trough_rel_kernel``) against ``model._trough_rel_numpy`` on
    drawn beats' velocities, random and plateaued ones, one or no maxima, flat and NaN."""
    vels = []
    for i in range(12):
        p = sample_patient(rng, morphology=["LBBB", "RBBB", "NORM"][i % 3])
        vels.append(M._trough_velocity_numpy(p))
    for n in (3, 4, 5, 10, 399):
        vels.append(rng.random(n))
        vels.append(np.round(rng.random(n) * 4) / 4)  # ties: plateaus and equal maxima
    vels += [np.zeros(399), np.linspace(0.0, 1.0, 399), np.sin(np.linspace(0, 3, 399)) ** 2 + 0.0,
             np.where(np.arange(399) == 200, np.nan, 1.0 + np.sin(np.arange(399) * 0.1))]
    for vel in vels:
        want = M._trough_rel_numpy(vel)
        got = float(K.trough_rel_kernel(np.ascontiguousarray(vel, dtype=np.float64), M.QRS_VELOCITY_REL))
        assert np.float64(got).tobytes() == np.float64(want).tobytes()


def test_tinv_turn_kernel_equals_numpy_twin_bit_for_bit(rng):
    """A whole T-inversion turn (``tinv_turn_kernel``: ``t_new``, ``_rotation``, ``rot @ repol``
    and the shortfall) against the NumPy code of ``_territorial_t_inversion`` on drawn beats,
    every territory pair, random directions and sizes (also no change: ``need = 0``, and a
    parallel turn left to the NumPy code, status 2); and ``_dot3`` against NumPy's products."""
    import pytest

    if not M._tinv_kernels():
        pytest.skip("the T-inversion kernels do not give NumPy's results on this machine")
    for _ in range(500):
        a, b = rng.standard_normal(3) * 10.0 ** rng.uniform(-4, 2), rng.standard_normal(3)
        dot = M._dot3_form()  # (whichever form this machine's OpenBLAS took)
        assert K.dot3_kernel(a, b, dot) == float(a @ b) and K.dot3_kernel(a, a, dot) == float(a.dot(a))
    n_cmp = 0
    for i in range(8):
        p = sample_patient(rng, morphology=["NORM", "LVH", "STE", "RBBB"][i % 4])
        q1 = p.span(M.QRS_WAVES)[1]
        t_pk = p.peak_vector(M.T_WAVES)
        u_pk, n_pk = M._unit(t_pk), M._norm(t_pk)
        repol = np.array(p.amp[:, M._REPOL_S])
        for terr in M.TINV_TERRITORIES:
            _, rows_all, units, lu = M._tinv_pairs(terr)
            for rows, u, rows_u in zip(rows_all, units, lu):
                depth = rng.uniform(*M.TINV_DEPTH_MV)
                fast = M._tinv_shortfall_fast(p, q1, rows, rows_u, depth)
                for need in (0.0, rng.uniform(0.0, 0.3), rng.uniform(0.3, 2.0)):
                    a_fast, a_np = np.array(p.amp), np.array(p.amp)
                    st = fast.turn(t_pk, u, need, u_pk, n_pk, repol, a_fast)
                    t_new = t_pk - need * u
                    if st == 2:  # (parallel: _rotation's own branch)
                        assert need == 0.0
                        continue
                    a_np[:, M._REPOL_S] = (M._rotation(u_pk, M._unit(t_new)) * (M._norm(t_new) / n_pk)) @ repol
                    want = M._tinv_shortfall_numpy(p, a_np, q1, rows, rows_u, depth)
                    assert a_fast.tobytes() == a_np.tobytes()
                    assert (st == 1) == (want is None)
                    assert float(fast.res[1]) == M._norm(t_new)
                    if want is not None:
                        assert np.float64(fast.res[0]).tobytes() == np.float64(want).tobytes()
                        n_cmp += 1
    assert n_cmp > 100
