"""Numba kernels of the device module, each with a plain NumPy/SciPy twin (the test oracle).

* ``filter_adc`` -- an AC device at its own rate in one pass over each lead: the analog
  band-pass as cascaded second-order sections (transposed direct form II, started in its
  steady state for the lead's first sample), the gain and the ADC (round half to even,
  saturation at the rails). The twin is the SciPy path it replaces
  (``scipy.signal.sosfilt`` with ``zi``, then :func:`cardiosim.device.apply.quantize`);
  the kernel performs the same IEEE operations in the same order as SciPy's compiled
  ``_sosfilt`` loop (no fast-math), so the two agree bit for bit.
* ``filter_adc_out`` -- ``filter_adc`` that also writes what :func:`cardiosim.device.apply_device`
  returns from the codes, in the same pass: the recorded mV ``float32((code * lsb) / gain)``
  and the raw device output ``float32(code * lsb)`` (the NumPy expressions it replaces,
  which were half of ``apply_device``'s time).
"""

from __future__ import annotations

import numpy as np
from numba import njit
from scipy import signal as _signal


def filter_adc_ref(x, sos, zi, gain, lsb, lo, hi):
    """SciPy twin of the codes and saturation flags of :func:`filter_adc_out_kernel`:
    ``(codes int64, sat bool)`` of ``x [rows, T]`` (float64, mV) through the sections ``sos``
    started at ``zi * x[:, 0]``, times ``gain``, quantised to steps ``lsb``, clipped to ``[lo, hi]``."""
    x = np.asarray(x, dtype=np.float64)
    y, _ = _signal.sosfilt(sos, x, axis=-1, zi=zi[:, None, :] * x[None, :, :1])
    c = np.round((y * gain) / lsb)
    sat = (c < lo) | (c > hi)
    return np.clip(c, lo, hi).astype(np.int64), sat


@njit(cache=True, nogil=True)
def _quantise_row(y, r, gain, lsb, lo, hi, codes, sat, recorded, raw):  # pragma: no cover - compiled
    """Gain, ADC and the float32 outputs of one filtered row ``y [T]`` into row ``r`` of the outputs."""
    for t in range(y.shape[0]):
        c = np.rint((y[t] * gain) / lsb)
        if c < lo:
            sat[r, t] = True
            c = lo
        elif c > hi:
            sat[r, t] = True
            c = hi
        else:
            sat[r, t] = False
        code = np.int64(c)
        codes[r, t] = code
        v = code * lsb
        raw[r, t] = np.float32(v)
        recorded[r, t] = np.float32(v / gain)


@njit(cache=True, nogil=True)
def filter_adc_out_kernel(x, sos, zi, gain, lsb, lo, hi, codes, sat, recorded, raw):  # pragma: no cover - compiled
    """``codes[r, t]`` (int64) and ``sat[r, t]`` (bool) of ``x [rows, T]`` (float64, mV) through the
    sections ``sos [n_sections, 6]`` started at ``zi [n_sections, 2] * x[r, 0]``, times ``gain``,
    quantised to steps ``lsb`` and clipped to ``[lo, hi]``; also ``recorded [rows, T]`` (float32 mV,
    ``(code * lsb) / gain``) and ``raw [rows, T]`` (float32, ``code * lsb``), in the same pass.

    Every row gets the same IEEE operations in the same order whatever path it takes. The
    recursion is serial in time, so one row alone waits on the latency of its own state
    (about 4 ns a sample); the two-section cascade (every shipped profile without a notch)
    therefore runs four rows side by side with its state in scalars (registers), which
    overlaps four independent recursions (0.55 -> 0.31 ms for 24 rows of 5,000 samples).
    """
    rows, n = x.shape
    ns = sos.shape[0]
    y = np.empty((4, n))
    r = 0
    if ns == 2:
        b00, b01, b02, a01, a02 = sos[0, 0], sos[0, 1], sos[0, 2], sos[0, 4], sos[0, 5]
        b10, b11, b12, a11, a12 = sos[1, 0], sos[1, 1], sos[1, 2], sos[1, 4], sos[1, 5]
        while r + 4 <= rows:
            x0, x1, x2, x3 = x[r, 0], x[r + 1, 0], x[r + 2, 0], x[r + 3, 0]
            p00, p10, q00, q10 = zi[0, 0] * x0, zi[0, 1] * x0, zi[1, 0] * x0, zi[1, 1] * x0
            p01, p11, q01, q11 = zi[0, 0] * x1, zi[0, 1] * x1, zi[1, 0] * x1, zi[1, 1] * x1
            p02, p12, q02, q12 = zi[0, 0] * x2, zi[0, 1] * x2, zi[1, 0] * x2, zi[1, 1] * x2
            p03, p13, q03, q13 = zi[0, 0] * x3, zi[0, 1] * x3, zi[1, 0] * x3, zi[1, 1] * x3
            for t in range(n):
                # section 0 (state p0, p1) then section 1 (state q0, q1), rows r .. r+3
                u = x[r, t]
                m = b00 * u + p00
                p00 = b01 * u - a01 * m + p10
                p10 = b02 * u - a02 * m
                o = b10 * m + q00
                q00 = b11 * m - a11 * o + q10
                q10 = b12 * m - a12 * o
                y[0, t] = o
                u = x[r + 1, t]
                m = b00 * u + p01
                p01 = b01 * u - a01 * m + p11
                p11 = b02 * u - a02 * m
                o = b10 * m + q01
                q01 = b11 * m - a11 * o + q11
                q11 = b12 * m - a12 * o
                y[1, t] = o
                u = x[r + 2, t]
                m = b00 * u + p02
                p02 = b01 * u - a01 * m + p12
                p12 = b02 * u - a02 * m
                o = b10 * m + q02
                q02 = b11 * m - a11 * o + q12
                q12 = b12 * m - a12 * o
                y[2, t] = o
                u = x[r + 3, t]
                m = b00 * u + p03
                p03 = b01 * u - a01 * m + p13
                p13 = b02 * u - a02 * m
                o = b10 * m + q03
                q03 = b11 * m - a11 * o + q13
                q13 = b12 * m - a12 * o
                y[3, t] = o
            for j in range(4):
                _quantise_row(y[j], r + j, gain, lsb, lo, hi, codes, sat, recorded, raw)
            r += 4
    z = np.empty((ns, 2))
    while r < rows:
        x0 = x[r, 0]
        for s in range(ns):
            z[s, 0] = zi[s, 0] * x0
            z[s, 1] = zi[s, 1] * x0
        for t in range(n):
            xc = x[r, t]
            for s in range(ns):
                xn = sos[s, 0] * xc + z[s, 0]
                z[s, 0] = sos[s, 1] * xc - sos[s, 4] * xn + z[s, 1]
                z[s, 1] = sos[s, 2] * xc - sos[s, 5] * xn
                xc = xn
            y[0, t] = xc
        _quantise_row(y[0], r, gain, lsb, lo, hi, codes, sat, recorded, raw)
        r += 1


def filter_adc_out_ref(x, sos, zi, gain, lsb, lo, hi):
    """NumPy/SciPy twin of :func:`filter_adc_out_kernel`: ``(codes, sat, recorded, raw)``, the
    last two as ``apply_device`` computed them from the codes."""
    codes, sat = filter_adc_ref(x, sos, zi, gain, lsb, lo, hi)
    v = codes * lsb
    return codes, sat, (v / gain).astype(np.float32), v.astype(np.float32)


#: name -> (kernel, twin), for tests and benchmarks.
KERNELS = {"filter_adc_out": (filter_adc_out_kernel, filter_adc_out_ref)}
