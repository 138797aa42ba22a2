"""Numba kernels of the per-record planner (``synth._plan``, ``rhythm.beat_schedule``,
``synth._finish``), bit for bit with their NumPy twins.

A 10-s record's plan is a few hundred numbers, so in NumPy it is dominated by the cost of
calling NumPy (a few microseconds a call, ~100 calls a record). These kernels do the same
arithmetic in the same order in one call each.

Two kinds:

* **exact** kernels use only ``+ - * /``, comparisons and ``rint`` (IEEE-exact, so their
  results equal the NumPy twins' on every machine; numba does not contract ``a * b + c``
  into an FMA without fast-math): :func:`times_kernel` (``start + cumsum``),
  :func:`tachogram_kernel` (McSharry's scaled series walked beat by beat),
  :func:`ectopic_chain_kernel` / :func:`ectopic_rr_kernel` (PVC/PAC beat types and
  coupling), :func:`beat_inputs_kernel` (RR to the next beat, respiratory phase),
  :func:`beat_table_kernel` (per-beat Gaussians and fiducials),
  :func:`annotations_kernel` (sample indices of the fiducials), :func:`beat_render_kernel`
  (the table, ``_kernels``' rows renderer and the annotations in one call), :func:`flutter_kernel`
  (atrial flutter's saw-tooth, scipy's ``sawtooth`` with ``fmod``). Transcendental inputs
  (``RR^(1/3)``, the respiratory modulation's ``sin``) are computed by NumPy and passed in.
* the **spectrum** kernel (:func:`spectrum_kernel`: McSharry's amplitude spectrum and the
  random-phase spectrum, ``exp`` / ``cos`` / ``sin``) equals NumPy only where the C
  library's functions are NumPy's, so it is used only after :func:`spectrum_matches`
  checked it bit for bit against :func:`spectrum_numpy` in this process (once; else the
  NumPy code runs), as ``_beat_kernels`` does. Where only ``exp`` differs (NumPy's SIMD
  ``exp`` on AVX-512 machines is Intel's SVML), :func:`spectrum_hybrid` keeps NumPy's
  ``exp`` between two exact kernels (:func:`spectrum_arg_kernel`,
  :func:`spectrum_finish_kernel`); :func:`spectrum_form` picks the form that passed.

API (typed, small; callers validate; the ``*_numpy`` functions are the twins and
``tests/test_ode_plan_kernels.py`` asserts equality):

``times_kernel(rr, start, duration_pad, out) -> keep``;
``tachogram_kernel(x, scale, rr_mean, fs_rr, out) -> min(out)``;
``ectopic_chain_kernel(u, p_nn, code, types)``;
``ectopic_rr_kernel(types, code, coupling, reset, rr)``;
``beat_inputs_kernel(r_times, nb, omega, phase, duration, out) -> n_in_window`` (``out`` (2, nb));
``beat_table_kernel(r_times, f_repol, resp, resp_depth, z, beat_jitter, codes, tau_n, sig_n,
amp_n, tau_e, sig_e, amp_e, repol, fid_n, fid_e, duration) -> (centres, widths, amps, chans,
fid, n_in_window, ok)``;
``annotations_kernel(r_times, nb, fid, fs, n) -> (idx, samples (7, m) int64, rr)``;
``beat_render_kernel(<beat_table_kernel's arguments>, fs, cutoff, flat, n, tab) -> (idx, samples,
rr, ok)`` (table, rows render into ``flat``, annotations: one call);
``sinus_render_kernel(r_times, f_repol, resp, resp_depth, z, beat_jitter, codes, tmpl, duration,
fs, cutoff, flat, n, tab, s, rr, bt) -> ok`` (the same for one packed template, annotations into
the given arrays);
``flutter_kernel(vcg, fs, f0, ph, a0, d)`` (in place);
``spectrum_kernel(f, lf_hz, hf_hz, lf_width_hz, hf_width_hz, lf_hf_ratio, phases, spec)``;
``spectrum_u(f, lf_hz, hf_hz, lf_width_hz, hf_width_hz, lf_hf_ratio, u, form) -> spec`` (phases
``2π u``, zero-power bins +0; in the form :func:`spectrum_u_form` checked);
``spectrum(f, lf_hz, hf_hz, lf_width_hz, hf_width_hz, lf_hf_ratio, phases) -> spec`` (in the
checked form, :func:`spectrum_form`).

A sinus record's plan with its draws (``synth._plan_sinus``; the draws from the bit
generator ``bg`` of :mod:`._rng_kernels`, the same numbers ``rhythm.uniform3``,
``Generator.random`` and ``Generator.standard_normal`` give; twin: ``synth._plan``'s
general path): ``sinus_draw_kernel(bg, hr_lo, hr_hi, duration, w, cap, sd_lo, sd_hi) -> (hr, hr_std, breathing_rate,
n_beats, n, m)``; ``sinus_spectrum_draw_kernel(bg, n, hf_hz, f, u, e) -> m``;
``sinus_spectrum_kernel(w, cap, m, exp_here, lf_hf_ratio, spec)``; ``sinus_schedule_kernel(bg,
x, scale, rr_mean, duration, breathing_rate, codes, z, fb, series_here, rr_std, fs, n) ->
(status, nb, n_in_window, resp_phase, resp_depth, m)`` (with ``series_here``, the dot form, not 0: the series centred and scaled by
``series_scale_kernel(x, rr_std, form) -> scale`` and ``resp = sin`` by ``sin_kernel(x, out)``, NumPy's
pairwise sum, this machine's OpenBLAS ``ddot`` and the C library's ``sin`` written out, used
where ``series_forms_match()`` confirmed them, once per process; twin ``series_scale_numpy``);
``rfft_freqs_into(n, d, out)``.

NumPy's own ``exp`` and ``power`` loops called from kernels (where :func:`ufunc_loops` read
them from the ufuncs' tables and they reproduced the ufuncs, once per process):
``ufunc_loops() -> uint64[4] | None``; ``sinus_spectrum_loop_kernel(w, cap, m, loops, lf_hf_ratio,
spec)`` (:func:`sinus_spectrum_kernel` with NumPy's ``exp`` of the exponents taken inside);
``sinus_schedule_cbrt_kernel(<sinus_schedule_kernel's arguments>, loops, THIRD)`` (and then
``fb[:nb] **= 1/3`` by NumPy's power loop); ``sinus_series_loop_kernel(w, cap, m, loops,
lf_hf_ratio, spec, fct, x)`` (the spectrum as ``sinus_spectrum_loop_kernel``, then ``x`` its
``np.fft.irfft`` by NumPy's loop, ``fct = [1 / n]``); ``exp_loop_kernel(loops, v)``,
``cbrt_loop_kernel(loops, x, THIRD)``, ``irfft_loop_kernel(loops, spec, fct, x)`` (the
check's entries).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.core.extending import intrinsic

from .._exp_kernels import _ufunc_loop, _ufunc_table_loop, ufunc_loop_array  # noqa: F401 - NumPy's loops (shared)
from .._pairwise_kernels import pairwise_sum_flat
from ._kernels import _fma, gaussian_time_rows_kernel
from ._rng_kernels import next_double, standard_normal

# beat type codes as the UCS-4 code points of "<U1" arrays (types.view(np.uint32))
CODE_N, CODE_V, CODE_A = ord("N"), ord("V"), ord("A")


# --- exact kernels -------------------------------------------------------------------
@njit(cache=True, nogil=True)
def times_kernel(rr, start, duration_pad, out):
    """``out = start + concatenate([[0], cumsum(rr)])`` (``np.cumsum`` adds in order) and
    ``searchsorted(out, duration_pad) + 1`` (how many beats ``synth._plan`` keeps)."""
    acc = 0.0
    out[0] = start + 0.0
    for k in range(rr.shape[0]):
        acc = acc + rr[k]
        out[k + 1] = start + acc
    lo = 0
    for k in range(out.shape[0]):  # searchsorted, side="left": first out[k] >= duration_pad
        if out[k] >= duration_pad:
            break
        lo = k + 1
    return lo + 1


@njit(cache=True, nogil=True)
def tachogram_kernel(x, scale, rr_mean, fs_rr, out):
    """``rhythm.rr_tachogram``'s walk on ``RR(t) = rr_mean + x * scale`` (``x`` the
    zero-mean McSharry series sampled at ``fs_rr``): ``out[k] = RR(t_k)`` linearly
    interpolated, ``t_{k+1} = t_k + out[k]``; returns ``min(out)``."""
    t = 0.0
    n = x.shape[0]
    lo = np.inf
    for k in range(out.shape[0]):
        xk = t * fs_rr
        i = int(xk)
        if i >= n - 1:
            v = rr_mean + x[n - 1] * scale
        else:
            a = rr_mean + x[i] * scale
            b = rr_mean + x[i + 1] * scale
            v = a + (xk - i) * (b - a)
        out[k] = v
        t += v
        lo = min(lo, v)
    return lo


@njit(cache=True, nogil=True)
def ectopic_chain_kernel(u, p_nn, code, types):
    """FECGSYN's two-state chain into ``types`` (uint32 code points, all ``N`` on entry):
    beat ``k >= 2`` is ectopic (``code``) when ``u[k] > p_nn`` and beat ``k - 1`` is not."""
    prev = CODE_N
    for k in range(2, types.shape[0]):
        if prev == CODE_N and types[k - 1] == CODE_N and u[k] > p_nn:
            types[k] = code
        prev = types[k]


@njit(cache=True, nogil=True)
def ectopic_rr_kernel(types, code, coupling, reset, rr):
    """Premature ectopic beats and their pauses, in beat order: for every ``types[k] ==
    code`` with ``1 <= k < n - 1``, ``rr[k-1] = coupling * base`` and ``rr[k] = (2 -
    coupling) * base`` (ventricular: compensatory) or ``base * reset[j]`` (atrial, ``j``
    counting those beats), ``base`` the sinus ``rr[k-1]``."""
    n = types.shape[0]
    j = 0
    for k in range(n):
        if types[k] != code or k + 1 >= n or k < 1:
            continue
        base = rr[k - 1]
        rr[k - 1] = coupling * base
        if code == CODE_V:
            rr[k] = (2.0 - coupling) * base
        else:
            rr[k] = base * reset[j]
            j += 1


@njit(cache=True, nogil=True)
def beat_inputs_kernel(r_times, nb, omega, phase, duration, out):
    """``synth._plan``'s per-beat inputs of :func:`beat_table_kernel` before their
    transcendental functions (NumPy's, applied by the caller): ``out[0, b] = r[b + 1] -
    r[b]`` (the RR to the next beat, for ``RR^(1/3)``) and ``out[1, b] = omega r[b] +
    phase`` (the respiratory phase at the R peak, for ``sin``), ``b < nb``; each operation
    rounded once, as NumPy's element-wise operations round them. Returns the number of
    beats with ``0 <= R < duration`` (as :func:`beat_table_kernel`)."""
    inside = 0
    for b in range(nb):
        r = r_times[b]
        out[0, b] = r_times[b + 1] - r
        out[1, b] = omega * r + phase
        if r >= 0 and r < duration:
            inside += 1
    return inside


@njit(cache=True, nogil=True)
def beat_table_kernel(r_times, f_repol, resp, resp_depth, z, beat_jitter, codes, tau_n, sig_n, amp_n, tau_e,
                      sig_e, amp_e, repol, fid_n, fid_e, duration):
    """``synth._plan``'s per-beat Gaussians and fiducial times for ``nb = f_repol.shape[0]``
    beats. Beat ``b`` uses the normal template (``*_n``) where ``codes[b] == CODE_N`` (the
    beat types' UCS-4 code points), else the ectopic one; ``f_repol[b] = RR_next^(1/3)``
    scales the repolarisation slots' centres and widths (1.0 elsewhere, exact) and the T
    peak / T offset fiducials, centres and fiducials about the template's QRS onset
    (``fid[2]``: ``tau f + q (1 - f)``, ``model.scaled_timing``); amplitudes times ``1 + beat_jitter z[b, i]`` and the
    respiratory modulation ``1 + resp_depth resp[b]`` (``resp`` the sine of the phase).
    Gaussians whose template amplitude is ``<= 1e-9`` are left out; order beat, axis, slot
    (``np.flatnonzero`` of the (nb, 3, NW) mask). Returns centres, widths, amps, chans
    (axis), fid (nb, 7), the number of beats with ``0 <= R < duration``, and whether every
    Gaussian is finite with a positive width."""
    nb = f_repol.shape[0]
    nw = tau_n.shape[1]
    nf = fid_n.shape[0]
    g_n = 0
    g_e = 0
    for a in range(3):
        for i in range(nw):
            if abs(amp_n[a, i]) > 1e-9:
                g_n += 1
            if abs(amp_e[a, i]) > 1e-9:
                g_e += 1
    total = 0
    for b in range(nb):
        total += g_n if codes[b] == CODE_N else g_e
    centres = np.empty(total)
    widths = np.empty(total)
    amps = np.empty(total)
    chans = np.empty(total, np.int64)
    fid = np.empty((nb, nf))
    ok = True
    g = 0
    inside = 0
    # the ST/T slots and T fiducials scale about the template's QRS onset (its fiducial 2,
    # model.scaled_timing): tau f + q (1 - f), exactly tau where f is 1.0
    q_n = fid_n[2] if math.isfinite(fid_n[2]) else 0.0
    q_e = fid_e[2] if math.isfinite(fid_e[2]) else 0.0
    for b in range(nb):
        r = r_times[b]
        if r >= 0 and r < duration:
            inside += 1
        fr = f_repol[b]
        m = 1.0 + resp_depth * resp[b]
        nrm = codes[b] == CODE_N
        qf = (q_n if nrm else q_e) * (1.0 - fr)
        for a in range(3):
            for i in range(nw):
                a0 = amp_n[a, i] if nrm else amp_e[a, i]
                if not abs(a0) > 1e-9:
                    continue
                t0 = tau_n[a, i] if nrm else tau_e[a, i]
                s0 = sig_n[a, i] if nrm else sig_e[a, i]
                if repol[i]:
                    c = r + (t0 * fr + qf)
                    w = s0 * fr
                else:  # f = 1.0: t0 * 1.0 + q * 0.0 is t0, s0 * 1.0 is s0
                    c = r + t0
                    w = s0
                centres[g] = c
                widths[g] = w
                amps[g] = (a0 * (1.0 + beat_jitter * z[b, i])) * m
                chans[g] = a
                if not (math.isfinite(c) and math.isfinite(amps[g]) and w > 0 and math.isfinite(w)):
                    ok = False
                g += 1
        for j in range(nf):
            v = fid_n[j] if nrm else fid_e[j]
            fid[b, j] = r + (v * fr + qf) if j >= 5 else r + v
    return centres, widths, amps, chans, fid, inside, ok


@njit(cache=True, nogil=True)
def beat_render_kernel(r_times, f_repol, resp, resp_depth, z, beat_jitter, codes, tau_n, sig_n, amp_n, tau_e,
                       sig_e, amp_e, repol, fid_n, fid_e, duration, fs, cutoff, flat, n, tab):
    """A short record in one call: :func:`beat_table_kernel` on its first 17 arguments,
    then, if every Gaussian is valid, ``_kernels.gaussian_time_rows_kernel(0, fs, ...,
    cutoff, flat, n, tab)`` of the table (the (3, n) record into ``flat``, >= 3 n + 8 zeros) and
    :func:`annotations_kernel` of its fiducials. Returns (idx, samples, rr, ok): the
    annotations (empty if not ``ok``) and whether the table was valid (else nothing is
    rendered: the caller goes through the checked renderer, which says what is wrong)."""
    centres, widths, amps, chans, fid, inside, ok = beat_table_kernel(
        r_times, f_repol, resp, resp_depth, z, beat_jitter, codes, tau_n, sig_n, amp_n, tau_e, sig_e, amp_e,
        repol, fid_n, fid_e, duration)
    if not ok:
        return np.empty(0, np.int64), np.empty((fid.shape[1], 0), np.int64), np.empty(0), False
    gaussian_time_rows_kernel(0.0, fs, centres, widths, amps, chans, cutoff, flat, n, tab)
    idx, s, rr = annotations_kernel(r_times, f_repol.shape[0], fid, fs, n)
    return idx, s, rr, True


@njit(cache=True, nogil=True)
def sinus_render_kernel(r_times, f_repol, resp, resp_depth, z, beat_jitter, codes, tmpl, duration, fs, cutoff, flat,
                        n, tab, s, rr, bt):
    """:func:`beat_render_kernel` for beats of one template (normal and "ectopic" the same
    patient: the sinus plans), packed in ``tmpl`` (``10 NW + 7``: tau, sigma, amp (3, NW)
    each, the ST-T mask as 0/1, the 7 fiducials; one array where there were nine), the
    annotations written into ``s`` (7, m), ``rr`` (m) and ``bt`` (m: the annotated beats'
    type codes), ``m`` the beats :func:`annotations_kernel` keeps (counted by
    :func:`sinus_schedule_kernel`): no arrays to return. Returns whether the table was
    valid (else nothing is rendered or annotated)."""
    nw = (tmpl.shape[0] - 7) // 10
    tau = tmpl[:3 * nw].reshape(3, nw)
    sig = tmpl[3 * nw:6 * nw].reshape(3, nw)
    amp = tmpl[6 * nw:9 * nw].reshape(3, nw)
    fid0 = tmpl[10 * nw:]
    centres, widths, amps, chans, fid, inside, ok = beat_table_kernel(
        r_times, f_repol, resp, resp_depth, z, beat_jitter, codes, tau, sig, amp, tau, sig, amp, tmpl[9 * nw:10 * nw],
        fid0, fid0, duration)
    if not ok:
        return False
    gaussian_time_rows_kernel(0.0, fs, centres, widths, amps, chans, cutoff, flat, n, tab)
    j = 0
    for b in range(f_repol.shape[0]):  # annotations_kernel's loop, into the given arrays
        r = r_times[b]
        if not (r >= 0 and np.rint(r * fs) < n) or j >= rr.shape[0]:
            continue
        rr[j] = r_times[b + 1] - r_times[b]
        bt[j] = codes[b]
        for k in range(fid.shape[1]):
            v = np.rint(fid[b, k] * fs)
            s[k, j] = np.int64(v) if (v >= 0 and v < n) else -1
        j += 1
    return True


@njit(cache=True, nogil=True)
def annotations_kernel(r_times, nb, fid, fs, n):
    """``synth._finish``'s annotations: the beats ``idx`` with ``R >= 0`` and
    ``rint(R fs) < n``, their fiducials as sample indices ``rint(fid fs)`` (7, m), ``-1``
    outside ``[0, n)`` (also inf / nan), and their RR intervals."""
    cnt = 0
    for b in range(nb):
        r = r_times[b]
        if r >= 0 and np.rint(r * fs) < n:
            cnt += 1
    idx = np.empty(cnt, np.int64)
    s = np.empty((fid.shape[1], cnt), np.int64)
    rr = np.empty(cnt)
    j = 0
    for b in range(nb):
        r = r_times[b]
        if not (r >= 0 and np.rint(r * fs) < n):
            continue
        idx[j] = b
        rr[j] = r_times[b + 1] - r_times[b]
        for k in range(fid.shape[1]):
            v = np.rint(fid[b, k] * fs)
            s[k, j] = np.int64(v) if (v >= 0 and v < n) else -1
        j += 1
    return idx, s, rr


@njit(cache=True, nogil=True)
def flutter_kernel(vcg, fs, f0, ph, a0, d):
    """Add ``synth._atrial_signal``'s flutter saw-tooth to ``vcg`` (3, n) in place:
    ``d (-a0) sawtooth(2π f0 t + ph, width=0.7)`` at ``t = k / fs``, scipy's ``sawtooth``
    written out (``np.mod`` is ``fmod``, exact, moved to the divisor's sign)."""
    w = 0.7
    two_pi_f0 = 2 * math.pi * f0
    na = -a0
    for k in range(vcg.shape[1]):
        x = two_pi_f0 * (k / fs) + ph
        tmod = np.fmod(x, 2 * math.pi)
        if tmod < 0.0:  # np.mod: the sign of the divisor
            tmod += 2 * math.pi
        elif tmod == 0.0:
            tmod = 0.0  # np.mod's +0
        if tmod < w * 2 * math.pi:
            y = tmod / (math.pi * w) - 1
        else:
            y = (math.pi * (w + 1) - tmod) / (math.pi * (1 - w))
        s = na * y
        for a in range(3):
            vcg[a, k] = vcg[a, k] + d[a] * s


@njit(nogil=True, inline="always")
def _interp_rising(t, xp, fp, out):
    """``out = np.interp(t, xp, fp)`` as NumPy's compiled loop computes it, for ``t`` rising
    (not NaN) from ``t[0] >= xp[0]``: ``fp[-1]`` from the last knot on, ``fp[j]`` on a knot,
    else ``slope_j (t - xp[j]) + fp[j]`` with ``slope_j = (fp[j + 1] - fp[j]) / (xp[j + 1] -
    xp[j])`` (NaN: from the segment's right end)."""
    last = xp.shape[0] - 1
    j = 0
    k = 0
    n = t.shape[0]
    while k < n:
        while j < last and xp[j + 1] <= t[k]:
            j += 1
        if j == last:
            for i in range(k, n):
                out[i] = fp[last]
            return
        # the samples of segment j: [xp[j], xp[j + 1])
        stop = k
        while stop < n and t[stop] < xp[j + 1]:
            stop += 1
        x0, y0 = xp[j], fp[j]
        slope = (fp[j + 1] - y0) / (xp[j + 1] - x0)
        for i in range(k, stop):
            out[i] = slope * (t[i] - x0) + y0
        for i in range(k, stop):
            if t[i] == x0:
                out[i] = y0
            elif math.isnan(out[i]):
                y = slope * (t[i] - xp[j + 1]) + fp[j + 1]
                if math.isnan(y) and y0 == fp[j + 1]:
                    y = y0
                out[i] = y
        k = stop


@njit(cache=True, nogil=True)
def af_wave_kernel(vcg, fs, f0, a0, d, ph, knots, fm, am):
    """Add ``synth._atrial_signal``'s AF f-waves to ``vcg`` (3, n) in place: at ``t = k /
    fs``, ``f = f0 (1 + 0.08 interp(t, knots, fm))``, the phase ``ph + 2π cumsum(f) / fs``
    (a running sum, as ``np.cumsum``), ``a = a0 max(1 + 0.3 interp(t, knots, am), 0.2)`` and
    ``d a sin(phase)`` added per axis, each step rounded as NumPy's element-wise code rounds
    it, with the C library's ``sin`` (callers check it gives the NumPy twin bit for bit:
    ``synth._af_kernel_matches``). ``knots`` rising, ``knots[0] <= 0``. In passes over work
    rows (the divisions and interpolations vectorise; only the sum and ``sin`` run serially)."""
    n = vcg.shape[1]
    t = np.empty(n)
    yf = np.empty(n)
    ya = np.empty(n)
    for k in range(n):
        t[k] = k / fs
    _interp_rising(t, knots, fm, yf)
    _interp_rising(t, knots, am, ya)
    acc = 0.0
    for k in range(n):
        acc = acc + f0 * (1.0 + 0.08 * yf[k])
        yf[k] = acc
    two_pi = 2 * math.pi
    for k in range(n):
        yf[k] = ph + two_pi * yf[k] / fs
    for k in range(n):
        yf[k] = math.sin(yf[k])
    for k in range(n):
        g = 1.0 + 0.3 * ya[k]
        if g < 0.2:  # np.clip(g, 0.2, None)
            g = 0.2
        ya[k] = (a0 * g) * yf[k]
    for a in range(3):
        da = d[a]
        for k in range(n):
            vcg[a, k] = vcg[a, k] + da * ya[k]


# --- guarded kernel (exp, cos, sin: C library vs NumPy) -----------------------------
@njit(cache=True, nogil=True)
def spectrum_kernel(f, lf_hz, hf_hz, lf_width_hz, hf_width_hz, lf_hf_ratio, phases, spec):
    """``spec = sqrt(P(f)) * exp(1j * phases)``, ``P`` McSharry's bimodal power spectrum
    (``rhythm._spectrum_amplitude``; DC amplitude 0), complex products written out as NumPy
    forms them from a real amplitude: ``(a cos - 0 sin) + i (a sin + 0 cos)``."""
    for k in range(f.shape[0]):
        d1 = (f[k] - lf_hz) / lf_width_hz
        d2 = (f[k] - hf_hz) / hf_width_hz
        p = lf_hf_ratio * math.exp(-0.5 * (d1 * d1)) / lf_width_hz + math.exp(-0.5 * (d2 * d2)) / hf_width_hz
        a = math.sqrt(p) if k > 0 else 0.0
        c = math.cos(phases[k])
        s = math.sin(phases[k])
        spec[k] = complex(a * c - 0.0 * s, a * s + 0.0 * c)


@njit(cache=True, nogil=True)
def spectrum_arg_kernel(f, lf_hz, hf_hz, lf_width_hz, hf_width_hz, out):
    """``out (2, n)``: the exponents ``-0.5 * ((f - peak) / width) ** 2`` of the LF and HF
    peaks that :func:`spectrum_numpy` hands to ``np.exp`` (each operation rounded once, as
    NumPy's element-wise ufuncs round them)."""
    for k in range(f.shape[0]):
        d1 = (f[k] - lf_hz) / lf_width_hz
        d2 = (f[k] - hf_hz) / hf_width_hz
        out[0, k] = -0.5 * (d1 * d1)
        out[1, k] = -0.5 * (d2 * d2)


@njit(cache=True, nogil=True)
def spectrum_finish_kernel(e, lf_width_hz, hf_width_hz, lf_hf_ratio, phases, spec):
    """:func:`spectrum_kernel` after its two ``exp``: ``e (2, n)`` holds them (computed by
    NumPy); the power, its square root and the random-phase product as there."""
    for k in range(e.shape[1]):
        p = lf_hf_ratio * e[0, k] / lf_width_hz + e[1, k] / hf_width_hz
        a = math.sqrt(p) if k > 0 else 0.0
        c = math.cos(phases[k])
        s = math.sin(phases[k])
        spec[k] = complex(a * c - 0.0 * s, a * s + 0.0 * c)


def spectrum_hybrid(f, lf_hz, hf_hz, lf_width_hz, hf_width_hz, lf_hf_ratio, phases):
    """:func:`spectrum_numpy` with its ``exp`` still NumPy's (in place on the exponents of
    :func:`spectrum_arg_kernel`) and the rest in kernels."""
    e = np.empty((2, f.shape[0]))
    spectrum_arg_kernel(f, lf_hz, hf_hz, lf_width_hz, hf_width_hz, e)
    np.exp(e, out=e)
    spec = np.empty(f.shape[0], np.complex128)
    spectrum_finish_kernel(e, lf_width_hz, hf_width_hz, lf_hf_ratio, phases, spec)
    return spec


def spectrum(f, lf_hz, hf_hz, lf_width_hz, hf_width_hz, lf_hf_ratio, phases):
    """The random-phase spectrum in the form :func:`spectrum_form` checked (call only where
    :func:`fast_spectrum` is true)."""
    if spectrum_form() == "kernel":
        spec = np.empty(f.shape[0], np.complex128)
        spectrum_kernel(f, lf_hz, hf_hz, lf_width_hz, hf_width_hz, lf_hf_ratio, phases, spec)
        return spec
    return spectrum_hybrid(f, lf_hz, hf_hz, lf_width_hz, hf_width_hz, lf_hf_ratio, phases)


# --- the spectrum from the uniform draws, zero-power bins skipped ---------------------
@njit(cache=True, nogil=True)
def _spectrum_u_bin(p, u, k, spec):
    """Bin ``k`` of :func:`spectrum_u` from its power ``p``: ``sqrt(p) exp(i 2π u)``, the
    phase formed as ``rhythm.uniform(rng, 0, 2π)`` forms it (``0.0 + (2π - 0.0) u``), the
    product as NumPy forms it from a real amplitude; a bin of zero power (or DC) is +0 with
    no ``cos`` / ``sin``."""
    if k == 0 or p == 0.0:
        spec[k] = 0.0
        return
    a = math.sqrt(p)
    ph = 0.0 + (2 * math.pi - 0.0) * u[k]
    c = math.cos(ph)
    s = math.sin(ph)
    spec[k] = complex(a * c - 0.0 * s, a * s + 0.0 * c)


@njit(cache=True, nogil=True)
def spectrum_u_kernel(f, lf_hz, hf_hz, lf_width_hz, hf_width_hz, lf_hf_ratio, u, spec):
    """:func:`spectrum_kernel` with the phases ``2π u`` formed here (``u`` the
    ``rng.random`` draws ``rhythm.uniform`` scales) and ``cos`` / ``sin`` only on the
    bins of nonzero power (:func:`_spectrum_u_bin`)."""
    for k in range(f.shape[0]):
        d1 = (f[k] - lf_hz) / lf_width_hz
        d2 = (f[k] - hf_hz) / hf_width_hz
        p = lf_hf_ratio * math.exp(-0.5 * (d1 * d1)) / lf_width_hz + math.exp(-0.5 * (d2 * d2)) / hf_width_hz
        _spectrum_u_bin(p, u, k, spec)


EXP_ZERO_BELOW = -750.0  # exp(x) is +0 below this (the smallest subnormal is exp(-744.44))


@njit(cache=True, nogil=True)
def spectrum_u_arg_kernel(f, lf_hz, hf_hz, lf_width_hz, hf_width_hz, out):
    """:func:`spectrum_arg_kernel`'s exponents on the bins ``k < m`` only, ``m`` one past
    the last bin where either exponent is ``>= EXP_ZERO_BELOW`` (beyond it both ``exp``
    are +0, and so is the power): the LF ones in ``out[:m]``, the HF ones in
    ``out[m:2 m]`` (``out`` flat, ``>= 2 f.shape[0]``). Returns ``m``."""
    m = 0
    for k in range(f.shape[0] - 1, -1, -1):
        d1 = (f[k] - lf_hz) / lf_width_hz
        d2 = (f[k] - hf_hz) / hf_width_hz
        if -0.5 * (d1 * d1) >= EXP_ZERO_BELOW or -0.5 * (d2 * d2) >= EXP_ZERO_BELOW:
            m = k + 1
            break
    for k in range(m):
        d1 = (f[k] - lf_hz) / lf_width_hz
        d2 = (f[k] - hf_hz) / hf_width_hz
        out[k] = -0.5 * (d1 * d1)
        out[m + k] = -0.5 * (d2 * d2)
    return m


@njit(cache=True, nogil=True)
def spectrum_u_finish_kernel(e, m, lf_width_hz, hf_width_hz, lf_hf_ratio, u, spec):
    """:func:`spectrum_u_kernel` after its two ``exp`` (computed by NumPy on the
    exponents of :func:`spectrum_u_arg_kernel`: LF ``e[:m]``, HF ``e[m:2 m]``); the bins
    from ``m`` on have zero power (+0)."""
    for k in range(m):
        p = lf_hf_ratio * e[k] / lf_width_hz + e[m + k] / hf_width_hz
        _spectrum_u_bin(p, u, k, spec)
    for k in range(m, spec.shape[0]):
        spec[k] = 0.0


def spectrum_u(f, lf_hz, hf_hz, lf_width_hz, hf_width_hz, lf_hf_ratio, u, form="hybrid"):
    """The random-phase spectrum from the uniform draws ``u`` (phases ``2π u``) in ``form``
    (``"kernel"``: the C library's ``exp``; ``"hybrid"``: NumPy's, in place on the
    exponents of :func:`spectrum_arg_kernel`).

    Most of the rfft grid lies where both spectral peaks have underflowed (power exactly 0:
    81 of 257 bins are nonzero for a 10-s record), and there the ``cos`` / ``sin`` of the
    phase only set the sign of a zero. Those bins are +0 here, so the spectrum equals
    :func:`spectrum_numpy`'s up to the signs of zeros, and its inverse FFT equals that of
    :func:`spectrum_numpy` bit for bit (the hybrid form calls NumPy's ``exp`` only on the
    bins before both exponents fall below ``EXP_ZERO_BELOW``, where it gives +0; the
    check cases cross that edge): IEEE sums, differences and products give a nonzero
    result independent of the sign of a zero operand, and the RR series built from the
    transform (``rr_mean + x scale`` with ``rr_mean > 0``) cannot see the sign of a zero
    sample either. :func:`spectrum_u_matches` checks both on this machine."""
    spec = np.empty(f.shape[0], np.complex128)
    if form == "kernel":
        spectrum_u_kernel(f, lf_hz, hf_hz, lf_width_hz, hf_width_hz, lf_hf_ratio, u, spec)
        return spec
    # NumPy's exp only where it is not +0 (the bins beyond the spectral peaks' reach: most
    # of the grid, and the slow path of NumPy's SIMD exp)
    e = np.empty(2 * f.shape[0])
    m = spectrum_u_arg_kernel(f, lf_hz, hf_hz, lf_width_hz, hf_width_hz, e)
    v = e[:2 * m]
    np.exp(v, out=v)
    spectrum_u_finish_kernel(e, m, lf_width_hz, hf_width_hz, lf_hf_ratio, u, spec)
    return spec


def spectrum_u_cases(rng):
    """:func:`spectrum_cases` with uniform draws in place of the phases (and a few draws
    at the quadrant edges of ``2π u``)."""
    cases = []
    for f, lf, hf, lw, hw, ratio, ph in spectrum_cases(rng):
        u = rng.random(f.shape[0])
        u[:5] = (0.0, 0.25, 0.5, 0.75, np.nextafter(1.0, 0.0))
        cases.append((f, lf, hf, lw, hw, ratio, u))
    # both peaks on the underflow edge of exp (LF and HF exponents -700 ... -760 on the
    # last bins: the hybrid form's cut at EXP_ZERO_BELOW falls among them)
    edge = 0.1 + 0.01 * np.sqrt(2 * np.linspace(700.0, 760.0, 241))
    f = np.concatenate([[0.0], edge])
    cases.append((f, 0.1, 0.1, 0.01, 0.01, 0.5, rng.random(f.shape[0])))
    return cases


def spectrum_u_matches(cases, form) -> bool:
    """Whether :func:`spectrum_u` in ``form`` gives, on ``cases`` (tuples of its
    arguments), :func:`spectrum_numpy`'s spectrum of the phases ``rhythm.uniform`` draws
    from the same ``u`` up to the signs of zeros, and its ``np.fft.irfft`` bit for bit."""
    for f, lf, hf, lw, hw, ratio, u in cases:
        want = spectrum_numpy(f, lf, hf, lw, hw, ratio, 0.0 + (2 * np.pi - 0.0) * u)
        got = spectrum_u(f, lf, hf, lw, hw, ratio, u, form)
        if (got + 0.0).tobytes() != (want + 0.0).tobytes():  # (+ 0.0: -0 to +0)
            return False
        n = 2 * (f.shape[0] - 1)
        if np.fft.irfft(got, n).tobytes() != np.fft.irfft(want, n).tobytes():
            return False
    return True


def _first_matching_form(make_cases, matches):
    """The first of ``"kernel"``, ``"hybrid"`` whose output ``matches(cases, form)`` NumPy's
    bit for bit on ``make_cases(rng)`` (fixed seed), or None if neither does or numba fails
    (the caller then takes its NumPy path)."""
    try:
        cases = make_cases(np.random.default_rng(20261206))
        for form in ("kernel", "hybrid"):
            if matches(cases, form):
                return form
        return None
    except Exception:  # pragma: no cover - a numba failure: the NumPy path it is
        return None


@lru_cache(maxsize=1)
def spectrum_u_form():
    """``"kernel"`` or ``"hybrid"``: the first form for which :func:`spectrum_u_matches`
    holds on :func:`spectrum_u_cases`, checked once per process; None if neither (then
    ``rhythm`` draws the phases and uses :func:`spectrum` or NumPy)."""
    return _first_matching_form(spectrum_u_cases, spectrum_u_matches)


# --- the sinus plan with its draws (synth._plan_sinus) ---------------------------------
@njit(cache=True, nogil=True)
def rfft_freqs_into(n, d, out):
    """``out[:n // 2 + 1] = np.fft.rfftfreq(n, d)`` (NumPy forms ``arange * (1 / (n d))``)."""
    val = 1.0 / (n * d)
    for k in range(n // 2 + 1):
        out[k] = k * val


@njit(cache=True, nogil=True)
def sinus_spectrum_draw_kernel(bg, n, hf_hz, f, u, e):
    """``rhythm._sinus_rr``'s draws and spectrum exponents for an rfft grid of ``n``
    samples at 4 Hz: ``f[:nb] = rfftfreq(n, 0.25)``, ``u[:nb]`` = ``rng.random(nb)`` (``nb =
    n // 2 + 1``, from the bit generator ``bg``, :mod:`._rng_kernels`), and
    :func:`spectrum_u_arg_kernel`'s exponents of the LF (0.1 Hz) and HF (``hf_hz``) peaks
    (widths 0.01 Hz) into ``e``. Returns its ``m``.

    Its search for ``m`` runs down from the top bin; here it starts at a bin ``k1`` past
    both peaks' reach (``|f - peak| = 0.01 sqrt(1500)`` where the exponent is -750) once
    ``k1`` itself is checked below ``EXP_ZERO_BELOW`` with the same expressions: beyond
    both peaks the exponents only fall with ``f`` (IEEE ``-``, ``/``, ``*`` are monotone),
    so every bin above ``k1`` is below too and the search finds the same ``m`` (~170
    bins' divisions fewer for a 10-s record)."""
    nb = n // 2 + 1
    rfft_freqs_into(n, 0.25, f)
    for k in range(nb):
        u[k] = next_double(bg)
    top = nb
    peak = max(0.1, hf_hz)
    k1 = int((peak + 0.4) / f[1]) + 1
    if k1 < nb and f[k1] >= peak:
        d1 = (f[k1] - 0.1) / 0.01
        d2 = (f[k1] - hf_hz) / 0.01
        if not (-0.5 * (d1 * d1) >= EXP_ZERO_BELOW or -0.5 * (d2 * d2) >= EXP_ZERO_BELOW):
            top = k1
    return spectrum_u_arg_kernel(f[:top], 0.1, hf_hz, 0.01, 0.01, e)


@njit(cache=True, nogil=True)
def sinus_draw_kernel(bg, hr_lo, hr_hi, duration, w, cap, sd_lo, sd_hi):
    """``synth._plan``'s first draws of a sinus record and ``rhythm._sinus_rr``'s spectrum
    draws: heart rate (``hr_lo``-``hr_hi``), its SD (0.5-2.5 bpm) and the breathing rate
    (10-20 /min) as ``rhythm.uniform3`` forms them, the schedule's beat count, the RR
    series' rfft length ``n`` and, where ``rhythm._fft_length`` takes it from the binary
    exponent and the work array holds its bins, :func:`sinus_spectrum_draw_kernel` (else
    ``n = 0`` and the caller finds ``n`` and calls it) on ``f, u, e = w[:cap], w[cap:2 cap],
    w[2 cap:4 cap]``. Returns (heart_rate, heart_rate_std, breathing_rate, n_beats, n, m)."""
    f, u, e = w[:cap], w[cap:2 * cap], w[2 * cap:4 * cap]
    u0 = next_double(bg)
    u1 = next_double(bg)
    u2 = next_double(bg)
    heart_rate = hr_lo + (hr_hi - hr_lo) * u0
    heart_rate_std = sd_lo + (sd_hi - sd_lo) * u1
    breathing_rate = 10.0 + (20.0 - 10.0) * u2
    pad = 1.5
    n_beats = math.ceil((duration + 2 * pad + 2) * heart_rate / 60.0 * 1.6) + 6
    dur4 = ((n_beats + 4) * 60.0 / heart_rate * 1.5 + 16) * 4.0
    n = 0
    m = 0
    if dur4 > 64.0:
        x, ex = math.frexp(dur4)
        nb = (1 << ex) // 2 + 1
        if 0.500001 < x < 0.999999 and nb <= f.shape[0] and nb <= u.shape[0] and 2 * nb <= e.shape[0]:
            n = 1 << ex
            m = sinus_spectrum_draw_kernel(bg, n, breathing_rate / 60.0, f, u, e)
    return heart_rate, heart_rate_std, breathing_rate, n_beats, n, m


@njit(cache=True, nogil=True)
def sinus_spectrum_kernel(w, cap, m, exp_here, lf_hf_ratio, spec):
    """``rhythm.spectrum_u``'s spectrum from :func:`sinus_spectrum_draw_kernel`'s draws
    ``u = w[cap:2 cap]`` and exponents ``e = w[2 cap:4 cap]`` (``exp`` taken here with the
    C library's when ``exp_here``, as :func:`spectrum_u_kernel` takes them, else already
    NumPy's) into ``spec`` (``n // 2 + 1`` bins)."""
    u, e = w[cap:2 * cap], w[2 * cap:4 * cap]
    if exp_here:
        for k in range(2 * m):
            e[k] = math.exp(e[k])
    spectrum_u_finish_kernel(e, m, 0.01, 0.01, lf_hf_ratio, u, spec)


#: ``np.dot(x, x)`` forms of :func:`_dot_self`, by the OpenBLAS ``ddot`` kernel they reproduce
#: (0: neither, the NumPy code runs): AVX-512 CPUs, and AVX2 ones (OpenBLAS's Haswell and Zen targets).
DOT_AVX512, DOT_HASWELL = 1, 2


@njit(cache=True, nogil=True)
def _dot_self(x, form):
    """``np.dot(x, x)`` as this machine's OpenBLAS computes it; used only where
    :func:`series_forms_match` confirmed ``form``:

    * :data:`DOT_AVX512` (for ``len(x)`` a multiple of 32): the AVX-512 ``ddot`` kernel, four
      8-lane FMA accumulators over blocks of 32, folded to 4 lanes, summed ``((a0 + a1) + a2) +
      a3``, then lanes ``(l0 + l2) + (l1 + l3)``;
    * :data:`DOT_HASWELL`: the AVX2 ``ddot`` kernel (``ddot_microk_haswell-2.c``), four 4-lane FMA
      accumulators over blocks of 16, each folded high half onto low half, ``(a0 + a1) + (a2 +
      a3)``, the two lanes added, then the tail ``dot += x[i] * x[i]`` (``ddot.c``)."""
    n = x.shape[0]
    if form == DOT_HASWELL:
        acc = np.zeros(16)
        n1 = n - n % 16
        for i in range(0, n1, 16):
            for k in range(16):
                v = x[i + k]
                acc[k] = _fma(v, v, acc[k])
        lanes = np.empty(2)
        for lane in range(2):
            h0 = acc[lane] + acc[2 + lane]
            h1 = acc[4 + lane] + acc[6 + lane]
            h2 = acc[8 + lane] + acc[10 + lane]
            h3 = acc[12 + lane] + acc[14 + lane]
            lanes[lane] = (h0 + h1) + (h2 + h3)
        d = lanes[0] + lanes[1]
        for i in range(n1, n):
            d += x[i] * x[i]
        return d
    acc = np.zeros(32)
    for i in range(0, n - n % 32, 32):
        for k in range(32):
            v = x[i + k]
            acc[k] = _fma(v, v, acc[k])
    s = np.empty(4)
    for lane in range(4):
        f0 = acc[lane] + acc[lane + 4]
        f1 = acc[8 + lane] + acc[12 + lane]
        f2 = acc[16 + lane] + acc[20 + lane]
        f3 = acc[24 + lane] + acc[28 + lane]
        s[lane] = ((f0 + f1) + f2) + f3
    return (s[0] + s[2]) + (s[1] + s[3])


@njit(cache=True, nogil=True)
def series_scale_kernel(x, rr_std, form):
    """``rhythm._sinus_rr``'s ``x -= np.add.reduce(x) / n`` (in place) and ``rr_std / sd``,
    ``sd = sqrt(np.dot(x, x) / n)`` (0.0 if ``sd == 0``), in :func:`~cardiosim._pairwise_kernels.pairwise_sum_flat` /
    :func:`_dot_self`'s ``form`` (:data:`DOT_AVX512` or :data:`DOT_HASWELL`)."""
    n = x.shape[0]
    mean = (0.0 + pairwise_sum_flat(x, 0, n)) / n
    for i in range(n):
        x[i] = x[i] - mean
    sd = math.sqrt(_dot_self(x, form) / n)
    return rr_std / sd if sd > 0 else 0.0


def series_scale_numpy(x, rr_std):
    """The NumPy code of :func:`series_scale_kernel` (``rhythm._sinus_rr``'s)."""
    n = x.shape[0]
    x -= np.add.reduce(x) / n
    sd = math.sqrt(float(np.dot(x, x)) / n)
    return rr_std / sd if sd > 0 else 0.0


@njit(cache=True, nogil=True)
def sin_kernel(x, out):
    """``out[:] = sin(x)`` with the C library's ``sin`` (``np.sin`` where
    :func:`series_forms_match` found them equal)."""
    for i in range(x.shape[0]):
        out[i] = math.sin(x[i])


SERIES_LENGTHS = (64, 128, 256, 512, 1024, 2048, 4096)  # rfft lengths the kernel forms serve


@lru_cache(maxsize=1)
def series_forms_match() -> int:
    """The form of :func:`_dot_self` (:data:`DOT_AVX512` or :data:`DOT_HASWELL`) with which
    :func:`series_scale_kernel` gives :func:`series_scale_numpy`'s series and scale bit for bit
    on McSharry-like series of every length in ``SERIES_LENGTHS``, where ``np.sin`` is also the C
    library's ``sin`` on phases of the respiratory range and beyond; 0 (the NumPy code runs)
    where neither form does or the sines differ. Checked once per process."""
    try:
        ph = None
        for form in (DOT_AVX512, DOT_HASWELL):
            rng = np.random.default_rng(20261206)
            ok = True
            for n in SERIES_LENGTHS:
                for k in range(12):
                    x = rng.standard_normal(n) * 10.0 ** rng.uniform(-4, 2) + rng.uniform(-1e-3, 1e-3)
                    a, b = x.copy(), x.copy()
                    if series_scale_kernel(a, 0.05, form) != series_scale_numpy(b, 0.05) or a.tobytes() != b.tobytes():
                        ok = False
                        break
                if not ok:
                    break
            if not ok:
                continue
            ph = np.concatenate([rng.uniform(-10.0, 80.0, 20_000), rng.uniform(-1e4, 1e4, 2_000),
                                 np.arange(-8, 40) * (math.pi / 2)])
            got = np.empty_like(ph)
            sin_kernel(ph, got)
            return form if got.tobytes() == np.sin(ph).tobytes() else 0
        return 0
    except Exception:  # pragma: no cover - a numba failure: the NumPy code it is
        return 0


@njit(cache=True, nogil=True)
def sinus_schedule_kernel(bg, x, scale, rr_mean, duration, breathing_rate, codes, z, fb, series_here, rr_std, fs,
                          n):
    """The rest of a sinus record's plan, draws included, as ``synth._plan`` makes it:
    ``rr`` = :func:`tachogram_kernel` of the McSharry series ``x`` (stop, status 1, if its
    shortest RR is <= 0.2 s), the start, respiratory phase and depth (``uniform3``), the R
    times (:func:`times_kernel`, status 2 if they end inside the window), the normal beat
    types in ``codes``, ``z[:nb]`` = ``rng.standard_normal((nb, NW))`` and
    :func:`beat_inputs_kernel`'s two rows in ``rows[:nb]``, ``rows[nb:2 nb]`` (``rows``
    flat, as the (2, nb) array it replaces). One float buffer ``fb`` (``5 N + 1``, ``N``
    the schedule's beats) holds ``rows`` (``fb[:2 N]``, at its start as the array it
    replaces), ``r_times`` (``fb[2 N:3 N + 1]``), ``rr`` and ``resp``
    (``fb[4 N + 1:5 N + 1]``). With ``series_here`` (the form :func:`series_forms_match` found, not 0): ``x``
    not yet centred (:func:`series_scale_kernel` with ``rr_std`` gives ``scale``) and
    ``resp[:nb] = sin(rows[nb:2 nb])``. Returns (status, nb, n_in_window, resp_phase,
    resp_depth, m), ``m`` the beats of a record of ``n`` samples at ``fs`` that
    :func:`annotations_kernel` keeps."""
    nbs = codes.shape[0]
    rows, r_times = fb[:2 * nbs], fb[2 * nbs:3 * nbs + 1]
    rr, resp = fb[3 * nbs + 1:4 * nbs + 1], fb[4 * nbs + 1:5 * nbs + 1]
    if series_here:
        scale = series_scale_kernel(x, rr_std, series_here)
    if tachogram_kernel(x, scale, rr_mean, 4.0, rr) <= 0.2:
        return 1, 0, 0, 0.0, 0.0, 0
    pad = 1.5
    u_start = 0.0 + (1.0 - 0.0) * next_double(bg)
    resp_phase = 0.0 + (2 * math.pi - 0.0) * next_double(bg)
    resp_depth = 0.02 + (0.08 - 0.02) * next_double(bg)
    start = -pad - u_start * rr[0]
    keep = times_kernel(rr, start, duration + pad, r_times)
    # (as r_times[:keep + 1][-1] and types[:keep] of the arrays it replaces)
    if r_times[min(keep, r_times.shape[0] - 1)] <= duration + pad:
        return 2, 0, 0, resp_phase, resp_depth, 0
    nb = min(keep, codes.shape[0])
    for b in range(codes.shape[0]):
        codes[b] = CODE_N
    nw = z.shape[1]
    for b in range(nb):
        for i in range(nw):
            z[b, i] = standard_normal(bg)
    inside = beat_inputs_kernel(r_times, nb, 2 * math.pi * breathing_rate / 60.0, resp_phase, duration,
                                rows[:2 * nb].reshape(2, nb))
    if series_here:
        sin_kernel(rows[nb:2 * nb], resp)
    m = 0
    for b in range(nb):
        r = r_times[b]
        if r >= 0 and np.rint(r * fs) < n:
            m += 1
    return 0, nb, inside, resp_phase, resp_depth, m


# --- NumPy twins (the oracle) --------------------------------------------------------
def times_numpy(rr, start, duration_pad):
    r_times = start + np.concatenate([[0.0], np.cumsum(rr)])
    return r_times, int(np.searchsorted(r_times, duration_pad) + 1)


def tachogram_numpy(x, scale, rr_mean, fs_rr, n_beats):
    """``rr_mean + x * scale`` walked by ``_reference.tachogram_walk_kernel``."""
    from ._reference import tachogram_walk_kernel

    out = np.empty(int(n_beats))
    tachogram_walk_kernel(rr_mean + x * scale, fs_rr, out)
    return out


def ectopic_numpy(u, p_nn, code, coupling, reset, rr):
    """``rhythm.beat_schedule``'s PVC/PAC loops (before ``force_range``): types "<U1" and
    the coupled RR (a copy)."""
    code = chr(code)
    n = u.shape[0]
    types = np.full(n, "N", dtype="<U1")
    prev = "N"
    for k in range(2, n):
        if prev == "N" and types[k - 1] == "N" and u[k] > p_nn:
            types[k] = code
        prev = types[k]
    rr = rr.copy()
    j = 0
    for k in np.flatnonzero(types == code):
        if k + 1 >= n or k < 1:
            continue
        base = rr[k - 1]
        rr[k - 1] = coupling * base
        if code == "V":
            rr[k] = (2.0 - coupling) * base
        else:
            rr[k] = base * reset[j]
            j += 1
    return types, rr


def beat_inputs_numpy(r_times, nb, omega, phase, duration):
    """``synth._plan``'s NumPy code of :func:`beat_inputs_kernel` (before it): (rows, inside)."""
    r = r_times[:nb]
    inside = int(np.count_nonzero((r >= 0) & (r < duration)))
    return np.stack([r_times[1:nb + 1] - r, omega * r + phase]), inside


def beat_table_numpy(r_times, f_repol, resp, resp_depth, z, beat_jitter, codes, tau_n, sig_n, amp_n, tau_e,
                     sig_e, amp_e, repol, fid_n, fid_e, duration):
    """``synth._plan``'s NumPy code of the per-beat tables (before this module)."""
    nb = f_repol.shape[0]
    mod = 1.0 + resp_depth * resp
    normal = codes == CODE_N
    nw = tau_n.shape[1]
    jitter = 1.0 + beat_jitter * z.reshape(nb, 1, nw)
    is_n = normal[:, None, None]
    tau0 = np.where(is_n, tau_n, tau_e)
    sig0 = np.where(is_n, sig_n, sig_e)
    amp0 = np.where(is_n, amp_n, amp_e)
    f = np.ones((nb, 1, nw))
    f[:, :, np.flatnonzero(repol)] = f_repol[:, None, None]
    q_n = fid_n[2] if np.isfinite(fid_n[2]) else 0.0
    q_e = fid_e[2] if np.isfinite(fid_e[2]) else 0.0
    q = np.where(normal, q_n, q_e)  # the pivot of the ST/T scaling, the QRS onset
    tau = tau0 * f + q[:, None, None] * (1.0 - f)
    a = amp0 * jitter * mod[:, None, None]
    flat = np.flatnonzero(np.abs(amp0) > 1e-9)
    centres = (r_times[:nb, None, None] + tau).ravel()[flat]
    widths = (sig0 * f).ravel()[flat]
    chans = (flat // nw) % 3
    fid = np.where(normal[:, None], fid_n, fid_e)
    scale_t = np.where(np.arange(fid_n.shape[0]) >= 5, f_repol[:, None], 1.0)
    fid = r_times[:nb, None] + (fid * scale_t + q[:, None] * (1.0 - scale_t))
    inside = int(np.count_nonzero((r_times[:nb] >= 0) & (r_times[:nb] < duration)))
    ok = bool(np.all(np.isfinite(centres)) and np.all(np.isfinite(a.ravel()[flat]))
              and np.all(np.isfinite(widths)) and (widths.size == 0 or widths.min() > 0))
    return centres, widths, a.ravel()[flat], chans, fid, inside, ok


def annotations_numpy(r_times, nb, fid, fs, n):
    r = r_times[:nb]
    idx = np.flatnonzero((r >= 0) & (np.round(r * fs) < n))
    with np.errstate(invalid="ignore"):
        s = np.round(fid[idx].T * fs)
    s[~((s >= 0) & (s < n))] = -1
    return idx, s.astype(np.int64), r_times[idx + 1] - r_times[idx]


def flutter_numpy(vcg, fs, f0, ph, a0, d):
    """``vcg + synth._atrial_signal``'s flutter term (scipy's ``sawtooth``)."""
    from scipy.signal import sawtooth

    t = np.arange(vcg.shape[1]) / fs
    s = -a0 * sawtooth(2 * np.pi * f0 * t + ph, width=0.7)
    return vcg + d[:, None] * s[None, :]


def spectrum_numpy(f, lf_hz, hf_hz, lf_width_hz, hf_width_hz, lf_hf_ratio, phases):
    """``rhythm``'s NumPy code: ``_spectrum_amplitude`` times ``exp(1j * phases)``."""
    power = (lf_hf_ratio * np.exp(-0.5 * ((f - lf_hz) / lf_width_hz) ** 2) / lf_width_hz
             + np.exp(-0.5 * ((f - hf_hz) / hf_width_hz) ** 2) / hf_width_hz)
    amp = np.sqrt(power)
    amp[0] = 0.0
    return amp * np.exp(1j * phases)


def spectrum_cases(rng):
    """Check cases of :func:`spectrum_kernel`: the record lengths and breathing rates
    ``rhythm.rr_tachogram`` uses, random phases (uniform over [0, 2π)) and a few edge
    phases."""
    cases = []
    for n in (64, 128, 256, 512, 1024):
        f = np.fft.rfftfreq(n, 0.25)
        for hf in (10.0 / 60.0, 0.25, 20.0 / 60.0, rng.uniform(0.15, 0.35)):
            ph = rng.uniform(0.0, 2 * np.pi, f.shape[0])
            ph[:4] = (0.0, np.pi / 2, np.pi, 1.5 * np.pi)
            cases.append((f, 0.1, hf, 0.01, 0.01, float(rng.uniform(0.3, 1.0)), ph))
    # frequencies around the underflow edge of exp (-745.13 ... -750: subnormal to +0)
    edge = 0.1 + 0.01 * np.sqrt(2 * np.linspace(700.0, 760.0, 241))
    cases.append((np.concatenate([[0.0], edge]), 0.1, 0.25, 0.01, 0.01, 0.5,
                  rng.uniform(0.0, 2 * np.pi, edge.shape[0] + 1)))
    return cases


def spectrum_matches(cases, form="kernel") -> bool:
    """Whether :func:`spectrum_kernel` (``form="kernel"``) or :func:`spectrum_hybrid`
    (``"hybrid"``) gives :func:`spectrum_numpy`'s spectra bit for bit
    (signed zeros included) on ``cases`` (tuples of its arguments without ``spec``)."""
    for case in cases:
        want = spectrum_numpy(*case)
        if form == "hybrid":
            got = spectrum_hybrid(*case)
        else:
            got = np.empty(case[0].shape[0], np.complex128)
            spectrum_kernel(*case, got)
        if got.tobytes() != want.tobytes():
            return False
    return True


def fast_spectrum() -> bool:
    """Whether a kernel form of the spectrum gives NumPy's bit for bit here (:func:`spectrum_form`)."""
    return spectrum_form() is not None


@lru_cache(maxsize=1)
def spectrum_form():
    """``"kernel"`` or ``"hybrid"``: the first form for which :func:`spectrum_matches` holds
    on :func:`spectrum_cases`, checked once per process (≈ 1 ms after compilation); None if
    neither (then the NumPy code runs)."""
    return _first_matching_form(spectrum_cases, spectrum_matches)


# --- NumPy's own ufunc loops, called from kernels --------------------------------------
# np.exp of the spectrum's exponents and RR^(1/3) are NumPy's SIMD loops (not the C
# library's functions) on this kind of machine, so the kernels cannot compute them; a
# ufunc call costs ~0.6 µs of dispatch for a few dozen numbers. The loops themselves are
# plain C functions ``loop(char **args, npy_intp *dims, npy_intp *steps, void *data)`` in
# the ufunc's table (``PyUFuncObject.functions`` / ``.data``, the variant NumPy's CPU
# dispatch chose at import): called here with the arguments NumPy's iterator passes for
# 1-D contiguous operands (a scalar operand with step 0), the same function on the same
# numbers, so the same bits. Used only where :func:`ufunc_loops` read the table and the
# calls reproduced the ufuncs bit for bit (once per process). ``_ufunc_loop`` (the call) and
# ``_ufunc_table_loop`` (the table's read) live in ``cardiosim._exp_kernels`` (the motion and
# noise stages call NumPy's exp and log10 loops the same way).
@intrinsic
def _gufunc_loop(typingctx, fn, data, a0, a1, a2, m, n):
    """Call the gufunc loop at address ``fn`` (signature ``(m),()->(n)``, as NumPy's
    ``irfft``) once (outer count 1) on contiguous operands at addresses ``a0`` (complex128,
    ``m``), ``a1`` (a double) and ``a2`` (float64, ``n``): dimensions ``(1, m, n)``, steps
    ``(0, 0, 0, 16, 8)``."""
    if not all(isinstance(v, types.Integer) for v in (fn, data, a0, a1, a2, m, n)):
        return None
    sig = types.void(fn, data, a0, a1, a2, m, n)

    def codegen(context, builder, signature, args):
        vp = ir.IntType(8).as_pointer()
        i64 = ir.IntType(64)
        fn_v, data_v, p0, p1, p2, m_v, n_v = args
        ptrs = cgutils.alloca_once(builder, vp, size=3)
        steps = cgutils.alloca_once(builder, i64, size=5)
        dims = cgutils.alloca_once(builder, i64, size=3)
        for k, p in enumerate((p0, p1, p2)):
            builder.store(builder.inttoptr(p, vp), builder.gep(ptrs, [ir.Constant(i64, k)]))
        for k, st in enumerate((0, 0, 0, 16, 8)):
            builder.store(ir.Constant(i64, st), builder.gep(steps, [ir.Constant(i64, k)]))
        for k, d in enumerate((ir.Constant(i64, 1), m_v, n_v)):
            builder.store(builder.sext(d, i64) if d.type.width < 64 else d, builder.gep(dims, [ir.Constant(i64, k)]))
        fnty = ir.FunctionType(ir.VoidType(), (vp.as_pointer(), i64.as_pointer(), i64.as_pointer(), vp))
        builder.call(builder.inttoptr(fn_v, fnty.as_pointer()), (ptrs, dims, steps, builder.inttoptr(data_v, vp)))
        return context.get_dummy_value()

    return sig, codegen


@njit(nogil=True, inline="always")
def irfft_loop_into(loops, spec, fct, x):
    """``irfft(spec, fct[0], out=x)`` (NumPy's ``_pocketfft_umath.irfft`` for 1-D
    contiguous operands: ``np.fft.irfft(spec, n)`` with ``fct = 1 / n``) by its loop."""
    _gufunc_loop(loops[4], loops[5], spec.ctypes.data, fct.ctypes.data, x.ctypes.data, spec.shape[0], x.shape[0])


@njit(cache=True, nogil=True)
def irfft_loop_kernel(loops, spec, fct, x):
    """:func:`irfft_loop_into` (the check's entry)."""
    irfft_loop_into(loops, spec, fct, x)


@njit(nogil=True, inline="always")
def exp_loop_inplace(loops, v, m):
    """``np.exp(v[:m], out=v[:m])`` by NumPy's loop (``loops`` from :func:`ufunc_loops`)."""
    if m > 0:
        _ufunc_loop(loops[0], loops[1], v.ctypes.data, v.ctypes.data, 0, m, 8, 8, 0)


@njit(nogil=True, inline="always")
def cbrt_loop_inplace(loops, x, third):
    """``x[:] = x ** (1.0 / 3.0)`` (NumPy's power loop; ``third``: a 1-element array
    holding ``1.0 / 3.0``; ``x`` contiguous)."""
    if x.shape[0] > 0:
        _ufunc_loop(loops[2], loops[3], x.ctypes.data, third.ctypes.data, x.ctypes.data, x.shape[0], 8, 0, 8)


@njit(cache=True, nogil=True)
def exp_loop_kernel(loops, v):
    """``np.exp(v, out=v)`` (1-D contiguous) by NumPy's loop (the check's entry)."""
    exp_loop_inplace(loops, v, v.shape[0])


@njit(cache=True, nogil=True)
def cbrt_loop_kernel(loops, x, third):
    """``x ** (1.0 / 3.0)`` into ``x`` (1-D contiguous) by NumPy's loop (the check's entry)."""
    cbrt_loop_inplace(loops, x, third)


THIRD = np.array([1.0 / 3.0])  # the exponent of RR^(1/3), as NumPy receives the Python float
THIRD.flags.writeable = False


@lru_cache(maxsize=1)
def ufunc_loops():
    """``uint64[6]``: NumPy's ``exp`` (``d->d``), ``power`` (``dd->d``) and irfft
    (``_pocketfft_umath.irfft``, ``Dd->d``) loops and their data (function, data, ...), if
    read from the ufuncs' tables and they gave ``np.exp``, ``x ** (1.0 / 3.0)`` and
    ``np.fft.irfft`` bit for bit here (the planner's ranges and far beyond, lengths 1-300:
    every SIMD tail; the series' rfft lengths and others), once per process; else None."""
    try:
        from numpy.fft import _pocketfft_umath as pfu

        e = _ufunc_table_loop(np.exp, "d->d")
        p = _ufunc_table_loop(np.power, "dd->d")
        f = _ufunc_table_loop(pfu.irfft, "Dd->d")
        if e is None or p is None or f is None or pfu.irfft.signature != "(m),()->(n)":
            return None
        loops = np.array([e[0], e[1], p[0], p[1], f[0], f[1]], np.uint64)
        loops.flags.writeable = False
        rng = np.random.default_rng(20261206)
        xe = np.concatenate([rng.uniform(-760.0, 0.0, 50_000), rng.uniform(-800.0, 710.0, 20_000),
                             np.array([0.0, -0.0, -745.13, -745.14, -750.0, 709.78, 710.0, np.inf, -np.inf,
                                       np.nan])])
        xp = np.concatenate([rng.uniform(0.2, 3.5, 50_000), rng.uniform(0.0, 1e3, 10_000),
                             np.array([0.0, 1.0, 0.125, 8.0, 27.0, 1e-300, 5e-324, np.inf, np.nan])])
        with np.errstate(all="ignore"):
            for x, loop, want in ((xe, exp_loop_kernel, np.exp(xe)), (xp, cbrt_loop_kernel, xp ** (1.0 / 3.0))):
                got = x.copy()
                if loop is exp_loop_kernel:
                    loop(loops, got)
                else:
                    loop(loops, got, THIRD)
                if got.tobytes() != want.tobytes():
                    return None
                for n in range(1, 300):
                    a = x[n:2 * n].copy()
                    if loop is exp_loop_kernel:
                        loop(loops, a)
                        ok = a.tobytes() == np.exp(x[n:2 * n]).tobytes()
                    else:
                        loop(loops, a, THIRD)
                        ok = a.tobytes() == (x[n:2 * n] ** (1.0 / 3.0)).tobytes()
                    if not ok:
                        return None
        for n in SERIES_LENGTHS + (8, 96, 100, 480, 1000, 8192):
            for k in range(3):
                spec = rng.standard_normal(n // 2 + 1) * 10.0 ** rng.uniform(-3, 3) + 1j * rng.standard_normal(n // 2 + 1)
                spec[rng.random(n // 2 + 1) < 0.5] = 0.0
                fct = np.array([np.reciprocal(n, dtype=np.float64)])
                got = np.empty(n)
                irfft_loop_kernel(loops, spec, fct, got)
                if got.tobytes() != np.fft.irfft(spec, n).tobytes():
                    return None
        return loops
    except Exception:  # pragma: no cover - another NumPy layout, or numba: NumPy's calls it is
        return None


@njit(cache=True, nogil=True)
def sinus_spectrum_loop_kernel(w, cap, m, loops, lf_hf_ratio, spec):
    """:func:`sinus_spectrum_kernel` with NumPy's ``exp`` (its loop, :func:`ufunc_loops`)
    taken here on the exponents ``w[2 cap:2 cap + 2 m]``, in place as ``np.exp(v, v)``."""
    u, e = w[cap:2 * cap], w[2 * cap:4 * cap]
    exp_loop_inplace(loops, e, 2 * m)
    spectrum_u_finish_kernel(e, m, 0.01, 0.01, lf_hf_ratio, u, spec)


@njit(cache=True, nogil=True)
def sinus_schedule_cbrt_kernel(bg, x, scale, rr_mean, duration, breathing_rate, codes, z, fb, series_here, rr_std,
                               fs, n, loops, third):
    """:func:`sinus_schedule_kernel`, then (status 0) ``fb[:nb] = fb[:nb] ** (1.0 / 3.0)``
    by NumPy's power loop (:func:`ufunc_loops`; ``third``: :data:`THIRD`): the RRs to the
    next beat become the ST-T scale factors ``RR^(1/3)`` in place."""
    res = sinus_schedule_kernel(bg, x, scale, rr_mean, duration, breathing_rate, codes, z, fb, series_here, rr_std,
                                fs, n)
    if res[0] == 0:
        cbrt_loop_inplace(loops, fb[:res[1]], third)
    return res


@njit(cache=True, nogil=True)
def sinus_series_loop_kernel(w, cap, m, loops, lf_hf_ratio, spec, fct, x):
    """:func:`sinus_spectrum_loop_kernel`, then the series ``x = np.fft.irfft(spec, n)``
    (``fct = [1 / n]``, as NumPy forms it) by NumPy's irfft loop."""
    sinus_spectrum_loop_kernel(w, cap, m, loops, lf_hf_ratio, spec)
    irfft_loop_into(loops, spec, fct, x)


# --- AF's truncated-gamma scale ------------------------------------------------------------
@njit(cache=True)
def truncated_gamma_scale_kernel(shape, mean, floor, loop, buf):
    """``rhythm._truncated_gamma_scale(shape, mean, floor)`` (its NumPy twin) in one call: the
    60 bisection steps, each ``gammaincc([k, k + 1], floor / mid)`` by scipy's own ufunc loop
    (``loop``: its function and data, :func:`gammaincc_loop`) on the same numbers, then the
    same arithmetic in the same order (the twin's 60 ufunc calls and Python floats cost
    ~90 µs of an AF record's plan). ``buf``: float64 (5,) work space -- ``k, k + 1``, the
    argument, the two results. Not ``nogil``: scipy's loop may report a special-function
    error through Python."""
    hi = mean / shape
    if floor >= mean:
        return hi
    lo = 1e-9
    buf[0] = shape
    buf[1] = shape + 1.0
    a = buf.ctypes.data
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        buf[2] = floor / mid
        # (the two values as NumPy's iterator hands them to the loop: k contiguous, the
        # argument broadcast (step 0), the results contiguous)
        _ufunc_loop(loop[0], loop[1], a, a + 16, a + 24, 2, 8, 0, 8)
        q = buf[3]
        q1 = buf[4]
        m = shape * mid * q1 / q if q > 0 else floor
        if m > mean:
            hi = mid
        else:
            lo = mid
    return 0.5 * (lo + hi)


@lru_cache(maxsize=1)
def gammaincc_loop():
    """``uint64[2]``: scipy's ``gammaincc`` ``dd->d`` ufunc loop and its data, if read from
    the ufunc's table and :func:`truncated_gamma_scale_kernel` with it gave
    ``rhythm._truncated_gamma_scale`` bit for bit here (AF's shapes, mean RRs and floors and
    beyond, the untruncated case too), once per process; else None."""
    try:
        from scipy.special import gammaincc

        from .rhythm import _truncated_gamma_scale

        loop = ufunc_loop_array(gammaincc, "dd->d")
        if loop is None:
            return None
        rng = np.random.default_rng(20261208)
        buf = np.empty(5)
        cases = [(1.0 / cv ** 2, 60.0 / hr, floor) for cv, hr, floor in
                 zip(rng.uniform(0.03, 0.8, 400), rng.uniform(30.0, 220.0, 400), rng.uniform(0.2, 1.2, 400))]
        cases += [(11.1, 0.8, 0.25), (44.4, 0.5, 0.5), (25.0, 0.3, 0.31), (2.0, 1.5, 0.2), (400.0, 1.0, 0.99)]
        with np.errstate(all="ignore"):
            for shape, mean, floor in cases:
                got = truncated_gamma_scale_kernel(float(shape), float(mean), float(floor), loop, buf)
                if np.float64(got).tobytes() != np.float64(_truncated_gamma_scale(shape, mean, floor)).tobytes():
                    return None
        return loop
    except Exception:  # pragma: no cover - another scipy or NumPy layout, or numba: scipy's calls it is
        return None
