"""SNR definitions (NSTDB and power) against an analytic case and an independent
implementation; requested SNR reached within 0.5 dB, per kind at the electrodes."""

from __future__ import annotations

import numpy as np
import pytest

from cardiosim.errors import ConfigError, SignalError
from cardiosim.leads import make_montage
from cardiosim.noise import (NoiseConfig, detect_r_peaks, measure_snr, scale_to_snr,
                             simulate_electrode_noise)
from cardiosim.noise.snr import scale_electrode_noise

FS = 500.0


def _qrs_train(n, fs, rr_s=0.8, amp=1.5, n_leads=1, rng=None):
    """Triangular QRS complexes (+amp/2 R, -amp/2 S: peak-to-peak ``amp``) every rr_s."""
    x = np.zeros((n_leads, n))
    r = np.arange(int(0.4 * fs), n - int(0.2 * fs), int(rr_s * fs))
    w = int(0.02 * fs)
    tri = np.concatenate([np.linspace(0, 1, w, endpoint=False), np.linspace(1, -1, 2 * w, endpoint=False),
                          np.linspace(-1, 0, w + 1)]) * amp / 2
    for p in r:
        x[:, p - w:p - w + tri.size] += tri
    if rng is not None:
        x *= rng.uniform(0.5, 1.5, (n_leads, 1))
    return x, r


def _trimmed(vals):
    """sigamp's trimmed mean: sort, drop n // 20 at each end, average the rest."""
    vals = sorted(vals)
    lo = len(vals) // 20
    kept = vals[lo:len(vals) - lo]
    return sum(kept) / len(kept)


def _nstdb_oracle(noise, clean, r, fs, per_lead=False):
    """Independent, loop-based NSTDB SNR as WFDB sigamp/nst compute it (PHYSICS.md section 6):
    trimmed mean of QRS peak-to-peak in [r - 50 ms, r + 50 ms]; trimmed mean of the RMS of
    1-s chunks, each chunk's own mean removed."""
    h = int(round(0.05 * fs))
    s, nz = [], []
    for k in range(clean.shape[0]):
        pps = [clean[k, p - h:p + h + 1].max() - clean[k, p - h:p + h + 1].min() for p in r]
        s.append(_trimmed(pps) ** 2 / 8)
        c = int(fs)
        rms = []
        for i in range(0, noise.shape[1] - c + 1, c):
            chunk = noise[k, i:i + c]
            rms.append(float(np.sqrt(np.mean((chunk - chunk.mean()) ** 2))))
        nz.append(_trimmed(rms) ** 2)
    s, nz = np.array(s), np.array(nz)
    return 10 * np.log10(s / nz) if per_lead else 10 * np.log10(s.sum() / nz.sum())


def test_nstdb_analytic_white_noise(rng):
    n = int(60 * FS)
    clean, r = _qrs_train(n, FS, amp=1.5)
    sigma = 0.05
    noise = rng.standard_normal((1, n)) * sigma
    expected = 10 * np.log10(1.5 ** 2 / 8 / sigma ** 2)     # S = pp^2/8, N = sigma^2
    assert measure_snr(noise, clean, fs=FS, r_peaks=r) == pytest.approx(expected, abs=0.1)
    p = measure_snr(noise, clean, definition="power")
    assert p == pytest.approx(10 * np.log10(clean.var() / sigma ** 2), abs=0.1)


@pytest.mark.parametrize("definition", ["nstdb", "power"])
@pytest.mark.parametrize("target", [-6.0, 0.0, 12.0, 24.0])
def test_scale_to_snr_reaches_target(rng, definition, target):
    n = int(20 * FS)
    clean, r = _qrs_train(n, FS, n_leads=3, rng=rng)
    noise = rng.standard_normal((3, n)).cumsum(axis=1) * 0.01 + rng.standard_normal((3, n))
    scaled, g = scale_to_snr(noise, clean, target, definition, fs=FS, r_peaks=r, return_gain=True)
    np.testing.assert_allclose(scaled, g * noise)
    if definition == "nstdb":
        got = _nstdb_oracle(scaled, clean, r, FS)
    else:
        c = clean - clean.mean(axis=1, keepdims=True)
        got = 10 * np.log10(np.sum(c ** 2) / np.sum(scaled ** 2))
    assert abs(got - target) < 0.5, got


def test_detect_r_peaks(rng):
    clean, r = _qrs_train(int(10 * FS), FS, n_leads=2, rng=rng)
    found = detect_r_peaks(clean, FS)
    assert found.size == r.size
    assert np.max(np.abs(found - r)) <= 2
    n = rng.standard_normal(clean.shape) * 0.1
    assert measure_snr(n, clean, fs=FS) == pytest.approx(measure_snr(n, clean, fs=FS, r_peaks=r), abs=0.05)


def test_electrode_noise_scaled_per_kind(rng):
    m = make_montage("standard12")
    n = int(10 * FS)
    phi, r = _qrs_train(n, FS, n_leads=9, rng=rng)
    phi *= rng.choice([-1, 1], (9, 1)) * rng.uniform(0.2, 1.0, (9, 1))
    clean = m.apply(phi)
    en = simulate_electrode_noise(9, n, FS, rng, NoiseConfig(kinds=("white", "bw", "em", "emg", "powerline"),
                                                             snr_db={"bw": (0, 10), "em": (5, 5), "emg": (20, 25)}))
    scaled = en.scale_to_snr(m, clean, r_peaks=r)
    for kind in ("bw", "em", "emg"):
        target = en.params[f"snr_target_db.{kind}"]
        got = _nstdb_oracle(m.apply(scaled.by_kind[kind]), clean, r, FS)
        assert abs(got - target) < 0.5, (kind, got, target)
        assert scaled.params[f"snr_db.{kind}"] == pytest.approx(target, abs=1e-6)   # realised, pooled
    assert en.params["snr_target_db.em"] == 5.0
    # powerline has no target: physical amplitude kept
    np.testing.assert_array_equal(scaled.by_kind["powerline"], en.by_kind["powerline"])
    # still consistent with the montage: lead I = LA - RA
    np.testing.assert_allclose(m.apply(scaled.noise)[0], scaled.noise[1] - scaled.noise[0], atol=1e-12)


def test_snr_errors(rng):
    clean, r = _qrs_train(2000, FS)
    with pytest.raises(SignalError):
        scale_to_snr(np.zeros_like(clean), clean, 10.0, fs=FS, r_peaks=r)
    with pytest.raises(ConfigError, match="fs"):
        measure_snr(clean, clean)
    with pytest.raises(ConfigError, match="definition"):
        measure_snr(clean, clean, definition="peak")
    with pytest.raises(SignalError):
        measure_snr(clean * np.nan, clean, fs=FS)


def _montage(matrix, leads):
    from types import SimpleNamespace
    return SimpleNamespace(matrix=np.asarray(matrix, dtype=float), leads=tuple(leads))


def _electrode_case(rng, n_e, n_leads_signal, matrix):
    n = int(20 * FS)
    phi, r = _qrs_train(n, FS, n_leads=n_e, rng=rng)
    phi *= rng.choice([-1, 1], (n_e, 1)) * rng.uniform(0.3, 1.0, (n_e, 1))
    clean = np.asarray(matrix) @ phi
    en = simulate_electrode_noise(n_e, n, FS, rng, NoiseConfig(kinds=("bw", "em", "emg"),
                                                              snr_db={"bw": (3, 3), "em": (6, 6), "emg": (18, 18)}))
    return clean, r, en


def test_per_lead_targets_reached_where_the_montage_allows(rng):
    """Three bipolar leads on disjoint electrode pairs: every lead can reach its target, and
    does within 0.5 dB by the independent oracle; pooled targeting cannot (leads differ)."""
    matrix = np.zeros((3, 6))
    for k in range(3):
        matrix[k, 2 * k], matrix[k, 2 * k + 1] = -1.0, 1.0
    m = _montage(matrix, ("A", "B", "C"))
    clean, r, en = _electrode_case(rng, 6, 3, matrix)
    per = scale_electrode_noise(en, m, clean, r_peaks=r, targeting="per_lead")
    pooled = scale_electrode_noise(en, m, clean, r_peaks=r, targeting="pooled")
    for kind, target in (("bw", 3.0), ("em", 6.0), ("emg", 18.0)):
        got = _nstdb_oracle(matrix @ per.by_kind[kind], clean, r, FS, per_lead=True)
        np.testing.assert_allclose(got, target, atol=0.5)
        assert per.params[f"snr_spread_db.{kind}"] < 0.5
        np.testing.assert_allclose([per.params[f"snr_lead_db.{kind}.{x}"] for x in "ABC"], got, atol=0.01)
        got_pooled = _nstdb_oracle(matrix @ pooled.by_kind[kind], clean, r, FS)
        assert abs(got_pooled - target) < 0.5
        assert abs(pooled.params[f"snr_db.{kind}"] - target) < 0.01
    assert per.params["snr_targeting"] == "per_lead" and per.params["snr_definition"] == "nstdb"


def test_per_lead_spread_reported_where_impossible(rng):
    """Standard 12 leads from 9 electrodes: the six limb leads share three electrodes, so
    not every lead can have its target; the realised per-lead SNR and the spread in params
    are what the oracle measures, and per-lead targeting is closer than one gain for all."""
    m = make_montage("standard12")
    clean, r, en = _electrode_case(rng, 9, 12, m.matrix)
    per = scale_electrode_noise(en, m, clean, r_peaks=r)
    pooled = scale_electrode_noise(en, m, clean, r_peaks=r, targeting="pooled")
    for kind, target in (("bw", 3.0), ("em", 6.0), ("emg", 18.0)):
        got = _nstdb_oracle(m.apply(per.by_kind[kind]), clean, r, FS, per_lead=True)
        reported = np.array([per.params[f"snr_lead_db.{kind}.{x}"] for x in m.leads])
        np.testing.assert_allclose(reported, got, atol=0.01)
        assert per.params[f"snr_spread_db.{kind}"] == pytest.approx(np.max(np.abs(got - target)), abs=0.01)
        got_pooled = _nstdb_oracle(m.apply(pooled.by_kind[kind]), clean, r, FS, per_lead=True)
        print(f"\n{kind}: per-lead targeting {np.round(got, 1)}; one gain {np.round(got_pooled, 1)}")
        assert np.median(np.abs(got - target)) < np.median(np.abs(got_pooled - target))
        assert np.median(np.abs(got - target)) < 0.5
    # montage still consistent: lead I noise = LA - RA
    total = m.apply(sum(per.by_kind[k] for k in ("bw", "em", "emg")))
    np.testing.assert_allclose(total[0], (per.by_kind["bw"] + per.by_kind["em"] + per.by_kind["emg"])[1]
                               - (per.by_kind["bw"] + per.by_kind["em"] + per.by_kind["emg"])[0], atol=1e-4)


def test_kinds_without_target_are_measured_not_scaled(rng):
    m = make_montage("standard12")
    clean, r, en = _electrode_case(rng, 9, 12, m.matrix)
    out = scale_electrode_noise(en, m, clean, r_peaks=r, snr_db={"em": 6.0})
    np.testing.assert_array_equal(out.by_kind["bw"], en.by_kind["bw"])
    got = _nstdb_oracle(m.apply(en.by_kind["bw"]), clean, r, FS, per_lead=True)
    np.testing.assert_allclose([out.params[f"snr_lead_db.bw.{x}"] for x in m.leads], got, atol=0.01)
    assert out.params["snr_db.bw"] == pytest.approx(_nstdb_oracle(m.apply(en.by_kind["bw"]), clean, r, FS), abs=0.01)


@pytest.mark.parametrize("seed", [6, 10])
def test_chest_lead_gain_found_past_the_correlation_valley(seed):
    """Baseline-wander-like noise correlated between electrodes (a shared drift): a chest
    lead is its own electrode minus the Wilson terminal, so its noise first falls as the own
    electrode's gain rises from 0 and a local fit can stop in that valley with the lead
    cleaner than asked (seed 10 did: V5 +0.61 dB). Every chest lead now reaches its target
    within 0.05 dB, or -- checked by brute force over its own electrode's gain (0 and 1e-3x
    to 1e3x the fitted gain), independently of the fit -- no gain brings it within 0.5 dB
    (seed 6's V5: the terminal alone is noisier than asked)."""
    from cardiosim.noise.snr import _lead_noise_power_fn, electrode_gains
    from cardiosim.noise.spectra import shaped_noise_multi

    m = make_montage("standard12").matrix
    rng = np.random.default_rng(seed)
    n = 5000
    common = shaped_noise_multi(["bw"], 1, n, FS, rng)[0][0]
    ind = shaped_noise_multi(["bw"], 9, n, FS, rng)[0]
    x = (0.8 * common[None] + 0.6 * ind) * rng.uniform(0.05, 0.3, 9)[:, None]
    s = np.ones(12)
    g, snr, _ = electrode_gains(m, x, s, 12.0, fs=FS)
    power = _lead_noise_power_fn(m, x, "nstdb", FS, 0.05)
    for lead in range(6, 12):
        if abs(snr[lead] - 12.0) < 0.05:
            continue
        assert snr[lead] < 12.0, (lead, snr[lead])
        e = lead - 3                                      # V1..V6 are electrodes 3..8
        best = []
        for f in np.concatenate([[0.0], np.geomspace(1e-3, 1e3, 61)]):
            gg = g.copy()
            gg[e] *= f
            best.append(10 * np.log10(s[lead] / power(gg)[0][lead]))
        assert max(best) < 12.0 - 0.5, (lead, max(best))
