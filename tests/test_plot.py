"""cardiosim.plot: every figure renders to a non-empty PNG of the expected size, the ECG
paper has the standard scale (25 mm/s, 10 mm/mV), and bad input raises.

The ECG is made here from the Gaussian-wave direct form (PHYSICS.md §5, adult set) and
the Dower matrix (PHYSICS.md §1), so the figures show physiological shapes.
"""

from __future__ import annotations

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
from matplotlib.image import imread

from cardiosim import plot
from cardiosim.errors import ConfigError, SignalError
from cardiosim.leads import STANDARD_LEADS

ADULT = {  # PHYSICS.md §5 (OSET / FECGSYN load_gparam case 1), radians
    "X": ([-1.09, -0.83, -0.19, -0.07, 0, 0.06, 0.22, 1.2, 1.42, 1.68],
          [0.03, 0.08, -0.13, 0.85, 1.11, 0.75, 0.06, 0.1, 0.17, 0.39],
          [0.0906, 0.1057, 0.0453, 0.0378, 0.0332, 0.0302, 0.0378, 0.6040, 0.3020, 0.1812]),
    "Y": ([-1.1, -0.9, -0.76, -0.11, -0.01, 0.065, 0.8, 1.58],
          [0.035, 0.015, -0.019, 0.32, 0.51, -0.32, 0.04, 0.08],
          [0.07, 0.07, 0.04, 0.055, 0.037, 0.0604, 0.450, 0.3]),
    "Z": ([-1.1, -0.93, -0.7, -0.4, -0.15, 0.095, 1.05, 1.25, 1.55],
          [-0.03, -0.14, -0.035, 0.045, -0.4, 0.46, -0.12, -0.2, -0.35],
          [0.03, 0.12, 0.04, 0.4, 0.045, 0.05, 0.8, 0.4, 0.2]),
}
DOWER = np.array([  # rows V1..V6, I, II; columns X, Y, Z (PHYSICS.md §1)
    [-0.515, 0.157, -0.917], [0.044, 0.164, -1.387], [0.882, 0.098, -1.277], [1.213, 0.127, -0.601],
    [1.125, 0.127, -0.086], [0.831, 0.076, 0.230], [0.632, -0.235, 0.059], [0.235, 1.066, -0.132]])


def synthetic_12lead(fs=250.0, duration=10.0, hr=72.0):
    t = np.arange(int(fs * duration)) / fs
    phase = 2 * np.pi * hr / 60 * t - np.pi
    vcg = np.zeros((3, t.size))
    for a, ax in enumerate("XYZ"):
        for th, al, b in zip(*ADULT[ax]):
            d = (phase - th + np.pi) % (2 * np.pi) - np.pi
            vcg[a] += al * np.exp(-d ** 2 / (2 * b ** 2))
    v = DOWER @ vcg
    i, ii = v[6], v[7]
    iii = ii - i
    limb = np.stack([i, ii, iii, -(i + ii) / 2, i - ii / 2, ii - i / 2])
    return np.concatenate([limb, v[:6]]).astype(np.float32)


def _check_png(path, fig, min_std=0.02):
    img = imread(path)
    w, h = fig.get_size_inches() * fig.dpi
    assert img.shape[0] == pytest.approx(h, abs=1) and img.shape[1] == pytest.approx(w, abs=1)
    gray = img[..., :3].mean(axis=-1)
    assert gray.std() > min_std            # not a blank canvas
    assert (gray < 0.3).mean() > 1e-4      # some dark ink (traces, labels)
    return img


def test_12lead_paper_scale_and_png(tmp_path):
    ecg = synthetic_12lead()
    fig = plot.plot_12lead(ecg, 250.0, STANDARD_LEADS, title="synthetic adult, 72 bpm")
    # true scale: 10 s at 25 mm/s plus 15 mm of margins
    assert fig.get_size_inches()[0] == pytest.approx((10 * 25 + 15) / 25.4)
    ax = fig.axes[0]
    traces = [ln for ln in ax.lines if len(ln.get_xdata()) > 100]
    assert len(traces) == 13                    # 12 lead segments + rhythm strip
    first = traces[0]                            # lead I, first 2.5 s column
    x, y = np.asarray(first.get_xdata()), np.asarray(first.get_ydata())
    assert np.ptp(x) == pytest.approx(2.5 * 25 - 25 / 250, abs=1e-6)       # 25 mm/s
    assert np.ptp(y) == pytest.approx(10 * np.ptp(ecg[0, :625]), rel=1e-5)  # 10 mm/mV
    rhythm = traces[-1]
    np.testing.assert_allclose(np.diff(np.asarray(rhythm.get_ydata())), 10 * np.diff(ecg[1]), rtol=1e-4, atol=1e-4)
    path = plot.save_png(fig, tmp_path / "twelve.png")
    _check_png(path, fig)
    assert not list(tmp_path.glob(".*tmp*"))     # atomic write leaves no temporary


def test_stacked_layout_for_other_leads(tmp_path):
    ecg = synthetic_12lead(duration=4.0)[:3]
    fig = plot.plot_12lead(ecg, 250.0, ["I", "II", "III"])
    traces = [ln for ln in fig.axes[0].lines if len(ln.get_xdata()) > 100]
    assert len(traces) == 3 and all(np.ptp(ln.get_xdata()) == pytest.approx(4 * 25 - 0.1) for ln in traces)
    _check_png(plot.save_png(fig, tmp_path / "three.png"), fig)


def test_overlay_png(tmp_path, rng):
    clean = synthetic_12lead(duration=5.0)
    shirt = clean * 0.8 + 0.05 * rng.normal(size=clean.shape)
    fig = plot.plot_overlay(clean, shirt, 250.0, STANDARD_LEADS)
    assert len(fig.axes) == 12
    np.testing.assert_allclose(fig.axes[3].lines[1].get_ydata(), shirt[3])
    _check_png(plot.save_png(fig, tmp_path / "overlay.png"), fig)


def test_noise_spectra_slopes_and_png(tmp_path, rng):
    fs = 360.0
    n = int(60 * fs)
    white = rng.normal(size=n)
    brown = np.cumsum(rng.normal(size=n)) * 0.01
    pli = 0.1 * np.sin(2 * np.pi * 50 * np.arange(n) / fs)[None].repeat(2, 0)
    fig = plot.plot_noise_spectra({"white": white, "brown": brown, "pli": pli}, fs)
    ax = fig.axes[0]
    lines = {ln.get_label(): ln for ln in ax.lines}
    f, p = lines["white"].get_xydata().T
    band = (f > 2) & (f < 100)
    assert abs(np.polyfit(np.log(f[band]), np.log(p[band]), 1)[0]) < 0.15      # flat
    f, p = lines["brown"].get_xydata().T
    band = (f > 1) & (f < 20)
    assert np.polyfit(np.log(f[band]), np.log(p[band]), 1)[0] == pytest.approx(-2, abs=0.3)  # 1/f^2
    f, p = lines["pli"].get_xydata().T
    assert f[np.argmax(p)] == pytest.approx(50, abs=0.2)
    _check_png(plot.save_png(fig, tmp_path / "spectra.png"), fig)


def _elliptic_torso():
    from scipy.spatial import ConvexHull
    a = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    z = np.linspace(-0.3, 0.3, 9)
    pts = np.array([(0.17 * np.cos(t), 0.11 * np.sin(t), zz) for zz in z for t in a])
    return pts, ConvexHull(pts).simplices


def test_torso_png(tmp_path):
    pts, faces = _elliptic_torso()
    names = ["V1", "V2", "V4", "LA", "RA"]
    elec = np.array([[-0.03, -0.11, 0.05], [0.03, -0.11, 0.05], [0.08, -0.09, 0.0],
                     [0.15, -0.05, 0.25], [-0.15, -0.05, 0.25]])
    fig = plot.plot_torso(pts, faces, elec, names)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == names
    _check_png(plot.save_png(fig, tmp_path / "torso.png"), fig)


def test_plot_record_from_dataset(tmp_path):
    xr = pytest.importorskip("xarray")
    ecg = synthetic_12lead(duration=10.0)[None]
    ds = xr.Dataset({"ecg": (("record", "lead", "time"), ecg),
                     "source_id": (("record",), np.array(["ode:0"], dtype=object))},
                    coords={"lead": list(STANDARD_LEADS)}, attrs={"sampling_rate": 250.0})
    fig = plot.plot_record(ds, 0)
    assert any("ode:0" in t.get_text() for t in fig.axes[0].texts)
    _check_png(plot.save_png(fig, tmp_path / "record.png"), fig)
    with pytest.raises(Exception, match="out of range"):
        plot.plot_record(ds, 3)


def test_record_title_says_what_the_record_is():
    """`cardiosim plot` titled a figure "ode:0 (record 0)": a reader could not tell what the
    tracing should show. The title now names the labels, simulated class, rate, activity,
    electrodes, artefact grade and device -- whatever the dataset stores, nothing invented."""
    xr = pytest.importorskip("xarray")
    ecg = synthetic_12lead(duration=10.0)[None].repeat(2, axis=0)
    rec1 = {"heart_rate": [77.3, np.nan], "param_activity": ["rest", "walk"],
            "param_source_ode_class": ["SR+LBBB", ""], "param_noise_activity_noise_electrode": ["textile", "gel"],
            "artefact_grade": [1, 3], "param_failure": ["none", "electrode_off:RA"]}
    ds = xr.Dataset({"ecg": (("record", "lead", "time"), ecg),
                     "source_id": (("record",), np.array(["ode:0", "ptbxl:17"], dtype=object)),
                     "label": (("record", "class"), np.array([[0, 1, 0], [1, 0, 1]], np.int8)),
                     "class_name": (("class",), np.array(["NORM", "LBBB", "AF"], dtype=object)),
                     **{k: (("record",), np.array(v, dtype=object if isinstance(v[0], str) else float))
                        for k, v in rec1.items()}},
                    coords={"lead": list(STANDARD_LEADS), "class": [0, 1, 2]},
                    attrs={"sampling_rate": 250.0, "device": "shirt12_500hz"})
    assert plot.record_title(ds, 0) == ("record 0 \u00b7 ode:0 \u00b7 labels LBBB \u00b7 SR+LBBB \u00b7 77 bpm \u00b7 rest "
                                        "\u00b7 textile electrodes \u00b7 artefact grade 1 \u00b7 shirt12_500hz")
    # missing values (NaN rate, empty class) are left out, several labels joined, failures named
    assert plot.record_title(ds, 1) == ("record 1 \u00b7 ptbxl:17 \u00b7 labels NORM, AF \u00b7 walk \u00b7 gel electrodes "
                                        "\u00b7 artefact grade 3 \u00b7 failure electrode_off:RA \u00b7 shirt12_500hz")
    fig = plot.plot_record(ds, 1)
    assert any("labels NORM, AF" in t.get_text() for t in fig.axes[0].texts)


def test_bad_input_raises():
    ecg = synthetic_12lead(duration=2.0)
    with pytest.raises(ConfigError, match="11 lead names"):
        plot.plot_12lead(ecg, 250.0, STANDARD_LEADS[:11])
    bad = ecg.copy()
    bad[2, 5] = np.nan
    with pytest.raises(SignalError, match="NaN"):
        plot.plot_12lead(bad, 250.0)
    with pytest.raises(SignalError, match="-5"):
        plot.plot_12lead(ecg, -5)
    with pytest.raises(SignalError, match="same shape"):
        plot.plot_overlay(ecg, ecg[:, :-1], 250.0, STANDARD_LEADS)
    with pytest.raises(ConfigError, match="missing"):
        plot.plot_12lead(ecg[:6], 250.0, STANDARD_LEADS[:6], layout="3x4")
    with pytest.raises(ConfigError, match="faces"):
        plot.plot_torso(np.zeros((3, 3)), np.array([[0, 1, 7]]), np.zeros((1, 3)), ["V1"])


def test_median_beats_overlay_png(tmp_path, rng):
    beat = synthetic_12lead(fs=250.0, duration=1.0 / 1.2, hr=72.0)
    real = beat[None] * rng.uniform(0.8, 1.2, (5, 1, 1))
    syn = beat[None] * rng.uniform(0.6, 1.4, (7, 1, 1))
    fig = plot.plot_median_beats(real, syn, 250.0, STANDARD_LEADS, title="NORM")
    assert len(fig.axes) == 12
    ax_v1 = fig.axes[2]  # 3 x 4 grid: I, aVR, V1, V4 on the first row
    assert ax_v1.get_title(loc="left") == "V1"
    # per lead: 5 + 7 thin beats and the two medians; the real median drawn exactly
    assert len(ax_v1.lines) == 5 + 1 + 7 + 1
    np.testing.assert_allclose(ax_v1.lines[5].get_ydata(), np.median(real[:, 6], axis=0))
    _check_png(plot.save_png(fig, tmp_path / "median_beats.png"), fig)
    with pytest.raises(SignalError):
        plot.plot_median_beats(real, syn[:, :, :-1], 250.0)
