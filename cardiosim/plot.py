"""Figures: 12-lead ECG on paper grid, clean-vs-shirt overlays, noise spectra, torso.

All functions build a :class:`matplotlib.figure.Figure` directly (no ``pyplot``, no
global backend state; rendering uses the Agg canvas), so they are safe in scripts,
tests, worker processes and servers. :func:`save_png` writes a figure atomically.

ECG paper follows the standard recording convention: 25 mm/s, 10 mm/mV, 1 mm minor
and 5 mm major grid (AHA recommendations for the standardisation of the ECG, Kligfield
et al., Circulation 2007;115:1306). Figures are sized in millimetres so the printed or
displayed-at-100 % scale is the true paper scale.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .config import check_fs
from .errors import ConfigError, DataFormatError, SignalError
from .leads import STANDARD_LEADS

MM_PER_S = 25.0
MM_PER_MV = 10.0
_MM = 1 / 25.4  # inches per millimetre
_PAPER_MINOR = "#f4b6b6"
_PAPER_MAJOR = "#e06666"
# the conventional 3 x 4 printout: rows of (lead, lead, lead, lead), columns 2.5 s each
_LAYOUT_3X4 = (("I", "aVR", "V1", "V4"), ("II", "aVL", "V2", "V5"), ("III", "aVF", "V3", "V6"))


def _figure(width_in, height_in, dpi=100):
    from matplotlib.figure import Figure
    return Figure(figsize=(width_in, height_in), dpi=dpi)


def _check_signal(x, name, ndim=2):
    x = np.asarray(x)
    if x.ndim != ndim:
        raise SignalError(f"{name} must have {ndim} dimensions, got shape {x.shape}")
    if x.shape[-1] < 2:
        raise SignalError(f"{name} has {x.shape[-1]} samples; need at least 2")
    if not np.all(np.isfinite(x)):
        raise SignalError(f"{name} contains NaN or infinite samples")
    return x


def _check_leads(leads, n, name="ecg"):
    leads = tuple(str(x) for x in leads)
    if len(leads) != n:
        raise ConfigError(f"{len(leads)} lead names {leads} for {n} rows of {name}")
    return leads


def _draw_paper(ax, width_mm, height_mm):
    from matplotlib.collections import LineCollection

    for step, color, lw in ((1.0, _PAPER_MINOR, 0.3), (5.0, _PAPER_MAJOR, 0.6)):
        xs = np.arange(0, width_mm + 1e-9, step)
        ys = np.arange(0, height_mm + 1e-9, step)
        segs = [((x, 0), (x, height_mm)) for x in xs] + [((0, y), (width_mm, y)) for y in ys]
        ax.add_collection(LineCollection(segs, colors=color, linewidths=lw, zorder=0))
    ax.set_xlim(0, width_mm)
    ax.set_ylim(0, height_mm)
    ax.set_aspect("equal")
    ax.set_axis_off()


def _calibration(ax, x0, y0):
    # the 1 mV, 200 ms calibration pulse printed at the start of every row
    ax.plot([x0, x0 + 1, x0 + 1, x0 + 6, x0 + 6, x0 + 7],
            [y0, y0, y0 + MM_PER_MV, y0 + MM_PER_MV, y0, y0], color="k", lw=0.8, zorder=2)


def plot_12lead(ecg, fs: float, leads=STANDARD_LEADS, *, title: str | None = None,
                layout: str = "auto", rhythm_lead: str = "II", dpi: int = 100):
    """A 12-lead ECG on standard paper (25 mm/s, 10 mm/mV, 1/5 mm grid).

    Parameters
    ----------
    ecg : array, shape (n_leads, T), mV
    fs : float, Hz
    leads : sequence of str, length n_leads
    title : str, optional
    layout : {"auto", "3x4", "stacked"}
        ``"3x4"``: the conventional printout -- four 2.5 s columns (I-III, aVR-aVF,
        V1-V3, V4-V6) and a full-length rhythm strip of ``rhythm_lead``; needs all 12
        standard leads. ``"stacked"``: every lead over the full duration, one row each.
        ``"auto"`` picks 3x4 when the standard leads are present.
    rhythm_lead : str
    dpi : int

    Returns
    -------
    matplotlib.figure.Figure, sized to true paper scale.
    """
    ecg = _check_signal(ecg, "ecg")
    check_fs(fs)
    leads = _check_leads(leads, ecg.shape[0])
    if layout == "auto":
        layout = "3x4" if set(STANDARD_LEADS) <= set(leads) else "stacked"
    if layout not in ("3x4", "stacked"):
        raise ConfigError(f"unknown layout {layout!r}; expected 'auto', '3x4' or 'stacked'")
    duration = ecg.shape[1] / fs
    t_mm = np.arange(ecg.shape[1]) / fs * MM_PER_S
    margin = 10.0  # mm on the left for the calibration pulse
    row_h = 30.0   # mm per row (3 mV)
    if layout == "3x4":
        missing = [x for x in STANDARD_LEADS if x not in leads]
        if missing:
            raise ConfigError(f"layout '3x4' needs the 12 standard leads; missing {missing}")
        if rhythm_lead not in leads:
            raise ConfigError(f"rhythm lead {rhythm_lead!r} not among {leads}")
        col_s = duration / 4
        rows = [list(r) for r in _LAYOUT_3X4] + [[rhythm_lead]]
    else:
        rows = [[x] for x in leads]
    width = margin + duration * MM_PER_S + 5
    height = row_h * len(rows) + (8 if title else 2)
    fig = _figure(width * _MM, height * _MM, dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    _draw_paper(ax, width, height)
    for r, row in enumerate(rows):
        y0 = height - (r + 0.5) * row_h - (6 if title else 0)
        _calibration(ax, 1.5, y0)
        for c, name in enumerate(row):
            k = leads.index(name)
            if len(row) == 1:
                sl = slice(None)
            else:
                sl = (t_mm >= c * col_s * MM_PER_S) & (t_mm < (c + 1) * col_s * MM_PER_S)
            ax.plot(margin + t_mm[sl], y0 + MM_PER_MV * ecg[k, sl], color="k", lw=0.7, zorder=3)
            x_label = margin + (0 if len(row) == 1 else c * col_s * MM_PER_S) + 1
            ax.text(x_label, y0 + 0.4 * row_h, name, fontsize=8, zorder=4)
            if len(row) > 1 and c > 0:  # column separator tick, as printed by carts
                xs = margin + c * col_s * MM_PER_S
                ax.plot([xs, xs], [y0 - 4, y0 + 4], color="k", lw=0.8, zorder=3)
    ax.text(margin, 1, f"{MM_PER_S:g} mm/s   {MM_PER_MV:g} mm/mV   fs {fs:g} Hz", fontsize=7, zorder=4)
    if title:
        ax.text(margin, height - 4, title, fontsize=10, va="center", zorder=4)
    return fig


def plot_overlay(clean, shirt, fs: float, leads, *, labels=("clean", "shirt"), dpi: int = 100):
    """Clean and shirt (or any two) recordings of the same leads, overlaid per lead.

    Parameters
    ----------
    clean, shirt : array, shape (n_leads, T), mV, same shape
    fs : float, Hz
    leads : sequence of str, length n_leads

    Returns
    -------
    matplotlib.figure.Figure
    """
    clean = _check_signal(clean, "clean")
    shirt = _check_signal(shirt, "shirt")
    if clean.shape != shirt.shape:
        raise SignalError(f"clean {clean.shape} and shirt {shirt.shape} must have the same shape")
    check_fs(fs)
    leads = _check_leads(leads, clean.shape[0], "clean")
    n = len(leads)
    t = np.arange(clean.shape[1]) / fs
    fig = _figure(10, 1.1 * n + 0.8, dpi)
    axes = fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0]
    for k, ax in enumerate(axes):
        ax.plot(t, clean[k], color="k", lw=0.8, label=labels[0])
        ax.plot(t, shirt[k], color="tab:red", lw=0.8, alpha=0.8, label=labels[1])
        ax.set_ylabel(f"{leads[k]}\nmV", rotation=0, ha="right", va="center", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper right", fontsize=7, ncols=2)
    axes[-1].set_xlabel("time (s)")
    fig.tight_layout()
    return fig


def plot_median_beats(real, synthetic, fs: float, leads=STANDARD_LEADS, *, title: str | None = None,
                      labels=("real", "synthetic"), dpi: int = 100):
    """Median beats of real and synthetic records of one class, overlaid per lead.

    Each record's beat is drawn thin, the median over records thick (real black,
    synthetic red), on a 3 x 4 grid of the standard leads (or one panel per lead).

    Parameters
    ----------
    real, synthetic : array, shape (n_records, n_leads, n_samples), mV — median beats
        aligned on the R peak (e.g. ``cardiosim.ode.realism.measure(...)["beat_b"]``)
    fs : float, Hz
    leads : sequence of str, length n_leads

    Returns
    -------
    matplotlib.figure.Figure
    """
    real = _check_signal(real, "real", ndim=3)
    synthetic = _check_signal(synthetic, "synthetic", ndim=3)
    if real.shape[1:] != synthetic.shape[1:]:
        raise SignalError(f"real {real.shape[1:]} and synthetic {synthetic.shape[1:]} beats "
                          "must have the same (leads, samples)")
    check_fs(fs)
    leads = _check_leads(leads, real.shape[1], "real")
    grid = _LAYOUT_3X4 if sorted(leads) == sorted(STANDARD_LEADS) else tuple((ld,) for ld in leads)
    t = 1e3 * np.arange(real.shape[2]) / fs
    fig = _figure(3.0 * len(grid[0]) + 0.5, 2.2 * len(grid) + 0.6, dpi)
    axes = fig.subplots(len(grid), len(grid[0]), sharex=True, squeeze=False)
    for r, row in enumerate(grid):
        for c, name in enumerate(row):
            ax, k = axes[r, c], leads.index(name)
            for data, color, lab in ((real, "k", labels[0]), (synthetic, "tab:red", labels[1])):
                for beat in data[:, k]:
                    ax.plot(t, beat, color=color, lw=0.4, alpha=0.25)
                ax.plot(t, np.median(data[:, k], axis=0), color=color, lw=1.6,
                        label=f"{lab} (n={data.shape[0]})")
            ax.set_title(name, fontsize=9, loc="left")
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
    axes[0, 0].legend(loc="upper right", fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("time (ms)", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("mV", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_noise_spectra(noise: dict, fs: float, *, nperseg: int | None = None, dpi: int = 100):
    """Welch power spectral densities of noise kinds on log-log axes.

    Parameters
    ----------
    noise : dict of str -> array, shape (T,) or (n_channels, T), mV
        One entry per noise kind (``bw``, ``em``, ``ma``, ...); channels are averaged.
    fs : float, Hz
    nperseg : int, optional
        Welch segment length (default: ``min(T, 8 s)``).

    Returns
    -------
    matplotlib.figure.Figure with PSD in mV**2/Hz against frequency in Hz.
    """
    from scipy.signal import welch

    check_fs(fs)
    if not noise:
        raise SignalError("noise dict is empty")
    fig = _figure(7, 4.5, dpi)
    ax = fig.add_subplot()
    for kind, x in noise.items():
        x = np.asarray(x, dtype=float)
        x = _check_signal(x[None] if x.ndim == 1 else x, f"noise[{kind!r}]")
        seg = nperseg or min(x.shape[-1], int(8 * fs))
        f, p = welch(x, fs=fs, nperseg=seg, axis=-1)
        p = p.mean(axis=0)
        keep = f > 0
        ax.loglog(f[keep], p[keep], lw=1.0, label=str(kind))
    # numerical floors (a pure tone's leakage at 1e-30) would squash the real content
    top = max(np.max(ln.get_ydata()) for ln in ax.lines)
    bottom = min(np.min(ln.get_ydata()) for ln in ax.lines)
    ax.set_ylim(max(bottom, top * 1e-9) / 2, top * 2)
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel("PSD (mV$^2$/Hz)")
    ax.grid(which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_torso(vertices, faces, electrode_positions, names, *, colors=None, elev: float = 15.0,
               azim: float = -75.0, dpi: int = 100):
    """A torso surface with its electrodes, in 3-D.

    Parameters
    ----------
    vertices : array, shape (n, 3), metres, LPS frame (+x left, +y posterior, +z up)
    faces : int array, shape (m, 3)
    electrode_positions : array, shape (n_electrodes, 3), metres
    names : sequence of str, length n_electrodes
    colors : color or sequence of colors, optional
        Marker colour(s), e.g. to tell a displaced set from the reference.
    elev, azim : float, degrees
        View; the default looks at the patient's front (anterior is -y) from slightly
        to the right.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from mpl_toolkits.mplot3d.art3d import (
        Poly3DCollection,  # registers the 3d projection
    )

    v = np.asarray(vertices, dtype=float)
    f = np.asarray(faces)
    e = np.asarray(electrode_positions, dtype=float)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ConfigError(f"vertices must have shape (n, 3), got {v.shape}")
    if f.ndim != 2 or f.shape[1] != 3 or f.size == 0 or f.min() < 0 or f.max() >= len(v):
        raise ConfigError(f"faces must be (m, 3) indices into {len(v)} vertices, got shape {f.shape}")
    if e.ndim != 2 or e.shape[1] != 3:
        raise ConfigError(f"electrode_positions must have shape (n, 3), got {e.shape}")
    names = _check_leads(names, len(e), "electrode_positions")
    fig = _figure(6.5, 7, dpi)
    ax = fig.add_subplot(projection="3d")
    tri = v[f]
    # shade by the face normal's angle to the viewer so the body's shape reads in 2-D
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-30
    light = np.array([-0.3, -1.0, 0.4])
    shade = 0.45 + 0.5 * np.clip(n @ (light / np.linalg.norm(light)), 0, 1)
    face_rgba = np.column_stack([0.95 * shade, 0.8 * shade, 0.7 * shade, np.full(len(shade), 0.35)])
    ax.add_collection3d(Poly3DCollection(tri, facecolors=face_rgba, edgecolors=(0.5, 0.4, 0.4, 0.15),
                                         linewidths=0.2))
    ax.scatter(e[:, 0], e[:, 1], e[:, 2], color="tab:blue" if colors is None else colors, s=30,
               depthshade=False, zorder=10)
    for p, name in zip(e, names):
        ax.text(p[0], p[1] - 0.02, p[2] + 0.01, name, fontsize=8, color="navy", zorder=11)
    lo, hi = v.min(axis=0), v.max(axis=0)
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_zlim(lo[2], hi[2])
    ax.set_box_aspect(hi - lo)
    ax.set_xlabel("x left (m)")
    ax.set_ylabel("y posterior (m)")
    ax.set_zlabel("z up (m)")
    ax.view_init(elev=elev, azim=azim)
    return fig


def plot_record(dataset, record: int, *, leads=None, dpi: int = 100):
    """The 12-lead (or stacked) plot of one record of a cardiosim dataset.

    Parameters
    ----------
    dataset : xarray.Dataset or path
        An open dataset or a file / shard directory (opened with ``cardiosim.dataset``).
    record : int
        Position of the record along the ``record`` dimension.

    Returns
    -------
    matplotlib.figure.Figure
    """
    ds = dataset
    if not hasattr(ds, "data_vars"):
        from .dataset import open_dataset
        ds = open_dataset(dataset)
    n = ds.sizes.get("record", 0)
    if not 0 <= record < n:
        raise DataFormatError(f"record {record} out of range: the dataset has {n} records")
    if "ecg" not in ds or "sampling_rate" not in ds.attrs:
        raise DataFormatError("dataset lacks the 'ecg' variable or the 'sampling_rate' attribute")
    rec = ds["ecg"].isel(record=record)
    names = [str(x) for x in rec["lead"].values]
    if leads is not None:
        rec = rec.sel(lead=list(leads))
        names = list(leads)
    return plot_12lead(np.asarray(rec.values, dtype=float), float(ds.attrs["sampling_rate"]), names,
                       title=record_title(ds, record), dpi=dpi)


def _scalar(ds, name: str, record: int):
    """``ds[name]`` of one record as a Python scalar, or None when absent or missing (NaN)."""
    if name not in ds or ds[name].dims != ("record",):
        return None
    v = ds[name].isel(record=record).values
    v = v.item() if hasattr(v, "item") else v
    if isinstance(v, float) and not np.isfinite(v):
        return None
    return None if isinstance(v, str) and v in ("", "none", "nan") else v


def record_title(ds, record: int) -> str:
    """One line saying what a dataset record is: source, labels, simulated class, heart rate,
    activity, electrode type, artefact grade and device -- whatever of these the dataset stores.

    For ``record 0 - ode:0 - labels LBBB - SR+LBBB - 77 bpm - rest - textile electrodes - grade 1 - shirt12_500hz``
    (joined by middle dots) a reader of the figure knows what the tracing should show."""
    parts = [f"record {record}"]
    sid = _scalar(ds, "source_id", record)
    if sid is not None:
        parts.append(str(sid))
    if "label" in ds and "class" in ds["label"].dims:
        names = [str(c) for c in ds["class_name"].values] if "class_name" in ds else \
            [str(c) for c in ds["class"].values]
        on = np.flatnonzero(np.asarray(ds["label"].isel(record=record).values) > 0)
        parts.append("labels " + (", ".join(names[k] for k in on) if on.size else "none"))
    cls = _scalar(ds, "param_source_ode_class", record)
    if cls is not None:
        parts.append(str(cls))
    hr = _scalar(ds, "heart_rate", record)
    if hr is not None:
        parts.append(f"{float(hr):.0f} bpm")
    act = _scalar(ds, "param_activity", record)
    if act is not None:
        parts.append(str(act))
    el = _scalar(ds, "param_noise_activity_noise_electrode", record)
    if el is not None:
        parts.append(f"{el} electrodes")
    grade = _scalar(ds, "artefact_grade", record)
    if grade is not None:
        parts.append(f"artefact grade {int(grade)}")
    fail = _scalar(ds, "param_failure", record)
    if fail is not None:
        parts.append(f"failure {fail}")
    if ds.attrs.get("device"):
        parts.append(str(ds.attrs["device"]))
    return " \u00b7 ".join(parts)


def save_png(fig, path, *, dpi: int | None = None) -> Path:
    """Write ``fig`` to ``path`` as PNG atomically (temporary file beside it, then rename).

    Returns the path written.
    """
    from ._atomic import atomic_path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".tmp.png") as tmp:
        fig.savefig(tmp, format="png", dpi=dpi or fig.dpi)
    return path
