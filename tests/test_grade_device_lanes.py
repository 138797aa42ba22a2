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
