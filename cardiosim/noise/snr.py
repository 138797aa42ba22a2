"""Signal-to-noise ratio: definitions, measurement and scaling, per lead and pooled.

Two definitions:

``'nstdb'`` -- the MIT-BIH Noise Stress Test Database definition (Moody, Muldrow & Mark
    1984; PHYSICS.md section 6), as the WFDB ``nst`` program computes it through
    ``sigamp``: ``S = A^2 / 8`` (the power of a sine of peak-to-peak amplitude ``A``),
    ``A`` = trimmed mean of the QRS peak-to-peak amplitudes, each measured in the window
    ``[r - 0.05 s, r + 0.05 s]`` (both ends included) around an R peak (normal beats,
    when the caller has annotations); ``N = a^2``, ``a`` = trimmed mean of the RMS of the
    noise in consecutive, non-overlapping 1-s chunks, **each chunk's own mean removed
    before its RMS** (``sigamp``'s ``getrms``). Trimmed means drop ``n // 20`` values at
    each end of the sorted measurements (``trim = 0.05``). ``sigamp`` stops after 300
    measurements by default (``max_measurements``); the default here uses them all.
``'power'`` -- mean power: ``S = mean(clean^2)`` (after removing each lead's mean),
    ``N = mean(noise^2)``.

Per lead and pooled: ``SNR_k = 10 log10(S_k / N_k)`` per lead ``k``; the pooled SNR is
``10 log10(sum_k S_k / sum_k N_k)`` (FECGSYN sets SNR against the mean ECG power over
channels, PHYSICS.md section 6). NSTDB itself sets one gain per channel, i.e. targets
the per-lead SNR. Noise born at the electrodes reaches several leads, so one gain per
electrode cannot always give every lead its target: :func:`electrode_gains` fits the
gains in dB (exact where the montage allows, least squares elsewhere) and reports the
per-lead SNR it reached.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

from .. import qrs as _qrs
from .._exp_kernels import np_log10_loop
from . import _kernels
from ..config import check_fs
from ..errors import ConfigError, SignalError
from .electrode import ElectrodeNoise, _new_electrode_noise

DEFINITIONS = ("nstdb", "power")
TARGETING = ("per_lead", "pooled")

#: Half-width of sigamp's QRS window around each beat annotation (s).
QRS_HALF_WINDOW_S = 0.05
#: A lead of its own electrode (a chest lead) further than this from its target after the
#: joint per-lead fit gets a 1-D search over that electrode's gain (dB).
_OWN_LEAD_TOL_DB = 0.05


def _as_leads(x, name) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[-1] == 0:
        raise SignalError(f"{name} must have shape [n_leads, T] with T > 0, got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise SignalError(f"{name} contains NaN or inf samples")
    return x


def detect_r_peaks(clean_leads, fs: float, *, min_rr_s: float = 0.3) -> np.ndarray:
    """R peaks of clean (simulated) leads, used when no annotation is given: the one
    detector of cardiosim, :func:`cardiosim.qrs.detect_r_peaks` (Pan-Tompkins style, QRS
    energy pooled over the leads), with ``min_rr_s`` as its refractory period.

    Parameters
    ----------
    clean_leads : array [n_leads, T] or [T], mV
    fs : float, Hz (>= 50)
    min_rr_s : float, s
        Minimum distance between two beats.

    Returns
    -------
    ndarray of int64, sample indices (empty for records shorter than 1 s).
    """
    x = _as_leads(clean_leads, "clean_leads")
    return _qrs.detect_r_peaks(x, fs, refractory=min_rr_s)


def qrs_amplitudes(clean_leads, fs: float, r_peaks, *, qrs_window_s: float = 2 * QRS_HALF_WINDOW_S) -> np.ndarray:
    """Peak-to-peak amplitude of every QRS complex, ``[n_leads, n_beats]`` mV (``sigamp -a``).

    The window is ``[r - h, r + h]`` samples, both ends included, ``h = round(qrs_window_s
    * fs / 2)``; windows are clipped to the record.
    """
    return _qrs_amplitudes(_as_leads(clean_leads, "clean_leads"), fs, r_peaks, qrs_window_s)


def _qrs_amplitudes(x, fs, r_peaks, qrs_window_s):
    """:func:`qrs_amplitudes` of leads already validated."""
    r = np.asarray(r_peaks, dtype=np.int64).ravel()
    if r.size == 0:
        raise SignalError("no R peaks given or found in clean_leads; the 'nstdb' SNR needs QRS complexes")
    if np.any((r < 0) | (r >= x.shape[1])):
        raise SignalError(f"r_peaks outside [0, {x.shape[1]}): {r[(r < 0) | (r >= x.shape[1])][:5]}")
    h = max(1, int(round(qrs_window_s * fs / 2)))
    out = np.empty((x.shape[0], r.size))
    _kernels.qrs_pp_kernel(np.ascontiguousarray(x), np.ascontiguousarray(r), h, out)
    return out


def signal_power(clean_leads, *, definition: str = "nstdb", fs: float | None = None,
                 r_peaks=None, qrs_window_s: float = 2 * QRS_HALF_WINDOW_S, trim: float = 0.05,
                 max_measurements: int | None = None) -> np.ndarray:
    """Per-lead signal power ``S_k`` (mV^2) under ``definition`` (see module docstring).

    ``r_peaks`` (sample indices; pass the normal beats of an annotation to follow
    ``sigamp -a`` exactly) is used by 'nstdb'; when ``None`` they are found with
    :func:`detect_r_peaks`. ``max_measurements`` keeps the first beats only (``sigamp -n``).
    """
    x = _as_leads(clean_leads, "clean_leads")
    _check_def(definition)
    if definition == "power":
        return np.mean((x - x.mean(axis=1, keepdims=True)) ** 2, axis=1)
    fs = _check_fs(fs)
    r = detect_r_peaks(x, fs) if r_peaks is None else np.asarray(r_peaks, dtype=np.int64).ravel()
    if max_measurements is not None:
        r = r[:_check_nmax(max_measurements)]
    pp = _qrs_amplitudes(x, fs, r, qrs_window_s)
    return trimmed_mean(pp, trim) ** 2 / 8.0


def noise_power(noise_leads, *, definition: str = "nstdb", fs: float | None = None,
                trim: float = 0.05, max_measurements: int | None = None) -> np.ndarray:
    """Per-lead noise power ``N_k`` (mV^2) under ``definition`` (see module docstring).

    ``max_measurements`` keeps the first 1-s chunks only (``sigamp -n``; 'nstdb' only).
    """
    n = _as_leads(noise_leads, "noise_leads")
    _check_def(definition)
    if definition == "power":
        return _noise_power(n, definition, None)
    fs = _check_fs(fs)
    if max_measurements is not None:
        n = n[:, :_check_nmax(max_measurements) * int(round(fs))]
    return _noise_power(n, definition, fs, trim)


def chunk_rms(n, fs: float) -> np.ndarray:
    """RMS of consecutive 1-s chunks, each chunk's own mean removed (``sigamp``'s
    ``getrms``), of ``n`` ``[..., T]`` -> ``[..., T // round(fs)]`` float64; the incomplete
    last chunk is not measured."""
    c = int(round(fs))
    k = n.shape[-1] // c
    if k == 0:
        raise SignalError(f"the 'nstdb' noise power needs at least one 1-s chunk ({c} samples), got {n.shape[-1]}")
    x = np.asarray(n[..., :k * c])
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    x = x.reshape(n.shape[:-1] + (k, c))
    # two passes (mean, then squared deviations): no cancellation under a large baseline
    # offset, so float32 noise can stay float32 (5x faster than a float64 copy, measured;
    # a numba loop with float64 sums was slower still: the reductions do not vectorise)
    d = x - x.mean(axis=-1, keepdims=True)
    return np.sqrt(np.einsum("...i,...i->...", d, d).astype(np.float64) / c)


@functools.lru_cache(maxsize=64)
def _lead_keys(kind: str, leads: tuple) -> tuple:
    return tuple(f"snr_lead_db.{kind}.{name}" for name in leads)


@functools.lru_cache(maxsize=64)
def _snr_keys(kinds: tuple, leads: tuple) -> tuple:
    """``snr_db.<kind>`` then :func:`_lead_keys` of each kind, in order (cached per layout)."""
    keys = []
    for kind in kinds:
        keys.append(f"snr_db.{kind}")
        keys += _lead_keys(kind, leads)
    return tuple(keys)


def _noise_power(n, definition, fs, trim=0.05):
    """:func:`noise_power` on ``[..., n_leads, T]`` without validation -> ``[..., n_leads]``."""
    if definition == "power":
        return np.mean(np.square(n), axis=-1, dtype=np.float64)
    return trimmed_mean(chunk_rms(n, fs), trim) ** 2


def _measured_lead_power(arrays, matrix, definition, fs, trim):
    """Noise power ``[n_kinds, n_leads]`` of the leads ``matrix @ x`` of each electrode
    noise ``x`` [n_e, T] in ``arrays``, without forming the leads for 'nstdb': the chunk
    variances of all kinds come from one call of
    :func:`~cardiosim.noise._kernels.lead_chunk_var_multi_kernel` (leads summed from their
    non-zero weights in float64, the Wilson terminal once per chunk; the values of
    :func:`~cardiosim.noise._kernels.lead_chunk_var_kernel` bit for bit), then one trimmed
    mean for all kinds."""
    if definition == "power":
        return np.stack([_noise_power(matrix.astype(x.dtype) @ x, definition, fs, trim) for x in arrays])
    c = int(round(fs))
    k = arrays[0].shape[-1] // c
    if k == 0:
        raise SignalError(f"the 'nstdb' noise power needs at least one 1-s chunk ({c} samples), got "
                          f"{arrays[0].shape[-1]}")
    plan = _kernels.lead_plan(matrix)
    var = np.empty((len(arrays), plan[0].shape[0], k))
    xs = []
    for x in arrays:
        x = np.asarray(x)
        if x.dtype not in (np.float32, np.float64):
            x = x.astype(np.float64)
        xs.append(None if x.strides[-1] == 0 else np.ascontiguousarray(x))   # None: a broadcast constant
    if all(x is not None for x in xs) and len({x.dtype for x in xs}) == 1:
        # every kind in one call (leads summed once per chunk where they share terms)
        _kernels.lead_chunk_var_multi_kernel(*plan, tuple(xs), c, var)
    else:
        for i, x in enumerate(xs):
            if x is None:                  # a broadcast constant: no variance in any chunk
                var[i] = 0.0
            else:
                _kernels.lead_chunk_var_multi_kernel(*plan, (x,), c, var[i:i + 1])
    return trimmed_mean(np.sqrt(var), trim) ** 2


_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _nstdb_powers_fast(clean_leads, arrays, matrix, fs, r_peaks, trim, finite=False):
    """``(signal_power(clean_leads), _measured_lead_power(arrays))`` for the 'nstdb'
    definition in one numba call (:func:`~cardiosim.noise._kernels.nstdb_powers_kernel`:
    the same operations in the same order, so the same values bit for bit), or ``None``
    when the inputs are not the plain case it covers (given beats, float leads and noise of
    the montage's shapes, finite values, a valid trim): the caller then takes the NumPy
    path, which validates, raises and measures as before."""
    x = clean_leads
    if (r_peaks is None or type(fs) is not float or not (math.isfinite(fs) and fs > 0)
            or not isinstance(x, np.ndarray) or x.ndim != 2 or x.dtype not in _FLOATS or not 0 <= trim < 0.5):
        return None
    r = np.asarray(r_peaks, dtype=np.int64).ravel()
    c = int(round(fs))
    n_l, n_e = matrix.shape
    xs = tuple(arrays)
    if r.size == 0 or x.shape[0] != n_l or x.shape[1] == 0 or c < 1:
        return None
    shape = (n_e, x.shape[1])
    for a in xs:
        if (type(a) is not np.ndarray or a.dtype != xs[0].dtype or a.dtype not in _FLOATS
                or a.shape != shape or not a.flags.c_contiguous):
            return None
    k = x.shape[1] // c
    cut_s, cut_p = int(trim * r.size), int(trim * k)
    if k == 0 or 2 * cut_s >= r.size or 2 * cut_p >= k:
        return None
    x = np.ascontiguousarray(x)
    h = max(1, int(round(2 * QRS_HALF_WINDOW_S * fs / 2)))
    s, p = np.empty(n_l), np.empty((len(xs), n_l))
    # clean leads known to be finite (``finite``: the noise stage checked them as it formed
    # them) skip the kernel's pass that checks them
    kern = _kernels.nstdb_powers_finite_kernel if finite else _kernels.nstdb_powers_kernel
    status = kern(x, r, h, cut_s, *_kernels.lead_plan(matrix), xs, c, cut_p, s, p)
    return (s, p) if status == 0 else None


@functools.lru_cache(maxsize=1)
def _snr_db_kernel_matches() -> bool:
    """Whether :func:`~cardiosim.noise._kernels.snr_db_kernel` gives the NumPy expressions of
    :func:`scale_electrode_noise` bit for bit on this machine (its ``log10`` is the C
    library's; NumPy's may be another, e.g. SVML's on AVX-512): powers over 14 decades and
    1-15 leads, checked once per process; else the NumPy lines are used."""
    return _snr_db_matches(_kernels.snr_db_kernel)


def _snr_db_matches(kernel, *loop) -> bool:
    """Whether ``kernel(s, p, out, *loop)`` gives ``snr_db_ref(s, p)`` bit for bit on powers
    over 14 decades and 1-15 leads (the checks of :func:`_snr_db_form`)."""
    try:
        g = np.random.default_rng(20261207)
        for n_k, n_l in ((4, 12), (1, 1), (3, 3), (5, 8), (2, 15), (6, 9)):
            for _ in range(20):
                s = 10.0 ** g.uniform(-8, 2, n_l)
                p = 10.0 ** g.uniform(-12, 2, (n_k, n_l))
                out = np.empty(n_k * (1 + n_l))
                want = _kernels.snr_db_ref(s, p)
                if not kernel(s, p, out, *loop) or out.tobytes() != want.tobytes():
                    return False
        return True
    except Exception:        # noqa: BLE001 - any failure: the NumPy lines
        return False


_SNR_DB_FORM = []


def _snr_db_form():
    """How :func:`scale_electrode_noise` forms the measured kinds' realised SNRs here:
    ``("kernel", ())`` (:func:`~cardiosim.noise._kernels.snr_db_kernel`, the C library's
    ``log10``, where it is NumPy's), ``("loop", (loop,))``
    (:func:`~cardiosim.noise._kernels.snr_db_loop_kernel`: NumPy's own ``log10`` loop called
    from the kernel, e.g. SVML's on AVX-512) or None (the NumPy lines): the first form that
    gives the NumPy lines' values bit for bit (:func:`_snr_db_matches`), once per process."""
    if not _SNR_DB_FORM:
        form = None
        if _snr_db_kernel_matches():
            form = ("kernel", ())
        else:
            loop = np_log10_loop()
            if loop is not None and _snr_db_matches(_kernels.snr_db_loop_kernel, loop):
                form = ("loop", (loop,))
        _SNR_DB_FORM.append(form)
    return _SNR_DB_FORM[0]


def trimmed_mean(a, trim: float = 0.05) -> np.ndarray:
    """Mean along the last axis after cutting ``int(trim * n)`` values at each end (as
    ``sigamp``'s ``n / 20`` for ``trim = 0.05`` and ``scipy.stats.trim_mean``, without
    its per-call overhead)."""
    a = np.sort(np.asarray(a, dtype=np.float64), axis=-1)
    n = a.shape[-1]
    cut = int(trim * n)
    if not (0 <= trim < 0.5) or 2 * cut >= n:
        raise ConfigError(f"trim = {trim} leaves no values out of {n}")
    return a[..., cut:n - cut].mean(axis=-1)


def measure_snr(noise_leads, clean_leads, *, definition: str = "nstdb", fs: float | None = None,
                r_peaks=None, per_lead: bool = False, qrs_window_s: float = 2 * QRS_HALF_WINDOW_S,
                trim: float = 0.05, max_measurements: int | None = None):
    """SNR in dB of ``noise_leads`` against ``clean_leads`` (both ``[n_leads, T]`` mV).

    Returns the pooled SNR ``10 log10(sum S / sum N)`` (float), or the per-lead SNR
    ``[n_leads]`` when ``per_lead``. Zero noise gives ``inf``.
    """
    s = signal_power(clean_leads, definition=definition, fs=fs, r_peaks=r_peaks, qrs_window_s=qrs_window_s,
                     trim=trim, max_measurements=max_measurements)
    nz = noise_power(noise_leads, definition=definition, fs=fs, trim=trim, max_measurements=max_measurements)
    if s.shape != nz.shape:
        raise SignalError(f"noise_leads has {nz.size} leads, clean_leads {s.size}")
    with np.errstate(divide="ignore"):
        if per_lead:
            return 10 * np.log10(s / nz)
        return float(10 * np.log10(s.sum() / nz.sum()))


def snr_gain(noise_leads, clean_leads, snr_db: float, *, definition: str = "nstdb", fs=None,
             r_peaks=None, per_lead: bool = False, **kwargs):
    """The factor ``g`` such that ``g * noise_leads`` has SNR ``snr_db`` (both definitions
    are homogeneous of degree 2 in the noise amplitude, so the target is met exactly):
    one float for the pooled SNR, ``[n_leads]`` gains (as ``nst``) when ``per_lead``.
    Zero noise -> ``nan``. ``kwargs``: ``qrs_window_s``, ``trim``, ``max_measurements``."""
    if not np.isfinite(snr_db):
        raise ConfigError(f"snr_db must be finite, got {snr_db!r}")
    cur = measure_snr(noise_leads, clean_leads, definition=definition, fs=fs, r_peaks=r_peaks,
                      per_lead=per_lead, **kwargs)
    g = np.where(np.isfinite(cur), 10 ** ((np.asarray(cur) - snr_db) / 20.0), np.nan)
    return g if per_lead else float(g)


def scale_to_snr(noise_leads, clean_leads, snr_db: float, definition: str = "nstdb", *, fs=None,
                 r_peaks=None, return_gain: bool = False, per_lead: bool = False, **kwargs):
    """Scale ``noise_leads`` [n_leads, T] mV so its SNR against ``clean_leads`` is ``snr_db``:
    pooled over the leads (one gain), or in every lead (one gain per lead, as ``nst``) when
    ``per_lead``. For noise born at electrodes (shared between leads) see
    :func:`electrode_gains`.

    Returns the scaled noise (float64), and the gain(s) when ``return_gain``.

    Raises
    ------
    SignalError
        If the noise is identically zero (no gain can reach a finite SNR).
    """
    g = snr_gain(noise_leads, clean_leads, snr_db, definition=definition, fs=fs, r_peaks=r_peaks,
                 per_lead=per_lead, **kwargs)
    if not np.all(np.isfinite(g)):
        raise SignalError("noise_leads is identically zero (in some lead); it cannot be scaled to a finite SNR")
    out = np.asarray(noise_leads, dtype=np.float64) * (np.asarray(g)[:, None] if per_lead else g)
    return (out, g) if return_gain else out


def _lead_noise_power_fn(matrix, noise_e, definition, fs, trim):
    """``P(gains [n_e]) -> ([n_leads] noise power, d log P / d log gains [n_leads, n_e])``
    of ``matrix @ (gains * noise_e)``, exact and cheap: per 1-s chunk the lead variance is
    a quadratic form of the electrodes' chunk covariance (each chunk's mean removed, as the
    definition asks), so the record is read once."""
    x = np.asarray(noise_e, dtype=np.float64)
    if definition == "power":
        cov = (x @ x.T / x.shape[1])[None]                              # [1, n_e, n_e]
    else:
        c = int(round(fs))
        k = x.shape[1] // c
        if k == 0:
            raise SignalError(f"the 'nstdb' noise power needs at least one 1-s chunk ({c} samples)")
        ch = x[:, :k * c].reshape(x.shape[0], k, c).transpose(1, 0, 2)  # [k, n_e, c]
        ch = ch - ch.mean(axis=-1, keepdims=True)
        cov = ch @ ch.transpose(0, 2, 1) / c                            # [k, n_e, n_e]
    m = np.asarray(matrix, dtype=np.float64)
    n_chunks = cov.shape[0]
    cut = int(trim * n_chunks) if definition == "nstdb" else 0
    if 2 * cut >= n_chunks:
        raise ConfigError(f"trim = {trim} leaves no values out of {n_chunks}")

    def power(g):
        a = m * g[None, :]                                              # [L, n_e]
        ca = np.einsum("kef,lf->lke", cov, a)                           # [L, k, n_e]
        var = np.maximum(np.einsum("le,lke->lk", a, ca), 1e-300)        # [L, k]
        if definition == "power":
            return var[:, 0], 2 * a * ca[:, 0] / var[:, :1]
        rms = np.sqrt(var)
        order = np.argsort(rms, axis=1)[:, cut:n_chunks - cut]          # the trimmed mean's chunks
        keep = np.zeros_like(rms)
        np.put_along_axis(keep, order, 1.0, axis=1)
        tm = (rms * keep).sum(axis=1) / keep.sum(axis=1)
        # d rms / d log g_e = a_e (C a)_e / rms
        drms = np.einsum("lk,lke->le", keep / rms, a[:, None, :] * ca) / keep.sum(axis=1)[:, None]
        return tm ** 2, 2 * drms / tm[:, None]
    power.cov, power.cut = cov, cut
    return power


def _own_lead_gain(power, matrix, g, lead: int, e: int, p_target: float, *, span: float = 7.0,
                   n_grid: int = 281):
    """The gain of electrode ``e`` -- which appears in lead ``lead`` only -- that brings that
    lead's noise power to ``p_target``, the other gains ``g`` held.

    The lead is ``a_e x_e + rest``: per 1-s chunk its variance is a quadratic in the gain,
    ``g_e^2 m^2 C_ee + 2 g_e m (C a_rest)_e + a_rest' C a_rest``. When the electrode's noise
    is correlated with the rest of the lead (baseline wander through the Wilson terminal),
    the lead's noise first *falls* as ``g_e`` rises from 0 and has a valley; a local fit
    started on the wrong side of it stops there. A scan over ``log g_e`` (``+-span`` around
    the gain at which the electrode's own noise alone would meet the target, and near the
    current gain) finds every crossing of the target; the one nearest the
    current gain (in log) is refined with Brent's method. Without a crossing (the lead
    cannot be made as clean as asked) the gain at the valley's bottom is returned.
    """
    from scipy.optimize import brentq

    cov, cut = power.cov, power.cut
    m_le = float(matrix[lead, e])
    a = matrix[lead] * g
    a_rest = a.copy()
    a_rest[e] = 0.0
    c2 = m_le * m_le * cov[:, e, e]                                  # [k]
    c1 = 2.0 * m_le * np.einsum("kf,f->k", cov[:, e, :], a_rest)
    c0 = np.einsum("f,kfh,h->k", a_rest, cov, a_rest)
    n_chunks = cov.shape[0]

    def p_of(log_ge):
        ge = np.exp(np.atleast_1d(log_ge))[:, None]
        rms = np.sqrt(np.maximum(c2 * ge * ge + c1 * ge + c0, 1e-300))
        rms = np.sort(rms, axis=1)[:, cut:n_chunks - cut]
        return rms.mean(axis=1) ** 2

    # scan around the gain at which the electrode's own noise alone meets the target (the
    # increasing branch crosses the target within a few times of it), and the current gain
    x_own = 0.5 * float(np.log(p_target / max(float(np.median(c2)), 1e-300)))
    x0 = float(np.log(g[e])) if g[e] > 0 else x_own
    grid = np.union1d(x_own + np.linspace(-span, span, n_grid), x0 + np.linspace(-1.0, 1.0, 41))
    f = np.log(p_of(grid) / p_target)
    cross = np.flatnonzero(np.sign(f[:-1]) != np.sign(f[1:]))
    if cross.size == 0:
        return float(np.exp(grid[int(np.argmin(np.abs(f)))]))
    i = int(cross[np.argmin(np.abs(grid[cross] - x0))])
    root = brentq(lambda x: float(np.log(p_of(x)[0] / p_target)), grid[i], grid[i + 1], xtol=1e-10)
    return float(np.exp(root))


def electrode_gains(matrix, noise_e, signal_lead, snr_db: float, *, fs: float, definition: str = "nstdb",
                    targeting: str = "per_lead", trim: float = 0.05):
    """Gains per electrode that bring electrode-born noise to ``snr_db`` in the leads.

    Parameters
    ----------
    matrix : array [n_leads, n_e]
        Lead matrix (lead = ``matrix @ electrode potentials``).
    noise_e : array [n_e, T], mV
        One noise kind at the electrodes.
    signal_lead : array [n_leads], mV^2
        ``S_k`` of every lead (:func:`signal_power`).
    snr_db : float
    targeting : {'per_lead', 'pooled'}
        'pooled': one gain for every electrode, pooled SNR exactly ``snr_db``.
        'per_lead': one gain per electrode fitted so every lead's SNR is ``snr_db`` where
        the montage allows it (least squares in dB otherwise, from the pooled solution;
        electrodes no lead uses keep the pooled gain). An electrode that only one lead
        uses (a chest electrode) then gets that lead's target exactly by a 1-D search over
        its gain (:func:`_own_lead_gain`), unless the noise arriving through the lead's
        other electrodes is already above the target; the joint fit is repeated once
        from there.

    Returns
    -------
    gains : ndarray [n_e] (all 1 when the noise is zero in every lead)
    snr_lead : ndarray [n_leads], dB, realised per lead (``inf`` for a noise-free lead,
        ``nan`` for a lead with no signal)
    snr_pooled : float, dB, realised
    """
    _check_def(definition)
    if targeting not in TARGETING:
        raise ConfigError(f"unknown SNR targeting {targeting!r}; expected one of {TARGETING}")
    if not np.isfinite(snr_db):
        raise ConfigError(f"snr_db must be finite, got {snr_db!r}")
    m = np.asarray(matrix, dtype=np.float64)
    s = np.asarray(signal_lead, dtype=np.float64)
    n_e = m.shape[1]
    power = _lead_noise_power_fn(m, noise_e, definition, fs, trim)
    ones = np.ones(n_e)
    p1 = power(ones)[0]
    if not np.any(p1 > 1e-300):
        return ones, np.full(s.shape, np.inf), float("inf")
    g = ones * np.sqrt(s.sum() / p1.sum() / 10 ** (snr_db / 10.0))
    if targeting == "per_lead":
        use = (s > 0) & (p1 > 1e-300)
        free = np.any(m[use] != 0, axis=0)
        if np.any(use) and np.any(free):
            from scipy.optimize import least_squares
            db = 10 / np.log(10)
            x0 = np.log(g[free])

            memo = {}

            def resid_jac(log_g):
                key = log_g.tobytes()
                if key not in memo:              # scipy asks for r and J separately: one pass
                    gg = g.copy()
                    gg[free] = np.exp(log_g)
                    p, dlog = power(gg)
                    memo.clear()
                    memo[key] = (db * np.log(s[use] / p[use]) - snr_db, -db * dlog[use][:, free])
                return memo[key]
            # soft-L1 loss: a lead that cannot reach its target (residual >> 0.25 dB) stops
            # pulling on the others, which then reach theirs
            sol = least_squares(lambda x: resid_jac(x)[0], x0, jac=lambda x: resid_jac(x)[1],
                                bounds=(x0 - 7.0, x0 + 7.0), loss="soft_l1", f_scale=0.25,
                                xtol=1e-8, ftol=1e-8, max_nfev=50)
            g[free] = np.exp(sol.x)
            # An electrode of one lead only (a chest electrode) can always be given its
            # lead's target exactly, unless that asks for a lead cleaner than the noise
            # arriving through the other electrodes allows: a 1-D search per such electrode
            # (the local fit can settle in the valley of a correlated lead, see
            # _own_lead_gain), then one more joint fit from there (the limb electrodes no
            # longer pull against chest leads that were stuck).
            own = [(int(np.flatnonzero(m[use][:, j] != 0)[0]), j) for j in np.flatnonzero(free)
                   if np.count_nonzero(m[use][:, j]) == 1 and np.count_nonzero(m[:, j]) == 1]
            idx_use = np.flatnonzero(use)
            p_target = s / 10 ** (snr_db / 10.0)
            for rnd in range(2):
                p = power(g)[0]
                miss = [(li, j) for li, j in own
                        if abs(db * np.log(s[idx_use[li]] / p[idx_use[li]]) - snr_db) > _OWN_LEAD_TOL_DB]
                if not miss:
                    break
                for li, j in miss:
                    k = idx_use[li]
                    g[j] = _own_lead_gain(power, m, g, k, j, p_target[k])
                if rnd == 0:
                    x1 = np.log(g[free])
                    sol = least_squares(lambda x: resid_jac(x)[0], x1, jac=lambda x: resid_jac(x)[1],
                                        bounds=(x1 - 7.0, x1 + 7.0), loss="soft_l1", f_scale=0.25,
                                        xtol=1e-8, ftol=1e-8, max_nfev=50)
                    g[free] = np.exp(sol.x)
    p = power(g)[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        snr_lead = np.where(s > 0, 10 * np.log10(s / p), np.nan)
        pooled = float(10 * np.log10(s.sum() / p.sum()))
    return g, snr_lead, pooled


def scale_electrode_noise(noise, montage, clean_leads, *, r_peaks=None, snr_db=None, definition: str | None = None,
                          targeting: str = "per_lead", trim: float = 0.05, _finite_leads: bool = False):
    """Scale each kind of an :class:`~cardiosim.noise.ElectrodeNoise` to its target SNR in the
    leads, and measure the realised SNR of every kind, per lead and pooled.

    Gains are applied at the electrodes (one per kind, or one per kind and electrode for
    ``targeting='per_lead'``; see :func:`electrode_gains`), so every lead keeps its
    electrodes' noise and the montage stays consistent.

    Parameters
    ----------
    noise : ElectrodeNoise
    montage : Montage (``matrix [n_leads, n_e]``) and ``leads`` names
    clean_leads : array [n_leads, T], mV
    r_peaks : sample indices of the beats (default: detected on ``clean_leads``)
    snr_db : mapping kind -> dB (default the record's draws ``noise.snr_targets``)
    definition : 'nstdb' or 'power' (default the noise config's)
    targeting : 'per_lead' (default; NSTDB sets one gain per channel) or 'pooled'
    _finite_leads : bool, private
        True when the caller knows every value of ``clean_leads`` is finite (the noise stage,
        which checked them as it formed them): the measure skips its own check.

    Returns
    -------
    ElectrodeNoise with scaled kinds and, in ``params``: ``snr_db.<kind>`` realised pooled
    SNR and ``snr_lead_db.<kind>.<lead>`` realised per lead, for every kind (kinds without
    a target keep their physical amplitude and are only measured; ``contact`` lead-off
    offsets are not noise with an SNR); for targeted kinds ``snr_spread_db.<kind>``, the
    largest |realised - target| over the leads (about 0 where the montage allows every
    lead its target) and ``snr_gain.<kind>.<i>`` per electrode; ``snr_targeting``
    ('per_lead', 'pooled' or 'none' without targets) and ``snr_definition``. A kind that
    is zero in every lead keeps gain 1 and SNR ``inf``. Without QRS complexes in
    ``clean_leads`` the SNR is undefined: NaN, unless a target asks for it (SignalError).
    """
    definition = definition or noise.params.get("_snr_definition", "nstdb")
    _check_def(definition)
    if targeting not in TARGETING:
        raise ConfigError(f"unknown SNR targeting {targeting!r}; expected one of {TARGETING}")
    targets = dict(snr_db) if snr_db is not None else dict(noise.snr_targets)
    by_kind = dict(noise.by_kind)
    for kind, target in targets.items():
        if kind not in by_kind:
            raise ConfigError(f"snr_db.{kind}: noise kind {kind!r} is not enabled ({', '.join(by_kind)})")
        if not np.isfinite(target):
            raise ConfigError(f"snr_db.{kind} must be finite, got {target!r}")
    matrix = np.asarray(montage.matrix, dtype=np.float64)
    leads = list(getattr(montage, "leads", range(matrix.shape[0])))
    params = dict(noise.params)
    params["snr_targeting"] = targeting if targets else "none"
    params["snr_definition"] = definition
    kinds = [k for k in by_kind if k != "contact" or k in targets]   # lead-off offsets have no SNR
    fast = None
    if definition == "nstdb" and not targets and kinds:
        fast = _nstdb_powers_fast(clean_leads, [by_kind[k] for k in kinds], matrix, noise.fs, r_peaks, trim,
                                  finite=_finite_leads)
    if fast is not None:
        s, p = fast        # the values of the NumPy path below, in one numba call
    else:
        p = None
        try:
            s = signal_power(clean_leads, definition=definition, fs=noise.fs, r_peaks=r_peaks, trim=trim)
        except SignalError:
            if targets:
                raise
            s = None           # nothing to measure against (no QRS): SNR not defined, noise untouched
        if s is not None and s.shape[0] != matrix.shape[0]:
            raise SignalError(f"clean_leads has {s.shape[0]} leads, the montage {matrix.shape[0]}")
        if s is None:
            params.update({f"snr_db.{kind}": float("nan") for kind in kinds})
            kinds = []
    for kind in (k for k in kinds if k in targets):
        g, snr_lead, pooled = electrode_gains(matrix, by_kind[kind], s, float(targets[kind]), fs=noise.fs,
                                              definition=definition, targeting=targeting, trim=trim)
        arr = by_kind[kind]
        by_kind[kind] = arr * g.astype(arr.dtype)[:, None]
        finite = np.isfinite(snr_lead)
        params[f"snr_spread_db.{kind}"] = (float(np.max(np.abs(snr_lead[finite] - float(targets[kind]))))
                                           if np.any(finite) else float("nan"))
        params.update({f"snr_gain.{kind}.{i}": float(gi) for i, gi in enumerate(g)})
        params[f"snr_db.{kind}"] = pooled
        params.update({f"snr_lead_db.{kind}.{name}": float(v) for name, v in zip(leads, snr_lead)})
    measured = [k for k in kinds if k not in targets]
    if measured:           # physical amplitude kept: measured only
        if p is None:
            p = _measured_lead_power([by_kind[k] for k in measured], matrix, definition, noise.fs, trim)
        lead_names = tuple(leads)
        flat = None
        form = _snr_db_form() if fast is not None else None
        if form is not None and len(lead_names) == s.shape[0] and p.shape == (len(measured), s.shape[0]):
            # the common case in one numba call: the values of the NumPy lines below, flat in
            # the order of the keys (None when a power is not positive: NumPy path, masked)
            flat = np.empty(p.shape[0] * (1 + p.shape[1]))
            kern = _kernels.snr_db_kernel if form[0] == "kernel" else _kernels.snr_db_loop_kernel
            if not kern(s, p, flat, *form[1]):
                flat = None
        if flat is not None:
            params.update(zip(_snr_keys(tuple(measured), lead_names), flat.tolist()))
        else:
            if s.min() > 0.0 and p.min() > 0.0:
                # no zero or NaN power: nothing to mask, no warning to silence (the same
                # values without the errstate context and np.where's copy)
                snr_lead = 10 * np.log10(s / p)                               # [n_kinds, n_leads]
                pooled = 10 * np.log10(s.sum() / p.sum(axis=1))
            else:
                with np.errstate(divide="ignore", invalid="ignore"):
                    snr_lead = np.where(s > 0, 10 * np.log10(s / p), np.nan)    # [n_kinds, n_leads]
                    pooled = 10 * np.log10(s.sum() / p.sum(axis=1))
            if len(lead_names) == snr_lead.shape[1]:
                # every kind's keys in one update, in the order of the loop below
                vals = []
                for pk, row in zip(pooled.tolist(), snr_lead.tolist()):
                    vals.append(pk)
                    vals += row
                params.update(zip(_snr_keys(tuple(measured), lead_names), vals))
            else:
                for kind, row, pk in zip(measured, snr_lead.tolist(), pooled.tolist()):
                    params[f"snr_db.{kind}"] = pk
                    params.update(zip(_lead_keys(kind, lead_names), row))
    if type(noise) is ElectrodeNoise:
        # dataclasses.replace's values without its per-call field walk
        return _new_electrode_noise(by_kind, noise.contact, noise.impedance, noise.fs, params, noise.snr_targets)
    return dataclasses.replace(noise, by_kind=by_kind, params=params)


def _check_def(definition):
    if definition not in DEFINITIONS:
        raise ConfigError(f"unknown SNR definition {definition!r}; expected one of {DEFINITIONS}")


def _check_nmax(n):
    if int(n) != n or n < 1:
        raise ConfigError(f"max_measurements must be a positive integer, got {n!r}")
    return int(n)


def _check_fs(fs):
    if fs is None:
        raise ConfigError("the 'nstdb' SNR definition needs the sampling rate fs (Hz)")
    return check_fs(fs, "fs")
