"""The refiner's slope bound (issue 18): whatever the network outputs, the refinement's
spatial velocity stays below a fraction of the record's own QRS spatial velocity, so a
refiner cannot write a QRS-like deflection that an R-peak detector takes for a beat.

Analytic checks of :func:`cardiosim.torch.refine.bound_slope` and :func:`qrs_slopes`, and
an adversarial "refiner" that injects a full-size QRS between two beats: unbounded, the
detector finds an extra beat; bounded (the default fraction), it finds exactly the input's
beats -- and the average-beat projection still holds exactly.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cardiosim.errors import ConfigError  # noqa: E402
from cardiosim.qrs import detect_r_peaks  # noqa: E402
from cardiosim.torch.refine import (MAX_AMPLITUDE_FRACTION, MAX_SLOPE_FRACTION,  # noqa: E402
                                    QRS_HALF_WINDOW_S, Refiner, average_beat_projector, bound_slope,
                                    load_refiner, qrs_scales, qrs_slopes,
                                    refine, refine_records, remove_average_beat, save_refiner,
                                    spatial_velocity)

FS, N_T = 250.0, 2500


def gauss(t, mu, sigma):
    return np.exp(-0.5 * ((t - mu) / sigma) ** 2)


def synthetic_records(rng, n=3, n_leads=3):
    """Records with Gaussian QRS (sigma 12 ms) and T waves at 60-75 bpm, small noise; true peaks."""
    t = np.arange(N_T) / FS
    xs, peaks = [], []
    for _ in range(n):
        rr = rng.uniform(0.8, 1.0)
        p = np.arange(0.5, t[-1] - 0.5, rr)
        gain = rng.uniform(0.5, 1.5, n_leads)
        sig = sum(gauss(t, c, 0.012) + 0.25 * gauss(t, c + 0.3, 0.05) for c in p)
        xs.append(gain[:, None] * sig[None] + 0.01 * rng.standard_normal((n_leads, N_T)))
        peaks.append(np.round(p * FS).astype(np.int64))
    return np.stack(xs).astype(np.float32), peaks


def test_bound_holds_exactly_and_leaves_small_changes_alone():
    rng = np.random.default_rng(11)
    change = torch.as_tensor(rng.standard_normal((4, 3, 500)))
    peak = spatial_velocity(change, FS).amax(dim=-1)
    limit = peak * torch.tensor([0.1, 0.5, 1.0, 2.0], dtype=torch.float64)
    out = bound_slope(change, limit, FS)
    got = spatial_velocity(out, FS).amax(dim=-1)
    assert torch.allclose(got, torch.minimum(limit, peak), rtol=1e-12, atol=0)   # exactly at the limit
    assert torch.equal(out[2:], change[2:])                                      # already below: untouched
    ratio = out[:2] / change[:2]                                                  # one scale per record
    assert torch.allclose(ratio, ratio[:, :1, :1].expand_as(ratio), rtol=1e-12)
    assert torch.equal(bound_slope(torch.zeros(1, 2, 50), torch.ones(1), FS), torch.zeros(1, 2, 50))
    # the amplitude bound, alone and with the slope bound: the tighter one sets the scale
    size = torch.linalg.vector_norm(change, dim=-2).amax(dim=-1)
    amp = size * torch.tensor([0.2, 0.5, 1.0, 3.0], dtype=torch.float64)
    out = bound_slope(change, None, FS, amp)
    assert torch.allclose(torch.linalg.vector_norm(out, dim=-2).amax(dim=-1), torch.minimum(amp, size),
                          rtol=1e-12, atol=0)
    both = bound_slope(change, limit, FS, amp)
    factor = torch.minimum(torch.minimum(limit / peak, amp / size), torch.ones(4, dtype=torch.float64))
    assert torch.allclose(both, change * factor[:, None, None], rtol=1e-12, atol=0)


def test_the_amplitude_bound_bounds_the_median_beat():
    """A median over beats moves by at most the largest change among the beats at each
    sample: with the change bounded in amplitude, the median beat moves by no more."""
    rng = np.random.default_rng(4)
    x, peaks = synthetic_records(rng, n=2)
    ((w, counts),) = average_beat_projector(peaks[:1], N_T, FS)
    d = torch.as_tensor(rng.standard_normal((1, 3, N_T)))
    d = remove_average_beat(d[0], w, counts)[None]
    lim = np.array([0.05])
    y = x[:1].astype(np.float64) + bound_slope(d, None, FS, lim).numpy()
    moved = np.abs(np.median(y[0][:, w], axis=1) - np.median(x[0].astype(np.float64)[:, w], axis=1)).max()
    assert 0 < moved <= lim[0] * (1 + 1e-12)
    assert np.abs((y - x[:1])[0][:, w].mean(axis=1)).max() < 1e-12          # and the average beat is kept


def test_qrs_slope_is_the_median_beat_peak_spatial_velocity():
    t = np.arange(N_T) / FS
    peaks = np.array([250, 500, 750, 1000])
    amp = np.array([1.0, 2.0, 3.0, 10.0])          # one tall artefact-like beat: the median ignores it
    x = np.zeros((1, 2, N_T))
    for a, p in zip(amp, peaks):
        x[0, 0] += a * gauss(t, p / FS, 0.01)
    x[0, 1] = 0.5 * x[0, 0]
    sv = np.sqrt(1.25) * np.abs(np.diff(x[0, 0])) * FS
    h = int(round(QRS_HALF_WINDOW_S * FS))
    per_beat = [sv[p - h:p + h].max() for p in peaks]
    assert qrs_slopes(x, [peaks], FS)[0] == pytest.approx(np.median(per_beat), rel=1e-12)
    assert qrs_slopes(x, [np.array([], dtype=np.int64)], FS)[0] == pytest.approx(sv.max(), rel=1e-12)


class SpikeInjector(Refiner):
    """An adversarial refiner: adds, in every lead, a copy of the record's tallest QRS
    (full height) halfway between the second and third R peaks."""

    def __init__(self, n_leads, where, **kw):
        super().__init__(n_leads, channels=2, blocks=1, **kw)
        self.where = where

    def forward(self, x):
        t = torch.arange(x.shape[-1], dtype=x.dtype)
        spike = torch.exp(-0.5 * ((t - self.where) / (0.012 * FS)) ** 2)
        return x + x.amax(dim=-1, keepdim=True) * spike


def test_an_injected_qrs_is_bounded_below_what_a_detector_takes_for_a_beat():
    rng = np.random.default_rng(5)
    x, peaks = synthetic_records(rng, n=1)
    where = (peaks[0][1] + peaks[0][2]) // 2
    before = detect_r_peaks(x[0], FS)
    assert len(before) == len(peaks[0])
    free = SpikeInjector(3, where, keep_average_beat=True)                       # the projection only
    y_free = refine(free, x, r_peaks=peaks, fs=FS)
    assert len(detect_r_peaks(y_free[0], FS)) == len(before) + 1                 # it reads an extra beat
    bounded = SpikeInjector(3, where, keep_average_beat=True, max_slope_fraction=MAX_SLOPE_FRACTION)   # slope only
    y = refine(bounded, x, r_peaks=peaks, fs=FS)
    d = torch.as_tensor(y.astype(np.float64) - x)
    limit = MAX_SLOPE_FRACTION * qrs_slopes(x, peaks, FS)[0]
    # float32 output: the bound to the rounding of x + change
    assert spatial_velocity(d, FS).max().item() <= limit * (1 + 1e-5) + 4 * np.abs(x).max() * 2e-7 * FS
    assert np.array_equal(detect_r_peaks(y[0], FS), before)                      # the same beats
    assert np.abs(y - x).max() > 0.05                                            # yet it did change the record
    # the average beat is still the input's: the bound scales the projected change
    ((w, counts),) = average_beat_projector(peaks, N_T, FS)
    assert np.abs(d.numpy()[0][:, w].mean(axis=1)).max() < 1e-5
    # without given peaks (the online transform) the record's own detected peaks set the bound
    online = refine_records(bounded, x, fs=FS)
    assert np.array_equal(online, refine(bounded, x, r_peaks=[before], fs=FS))
    assert np.array_equal(detect_r_peaks(online[0], FS), before)
    with pytest.raises(ConfigError, match="QRS slope"):
        bounded.config["keep_average_beat"] = False
        refine(bounded, x)


def test_the_bound_travels_with_a_saved_refiner(tmp_path):
    from cardiosim.torch.refine import fit_refiner

    torch.set_num_threads(1)
    rng = np.random.default_rng(8)
    x, peaks = synthetic_records(rng, n=4)
    real = (0.3 * rng.standard_normal((4, 3, N_T))).astype(np.float32)
    res = fit_refiner(x, real, fs=FS, r_peaks=peaks, lambda_physics=0.0, steps=3, batch=2, channels=4, lr=1e-2,
                      seed=2)
    assert res.refiner.config["max_slope_fraction"] == MAX_SLOPE_FRACTION == res.settings["max_slope_fraction"]
    assert res.refiner.config["max_amplitude_fraction"] == MAX_AMPLITUDE_FRACTION \
        == res.settings["max_amplitude_fraction"]
    save_refiner(res, tmp_path / "r.pt")
    model, _ = load_refiner(tmp_path / "r.pt")
    assert model.config == res.refiner.config
    assert np.array_equal(refine(model, x, r_peaks=peaks, fs=FS), refine(res.refiner, x, r_peaks=peaks, fs=FS))
    y = refine(model, x, r_peaks=peaks, fs=FS)
    sv = spatial_velocity(torch.as_tensor(y.astype(np.float64) - x), FS).amax(dim=-1).numpy()
    assert np.all(sv <= MAX_SLOPE_FRACTION * qrs_slopes(x, peaks, FS) * (1 + 1e-5) + 1e-3)
    size = np.linalg.norm(y.astype(np.float64) - x, axis=1).max(axis=-1)
    assert np.all(size <= MAX_AMPLITUDE_FRACTION * qrs_scales(x, peaks, FS)[1] * (1 + 1e-5) + 1e-6)
    off = fit_refiner(x, real, fs=FS, r_peaks=peaks, lambda_physics=0.0, steps=1, batch=2, channels=4,
                      max_slope_fraction=0.0)
    assert off.refiner.config["max_slope_fraction"] == 0.0
    with pytest.raises(ConfigError, match="R peaks"):
        fit_refiner(x, real, fs=FS, lambda_physics=0.0, steps=1, batch=2, keep_average_beat=False,
                    max_slope_fraction=0.25)
    with pytest.raises(ConfigError, match="R peaks"):
        fit_refiner(x, real, fs=FS, lambda_physics=0.0, steps=1, batch=2, keep_average_beat=False,
                    max_slope_fraction=0.0, max_amplitude_fraction=0.1)
    with pytest.raises(ConfigError, match="max_slope_fraction"):
        Refiner(3, max_slope_fraction=-1.0)
