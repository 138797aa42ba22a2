"""Apply a device to lead voltages: analog band-pass, anti-aliased resampling, gain, ADC."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import signal as _signal

from ..errors import SamplingRateError, SignalError
from ..sources.recording import resample, resample_ratio
from ._kernels import all_finite_kernel, filter_adc_grade_lanes_kernel, halves_kernel, row_counts_kernel
from .profile import DeviceProfile, load_device


@lru_cache(maxsize=32)
def _filter_design(order: int, lo: float, hi: float, fs_in: float, notch_hz: int):
    """Second-order sections and unit steady state of the analog band-pass (+ notch).

    Cached: a dataset designs the same filter for every record (it cost 2 ms a record).
    """
    sos = [_signal.butter(order, lo, "highpass", fs=fs_in, output="sos"),
           _signal.butter(order, hi, "lowpass", fs=fs_in, output="sos")]
    if notch_hz:
        b, a = _signal.iirnotch(notch_hz, 30.0, fs=fs_in)
        sos.append(_signal.tf2sos(b, a))
    sos = np.concatenate(sos)
    zi = _signal.sosfilt_zi(sos)                                   # [n_sections, 2]
    return sos, zi  # shared by every call: callers must not modify them


def analog_filter(profile: DeviceProfile, x: np.ndarray, fs_in: float) -> np.ndarray:
    """The analog band-pass (Butterworth high-pass and low-pass, ``profile.filter_order``
    each; plus the optional mains notch) as a causal filter at the input rate, started in
    its steady state for the first sample (no switch-on transient)."""
    sos, zi = _analog_design(profile, fs_in)
    zi = zi[:, None, :] * x[None, :, :1]                           # steady state at x[:, 0]
    y, _ = _signal.sosfilt(sos, x, axis=-1, zi=zi)
    return y


def _analog_design(profile: DeviceProfile, fs_in: float):
    """``(sos, zi)`` of the profile's analog band-pass at ``fs_in`` (checked; cached, read-only)."""
    lo, hi = profile.band_hz
    if hi >= fs_in / 2:
        raise SamplingRateError(f"input rate {fs_in} Hz is too low for the device's {hi} Hz analog "
                                f"low-pass (needs fs_in > {2 * hi} Hz)")
    if profile.notch and profile.powerline_hz >= fs_in / 2:
        raise SamplingRateError(f"input rate {fs_in} Hz cannot carry the {profile.powerline_hz} Hz notch")
    return _filter_design(profile.filter_order, float(lo), float(hi), float(fs_in),
                          int(profile.powerline_hz) if profile.notch else 0)


@lru_cache(maxsize=64)
def _n_leads(montage: str) -> int:
    """Number of leads of a named montage (building the montage cost 0.13 ms a record)."""
    from ..leads import make_montage

    return len(make_montage(montage).leads)


@lru_cache(maxsize=64)
def _resample_ratio(fs_in: float, fs_out: float) -> tuple[int, int]:
    """:func:`cardiosim.sources.recording.resample_ratio`, cached (errors are not)."""
    return resample_ratio(fs_in, fs_out)


def quantize(v_adc: np.ndarray, bits: int, range_mv: float):
    """ADC: round ``v_adc`` (mV at the ADC input) to ``bits`` over ``+-range_mv``, two's
    complement codes ``[-2^(bits-1), 2^(bits-1) - 1]``. Returns ``(codes int64, saturated bool)``."""
    lsb = 2.0 * range_mv / 2 ** bits
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    c = np.round(v_adc / lsb)
    sat = (c < lo) | (c > hi)
    return np.clip(c, lo, hi).astype(np.int64), sat


def _halves_of(x: np.ndarray, clean: np.ndarray):
    """The C-contiguous float64 array whose first half of rows is ``x`` and second half
    ``clean`` (what ``np.concatenate([x, clean])`` would copy), or None when they are not
    laid out so (``cardiosim.simulate`` forms both into one such array)."""
    base = x.base
    if (base is None or clean.base is not base or not isinstance(base, np.ndarray) or base.dtype != np.float64
            or base.ndim != 2 or not base.flags.c_contiguous or base.shape[0] != 2 * x.shape[0]
            or base.shape[1] != x.shape[1] or not x.flags.c_contiguous or not clean.flags.c_contiguous):
        return None
    # the data addresses compared in numba (__array_interface__ costs 1.5 us an array)
    return base if halves_kernel(base, x, clean) else None


def _check_leads(profile: DeviceProfile, x: np.ndarray, fs_in, clean):
    """:func:`apply_device`'s checks of its input in their order (raises; returns ``clean``
    as float64 or None)."""
    if not all_finite_kernel(x):       # one pass, without isfinite's temporary boolean array
        bad = np.argwhere(~np.isfinite(x))[0]
        raise SignalError(f"leads_mV has a non-finite sample at lead {bad[0]}, sample {bad[1]}")
    if not (np.isfinite(fs_in) and fs_in > 0):
        raise SamplingRateError(f"fs_in must be a positive number of Hz, got {fs_in!r}")
    n_leads_expected = _n_leads(profile.montage)
    if x.shape[0] != n_leads_expected:
        raise SignalError(f"device {profile.name!r} ({profile.montage}) records {n_leads_expected} leads, "
                          f"got {x.shape[0]}")
    if clean is not None:
        clean = np.asarray(clean, dtype=np.float64)
        if clean.shape != x.shape:
            raise SignalError(f"clean leads have shape {clean.shape}, the leads {x.shape}")
        if not all_finite_kernel(clean):
            bad = np.argwhere(~np.isfinite(clean))[0]
            raise SignalError(f"clean leads have a non-finite sample at lead {bad[0]}, sample {bad[1]}")
    return clean


def _fused_ratio(profile: DeviceProfile, x: np.ndarray, fs_in, clean):
    """``(up, down)`` when :func:`apply_device` takes its fused kernel path (an AC device at the
    input rate) and every check but the finiteness passes (the kernel checks finiteness in
    its own pass; on a non-finite sample the caller runs :func:`_check_leads`, which raises
    as before), else None (the caller runs :func:`_check_leads` first, as before)."""
    if (profile.coupling == "dc" or not isinstance(fs_in, (int, float)) or not (math.isfinite(fs_in) and fs_in > 0)
            or x.shape[0] != _n_leads(profile.montage)):
        return None
    if clean is not None and (not isinstance(clean, np.ndarray) or clean.dtype != np.float64 or clean.shape != x.shape):
        return None
    try:
        up, down = _resample_ratio(float(fs_in), profile.fs)
    except Exception:   # raised again, in its place, on the checked path
        return None
    return (up, down) if up == down else None


#: ``codes``, ``sat`` and ``raw`` of no rows, for a kernel call that wants none of them.
_NO_ROWS = (np.empty((0, 0), dtype=np.int64), np.empty((0, 0), dtype=bool), np.empty((0, 0), dtype=np.float32))
#: ``lanes`` of no rows: a kernel call that writes no grade lanes.
_NO_LANES = np.empty((0, 0))


def _grade_lanes(lanes, clean, failed: bool, shape: tuple):
    """``lanes`` when :func:`apply_device` fills them (see there): a C-contiguous float64
    ``[T, 2 n_leads]`` array, a clean twin, no failure; else None."""
    if (lanes is None or clean is None or failed or not isinstance(lanes, np.ndarray) or lanes.dtype != np.float64
            or not lanes.flags.c_contiguous or lanes.shape != (shape[1], shape[0])):
        return None
    return lanes


def apply_device(profile: DeviceProfile | str, leads_mV: np.ndarray, fs_in: float, *, failure=None, clean=None,
                 arrays: bool = True, grade_lanes: np.ndarray | None = None):
    """Record ``leads_mV`` [n_leads, T] (mV, at ``fs_in`` Hz) with ``profile``.

    ``clean`` (optional, the same shape): a twin of the leads -- e.g. without electrode
    noise -- recorded by the same device without ``failure``, returned as ``info['clean']``
    (float32 mV). An AC device filters, resamples and digitises both in one call on the
    stacked rows; every step works row by row, so ``info['clean']`` equals
    ``apply_device(profile, clean, fs_in)[0]`` bit for bit, at about half the cost.

    ``failure`` (:class:`cardiosim.device.FrontEndFailure`, optional): electrodes, ground,
    channels or the whole device failed for the whole record; the channels concerned read
    the profile's lead-off code (or 0), as the device records them.

    ``arrays=False``: ``info`` without its per-sample arrays (``raw``, ``codes``, ``saturated``,
    ``saturated_fraction``), which an AC device at the input rate then does not form (the
    simulation keeps only the recording and the scalars); everything else is the same.

    ``grade_lanes`` (optional, C-contiguous float64 ``[T, 2 n_leads]``, with ``clean``): where an
    AC device at the input rate records and no ``failure`` changes the leads, filled in the
    same pass with what :func:`cardiosim.noise.textile.artefact_grades` reads (``lanes``, from
    its row ``padlen`` on): row ``t`` holds ``recorded[:, t] - info['clean'][:, t]`` (float32
    differences) then ``info['clean'][:, t]``; ``info['grade_lanes']`` is then that array
    (absent when it was not filled). The outputs are the same either way.

    A ``coupling = 'dc'`` profile goes through :func:`cardiosim.device.frontend.apply_dc_frontend`
    (clipping at the input range before digital filtering, derived leads after the ADC).
    Otherwise, steps: analog band-pass at the input rate (causal), anti-aliased polyphase resampling
    to ``profile.fs`` (``scipy.signal.resample_poly``, Kaiser-windowed FIR), gain, ADC
    quantisation to ``adc_bits`` over ``+-adc_range_mv`` with saturation, back to mV
    (raw / gain, see :mod:`cardiosim.device.profile`).

    Returns
    -------
    recorded : ndarray [n_leads, T'] float32, mV, ``T' = ceil(T * fs / fs_in)``
    info : dict
        ``fs``, ``raw`` (float32 [n_leads, T'], raw device output = codes x lsb, magnified
        mV), ``codes`` (int64), ``saturated`` (bool [n_leads, T']), ``saturated_fraction``
        (per lead), ``n_saturated``, ``lsb_mv`` (body-referred), ``input_range_mv``, ``up``, ``down``.
        Saturation is reported here, never silent.
    """
    profile = load_device(profile)
    x = np.asarray(leads_mV, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 2:
        raise SignalError(f"leads_mV must have shape [n_leads, T] with T >= 2, got {x.shape}")
    if _fused_ratio(profile, x, fs_in, clean) is None:   # else the kernel checks finiteness itself
        clean = _check_leads(profile, x, fs_in, clean)
    extra = {}
    clean_codes = None
    n_sat = None    # saturated samples per lead, when the kernel counted them
    fused = None  # (recorded, raw, clean) float32 from the kernel, while the codes are its own
    if profile.coupling == "dc":
        from .frontend import apply_dc_frontend
        codes, sat, extra = apply_dc_frontend(profile, x, float(fs_in), failure)
        if clean is not None:
            clean_codes = apply_dc_frontend(profile, clean, float(fs_in), None)[0]
        up, down = _resample_ratio(float(fs_in), profile.fs)
    else:
        n_rows = x.shape[0]
        # one filter call on both (no copy when they already are the two halves of one array)
        rows = x if clean is None else _halves_of(x, clean)
        if rows is None:
            rows = np.concatenate([x, clean])
        up, down = _resample_ratio(float(fs_in), profile.fs)
        if up == down:
            # band-pass, gain, ADC and the float32 outputs in one numba pass, the rows side by
            # side (device._kernels; SciPy/NumPy twin as oracle), which also counts the
            # saturated samples and checks finiteness
            sos, zi = _analog_design(profile, float(fs_in))
            half = 2 ** (profile.adc_bits - 1)
            failed = failure is not None and failure.any
            # codes, saturation and raw output of the leads only: of the clean twin only its mV
            # are returned (also when a failure replaces the leads' codes)
            if arrays or failed:
                out_shape = (n_rows, rows.shape[1])
                codes = np.empty(out_shape, dtype=np.int64)
                sat = np.empty(out_shape, dtype=bool)
                raw_rows = np.empty(out_shape, dtype=np.float32)
            else:
                codes, sat, raw_rows = _NO_ROWS
            rec_rows = np.empty(rows.shape, dtype=np.float32)
            n_sat = np.empty(rows.shape[0], dtype=np.int64)
            lanes = _grade_lanes(grade_lanes, clean, failed, rows.shape)
            n_bad = filter_adc_grade_lanes_kernel(np.ascontiguousarray(rows), sos, zi, float(profile.gain),
                                                  2.0 * profile.adc_range_mv / 2 ** profile.adc_bits, float(-half),
                                                  float(half - 1), rec_rows, n_sat, codes, sat, raw_rows,
                                                  _NO_LANES if lanes is None else lanes, 0)
            if n_bad:   # a non-finite sample, or the filter overflowed on finite input
                _check_leads(profile, x, fs_in, clean)    # raises, naming the first non-finite sample
                raise SignalError(f"device {profile.name!r}: the band-pass overflowed on finite input "
                                  f"(largest |sample| {float(np.abs(rows).max()):.3g} mV)")
            n_sat = n_sat[:n_rows]
            fused = (rec_rows[:n_rows], raw_rows, rec_rows[n_rows:] if clean is not None else None)
            if lanes is not None:
                extra["grade_lanes"] = lanes
        else:
            y = analog_filter(profile, rows, float(fs_in))
            y = resample(y, float(fs_in), profile.fs)
            y *= profile.gain
            codes, sat = quantize(y, profile.adc_bits, profile.adc_range_mv)
            if clean is not None:
                codes, clean_codes, sat = codes[:n_rows], codes[n_rows:], sat[:n_rows]
        if failure is not None and failure.any:
            codes, sat, extra = _ac_failure(profile, codes, sat, failure)
            n_sat = None
            if fused is not None:   # the leads' codes changed; the clean twin's did not
                fused = (None, None, fused[2])
    lsb = 2.0 * profile.adc_range_mv / 2 ** profile.adc_bits
    if fused is not None and fused[2] is not None:
        extra["clean"] = fused[2]
    elif clean_codes is not None:
        extra["clean"] = ((clean_codes * lsb) / profile.gain).astype(np.float32)
    if fused is not None and fused[0] is not None:
        recorded, raw32 = fused[0], fused[1]
    else:
        raw = codes * lsb
        recorded, raw32 = (raw / profile.gain).astype(np.float32), raw.astype(np.float32)
    if n_sat is None and sat.ndim == 2:
        n_sat = np.empty(sat.shape[0], dtype=np.intp)      # count_nonzero(sat, axis=1)'s values
        row_counts_kernel(sat, n_sat)
    info = {"device": profile.name, "fs": float(profile.fs), "up": up, "down": down}
    if arrays:
        info.update({
            "raw": raw32, "codes": codes, "saturated": sat,
            # per-row counts divided as mean() divides its exact float64 sums (bit-identical, 5x
            # faster on bool)
            "saturated_fraction": n_sat / sat.shape[1] if n_sat is not None else sat.mean(axis=1)})
    info.update({
        "n_saturated": sum(n_sat.tolist()) if n_sat is not None else int(sat.sum()),
        "lsb_mv": profile.lsb_mv, "input_range_mv": profile.input_range_mv,
    })
    info.update(extra)
    return recorded, info


def _ac_failure(profile: DeviceProfile, codes, sat, failure):
    """Whole-record failures of a device that forms every lead in analog: each lead using a
    lost electrode (every lead when the ground is lost) reads the lead-off code."""
    from .frontend import apply_failure_codes

    montage = profile.make_montage()
    codes, sat, n_off = apply_failure_codes(profile, montage, np.arange(len(montage.leads)), codes, sat, failure)
    return codes, sat, {"lead_off_channels": n_off, "failure": failure.label}
