"""The noise floor between beats (cardiosim.noise.floor), on known signals and against real
handheld and ambulatory recordings (issue 14, item 2)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from cardiosim.noise import NoiseConfig
from cardiosim.noise.floor import interbeat_floor


def _beats(fs, seconds, rate_hz=1.0):
    n = int(seconds * fs)
    x = np.zeros(n)
    r = np.arange(int(0.5 * fs), n - int(0.5 * fs), int(fs / rate_hz))
    k = np.arange(-int(0.02 * fs), int(0.02 * fs) + 1)
    for i in r:
        x[i + k] += 1.0 - np.abs(k) / (0.02 * fs)       # 40-ms triangular QRS, 1 peak-to-peak
    return x, r


def test_floor_refuses_gaps_and_bad_rates():
    from cardiosim.errors import SignalError

    x = np.zeros(1000)
    x[123] = np.nan
    with pytest.raises(SignalError, match="1 NaN/inf samples .first at index 123"):
        interbeat_floor(x, 250.0)
    with pytest.raises(SignalError, match="positive number of Hz"):
        interbeat_floor(np.zeros(1000), 0.0)


def test_floor_reads_white_noise_and_mains():
    fs = 500.0
    rng = np.random.default_rng(0)
    x, r = _beats(fs, 30.0)
    white = x + 0.01 * rng.standard_normal(x.size)
    m = interbeat_floor(white, fs, r_peaks=r)
    assert m.n_segments == r.size - 1
    assert m.share_30_40 == pytest.approx(11 / 40, rel=0.15)      # flat: 30-40 Hz of 1-40 Hz
    # white noise of RMS 0.01 carries 0.01 sqrt(2 * 10 Hz / fs) in 30-40 Hz; QRS 0.886 after the band-pass
    assert m.hf_re_qrs == pytest.approx(0.01 * np.sqrt(20 / fs) / 0.886, rel=0.1)
    # the 1-Hz high-pass leaves each QRS a slow tail between beats: noise adds in power to it
    tail = interbeat_floor(x, fs, r_peaks=r).level_re_qrs
    assert np.sqrt(m.level_re_qrs ** 2 - tail ** 2) == pytest.approx(0.01 * np.sqrt(39 / 250), rel=0.25)
    t = np.arange(x.size) / fs
    mains = white + 0.01 * np.sin(2 * np.pi * 50 * t)
    assert interbeat_floor(mains, fs, r_peaks=r).share_mains > 10 * m.share_mains
    # at 60 Hz the mains band sits below Nyquist only from 128 Hz on; at 100 Hz neither does
    assert np.isnan(interbeat_floor(x[::5] + 0.01 * rng.standard_normal(x[::5].size), 100.0, r_peaks=r // 5).share_mains)


def _data_dir():
    d = Path(os.environ.get("CARDIOSIM_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))
    if not ((d / "cpsc2021").is_dir() and (d / "cinc2011").is_dir()):
        pytest.skip(f"real CPSC 2021 / CinC 2011 records not found under {d} (set CARDIOSIM_DATA)")
    return d


def _median_over_leads(x2d, fs, keys=("share_30_40", "share_mains")):
    ms = [interbeat_floor(x, fs) for x in np.atleast_2d(x2d) if np.ptp(x) > 0]
    return {k: float(np.nanmedian([getattr(m, k) for m in ms])) for k in keys}


def _summary(recs):
    out = {k: float(np.nanmedian([r[k] for r in recs])) for k in recs[0]}
    out.update({f"{k}_q75": float(np.nanpercentile([r[k] for r in recs], 75)) for k in recs[0]})
    return out


@pytest.fixture(scope="module")
def real_floor():
    """Medians over records of the fit references: CPSC 2021 training patients (held-out
    patients left out) and the first 40 acceptable CinC 2011 records."""
    import wfdb
    from cardiosim.ode.rhythm_prior import HELD_OUT_PATIENTS

    d = _data_dir()
    out = {}
    recs = []
    for hea in sorted((d / "cpsc2021").glob("*.hea")):
        if hea.stem.split("_")[1] not in HELD_OUT_PATIENTS:
            rec = wfdb.rdrecord(str(hea.with_suffix("")))
            recs.append(_median_over_leads(rec.p_signal.T, rec.fs))
    out["cpsc2021"] = _summary(recs)
    ref = [line.split(",") for line in (d / "cinc2011" / "REFERENCE.csv").read_text().split()[1:]]
    recs = []
    for name, q in ref:
        if q == "acceptable" and len(recs) < 40:
            rec = wfdb.rdrecord(str(d / "cinc2011" / name))
            recs.append(_median_over_leads(rec.p_signal.T, rec.fs))
    out["cinc2011"] = _summary(recs)
    return out


def _simulated_floor(device, noise=None, n=4, keys=("share_30_40", "share_mains")):
    from cardiosim.simulate import SimulationConfig, make_context, simulate_record
    from cardiosim.sources import synthetic_source

    ctx = make_context(device)
    cfg = SimulationConfig(activities={"rest": 1.0}, noise=NoiseConfig(**(noise or {})))
    recs = []
    for i in range(n):
        src = synthetic_source(20.0, 500.0, np.random.default_rng([5, i]), ctx.forward, ctx.frank_layout,
                               rhythm="SR", morphology="NORM", source_id=f"floor:{i}")
        rec = simulate_record(src, np.random.default_rng([5, i, 1]), context=ctx, config=cfg)
        recs.append(_median_over_leads(rec.ecg, rec.fs, keys))
    # a record with no usable between-beat segment reads NaN: left out of the median, not a NaN result
    return {k: float(np.nanmedian([r[k] for r in recs])) for k in recs[0]}


def test_default_wearer_at_rest_is_clean_between_beats_as_real_devices(real_floor):
    """The default recipe's wearer at rest (textile shirt, shirt12_500hz, 0.05-150 Hz) between
    beats: mains no larger a share of the 1-40 Hz power (median of 4 records) than in most
    real ambulatory (CPSC 2021 training patients, median 0.033, upper quartile 0.048) and
    phone 12-lead records (CinC 2011 acceptable, first 40: upper quartile about 0.07), and no
    more 30-40 Hz than they carry.

    Measured 2026-12-05 (scripts/interbeat_floor.py, 6 records): mains share 0.27 with the
    fixed 20-200 mV common-mode voltage of before, 0.020 with the ground-electrode
    displacement current; 30-40 Hz share 0.035 before, 0.018 with the activity noise's
    spectrum fitted between beats (real 0.072 and 0.048). The median is over 16 records: over 4 it
    read a mains share of 0.028 or 0.048 as the textile spectrum's calibration (2026-12-06) changed
    the draws, where 16 read 0.020 and 0.022 (30-40 Hz 0.014 and 0.011) before and after it."""
    sim = _simulated_floor("shirt12_500hz", n=16)
    for name, real in real_floor.items():
        assert sim["share_mains"] <= real["share_mains_q75"], (name, sim, real)
        assert sim["share_30_40"] <= 1.5 * real["share_30_40"], (name, sim, real)


def test_common_mode_voltage_follows_the_ground_electrode():
    """V_cm = i_d Z_ground (Huhta & Webster 1973): the mains displacement current through the
    ground electrode's impedance, so gel electrodes see ~1000x less common-mode voltage than
    freshly donned textile; ``powerline_coupling = 'fixed'`` keeps the 20-200 mV draw, and
    the random stream of every other kind is the same either way."""
    from cardiosim.errors import ConfigError
    from cardiosim.noise import simulate_electrode_noise

    for electrode in ("gel", "textile"):
        en = simulate_electrode_noise(3, 2000, 500.0, np.random.default_rng(3),
                                      NoiseConfig(kinds=("white", "powerline"), electrode=electrode))
        z_g = float(np.median(en.impedance[:, 0]))
        i_d = en.params["displacement_current_ua"]
        assert 0.1 <= i_d <= 0.5
        assert en.params["cm_voltage_mv"] == pytest.approx(i_d * 1e-6 * z_g * 1e3, rel=1e-5)
        fixed = simulate_electrode_noise(3, 2000, 500.0, np.random.default_rng(3),
                                         NoiseConfig(kinds=("white", "powerline"), electrode=electrode,
                                                     powerline_coupling="fixed"))
        assert 20.0 <= fixed.params["cm_voltage_mv"] <= 200.0
        np.testing.assert_array_equal(fixed.by_kind["white"], en.by_kind["white"])
    assert en.params["cm_voltage_mv"] < 200.0 * 0.5 * 350e3 / 1e6      # textile: at most 0.5 uA x 350 kOhm
    with pytest.raises(ConfigError, match="powerline_coupling"):
        NoiseConfig(powerline_coupling="line")


def _textile_dir():
    d = Path(os.environ.get("CARDIOSIM_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data")) / "textile"
    if not d.is_dir():
        pytest.skip(f"textile recordings not found under {d} (set CARDIOSIM_DATA)")
    return d


@pytest.mark.parametrize("electrode", ["gel", "textile"])
def test_activity_noise_at_rest_is_no_broadband_floor(electrode):
    """The fitted ``activity`` noise of a wearer at rest, alone, through the chest strap: its
    30-40 Hz RMS between beats over the QRS is no larger (x 1.5) than that of the whole real
    chest-strap records at rest of the folder's subjects (in the shared folder the five the shipped
    fit was fitted to since 2026-12-06; device floor included).
    Measured 2026-12-05 (scripts/interbeat_floor.py, 6 records, textile electrodes): 0.0021
    when the fitted spectrum was that of the whole residual (the QRS template misfit within
    +-100 ms of R included), 0.0010 fitted between beats; real fit subjects 0.0010 (gel
    0.0010), held-out 04-05 0.0011 (gel 0.0012). Gel passed before too (its whole-residual
    30-40 Hz share at rest was 1.8x the between-beat one, textile's 4.8x)."""
    from cardiosim.noise import textile

    d = _textile_dir()
    real = float(np.nanmedian([interbeat_floor(textile.read_textile_record(d, s, electrode, "rest")[0], 500.0).hf_re_qrs
                               for s in textile.subjects_in(d)]))
    # 24 records: the fitted level spreads 0.66 (log) between records, so the median of 4 moved by
    # +-50 % (textile after the 2026-12-06 refit: 4 records 1.84x real, 12 1.46x, 24 1.18x)
    sim = _simulated_floor("chest_strap_500hz", {"kinds": ("activity",), "electrode": electrode}, n=24,
                           keys=("hf_re_qrs",))
    assert sim["hf_re_qrs"] <= 1.5 * real, (sim, real)
