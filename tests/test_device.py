"""Device profiles and apply_device: rates, gain/magnification, anti-aliasing, ADC."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from cardiosim.device import DeviceProfile, apply_device, device_names, load_device
from cardiosim.errors import ConfigError, DataFormatError, SamplingRateError, SignalError
from cardiosim.leads import make_montage


def _tone(f0, fs, dur=10.0, amp=1.0):
    t = np.arange(int(dur * fs)) / fs
    return amp * np.sin(2 * np.pi * f0 * t)[None, :]


def test_shipped_profiles():
    assert {"shirt12_500hz", "patch_128hz", "shirt3_250hz"} <= set(device_names())
    p = load_device("patch_128hz")
    assert (p.fs, p.montage, p.gain) == (128.0, "patch", 100.0)
    assert load_device("shirt12_500hz").montage == "standard12"
    s3 = load_device("shirt3_250hz")
    assert (s3.fs, s3.montage) == (250.0, "limb3")
    assert make_montage(s3.montage).leads == ("I", "II", "III")


@pytest.mark.parametrize("fs_in", [500.0, 360.0, 1000.0])
def test_patch_rate_and_gain(fs_in):
    p = load_device("patch_128hz")
    x = _tone(10.0, fs_in, amp=1.0)
    y, info = apply_device(p, x, fs_in)
    assert info["fs"] == 128.0
    assert y.dtype == np.float32
    assert y.shape == (1, int(np.ceil(x.shape[1] * 128 / fs_in)))
    # expected passband gain at 10 Hz from the analog Butterworth prototypes
    w = 2 * np.pi * 10.0
    _, hh = signal.freqs(*signal.butter(2, 2 * np.pi * 0.5, "highpass", analog=True), worN=[w])
    _, hl = signal.freqs(*signal.butter(2, 2 * np.pi * 40.0, "lowpass", analog=True), worN=[w])
    expected = abs(hh[0] * hl[0])
    steady = y[0, 3 * 128:-128]
    amp = np.sqrt(2) * steady.std()
    assert amp == pytest.approx(expected, rel=0.01)
    # magnification convention: raw output / magnification = recorded mV
    np.testing.assert_allclose(info["raw"] / p.gain, y, rtol=1e-6)
    assert np.abs(info["raw"]).max() == pytest.approx(100.0 * np.abs(y).max(), rel=1e-5)
    assert info["n_saturated"] == 0


def test_patch_no_aliasing_above_nyquist():
    """A 90 Hz tone (above 64 Hz) must not fold to 128 - 90 = 38 Hz."""
    p = load_device("patch_128hz")
    fs_in = 512.0
    x = _tone(90.0, fs_in, dur=20.0, amp=1.0)
    y, _ = apply_device(p, x, fs_in)
    f, pxx = signal.periodogram(y[0, 256:], 128.0, scaling="spectrum")
    alias = np.sqrt(2 * pxx[np.argmin(np.abs(f - 38.0))])
    # naive decimation (no anti-aliasing) would put the whole 1 mV tone at 38 Hz
    fn, pn = signal.periodogram(x[0, ::4], 128.0, scaling="spectrum")
    naive = np.sqrt(2 * pn[np.argmin(np.abs(fn - 38.0))])
    assert naive > 0.9
    assert alias < 1e-3, alias          # < -60 dB
    assert np.sqrt(2) * y[0, 256:].std() < 2e-3


def test_patch_saturates_at_adc_range():
    p = load_device("patch_128hz")
    assert p.input_range_mv == pytest.approx(10.0)
    x = _tone(10.0, 512.0, amp=20.0)     # twice the +-10 mV input range
    y, info = apply_device(p, x, 512.0)
    assert info["n_saturated"] > 0
    lsb = p.lsb_mv
    assert y.max() == pytest.approx(10.0 - lsb, abs=1e-4)
    assert y.min() == pytest.approx(-10.0, abs=1e-4)
    # flagged exactly where the filtered signal crosses the range
    assert np.all(np.abs(y[info["saturated"]]) >= 10.0 - 2 * lsb)
    assert 0 < info["saturated_fraction"][0] < 1


def test_quantisation_step_and_error():
    p = load_device("shirt3_250hz")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5000)) * 2.0
    y, info = apply_device(p, x, 500.0)
    k = y.astype(np.float64) / p.lsb_mv
    np.testing.assert_allclose(k, np.round(k), atol=1e-3)
    # against the same chain without an ADC: error at most half a step
    from cardiosim.device import analog_filter
    ref = signal.resample_poly(analog_filter(p, x, 500.0), 1, 2, axis=-1)
    assert np.max(np.abs(y - ref)) <= 0.5 * p.lsb_mv * 1.001 + 1e-6


def test_shirt12_einthoven_after_device(rng):
    p = load_device("shirt12_500hz")
    m = make_montage(p.montage)
    phi = rng.standard_normal((9, 5000)).cumsum(axis=1) * 0.01
    y, info = apply_device(p, m.apply(phi), 500.0)
    assert y.shape == (12, 5000)
    assert np.max(np.abs(y[1] - y[0] - y[2])) <= 2 * p.lsb_mv


def test_profile_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown device"):
        load_device("holter_1khz")
    bad = tmp_path / "x.toml"
    bad.write_text((load_device.__globals__["PROFILE_DIR"] / "patch_128hz.toml").read_text() + "\nbits = 3\n")
    with pytest.raises(ConfigError, match="bits"):
        load_device(bad)
    bad.write_text("name = [")
    with pytest.raises(DataFormatError):
        load_device(bad)
    with pytest.raises(DataFormatError):
        load_device(tmp_path / "missing.toml")
    good = dict(load_device("patch_128hz").to_dict())
    with pytest.raises(ConfigError, match="band_hz"):
        DeviceProfile.from_dict({**good, "band_hz": [0.5, 70.0]})
    with pytest.raises(ConfigError, match="montage"):
        DeviceProfile.from_dict({**good, "montage": "holter"})
    p = load_device("patch_128hz")
    with pytest.raises(SignalError):
        apply_device(p, np.zeros((2, 100)), 500.0)
    with pytest.raises(SignalError):
        apply_device(p, np.full((1, 100), np.nan), 500.0)
    with pytest.raises(SamplingRateError):
        apply_device(p, np.zeros((1, 100)), 64.0)


def test_profile_toml_round_trip():
    import tomllib
    from cardiosim.config import dumps_toml
    for name in device_names():
        p = load_device(name)
        assert DeviceProfile.from_dict(tomllib.loads(dumps_toml(p.to_dict()))) == p


def test_chest_strap_and_handheld_profiles():
    """The single-lead devices of issue 14: a 500-Hz chest strap with the mains notch, and a
    handheld lead I (LA - RA from the two hands) at 300 Hz with a 0.5-40 Hz band."""
    strap, hand = load_device("chest_strap_500hz"), load_device("handheld_300hz")
    assert (strap.fs, strap.montage, strap.layout, strap.adc_bits, strap.notch) == (500.0, "patch", "chest_strap", 12, True)
    assert (hand.fs, tuple(hand.band_hz), make_montage(hand.montage).leads) == (300.0, (0.5, 40.0), ("I",))
    np.testing.assert_array_equal(make_montage(hand.montage).matrix, [[-1.0, 1.0]])   # LA - RA
    fs_in = 1500.0
    for f0 in (10.0, 0.1, 120.0):
        y, info = apply_device(hand, _tone(f0, fs_in, dur=20.0, amp=1.0), fs_in)
        assert info["fs"] == 300.0 and y.shape[1] == 6000
        amp = np.sqrt(2) * y[0, 3000:].std()
        # the analog Butterworth prototypes' gain at f0 (0.5 Hz high-pass, 40 Hz low-pass)
        w = 2 * np.pi * f0
        _, hh = signal.freqs(*signal.butter(2, 2 * np.pi * 0.5, "highpass", analog=True), worN=[w])
        _, hl = signal.freqs(*signal.butter(2, 2 * np.pi * 40.0, "lowpass", analog=True), worN=[w])
        assert amp == pytest.approx(abs(hh[0] * hl[0]), abs=0.02), (f0, amp)
    y, _ = apply_device(strap, _tone(50.0, 5000.0, dur=10.0, amp=1.0), 5000.0)
    assert np.sqrt(2) * y[0, 2500:].std() < 0.05            # mains removed by the notch and the 40 Hz low-pass


@pytest.mark.parametrize("name, fs_in", [("shirt12_500hz", 500.0), ("patch_128hz", 500.0), ("shirt3_250hz", 1000.0),
                                             ("mobile12_500hz", 500.0)])
def test_clean_twin_in_one_call_equals_a_second_call(name, fs_in):
    """``clean=`` records the twin on the stacked rows: bit for bit a separate call, without the failure."""
    from cardiosim.device import FrontEndFailure

    prof = load_device(name)
    rng = np.random.default_rng(11)
    n = len(prof.make_montage().leads)
    clean = np.cumsum(rng.standard_normal((n, 3000)), axis=1) * 0.01
    noisy = clean + 0.05 * rng.standard_normal(clean.shape)
    electrode = prof.make_montage().electrodes[0]
    for failure in (None, FrontEndFailure(electrodes_off=(electrode,))):
        rec, info = apply_device(prof, noisy, fs_in, failure=failure, clean=clean)
        alone, alone_info = apply_device(prof, noisy, fs_in, failure=failure)
        np.testing.assert_array_equal(rec, alone)
        np.testing.assert_array_equal(info["codes"], alone_info["codes"])
        np.testing.assert_array_equal(info["clean"], apply_device(prof, clean, fs_in)[0])
    with pytest.raises(SignalError, match="clean leads"):
        apply_device(prof, noisy, fs_in, clean=clean[:, :-1])


@pytest.mark.parametrize("name", ["shirt12_500hz", "patch_128hz", "chest_strap_500hz"])
def test_filter_adc_kernel_matches_its_scipy_twin(name):
    """The fused band-pass + gain + ADC numba pass equals scipy's sosfilt and the quantiser bit for bit."""
    from cardiosim.device._kernels import filter_adc_out_kernel, filter_adc_ref
    from cardiosim.device.apply import _analog_design

    prof = load_device(name)
    rng = np.random.default_rng(5)
    x = np.cumsum(rng.standard_normal((5, 4000)), axis=1) * 0.3 + 50 * rng.standard_normal((5, 1))
    x[0, 100:200] = 1e4                                              # saturates
    sos, zi = _analog_design(prof, 1000.0)
    half = 2 ** (prof.adc_bits - 1)
    lsb = 2.0 * prof.adc_range_mv / 2 ** prof.adc_bits
    codes = np.empty(x.shape, dtype=np.int64)
    sat = np.empty(x.shape, dtype=bool)
    filter_adc_out_kernel(x, sos, zi, float(prof.gain), lsb, float(-half), float(half - 1), codes, sat,
                          np.empty(x.shape, np.float32), np.empty(x.shape, np.float32))
    ref_codes, ref_sat = filter_adc_ref(x, sos, zi, float(prof.gain), lsb, -half, half - 1)
    np.testing.assert_array_equal(codes, ref_codes)
    np.testing.assert_array_equal(sat, ref_sat)
    assert sat.any()


@pytest.mark.parametrize("name", ["shirt12_500hz", "chest_strap_500hz"])
@pytest.mark.parametrize("rows", [1, 3, 4, 7, 9])
def test_filter_adc_out_kernel_rows_side_by_side_match_the_twin(name, rows):
    """Rows filtered four side by side (two-section cascades) and the rows left over (or a
    three-section cascade with a notch, one row at a time) equal the SciPy twin bit for bit."""
    from cardiosim.device._kernels import filter_adc_out_kernel, filter_adc_out_ref
    from cardiosim.device.apply import _analog_design

    prof = load_device(name)
    rng = np.random.default_rng(rows)
    x = np.cumsum(rng.standard_normal((rows, 1500)), axis=1) * 0.3 + 5 * rng.standard_normal((rows, 1))
    x[-1, 300:400] = 1e4                                              # saturates (the last row)
    sos, zi = _analog_design(prof, 500.0)
    half = 2 ** (prof.adc_bits - 1)
    args = (sos, zi, float(prof.gain), 2.0 * prof.adc_range_mv / 2 ** prof.adc_bits, float(-half), float(half - 1))
    out = (np.empty(x.shape, np.int64), np.empty(x.shape, bool), np.empty(x.shape, np.float32),
           np.empty(x.shape, np.float32))
    filter_adc_out_kernel(x, *args, *out)
    for got, ref in zip(out, filter_adc_out_ref(x, *args)):
        np.testing.assert_array_equal(got, ref)
    assert out[1][-1].any()


@pytest.mark.parametrize("name", ["shirt12_500hz", "patch_128hz", "chest_strap_500hz"])
def test_filter_adc_out_kernel_matches_its_twin(name):
    """The pass that also writes apply_device's float32 outputs equals the SciPy path and the
    NumPy expressions it replaces bit for bit."""
    from cardiosim.device._kernels import filter_adc_out_kernel, filter_adc_out_ref
    from cardiosim.device.apply import _analog_design

    prof = load_device(name)
    rng = np.random.default_rng(7)
    x = np.cumsum(rng.standard_normal((4, 3000)), axis=1) * 0.3 + 50 * rng.standard_normal((4, 1))
    x[1, 300:400] = -1e4                                             # saturates
    sos, zi = _analog_design(prof, 500.0)
    half = 2 ** (prof.adc_bits - 1)
    args = (sos, zi, float(prof.gain), 2.0 * prof.adc_range_mv / 2 ** prof.adc_bits, float(-half), float(half - 1))
    out = (np.empty(x.shape, np.int64), np.empty(x.shape, bool), np.empty(x.shape, np.float32),
           np.empty(x.shape, np.float32))
    filter_adc_out_kernel(x, *args, *out)
    for got, ref in zip(out, filter_adc_out_ref(x, *args)):
        assert got.dtype == ref.dtype
        np.testing.assert_array_equal(got, ref)
    assert out[1].any()


@pytest.mark.parametrize("montage_name", ["standard12", "frank", "easi", "limb3", "patch"])
def test_montage_row_kernels_equal_their_einsum_twins(montage_name):
    """The leads from the non-zero weights only, in registers, equal ``Montage.apply``'s
    einsum (and ``ElectrodeNoise.apply`` then einsum) bit for bit on finite input, zeros of
    either sign included; a non-finite input is counted (callers then take the einsum path)."""
    from cardiosim.device._kernels import KERNELS
    from cardiosim.leads import make_montage

    mont = make_montage(montage_name)
    m = mont.matrix
    rng = np.random.default_rng(len(montage_name))
    n_e, n = m.shape[1], 1300                                     # not a multiple of the 512-sample chunk
    phi = rng.standard_normal((n_e, n))
    phi[:, ::7] = 0.0
    phi[:, 3::11] = -0.0
    phi[0, :40] = -phi[1 % n_e, :40]                             # exact cancellations
    noise = rng.standard_normal((n_e, n)).astype(np.float32).astype(np.float64) * 0.1
    noise[:, ::5] = -phi[:, ::5]
    kern, twin = KERNELS["montage_rows"]
    out = np.full((m.shape[0] + 2, n), np.nan)
    assert kern(m, phi, out, 2) == 0
    np.testing.assert_array_equal(out[2:].view(np.int64), twin(m, phi).view(np.int64))
    np.testing.assert_array_equal(out[2:].view(np.int64), mont.apply(phi).view(np.int64))
    nkern, ntwin = KERNELS["noisy_montage_rows"]
    for contact, unit in ((np.broadcast_to(np.float32(1.0), (n_e, n)), True),
                          (rng.uniform(0.0, 1.0, (n_e, n)).astype(np.float32), False)):
        got = np.full((m.shape[0], n), np.nan)
        assert nkern(m, phi, contact, unit, noise, got, 0) == 0
        want = ntwin(m, phi, contact, noise)
        np.testing.assert_array_equal(got.view(np.int64), want.view(np.int64))
    bad = phi.copy()
    bad[n_e - 1, 17], bad[0, 3] = np.inf, np.nan
    assert kern(m, bad, out, 0) == 2
    assert nkern(m, bad, contact, False, noise, got, 0) == 2


def test_apply_device_on_the_halves_of_one_array_equals_separate_arrays():
    """Noisy and clean leads given as the two halves of one array are filtered without
    stacking them again: the same bits as separate arrays."""
    from cardiosim.device.apply import _halves_of

    prof = load_device("shirt12_500hz")
    rng = np.random.default_rng(2)
    rows = np.cumsum(rng.standard_normal((24, 2000)), axis=1) * 0.01
    noisy, clean = rows[:12], rows[12:]
    assert _halves_of(noisy, clean) is rows
    assert _halves_of(clean, noisy) is None and _halves_of(noisy, clean.copy()) is None
    rec, info = apply_device(prof, noisy, 500.0, clean=clean)
    rec2, info2 = apply_device(prof, noisy.copy(), 500.0, clean=clean.copy())
    np.testing.assert_array_equal(rec, rec2)
    np.testing.assert_array_equal(info["clean"], info2["clean"])
    np.testing.assert_array_equal(info["codes"], info2["codes"])


def test_filter_adc_out_kernel_rows_past_the_codes_get_only_their_mv():
    """Rows beyond ``codes`` (a noiseless twin) get the recorded mV the full path writes."""
    from cardiosim.device._kernels import filter_adc_out_kernel, filter_adc_out_ref
    from cardiosim.device.apply import _analog_design

    prof = load_device("shirt12_500hz")
    rng = np.random.default_rng(9)
    x = np.cumsum(rng.standard_normal((9, 1200)), axis=1) * 0.3
    x[8, 100:200] = 1e4                                               # saturates, past the codes
    sos, zi = _analog_design(prof, 500.0)
    half = 2 ** (prof.adc_bits - 1)
    args = (sos, zi, float(prof.gain), 2.0 * prof.adc_range_mv / 2 ** prof.adc_bits, float(-half), float(half - 1))
    n = 5
    codes, sat, raw = np.empty((n, 1200), np.int64), np.empty((n, 1200), bool), np.empty((n, 1200), np.float32)
    rec = np.empty(x.shape, np.float32)
    filter_adc_out_kernel(x, *args, codes, sat, rec, raw)
    ref_codes, ref_sat, ref_rec, ref_raw = filter_adc_out_ref(x, *args)
    np.testing.assert_array_equal(rec, ref_rec)
    np.testing.assert_array_equal(codes, ref_codes[:n])
    np.testing.assert_array_equal(raw, ref_raw[:n])
    np.testing.assert_array_equal(sat, ref_sat[:n])


def test_each_device_is_worn_with_its_electrode_type():
    """noise.electrode = 'device' (the default) takes the profile's type: a handheld's dry metal,
    a Holter's and a patch's gel, a shirt's textile; a recipe's explicit type wins, a direct
    noise call without a device is textile, and a profile naming an unknown type is refused."""
    import numpy as np

    from cardiosim.device import load_device
    from cardiosim.device.profile import DeviceProfile
    from cardiosim.errors import ConfigError
    from cardiosim.noise import NoiseConfig, simulate_electrode_noise
    from cardiosim.simulate import SimulationConfig, make_context, simulate_record
    from cardiosim.sources import synthetic_source

    want = {"handheld_300hz": "dry", "holter3_200hz": "gel", "patch_128hz": "gel", "mobile12_500hz": "gel",
            "shirt12_500hz": "textile", "shirt3_250hz": "textile", "chest_strap_500hz": "textile"}
    for name, etype in want.items():
        assert load_device(name).electrode == etype, name
    assert NoiseConfig().electrode == "device"
    for name, cfg, etype in (("handheld_300hz", SimulationConfig(), "dry"),
                             ("holter3_200hz", SimulationConfig(), "gel"),
                             ("shirt12_500hz", SimulationConfig(), "textile"),
                             ("handheld_300hz", SimulationConfig(noise=NoiseConfig(electrode="gel")), "gel")):
        ctx = make_context(name)
        src = synthetic_source(4.0, 500.0, np.random.default_rng(1), ctx.forward, ctx.frank_layout)
        rec = simulate_record(src, np.random.default_rng(2), context=ctx, config=cfg)
        assert rec.params["noise_activity_noise_electrode"] == etype, (name, rec.params["noise_activity_noise_electrode"])
    en = simulate_electrode_noise(3, 1000, 500.0, np.random.default_rng(0), NoiseConfig())
    assert en.params["activity_noise_electrode"] == "textile"
    with pytest.raises(ConfigError, match="electrode"):
        DeviceProfile.from_dict({**load_device("patch_128hz").to_dict(), "electrode": "copper"})
    with pytest.raises(ConfigError, match="electrode"):
        NoiseConfig(electrode="copper")
