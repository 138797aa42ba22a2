"""The NSTDB SNR read back from records rebuilt as the WFDB ``nst`` program builds them.

``nst`` (Moody, Muldrow & Mark 1984; PHYSICS.md section 6) adds noise record channel
``i % 2`` to ECG channel ``i`` with the gain ``r_i = nsr * A_i / a_i``, ``nsr =
10^(-SNR/20) sqrt(2) / 4``, where ``A_i`` is ``sigamp -a atr``'s trimmed mean of the QRS
peak-to-peak amplitudes of the first 300 normal beats ([t - 50 ms, t + 50 ms]) and ``a_i``
``sigamp``'s trimmed mean of the RMS of the first 300 one-second noise chunks, each with
its own mean removed. The oracle below re-implements ``sigamp`` straightforwardly (loops,
from its C source). Records: clean MIT-BIH ``mitdb/100`` + the real NSTDB ``bw`` and ``ma``
noise at 24, 12 and 0 dB, in ADC units as ``nst`` works (truncated to integers).
"""

from __future__ import annotations

import numpy as np
import pytest

from cardiosim.noise import measure_snr

NORMAL = ("N", "L", "R", "e", "j")     # beat codes sigamp's map1() maps to NORMAL


def _trimmed(vals):
    vals = sorted(vals)
    lo = len(vals) // 20
    return float(np.mean(vals[lo:len(vals) - lo]))


def _sigamp_rms(x, fs, nmax=300, demean=True):
    c = int(round(fs))
    out = []
    for i in range(min(nmax, len(x) // c)):
        w = x[i * c:(i + 1) * c].astype(np.float64)
        if demean:
            w = w - w.mean()
        out.append(np.sqrt(np.mean(w ** 2)))
    return _trimmed(out)


def _sigamp_ptp(x, beats, fs, nmax=300):
    h = int(round(0.05 * fs))
    out = []
    for t in beats[:nmax]:
        w = x[max(0, t - h):t + h + 1]
        out.append(float(w.max() - w.min()))
    return _trimmed(out)


@pytest.fixture(scope="module")
def mitdb_nstdb(data_dir):
    import wfdb
    if not (data_dir / "mitdb" / "100.hea").is_file() or not (data_dir / "nstdb" / "bw.hea").is_file():
        pytest.skip("mitdb/100 or nstdb records not found")
    ecg = wfdb.rdrecord(str(data_dir / "mitdb" / "100"), physical=False)
    ann = wfdb.rdann(str(data_dir / "mitdb" / "100"), "atr")
    clean = ecg.d_signal.T.astype(np.int64) - np.asarray(ecg.baseline)[:, None]
    normal = np.array([s for s, sym in zip(ann.sample, ann.symbol) if sym in NORMAL])
    noise = {k: wfdb.rdrecord(str(data_dir / "nstdb" / k), physical=False).d_signal.T.astype(np.int64)
             for k in ("bw", "ma")}
    assert ecg.adc_gain == [200.0, 200.0]
    return clean, normal, noise, float(ecg.fs)


def _nst(clean, normal, noise, fs, snr):
    """The noise nst adds (ADC units, whole record), and its per-channel gains."""
    n = min(clean.shape[1], noise.shape[1])
    nsr = 10 ** (-snr / 20) * np.sqrt(2) / 4
    gains = [nsr * _sigamp_ptp(clean[i], normal, fs) / _sigamp_rms(noise[i % 2], fs) for i in range(2)]
    added = np.stack([np.trunc(gains[i] * noise[i % 2, :n]) for i in range(2)])
    return added, gains


@pytest.mark.parametrize("kind", ["bw", "ma"])
@pytest.mark.parametrize("snr", [24.0, 12.0, 0.0])
def test_nst_record_snr_read_back(mitdb_nstdb, kind, snr):
    clean, normal, noise, fs = mitdb_nstdb
    added, gains = _nst(clean, normal, noise[kind], fs, snr)
    n = added.shape[1]
    clean_mv, noise_mv = clean[:, :n] / 200.0, added / 200.0          # 200 adu/mV
    beats = normal[normal < n]
    # measured as nst measures: the first 300 beats and 1-s chunks
    per_lead = measure_snr(noise_mv, clean_mv, fs=fs, r_peaks=beats, per_lead=True, max_measurements=300)
    pooled = measure_snr(noise_mv, clean_mv, fs=fs, r_peaks=beats, max_measurements=300)
    # over the whole record (the noise is not stationary: its later chunks are quieter)
    whole = measure_snr(noise_mv, clean_mv, fs=fs, r_peaks=beats, per_lead=True)
    print(f"\n{kind} {snr:+.0f} dB: gains {np.round(gains, 3)}; read back per lead {np.round(per_lead, 2)}, "
          f"pooled {pooled:.2f}; whole record {np.round(whole, 2)}")
    np.testing.assert_allclose(per_lead, snr, atol=0.5)
    assert abs(pooled - snr) < 0.5
    # the step matters: without removing each chunk's mean the same record reads low
    no_step = [20 * np.log10(_sigamp_ptp(clean[i], normal, fs) / np.sqrt(8)
                             / _sigamp_rms(added[i], fs, demean=False)) for i in range(2)]
    print(f"  without the per-chunk mean removal: {np.round(no_step, 2)} dB")
    if kind == "bw":
        assert np.all(np.asarray(no_step) < snr - 0.5)


def test_protocol_blocks_match_oracle(mitdb_nstdb):
    """nst's protocol: noise on in 2-min blocks from 5:00; the SNR of the noisy blocks read
    by measure_snr equals the loop oracle (both with the per-chunk mean removal)."""
    clean, normal, noise, fs = mitdb_nstdb
    added, _ = _nst(clean, normal, noise["ma"], fs, 12.0)
    n = added.shape[1]
    t = np.arange(n)
    on = (t >= 300 * fs) & (((t - 300 * fs) // (120 * fs)) % 2 == 0)
    blocks = added[:, on] / 200.0
    got = measure_snr(blocks, clean[:, :n] / 200.0, fs=fs, r_peaks=normal[normal < n], per_lead=True)
    want = [20 * np.log10(_sigamp_ptp(clean[i], normal, fs, nmax=10 ** 6) / 200.0 / np.sqrt(8)
                          / _sigamp_rms(blocks[i], fs, nmax=10 ** 6)) for i in range(2)]
    np.testing.assert_allclose(got, want, atol=0.02)
