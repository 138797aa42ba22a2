"""The ``drift`` noise kind (cardiosim.noise.drift): its kernel against the NumPy twin, its
spectrum and level against the analytic model, the wander measure against analytic signals,
and simulated Holter windows against real ambulatory records (CPSC 2021 patients 8, 35, 92,
101 fitted on; patients 21 and 84 and MIT-BIH 100 held out)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from cardiosim.errors import ConfigError, SignalError
from cardiosim.noise import NoiseConfig, simulate_electrode_noise
from cardiosim.noise import drift
from cardiosim.noise._kernels import drift_kernel, drift_ref


@pytest.mark.parametrize("n,step", [(350, 0.1), (5000, 10.0 / 500.0), (1280, 10.0 / 128.0), (3000, 10.0 / 300.0),
                                    (2000, 10.0 / 200.0), (7, 0.37)])
def test_kernel_matches_numpy_twin(n, step):
    from cardiosim.noise._kernels import drift_table

    m = int(np.ceil((n - 1) * step)) + 2
    rng = np.random.default_rng(0)
    y = rng.standard_normal((3, m + 5))
    scale = np.array([1.0, 0.3, 2.5])
    out = np.full((3, n), np.nan, dtype=np.float32)     # every sample written
    drift_kernel(y, *drift_table(n, step, m), scale, out)
    np.testing.assert_array_equal(out, drift_ref(y, step, scale, n))


def test_spectrum_and_rms_follow_the_model():
    # 40 electrodes x 80 s at 200 Hz, unit level: Welch PSD shape against drift_psd
    x = drift.simulate_drift(np.random.default_rng(3), 40, 200 * 80, 200.0, median_mv=1.0, log_sd=0.0,
                             exponent=1.33).astype(np.float64)
    f, p = signal.welch(x, 200.0, nperseg=200 * 40, axis=1)
    p = p.mean(axis=0)
    ref = drift.drift_psd(f, 1.33)
    band = (f >= 0.05) & (f <= 1.0)
    rel = 10 * np.log10(p[band] / p[np.argmin(abs(f - 0.1))]) - 10 * np.log10(ref[band] / drift.drift_psd(0.1, 1.33))
    assert np.max(np.abs(rel)) < 1.5, rel
    # the process's RMS (every frequency, slow ones too) is the level: over many short records
    y = drift.simulate_drift(np.random.default_rng(4), 400, 2000, 200.0, median_mv=0.2, log_sd=0.0, exponent=1.33)
    assert np.sqrt(np.mean(y.astype(np.float64) ** 2)) == pytest.approx(0.2, rel=0.06)


def test_level_is_log_normal_per_record():
    levels = []
    for k in range(600):
        params = {}
        drift.simulate_drift(np.random.default_rng([9, k]), 2, 100, 100.0, median_mv=0.05, log_sd=1.5,
                             exponent=1.33, params=params)
        levels.append(params["drift_rms_mv"])
    logs = np.log(levels)
    assert np.exp(np.median(logs)) == pytest.approx(0.05, rel=0.15)
    assert np.std(logs) == pytest.approx(1.5, rel=0.1)


def test_wander_ratio_of_two_sines():
    fs = 200.0
    t = np.arange(int(30 * fs)) / fs
    x = 0.5 * np.sin(2 * np.pi * 0.2 * t) + 0.05 * np.sin(2 * np.pi * 10.0 * t)
    r = drift.wander_ratio_db(x, fs)
    assert r.shape == (3,)
    np.testing.assert_allclose(r, 20.0, atol=0.5)    # (0.5 / 0.05)^2 -> +20 dB


def test_wander_ratio_refuses_bad_input():
    with pytest.raises(SignalError, match="non-finite"):
        drift.wander_ratio_db(np.r_[np.zeros(3000), np.nan], 200.0)
    with pytest.raises(SignalError, match="shorter than one"):
        drift.wander_ratio_db(np.zeros(100), 200.0)
    with pytest.raises(SignalError, match="cannot resolve"):
        drift.wander_ratio_db(np.zeros(1000), 25.0)
    with pytest.raises(ConfigError, match="exponent"):
        drift.simulate_drift(np.random.default_rng(0), 1, 100, 100.0, median_mv=0.1, log_sd=0.0, exponent=9.0)
    with pytest.raises(ConfigError, match="drift_log_sd"):
        NoiseConfig(drift_log_sd=-1.0)


def test_drift_is_a_default_kind_and_off_at_zero_level():
    cfg = NoiseConfig()
    assert "drift" in cfg.kinds
    en = simulate_electrode_noise(3, 2000, 200.0, np.random.default_rng(1), cfg)
    assert en.by_kind["drift"].shape == (3, 2000) and en.params["drift_rms_mv"] > 0
    off = simulate_electrode_noise(3, 2000, 200.0, np.random.default_rng(1), NoiseConfig(drift_ratio=0.0))
    assert not np.any(off.by_kind["drift"])
    # the same draws either way: every other kind is unchanged
    for k in en.by_kind:
        if k != "drift":
            np.testing.assert_array_equal(en.by_kind[k], off.by_kind[k])


def _simulated_ratios(recipe_fn, records, seed, noise):
    from cardiosim.dataset.generate import PreparedRecipe, simulate_block

    ds = simulate_block(PreparedRecipe.of(recipe_fn(records, seed, noise)), 0, records)
    leads = [str(v) for v in ds["lead"].values]
    x = ds["ecg"].values[:, [leads.index("I"), leads.index("II")]].astype(np.float64)
    fs = float(ds.attrs["sampling_rate"])
    return np.concatenate([drift.wander_ratio_db(r, fs) for r in x.reshape(-1, x.shape[-1])])


@pytest.fixture(scope="module")
def wander(data_dir):
    """Real wander ratios (fit and held-out sets) and simulated ones with the fitted drift and
    without it, on a seed the fit never used (it used 5 and 6)."""
    import wfdb

    from cardiosim.sim2real.conditions import holter_day_recipe, resting_12lead_recipe

    if not (data_dir / "cpsc2021").is_dir() or not (data_dir / "cinc2021").is_dir():
        pytest.skip(f"no cpsc2021 or cinc2021 folder in {data_dir}")
    rest_fit, rest_held = drift.resting_split(data_dir)
    real = {"holter_fit": np.concatenate(list(drift.cpsc_wander(data_dir, drift.FIT_PATIENTS).values())),
            "rest_fit": drift.resting_wander(data_dir, rest_fit),
            "rest_held": drift.resting_wander(data_dir, rest_held)}
    real.update({f"cpsc{p}": v for p, v in drift.cpsc_wander(data_dir, drift.HELD_OUT_PATIENTS).items()})
    rec = wfdb.rdrecord(str(data_dir / "mitdb" / "100"))
    real["mitdb100"] = np.concatenate([drift.wander_ratio_db(rec.p_signal[:, c], float(rec.fs)) for c in range(2)])
    sim = {}
    for key, fn, n in (("holter", holter_day_recipe, 200), ("rest", resting_12lead_recipe, 100)):
        sim[key] = _simulated_ratios(fn, n, 77, {})
        sim[key + "_off"] = _simulated_ratios(fn, n, 77, {"drift_ratio": 0.0})
    return real, sim


def test_wander_against_the_fit_sets(wander):
    """Measured 2026-12-06 (seed 77, 200 + 100 records; the drift following each record's
    activity-noise level; the 5 Hz grid and the refit drift_ratio 6.60): CPSC fit patients' windows
    median -7.2 dB, simulated Holter day -10.0 (without the drift -17.1; 93 % of the real windows
    inside the simulated 2.5-97.5 % range, 62 % without); CinC 2021 resting fit half -12.9,
    simulated resting 12-lead -11.8 (-18.5 without).
    The fit balances both sets' five percentiles, so a set's median may miss by more than a
    held-out one's: within 4 dB here."""
    real, sim = wander
    for r, s in (("holter_fit", "holter"), ("rest_fit", "rest")):
        assert abs(np.median(sim[s]) - np.median(real[r])) < 4.0, (r, np.median(sim[s]), np.median(real[r]))
        # the gap the drift closes: without it the simulated records are 5-9 dB too clean
        assert np.median(real[r]) - np.median(sim[s + "_off"]) > 4.0
    lo, hi = np.percentile(sim["holter"], [2.5, 97.5])
    assert np.mean((real["holter_fit"] >= lo) & (real["holter_fit"] <= hi)) >= 0.85


HELD_OUT = {"cpsc84": "holter", "mitdb100": "holter", "rest_held": "rest", "cpsc21": "holter"}
HELD_OUT_MISS = {  # measured 2026-12-06, seed 77
    "cpsc21": "CPSC patient 21's Holter is cleaner than every fit patient (median -24.8 dB; the fit "
              "patients' 2.5th percentile -23.6): simulated median -10.0 dB (-17.1 without the drift)"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xfail(reason=HELD_OUT_MISS[n], strict=False))
                                  if n in HELD_OUT_MISS else n for n in HELD_OUT])
def test_wander_on_held_out_records(wander, name):
    """Held out (never fitted): CPSC patients 84 and 21 and MIT-BIH 100 against the Holter day,
    the other half of the CinC 2021 resting records against the resting 12-lead. The set's
    median within 3 dB of the simulated median, and nearer to it than without the drift.
    Measured 2026-12-06 (seed 77, the 5 Hz grid, drift_ratio 6.60), real / simulated / without the
    drift: 84 -8.7 / -10.0 / -17.1; MIT-BIH 100 -9.5 / -10.0 / -17.1; CinC resting -12.2 / -11.8 /
    -18.5; 21 -24.8 / -10.0 / -17.1. The simulated spread is narrower than the real one (share of a
    set's windows inside the simulated 2.5-97.5 % range with / without the drift: 84 0.95 / 0.84,
    MIT-BIH 100 1.00 / 0.94, CinC resting 0.75 / 0.83, 21 0.54 / 0.86)."""
    real, sim = wander
    s = HELD_OUT[name]
    miss = abs(np.median(real[name]) - np.median(sim[s]))
    assert miss <= 3.0, (name, np.median(real[name]), np.median(sim[s]))
    assert miss < abs(np.median(real[name]) - np.median(sim[s + "_off"]))
