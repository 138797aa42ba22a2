"""A real multi-lead ECG recording as read from a file, and the checks every reader applies."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache

import numpy as np

from ..config import check_fs as _check_rate
from ..errors import ConsistencyWarning, LeadError, SamplingRateError, SignalError
from ..leads import normalize_lead_name

#: Leads a 12-lead record must contain to be turned into a dipole (the 8 independent ones).
REQUIRED_12: tuple[str, ...] = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")

# Tolerance of the redundant limb leads against I and II: derived leads are digitised
# separately (one ADC step each); the shared real records deviate by <= 2 uV RMS. 50 uV is
# far above rounding and well below a swapped or broken limb electrode (hundreds of uV).
_CONSISTENCY_RMS_MV = 0.05


@dataclass(frozen=True)
class Recording:
    """One ECG recording, as read.

    Attributes
    ----------
    signal : ndarray, shape (n_leads, T), float32, mV
    fs : float
        Sampling rate, Hz.
    leads : tuple of str
        Canonical lead names (``cardiosim.leads.normalize_lead_name``) of the rows.
    labels : tuple of str
        Class names after the label map (empty if no map was applied).
    codes : tuple of str
        Original statement codes of the source (SCP, AHA, SNOMED CT), unmapped.
    source_id : str
        Provenance (file path, ``ptbxl:<ecg_id>``, ``sph:<ECG_ID>``).
    metadata : dict
        str/int/float/bool values (``patient_id``, ``strat_fold``, ``age``, ``sex``,
        ``scp_codes`` ...).
    """

    signal: np.ndarray
    fs: float
    leads: tuple[str, ...]
    labels: tuple[str, ...] = ()
    codes: tuple[str, ...] = ()
    source_id: str = ""
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        sig = np.asarray(self.signal)
        leads = tuple(normalize_lead_name(x) for x in self.leads)
        if sig.ndim != 2 or sig.shape[0] != len(leads) or sig.shape[1] < 2:
            raise SignalError(f"record {self.source_id!r}: signal shape {sig.shape} does not match "
                              f"{len(leads)} leads x T>1 samples")
        if len(set(leads)) != len(leads):
            raise LeadError(f"record {self.source_id!r}: duplicate lead names {leads}")
        _check_finite(sig, leads, self.source_id)
        if not (isinstance(self.fs, (int, float, np.floating, np.integer)) and math.isfinite(self.fs)
                and self.fs > 0):
            raise SamplingRateError(f"record {self.source_id!r}: sampling rate must be positive, got {self.fs!r}")
        meta = {}
        for k, v in self.metadata.items():
            if not isinstance(v, (str, int, float, bool, np.integer, np.floating, np.bool_)):
                raise SignalError(f"record {self.source_id!r}: metadata {k!r} has type "
                                  f"{type(v).__name__}; only str/int/float/bool are allowed")
            meta[str(k)] = v.item() if isinstance(v, np.generic) else v  # plain types for netCDF attrs
        object.__setattr__(self, "metadata", meta)
        sig = np.ascontiguousarray(sig, dtype=np.float32)
        sig.setflags(write=False)
        object.__setattr__(self, "signal", sig)
        object.__setattr__(self, "fs", float(self.fs))
        object.__setattr__(self, "leads", leads)
        object.__setattr__(self, "labels", tuple(str(x) for x in self.labels))
        object.__setattr__(self, "codes", tuple(str(x) for x in self.codes))

    @property
    def n_samples(self) -> int:
        return self.signal.shape[1]

    @property
    def duration(self) -> float:
        """Duration in seconds."""
        return self.n_samples / self.fs

    def lead(self, name: str) -> np.ndarray:
        """The row of lead ``name`` (``LeadError`` if absent)."""
        n = normalize_lead_name(name)
        if n not in self.leads:
            raise LeadError(f"record {self.source_id!r} has no lead {n!r}; it has {self.leads}")
        return self.signal[self.leads.index(n)]

    def select(self, leads) -> "Recording":
        """A copy restricted to ``leads`` (in that order); ``LeadError`` naming missing ones."""
        names = [normalize_lead_name(x) for x in leads]
        check_leads(self.leads, names, self.source_id)
        rows = [self.leads.index(n) for n in names]
        return Recording(self.signal[rows], self.fs, tuple(names), self.labels, self.codes,
                         self.source_id, dict(self.metadata))

    def resampled(self, fs: float) -> "Recording":
        """A copy at sampling rate ``fs`` (:func:`resample`)."""
        if float(fs) == self.fs:
            return self
        return Recording(resample(self.signal, self.fs, fs), fs, self.leads, self.labels, self.codes,
                         self.source_id, dict(self.metadata))


def _check_finite(sig: np.ndarray, leads, source_id: str) -> None:
    bad = ~np.isfinite(sig)
    if bad.any():
        rows = sorted({leads[i] for i in np.nonzero(bad.any(axis=1))[0]})
        first = int(np.argmax(bad.any(axis=0)))
        raise SignalError(f"record {source_id!r}: {int(bad.sum())} NaN/infinite samples in leads "
                          f"{rows} (first at sample {first})")


def check_leads(have, required, source_id: str = "") -> None:
    """Raise :class:`LeadError` naming the leads of ``required`` absent from ``have``."""
    missing = [r for r in required if r not in have]
    if missing:
        raise LeadError(f"record {source_id!r} is missing leads {missing}; it has {tuple(have)}")


def check_limb_consistency(signal: np.ndarray, leads, source_id: str,
                           tolerance_mv: float = _CONSISTENCY_RMS_MV) -> dict:
    """Warn (:class:`ConsistencyWarning` naming the record) if a redundant limb lead disagrees.

    Einthoven's and Goldberger's relations hold exactly for potentials:
    III = II - I, aVR = -(I + II)/2, aVL = I - II/2, aVF = II - I/2. A failure means
    swapped or broken limb electrodes, a mislabelled channel or a corrupt file.

    Returns
    -------
    dict
        ``{lead: RMS of (lead - derived) in mV}`` for each redundant lead present (empty
        unless I and II are present).
    """
    leads = tuple(leads)
    if not ("I" in leads and "II" in leads):
        return {}
    i, ii = (np.asarray(signal[leads.index(x)], dtype=np.float64) for x in ("I", "II"))
    derived = {"III": lambda: ii - i, "aVR": lambda: -(i + ii) / 2, "aVL": lambda: i - ii / 2,
               "aVF": lambda: ii - i / 2}
    rms = {}
    for lead, fn in derived.items():
        if lead in leads:
            rms[lead] = float(np.sqrt(np.mean((np.asarray(signal[leads.index(lead)], np.float64) - fn()) ** 2)))
    bad = {k: v for k, v in rms.items() if v > tolerance_mv}
    if bad:
        what = ", ".join(f"{k} by {v:.3f} mV RMS" for k, v in bad.items())
        warnings.warn(f"record {source_id!r}: limb leads inconsistent with I and II: {what} "
                      f"(tolerance {tolerance_mv} mV); limb electrodes swapped, channel mislabelled "
                      "or data corrupt?", ConsistencyWarning, stacklevel=3)
    return rms


def check_fs(fs: float, expected_fs, source_id: str) -> None:
    """Raise :class:`SamplingRateError` if ``expected_fs`` is given and differs from ``fs``."""
    if expected_fs is not None and not math.isclose(float(fs), float(expected_fs), rel_tol=1e-9):
        raise SamplingRateError(f"record {source_id!r} is sampled at {fs} Hz, expected {expected_fs} Hz")


def resample(signal: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """Resample ``[..., T]`` along the last axis with a polyphase anti-aliasing FIR filter.

    Uses ``scipy.signal.resample_poly`` (Kaiser-windowed FIR, cut-off at the lower
    Nyquist frequency), so downsampling does not alias content above ``fs_out / 2``.

    Parameters
    ----------
    signal : ndarray, shape (..., T)
    fs_in, fs_out : float, Hz
        Their ratio must be rational with numerator and denominator <= 1000.

    Returns
    -------
    ndarray, shape (..., ceil(T * fs_out / fs_in)), same float dtype (float32 stays float32)
    """
    up, down = resample_ratio(fs_in, fs_out)
    x = np.asarray(signal)
    if up == down:
        return x.copy()
    dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
    from scipy.signal import resample_poly  # lazy: scipy.signal costs ~1.5 s to import

    y = resample_poly(x.astype(np.float64), up, down, axis=-1)
    return y.astype(dtype)


def resample_ratio(fs_in: float, fs_out: float) -> tuple[int, int]:
    """``(up, down)`` with ``fs_out / fs_in = up / down``, both <= 1000: the one rate check of
    every resampling in cardiosim (sources, device). :class:`SamplingRateError` otherwise."""
    if type(fs_in) is float and type(fs_out) is float:
        return _resample_ratio_cached(fs_in, fs_out)   # every record asks again (~40 us a time)
    return _resample_ratio(fs_in, fs_out)


@lru_cache(maxsize=64)
def _resample_ratio_cached(fs_in: float, fs_out: float) -> tuple[int, int]:
    """:func:`_resample_ratio` of two floats (errors are not cached: they raise every time)."""
    return _resample_ratio(fs_in, fs_out)


def _resample_ratio(fs_in, fs_out) -> tuple[int, int]:
    """:func:`resample_ratio`, uncached."""
    for name, f in (("fs_in", fs_in), ("fs_out", fs_out)):
        _check_rate(f, name)
    ratio = Fraction(float(fs_out) / float(fs_in)).limit_denominator(1000)
    if not math.isclose(ratio.numerator / ratio.denominator, fs_out / fs_in, rel_tol=1e-9):
        raise SamplingRateError(f"cannot resample {fs_in} Hz -> {fs_out} Hz: ratio is not a small rational "
                                f"(numerator and denominator <= 1000)")
    return ratio.numerator, ratio.denominator


def from_array(signal, fs: float, leads, *, labels=(), codes=(), source_id: str = "array",
               metadata=None, required_leads=None, expected_fs=None) -> Recording:
    """Wrap a NumPy array with lead names as a :class:`Recording`.

    Parameters
    ----------
    signal : array_like, shape (n_leads, T), mV
    fs : float, Hz
    leads : sequence of str
        Any accepted spelling (``'AVR'``, ``'MLII'``...); normalised.
    required_leads : sequence of str, optional
        Raise :class:`LeadError` if any is missing.
    expected_fs : float, optional
        Raise :class:`SamplingRateError` if ``fs`` differs.

    Warns
    -----
    ConsistencyWarning
        If III differs from II - I.
    """
    check_fs(fs, expected_fs, source_id)
    rec = Recording(np.asarray(signal), fs, tuple(leads), tuple(labels), tuple(codes), source_id,
                    dict(metadata or {}))
    if required_leads is not None:
        check_leads(rec.leads, [normalize_lead_name(x) for x in required_leads], source_id)
    check_limb_consistency(rec.signal, rec.leads, source_id)
    return rec
