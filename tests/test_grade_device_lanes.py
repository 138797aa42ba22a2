"""The device and artefact-grade kernels that filter rows side by side (time-major tiles, the
rows in the innermost loop) agree bit for bit with their twins and with the row-by-row kernels
they replaced; ``apply_device(arrays=False)`` is ``apply_device`` without the per-sample arrays."""

from __future__ import annotations

import numpy as np
import pytest

from cardiosim.device import apply_device, load_device
from cardiosim.device._kernels import LANE_CHUNK, filter_adc_lanes_kernel, filter_adc_out_ref
from cardiosim.device.apply import _NO_ROWS, _analog_design
from cardiosim.errors import SignalError


def _adc_args(prof, fs=500.0):
    sos, zi = _analog_design(prof, fs)
    half = 2 ** (prof.adc_bits - 1)
    return (sos, zi, float(prof.gain), 2.0 * prof.adc_range_mv / 2 ** prof.adc_bits, float(-half), float(half - 1))


def _leads(rng, rows, n):
    x = np.cumsum(rng.standard_normal((rows, n)), axis=1) * 0.3 + 5 * rng.standard_normal((rows, 1))
    if n > 40:
        x[-1, 10:30] = 1e4                     # saturates high
        x[0, 20:25] = -1e4                     # and low
    return x


@pytest.mark.parametrize("name", ["shirt12_500hz", "chest_strap_500hz", "patch_128hz"])
@pytest.mark.parametrize("rows,n,n_codes", [(24, 5000, 12), (1, 2, 1), (3, LANE_CHUNK, 3), (5, LANE_CHUNK + 1, 2),
                                            (9, 3 * LANE_CHUNK - 1, 0), (13, 700, 13)])
def test_filter_adc_lanes_kernel_equals_the_twin(name, rows, n, n_codes):
    """Recording, saturation counts and (for the first ``n_codes`` rows) codes, flags and raw
    output equal SciPy's sosfilt + the quantiser, across tile boundaries, for two- and
    three-section cascades (a notch), with saturation both ways."""
    prof = load_device(name)
    args = _adc_args(prof)
    x = _leads(np.random.default_rng(rows * 7 + n), rows, n)
    codes, sat = np.full((n_codes, n), 7, np.int64), np.zeros((n_codes, n), bool)
    raw, rec = np.full((n_codes, n), np.nan, np.float32), np.full((rows, n), np.nan, np.float32)
    n_sat = np.full(rows, -1, np.int64)
    assert filter_adc_lanes_kernel(x, *args, rec, n_sat, codes, sat, raw) == 0
    want_codes, want_sat, want_rec, want_raw = filter_adc_out_ref(x, *args)
    assert rec.tobytes() == want_rec.tobytes()
    np.testing.assert_array_equal(n_sat, want_sat.sum(axis=1))
    assert codes.tobytes() == want_codes[:n_codes].tobytes()
    assert sat.tobytes() == want_sat[:n_codes].tobytes()
    assert raw.tobytes() == want_raw[:n_codes].tobytes()
    if n > 40:
        assert n_sat[0] > 0 and n_sat[-1] > 0


def test_filter_adc_lanes_kernel_zero_code_is_positive_zero():
    """A sample quantised to code 0 from a negative value (rint gives -0.0) records +0.0, as
    ``code * lsb / gain`` of the int64 code 0 does."""
    prof = load_device("shirt12_500hz")
    args = _adc_args(prof)
    x = np.zeros((2, 300))
    x[:, 150:] = -1e-9                          # tiny: filtered, times gain, far below one step
    rec, n_sat = np.empty((2, 300), np.float32), np.empty(2, np.int64)
    codes, sat, raw = np.empty((1, 300), np.int64), np.empty((1, 300), bool), np.empty((1, 300), np.float32)
    filter_adc_lanes_kernel(x, *args, rec, n_sat, codes, sat, raw)
    assert not np.signbit(rec).any() and not np.signbit(raw).any()
    assert rec.tobytes() == filter_adc_out_ref(x, *args)[2].tobytes()


@pytest.mark.parametrize("name", ["shirt12_500hz", "chest_strap_500hz"])
@pytest.mark.parametrize("where", [(0, 0), (3, 777), (5, 999), (2, 64)])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_filter_adc_lanes_kernel_counts_non_finite_rows(name, where, value):
    """A non-finite sample anywhere (first, last, at a tile edge) leaves its row's filter state
    non-finite, so the kernel reports it without a pass of its own."""
    prof = load_device(name)
    x = _leads(np.random.default_rng(1), 6, 1000)
    x[where] = value
    rec, n_sat = np.empty((6, 1000), np.float32), np.empty(6, np.int64)
    assert filter_adc_lanes_kernel(x, *_adc_args(prof), rec, n_sat, *_NO_ROWS) == 1


@pytest.mark.parametrize("lead,sample", [(0, 0), (11, 1999), (4, LANE_CHUNK)])
def test_apply_device_names_the_non_finite_sample_found_by_the_kernel(lead, sample):
    prof = load_device("shirt12_500hz")
    base = np.zeros((24, 2000))
    x, clean = base[:12], base[12:]
    x[lead, sample] = np.inf
    with pytest.raises(SignalError, match=f"lead {lead}, sample {sample}"):
        apply_device(prof, x, 500.0, clean=clean, arrays=False)
    x[lead, sample] = 0.0
    clean[lead, sample] = np.nan
    with pytest.raises(SignalError, match=f"clean leads have a non-finite sample at lead {lead}, sample {sample}"):
        apply_device(prof, x, 500.0, clean=clean)


def test_halves_twin():
    """The two halves of one array are recognised (no copy before the filter), anything else not."""
    from cardiosim.device._kernels import KERNELS

    kern, ref = KERNELS["halves"]
    base = np.zeros((24, 100))
    other = np.zeros((24, 100))
    for x, clean in ((base[:12], base[12:]), (base[12:], base[:12]), (base[:12], other[12:]),
                     (base[1:13], base[13:]), (base[:12, :50], base[12:, :50])):
        assert kern(base, x, clean) == ref(base, x, clean)
    assert kern(base, base[:12], base[12:]) and not kern(base, base[12:], base[:12])


def _info_scalars(info):
    return [(k, v) for k, v in info.items() if isinstance(v, (int, float, str, bool))]


@pytest.mark.parametrize("name", ["shirt12_500hz", "chest_strap_500hz", "patch_128hz", "mobile12_500hz",
                                  "holter3_200hz"])
@pytest.mark.parametrize("fail", [False, True])
def test_apply_device_without_arrays_is_the_same_recording(name, fail):
    """``arrays=False`` (the simulation's call) gives the same recording, clean twin and scalars,
    in the same order, as the full call; only the per-sample arrays are left out."""
    from cardiosim.device import FailureConfig

    prof = load_device(name)
    rng = np.random.default_rng(3)
    n_leads = len(prof.make_montage().leads)
    base = np.empty((2 * n_leads, 3000))
    base[:n_leads] = _leads(rng, n_leads, 3000) * 1e-3
    base[n_leads:] = base[:n_leads] * 0.5
    x, clean = base[:n_leads], base[n_leads:]
    failure = None
    if fail:
        cfg = FailureConfig(ground_off=0.0, electrode_off=0.3, channel_flat=0.3)
        montage, seed = prof.make_montage(), 9
        while failure is None or not failure.any:
            failure = cfg.draw(np.random.default_rng(seed), montage.electrodes, prof.measured_leads or montage.leads)
            seed += 1
    rec_a, info_a = apply_device(prof, x, 500.0, clean=clean, failure=failure)
    rec_b, info_b = apply_device(prof, x, 500.0, clean=clean, failure=failure, arrays=False)
    assert rec_a.tobytes() == rec_b.tobytes()
    assert info_a["clean"].tobytes() == info_b["clean"].tobytes()
    assert _info_scalars(info_a) == _info_scalars(info_b)
    assert not {"raw", "codes", "saturated", "saturated_fraction"} & set(info_b)
    assert info_a["n_saturated"] == int(info_a["saturated"].sum())
    np.testing.assert_array_equal(info_a["saturated_fraction"], info_a["saturated"].mean(axis=1))


def _old_grades(sos, zi, rec, cl, padlen, n_seg, seg, thr):
    """The two kernels the fused one replaced: band-pass back to rows, then the statistics."""
    from cardiosim.noise._kernels import artefact_ratio_kernel, sosfiltfilt_diff_kernel

    n_l, n = rec.shape
    filt, ext = np.empty((2 * n_l, n)), np.empty((n + 2 * padlen, 2 * n_l))
    sosfiltfilt_diff_kernel(sos, zi, rec, cl, padlen, filt, ext)
    ratio, g = np.empty(n_seg), np.empty(n_seg, np.int8)
    return ratio, g, artefact_ratio_kernel(filt, n_l, n_seg, seg, thr, ratio, g)


def _thr():
    from cardiosim.noise.textile import load_fit

    return np.asarray(load_fit()["grading_rule"]["thresholds_noise_to_qrs"], dtype=np.float64)


@pytest.mark.parametrize("seed", range(4))
def test_artefact_grades_kernel_equals_the_row_kernels(seed):
    """The band-pass and statistics in one kernel, read from the time-major buffer, equal the
    row-by-row kernels bit for bit (and the SciPy/NumPy twin for the two-section band-pass
    of the grades): float32 and float64 leads, odd and even numbers of leads,
    segments of 1-1,300 samples (pairwise sums of one leaf and of many), silent leads, ties,
    two- and four-section band-passes, a scratch buffer holding garbage."""
    from scipy import signal

    from cardiosim.noise._kernels import KERNELS, sosfiltfilt_padlen

    kern, ref = KERNELS["artefact_grades"]
    rng = np.random.default_rng(seed)
    thr0 = _thr()
    for trial in range(40):
        n_l, seg, n_seg = int(rng.integers(1, 14)), int(rng.integers(1, 1300)), int(rng.integers(1, 6))
        fs = float(rng.choice([128.0, 250.0, 500.0]))
        order = int(rng.choice([2, 2, 4]))
        sos = signal.butter(order, (1.0, 40.0), "bandpass", fs=fs, output="sos")
        zi, padlen = signal.sosfilt_zi(sos), sosfiltfilt_padlen(sos)
        n = max(n_seg * seg + int(rng.integers(0, 60)), padlen + 2)
        dtype = np.float32 if trial % 2 else np.float64
        cl = (np.cumsum(rng.standard_normal((n_l, n)), axis=1) * 10 ** rng.uniform(-3, 1)).astype(dtype)
        rec = (cl + rng.standard_normal((n_l, n)) * 10 ** rng.uniform(-4, 0)).astype(dtype)
        if trial % 5 == 0:
            cl[int(rng.integers(0, n_l))] = 0.0
        if trial % 7 == 0:
            rec, cl = np.round(rec, 1), np.round(cl, 1)
        thr = thr0 if trial % 3 else np.sort(rng.uniform(0.0, 1.0, 3))
        ext = rng.standard_normal((n + 2 * padlen, 2 * n_l))
        ratio, g = np.full(n_seg, np.nan), np.zeros(n_seg, np.int8)
        got = kern(sos, zi, rec, cl, padlen, ext, n_seg, seg, thr, ratio, g)
        want_ratio, want_g, want = _old_grades(sos, zi, rec, cl, padlen, n_seg, seg, thr)
        assert got == want and ratio.tobytes() == want_ratio.tobytes() and g.tobytes() == want_g.tobytes()
        if order == 2:     # the measurement band-pass: scipy's sosfiltfilt and NumPy's statistics, bit for bit
            twin_ratio, twin_g, twin = ref(sos, rec, cl, n_seg, seg, thr)
            assert got == twin and ratio.tobytes() == twin_ratio.tobytes() and g.tobytes() == twin_g.tobytes()


@pytest.mark.parametrize("seed", range(3))
def test_artefact_ratio_lanes_kernel_equals_the_row_kernel(seed):
    """The statistics read from the time-major buffer equal those of its rows, bit for bit --
    also with signed zeros in a clean lead, overflowing squares and non-finite values (the
    comparisons' path, which passes over NaN as the row kernel does); and the NumPy twin on
    finite values."""
    from cardiosim.noise._kernels import KERNELS, artefact_ratio_kernel

    kern, ref = KERNELS["artefact_ratio_lanes"]
    thr = _thr()
    rng = np.random.default_rng(seed)
    for trial in range(300):
        n_l, seg, n_seg, t0 = (int(rng.integers(1, 14)), int(rng.integers(1, 700)), int(rng.integers(1, 7)),
                               int(rng.integers(0, 20)))
        ext = rng.standard_normal((t0 + n_seg * seg + int(rng.integers(0, 40)), 2 * n_l)) * 10 ** rng.uniform(-3, 1)
        ext[:, :n_l] *= 10 ** rng.uniform(-3, 1)
        kind = trial % 8
        if kind == 0:
            ext[:, n_l + int(rng.integers(0, n_l))] = 0.0
        elif kind == 1:
            ext = np.round(ext, 1)
        elif kind == 2:
            ext[:, n_l + int(rng.integers(0, n_l))] = np.where(rng.random(ext.shape[0]) < 0.5, -0.0, 0.0)
        elif kind in (3, 4):
            for _ in range(int(rng.integers(1, 5))):
                ext[int(rng.integers(0, ext.shape[0])), int(rng.integers(0, 2 * n_l))] = \
                    rng.choice([np.nan, np.inf, -np.inf])
        elif kind == 5:
            ext *= 1e160
        ratio, g = np.empty(n_seg), np.empty(n_seg, np.int8)
        got = kern(ext, t0, n_l, n_seg, seg, thr, ratio, g)
        want_ratio, want_g = np.empty(n_seg), np.empty(n_seg, np.int8)
        with np.errstate(all="ignore"):
            want = artefact_ratio_kernel(np.ascontiguousarray(ext[t0:].T), n_l, n_seg, seg, thr, want_ratio, want_g)
        assert got == want and ratio.tobytes() == want_ratio.tobytes() and g.tobytes() == want_g.tobytes()
        if kind in (0, 1, 6, 7):
            twin_ratio, twin_g, twin = ref(ext, t0, n_l, n_seg, seg, thr)
            assert got == twin and ratio.tobytes() == twin_ratio.tobytes() and g.tobytes() == twin_g.tobytes()


def test_artefact_grades_of_a_device_recording_are_the_row_kernels():
    """artefact_grades on what the device records (float32 halves of one array, as the
    simulation passes them) gives the row kernels' grades and ratios."""
    from cardiosim.noise.textile import _band_filtfilt, artefact_grades, grading_thresholds

    prof = load_device("shirt12_500hz")
    rng = np.random.default_rng(2)
    base = np.empty((24, 5000))
    base[12:] = np.cumsum(rng.standard_normal((12, 5000)), axis=1) * 0.01
    base[:12] = base[12:] + rng.standard_normal((12, 5000)) * 0.05
    recorded, info = apply_device(prof, base[:12], 500.0, clean=base[12:], arrays=False)
    clean = info["clean"]
    assert recorded.base is clean.base
    g, record_grade, ratio = artefact_grades(recorded, clean, 500.0, activity="walk", electrode="textile")
    sos, zi, padlen = _band_filtfilt(500.0)
    thr = grading_thresholds("walk", "textile")
    want_ratio, want_g, want = _old_grades(sos, zi, recorded, clean, padlen, 5, 1000, thr)
    assert record_grade == want and g.tobytes() == want_g.tobytes() and ratio.tobytes() == want_ratio.tobytes()


def test_device_filter_overflow_on_finite_input_is_an_error():
    """Finite input so large that the band-pass overflows is refused by name, not recorded as NaN."""
    x = np.zeros((12, 1000))
    x[3, 10] = 1e308
    with pytest.raises(SignalError, match="overflowed on finite input"):
        apply_device("shirt12_500hz", x, 500.0)
    x[3, 10] = np.nan
    with pytest.raises(SignalError, match="non-finite sample at lead 3, sample 10"):
        apply_device("shirt12_500hz", x, 500.0)


@pytest.mark.parametrize("name", ["shirt12_500hz", "chest_strap_500hz", "patch_128hz"])
@pytest.mark.parametrize("n_l,n,lane0", [(12, 5000, 15), (1, 2, 0), (3, LANE_CHUNK, 7), (5, LANE_CHUNK + 1, 1),
                                         (6, 3 * LANE_CHUNK - 1, 0)])
def test_filter_adc_grade_lanes_kernel_writes_the_grade_rows(name, n_l, n, lane0):
    """The grade lanes the device kernel writes from its tiles are the rows ``[rec - cl; cl]``
    of its own recording, time-major (the float32 difference as NumPy forms it), at row
    ``lane0`` on; rows outside are left alone, and every other output is the lane-free kernel's."""
    from cardiosim.device._kernels import filter_adc_grade_lanes_kernel

    prof = load_device(name)
    args = _adc_args(prof)
    x = _leads(np.random.default_rng(n_l * 11 + n), 2 * n_l, n)
    x[n_l:] = x[:n_l] * 0.5 + 0.01 * x[n_l:]
    x[n_l] = x[0]                                              # a noise-free lead: difference 0
    rec, n_sat = np.empty((2 * n_l, n), np.float32), np.empty(2 * n_l, np.int64)
    lanes = np.full((lane0 + n + 3, 2 * n_l), 7.5)
    assert filter_adc_grade_lanes_kernel(x, *args, rec, n_sat, *_NO_ROWS, lanes, lane0) == 0
    want_rec, want_sat = np.empty_like(rec), np.empty_like(n_sat)
    assert filter_adc_lanes_kernel(x, *args, want_rec, want_sat, *_NO_ROWS) == 0
    assert rec.tobytes() == want_rec.tobytes() and n_sat.tobytes() == want_sat.tobytes()
    want = np.concatenate([np.subtract(rec[:n_l], rec[n_l:]), rec[n_l:]]).T.astype(np.float64)
    assert lanes[lane0:lane0 + n].tobytes() == np.ascontiguousarray(want).tobytes()
    assert (lanes[:lane0] == 7.5).all() and (lanes[lane0 + n:] == 7.5).all()


def test_artefact_grades_from_the_device_lanes_are_those_from_the_rows():
    """``apply_device(grade_lanes=...)`` fills the buffer ``artefact_grades(lanes=...)`` reads, and
    the grades and ratios are those from the recorded rows, bit for bit; with a failure, a
    wrong shape or no clean twin the buffer is not filled (and not reported)."""
    from cardiosim.device import FrontEndFailure
    from cardiosim.noise.textile import artefact_grades, grade_lanes_shape

    prof = load_device("shirt12_500hz")
    for seed in range(3):
        rng = np.random.default_rng(seed)
        base = np.empty((24, 5000))
        base[12:] = np.cumsum(rng.standard_normal((12, 5000)), axis=1) * 0.01
        base[:12] = base[12:] + rng.standard_normal((12, 5000)) * 10 ** rng.uniform(-3, 0)
        if seed == 1:
            base[12 + 4] = 0.0                                   # a silent clean lead
        shape, padlen = grade_lanes_shape(12, 5000, 500.0)
        buf = rng.standard_normal(shape)
        recorded, info = apply_device(prof, base[:12], 500.0, clean=base[12:], arrays=False,
                                      grade_lanes=buf[padlen:padlen + 5000])
        assert info["grade_lanes"] is not None
        want_rec, want_info = apply_device(prof, base[:12], 500.0, clean=base[12:], arrays=False)
        assert recorded.tobytes() == want_rec.tobytes() and info["clean"].tobytes() == want_info["clean"].tobytes()
        for act in (None, "walk"):
            got = artefact_grades(recorded, info["clean"], 500.0, activity=act, lanes=buf)
            want = artefact_grades(recorded, info["clean"], 500.0, activity=act)
            assert got[1] == want[1] and got[0].tobytes() == want[0].tobytes() and got[2].tobytes() == want[2].tobytes()
            buf[padlen:padlen + 5000] = np.concatenate([np.subtract(recorded, info["clean"]), info["clean"]]).T
    x = np.cumsum(np.random.default_rng(9).standard_normal((24, 2000)), axis=1) * 0.01
    buf = np.full((2000, 24), 3.0)
    failure = FrontEndFailure(ground_off=True)
    for kw in ({"failure": failure}, {"clean": None}):
        _, info = apply_device(prof, x[:12], 500.0, **{"clean": x[12:], **kw}, grade_lanes=buf)
        assert "grade_lanes" not in info and (buf == 3.0).all()
    _, info = apply_device(prof, x[:12], 500.0, clean=x[12:], grade_lanes=buf[:1999])
    assert "grade_lanes" not in info
    with pytest.raises(SignalError, match="lanes must be"):
        artefact_grades(x[:12], x[12:], 500.0, lanes=np.zeros((3, 3)))
