"""A simulated record whose requested SNR (NSTDB definition, per lead) is reached within
0.5 dB wherever the montage allows it, checked with an independent loop oracle on
``noisy - clean`` (the same record simulated without noise)."""

from __future__ import annotations

import numpy as np
import pytest

from cardiosim.noise import NoiseConfig
from cardiosim.sources.base import CardiacSource
from cardiosim.simulate import SimulationConfig, make_context, simulate_record


def _oracle_per_lead(noise, clean, r, fs):
    """sigamp's definition written out (PHYSICS.md section 6): trimmed means (n // 20 cut at
    each end) of QRS peak-to-peak in [r - 50 ms, r + 50 ms] and of the RMS of 1-s chunks,
    each chunk's own mean removed; S = A^2 / 8, N = a^2."""
    h = int(round(0.05 * fs))
    c = int(round(fs))

    def trimmed(v):
        v = sorted(v)
        lo = len(v) // 20
        return float(np.mean(v[lo:len(v) - lo]))
    out = []
    for k in range(clean.shape[0]):
        a = trimmed([clean[k, max(0, p - h):p + h + 1].max() - clean[k, max(0, p - h):p + h + 1].min() for p in r])
        rms = [np.std(noise[k, i:i + c]) for i in range(0, noise.shape[1] - c + 1, c)]
        out.append(10 * np.log10(a ** 2 / 8 / trimmed(rms) ** 2))
    return np.array(out)


@pytest.fixture(scope="module")
def context():
    return make_context("shirt12_500hz")


@pytest.mark.parametrize("kind,target", [
    ("em", 6.0),
    ("bw", 12.0),    # V6 read 13.01 dB before the 1-D own-gain search (the correlation valley)
])
def test_simulated_record_reaches_requested_snr(context, kind, target, monkeypatch):
    from cardiosim.inverse import dipole_from_vcg
    from cardiosim.ode import synthesize
    from cardiosim.qrs import detect_r_peaks

    fs = 500.0
    beats = synthesize(12.0, fs, np.random.default_rng(3))
    source = CardiacSource(dipole=dipole_from_vcg(beats.vcg, context.forward, context.frank_layout), fs=fs,
                           source_id="snr-test")
    noise_cfg = NoiseConfig(kinds=(kind,), snr_db={kind: (target, target)})
    import cardiosim.noise as noise_pkg
    from cardiosim.noise import snr as snr_mod
    seen = {}

    def spy(en, montage, clean_leads, **kw):     # keep the electrode noise before scaling
        seen.update(en=en, montage=montage)
        return snr_mod.scale_electrode_noise(en, montage, clean_leads, **kw)
    monkeypatch.setattr(noise_pkg, "scale_electrode_noise", spy)
    noisy = simulate_record(source, np.random.default_rng(7), context=context, device_stage=False,
                            config=SimulationConfig(motion=False, noise=noise_cfg))
    clean = simulate_record(source, np.random.default_rng(7), context=context, device_stage=False,
                            config=SimulationConfig(motion=False, add_noise=False))
    c = clean.ecg.astype(np.float64)
    noise = noisy.ecg.astype(np.float64) - c
    r = detect_r_peaks(c, fs)
    got = _oracle_per_lead(noise, c, r, fs)
    p = noisy.params
    reported = np.array([p[f"noise_snr_lead_db.{kind}.{lead}"] for lead in noisy.leads])
    print(f"\n{kind} at {target} dB: per lead {dict(zip(noisy.leads, np.round(got, 2)))}; "
          f"spread reported {p[f'noise_snr_spread_db.{kind}']:.2f} dB; pooled {noisy.snr_db[kind]:.2f} dB")
    np.testing.assert_allclose(reported, got, atol=0.05)
    assert p[f"noise_snr_spread_db.{kind}"] == pytest.approx(np.max(np.abs(got - target)), abs=0.05)
    assert p["noise_snr_targeting"] == "per_lead"
    assert abs(noisy.snr_db[kind] - target) < 1.0
    # A lead misses its target only where the montage forbids it: a chest lead's own
    # electrode appears in no other lead, so its gain is free: it can always be made noisier
    # (a chest lead cleaner than asked would be a failure of the fit), but not cleaner than
    # the noise reaching it through the Wilson terminal from the limb electrodes; and six
    # limb leads from three electrodes cannot all be set.
    # Checked for each chest lead that misses: no gain of its own electrode (0.01x to 10x the
    # fitted one, or off) brings it within 0.5 dB -- the oracle on the electrode noise itself.
    m = seen["montage"].matrix
    x = seen["en"].by_kind[kind].astype(np.float64)
    gains = np.array([p[f"noise_snr_gain.{kind}.{i}"] for i in range(m.shape[1])])
    for lead, value in zip(noisy.leads, got):
        if abs(value - target) < 0.5:
            continue
        if lead.startswith("V"):
            assert value < target, (lead, value)
            j, e = noisy.leads.index(lead), list(seen["montage"].electrodes).index(lead)
            best = []
            for f in (0.0, 0.01, 0.1, 0.3, 1.0, 3.0, 10.0):
                g = gains.copy()
                g[e] *= f
                best.append(_oracle_per_lead(((m[j] * g) @ x)[None], c[j:j + 1], r, fs)[0])
            assert max(best) < target - 0.5 + 0.05, (lead, best)
        else:
            assert lead in ("I", "II", "III", "aVR", "aVL", "aVF"), lead
    n_ok = int(np.sum(np.abs(got - target) < 0.5))
    print(f"  {n_ok} of {len(got)} leads within 0.5 dB")
