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
def filter_adc_out_kernel(x, sos, zi, gain, lsb, lo, hi, codes, sat, recorded, raw):  # pragma: no cover - compiled
    """``codes[r, t]`` (int64) and ``sat[r, t]`` (bool) of ``x [rows, T]`` (float64, mV) through the
    sections ``sos [n_sections, 6]`` started at ``zi [n_sections, 2] * x[r, 0]``, times ``gain``,
    quantised to steps ``lsb`` and clipped to ``[lo, hi]``; also ``recorded [rows, T]`` (float32 mV,
    ``(code * lsb) / gain``) and ``raw [rows, T]`` (float32, ``code * lsb``), in the same pass."""
    rows, n = x.shape
    ns = sos.shape[0]
    z = np.empty((ns, 2))
    for r in range(rows):
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
            c = np.rint((xc * gain) / lsb)
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


def filter_adc_out_ref(x, sos, zi, gain, lsb, lo, hi):
    """NumPy/SciPy twin of :func:`filter_adc_out_kernel`: ``(codes, sat, recorded, raw)``, the
    last two as ``apply_device`` computed them from the codes."""
    codes, sat = filter_adc_ref(x, sos, zi, gain, lsb, lo, hi)
    v = codes * lsb
    return codes, sat, (v / gain).astype(np.float32), v.astype(np.float32)


#: name -> (kernel, twin), for tests and benchmarks.
KERNELS = {"filter_adc_out": (filter_adc_out_kernel, filter_adc_out_ref)}
