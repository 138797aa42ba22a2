"""A SimGAN-style refiner: simulated device records made to look like a user's own device.

Shrivastava et al., "Learning from Simulated and Unsupervised Images through Adversarial
Training", CVPR 2017 (SimGAN): a refiner ``R`` maps a simulated sample ``x`` to
``R(x)``; a discriminator ``D`` learns to tell refined samples from real unlabeled
ones; ``R`` is trained to fool ``D`` (local, patch-wise adversarial loss) while a
*self-regularisation* term ``|R(x) - x|_1`` keeps it close to its input so that the
simulation's labels stay valid; ``D`` also sees a history buffer of earlier refined
samples, so ``R`` cannot oscillate between artefacts. For ECG, Golany, Radinsky &
Freedman (ICML 2020) add the simulator's ODE as a physics term (the "Euler loss",
:func:`cardiosim.torch.euler_loss`).

The physics term here. The refined record is ``x + r`` with ``x = clean + noise``
(both known for a simulated record: ``clean_ecg`` and ``ecg`` of a cardiosim dataset).
Its cardiac part is therefore ``clean + r``. For every record the Gaussian-wave model
(Sameni et al. 2007, PHYSICS.md section 5) is fitted to ``clean`` *in lead space*: the
phase ``theta(t)`` runs linearly from one true R peak to the next (0 at each R peak),
the 27 wave centres and widths are the adult set's (all three Frank axes pooled, since a
lead mixes the axes linearly), and each lead's 27 amplitudes are the least-squares fit.
The physics loss is the Euler residual of ``clean + r`` under that record's own ODE,
relative to the residual of ``clean`` itself. For a small change ``r`` it grows with the
change's *derivative* against the ODE's: a refinement that steepens, notches or moves
the QRS or T (what defines a label) costs much; slow changes between beats (wander,
electrode drift) cost little and are held back by the self-regularisation only.

The beat term. A slow change that moves a P onset or a T end costs little in the Euler
residual, yet it is what a delineator reads to decide a label (PR, QT, ST). So the
refinement's *beat-locked average* -- its mean over the record's beats, in a window from
P onset to T end around each true R peak -- is penalised too: what the refiner adds
must vary from beat to beat, as noise and artefacts do, and leave the average beat alone.
By default this is not a penalty but a constraint (``keep_average_beat``): the refinement is
projected, by least squares, onto the records whose beat-locked average is zero
(:func:`remove_average_beat`), in training and wherever a refiner is applied, so the refined
record's average beat *is* the simulated one (to float32 rounding) whatever the refiner
learned; the penalty (``lambda_beat``) remains for records without known R peaks.

The slope bound. The projection keeps the *average* beat, not each beat: a refiner that
changed records by a third added beat-to-beat content that an R-peak detector read as extra
beats (one record at 78.7 instead of 62.9 bpm). So the projected refinement is also scaled,
one factor per record, until its spatial velocity (the norm over leads of its time
derivative) is at most ``max_slope_fraction`` (default 0.25) of the record's own QRS
spatial velocity (:func:`bound_slope`, :func:`qrs_slopes`): what the refiner adds is never
steeper than a quarter of a QRS, so it cannot write a new QRS-like deflection. The same
factor also holds its spatial amplitude to ``max_amplitude_fraction`` (default 0.05) of the
record's QRS peak-to-peak: a median beat -- what a delineator reads for PR, QRS and QT --
moves at each sample by at most the largest change among the beats there, so this bounds
how far each sample of the median beat can move. A scale keeps the projection's zero
beat-locked average exactly. Like the projection the bounds are applied in training and
wherever a refiner is applied, and stored in the refiner's config. Both fractions were
chosen on other seeds than the label check's (README). Whether
labels keep their defining features is checked directly (tests: beat correlation with
the input, and the nearest-neighbour privacy check of
:func:`cardiosim.evaluate.nearest_source_distances`).

The residual mode (``mode="residual"``; not the default, README).
Everything above constrains a network that sees the whole record and could change the
heart. But the physics already models the heart; the gap to the device is what it does not
model -- noise, baseline, filtering, artefacts. So in this mode the network sees only the
non-cardiac part ``n = x - clean`` (z-scored by its own standard deviation) and its output,
added to ``x``, is a function of ``n`` alone: the refined record is ``clean + n + g(n)``.
The change cannot copy, move or reshape a P wave, QRS or T, since it never sees them; it is
independent of the beats as far as the simulated noise is. What it can still do is make
the noise larger or differently coloured, which a delineator may read differently -- so the
label check stays (README). Applying such a refiner needs the records' clean signal
(``clean_ecg``, ``store_clean = true``) wherever it is applied.

Public API: :class:`Refiner`, :class:`PatchDiscriminator`, :func:`lead_ode_targets`,
:func:`fit_refiner`, :func:`refine`, :func:`save_refiner`, :func:`load_refiner`,
:func:`bound_slope`, :func:`qrs_slopes`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._atomic import atomic_path
from ..errors import ConfigError, DataFormatError, SignalError
from ._torch import torch
from .dipole import ADULT_PARAMETERS
from .losses import euler_loss

nn = torch.nn

#: File format version written by :func:`save_refiner`.
FORMAT_VERSION = 1

#: What a refiner's network sees (:class:`Refiner`'s ``mode``).
MODES = ("record", "residual")

#: Added to a residual's standard deviation before z-scoring it (units of the record: 1 nV
#: for mV records): a record without noise (residual exactly zero) is left unchanged.
RESIDUAL_SCALE_FLOOR = 1e-6


def _check_records(x, name: str, n_leads: int | None = None) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[0] < 1 or x.shape[-1] < 8:
        raise SignalError(f"{name} must have shape (n_records, n_leads, T) with T >= 8, got {x.shape}")
    if n_leads is not None and x.shape[1] != n_leads:
        raise SignalError(f"{name} has {x.shape[1]} leads, the refiner was built for {n_leads}")
    if not np.all(np.isfinite(x)):
        raise SignalError(f"{name} contains NaN or inf samples")
    return np.ascontiguousarray(x, dtype=np.float32)


def _zscore(x):
    return (x - x.mean(dim=-1, keepdim=True)) / (x.std(dim=-1, keepdim=True) + 1e-3)


class Refiner(nn.Module):
    """Residual 1-D convolutional refiner ``R(x) = x + s(x) * net(z(x))``.

    ``z`` z-scores every lead of every record and ``s`` is that lead's standard
    deviation, so the refiner works the same on mV and on ADC counts, and the change it
    makes scales with the record. The last convolution starts at zero: an untrained
    refiner is the identity.

    Parameters
    ----------
    n_leads : int
    channels : int
    blocks : int
        Residual blocks (two convolutions each, no normalisation: batch statistics of
        simulated and real records differ, which is what is being learned).
    kernel : int, odd
    keep_average_beat : bool
        Whether it was trained with its refinements projected onto changes with a zero
        beat-locked average (:func:`remove_average_beat`); then :func:`refine` needs the
        records' R peaks to apply it the same way.
    max_slope_fraction, max_amplitude_fraction : float
        Bounds on the refinement's spatial velocity and spatial amplitude relative to the
        record's own QRS (:func:`bound_slope`; 0 = no bound). Like ``keep_average_beat``
        they are applied outside :meth:`forward` (they need the R peaks) by
        :func:`fit_refiner` and :func:`refine`, and travel in ``config`` so a saved
        refiner is applied as trained.

    mode : {"record", "residual"}
        What the network sees. ``"record"``: the whole record ``x``. ``"residual"``: only
        the non-cardiac part ``x - clean`` (the record minus its noiseless cardiac signal,
        ``clean_ecg`` of a dataset generated with ``store_clean``), so that, with
        ``n = x - clean`` and ``s`` each lead's standard deviation of ``n``,
        ``R(x) = x + s * net((n - mean n) / s)``: the change is a function of the noise,
        baseline and device effects alone, never of the beats, so it cannot copy, move or
        reshape a P wave, QRS or T -- the labels' defining features -- except as noise
        independent of them would. It reshapes the simulated noise; where the simulation
        added none it changes nothing. Then
        :meth:`forward` and :func:`refine` need ``clean``. Refiners saved before modes
        existed are ``"record"`` refiners.

    Input and output ``(batch, n_leads, T)``, same units.
    """

    def __init__(self, n_leads: int, channels: int = 32, blocks: int = 3, kernel: int = 9,
                 keep_average_beat: bool = False, max_slope_fraction: float = 0.0,
                 max_amplitude_fraction: float = 0.0, mode: str = "record"):
        super().__init__()
        if n_leads < 1 or channels < 1 or blocks < 1:
            raise ConfigError(f"n_leads, channels and blocks must be >= 1, got {n_leads}, {channels}, {blocks}")
        if kernel % 2 == 0:
            raise ConfigError(f"kernel must be odd, got {kernel}")
        if mode not in MODES:
            raise ConfigError(f"unknown refiner mode {mode!r}; expected one of {', '.join(map(repr, MODES))}")
        for name, v in (("max_slope_fraction", max_slope_fraction),
                        ("max_amplitude_fraction", max_amplitude_fraction)):
            if not (np.isfinite(v) and v >= 0):
                raise ConfigError(f"{name} must be >= 0 (0: no bound), got {v!r}")
        self.config = {"n_leads": n_leads, "channels": channels, "blocks": blocks, "kernel": kernel,
                       "keep_average_beat": bool(keep_average_beat),
                       "max_slope_fraction": float(max_slope_fraction),
                       "max_amplitude_fraction": float(max_amplitude_fraction), "mode": mode}
        pad = kernel // 2
        self.stem = nn.Conv1d(n_leads, channels, kernel, padding=pad)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LeakyReLU(0.2), nn.Conv1d(channels, channels, kernel, padding=pad),
                          nn.LeakyReLU(0.2), nn.Conv1d(channels, channels, kernel, padding=pad))
            for _ in range(blocks))
        self.out = nn.Conv1d(channels, n_leads, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    @property
    def mode(self) -> str:
        return self.config.get("mode", "record")

    def forward(self, x, clean=None):
        """``x (batch, n_leads, T)``; ``clean`` (same shape) is required in ``"residual"``
        mode and ignored in ``"record"`` mode."""
        if self.mode == "residual":
            if clean is None:
                raise ConfigError("a residual-mode refiner changes only the non-cardiac part x - clean: "
                                  "pass the records' clean signal (clean=; clean_ecg, store_clean = true)")
            if clean.shape != x.shape:
                raise SignalError(f"clean {tuple(clean.shape)} and records {tuple(x.shape)} differ in shape")
            seen = x - clean
            # the residual's own scale: the change is a function of the residual alone
            scale = seen.std(dim=-1, keepdim=True) + RESIDUAL_SCALE_FLOOR
        else:
            seen = x
            scale = x.std(dim=-1, keepdim=True) + 1e-3
        h = self.stem((seen - seen.mean(dim=-1, keepdim=True)) / scale)
        for block in self.blocks:
            h = h + block(h)
        return x + self.out(torch.nn.functional.leaky_relu(h, 0.2)) * scale


class PatchDiscriminator(nn.Module):
    """Local discriminator: one real/refined logit per receptive field (SimGAN's local
    adversarial loss), on z-scored leads so that an unknown device gain gives nothing away.

    Output ``(batch, n_patches)`` logits.
    """

    def __init__(self, n_leads: int, channels: int = 32, layers: int = 4, kernel: int = 9):
        super().__init__()
        mods, c = [], n_leads
        for i in range(layers):
            w = channels * min(4, 2 ** i)
            mods += [nn.Conv1d(c, w, kernel, stride=2, padding=kernel // 2), nn.LeakyReLU(0.2)]
            c = w
        mods.append(nn.Conv1d(c, 1, 3, padding=1))
        self.net = nn.Sequential(*mods)

    def forward(self, x):
        return self.net(_zscore(x))[:, 0]


# --------------------------------------------------------------------------- physics term
def _wave_set():
    """The adult set's 27 waves, all three axes pooled: centres and widths (rad)."""
    centers = np.concatenate([np.asarray(ADULT_PARAMETERS[a][0], float) for a in "XYZ"])
    widths = np.concatenate([np.asarray(ADULT_PARAMETERS[a][2], float) for a in "XYZ"])
    return centers, widths


def phase_from_r_peaks(r_peaks, n_samples: int, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """Cardiac phase ``theta`` (rad, unwrapped, 0 at every R peak) and ``omega`` (rad/s).

    Linear in time between consecutive R peaks; before the first and after the last
    peak the neighbouring RR interval is extended.

    Parameters
    ----------
    r_peaks : int array, sample indices (>= 2 beats)
    n_samples : int
    fs : float, Hz

    Returns
    -------
    theta, omega : ndarray, shape (n_samples,), float64
    """
    r = np.unique(np.asarray(r_peaks, dtype=np.int64))
    r = r[(r >= 0) & (r < n_samples)]
    if r.size < 2:
        raise SignalError(f"the physics term needs at least 2 R peaks per record, got {r.size}")
    t = np.arange(n_samples, dtype=float)
    beat = np.arange(r.size, dtype=float)
    # extend one RR at each end so np.interp extrapolates linearly
    knots = np.concatenate([[r[0] - (r[1] - r[0])], r, [r[-1] + (r[-1] - r[-2])]]).astype(float)
    phases = 2 * np.pi * np.concatenate([[-1.0], beat, [beat[-1] + 1.0]])
    lo = knots[0] - (knots[1] - knots[0]) * 10
    hi = knots[-1] + (knots[-1] - knots[-2]) * 10
    knots = np.concatenate([[lo], knots, [hi]])
    phases = np.concatenate([[phases[0] - 2 * np.pi * 10], phases, [phases[-1] + 2 * np.pi * 10]])
    theta = np.interp(t, knots, phases)
    omega = np.gradient(theta) * fs
    return theta, omega


def lead_ode_targets(clean, r_peaks, fs: float, *, ridge: float = 1e-5) -> dict:
    """Fit each record's Gaussian-wave ODE in lead space (see the module docstring).

    Parameters
    ----------
    clean : array, shape (n, n_leads, T), mV
        Noiseless simulated records.
    r_peaks : sequence of n int arrays
        True R-peak sample indices of each record.
    fs : float, Hz
    ridge : float
        Tikhonov weight relative to the Gram matrix' mean diagonal (keeps overlapping
        waves from trading huge opposite amplitudes).

    Returns
    -------
    dict of ndarray
        ``phase (n, T)``, ``omega (n, T)``, ``alphas (n, n_leads, 27)`` mV,
        ``centers (27,)``, ``widths (27,)`` rad, and ``fit_r2 (n, n_leads)`` -- how
        much of each clean lead the fitted ODE explains.
    """
    clean = _check_records(clean, "clean")
    if len(r_peaks) != len(clean):
        raise ConfigError(f"{len(r_peaks)} R-peak arrays for {len(clean)} records")
    if not fs > 0:
        raise SignalError(f"sampling rate fs must be positive, got {fs!r}")
    centers, widths = _wave_set()
    n, n_leads, n_t = clean.shape
    phase = np.empty((n, n_t))
    omega = np.empty((n, n_t))
    alphas = np.empty((n, n_leads, centers.size))
    r2 = np.empty((n, n_leads))
    for i in range(n):
        phase[i], omega[i] = phase_from_r_peaks(r_peaks[i], n_t, fs)
        d = np.remainder(phase[i][:, None] - centers[None, :] + np.pi, 2 * np.pi) - np.pi
        # 27 waves + a constant (a lead's offset is no wave and has no derivative)
        g = np.concatenate([np.exp(-0.5 * (d / widths) ** 2), np.ones((n_t, 1))], axis=1)   # (T, 28)
        gram = g.T @ g
        lam = ridge * np.trace(gram) / gram.shape[0] * np.eye(gram.shape[0])
        lam[-1, -1] = 0.0
        y = clean[i].astype(float)
        a = np.linalg.solve(gram + lam, g.T @ y.T).T                 # (leads, 28)
        alphas[i] = a[:, :-1]
        resid = y - a @ g.T
        yc = y - y.mean(axis=-1, keepdims=True)
        r2[i] = 1 - (resid ** 2).sum(-1) / np.maximum((yc ** 2).sum(-1), 1e-12)
    return {"phase": phase, "omega": omega, "alphas": alphas, "centers": centers, "widths": widths, "fit_r2": r2}


def physics_loss(cardiac, targets: dict, index, fs: float):
    """Euler residual of ``cardiac (batch, leads, T)`` under the records' own fitted ODEs
    (:func:`lead_ode_targets`, rows ``index``), in mV^2 per sample."""
    idx = torch.as_tensor(np.asarray(index), dtype=torch.long)
    dev, dt = cardiac.device, cardiac.dtype
    phase = torch.as_tensor(targets["phase"], dtype=dt)[idx].to(dev)
    omega = torch.as_tensor(targets["omega"], dtype=dt)[idx].to(dev)
    alphas = torch.as_tensor(targets["alphas"], dtype=dt)[idx].to(dev)
    n_leads = cardiac.shape[1]
    centers = torch.as_tensor(targets["centers"], dtype=dt, device=dev).expand(len(idx), n_leads, -1)
    widths = torch.as_tensor(targets["widths"], dtype=dt, device=dev).expand(len(idx), n_leads, -1)
    return euler_loss(cardiac, phase, omega, fs, centers, alphas, widths)


# --------------------------------------------------------------------------- training
@dataclass
class RefinerResult:
    """What :func:`fit_refiner` returns.

    Attributes
    ----------
    refiner : Refiner (eval mode)
    history : dict of lists
        Per step: ``adversarial``, ``regularisation``, ``physics`` (relative Euler
        residual, 1 = as much as the clean record's own), ``beat`` (beat-locked change),
        ``discriminator``.
    settings : dict
        Everything that shaped the training (stored with the saved refiner).
    """

    refiner: Refiner
    history: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)


#: Window around each R peak (s) whose beat-locked mean the refiner must leave unchanged:
#: it spans the waves that define a beat label -- P onset at most ~0.25 s before R (PR up to
#: 200 ms plus the Q-to-R time) and T end at most ~0.45 s after R (QTc 460 ms at 60 bpm).
BEAT_WINDOW_S = (-0.30, 0.45)


def beat_windows(r_peaks, n_samples: int, fs: float, window=BEAT_WINDOW_S) -> list[np.ndarray]:
    """Sample indices ``(n_beats, W)`` of every beat window that lies wholly in the record.

    Parameters
    ----------
    r_peaks : sequence of int arrays, one per record (negative or out-of-range entries ignored)
    n_samples : int
    fs : float, Hz
    window : (float, float), s relative to the R peak

    Returns
    -------
    list of int64 arrays, one per record (``(0, W)`` when no whole beat fits)
    """
    lo, hi = int(round(window[0] * fs)), int(round(window[1] * fs))
    offsets = np.arange(lo, hi + 1, dtype=np.int64)
    out = []
    for p in r_peaks:
        p = np.unique(np.asarray(p, dtype=np.int64))
        p = p[(p + lo >= 0) & (p + hi < n_samples)]
        out.append(p[:, None] + offsets[None, :])
    return out


def beat_locked_change(change, windows, scale):
    """Mean ``|beat-locked average of change| / scale`` over the records that hold a beat.

    ``change`` (batch, leads, T) is ``R(x) - x``; ``windows`` the batch's
    :func:`beat_windows`; ``scale`` (batch, leads, 1). Noise added by the refiner varies
    from beat to beat and averages towards zero; a change to the average beat -- a moved
    P onset, a longer QT, a different ST level, the features that define a label -- does not.
    """
    terms = []
    for i, w in enumerate(windows):
        if len(w):
            avg = change[i][:, torch.as_tensor(w, device=change.device)].mean(dim=1)   # (leads, W)
            terms.append((avg.abs() / scale[i]).mean())
    return torch.stack(terms).mean() if terms else change.new_zeros(())


def average_beat_projector(r_peaks, n_samples: int, fs: float, window=BEAT_WINDOW_S) -> list[tuple]:
    """What :func:`remove_average_beat` needs for each record: ``(windows, counts)``.

    With ``A`` the ``(T, W)`` 0/1 matrix that sums a record over its beat windows
    (``A.T @ d`` is the beat-locked sum of ``d``), the projection needs ``G = A.T @ A``.
    Because the window offsets are consecutive samples, ``G[j, k]`` counts the pairs of
    beats whose R peaks are ``|j - k|`` samples apart: a symmetric Toeplitz matrix, kept as
    its first column ``counts`` (``W`` numbers per record, not ``W x W``) and solved by
    Levinson recursion. It is positive definite whenever one beat fits (the columns' first
    non-zero rows are distinct). Overlapping windows (rates above ``60 / 0.75`` = 80 bpm)
    are handled exactly.

    Parameters
    ----------
    r_peaks : sequence of int arrays, one per record
    n_samples : int
    fs : float, Hz
    window : (float, float), s relative to the R peak

    Returns
    -------
    list of ``(windows (B, W) int64, counts (W,) float64 or None)``, one per record
    (``None`` when no whole beat window fits: nothing to remove)
    """
    out = []
    for w in beat_windows(r_peaks, n_samples, fs, window):
        n_beats, width = w.shape
        if n_beats == 0:
            out.append((w, None))
            continue
        p = w[:, 0]
        d = (p[None, :] - p[:, None]).ravel()            # peaks are unique: each pair once at d > 0
        out.append((w, np.bincount(d[(d >= 0) & (d < width)], minlength=width).astype(np.float64)))
    return out


class _SymmetricToeplitzSolve(torch.autograd.Function):
    """``G^-1 s`` for each row ``s`` of ``(leads, W)``, ``G`` the symmetric Toeplitz matrix with
    first column ``counts``; linear in ``s`` with a symmetric ``G``, so the gradient is the
    same solve. Float64 on the CPU (scipy's Levinson recursion, O(W^2))."""

    @staticmethod
    def forward(ctx, s, counts):
        from scipy.linalg import solve_toeplitz

        ctx.counts = counts
        x = solve_toeplitz(counts, s.detach().cpu().double().numpy().T)
        return torch.as_tensor(np.ascontiguousarray(np.asarray(x).reshape(len(counts), -1).T), device=s.device)

    @staticmethod
    def backward(ctx, grad):
        return _SymmetricToeplitzSolve.apply(grad, ctx.counts), None


def remove_average_beat(change, windows, counts):
    """``change`` minus its least-squares beat-locked part: ``d - A (A^T A)^-1 A^T d``.

    Parameters
    ----------
    change : tensor (leads, T)
        One record's refinement ``R(x) - x``.
    windows, counts : one record's entry of :func:`average_beat_projector`

    Returns
    -------
    tensor (leads, T), differentiable in ``change``, whose sum over the record's beat
    windows -- hence its beat-locked average -- is zero: added to ``x`` it leaves the
    average beat of ``x`` exactly as it was, and keeps everything that varies from beat
    to beat or lies outside the windows.
    """
    if counts is None:
        return change
    n_beats, width = windows.shape
    idx = torch.as_tensor(windows.ravel(), device=change.device)
    s = change[:, idx].reshape(change.shape[0], n_beats, width).sum(dim=1)          # A^T d
    t = _SymmetricToeplitzSolve.apply(s.double(), counts)                            # G^-1 A^T d
    back = t.to(change.dtype).unsqueeze(1).expand(-1, n_beats, -1).reshape(change.shape[0], -1)
    return change - torch.zeros_like(change).index_add_(1, idx, back)


#: Default of ``max_slope_fraction``: the refinement's spatial velocity may reach at most this
#: fraction of the record's QRS spatial velocity (:func:`bound_slope`). Chosen on seeds 1-7
#: of the label check's recipe (never its own seed 18); see the README's refiner section.
MAX_SLOPE_FRACTION = 0.25

#: Default of ``max_amplitude_fraction``: the refinement's spatial amplitude may reach at most
#: this fraction of the record's QRS spatial peak-to-peak amplitude (:func:`bound_slope`).
#: Chosen like ``MAX_SLOPE_FRACTION``.
MAX_AMPLITUDE_FRACTION = 0.05

#: Default ``mode`` of :func:`fit_refiner` when the clean records are given. ``"residual"``
#: measured level with ``"record"`` on the label check's fresh seeds 23-27 (63 vs 63 of 80
#: evaluation records keep the NORM+SR limits, 62 unrefined), so it is not the default
#: (README's refiner section).
DEFAULT_MODE = "record"

#: Half-width (s) of the window around each R peak in which the QRS is read.
QRS_HALF_WINDOW_S = 0.05


def spatial_velocity(x, fs: float):
    """``|dV/dt|`` across leads (the 12-lead spatial velocity of
    :func:`cardiosim.ode.realism.r_peaks`), by first differences.

    Parameters
    ----------
    x : tensor (..., n_leads, T)
    fs : float, Hz

    Returns
    -------
    tensor (..., T - 1), units of ``x`` per second
    """
    return torch.linalg.vector_norm(torch.diff(x, dim=-1), dim=-2) * fs


def qrs_scales(x, r_peaks, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """Each record's QRS spatial velocity and spatial amplitude.

    Velocity: the median over the record's beats of the largest :func:`spatial_velocity`
    within ``QRS_HALF_WINDOW_S`` of the R peak. Amplitude: the median over beats of the
    norm across leads of each lead's peak-to-peak in that window. The median over beats,
    not the record's maximum, so that one artefact does not set the scale. A record without
    any R peak inside falls back to its largest spatial velocity and its leads'
    peak-to-peak over the whole record.

    Parameters
    ----------
    x : array (n, n_leads, T)
    r_peaks : sequence of n int arrays (samples)
    fs : float, Hz

    Returns
    -------
    slopes (units of ``x`` per second), amplitudes (units of ``x``) : ndarray (n,), float64
    """
    x = np.asarray(x, dtype=np.float64)
    if len(r_peaks) != len(x):
        raise ConfigError(f"{len(r_peaks)} R-peak arrays for {len(x)} records")
    sv = spatial_velocity(torch.as_tensor(x), fs).numpy()                 # (n, T - 1)
    h = max(1, int(round(QRS_HALF_WINDOW_S * fs)))
    slopes, amps = np.empty(len(x)), np.empty(len(x))
    for i, (v, p) in enumerate(zip(sv, r_peaks)):
        p = np.asarray(p, dtype=np.int64)
        p = p[(p >= 0) & (p < x.shape[-1])]
        if p.size:
            slopes[i] = np.median([v[max(k - h, 0):k + h].max() for k in p])
            amps[i] = np.median([np.linalg.norm(np.ptp(x[i][:, max(k - h, 0):k + h + 1], axis=1)) for k in p])
        else:
            slopes[i], amps[i] = v.max(), np.linalg.norm(np.ptp(x[i], axis=1))
    return slopes, amps


def qrs_slopes(x, r_peaks, fs: float) -> np.ndarray:
    """The slopes of :func:`qrs_scales`."""
    return qrs_scales(x, r_peaks, fs)[0]


def change_limits(x, r_peaks, fs: float, max_slope_fraction: float, max_amplitude_fraction: float):
    """Per-record ``(slope_limit, amplitude_limit)`` float32 arrays for :func:`bound_slope`
    (``None`` where a fraction is 0)."""
    slopes, amps = qrs_scales(x, r_peaks, fs)
    return ((max_slope_fraction * slopes).astype(np.float32) if max_slope_fraction > 0 else None,
            (max_amplitude_fraction * amps).astype(np.float32) if max_amplitude_fraction > 0 else None)


def bound_slope(change, limit, fs: float, amplitude_limit=None):
    """Scale each record's ``change`` so its spatial velocity never exceeds ``limit``
    (and its spatial amplitude never ``amplitude_limit``).

    ``change * min(1, limit / max_t |d change / dt|, amplitude_limit / max_t |change|)``,
    norms across leads (:func:`spatial_velocity`).

    Why a slope bound: QRS complexes are what an R-peak detector finds, and they are the
    steepest part of an ECG -- the detectors of :mod:`cardiosim.qrs` and
    :func:`cardiosim.ode.realism.r_peaks` look at the (spatial) derivative. With ``limit``
    a fraction of the record's own QRS spatial velocity (:func:`qrs_scales`), whatever the
    refiner adds is, in slope, at most that fraction of a QRS: by the triangle inequality
    the refined record's spatial velocity exceeds the input's by at most ``limit``
    anywhere, so the refiner cannot write a new QRS-like deflection between beats or
    double an existing one. (The average-beat projection alone keeps the average beat but
    not each beat: a refiner that changed records by a third added beat-to-beat content
    that a detector read as beats.)

    Why an amplitude bound: a delineator reads the *median* beat, and a median over beats
    moves, at every sample and lead, by at most the largest change among the beats there.
    So ``|change| <= amplitude_limit`` bounds the change of the median beat (that the
    average-beat projection does not pin) by ``amplitude_limit`` everywhere.

    Why one scale per record, not a clip per sample: a positive multiple of a change
    whose beat-locked average is zero still has a zero beat-locked average, so the bound
    composes exactly with :func:`remove_average_beat` (applied first); a clip would not.

    Parameters
    ----------
    change : tensor (batch, n_leads, T)
        The (projected) refinement ``R(x) - x``.
    limit : tensor or array (batch,) or None, units of ``change`` per second
    fs : float, Hz
    amplitude_limit : tensor or array (batch,) or None, units of ``change``

    Returns
    -------
    tensor like ``change``, differentiable; ``max_t |d/dt| <= limit`` and
    ``max_t |change| <= amplitude_limit`` per record (to floating-point rounding).
    """
    tiny = torch.finfo(change.dtype).tiny
    factor = torch.ones(change.shape[0], 1, 1, dtype=change.dtype, device=change.device)
    for lim, size in ((limit, lambda: spatial_velocity(change, fs)),
                      (amplitude_limit, lambda: torch.linalg.vector_norm(change, dim=-2))):
        if lim is None:
            continue
        lim = torch.as_tensor(lim, dtype=change.dtype, device=change.device).reshape(-1, 1, 1)
        peak = size().amax(dim=-1).reshape(-1, 1, 1)
        factor = torch.minimum(factor, lim / torch.clamp(peak, min=tiny))
    return change * factor


def _crop(x: np.ndarray, n_t: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random ``n_t``-sample crops of each record (all records when already that long)."""
    if x.shape[-1] == n_t:
        return x, np.zeros(len(x), dtype=np.int64)
    start = rng.integers(0, x.shape[-1] - n_t + 1, size=len(x))
    return np.stack([x[i, :, s:s + n_t] for i, s in enumerate(start)]), start


def fit_refiner(simulated, real, *, fs: float, clean=None, r_peaks=None, steps: int = 300, batch: int = 16,
                lr: float = 1e-3, lambda_reg: float = 0.2, lambda_physics: float = 1.0, lambda_beat: float = 2.0,
                keep_average_beat: bool | None = None, max_slope_fraction: float | None = None,
                max_amplitude_fraction: float | None = None, mode: str | None = None, history: int = 256,
                channels: int = 32, seed: int = 0, device=None, progress: bool = False) -> RefinerResult:
    """Train a refiner that makes ``simulated`` records look like ``real`` ones.

    Parameters
    ----------
    simulated : array (n, n_leads, T), mV
        Simulated device records (``ecg`` of a cardiosim dataset).
    real : array (m, n_leads, T_real)
        The user's unlabeled device recordings, any gain (the discriminator z-scores);
        ``T_real >= T`` (longer ones are cropped at random).
    fs : float, Hz
        Sampling rate of both.
    clean, r_peaks : optional
        ``clean_ecg`` (n, n_leads, T) and true R peaks of the simulated records: enable
        the physics term (``lambda_physics``); the R peaks alone enable the beat term
        (``lambda_beat``).
    steps, batch, lr : training schedule (Adam, both networks)
    lambda_reg : float
        Weight of the self-regularisation ``mean |R(x) - x| / std(x)``.
    lambda_physics : float
        Weight of the relative Euler residual of the refined cardiac part.
    lambda_beat : float
        Weight of the beat-locked term (:func:`beat_locked_change`): the refinement's
        average over beats, in a window from P onset to T end around each true R peak,
        relative to ``std(x)``. It lets the refiner add what varies from beat to beat
        (noise, artefacts) but not change the average beat that defines the label.
        Needs ``r_peaks``; ignored without them, and moot with ``keep_average_beat``.
    keep_average_beat : bool or None
        Project every refinement onto the changes with a zero beat-locked average
        (:func:`remove_average_beat`), in training as when applied: the refined record's
        average beat is the simulated one. Default: on when ``r_peaks`` are given; True
        without ``r_peaks`` is an error. Stored in the settings, so :func:`refine` and
        ``cardiosim generate`` apply the same projection.
    max_slope_fraction : float or None
        Bound every (projected) refinement's spatial velocity by this fraction of the
        record's own QRS spatial velocity (:func:`bound_slope`, :func:`qrs_slopes` from the
        true R peaks), in training as when applied, so the refiner cannot add QRS-like
        content that a detector takes for beats. Default: ``MAX_SLOPE_FRACTION`` (0.25)
        when ``r_peaks`` are given, else 0 (no bound), in both modes (a residual refiner
        never sees the beats, but unbounded it amplified its noise into transients a
        detector counted as beats, README); a positive value without ``r_peaks`` is an
        error. Stored in the refiner's config.
    max_amplitude_fraction : float or None
        Likewise bound its spatial amplitude by this fraction of the record's QRS spatial
        peak-to-peak amplitude, which bounds how far each sample of the *median* beat can
        move. Default ``MAX_AMPLITUDE_FRACTION`` (0.05) with ``r_peaks``, else 0.
    mode : {"record", "residual"} or None
        What the refiner's network sees (:class:`Refiner`): the whole record, or only its
        non-cardiac part ``simulated - clean``, so its change is a function of the noise
        alone. Default: ``DEFAULT_MODE`` when ``clean`` is given, else ``"record"``;
        ``"residual"`` without ``clean`` is an error. Stored in the refiner's config:
        applying a residual refiner needs the records' clean signal too.
    history : int
        Size of the discriminator's buffer of earlier refined records (SimGAN).
    seed : int
        Seeds torch and the batch order (``numpy.random.SeedSequence([seed])``).
    device : torch device or None (CUDA when present, else CPU)

    Returns
    -------
    RefinerResult
    """
    x = _check_records(simulated, "simulated")
    n, n_leads, n_t = x.shape
    xr = _check_records(real, "real", n_leads)
    if xr.shape[-1] < n_t:
        raise SignalError(f"real recordings ({xr.shape[-1]} samples) are shorter than the simulated records ({n_t})")
    if not fs > 0:
        raise SignalError(f"sampling rate fs must be positive, got {fs!r}")
    for name, v, lo in (("steps", steps, 1), ("batch", batch, 2), ("history", history, 0)):
        if int(v) != v or v < lo:
            raise ConfigError(f"{name} must be an integer >= {lo}, got {v!r}")
    if lambda_reg < 0 or lambda_physics < 0 or lambda_beat < 0:
        raise ConfigError(f"loss weights must be >= 0, got lambda_reg={lambda_reg}, "
                          f"lambda_physics={lambda_physics}, lambda_beat={lambda_beat}")
    if r_peaks is not None and len(r_peaks) != n:
        raise ConfigError(f"{len(r_peaks)} R-peak arrays for {n} simulated records")
    if keep_average_beat and r_peaks is None:
        raise ConfigError("keep_average_beat=True needs the simulated records' R peaks (r_peaks=)")
    if clean is not None:
        clean = _check_records(clean, "clean", n_leads)
        if clean.shape != x.shape:
            raise SignalError(f"clean {clean.shape} and simulated {x.shape} differ in shape")
    if mode is None:
        mode = DEFAULT_MODE if clean is not None else "record"
    if mode not in MODES:
        raise ConfigError(f"unknown refiner mode {mode!r}; expected one of {', '.join(map(repr, MODES))}")
    if mode == "residual" and clean is None:
        raise ConfigError("mode='residual' refines only the non-cardiac part simulated - clean: pass the clean "
                          "records (clean=; store_clean = true in the recipe), or mode='record'")
    keep_average_beat = (r_peaks is not None) if keep_average_beat is None else bool(keep_average_beat)
    # in both modes: a residual refiner never sees the beats, but it can still amplify its noise
    # into steep, QRS-like transients that a detector counts (README)
    if max_slope_fraction is None:
        max_slope_fraction = MAX_SLOPE_FRACTION if r_peaks is not None else 0.0
    if max_amplitude_fraction is None:
        max_amplitude_fraction = MAX_AMPLITUDE_FRACTION if r_peaks is not None else 0.0
    for name, v in (("max_slope_fraction", max_slope_fraction), ("max_amplitude_fraction", max_amplitude_fraction)):
        if not (np.isfinite(v) and v >= 0):
            raise ConfigError(f"{name} must be >= 0 (0: no bound), got {v!r}")
        if v > 0 and r_peaks is None:
            raise ConfigError(f"{name} > 0 needs the simulated records' R peaks (r_peaks=) to read each record's "
                              f"QRS slope and amplitude; pass {name}=0 to train without the bound")
    bounded = max_slope_fraction > 0 or max_amplitude_fraction > 0
    slope_limit, amp_limit = change_limits(x, r_peaks, fs, max_slope_fraction, max_amplitude_fraction) \
        if bounded else (None, None)
    projector = average_beat_projector(r_peaks, n_t, fs) if keep_average_beat else None
    windows = beat_windows(r_peaks, n_t, fs) if (r_peaks is not None and lambda_beat > 0
                                                and not keep_average_beat) else None
    targets = None
    if lambda_physics > 0:
        if clean is None or r_peaks is None:
            raise ConfigError("lambda_physics > 0 needs the clean records and their R peaks "
                              "(store_clean = true in the recipe); pass lambda_physics=0 to train without it")
        if len(r_peaks) != n:
            raise ConfigError(f"{len(r_peaks)} R-peak arrays for {n} simulated records")
        # records with fewer than two beats have no phase: they get no physics term
        ok = np.array([np.unique(np.asarray(p)[(np.asarray(p) >= 0) & (np.asarray(p) < n_t)]).size >= 2
                       for p in r_peaks])
        if not ok.any():
            raise SignalError("no simulated record holds two R peaks: the physics term has nothing to fit")
        row = np.full(n, -1)
        row[ok] = np.arange(int(ok.sum()))
        targets = lead_ode_targets(clean[ok], [p for p, k in zip(r_peaks, ok) if k], fs)
    if device is None:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(seed)
    rng = np.random.default_rng(np.random.SeedSequence([seed]))
    ref = Refiner(n_leads, channels=channels, keep_average_beat=keep_average_beat,
                  max_slope_fraction=max_slope_fraction, max_amplitude_fraction=max_amplitude_fraction,
                  mode=mode).to(device)
    disc = PatchDiscriminator(n_leads, channels=channels // 2 or 1).to(device)
    opt_r = torch.optim.Adam(ref.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=lr, betas=(0.5, 0.999))
    bce = nn.functional.binary_cross_entropy_with_logits
    buf: list = []
    hist = {"adversarial": [], "regularisation": [], "physics": [], "beat": [], "discriminator": []}
    xt = torch.as_tensor(x)
    ct = None if clean is None else torch.as_tensor(clean)
    base = None
    if targets is not None:  # each record's own Euler residual: the physics term's unit
        with torch.no_grad():
            base = physics_loss(ct[ok].double(), targets, np.arange(int(ok.sum())), fs).item()
    it = range(steps)
    if progress:
        from tqdm.auto import tqdm
        it = tqdm(it, desc="refiner", unit="step")
    for _ in it:
        idx = rng.choice(n, size=min(batch, n), replace=False)
        xb = xt[idx].to(device)
        real_b, _ = _crop(xr[rng.choice(len(xr), size=len(idx), replace=len(xr) < len(idx))], n_t, rng)
        real_b = torch.as_tensor(real_b).to(device)
        # refiner step
        ref.train()
        refined = ref(xb, ct[idx].to(device)) if mode == "residual" else ref(xb)
        if projector is not None:
            refined = xb + torch.stack([remove_average_beat(refined[k] - xb[k], *projector[i])
                                        for k, i in enumerate(idx)])
        if bounded:   # after the projection: a scale keeps its zero average beat
            refined = xb + bound_slope(refined - xb, None if slope_limit is None else slope_limit[idx], fs,
                                       None if amp_limit is None else amp_limit[idx])
        logits = disc(refined)
        adv = bce(logits, torch.ones_like(logits))
        scale = xb.std(dim=-1, keepdim=True) + 1e-3
        reg = ((refined - xb).abs() / scale).mean()
        loss = adv + lambda_reg * reg
        beat = torch.zeros(())
        if windows is not None:
            beat = beat_locked_change(refined - xb, [windows[i] for i in idx], scale)
            loss = loss + lambda_beat * beat
        phys = torch.zeros(())
        sel = np.flatnonzero(row[idx] >= 0) if targets is not None else []
        if len(sel):
            cardiac = ct[idx[sel]].to(device) + (refined - xb)[sel]
            phys = physics_loss(cardiac.double(), targets, row[idx[sel]], fs) / max(base, 1e-12)
            loss = loss + lambda_physics * phys.float()
        opt_r.zero_grad()
        loss.backward()
        opt_r.step()
        # discriminator step: half fresh refined records, half from the history buffer
        fake = refined.detach()
        if history and buf:
            k = len(fake) // 2
            old = torch.stack([buf[j] for j in rng.choice(len(buf), size=k)]) if k else fake[:0]
            fake_d = torch.cat([fake[:len(fake) - k], old.to(device)])
        else:
            fake_d = fake
        if history:
            buf.extend(fake.cpu())
            if len(buf) > history:
                del buf[:len(buf) - history]
        lr_ = disc(real_b)
        lf = disc(fake_d)
        d_loss = bce(lr_, torch.ones_like(lr_)) + bce(lf, torch.zeros_like(lf))
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        hist["adversarial"].append(adv.item())
        hist["regularisation"].append(reg.item())
        hist["physics"].append(phys.item())
        hist["beat"].append(beat.item())
        hist["discriminator"].append(d_loss.item())
    ref.eval()
    settings = {"fs": float(fs), "n_leads": n_leads, "n_samples": n_t, "steps": steps, "batch": batch, "lr": lr,
                "lambda_reg": lambda_reg, "lambda_physics": lambda_physics, "lambda_beat": lambda_beat,
                "keep_average_beat": keep_average_beat, "max_slope_fraction": float(max_slope_fraction),
                "max_amplitude_fraction": float(max_amplitude_fraction), "mode": mode,
                "history": history,
                "channels": channels, "seed": seed, "n_simulated": n, "n_real": int(len(xr)),
                "physics_fit_r2_median": None if targets is None else float(np.median(targets["fit_r2"]))}
    return RefinerResult(ref, hist, settings)


def refine(refiner: Refiner, x, *, clean=None, r_peaks=None, fs: float | None = None, batch: int = 64,
           device=None) -> np.ndarray:
    """Apply a trained refiner to records ``x (n, n_leads, T)``; returns float32, same units.

    Parameters
    ----------
    refiner : Refiner
    x : array (n, n_leads, T)
    clean : array (n, n_leads, T), optional
        The records' noiseless cardiac signal (``clean_ecg``): required by a
        ``"residual"``-mode refiner, which changes only ``x - clean``; ignored otherwise.
    r_peaks : sequence of n int arrays, optional
        The records' R peaks (samples). Given, every refinement is projected as in
        training with ``keep_average_beat`` (:func:`remove_average_beat`): the refined
        record keeps the input's average beat; and, with ``max_slope_fraction`` /
        ``max_amplitude_fraction`` in the refiner's config, its spatial velocity and
        amplitude are bounded by those fractions of the record's QRS (:func:`bound_slope`).
        Required when the refiner
        was trained either way; for records without known peaks,
        :func:`cardiosim.qrs.detect_r_peaks` finds them (:func:`refine_records`).
    fs : float, Hz -- needed with ``r_peaks``
    batch : int
    device : torch device, optional
    """
    xs = _check_records(x, "x", refiner.config["n_leads"])
    residual = refiner.config.get("mode", "record") == "residual"
    cs = None
    if residual:
        if clean is None:
            raise ConfigError("this refiner changes only the non-cardiac part x - clean (mode 'residual'): pass "
                              "the records' clean signal (clean=; clean_ecg of a dataset generated with "
                              "store_clean = true)")
        cs = _check_records(clean, "clean", refiner.config["n_leads"])
        if cs.shape != xs.shape:
            raise SignalError(f"clean {cs.shape} and records {xs.shape} differ in shape")
    projector = None
    # refiners saved before the bounds have no such keys: no bound
    kappa = float(refiner.config.get("max_slope_fraction", 0.0))
    alpha = float(refiner.config.get("max_amplitude_fraction", 0.0))
    bounded = kappa > 0 or alpha > 0
    if r_peaks is None and refiner.config.get("keep_average_beat"):
        raise ConfigError("this refiner was trained to keep the average beat (keep_average_beat): pass the "
                          "records' R peaks (r_peaks=, fs=) to apply it as trained")
    if r_peaks is None and bounded:
        raise ConfigError("this refiner bounds its change by the record's QRS slope and amplitude "
                          "(max_slope_fraction, max_amplitude_fraction): pass the records' R peaks (r_peaks=, fs=) "
                          "to apply it as trained")
    if r_peaks is not None:
        if fs is None or not fs > 0:
            raise ConfigError(f"r_peaks= needs the records' sampling rate fs=, got {fs!r}")
        if len(r_peaks) != len(xs):
            raise ConfigError(f"{len(r_peaks)} R-peak arrays for {len(xs)} records")
        if refiner.config.get("keep_average_beat", True):
            projector = average_beat_projector(r_peaks, xs.shape[-1], fs)
        if bounded:
            slope_limit, amp_limit = change_limits(xs, r_peaks, fs, kappa, alpha)
    if device is None:
        device = next(refiner.parameters()).device
    refiner = refiner.to(device).eval()
    out = np.empty_like(xs)
    with torch.no_grad():
        for i in range(0, len(xs), batch):
            xb = torch.as_tensor(xs[i:i + batch]).to(device)
            yb = refiner(xb) if cs is None else refiner(xb, torch.as_tensor(cs[i:i + batch]).to(device))
            if projector is not None:
                yb = xb + torch.stack([remove_average_beat(yb[k] - xb[k], *projector[i + k])
                                       for k in range(len(xb))])
            if bounded:
                sl = slice(i, i + len(xb))
                yb = xb + bound_slope(yb - xb, None if slope_limit is None else slope_limit[sl], fs,
                                      None if amp_limit is None else amp_limit[sl])
            out[i:i + batch] = yb.cpu().numpy()
    return out


# --------------------------------------------------------------------------- files
def save_refiner(result_or_refiner, path, *, settings: dict | None = None) -> Path:
    """Write a refiner (and the settings that trained it) atomically to ``path`` (``.pt``)."""
    if isinstance(result_or_refiner, RefinerResult):
        model, settings = result_or_refiner.refiner, {**result_or_refiner.settings, **(settings or {})}
    else:
        model, settings = result_or_refiner, dict(settings or {})
    if not isinstance(model, Refiner):
        raise ConfigError(f"expected a Refiner or RefinerResult, got {type(model).__name__}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": "cardiosim-refiner", "version": FORMAT_VERSION, "config": model.config,
               "state": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "settings": settings}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_refiner(path, *, fs: float | None = None, n_leads: int | None = None) -> tuple[Refiner, dict]:
    """Read a refiner written by :func:`save_refiner`; returns ``(refiner, settings)``.

    ``fs`` and ``n_leads``, when given, must match what the refiner was trained for
    (a refiner learned at 100 Hz does not know what 500-Hz records look like).
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"refiner file {str(path)!r} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DataFormatError(f"refiner file {str(path)!r} is not a readable torch file: {exc}") from None
    if not isinstance(payload, dict) or payload.get("format") != "cardiosim-refiner":
        raise DataFormatError(f"{str(path)!r} is not a cardiosim refiner (written by save_refiner)")
    if payload.get("version") != FORMAT_VERSION:
        raise DataFormatError(f"{str(path)!r}: refiner format {payload.get('version')}, this cardiosim reads "
                              f"{FORMAT_VERSION}")
    model = Refiner(**payload["config"])
    model.load_state_dict(payload["state"])
    model.eval()
    settings = payload.get("settings", {})
    if fs is not None and "fs" in settings and not math.isclose(float(settings["fs"]), float(fs)):
        from ..errors import SamplingRateError
        raise SamplingRateError(f"refiner {str(path)!r} was trained at {settings['fs']} Hz, the records are at {fs} Hz")
    if n_leads is not None and model.config["n_leads"] != n_leads:
        raise SignalError(f"refiner {str(path)!r} takes {model.config['n_leads']} leads, the records have {n_leads}")
    return model, settings


# --------------------------------------------------------------------------- from files
def read_device_recordings(path, *, fs: float, leads, n_samples: int) -> np.ndarray:
    """The user's unlabeled device recordings as ``(m, len(leads), n_samples)`` windows.

    Parameters
    ----------
    path : folder or file
        WFDB records (``.hea``, read with the project's WFDB reader) and/or cardiosim
        netCDF datasets (``.nc``, their ``ecg``); a folder is searched recursively.
    fs : float, Hz
        Rate of the simulated records: recordings are resampled to it
        (:func:`cardiosim.sources.resample`).
    leads : sequence of str
        Leads of the simulated records. A recording must hold them all by name, or have
        exactly as many channels as ``leads`` (a single-lead device's one channel).
    n_samples : int
        Window length: each recording is cut into non-overlapping windows.
    """
    from ..errors import LeadError
    from ..leads import normalize_lead_name
    from ..sources import resample
    from ..sources.wfdb_reader import read_wfdb_signal

    path = Path(path)
    if not path.exists():
        raise DataFormatError(f"device recordings {str(path)!r} do not exist")
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix in (".hea", ".nc"))
    if not files:
        raise DataFormatError(f"no WFDB (.hea) or netCDF (.nc) recordings under {str(path)!r}")
    leads = list(leads)
    out = []
    for f in files:
        if f.suffix == ".hea":
            x, fs0, raw, _ = read_wfdb_signal(f.with_suffix(""), lead_names=False)
            names = []
            for name in raw:  # canonical lead names where the header uses them ('MLII' stays)
                try:
                    names.append(normalize_lead_name(name))
                except LeadError:
                    names.append(str(name))
            chunks = [(np.asarray(x, dtype=np.float64), float(fs0), names)]
        elif f.suffix == ".nc":
            from ..dataset import open_dataset
            ds = open_dataset(f)
            names = [str(v) for v in ds["lead"].values]
            fs0 = float(ds.attrs["sampling_rate"])
            chunks = [(np.asarray(ds["ecg"].isel(record=i).values, dtype=np.float64), fs0, names)
                      for i in range(ds.sizes["record"])]
        else:
            raise DataFormatError(f"{str(f)!r}: expected a WFDB header (.hea) or a netCDF file (.nc)")
        for x, fs0, names in chunks:
            if all(ld in names for ld in leads):
                x = x[[names.index(ld) for ld in leads]]
            elif x.shape[0] != len(leads):
                raise SignalError(f"{str(f)!r} has channels {names}; the simulated records have leads {leads}")
            if not np.all(np.isfinite(x)):
                raise SignalError(f"{str(f)!r} contains NaN or inf samples")
            x = resample(x, fs0, fs)
            k = x.shape[-1] // n_samples
            out.extend(x[:, i * n_samples:(i + 1) * n_samples] for i in range(k))
    if len(out) < 2:
        raise SignalError(f"the recordings under {str(path)!r} give {len(out)} window(s) of {n_samples} samples; "
                          "need at least 2")
    return np.stack(out).astype(np.float32)


def train_refiner_from_files(dataset, recordings, output, **kwargs) -> RefinerResult:
    """Train a refiner from a cardiosim dataset and a folder of unlabeled device recordings.

    Parameters
    ----------
    dataset : path
        A cardiosim dataset (file or shard folder). With ``clean_ecg`` and ``beat_r_peak``
        (``store_clean = true``) the physics term is used; without them pass
        ``lambda_physics=0``.
    recordings : path
        WFDB and/or netCDF recordings of the user's device (see :func:`read_device_recordings`).
    output : path
        Where the refiner is written (``.pt``, atomically).
    **kwargs
        Passed to :func:`fit_refiner` (``steps``, ``lambda_reg``, ``seed``, ...).

    Returns
    -------
    RefinerResult (also saved, with the dataset's and recordings' paths in its settings)
    """
    from ..dataset import open_dataset

    ds = open_dataset(dataset)
    fs = float(ds.attrs["sampling_rate"])
    leads = [str(v) for v in ds["lead"].values]
    x = np.asarray(ds["ecg"].values, dtype=np.float32)
    clean = np.asarray(ds["clean_ecg"].values, dtype=np.float32) if "clean_ecg" in ds else None
    peaks = None
    if "beat_r_peak" in ds:
        rp = np.asarray(ds["beat_r_peak"].values)
        peaks = [r[(r >= 0) & (r < x.shape[-1])].astype(np.int64) for r in rp]
    if clean is None or peaks is None:
        kwargs.setdefault("lambda_physics", 0.0)
        if kwargs["lambda_physics"] > 0:
            raise ConfigError(f"dataset {str(dataset)!r} stores no clean_ecg/beat_r_peak: generate it with "
                              "store_clean = true, or pass lambda_physics=0")
    real = read_device_recordings(recordings, fs=fs, leads=leads, n_samples=x.shape[-1])
    res = fit_refiner(x, real, fs=fs, clean=clean, r_peaks=peaks, **kwargs)
    res.settings.update(dataset=str(dataset), recordings=str(recordings), leads=leads)
    save_refiner(res, output)
    return res


# --------------------------------------------------------------------------- datasets
def _file_sha256(path) -> str:
    from ..dataset.io import sha256_file

    return sha256_file(Path(path))


def _one_torch_thread():
    """Context manager: torch on one intra-op thread (deterministic, and the workers
    are the parallelism), restored afterwards."""
    from contextlib import contextmanager

    @contextmanager
    def ctx():
        n = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(n)
    return ctx()


def refine_records(refiner: Refiner, x, *, clean=None, r_peaks=None, fs: float | None = None) -> np.ndarray:
    """:func:`refine` one record at a time on one CPU thread: every record's output is
    the same bits whatever block, batch or worker it is refined in.

    A refiner that keeps the average beat needs each record's R peaks: pass the true ones
    (``r_peaks``, as ``cardiosim generate`` does from ``beat_r_peak``); given only ``fs``
    they are found on the record itself (:func:`cardiosim.qrs.detect_r_peaks`, all leads
    pooled), as in the online transform, whose batches carry no annotations. A
    ``"residual"``-mode refiner also needs the records' ``clean`` signal.
    """
    if r_peaks is None and fs is not None and (refiner.config.get("keep_average_beat")
                                              or refiner.config.get("max_slope_fraction", 0.0) > 0
                                              or refiner.config.get("max_amplitude_fraction", 0.0) > 0):
        from ..qrs import detect_r_peaks

        r_peaks = [detect_r_peaks(np.asarray(rec, dtype=np.float64), fs) for rec in np.asarray(x)]
    with _one_torch_thread():
        return refine(refiner, x, clean=clean, r_peaks=r_peaks, fs=fs, batch=1, device="cpu")


def record_r_peaks(ds) -> list[np.ndarray]:
    """Each record's true R peaks (samples inside the record) from a dataset's ``beat_r_peak``."""
    if "beat_r_peak" not in ds:
        raise ConfigError("this refiner keeps the average beat (keep_average_beat) and needs the records' R "
                          "peaks, but the dataset holds no beat_r_peak")
    n_t = int(ds["ecg"].shape[-1])
    return [r[(r >= 0) & (r < n_t)].astype(np.int64) for r in np.asarray(ds["beat_r_peak"].values)]


class RefinePostprocess:
    """Picklable ``xarray.Dataset -> xarray.Dataset`` step that refines ``ecg``.

    Built by :func:`generate_refined` and run by :func:`cardiosim.dataset.generate` inside
    each worker on each block of simulated records (before int16 packing). Holds only the
    model path and its SHA-256; the model is loaded once per process on first use, and
    its file is checked against the hash and its rate / lead count against the records.

    The refined record replaces ``ecg``; with ``keep_simulated`` the unrefined one is kept
    as ``ecg_simulated``. ``clean_ecg``, labels, annotations and every simulation
    parameter are the simulation's (the refiner changes how the device record looks,
    not what the heart did). Attributes ``refiner_sha256`` and ``refiner_settings``
    (JSON of the training settings) record which refiner made the dataset.
    """

    def __init__(self, model, sha256: str | None = None, *, keep_simulated: bool = True):
        self.model = str(Path(model).resolve())
        self.sha256 = sha256 or _file_sha256(self.model)
        self.keep_simulated = bool(keep_simulated)
        self._loaded = None

    def __getstate__(self):
        return {**self.__dict__, "_loaded": None}

    def load(self, fs: float | None = None, n_leads: int | None = None) -> tuple[Refiner, dict]:
        """The refiner and its settings (cached), checked against the hash, ``fs`` and ``n_leads``."""
        if self._loaded is None:
            digest = _file_sha256(self.model) if Path(self.model).is_file() else None
            if digest is not None and digest != self.sha256:
                raise ConfigError(f"refiner {self.model!r} changed since the recipe was pinned "
                                  f"(SHA-256 {digest[:12]}..., expected {self.sha256[:12]}...)")
            self._loaded = load_refiner(self.model)
        model, settings = self._loaded
        if fs is not None and "fs" in settings and not math.isclose(float(settings["fs"]), float(fs)):
            from ..errors import SamplingRateError
            raise SamplingRateError(f"refiner {self.model!r} was trained at {settings['fs']} Hz, the records are at "
                                    f"{fs} Hz")
        if n_leads is not None and model.config["n_leads"] != n_leads:
            raise SignalError(f"refiner {self.model!r} takes {model.config['n_leads']} leads, the records have "
                              f"{n_leads}")
        return model, settings

    def __call__(self, ds):
        import json

        model, settings = self.load(float(ds.attrs["sampling_rate"]), int(ds.sizes["lead"]))
        if "ecg_simulated" in ds:
            raise ConfigError("these records are refined already (they hold ecg_simulated)")
        ecg = ds["ecg"]
        fs = float(ds.attrs["sampling_rate"])
        needs_peaks = (model.config.get("keep_average_beat") or model.config.get("max_slope_fraction", 0.0) > 0
                       or model.config.get("max_amplitude_fraction", 0.0) > 0)
        peaks = record_r_peaks(ds) if needs_peaks else None
        clean = None
        if model.config.get("mode", "record") == "residual":
            if "clean_ecg" not in ds:
                raise ConfigError(f"refiner {self.model!r} changes only the non-cardiac part ecg - clean_ecg "
                                  "(mode 'residual'): the records need clean_ecg ([output] store_clean = true)")
            clean = ds["clean_ecg"].values
        out = refine_records(model, ecg.values, clean=clean, r_peaks=peaks, fs=fs)
        ds = ds.copy()
        if self.keep_simulated:
            ds["ecg_simulated"] = ecg.copy()
            ds["ecg_simulated"].attrs["long_name"] = "the simulated device record before the refiner"
        ds["ecg"] = ecg.copy(data=out)
        ds["ecg"].attrs["comment"] = (ecg.attrs.get("comment", "") + " Refined by the learned refiner "
                                      f"(SHA-256 {self.sha256}).").strip()
        ds.attrs["refiner_sha256"] = self.sha256
        ds.attrs["refiner_settings"] = json.dumps(settings, sort_keys=True, default=str)
        return ds

    def __repr__(self) -> str:
        return f"RefinePostprocess({self.model!r}, sha256={self.sha256[:12]}...)"


def generate_refined(recipe, output, **kwargs):
    """Generate a dataset whose recipe applies a refiner (``[refine] model``).

    Parameters
    ----------
    recipe : Recipe or path of a recipe TOML
        Must set ``[refine] model``; the file is pinned (absolute path, SHA-256) in the
        stored recipe, like the body's files.
    output : path
        As for :func:`cardiosim.dataset.generate`.
    **kwargs
        Passed to :func:`cardiosim.dataset.generate` (``workers``, ``progress``, ...).

    Returns
    -------
    GenerationSummary

    Records are bit-identical for any worker count: each is refined on its own, on one
    CPU thread, inside the worker that simulated it.
    """
    from ..dataset import Recipe, generate
    from ..dataset.generate import _state

    if not isinstance(recipe, Recipe):
        recipe = Recipe.read(recipe)
    if not recipe.refine.model:
        raise ConfigError("the recipe sets no [refine] model; use cardiosim.dataset.generate")
    if "postprocess" in kwargs:
        raise ConfigError("generate_refined builds the postprocess itself; do not pass postprocess=")
    recipe = recipe.pinned()  # raises on a missing or changed refiner file
    post = RefinePostprocess(recipe.refine.model, recipe.refine.model_sha256,
                             keep_simulated=recipe.refine.keep_simulated)
    # fail before anything is written when the refiner does not fit the device's records
    ctx = _state(recipe.to_toml())[2]
    model, _ = post.load(float(ctx.device.fs), len(ctx.montage.leads))
    if model.config.get("mode", "record") == "residual" and not recipe.output.store_clean:
        raise ConfigError(f"refiner {post.model!r} changes only the non-cardiac part ecg - clean_ecg (mode "
                          "'residual'): set [output] store_clean = true in the recipe")
    return generate(recipe, output, postprocess=post, **kwargs)


def refine_dataset(dataset, refiner, output, *, keep_simulated: bool = True, overwrite: bool = False) -> Path:
    """Refine every record of an existing cardiosim dataset into a new netCDF file.

    Parameters
    ----------
    dataset : path (file or shard folder)
    refiner : path of a refiner (``.pt``)
    output : path (``.nc``), written atomically
    keep_simulated, overwrite : bool

    The output is what generating with ``[refine] model`` gives (same refined ``ecg``
    bits for a float32 dataset); its ``recipe`` attribute is the input's with the
    refiner pinned in ``[refine]``, so it regenerates this dataset.
    """
    from ..dataset import open_dataset, write_netcdf
    from ..dataset.schema import encoding_for

    output = Path(output)
    if output.suffix != ".nc":
        raise ConfigError(f"output {str(output)!r} must be a .nc file")
    if output.exists() and not overwrite:
        raise ConfigError(f"output file {str(output)!r} exists; pass --overwrite to replace it")
    if not Path(refiner).is_file():
        raise DataFormatError(f"refiner file {str(refiner)!r} does not exist")
    post = RefinePostprocess(refiner, keep_simulated=keep_simulated)
    ds = open_dataset(dataset).load()
    out = post(ds)
    if "recipe" in out.attrs:
        from ..dataset import Recipe
        from ..dataset.recipe import RefineRecipe

        stored = Recipe.from_toml(out.attrs["recipe"])
        out.attrs["recipe"] = stored.replace(refine=RefineRecipe(model=post.model, keep_simulated=keep_simulated,
                                                                 model_sha256=post.sha256)).to_toml()
    # float32 signals: the refined record is not on the int16 grid of the input's packing
    write_netcdf(out, output, encoding_for(out))
    return output
