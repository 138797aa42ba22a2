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
  which were half of ``apply_device``'s time). The work is ``filter_adc_lanes_kernel``'s: the
  rows side by side in time-major tiles (each row's recursion is independent, so the loop over
  rows vectorises while every row keeps its own operations in their order), which also counts
  each row's saturated samples, may leave out the codes, flags and raw output (the simulation
  keeps only the recording) and reports non-finite input from the filter's final state.
* ``montage_rows`` / ``noisy_montage_rows`` -- the device's leads from electrode potentials
  (``Montage.apply``, an ``einsum`` over electrodes in their order), written into rows of
  the array the filter pass reads, the noisy ones formed from ``phi * contact + noise``
  (``ElectrodeNoise.apply``) in the same pass. Only the non-zero weights are added (a lead
  uses 2-4 of the 9 electrodes of a 12-lead montage): starting from +0.0, a sum of finite
  terms is never -0.0 and adding a +-0.0 term leaves any other value as it is, so on finite
  input this is ``einsum``'s result bit for bit. A non-finite input would spread through
  a zero weight in ``einsum`` (``0 * inf``) and not here, so the kernels count non-finite
  inputs and callers then use the ``einsum`` path.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from scipy import signal as _signal

# one finiteness pass for noise and device alike (re-exported for device.apply)
from ..noise._kernels import all_finite_kernel  # noqa: F401
# a lead's weighted sum of electrode rows (leads of 1-4 electrodes written out so each loop
# over time vectorises): one definition, in the noise kernels, which this module imports
from ..noise._kernels import _lead_rows_from as _lead_rows


def filter_adc_ref(x, sos, zi, gain, lsb, lo, hi):
    """SciPy twin of the codes and saturation flags of :func:`filter_adc_out_kernel`:
    ``(codes int64, sat bool)`` of ``x [rows, T]`` (float64, mV) through the sections ``sos``
    started at ``zi * x[:, 0]``, times ``gain``, quantised to steps ``lsb``, clipped to ``[lo, hi]``."""
    x = np.asarray(x, dtype=np.float64)
    y, _ = _signal.sosfilt(sos, x, axis=-1, zi=zi[:, None, :] * x[None, :, :1])
    c = np.round((y * gain) / lsb)
    sat = (c < lo) | (c > hi)
    return np.clip(c, lo, hi).astype(np.int64), sat


#: Samples per time-major tile of :func:`filter_adc_lanes_kernel` (24 rows: 12 KB of float64 and
#: 6 KB of float32, in L1; 32 to 256 measured alike).
LANE_CHUNK = 64


@njit(cache=True, nogil=True)
def _sections_lanes(sos, z, tile, nt, rows):  # pragma: no cover - compiled
    """The cascade ``sos`` over ``tile[:nt, :rows]`` (time-major, in place) from the state
    ``z [2 n_sections, rows]`` (updated): the transposed direct form II of
    :func:`filter_adc_out_kernel`, each row its own recursion with its own operations in their
    order; the loop over rows is innermost, contiguous and independent, so it vectorises
    (no fast-math: each lane rounds every operation as the scalar code does)."""
    ns = sos.shape[0]
    if ns == 2:
        b00, b01, b02, a01, a02 = sos[0, 0], sos[0, 1], sos[0, 2], sos[0, 4], sos[0, 5]
        b10, b11, b12, a11, a12 = sos[1, 0], sos[1, 1], sos[1, 2], sos[1, 4], sos[1, 5]
        p0, p1, q0, q1 = z[0], z[1], z[2], z[3]
        for t in range(nt):
            e = tile[t]
            for r in range(rows):
                u = e[r]
                m = b00 * u + p0[r]
                p0[r] = b01 * u - a01 * m + p1[r]
                p1[r] = b02 * u - a02 * m
                o = b10 * m + q0[r]
                q0[r] = b11 * m - a11 * o + q1[r]
                q1[r] = b12 * m - a12 * o
                e[r] = o
    else:
        for t in range(nt):
            e = tile[t]
            for s in range(ns):
                b0, b1, b2, a1, a2 = sos[s, 0], sos[s, 1], sos[s, 2], sos[s, 4], sos[s, 5]
                z0, z1 = z[2 * s], z[2 * s + 1]
                for r in range(rows):
                    u = e[r]
                    m = b0 * u + z0[r]
                    z0[r] = b1 * u - a1 * m + z1[r]
                    z1[r] = b2 * u - a2 * m
                    e[r] = m


@njit(cache=True, nogil=True)
def filter_adc_lanes_kernel(x, sos, zi, gain, lsb, lo, hi, recorded, n_sat, codes, sat, raw):  # pragma: no cover - compiled
    """:func:`filter_adc_out_kernel` with the rows side by side: ``recorded [rows, T]`` (float32 mV)
    of every row of ``x [rows, T]`` (float64, C-contiguous) and ``n_sat[r]`` (int64) its number
    of saturated samples; ``codes``, ``sat`` and ``raw`` for their first rows (any number,
    0 when only the recording is wanted). Returns the number of rows whose filter state ended
    non-finite: every row with a non-finite sample (a non-finite input makes the first
    section's output and then its state non-finite, and no later operation -- products,
    sums -- makes them finite again), so no pass of its own checks the input; also a row
    whose filter overflows on finite input (callers then check the input itself).

    A tile of :data:`LANE_CHUNK` samples of every row at a time is copied time-major, filtered
    in place with the rows in the innermost loop (:func:`_sections_lanes`), then quantised
    time-major too (the divisions vectorise) and copied back to the rows. Every row gets the
    same IEEE operations in the same order as in the scalar loop, so the outputs are the
    same bits (24 rows of 5,000 samples: 0.49 ms before with every output; 0.40 ms with
    every output, 0.28 ms for the recording and the counts only). The work is
    :func:`filter_adc_grade_lanes_kernel`'s, without its grade lanes."""
    return filter_adc_grade_lanes_kernel(x, sos, zi, gain, lsb, lo, hi, recorded, n_sat, codes, sat, raw,
                                         np.empty((0, 0)), 0)


@njit(cache=True, nogil=True)
def filter_adc_grade_lanes_kernel(x, sos, zi, gain, lsb, lo, hi, recorded, n_sat, codes, sat,
                                  raw, lanes, lane0):  # pragma: no cover - compiled
    """:func:`filter_adc_lanes_kernel` that also writes, when ``lanes`` has rows, the recording as
    the artefact grades read it (``noise._kernels.artefact_grades_lanes_kernel``): ``x`` holds a
    recording's leads and then its noiseless twin (``2 n_l`` rows), and row ``lane0 + t`` of the
    time-major ``lanes`` [>= lane0 + T, 2 n_l] (float64, C-contiguous) gets
    ``recorded[l, t] - recorded[n_l + l, t]`` (float32 difference) in column ``l`` and
    ``recorded[n_l + l, t]`` in column ``n_l + l`` -- the values ``artefact_grades`` formed from
    the recorded rows again, here taken from the time-major tile while it is in cache (this
    kernel and the grades' 0.75 -> 0.72 ms for a default record measured alone; the stages,
    the grades taken right after the device, 1.07 -> 0.99 ms)."""
    rows, n = x.shape
    ns = sos.shape[0]
    n_c = codes.shape[0]
    n_l = rows // 2 if lanes.shape[0] else 0
    ch = LANE_CHUNK
    tile = np.empty((ch, rows))
    ftile = np.empty((ch, rows), dtype=np.float32)
    z = np.empty((2 * ns, rows))
    for s in range(ns):
        for r in range(rows):
            z[2 * s, r] = zi[s, 0] * x[r, 0]
            z[2 * s + 1, r] = zi[s, 1] * x[r, 0]
    for r in range(rows):
        n_sat[r] = 0
    for a in range(0, n, ch):
        nt = min(n, a + ch) - a
        for t in range(nt):
            e = tile[t]
            for r in range(rows):
                e[r] = x[r, a + t]
        _sections_lanes(sos, z, tile, nt, rows)
        for t in range(nt):
            e = tile[t]
            f = ftile[t]
            for r in range(rows):
                c0 = np.rint((e[r] * gain) / lsb)
                n_sat[r] += (c0 < lo) | (c0 > hi)
                # clipped; + 0.0 turns -0.0 into the +0.0 of the int64 code 0 (else the same value)
                c = min(max(c0, lo), hi) + 0.0
                f[r] = np.float32((c * lsb) / gain)
                if n_c:
                    e[r] = c0          # the unclipped code, for the codes below
        if n_l:
            for t in range(nt):
                f = ftile[t]
                g = lanes[lane0 + a + t]
                for r in range(n_l):
                    g[r] = f[r] - f[n_l + r]
                    g[n_l + r] = f[n_l + r]
        for r in range(rows):
            o = recorded[r]
            for t in range(nt):
                o[a + t] = ftile[t, r]
        for r in range(n_c):
            cr, sr, rw = codes[r], sat[r], raw[r]
            for t in range(nt):
                c0 = tile[t, r]
                sr[a + t] = (c0 < lo) | (c0 > hi)
                c = min(max(c0, lo), hi) + 0.0
                cr[a + t] = np.int64(c)
                rw[a + t] = np.float32(c * lsb)
    bad = 0
    for r in range(rows):
        bad += 0 if np.isfinite(z[0, r]) else 1
    return bad


@njit(cache=True, nogil=True)
def filter_adc_out_kernel(x, sos, zi, gain, lsb, lo, hi, codes, sat, recorded, raw):  # pragma: no cover - compiled
    """``codes[r, t]`` (int64) and ``sat[r, t]`` (bool) of ``x [rows, T]`` (float64, mV) through the
    sections ``sos [n_sections, 6]`` started at ``zi [n_sections, 2] * x[r, 0]``, times ``gain``,
    quantised to steps ``lsb`` and clipped to ``[lo, hi]``; also ``recorded [rows, T]`` (float32 mV,
    ``(code * lsb) / gain``) and ``raw [rows, T]`` (float32, ``code * lsb``), in the same pass.
    ``codes``, ``sat`` and ``raw`` may have fewer rows than ``x``: the rows past them get only
    ``recorded`` (a noiseless twin's codes are not wanted). Every row gets the IEEE operations
    of SciPy's ``_sosfilt`` loop and of the quantiser in their order (no fast-math), bit for
    bit; the work is :func:`filter_adc_lanes_kernel`'s (returns its count of non-finite rows)."""
    return filter_adc_lanes_kernel(np.ascontiguousarray(x), sos, zi, gain, lsb, lo, hi, recorded,
                                   np.empty(x.shape[0], dtype=np.int64), codes, sat, raw)


def filter_adc_out_ref(x, sos, zi, gain, lsb, lo, hi):
    """NumPy/SciPy twin of :func:`filter_adc_out_kernel`: ``(codes, sat, recorded, raw)``, the
    last two as ``apply_device`` computed them from the codes."""
    codes, sat = filter_adc_ref(x, sos, zi, gain, lsb, lo, hi)
    v = codes * lsb
    return codes, sat, (v / gain).astype(np.float32), v.astype(np.float32)


_MONTAGE_CHUNK = 512   # samples per pass of the noisy leads: every electrode's chunk stays in L1


@njit(cache=True, nogil=True)
def montage_rows_kernel(matrix, phi, out, row0):  # pragma: no cover - compiled
    """Leads ``matrix [n_k, n_e] @ phi [n_e, T]`` (float64) into ``out[row0:row0 + n_k]``;
    returns the number of non-finite values of ``phi`` (the result is ``einsum``'s only
    when it is 0, see the module docstring)."""
    n_e, n = phi.shape
    bad = 0
    for e in range(n_e):
        for t in range(n):
            bad += 0 if np.isfinite(phi[e, t]) else 1
    _lead_rows(matrix, phi, 0, 0, n, out, row0)
    return bad


@njit(cache=True, nogil=True)
def noisy_montage_rows_kernel(matrix, phi, contact, unit_contact, noise, out, row0):  # pragma: no cover - compiled
    """Leads ``matrix @ (phi * contact + noise)`` into ``out[row0:row0 + n_k]``, each
    electrode value formed as ``ElectrodeNoise.apply`` forms it in float64 (``phi * contact``,
    skipped when ``unit_contact``: ``x * 1.0 == x``; then ``+ noise``), a chunk of time at
    a time. ``contact`` [n_e, T] (any float dtype, any strides; unused when
    ``unit_contact``), ``noise`` [n_e, T] float64. Returns the number of non-finite
    electrode values."""
    n_e, n = phi.shape
    v = np.empty((n_e, _MONTAGE_CHUNK))
    bad = 0
    for a in range(0, n, _MONTAGE_CHUNK):
        b = min(n, a + _MONTAGE_CHUNK)
        for e in range(n_e):
            ve = v[e]
            if unit_contact:
                for t in range(a, b):
                    x = phi[e, t] + noise[e, t]
                    bad += 0 if np.isfinite(x) else 1
                    ve[t - a] = x
            else:
                for t in range(a, b):
                    x = phi[e, t] * np.float64(contact[e, t]) + noise[e, t]
                    bad += 0 if np.isfinite(x) else 1
                    ve[t - a] = x
        _lead_rows(matrix, v, 0, a, b, out, row0)
    return bad


@njit(cache=True, nogil=True)
def noisy_sum_montage_rows_kernel(matrix, phi, contact, unit_contact, kinds, which, consts, out,
                                  row0):  # pragma: no cover - compiled
    """:func:`noisy_montage_rows_kernel` with the noise summed from its kinds in the same pass,
    as ``ElectrodeNoise.noise`` sums them: in float32, kind by kind in order (the first one
    copied, each next one added, every sum rounded to float32), then widened to float64.
    Kind ``j`` is ``kinds[which[j]]`` ([n_e, T] float32) or, where ``which[j] < 0``, the
    constant ``consts[j]`` (a broadcast event-free kind). No float64 noise array and no
    float32 temporaries are formed. Returns the number of non-finite electrode values."""
    n_e, n = phi.shape
    n_k = which.shape[0]
    v = np.empty((n_e, _MONTAGE_CHUNK))
    s = np.empty(_MONTAGE_CHUNK, dtype=np.float32)
    bad = 0
    for a in range(0, n, _MONTAGE_CHUNK):
        b = min(n, a + _MONTAGE_CHUNK)
        for e in range(n_e):
            for j in range(n_k):
                w = which[j]
                if w < 0:
                    c = consts[j]
                    if j == 0:
                        for t in range(a, b):
                            s[t - a] = c
                    else:
                        for t in range(a, b):
                            s[t - a] = s[t - a] + c
                else:
                    k = kinds[w]
                    if j == 0:
                        for t in range(a, b):
                            s[t - a] = k[e, t]
                    else:
                        for t in range(a, b):
                            s[t - a] = s[t - a] + k[e, t]
            ve = v[e]
            if unit_contact:
                for t in range(a, b):
                    x = phi[e, t] + np.float64(s[t - a])
                    bad += 0 if np.isfinite(x) else 1
                    ve[t - a] = x
            else:
                for t in range(a, b):
                    x = phi[e, t] * np.float64(contact[e, t]) + np.float64(s[t - a])
                    bad += 0 if np.isfinite(x) else 1
                    ve[t - a] = x
        _lead_rows(matrix, v, 0, a, b, out, row0)
    return bad


def noisy_sum_montage_rows_ref(matrix, phi, contact, kinds):
    """NumPy twin of :func:`noisy_sum_montage_rows_kernel`: ``kinds`` (the noise kinds in
    order, float32 [n_e, T] or broadcast constants) summed as ``ElectrodeNoise.noise`` sums
    them, then :func:`noisy_montage_rows_ref`."""
    total32 = None
    for k in kinds:
        total32 = k.astype(np.float32, copy=True) if total32 is None else total32 + k
    return noisy_montage_rows_ref(matrix, phi, contact, total32.astype(np.float64))


def montage_rows_ref(matrix, phi):
    """NumPy twin of :func:`montage_rows_kernel`: ``Montage.apply``'s ``einsum``."""
    return np.einsum("ke,...et->...kt", np.asarray(matrix, dtype=np.float64), np.asarray(phi, dtype=np.float64))


def noisy_montage_rows_ref(matrix, phi, contact, noise):
    """NumPy twin of :func:`noisy_montage_rows_kernel`: ``ElectrodeNoise.apply`` (float64)
    then ``Montage.apply``."""
    return montage_rows_ref(matrix, np.asarray(phi, dtype=np.float64) * contact + noise)


@njit(cache=True, nogil=True)
def row_counts_kernel(flags, out):  # pragma: no cover - compiled
    """``out[r]`` = the number of True values in row ``r`` of the 2-D bool ``flags``
    (``numpy.count_nonzero(flags, axis=1)``, whose axis form costs ~18 us on 12 x 5,000)."""
    for r in range(flags.shape[0]):
        k = 0
        for t in range(flags.shape[1]):
            k += np.int64(flags[r, t])
        out[r] = k


def row_counts_ref(flags):
    """NumPy twin of :func:`row_counts_kernel`."""
    return np.count_nonzero(flags, axis=1)


@njit(cache=True, nogil=True)
def halves_kernel(base, x, clean):  # pragma: no cover - compiled
    """Whether ``x`` starts where ``base`` does and ``clean`` right after ``x`` (data addresses;
    the caller has checked shapes, dtypes and contiguity)."""
    return x.ctypes.data == base.ctypes.data and clean.ctypes.data == base.ctypes.data + x.size * x.itemsize


def halves_ref(base, x, clean):
    """NumPy twin of :func:`halves_kernel` (the addresses from ``__array_interface__``)."""
    start = base.__array_interface__["data"][0]
    return x.__array_interface__["data"][0] == start and clean.__array_interface__["data"][0] == start + x.nbytes


#: name -> (kernel, twin), for tests and benchmarks.
KERNELS = {"filter_adc_out": (filter_adc_out_kernel, filter_adc_out_ref),
           "montage_rows": (montage_rows_kernel, montage_rows_ref),
           "noisy_montage_rows": (noisy_montage_rows_kernel, noisy_montage_rows_ref),
           "noisy_sum_montage_rows": (noisy_sum_montage_rows_kernel, noisy_sum_montage_rows_ref),
           "row_counts": (row_counts_kernel, row_counts_ref),
           "halves": (halves_kernel, halves_ref)}
