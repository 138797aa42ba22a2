"""The planner's numba kernels (``cardiosim.ode._plan_kernels``) against their NumPy twins,
bit for bit, and the planner's output against the NumPy code it replaced."""

import numpy as np
import pytest

from cardiosim.ode import _plan_kernels as K
from cardiosim.ode import default_patient, rhythm, synthesize
from cardiosim.ode.model import NW, REPOL, ectopic_ventricular

_REPOL = np.isin(np.arange(NW), REPOL)


def _same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("seed", range(6))
def test_times_kernel_is_cumsum_and_searchsorted(seed):
    rng = np.random.default_rng(seed)
    rr = rng.uniform(0.3, 1.4, int(rng.integers(1, 60)))
    start = -1.5 - rng.uniform() * rr[0]
    for pad_end in (-5.0, 0.0, 11.5, float(start + rr.sum() + 1.0), float(start + rr[:3].sum())):
        out = np.empty(rr.shape[0] + 1)
        keep = K.times_kernel(rr, start, pad_end, out)
        want, want_keep = K.times_numpy(rr, start, pad_end)
        assert _same(out, want) and keep == want_keep


@pytest.mark.parametrize("seed", range(6))
def test_tachogram_kernel_matches_walk_twin(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(int(rng.choice([64, 256, 1024])))
    x -= x.mean()
    for scale in (0.0, 0.013, float(rng.uniform(0.001, 0.1))):
        n_beats = int(rng.integers(1, 80))
        out = np.empty(n_beats)
        lo = K.tachogram_kernel(x, scale, 0.8, 4.0, out)
        want = K.tachogram_numpy(x, scale, 0.8, 4.0, n_beats)
        assert _same(out, want) and lo == want.min()
    # beyond the series' end the last value is held
    out = np.empty(40)
    K.tachogram_kernel(np.zeros(4), 0.0, 0.9, 4.0, out)
    assert np.all(out == 0.9)


@pytest.mark.parametrize("code", ["V", "A"])
@pytest.mark.parametrize("seed", range(8))
def test_ectopic_kernels_match_the_beat_loop(code, seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 50))
    u = rng.uniform(size=n)
    p_nn, coupling = float(rng.uniform(0.5, 0.9)), float(rng.uniform(0.55, 0.8))
    rr = rng.uniform(0.6, 1.2, n)
    codes = np.full(n, K.CODE_N, np.uint32)
    K.ectopic_chain_kernel(u, p_nn, ord(code), codes)
    m = int(np.count_nonzero(codes[1:n - 1] == ord(code))) if code == "A" else 0
    reset = rng.uniform(1.0, 1.1, m)
    got_rr = rr.copy()
    K.ectopic_rr_kernel(codes, ord(code), coupling, reset, got_rr)
    want_types, want_rr = K.ectopic_numpy(u, p_nn, ord(code), coupling, reset, rr)
    assert _same(codes.view("<U1"), want_types)
    assert _same(got_rr, want_rr)


def test_per_beat_reset_draws_equal_one_vector_draw():
    """``beat_schedule`` draws PAC reset factors as one vector: the same numbers and the same
    stream position as the per-beat scalar draws of the loop it replaced."""
    a, b = np.random.default_rng(7), np.random.default_rng(7)
    assert _same(np.array([a.uniform(1.0, 1.1) for _ in range(9)]), b.uniform(1.0, 1.1, 9))
    assert a.random() == b.random()


def _table_case(rng, ectopic):
    p = default_patient()
    e = ectopic_ventricular(p, np.random.default_rng(1))[0] if ectopic else p
    nb = int(rng.integers(1, 40))
    rr = rng.uniform(0.4, 1.3, nb)
    r_times = -2.0 + np.concatenate([[0.0], np.cumsum(rr)])
    rows = np.empty((2, nb))
    inside = K.beat_inputs_kernel(r_times, nb, 1.3, 0.4, 10.0, rows)
    want_rows, want_inside = K.beat_inputs_numpy(r_times, nb, 1.3, 0.4, 10.0)
    assert _same(rows, want_rows) and inside == want_inside
    f_repol = rows[0] ** (1.0 / 3.0)
    resp = np.sin(rows[1])
    z = rng.standard_normal((nb, NW))
    normal = rng.uniform(size=nb) < (0.7 if ectopic else 1.1)
    codes = np.where(normal, K.CODE_N, K.CODE_V).astype(np.uint32)
    fid_n = rng.normal(0.0, 0.2, 7)
    fid_e = rng.normal(0.0, 0.2, 7)
    fid_e[:2] = np.inf  # an ectopic beat without P
    return (r_times, f_repol, resp, 0.05, z, 0.03, codes, p.tau, p.sigma, p.amp, e.tau, e.sigma, e.amp, _REPOL,
            fid_n, fid_e, 10.0)


@pytest.mark.parametrize("ectopic", [False, True])
@pytest.mark.parametrize("seed", range(5))
def test_beat_table_kernel_matches_numpy(ectopic, seed):
    case = _table_case(np.random.default_rng(seed), ectopic)
    got = K.beat_table_kernel(*case)
    want = K.beat_table_numpy(*case)
    for g, w in zip(got[:5], want[:5]):
        assert _same(g, w)
    assert got[5] == want[5] and got[6] == want[6] is True


def test_beat_table_kernel_flags_invalid_gaussians():
    case = list(_table_case(np.random.default_rng(0), False))
    sig = case[8].copy()
    sig[0, 4] = -0.01
    case[8] = sig
    assert K.beat_table_kernel(*case)[6] is False
    assert K.beat_table_numpy(*case)[6] is False


@pytest.mark.parametrize("seed", range(6))
def test_annotations_kernel_matches_numpy(seed):
    rng = np.random.default_rng(seed)
    fs, n = float(rng.choice([250.0, 500.0, 1000.0])), int(rng.integers(100, 6000))
    nb = int(rng.integers(0, 30))
    r_times = np.sort(rng.uniform(-2.0, n / fs + 2.0, nb + 1))
    fid = r_times[:nb, None] + rng.normal(0.0, 0.3, (nb, 7))
    fid[rng.uniform(size=fid.shape) < 0.1] = np.inf
    if nb:
        fid[0, 0] = np.nan
        fid[-1, 1] = 2.5 / fs  # a half-sample tie: rounds to even, as np.round
    got = K.annotations_kernel(r_times, nb, fid, fs, n)
    want = K.annotations_numpy(r_times, nb, fid, fs, n)
    for g, w in zip(got, want):
        assert _same(g, w)


def test_spectrum_kernel_guard():
    """The kernel is used only where it equals its twin on the check cases; its verdict
    here, and equality on other cases where it is used."""
    check = K.spectrum_cases(np.random.default_rng(20261206))
    assert (K.spectrum_form() == "kernel") == K.spectrum_matches(check)
    assert K.fast_spectrum() == (K.spectrum_matches(check) or K.spectrum_matches(check, "hybrid"))
    if K.fast_spectrum():
        for case in K.spectrum_cases(np.random.default_rng(3)):
            assert _same(K.spectrum(*case), K.spectrum_numpy(*case))


def test_rr_series_same_with_and_without_kernels(monkeypatch):
    """``rr_process`` and ``rr_tachogram`` through the kernels (spectrum, direct irfft, walk)
    equal the NumPy code (``_spectrum_amplitude``, ``np.fft.irfft``, the walk's twin)."""
    fast = [rhythm.rr_process(64.0, np.random.default_rng(s), heart_rate=70.0, heart_rate_std=2.0,
                              hf_hz=0.2 + 0.01 * s) for s in range(4)]
    tach = [rhythm.rr_tachogram(36, np.random.default_rng(s), heart_rate=75.0, breathing_rate=12.0 + s)
            for s in range(4)]
    monkeypatch.setattr(K, "fast_spectrum", lambda: False)
    monkeypatch.setattr(rhythm, "_irfft_direct", lambda: None)
    for s in range(4):
        want = rhythm.rr_process(64.0, np.random.default_rng(s), heart_rate=70.0, heart_rate_std=2.0,
                                 hf_hz=0.2 + 0.01 * s)
        assert _same(fast[s], want)
        want = rhythm.rr_tachogram(36, np.random.default_rng(s), heart_rate=75.0, breathing_rate=12.0 + s,
                                   backend="numpy")
        assert _same(tach[s], want)


@pytest.mark.parametrize("rhythm_name", ["SR", "AF", "AFL", "PVC", "PAC", "IAVB"])
def test_synthesize_plan_matches_the_numpy_planner(rhythm_name):
    """A record's Gaussians and annotations equal those of the NumPy code the kernels
    replaced (``beat_table_numpy``, ``annotations_numpy``) on the same plan."""
    from cardiosim.ode import synth

    plan = synth._plan(10.0, 500.0, np.random.default_rng(5), None, rhythm_name, "NORM", None, None, None,
                       None, 0.5, 0.03, None)
    assert plan.valid
    beats = synthesize(10.0, 500.0, np.random.default_rng(5), rhythm=rhythm_name)
    idx, s, rr = K.annotations_numpy(plan.r_times, plan.types.shape[0], plan.fid, 500.0, 5000)
    assert _same(beats.rr, rr)
    for k, row in zip(synth.ANNOTATION_KEYS, s):
        assert _same(beats.annotations[k], row)
    assert list(beats.beat_types) == list(plan.types[idx])


def test_render_of_a_checked_plan_equals_render_gaussians():
    """``synthesize`` renders a plan its kernel checked without ``render_gaussians``'
    second validation; same array, and a plan with a bad Gaussian still gets its error."""
    from cardiosim.errors import SignalError
    from cardiosim.ode import synth
    from cardiosim.ode.dipole import render_gaussians

    for rhythm_name in ("SR", "AF", "PVC"):
        plan = synth._plan(10.0, 500.0, np.random.default_rng(2), None, rhythm_name, "NORM", None, None, None,
                           None, 0.5, 0.03, None)
        want = render_gaussians(plan.centres, plan.widths, plan.amps, plan.chans, 5000, 500.0)
        assert _same(synth._render(plan, 5000, 500.0, "numba"), want)
    import dataclasses

    bad = dataclasses.replace(plan, widths=-plan.widths, valid=False)
    with pytest.raises(SignalError):
        synth._render(bad, 5000, 500.0, "numba")


@pytest.mark.parametrize("seed", range(4))
def test_flutter_kernel_matches_scipy_sawtooth(seed):
    rng = np.random.default_rng(seed)
    fs = float(rng.choice([250.0, 500.0, 1000.0]))
    vcg = rng.normal(0.0, 0.3, (3, int(rng.integers(10, 6000))))
    f0, a0 = float(rng.uniform(250, 350) / 60.0), float(rng.uniform(0.05, 0.15))
    ph = float(rng.uniform(0.0, 2 * np.pi)) - (20.0 if seed % 2 else 0.0)  # (negative phases: np.mod)
    d = rng.normal([0.1, 1.0, 0.2], 0.1)
    d /= np.linalg.norm(d)
    want = K.flutter_numpy(vcg, fs, f0, ph, a0, d)
    K.flutter_kernel(vcg, fs, f0, ph, a0, d)
    assert _same(vcg, want)
    # the twin is _atrial_signal's flutter code
    from cardiosim.ode import synth

    zero = np.zeros_like(vcg)
    assert _same(K.flutter_numpy(zero, fs, f0, ph, a0, d),
                 zero + synth._atrial_signal(("AFL", f0, a0, d, ph, None, None), vcg.shape[1], fs))


@pytest.mark.parametrize("seed", range(5))
def test_af_wave_kernel_matches_atrial_signal(seed):
    """AF's f-waves added in place by the kernel equal ``vcg + _atrial_signal(...)`` bit for
    bit, where the process's check holds (its ``sin`` is NumPy's); knot-aligned samples,
    clipped amplitudes and records shorter than a second included."""
    from cardiosim.ode import synth

    if not synth._af_kernel_matches():
        pytest.skip("the C library's sin is not NumPy's here: the NumPy code runs")
    rng = np.random.default_rng(seed)
    fs = float(rng.choice([100.0, 250.0, 500.0, 1000.0]))
    duration = float([10.0, 0.7, 4.0, 30.0, 12.5][seed])
    n = int(round(duration * fs))
    m = int(np.ceil(duration)) + 3
    d = rng.normal([-0.3, 0.4, -0.85], 0.2)
    scale = 4.0 if seed % 2 else 1.0  # (x4: 1 + 0.3 interp below 0.2, the clip)
    atrial = ("AF", float(rng.uniform(4.5, 8.0)), float(rng.uniform(0.03, 0.12)), d / np.linalg.norm(d),
              float(rng.uniform(0, 2 * np.pi)), rng.standard_normal(m) * scale, rng.standard_normal(m) * scale)
    vcg = rng.normal(0.0, 0.3, (3, n))
    want = vcg + synth._atrial_signal(atrial, n, fs)
    _, f0, a0, d, ph, fm, am = atrial
    K.af_wave_kernel(vcg, fs, f0, a0, d, ph, synth._af_knots(m), fm, am)
    assert _same(vcg, want)
    # the interpolation's edge rules (NumPy's np.interp): one segment, samples on knots and
    # past the last one, a non-finite knot value (the NaN retry from the right end)
    for xp, fp, xs in ((np.array([-1.0, 0.0]), np.array([2.0, 3.0]), [0.0, 0.5, 7.0]),
                       (np.array([-1.0, 0.0, 1.0, 2.0]), np.array([1.0, np.inf, 1.0, -2.0]),
                        [0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 2.5]),
                       (np.array([-1.0, 0.0, 1.0]), np.array([0.5, np.nan, 0.5]), [0.0, 0.1, 0.9])):
        x = np.array(xs)
        got = np.empty_like(x)
        with np.errstate(invalid="ignore"):
            K._interp_rising.py_func(x, xp, fp, got)
            assert _same(got, np.interp(x, xp, fp))


def test_af_draws_through_the_cached_factor_equal_multivariate_normal():
    from cardiosim.ode import rhythm_prior

    af = rhythm_prior.default_rhythm_prior()["af"]
    m, c = np.array(af["log_hr_cv_mean"]), np.array(af["log_hr_cv_cov"])
    factor = rhythm_prior._mvn_factor(tuple(m.tolist()), tuple(map(tuple, c.tolist())))
    assert factor is not None  # the check passes where NumPy's own code is the one written out
    a, b = np.random.default_rng(11), np.random.default_rng(11)
    for _ in range(200):
        assert _same(a.multivariate_normal(m, c), rhythm_prior._mvn_draw(b, m, factor))
    # a covariance that is not PSD keeps NumPy's own draw (and its warning)
    assert rhythm_prior._mvn_factor((0.0, 0.0), ((1.0, 2.0), (2.0, 1.0))) is None


def test_truncated_gamma_scale_pairs_gammaincc_calls():
    from scipy.special import gammaincc

    def reference(shape, mean, floor):  # the loop before the paired call
        hi = mean / shape
        if floor >= mean:
            return hi
        lo = 1e-9
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            q = gammaincc(shape, floor / mid)
            m = shape * mid * gammaincc(shape + 1, floor / mid) / q if q > 0 else floor
            if m > mean:
                hi = mid
            else:
                lo = mid
        return 0.5 * (lo + hi)

    cases = [(0.15, 0.8, 0.3), (0.3, 0.6, 0.45), (0.45, 0.5, 0.25), (0.2, 1.0, 1.2), (1.0, 0.5, 0.4999)]
    rng = np.random.default_rng(3)
    cases += [(rng.uniform(0.08, 0.5), 60.0 / rng.uniform(60, 130), rng.uniform(0.25, 0.6)) for _ in range(40)]
    for cv, mean, floor in cases:
        got = rhythm._truncated_gamma_scale(1.0 / cv ** 2, mean, floor)
        assert type(got) is float and got == reference(1.0 / cv ** 2, mean, floor)


def test_uniform_helper_is_generator_uniform():
    """``rhythm.uniform`` (``low + (high - low) * rng.random(size)``) gives
    ``Generator.uniform``'s numbers, types and stream position."""
    assert rhythm._uniform_matches()
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    for low, high, size in ((0.0, 1.0, None), (0, 2 * np.pi, None), (62.0, 95.0, None), (0.23, 0.2871, None),
                            (0.0, 2 * np.pi, 129), (1.0, 1.1, 3), (0.0, 1.0, 40)):
        x, y = a.uniform(low, high, size), rhythm.uniform(b, low, high, size)
        assert type(x) is type(y)
        assert _same(x, y)
    assert a.random() == b.random()


@pytest.mark.parametrize("rhythm_name", ["SR", "AF", "AFL", "PVC", "PAC", "IAVB"])
def test_beat_render_kernel_is_table_render_and_annotations(rhythm_name):
    """``beat_render_kernel`` (synthesize's one call) equals the beat table, the rows
    renderer and the annotations called one by one on the same plan."""
    from cardiosim.ode import _kernels, synth
    from cardiosim.ode.dipole import DEFAULT_CUTOFF

    for fs, seed in ((500.0, 3), (250.0, 4), (1000.0, 5)):
        plan = synth._plan(10.0, fs, np.random.default_rng(seed), None, rhythm_name, "NORM", None, None, None,
                           None, 0.5, 0.03, None)
        n = int(round(10.0 * fs))
        want = np.zeros(3 * n + 8)
        _kernels.gaussian_time_rows_kernel(0.0, fs, plan.centres, plan.widths, plan.amps, plan.chans,
                                           DEFAULT_CUTOFF, want, n, np.empty(0, np.uint64))
        want_ann = K.annotations_kernel(plan.r_times, plan.types.shape[0], plan.fid, fs, n)
        got = np.zeros(3 * n + 8)
        *ann, ok = K.beat_render_kernel(*plan.table_args, fs, DEFAULT_CUTOFF, got, n, _kernels.exp_table())
        assert ok is True and _same(got, want)
        for g, w in zip(ann, want_ann):
            assert _same(g, w)


def test_beat_render_kernel_renders_nothing_from_an_invalid_table():
    from cardiosim.errors import SignalError
    from cardiosim.ode import synth
    from cardiosim.ode.dipole import DEFAULT_CUTOFF

    plan = synth._plan(10.0, 500.0, np.random.default_rng(0), None, "SR", "NORM", None, None, None, None, 0.5,
                       0.03, None)
    args = list(plan.table_args)
    sig = args[8].copy()
    sig[0, 4] = -0.01
    args[8] = sig
    flat = np.zeros(3 * 5000 + 8)
    *ann, ok = K.beat_render_kernel(*args, 500.0, DEFAULT_CUTOFF, flat, 5000, np.empty(0, np.uint64))
    assert ok is False and not flat.any() and ann[0].shape == (0,)
    # through synthesize: the checked renderer's error, as before the one-call kernel
    p = default_patient()
    amp = p.amp.copy()
    amp[1, 5] = 1.7e308
    with pytest.raises(SignalError, match="amps must be finite"):
        synthesize(10.0, 500.0, np.random.default_rng(0), patient=p.replace(amp=amp), beat_jitter=0.5)


def _record_bytes(b):
    parts = [b.vcg.tobytes(), b.rr.tobytes(), b.beat_types.tobytes(), repr(b.labels).encode(),
             repr([(k, repr(v), type(v).__name__) for k, v in b.params.items()]).encode()]
    parts += [k.encode() + v.tobytes() for k, v in b.annotations.items()]
    return b"".join(parts)


def test_rng_kernels_draw_what_the_generator_draws():
    """The bit generator's draws in kernels equal ``Generator.random`` / ``standard_normal``
    and leave the stream where they leave it (the ziggurat's tail and wedges included)."""
    from cardiosim.ode import _rng_kernels as R

    assert R.draws_match()
    for seed in range(3):
        a, b = np.random.default_rng(seed), np.random.default_rng(seed)
        bg = R.bitgen_pointers(a)
        got = np.empty(200_000)
        R.fill_normal_kernel(bg, got)
        want = b.standard_normal(200_000)
        assert _same(got, want) and np.abs(want).max() > R.NOR_R  # the tail was drawn
        got = np.empty(333)
        R.fill_random_kernel(bg, got)
        assert _same(got, b.random(333)) and a.standard_normal() == b.standard_normal()
    # another bit generator: its own pointers (the cache follows the generator)
    c, d = np.random.Generator(np.random.Philox(4)), np.random.Generator(np.random.Philox(4))
    got = np.empty(50)
    R.fill_random_kernel(R.bitgen_pointers(c), got)
    assert _same(got, d.random(50))


@pytest.mark.parametrize("n", [64, 128, 256, 512, 1024, 4096])
def test_rfft_freqs_into_is_rfftfreq(n):
    out = np.empty(n // 2 + 1)
    K.rfft_freqs_into(n, 0.25, out)
    assert _same(out, np.fft.rfftfreq(n, 0.25))


@pytest.mark.parametrize("rhythm_name", ["SR", "SB", "STACH"])
def test_sinus_plan_fast_path_equals_the_general_planner(rhythm_name, monkeypatch):
    """``_plan_sinus`` (draws in kernels) gives ``_plan``'s general path's records bit for
    bit (values, params and their order, annotations) and leaves the stream where it does,
    at several durations (short records, an rfft length from the slow branch) and rates;
    with a fixed and a drawn patient."""
    from cardiosim.ode import synth

    assert synth._sinus_fast()
    patient = default_patient()
    cases = [(10.0, 500.0, patient), (3.0, 1000.0, patient), (30.0, 250.0, patient), (2.0, 360.0, None),
             (10.0, 500.0, None), (45.5, 500.0, patient)]
    fast, rngs = [], []
    for k, (dur, fs, p) in enumerate(cases):
        rng = np.random.default_rng([k, 11])
        fast.append([_record_bytes(synthesize(dur, fs, rng, rhythm=rhythm_name, patient=p)) for _ in range(3)])
        rngs.append(rng.random())
    monkeypatch.setattr(synth, "_sinus_fast", lambda: False)
    for k, (dur, fs, p) in enumerate(cases):
        rng = np.random.default_rng([k, 11])
        assert fast[k] == [_record_bytes(synthesize(dur, fs, rng, rhythm=rhythm_name, patient=p))
                           for _ in range(3)]
        assert rng.random() == rngs[k]


def test_sinus_plan_slow_fft_length_branch(monkeypatch):
    """Work arrays too small for the series (the kernel's ``n = 0``): the caller finds the
    rfft length and draws through ``sinus_spectrum_draw_kernel``; same record."""
    from cardiosim.ode import synth

    patient = default_patient()
    want = _record_bytes(synthesize(10.0, 500.0, np.random.default_rng(9), patient=patient))
    real = K.sinus_draw_kernel
    monkeypatch.setattr(K, "sinus_draw_kernel", lambda bg, lo, hi, d, w, cap, *sd: real(bg, lo, hi, d, w[:3], 0, *sd))
    assert _record_bytes(synthesize(10.0, 500.0, np.random.default_rng(9), patient=patient)) == want


@pytest.mark.parametrize("n", [1, 7, 8, 64, 100, 128, 129, 256, 512, 1000, 4096, 10_000])
def test_pairwise_sum_is_numpy_add_reduce(n):
    rng = np.random.default_rng(n)
    for _ in range(20):
        x = rng.standard_normal(n) * 10.0 ** rng.uniform(-3, 3)
        assert 0.0 + K.pairwise_sum_flat(x, 0, n) == np.add.reduce(x)


def test_series_scale_and_sin_kernels_where_checked(monkeypatch):
    """The series' centring, scale and the respiratory sine in the kernel equal the NumPy
    code where ``series_forms_match`` holds; the sinus records are the same either way."""
    from cardiosim.ode import synth

    form = K.series_forms_match()
    if not form:
        pytest.skip("neither OpenBLAS ddot form (AVX-512, Haswell) nor the C library's sin is NumPy's here: "
                    "the NumPy code runs")
    assert form in (K.DOT_AVX512, K.DOT_HASWELL)
    rng = np.random.default_rng(4)
    for n in K.SERIES_LENGTHS:
        x = rng.standard_normal(n) * 0.01
        a, b = x.copy(), x.copy()
        assert K.series_scale_kernel(a, 0.03, form) == K.series_scale_numpy(b, 0.03) and _same(a, b)
    ph = rng.uniform(-5.0, 60.0, 1000)
    got = np.empty_like(ph)
    K.sin_kernel(ph, got)
    assert _same(got, np.sin(ph))
    patient = default_patient()
    want = [_record_bytes(synthesize(d, 500.0, np.random.default_rng(6), patient=patient)) for d in (10.0, 30.0)]
    synth._sinus_forms()   # the forms found once per process, then the NumPy code forced
    monkeypatch.setattr(synth, "_SERIES_FORMS_MATCH", [0])
    assert want == [_record_bytes(synthesize(d, 500.0, np.random.default_rng(6), patient=patient))
                    for d in (10.0, 30.0)]


def test_dot_form_is_numpys_dot_at_every_length():
    """The ``np.dot(x, x)`` form the machine's check selected equals NumPy's on lengths beyond
    the series' (multiples of the block and tails, where the form covers them), magnitudes over
    twelve decades."""
    form = K.series_forms_match()
    if not form:
        pytest.skip("neither OpenBLAS ddot form (AVX-512, Haswell) is NumPy's here: the NumPy code runs")
    rng = np.random.default_rng(11)
    lengths = [32, 64, 96, 160, 4096, 8192] + ([1, 15, 16, 17, 33, 100, 1000] if form == K.DOT_HASWELL else [])
    for n in lengths:
        for _ in range(20):
            x = rng.standard_normal(n) * 10.0 ** rng.uniform(-6, 6)
            assert K._dot_self(x, form) == float(np.dot(x, x)), (form, n)


@pytest.mark.parametrize("fs", [500.0, 250.0, 1000.0])
def test_sinus_render_kernel_is_beat_render_kernel(fs):
    """The packed one-template renderer (sinus plans) equals ``beat_render_kernel`` on the
    plan's table arguments: record, annotations, their count and the beat types."""
    from cardiosim.ode import _kernels, synth
    from cardiosim.ode.dipole import DEFAULT_CUTOFF

    for seed in range(3):
        plan = synth._plan(10.0, fs, np.random.default_rng(seed), None, "SR", "NORM", default_patient(), None, None,
                           None, 0.5, 0.03, None, table=False)
        n = int(round(10.0 * fs))
        rd = plan.render
        assert rd[10] == n
        want = np.zeros(3 * n + 8)
        idx, s_want, rr_want, ok = K.beat_render_kernel(*plan.table_args, fs, DEFAULT_CUTOFF, want, n,
                                                        _kernels.exp_table())
        m = rd[9]
        assert ok and m == idx.shape[0]
        got = np.zeros(3 * n + 8)
        s, rr, bt = np.empty((7, m), np.int64), np.empty(m), np.empty(m, np.uint32)
        assert K.sinus_render_kernel(*rd[:9], fs, DEFAULT_CUTOFF, got, n, _kernels.exp_table(), s, rr, bt)
        assert _same(got, want) and _same(s, s_want) and _same(rr, rr_want)
        assert list(bt.view("<U1")) == list(plan.types[idx])


@pytest.mark.parametrize("n", [64, 256, 512, 1024, 4096])
def test_sinus_spectrum_draw_kernel_finds_the_full_scans_m(n):
    """The spectrum's draw kernel starts its search for the last bin above exp's underflow
    past both peaks; the same ``m`` and exponents as ``spectrum_u_arg_kernel`` over the
    whole grid, and the draws ``rng.random`` gives."""
    from cardiosim.ode._rng_kernels import bitgen_pointers

    rng = np.random.default_rng(n)
    for hf in [*rng.uniform(10 / 60, 20 / 60, 30), 1 / 6, 1 / 3, 0.4999]:
        a, b = np.random.default_rng(7), np.random.default_rng(7)
        nb = n // 2 + 1
        f, u, e = np.empty(nb), np.empty(nb), np.empty(2 * nb)
        m = K.sinus_spectrum_draw_kernel(bitgen_pointers(a), n, float(hf), f, u, e)
        want = np.empty(2 * nb)
        m_want = K.spectrum_u_arg_kernel(np.fft.rfftfreq(n, 0.25), 0.1, float(hf), 0.01, 0.01, want)
        assert m == m_want and _same(e[:2 * m], want[:2 * m]) and _same(u, b.random(nb))


def test_threads_with_their_own_generators_draw_their_own_streams():
    """Sinus records planned by the kernels that draw from the bit generator directly
    (``_rng_kernels.bitgen_pointers`` caches the last generator's pointers): two threads, each
    with its own generator, make the records each makes alone, in the same order."""
    import threading

    from cardiosim.ode import synthesize

    def run(seed, out):
        rng = np.random.default_rng(seed)
        for _ in range(150):
            out.append(synthesize(10.0, 250.0, rng, rhythm="SR").vcg.tobytes())

    alone = {s: [] for s in (1, 2)}
    for s in alone:
        run(s, alone[s])
    together = {s: [] for s in (1, 2)}
    threads = [threading.Thread(target=run, args=(s, together[s])) for s in together]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert together == alone


def test_ufunc_loops_are_numpys_exp_and_cube_root():
    """Where the ufunc tables were read (:func:`ufunc_loops`), NumPy's ``exp`` and
    ``power`` loops called from kernels give ``np.exp`` and ``x ** (1/3)`` bit for bit on
    other numbers and lengths than the check's; the spectrum and schedule kernels that
    call them give what the NumPy calls between the kernels give."""
    loops = K.ufunc_loops()
    if loops is None:
        pytest.skip("NumPy's ufunc tables are not read here")
    rng = np.random.default_rng(5)
    for n in (1, 2, 7, 8, 9, 15, 16, 17, 33, 170, 1000):
        x = rng.uniform(-760.0, 5.0, n)
        got = x.copy()
        K.exp_loop_kernel(loops, got)
        with np.errstate(all="ignore"):
            assert _same(got, np.exp(x))
        x = rng.uniform(0.25, 3.0, n)
        got = x.copy()
        K.cbrt_loop_kernel(loops, got, K.THIRD)
        assert _same(got, x ** (1.0 / 3.0))
    for seed in range(8):
        cap, m = 300, int(rng.integers(1, 150))
        w = rng.uniform(0.0, 1.0, 4 * cap)
        w[2 * cap:] = rng.uniform(-800.0, 0.0, 2 * cap)
        want_w = w.copy()
        v = want_w[2 * cap:2 * cap + 2 * m]
        with np.errstate(all="ignore"):
            np.exp(v, v)
        want, got = np.empty(257, np.complex128), np.empty(257, np.complex128)
        K.sinus_spectrum_kernel(want_w, cap, m, False, 0.5, want)
        K.sinus_spectrum_loop_kernel(w, cap, m, loops, 0.5, got)
        assert _same(got, want) and _same(w, want_w)


@pytest.mark.parametrize("seed", range(4))
def test_sinus_schedule_cbrt_kernel_is_the_schedule_and_numpys_power(seed):
    """:func:`sinus_schedule_cbrt_kernel` draws what :func:`sinus_schedule_kernel` draws and
    leaves ``fb[:nb] ** (1/3)`` (NumPy's) where that leaves the RRs to the next beat."""
    from cardiosim.ode._rng_kernels import bitgen_pointers

    loops = K.ufunc_loops()
    if loops is None:
        pytest.skip("NumPy's ufunc tables are not read here")
    x = np.random.default_rng(seed).standard_normal(512)
    x -= x.mean()
    outs = []
    for kernel, extra in ((K.sinus_schedule_kernel, ()), (K.sinus_schedule_cbrt_kernel, (loops, K.THIRD))):
        rng = np.random.default_rng([seed, 1])
        codes, z, fb = np.empty(40, np.uint32), np.zeros((40, NW)), np.zeros(5 * 40 + 1)
        res = kernel(bitgen_pointers(rng), x.copy(), 0.01, 0.8, 10.0, 15.0, codes, z, fb, False, 0.05, 500.0, 5000,
                     *extra)
        outs.append((res, codes, z, fb, rng.random()))
    (r0, c0, z0, fb0, u0), (r1, c1, z1, fb1, u1) = outs
    nb = r0[1]
    assert r0 == r1 and r0[0] == 0 and u0 == u1 and _same(c0, c1) and _same(z0, z1)
    assert _same(fb1[:nb], fb0[:nb] ** (1.0 / 3.0)) and _same(fb1[nb:], fb0[nb:])


def test_irfft_loop_is_numpys_irfft():
    """NumPy's irfft loop called from a kernel (:func:`ufunc_loops`) gives ``np.fft.irfft``
    bit for bit, and :func:`sinus_series_loop_kernel` the spectrum and series that
    :func:`sinus_spectrum_loop_kernel` and ``np.fft.irfft`` give."""
    loops = K.ufunc_loops()
    if loops is None:
        pytest.skip("NumPy's ufunc tables are not read here")
    rng = np.random.default_rng(9)
    for n in (64, 128, 200, 256, 512, 1024, 2048, 4096):
        spec = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
        got = np.empty(n)
        K.irfft_loop_kernel(loops, spec, np.array([np.reciprocal(n, dtype=np.float64)]), got)
        assert _same(got, np.fft.irfft(spec, n))
        cap, m = n // 2 + 1, int(rng.integers(1, n // 4))
        w = rng.uniform(0.0, 1.0, 4 * cap)
        w[2 * cap:] = rng.uniform(-800.0, 0.0, 2 * cap)
        want_w, want_spec = w.copy(), np.empty(cap, np.complex128)
        K.sinus_spectrum_loop_kernel(want_w, cap, m, loops, 0.5, want_spec)
        spec, x = np.empty(cap, np.complex128), np.empty(n)
        K.sinus_series_loop_kernel(w, cap, m, loops, 0.5, spec, np.array([1.0 / n]), x)
        assert _same(spec, want_spec) and _same(x, np.fft.irfft(want_spec, n))
