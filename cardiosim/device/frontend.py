"""The front end of a DC-coupled ECG device, as built.

Mobile and many modern 12-lead devices (the PhysioNet/CinC 2011 phones among them) digitise
only the independent leads -- I, II and V1-V6 -- with a DC-coupled ADC of limited input
range (about +-80 mV there), and form III, aVR, aVL and aVF digitally from the codes::

    codes_m = clip(round(g * lead_m / lsb))          measured leads, clipped at the rails
    codes_m = clip(round(digital band-pass(codes_m)))   filtering comes after the clipping
    codes_d = clip(round(D @ codes_m))               III = II - I, aVR = -(I + II)/2, ...

so a channel whose input sits beyond the range stays at the rail, and a railed measured
lead makes the derived leads that use it rail or sit at fixed fractions of the rail. When an
electrode is off -- for the whole record, or while it has lost contact during it -- the
lead-off detection pulls each measured channel that uses it (for Wilson's terminal: every
precordial channel when RA, LA or LL is off; every channel when the ground / right-leg
drive is off) to a full-scale code for as long as it is off: a lost contact sits at the
rail and returns, it does not decay off the rail through a high-pass, and carries no noise.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import signal as _signal

from ..errors import ConfigError, SamplingRateError
from .failures import FrontEndFailure


@lru_cache(maxsize=32)
def derivation_matrix(montage_name: str, measured: tuple[str, ...]):
    """``(measured_idx, derived_idx, D)``: rows of the montage measured by the ADC, the rows
    derived from them, and ``D`` [n_derived, n_measured] with ``M[derived] = D @ M[measured]``
    exactly (ConfigError when a lead cannot be derived from the measured ones)."""
    from ..leads import make_montage

    m = make_montage(montage_name)
    mi = np.array([m.leads.index(x) for x in measured], dtype=np.intp)
    di = np.array([k for k in range(len(m.leads)) if k not in set(mi.tolist())], dtype=np.intp)
    if di.size == 0:
        return mi, di, np.zeros((0, mi.size))
    a = m.matrix[mi]                                    # [n_m, n_e]
    d, *_ = np.linalg.lstsq(a.T, m.matrix[di].T, rcond=None)
    d = d.T
    err = np.abs(d @ a - m.matrix[di]).max()
    if err > 1e-9:
        raise ConfigError(f"leads {[m.leads[k] for k in di]} cannot all be derived from the measured leads "
                          f"{measured} of montage {montage_name!r}")
    d = np.where(np.abs(d) < 1e-12, 0.0, d)
    d.setflags(write=False)
    return mi, di, d


def lead_off_channels(montage, measured_idx, failure: FrontEndFailure | None) -> np.ndarray:
    """Bool [n_measured] of the measured channels that read the lead-off code: those with
    a nonzero coefficient on an electrode that is off (every channel when the ground is off)."""
    out = np.zeros(len(measured_idx), dtype=bool)
    if failure is None:
        return out
    if failure.ground_off:
        out[:] = True
        return out
    for e in failure.electrodes_off:
        if e not in montage.electrodes:
            raise ConfigError(f"electrode {e!r} is not one of the device's electrodes {montage.electrodes}")
        col = montage.electrodes.index(e)
        out |= np.abs(montage.matrix[measured_idx, col]) > 0
    return out


def apply_failure_codes(profile, montage, rows, codes, sat, failure: FrontEndFailure, *, device: bool = True):
    """Set the channels ``rows`` of ``codes`` / ``sat`` [len(rows), T] as the device records
    them under ``failure``: lead-off channels at the profile's lead-off code, dead channels
    at 0, and (``device``) everything at 0 when the whole device is dead. Returns copies and
    the number of lead-off channels."""
    lo, hi = -(2 ** (profile.adc_bits - 1)), 2 ** (profile.adc_bits - 1) - 1
    off = lead_off_channels(montage, rows, failure)
    codes, sat = codes.copy(), sat.copy()
    codes[off] = {"negative": lo, "positive": hi, "zero": 0}[profile.lead_off_code]
    sat[off] = profile.lead_off_code != "zero"
    names = [montage.leads[k] for k in rows]
    for name in failure.channels_flat:
        if name not in names:
            raise ConfigError(f"channel {name!r} is not a measured channel of {profile.name!r} {tuple(names)}")
        codes[names.index(name)] = 0
    if device and failure.device_flat:
        codes[:] = 0
        sat[:] = False
    return codes, sat, int(off.sum())


def _intermittent_lead_off(profile, montage, rows, codes, sat, contact_lost, fs_in: float):
    """Lead-off detection during the record: while an electrode has lost contact, every
    measured channel using it reads the lead-off code (nearest input sample per output sample)."""
    lost = np.asarray(contact_lost, dtype=bool)
    if lost.ndim != 2 or lost.shape[0] != len(montage.electrodes):
        raise ConfigError(f"contact_lost must have shape (n_electrodes={len(montage.electrodes)}, T), "
                          f"got {lost.shape}")
    n_out = codes.shape[1]
    idx = np.minimum((np.arange(n_out) * (fs_in / profile.fs)).astype(np.int64), lost.shape[1] - 1)
    uses = np.abs(montage.matrix[rows]) > 0                          # [n_rows, n_e]
    chan = (uses.astype(np.int64) @ lost[:, idx].astype(np.int64)) > 0   # [n_rows, T']
    if not chan.any():
        return codes, sat
    lo, hi = -(2 ** (profile.adc_bits - 1)), 2 ** (profile.adc_bits - 1) - 1
    codes, sat = codes.copy(), sat.copy()
    codes[chan] = {"negative": lo, "positive": hi, "zero": 0}[profile.lead_off_code]
    sat[chan] = profile.lead_off_code != "zero"
    return codes, sat


def _digital_filter(profile, codes: np.ndarray, fs: float) -> np.ndarray:
    """Digital band-pass (Butterworth high- and low-pass of ``profile.filter_order``, optional
    notch) on the codes, started in steady state at the first sample."""
    from .apply import _filter_design

    lo, hi = profile.band_hz
    sos, zi = _filter_design(profile.filter_order, float(lo), float(hi), float(fs),
                             int(profile.powerline_hz) if profile.notch else 0)
    y, _ = _signal.sosfilt(sos, codes, axis=-1, zi=zi[:, None, :] * codes[None, :, :1])
    return y


def apply_dc_frontend(profile, leads_mv: np.ndarray, fs_in: float, failure: FrontEndFailure | None = None):
    """Record ``leads_mv`` [n_leads, T] (all leads of the montage, mV at ``fs_in``) with a
    DC-coupled ``profile`` (see the module docstring). Returns ``(codes int64 [n_leads, T'],
    saturated bool [n_leads, T'], info)``; ``T' = ceil(T fs / fs_in)``."""
    from ..sources.recording import resample, resample_ratio

    montage = profile.make_montage()
    measured = profile.measured_leads or montage.leads
    mi, di, d = derivation_matrix(profile.montage, tuple(measured))
    lo_code, hi_code = -(2 ** (profile.adc_bits - 1)), 2 ** (profile.adc_bits - 1) - 1
    lsb = 2.0 * profile.adc_range_mv / 2 ** profile.adc_bits
    x = leads_mv[mi]
    # anti-aliasing: the analog low-pass alone (a DC-coupled input has no analog high-pass)
    hi = profile.band_hz[1]
    if hi >= fs_in / 2:
        raise SamplingRateError(f"input rate {fs_in} Hz is too low for the device's {hi} Hz anti-aliasing "
                                f"low-pass (needs fs_in > {2 * hi} Hz)")
    sos = _signal.butter(profile.filter_order, hi, "lowpass", fs=fs_in, output="sos")
    x, _ = _signal.sosfilt(sos, x, axis=-1, zi=_signal.sosfilt_zi(sos)[:, None, :] * x[None, :, :1])
    x = resample(x, float(fs_in), profile.fs)
    raw = np.round(x * profile.gain / lsb)
    sat_m = (raw < lo_code) | (raw > hi_code)
    codes_m = np.clip(raw, lo_code, hi_code)                        # the ADC clips first ...
    codes_m = _digital_filter(profile, codes_m, profile.fs)         # ... then the digital filter
    codes_m = np.clip(np.round(codes_m), lo_code, hi_code)
    failure = failure if failure is not None else FrontEndFailure()
    codes_m, sat_m, n_off = apply_failure_codes(profile, montage, mi, codes_m, sat_m, failure, device=False)
    if failure.contact_lost is not None:
        codes_m, sat_m = _intermittent_lead_off(profile, montage, mi, codes_m, sat_m, failure.contact_lost, fs_in)
    n_out = codes_m.shape[1]
    codes = np.empty((len(montage.leads), n_out))
    sat = np.zeros((len(montage.leads), n_out), dtype=bool)
    codes[mi], sat[mi] = codes_m, sat_m
    if di.size:
        dv = np.round(d @ codes_m)                                    # derived after the ADC
        sat[di] = (dv < lo_code) | (dv > hi_code)
        codes[di] = np.clip(dv, lo_code, hi_code)
    if failure.device_flat:
        codes[:] = 0
        sat[:] = False
    info = {"measured_leads": ",".join(measured), "lead_off_channels": n_off, "failure": failure.label}
    return codes.astype(np.int64), sat, info
