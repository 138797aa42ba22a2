"""Plain NumPy twins of the kernels in ``_kernels.py`` (same names, same arguments).

Written independently of the loops (vectorised where the kernel loops) and used as the
test oracle; also the fallback to read when checking what a kernel computes.
"""

from __future__ import annotations

import numpy as np

TWO_PI = 2.0 * np.pi


def phase_kernel(r_times, t0, fs, out):
    t = t0 + np.arange(out.shape[0]) / fs
    k = np.clip(np.searchsorted(r_times, t, side="right") - 1, 0, len(r_times) - 2)
    out[:] = TWO_PI * (k + (t - r_times[k]) / (r_times[k + 1] - r_times[k]))


def gaussian_sum_kernel(phase, centres, widths, amps, chans, cutoff, out):
    for c, b, a, ch in zip(centres, widths, amps, chans):
        lo, hi = np.searchsorted(phase, [c - cutoff * b, c + cutoff * b], side="left")
        out[ch, lo:hi] += a * np.exp(-0.5 * ((phase[lo:hi] - c) / b) ** 2)


def gaussian_sum_parallel_kernel(phase, centres, widths, amps, chans, cutoff, out):
    gaussian_sum_kernel(phase, centres, widths, amps, chans, cutoff, out)


def batch_dipole_kernel(r_times, r_offsets, t0, fs, centres, widths, amps, chans, g_offsets, cutoff,
                        phase, out):
    for i in range(out.shape[0]):
        phase_kernel(r_times[r_offsets[i]:r_offsets[i + 1]], t0, fs, phase[i])
        sl = slice(g_offsets[i], g_offsets[i + 1])
        gaussian_sum_kernel(phase[i], centres[sl], widths[sl], amps[sl], chans[sl], cutoff, out[i])


def add_gaussian(row, al, c, sig, start, delta, cutoff):
    i = np.arange(row.shape[0])
    t = start + i * delta
    sel = np.abs(t - c) <= cutoff * sig
    row[sel] += al * np.exp(-0.5 * ((t[sel] - c) / sig) ** 2)


def gaussian_time_kernel(t0, fs, centres, widths, amps, chans, cutoff, out):
    t = t0 + np.arange(out.shape[1]) / fs
    for c, w, a, ch in zip(centres, widths, amps, chans):
        sel = np.abs(t - c) <= cutoff * w
        out[ch, sel] += a * np.exp(-0.5 * ((t[sel] - c) / w) ** 2)


def gaussian_time_parallel_kernel(t0, fs, centres, widths, amps, chans, cutoff, n_chunks, out):
    gaussian_time_kernel(t0, fs, centres, widths, amps, chans, cutoff, out)


def gaussian_time_batch_kernel(t0, fs, centres, widths, amps, chans, g_offsets, cutoff, out):
    for i in range(out.shape[0]):
        sl = slice(g_offsets[i], g_offsets[i + 1])
        gaussian_time_kernel(t0, fs, centres[sl], widths[sl], amps[sl], chans[sl], cutoff, out[i])


def _deriv(t, s, w, ti, ai, bi, z0_amp, z0_freq):
    x, y, z = s
    a0 = 1.0 - np.hypot(x, y)
    d = np.arctan2(y, x) - ti
    d = d - np.round(d / TWO_PI) * TWO_PI
    dz = -np.sum(ai * d * np.exp(-0.5 * (d / bi) ** 2)) - (z - z0_amp * np.sin(TWO_PI * z0_freq * t))
    return np.array([a0 * x - w * y, a0 * y + w * x, dz])


def ecgsyn_kernel(omega, fs_int, ti, ai, bi, x0, z0_amp, z0_freq, fs_out, out):
    h = 1.0 / fs_int
    s = np.array(x0, dtype=float)
    zs = np.empty(omega.shape[0] + 1)
    zs[0] = s[2]
    for n, w in enumerate(omega):
        t = n * h
        k1 = _deriv(t, s, w, ti, ai, bi, z0_amp, z0_freq)
        k2 = _deriv(t + h / 2, s + h / 2 * k1, w, ti, ai, bi, z0_amp, z0_freq)
        k3 = _deriv(t + h / 2, s + h / 2 * k2, w, ti, ai, bi, z0_amp, z0_freq)
        k4 = _deriv(t + h, s + h * k3, w, ti, ai, bi, z0_amp, z0_freq)
        s = s + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        zs[n + 1] = s[2]
    t_int = np.arange(zs.shape[0]) * h
    out[:] = np.interp(np.arange(out.shape[0]) / fs_out, t_int, zs)


def tachogram_walk_kernel(rr_t, fs_rr, out):
    grid = np.arange(rr_t.shape[0]) / fs_rr
    t = 0.0
    for k in range(out.shape[0]):
        out[k] = np.interp(t, grid, rr_t)
        t += out[k]


def screen_kernel(tau, sigma, amp, lims, fs, first_only, out):
    # the normal-beat screen written with Patient's own delineation methods
    from .model import P_WAVES, QRS_WAVES, REPOL, Patient

    out[:, :3] = np.nan
    out[:, 3] = -1.0
    first = -1
    for b in range(tau.shape[0]):
        p = Patient(tau[b], sigma[b], amp[b])
        out[b, 3] = 1.0
        q0, q1 = p.span(QRS_WAVES, fs=fs)
        out[b, 0] = q1 - q0
        if not lims[0] <= q1 - q0 <= lims[1]:
            continue
        out[b, 3] = 2.0
        p0, p1 = p.span(P_WAVES, fs=fs)
        out[b, 1] = q0 - p0
        if not (lims[2] <= q0 - p0 <= lims[3] and p1 < q0):
            continue
        out[b, 3] = 3.0
        out[b, 2] = p.t_end(fs=fs) - q0
        if not lims[4] <= out[b, 2] <= lims[5]:
            continue
        out[b, 3] = 4.0
        vq = lims[6] * p.max_velocity(QRS_WAVES, fs=fs)
        if not (p.max_velocity(P_WAVES, fs=fs) < vq and p.max_velocity(REPOL, fs=fs) < vq):
            continue
        m = np.linalg.norm(p.track(REPOL, fs=fs)[1], axis=0)
        after = m[int(np.argmax(m)):]
        if np.max(after - np.minimum.accumulate(after)) > lims[13] * m.max():
            out[b, 3] = 9.0
            continue
        rc = _robust(p, lims, fs, q0)
        if rc:
            out[b, 3] = 4.0 + rc
            continue
        out[b, 3] = 0.0
        if first < 0:
            first = b
            if first_only:
                return b
    return first



def _robust(p, lims, fs, q0):
    # whole-beat delineation under perturbed thresholds, vectorised with NumPy
    from ._kernels import (
        P_MIN_MV,
        P_REL,
        ROBUST_AREA,
        ROBUST_GAP,
        ROBUST_LO,
        ROBUST_PEAK,
        ROBUST_REL,
        ROBUST_TEND,
        RR_PREV,
    )

    t = np.arange((p.tau - 5 * p.sigma).min(), (p.tau + 5 * p.sigma).max(), 1.0 / fs)
    v = p.render(t)
    sp = np.linalg.norm(np.gradient(v, 1.0 / fs, axis=1), axis=0)
    m = np.linalg.norm(v, axis=0)
    w = (t >= -0.15 - 0.5e-9 / fs) & (t <= 0.20)
    smax = sp[w].max()
    ons, offs = [], []
    for thr in (0.15 / ROBUST_LO, 0.15 * ROBUST_REL):
        hot = np.flatnonzero(w & (sp >= thr * smax))
        if np.any(np.diff(t[hot]) >= ROBUST_GAP):
            return 1
        if not lims[7] <= t[hot[-1]] - t[hot[0]] <= lims[8]:
            return 1
        ons.append(t[hot[0]])
        offs.append(t[hot[-1]])
    areas = []
    for a, b in ((max(ons), min(offs)), (min(ons), max(offs))):
        sel = (t >= a - 0.5 / fs) & (t <= b + 0.5 / fs)
        area = v[:, sel].sum(axis=1)
        if np.linalg.norm(area) < ROBUST_AREA * m[sel].sum():
            return 1
        areas.append(area)
    if areas[0] @ areas[1] < np.cos(np.radians(20)) * np.linalg.norm(areas[0]) * np.linalg.norm(areas[1]):
        return 1
    win = np.flatnonzero((t >= min(offs) + 0.03 - 0.5 / fs) & (t <= 0.6))
    kt = win[np.argmax(m[win])]
    hot = m[win] >= ROBUST_PEAK * m[kt]
    if hot[0] or np.sum(np.diff(hot.astype(int)) == 1) != 1:
        return 2
    seg = np.arange(kt, win[-1] + 1)
    d = (m[np.minimum(seg + 1, m.size - 1)] - m[seg - 1]) * fs / (np.minimum(seg + 1, m.size - 1) - seg + 1)
    j = int(np.argmin(d))
    if d[j] >= 0:
        return 2
    ends = t[seg] + m[seg] / -d
    t_end = ends[j]
    steep = d <= 0.8 * d[j]
    if np.any(np.abs(ends[steep] - t_end) > ROBUST_TEND):
        return 2
    if not (lims[11] <= t_end - max(ons) and t_end - min(ons) <= lims[12]):
        return 2
    from .model import REPOL, Patient, scaled_timing

    # the previous beat's ST-T at RR = RR_PREV under the P wave, scaled about the screen's
    # QRS onset q0 (on its grid, as the kernel; Patient.render's own pivot is on 2 kHz)
    prev = Patient(*scaled_timing(p.tau, p.sigma, RR_PREV, q0), p.amp)
    m = np.linalg.norm(v + prev.render(t + RR_PREV, REPOL), axis=0)
    pw = np.flatnonzero((t >= min(ons) - 0.28 - 0.5 / fs) & (t <= max(ons) - 0.03 + 0.5 / fs))
    kp = pw[np.argmax(m[pw])]
    if m[kp] < P_MIN_MV or kp in (pw[0], pw[-1]):
        return 3
    for rel in (0.05 / P_REL, 0.05 * P_REL):
        below = np.flatnonzero(m[:kp + 1] < rel * m[kp])
        if below.size == 0:
            return 3
        onset = t[below[-1]]
        if not (lims[9] <= min(ons) - onset and max(ons) - onset <= lims[10]):
            return 3
    return 0


def draw_screen_kernel(z, mean, sqrt_cov, tau_b, sig_b, qrs_idx, rest_idx, lims, fs, x, out):
    v = mean + z.astype(np.float64) @ sqrt_cov.T
    n = v.shape[0]
    tau = np.clip(v[:, :33].reshape(n, 3, 11), tau_b[:, 0], tau_b[:, 1])
    sigma = np.clip(np.exp(v[:, 33:66]).reshape(n, 3, 11), sig_b[:, 0], sig_b[:, 1])
    i = screen_kernel(tau, sigma, v[:, 66:].reshape(n, 3, 11), lims, fs, True, out)
    if i >= 0:
        x[:] = v[i]
    return i


def _gauss_sum(tau, sigma, amp, t):
    """Σ_i amp exp(-(t - tau)² / 2 sigma²): (B, 3, 11) parameters at times t (B, K) -> (B, 3, K)."""
    g = np.exp(-0.5 * ((t[:, None, None, :] - tau[..., None]) / sigma[..., None]) ** 2)
    return np.einsum("bai,baik->bak", amp, g)


def lead_violation_kernel(tau, sigma, amp, M, st_lims, t_leads, lims, rrs, qrs_rel, out, chunk=2048):
    """NumPy twin of ``_kernels.lead_violation_kernel`` (vectorised over candidates)."""
    B = tau.shape[0]
    tq = np.arange(-0.1, 0.1, 1e-3)
    nw = tau.shape[2]
    q = list(range(2, 8))  # QRS slots
    rep = np.zeros(nw)
    rep[nw - 3:] = 1.0  # ST, T1, T2 scale with RR^(1/3), centres about the QRS onset q0
    for s0 in range(0, B, chunk):
        ta, si, am = tau[s0:s0 + chunk], sigma[s0:s0 + chunk], amp[s0:s0 + chunk]
        n = ta.shape[0]
        v = _gauss_sum(ta[:, :, q], si[:, :, q], am[:, :, q], np.broadcast_to(tq, (n, tq.size)))
        vel = np.linalg.norm(np.diff(v, axis=2), axis=1)
        hot = vel >= qrs_rel * vel.max(axis=1, keepdims=True)
        q0 = tq[np.argmax(hot, axis=1)]
        q1 = tq[vel.shape[1] - np.argmax(hot[:, ::-1], axis=1)]
        base = M @ _gauss_sum(ta, si, am, (q0 - 0.01)[:, None])[..., 0].T  # (12, n)
        worst = np.abs(base).max(axis=0) - lims[0]
        leads = np.einsum("la,bak->blk", M, v)
        worst = np.maximum(worst, np.abs(leads).max(axis=(1, 2)) - lims[2])
        net = leads.max(axis=2) + leads.min(axis=2)
        ax = np.degrees(np.arctan2(net[:, 5], net[:, 0]))
        worst = np.maximum(worst, np.maximum((lims[13] - ax) * 0.01, (ax - lims[14]) * 0.01))
        sb_ = np.sqrt(si[:, :, q] ** 2 + lims[7] ** 2)
        vb = _gauss_sum(ta[:, :, q], sb_, am[:, :, q] * si[:, :, q] / sb_, np.broadcast_to(tq, (n, tq.size)))
        worst = np.maximum(worst, _fragmented(np.einsum("la,bak->blk", M, vb), lims[15]))
        for rr in rrs:
            f = 1.0 + rep * (rr ** (1 / 3) - 1.0)
            tt, ss = ta * f + q0[:, None, None] * (1.0 - f), si * f
            st = (M @ _gauss_sum(tt, ss, am, (q1 + 0.06)[:, None])[..., 0].T) - base  # (12, n)
            worst = np.maximum(worst, (st_lims[:, :1] - st).max(axis=0))  # each lead's own limits
            worst = np.maximum(worst, (st - st_lims[:, 1:]).max(axis=0))
            tgrid = q1[:, None] + np.arange(0.08, 0.45 * rr ** (1 / 3), 0.004)[None, :]
            vt = _gauss_sum(tt, ss, am, tgrid)  # (n, 3, K)
            k = np.argmax(np.linalg.norm(vt, axis=1), axis=1)
            tl = M[t_leads] @ vt[np.arange(n), :, k].T - base[t_leads]
            worst = np.maximum(worst, lims[1] - tl.min(axis=0))
            sync = np.asarray(t_leads) != int(lims[17])      # T peaks with the spatial T
            if sync.any():
                ts = np.asarray(t_leads)[sync]
                mx = (np.einsum("la,bak->lbk", M[ts], vt) - base[ts][:, :, None]).max(axis=2)
                worst = np.maximum(worst, (lims[16] * mx - tl[sync]).max(axis=0))
            worst = np.maximum(worst, (_qrs12_band(tt, ss, am, M, qrs_rel, lims[7]) - lims[6]) * 10.0)
        tp = np.arange(275) * 0.002 - 0.45
        yp = np.einsum("a,bak->bk", M[int(lims[5])], _gauss_sum(ta[:, :, :2], si[:, :, :2], am[:, :, :2],
                                                                 np.broadcast_to(tp, (n, tp.size))))
        pmax = yp.max(axis=1)
        kp = np.argmax(yp, axis=1)
        worst = np.maximum(worst, np.maximum(lims[3] - pmax, np.abs(yp).max(axis=1) - lims[4]))
        mid = yp[:, 1:-1]
        peak = (mid > 0.3 * pmax[:, None]) & (mid >= yp[:, :-2]) & (mid > yp[:, 2:])
        k = np.arange(mid.shape[1])
        sep = np.where(peak.any(axis=1), (np.where(peak, k, -1).max(axis=1)
                                          - np.where(peak, k, k.size).min(axis=1)) * 0.002, 0.0)
        worst = np.maximum(worst, (sep - lims[8]) * 10.0)
        # P onset: the last sample under 10 % of the peak before it
        kk = np.arange(yp.shape[1])[None, :]
        below = (yp < 0.1 * pmax[:, None]) & (kk < kp[:, None])
        j = np.where(below.any(axis=1), np.where(below, kk, -1).max(axis=1), 0)
        worst = np.maximum(worst, ((kp - j) * 0.002 - lims[9]) * 10.0)
        neg = np.minimum(np.where(kk < kp[:, None], yp, 0.0).min(axis=1), 0.0)
        worst = np.maximum(worst, -neg - lims[10] * np.maximum(pmax, 0.0))
        pr = q0 - tp[j]
        worst = np.maximum(worst, np.maximum((lims[11] - pr) * 10.0, (pr - lims[12]) * 10.0))
        out[s0:s0 + chunk] = np.maximum(worst, 0.0)


def _fragmented(leads, rel):
    """Twin of ``_kernels._fragmented`` on the 12 leads (n, 12, K) of the QRS slots."""
    out = np.zeros(leads.shape[0])
    for b in range(leads.shape[0]):
        for L in (0, 1, 2, 3, 4, 5, 8, 9, 10, 11):
            y = leads[b, L]
            floor = max(0.1, 0.3 * max(y.max(), 0.0))
            k = np.flatnonzero((y[1:-1] >= floor) & (y[1:-1] >= y[:-2]) & (y[1:-1] > y[2:])) + 1
            for a, c in zip(k[:-1], k[1:]):
                out[b] = max(out[b], rel * min(y[a], y[c]) - y[a + 1:c + 1].min())
    return out


def _qrs12_band(tau, sigma, amp, M, rel, sig_f):
    """Twin of ``_kernels._qrs12_band`` for candidates (n, 3, 11) with timing already scaled."""
    se = np.sqrt(sigma ** 2 + sig_f ** 2)
    t = np.arange(400) * 1e-3 - 0.15
    v = _gauss_sum(tau, se, amp * sigma / se, np.broadcast_to(t, (tau.shape[0], t.size)))
    vel = np.linalg.norm(np.einsum("la,bak->blk", M, np.diff(v, axis=2)), axis=1)
    out = np.empty(tau.shape[0])
    for b, x in enumerate(vel):  # the connected run (gaps <= 30 ms) around the peak
        k0 = int(np.argmax(x))
        hot = np.flatnonzero(x >= rel * x[k0])
        runs = np.split(hot, np.flatnonzero(np.diff(hot) > 30) + 1)
        run = next(r for r in runs if r[0] <= k0 <= r[-1])
        out[b] = (run[-1] - run[0]) * 1e-3
    return out


def draw_screen_leads_kernel(z, mean, sqrt_cov, tau_b, sig_b, qrs_idx, rest_idx, lims, fs, M, st_lims,
                             t_leads, llims, rrs, qrs_rel, x, out):
    out[:, :3] = np.nan
    out[:, 3] = -1.0
    j = 0
    while j < z.shape[0]:
        i = draw_screen_kernel(z[j:], mean, sqrt_cov, tau_b, sig_b, qrs_idx, rest_idx, lims, fs, x, out[j:])
        if i < 0:
            return -1
        v = x[None]
        tau = np.clip(v[:, :33].reshape(1, 3, 11), tau_b[:, 0], tau_b[:, 1])
        sigma = np.clip(np.exp(v[:, 33:66]).reshape(1, 3, 11), sig_b[:, 0], sig_b[:, 1])
        viol = np.empty(1)
        lead_violation_kernel(tau, sigma, v[:, 66:].reshape(1, 3, 11), M, st_lims, t_leads, llims, rrs,
                              qrs_rel, viol)
        if viol[0] <= 0.0:
            return j + i
        out[j + i, 3] = 8.0
        j += i + 1
    return -1


def fiducials_kernel(tau, sigma, amp, fs, out):
    """Twin of ``_kernels.fiducials_kernel`` on ``Patient``'s own methods."""
    from .model import P_WAVES, QRS_WAVES, REPOL, Patient

    p = Patient(tau, sigma, amp)
    out[:] = np.inf
    for (on_i, pk_i, off_i), grp in (((0, 1, None), P_WAVES), ((2, 3, 4), QRS_WAVES), ((None, 5, 6), REPOL)):
        tr = p.track(grp, fs=fs)
        if tr is None:
            continue
        t, v = tr
        i0, i1 = p.span_of(t, v, grp, fs=fs)
        if on_i is not None:
            out[on_i] = t[i0]
        if off_i is not None:
            out[off_i] = t[i1]
        if i1 > i0:
            out[pk_i] = t[i0 + int(np.argmax(np.linalg.norm(v[:, i0:i1], axis=0)))]
        if grp == REPOL:
            out[6] = p.t_end(fs=fs, track=tr)


def all_finite_kernel(x):
    return bool(np.all(np.isfinite(x)))
