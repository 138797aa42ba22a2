"""RR tachograms and beat schedules of the rhythm classes.

The sinus tachogram is McSharry's bimodal-spectrum process (IEEE TBME 2003;50:289,
PHYSICS.md §5): Gaussian spectral peaks at ``lf_hz`` (Mayer waves, 0.1 Hz) and at the
breathing frequency (respiratory sinus arrhythmia, default 15 breaths/min = 0.25 Hz),
LF/HF power ratio 0.5, random phases, scaled to the requested RR standard deviation.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from ..errors import ConfigError
from . import _kernels, _plan_kernels, _reference

# beat type codes (MIT-BIH letters) of a schedule
NORMAL, VENTRICULAR, ATRIAL = "N", "V", "A"

#: Range (bpm) the sinus rhythms draw McSharry's RR standard deviation from, uniformly, when a
#: record does not set it. Fitted to annotated real sinus rhythm by
#: ``scripts/fit_sinus_hrv.py``: the validation rhythm prior's records (CPSC 2021 without
#: patients 21 and 84, MIT-BIH 100), 10-s windows of normal beats, median over records of
#: their median RMSSD 21.6 ms, against 11.2 ms from McSharry's ECGSYN default of 1 bpm spread
#: as 0.5-2.5 (cardiosim's range until 2026-12-06): that range times 1.94. Reported on
#: records the fit did not see in ``tests/test_sinus_hrv.py``.
SINUS_HR_STD_BPM = (0.95, 4.85)


def _backend(name):
    if name not in ("numba", "numpy"):
        raise ConfigError(f"unknown backend {name!r}; expected 'numba' or 'numpy'")
    return _kernels if name == "numba" else _reference


def uniform(rng, low, high, size=None):
    """``rng.uniform(low, high, size)`` bit for bit and with the same draws: NumPy forms
    each as ``low + (high - low) * next_double`` (``rng.random``), and
    ``Generator.uniform``'s argument handling costs 4-5 µs a call, more than a short
    record's other draws (used where :func:`_uniform_matches` confirmed it, once per
    process; else ``rng.uniform``)."""
    if _uniform_matches():
        return low + (high - low) * rng.random(size)
    return rng.uniform(low, high, size)


def uniform3(rng, a, b, c):
    """``(uniform(rng, *a), uniform(rng, *b), uniform(rng, *c))`` from one ``rng.random(3)``
    (the same three numbers and stream position, checked by :func:`_uniform_matches`;
    about 0.5 µs less than three calls)."""
    if _uniform_matches():
        u0, u1, u2 = rng.random(3).tolist()
        return a[0] + (a[1] - a[0]) * u0, b[0] + (b[1] - b[0]) * u1, c[0] + (c[1] - c[0]) * u2
    return uniform(rng, *a), uniform(rng, *b), uniform(rng, *c)


@lru_cache(maxsize=1)
def _uniform_matches() -> bool:
    a, b = np.random.default_rng(20261206), np.random.default_rng(20261206)
    for low, high in ((0.0, 1.0), (0, 2 * np.pi), (62.0, 95.0), (0.02, 0.08), (-3.0, 7.5)) * 20:
        x, y = a.uniform(low, high), low + (high - low) * b.random()
        if type(x) is not type(y) or x != y:
            return False
    x, y = a.uniform(0.0, 2 * np.pi, 257), 0.0 + (2 * np.pi - 0.0) * b.random(257)
    if x.tobytes() != y.tobytes() or a.random() != b.random():
        return False
    for _ in range(20):  # rng.random(3) (uniform3) draws what three scalar draws give
        x3 = [a.random() for _ in range(3)]
        if b.random(3).tolist() != x3:
            return False
    return a.random() == b.random()


def _check_positive(name, value):
    # (comparisons: NaN and inf fail them; a call of np.isfinite per value cost more than
    # the rest of a short record's RR series)
    if not (value > 0 and value < math.inf):
        raise ConfigError(f"{name} must be a positive finite number, got {value!r}")


def rr_process(duration, rng, *, heart_rate=60.0, heart_rate_std=1.0, lf_hf_ratio=0.5,
               lf_hz=0.1, hf_hz=0.25, lf_width_hz=0.01, hf_width_hz=0.01, fs_rr=4.0):
    """McSharry's RR process ``RR(t)`` sampled at ``fs_rr``.

    Returns
    -------
    rr : ndarray, shape (n,), seconds — RR interval as a function of time
        ``t = arange(n) / fs_rr``, mean ``60 / heart_rate``, standard deviation
        ``60 * heart_rate_std / heart_rate**2`` (McSharry's first-order conversion).
    """
    x, scale, rr_mean = _rr_series(duration, rng, heart_rate, heart_rate_std, lf_hf_ratio, lf_hz, hf_hz,
                                   lf_width_hz, hf_width_hz, fs_rr)
    return rr_mean + x * scale


def _rr_series(duration, rng, heart_rate, heart_rate_std, lf_hf_ratio, lf_hz, hf_hz, lf_width_hz,
               hf_width_hz, fs_rr):
    """:func:`rr_process` as ``(x, scale, rr_mean)``: ``RR(t) = rr_mean + x * scale`` with
    ``x`` McSharry's zero-mean series (scale 0.0 for a flat one)."""
    inf = math.inf
    if not (0 < duration < inf and 0 < heart_rate < inf and 0 < fs_rr < inf and 0 < lf_hz < inf
            and 0 < hf_hz < inf and 0 < lf_width_hz < inf and 0 < hf_width_hz < inf
            and 0 < lf_hf_ratio < inf):  # (then say which)
        for name, v in zip(("duration", "heart_rate", "fs_rr", "lf_hz", "hf_hz", "lf_width_hz",
                            "hf_width_hz", "lf_hf_ratio"),
                           (duration, heart_rate, fs_rr, lf_hz, hf_hz, lf_width_hz, hf_width_hz, lf_hf_ratio)):
            _check_positive(name, v)
    if not (heart_rate_std >= 0 and heart_rate_std < math.inf):
        raise ConfigError(f"heart_rate_std must be >= 0, got {heart_rate_std!r}")
    if hf_hz >= fs_rr / 2:
        raise ConfigError(f"hf_hz={hf_hz} must be below the Nyquist frequency of fs_rr={fs_rr}")
    n = _fft_length(max(duration * fs_rr, 64))
    args = (float(lf_hz), float(hf_hz), float(lf_width_hz), float(hf_width_hz), float(lf_hf_ratio))
    form = _plan_kernels.spectrum_u_form() if _uniform_matches() else None
    if form is not None:
        # the phases' draws (rng.random, as uniform() draws them) scaled inside the kernel,
        # and cos / sin only on the bins of nonzero power: the same series bit for bit
        # (checked once, _plan_kernels.spectrum_u_matches)
        f = _rfft_freqs(n, float(fs_rr))
        spec = _plan_kernels.spectrum_u(f, *args, rng.random(f.shape[0]), form)
    elif _plan_kernels.fast_spectrum():
        # one kernel: the spectrum (its HF peak moves with each record's breathing rate, so
        # a cache of it never hits) and the random phases (bit for bit, checked once)
        f = _rfft_freqs(n, float(fs_rr))
        phases = uniform(rng, 0.0, 2 * np.pi, f.shape[0])
        spec = _plan_kernels.spectrum(f, *args, phases)
    else:
        amplitude = _spectrum_amplitude(n, float(fs_rr), *args)
        phases = rng.uniform(0.0, 2 * np.pi, amplitude.shape[0])
        spec = amplitude * np.exp(1j * phases)
    x = _irfft(spec, n)
    rr_mean = 60.0 / heart_rate
    rr_std = 60.0 * heart_rate_std / heart_rate ** 2
    x -= np.add.reduce(x) / n  # x.mean(): zero already (no DC term); removes rounding
    sd = math.sqrt(float(np.dot(x, x)) / n)
    return x, (rr_std / sd if sd > 0 else 0.0), rr_mean


def _fft_length(m):
    """``int(2 ** np.ceil(np.log2(m)))`` for ``m >= 1``: ``2**e`` straight from the binary
    exponent (``m = x 2**e``, ``0.5 <= x < 1``) when ``x`` is not within 1e-6 of 0.5 or 1,
    so that ``log2(m)`` lies at least 1e-6 inside ``(e - 1, e)`` and any ``log2`` rounds to a
    value whose ceiling is ``e``; NumPy's expression otherwise (0.5 µs of NumPy scalar calls)."""
    x, e = math.frexp(m)
    if 0.500001 < x < 0.999999:
        return 1 << e
    return int(2 ** np.ceil(np.log2(m)))


@lru_cache(maxsize=16)
def _rfft_freqs(n, fs_rr):
    f = np.fft.rfftfreq(n, 1.0 / fs_rr)
    f.flags.writeable = False
    return f


@lru_cache(maxsize=1)
def _irfft_direct():
    """NumPy's own irfft ufunc (NumPy >= 2: ``np.fft.irfft`` is Python around it, ~15 µs a
    call) if it gives ``np.fft.irfft``'s result bit for bit here (checked once), else None."""
    try:
        from numpy.fft import _pocketfft_umath as pfu

        rng = np.random.default_rng(20261206)
        for n in (64, 256, 1024):
            spec = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
            out = np.empty(n)
            pfu.irfft(spec, _irfft_scale(n), out=out)  # (1-D: the gufunc's last axis)
            if out.tobytes() != np.fft.irfft(spec, n).tobytes():
                return None
        return pfu.irfft
    except Exception:  # NumPy 1.x, or another layout of NumPy's fft module
        return None


def _irfft(spec, n):
    """``np.fft.irfft(spec, n)`` of a 1-D complex128 spectrum of ``n // 2 + 1`` bins."""
    fn = _irfft_direct()
    if fn is None:
        return np.fft.irfft(spec, n)
    out = np.empty(n)
    fn(spec, _IRFFT_SCALE.get(n) or _irfft_scale(n), out=out)
    return out


_IRFFT_SCALE = {}


def _irfft_scale(n):
    """``np.fft.irfft``'s normalisation ``1 / n`` (as it forms it), kept per length: the
    ufunc call for it cost 0.6 µs a record."""
    fct = _IRFFT_SCALE[n] = np.reciprocal(n, dtype=np.float64)
    return fct


@lru_cache(maxsize=64)
def _spectrum_amplitude(n, fs_rr, lf_hz, hf_hz, lf_width_hz, hf_width_hz, lf_hf_ratio):
    """sqrt of McSharry's bimodal power spectrum on the rfft grid of ``n`` samples, DC
    removed (read-only, cached: records of one recipe share it)."""
    f = np.fft.rfftfreq(n, 1.0 / fs_rr)
    power = (lf_hf_ratio * np.exp(-0.5 * ((f - lf_hz) / lf_width_hz) ** 2) / lf_width_hz
             + np.exp(-0.5 * ((f - hf_hz) / hf_width_hz) ** 2) / hf_width_hz)
    amp = np.sqrt(power)
    amp[0] = 0.0
    amp.flags.writeable = False
    return amp


def rr_tachogram(n_beats, rng, *, heart_rate=60.0, heart_rate_std=1.0, lf_hf_ratio=0.5,
                 lf_hz=0.1, breathing_rate=15.0, lf_width_hz=0.01, hf_width_hz=0.01,
                 backend="numba"):
    """RR intervals of ``n_beats`` consecutive sinus beats (seconds).

    Beat ``k+1`` follows beat ``k`` after ``RR(t_k)`` of :func:`rr_process`, with the HF
    (respiratory sinus arrhythmia) peak at ``breathing_rate / 60`` Hz.

    Parameters
    ----------
    n_beats : int
    rng : numpy.random.Generator
    heart_rate : float, bpm;  heart_rate_std : float, bpm
    lf_hf_ratio, lf_hz, lf_width_hz, hf_width_hz : McSharry's spectrum (PHYSICS.md §5)
    breathing_rate : float, breaths per minute (sets the HF peak)
    backend : "numba" or "numpy" (kernel twin)

    Returns
    -------
    rr : ndarray, shape (n_beats,), seconds
    """
    if int(n_beats) != n_beats or n_beats < 1:
        raise ConfigError(f"n_beats must be a positive integer, got {n_beats!r}")
    _check_positive("breathing_rate", breathing_rate)
    _check_positive("heart_rate", heart_rate)
    fs_rr = 4.0
    duration = (n_beats + 4) * 60.0 / heart_rate * 1.5 + 16
    x, scale, rr_mean = _rr_series(duration, rng, heart_rate, heart_rate_std, lf_hf_ratio, lf_hz,
                                   breathing_rate / 60.0, lf_width_hz, hf_width_hz, fs_rr)
    rr = np.empty(int(n_beats))
    if _backend(backend) is _kernels:  # RR(t) = rr_mean + x scale formed as the walk reads it
        shortest = _plan_kernels.tachogram_kernel(x, scale, rr_mean, fs_rr, rr)
    else:
        _reference.tachogram_walk_kernel(rr_mean + x * scale, fs_rr, rr)
        shortest = rr.min()
    if shortest <= 0.2:
        raise ConfigError(f"heart_rate_std={heart_rate_std} bpm is too large for heart_rate="
                          f"{heart_rate} bpm: RR intervals below 0.2 s")
    return rr


def _sinus_rr(n_beats, rng, heart_rate, heart_rate_std, lf_hf_ratio, breathing_rate):
    """``rr_tachogram(n_beats, rng, heart_rate=, heart_rate_std=, lf_hf_ratio=,
    breathing_rate=)`` (its other arguments at their defaults) for the beat schedules: the
    same draws and numbers through the fast forms :func:`_rr_series` uses when they were
    checked here (uniform draws, ``spectrum_u``'s form, NumPy's irfft ufunc), with the
    argument checks and call layers of ``rr_tachogram`` / ``_rr_series`` written out once
    (about 3 µs of a 10-s record's planning); anything else (a form not available, an
    argument that raises there) through ``rr_tachogram``."""
    inf = math.inf
    irfft = _irfft_direct()
    form = _plan_kernels.spectrum_u_form() if _uniform_matches() else None
    hf_hz = breathing_rate / 60.0
    duration = (n_beats + 4) * 60.0 / heart_rate * 1.5 + 16 if type(n_beats) is int and heart_rate else inf
    if (irfft is None or form is None or not n_beats >= 1
            or not (0 < heart_rate < inf and 0 < breathing_rate < inf and 0 < hf_hz < 2.0
                    and 0 < lf_hf_ratio < inf and 0 <= heart_rate_std < inf and 0 < duration < inf)):
        return rr_tachogram(n_beats, rng, heart_rate=heart_rate, heart_rate_std=heart_rate_std,
                            lf_hf_ratio=lf_hf_ratio, breathing_rate=breathing_rate)
    n = _fft_length(max(duration * 4.0, 64))
    f = _rfft_freqs(n, 4.0)
    spec = _plan_kernels.spectrum_u(f, 0.1, float(hf_hz), 0.01, 0.01, float(lf_hf_ratio), rng.random(f.shape[0]),
                                    form)
    x = np.empty(n)
    irfft(spec, _IRFFT_SCALE.get(n) or _irfft_scale(n), out=x)
    rr_mean = 60.0 / heart_rate
    rr_std = 60.0 * heart_rate_std / heart_rate ** 2
    x -= np.add.reduce(x) / n
    sd = math.sqrt(float(np.dot(x, x)) / n)
    rr = np.empty(n_beats)
    if _plan_kernels.tachogram_kernel(x, (rr_std / sd if sd > 0 else 0.0), rr_mean, 4.0, rr) <= 0.2:
        raise ConfigError(f"heart_rate_std={heart_rate_std} bpm is too large for heart_rate="
                          f"{heart_rate} bpm: RR intervals below 0.2 s")
    return rr


def _truncated_gamma_scale(shape, mean, floor):
    """Scale of a gamma(shape) whose truncation to ``>= floor`` has mean ``mean`` (s):
    ``E[X | X >= f] = k θ Q(k+1, f/θ) / Q(k, f/θ)`` (Q the regularised upper incomplete
    gamma) solved by bisection; ``mean / shape`` (untruncated) if ``floor >= mean``."""
    from scipy.special import gammaincc

    hi = mean / shape
    if floor >= mean:
        return hi
    lo = 1e-9
    ks = np.array([shape, shape + 1])
    out = np.empty(2)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        # the two in one call (elementwise, same values) into one buffer, read as Python
        # floats: the same numbers as NumPy scalars, whose arithmetic cost ~1 us a step more
        q, q1 = gammaincc(ks, floor / mid, out).tolist()
        m = shape * mid * q1 / q if q > 0 else floor
        if m > mean:
            hi = mid
        else:
            lo = mid
    return 0.5 * (lo + hi)


def beat_schedule(rhythm, n_beats, rng, heart_rate, *, heart_rate_std, breathing_rate,
                  lf_hf_ratio, rhythm_params, force_range=None):
    """R-peak intervals and beat types of a rhythm class.

    Returns
    -------
    rr : ndarray (n_beats,), s — interval from beat k to beat k+1
    types : ndarray (n_beats,) of str — "N" sinus/conducted, "V" ventricular, "A" atrial ectopic
    params : dict — what was drawn (coupling, conduction ratio, ...)

    ``force_range`` (lo, hi): beat indices that fall inside the record; PVC/PAC schedules
    get at least one ectopic among them (default: any beat but the first and last two).
    """
    params = {}
    codes = np.empty(n_beats, np.uint32)  # the types as UCS-4 code points (np.full is slower)
    codes.fill(_plan_kernels.CODE_N)
    types = codes.view("<U1")
    if rhythm == "AF":
        # RR in AF are nearly independent draws (no sinus-node memory); gamma-distributed
        # intervals with coefficient of variation 0.15-0.30
        cv = rhythm_params.get("af_rr_cv", uniform(rng, 0.15, 0.30))
        shape = 1.0 / cv ** 2
        # no conducted beat inside the refractory period: the AV node's (0.25 s) or the
        # ventricles' (rhythm_params["rr_floor"], the end of the patient's ST-T); shorter
        # intervals are redrawn (truncated gamma, its scale set so the mean RR stays 60/HR)
        floor = max(0.25, float(rhythm_params.get("rr_floor", 0.25)))
        loop = _plan_kernels.gammaincc_loop()
        if loop is not None and isinstance(shape, float) and isinstance(heart_rate, float):
            # the bisection in one kernel call (scipy's gammaincc loop, checked here)
            scale = _plan_kernels.truncated_gamma_scale_kernel(float(shape), float(60.0 / heart_rate), floor, loop,
                                                               np.empty(5))
        else:
            scale = _truncated_gamma_scale(shape, 60.0 / heart_rate, floor)
        rr = rng.gamma(shape, scale, n_beats)
        for _ in range(100):
            bad = rr < floor
            if not bad.any():
                break
            rr[bad] = rng.gamma(shape, scale, int(bad.sum()))
        rr = np.maximum(rr, floor)  # after 100 redraws (never reached at floor << mean RR)
        params.update(af_rr_cv=float(cv), af_rr_floor_s=floor)
        return rr, types, params
    if rhythm == "AFL":
        # every QRS a conducted flutter wave: RR = n atrial cycles, n fixed (2:1, 3:1, 4:1)
        # or, in variable conduction, 2 or 4 beat by beat (4 with probability p_4to1)
        cl = 60.0 / rhythm_params["flutter_rate"]
        conduction = rhythm_params["conduction"]
        if conduction == "2:1/4:1":
            ratios = np.where(rng.uniform(size=n_beats) < rhythm_params["p_4to1"], 4, 2)
        else:
            ratios = np.full(n_beats, int(str(conduction).split(":")[0]))
        return ratios * cl, types, params
    rr = _sinus_rr(n_beats, rng, heart_rate, heart_rate_std, lf_hf_ratio, breathing_rate)
    if rhythm in ("PVC", "PAC"):
        # FECGSYN: two-state Markov chain, P(normal -> normal) 0.7-0.8; an ectopic is never
        # followed directly by another (no couplets).
        p_nn = rhythm_params.get("p_normal_normal", uniform(rng, 0.75, 0.85))
        coupling = rhythm_params.get("coupling",
                                     uniform(rng, 0.55, 0.70) if rhythm == "PVC" else uniform(rng, 0.6, 0.8))
        code = VENTRICULAR if rhythm == "PVC" else ATRIAL
        point = ord(code)
        u = uniform(rng, 0.0, 1.0, n_beats)
        _plan_kernels.ectopic_chain_kernel(u, float(p_nn), point, codes)
        # the label promises at least one ectopic inside the record (beats force_range)
        lo, hi = (2, n_beats - 2) if force_range is None else force_range
        lo, hi = max(int(lo), 2), min(int(hi), n_beats - 2)
        if hi <= lo:
            lo, hi = 2, max(n_beats - 2, 3)
        if not np.any(codes[lo:hi] == point):
            k = lo + int(rng.integers(0, hi - lo))
            codes[k] = point
            codes[k - 1] = codes[k + 1] = _plan_kernels.CODE_N  # no couplets
        # the atrial beats' sinus-node reset factors, one per premature beat in beat order
        # (as the per-beat draws were: rng.uniform(1, 1.1, m) gives the same numbers)
        m = int(np.count_nonzero(codes[1:n_beats - 1] == point)) if code == ATRIAL else 0
        reset = uniform(rng, 1.0, 1.1, m) if m else np.empty(0)
        rr = np.ascontiguousarray(rr, dtype=np.float64)
        _plan_kernels.ectopic_rr_kernel(codes, point, float(coupling), reset, rr)
        params.update(p_normal_normal=float(p_nn), coupling=float(coupling),
                      n_ectopic=int(np.count_nonzero(codes == point)))
    return rr, types, params
