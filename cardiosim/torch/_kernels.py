"""Numba kernels of the batched shirt transform, each with a NumPy twin (the test oracle).

A batch of records goes through three kernels with no per-record Python:

* :func:`draw_params` -- every random number of a record comes from a counter-based
  SplitMix64 stream keyed by the record's own 64-bit seed (Steele, Lea & Flood, OOPSLA
  2014): garment fit (slip, rotation, stretch, jitter), heart orientation, noise levels,
  electrode impedances, mains and breathing phases. A record's draws depend on its seed
  alone, so a record transformed alone or in any batch is bit-identical. The mains common
  mode follows :func:`cardiosim.noise.electrode.common_mode_voltage`: with
  ``powerline_coupling = 'ground_electrode'`` its amplitude is a drawn displacement current
  times the median of the electrodes' impedances at the start of the record (Huhta & Webster
  1973), with ``'fixed'`` it is drawn from ``cm_voltage_mv``.
* :func:`transfer` -- the per-record transfer ``G = 1e3 * L(r) @ R`` from the lead field at
  the displaced electrodes and the heart rotation.
* :func:`render` -- electrode potentials ``phi_e = G_e . s + n_e``, the montage, the
  device's analog band-pass (second-order sections started in steady state), gain and ADC,
  into a float32 ``[B, leads, T]`` output. White noise is Gaussian from the same ziggurat
  the noise module uses (:func:`cardiosim.noise._kernels.ziggurat_kernel`, Marsaglia &
  Tsang 2000) fed by the record's SplitMix64 stream.

No reduction is reordered across records and nothing depends on the batch size, which is
what makes batch and per-record results equal bit for bit (tested).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import njit

from ..errors import SignalError

from ..noise._kernels import ZIG_FN, ZIG_KN, ZIG_WN, ziggurat_kernel, ziggurat_ref

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_STREAM = np.uint64(0xD1B54A32D192ED03)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11, _S32 = (np.uint64(k) for k in (30, 27, 31, 11, 32))
_U53 = 1.0 / 9007199254740992.0

#: Electrode impedance ranges (Ohm) drawn log-uniformly per electrode type: freshly donned
#: and after about an hour of wear (PHYSICS.md section 6; as :mod:`cardiosim.noise.electrode`).
#: ``None``: wet gel does not hydrate further, the electrode keeps its start impedance.
IMPEDANCE_OHM = {"textile": ((93e3, 350e3), (20e3, 56e3)), "dry": ((200e3, 1000e3), (50e3, 150e3)),
                 "gel": ((300.0, 1000.0), None)}


# ------------------------------------------------------------------------------ SplitMix64
@njit(cache=True, inline="always")
def _mix(z):
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(cache=True, inline="always")
def _stream_key(seed, stream):
    return _mix(seed + np.uint64(stream) * _STREAM)


def _mix_np(z):
    with np.errstate(over="ignore"):
        z = (z ^ (z >> _S30)) * _M1
        z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


def stream_words_numpy(seed: int, stream: int, n: int, first: int = 0) -> np.ndarray:
    """NumPy twin: raw 64-bit words ``first .. first + n - 1`` of stream ``stream`` of record ``seed``."""
    with np.errstate(over="ignore"):
        key = _mix_np(np.uint64(seed) + np.uint64(stream) * _STREAM)
        return _mix_np(key + (np.arange(first + 1, first + n + 1, dtype=np.uint64) * _GAMMA))


@njit(cache=True)
def _fill_words(key, first, out):
    for i in range(out.shape[0]):
        out[i] = _mix(key + np.uint64(first + i + 1) * _GAMMA)


# ------------------------------------------------------------------------------ parameters
@njit(cache=True)
def n_uniforms(n_e: int, n_harm: int) -> int:
    """Uniform draws per record (layout in :func:`params_numpy`)."""
    return 2 * (6 + 3 * n_e) + n_e + 2 + 2 * n_harm + 3 + 2 * n_e + 1 + 3 + 3 * n_e


@njit(cache=True)
def _draw_record(u, n_e, n_harm, base, center, sds, z_rng, wear_rng, tau, white_rng, cm_rng, bw_rng,
                 coupling_rng, offsets, rot, white, pl, divider, zin, breath, bwe, ground, id_rng, mains_src,
                 hydrates):
    # normals from consecutive uniform pairs (Box-Muller)
    nn = 6 + 3 * n_e
    z = np.empty(nn)
    for k in range(nn):
        z[k] = np.sqrt(-2.0 * np.log(u[2 * k])) * np.cos(2.0 * np.pi * u[2 * k + 1])
    slip, ang, stretch = z[0] * sds[0], np.deg2rad(z[1] * sds[1]), z[2] * sds[2]
    c, s = np.cos(ang), np.sin(ang)
    for e in range(n_e):        # as cardiosim.simulate.sample_garment_offsets
        rx, ry, rz = base[e, 0] - center[0], base[e, 1] - center[1], base[e, 2] - center[2]
        mx = (c * rx - s * ry) * (1.0 + stretch)
        my = (s * rx + c * ry) * (1.0 + stretch)
        offsets[e, 0] = mx - rx + z[3 + 3 * e] * sds[3]
        offsets[e, 1] = my - ry + z[4 + 3 * e] * sds[3]
        offsets[e, 2] = z[5 + 3 * e] * sds[3] + slip
    ax = np.deg2rad(z[3 + 3 * n_e] * sds[4])
    ay = np.deg2rad(z[4 + 3 * n_e] * sds[4])
    az = np.deg2rad(z[5 + 3 * n_e] * sds[4])
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    # Rz @ Ry @ Rx (cardiosim.simulate._heart_rotation)
    rot[0, 0], rot[0, 1], rot[0, 2] = cz * cy, cz * sy * sx - sz * cx, cz * sy * cx + sz * sx
    rot[1, 0], rot[1, 1], rot[1, 2] = sz * cy, sz * sy * sx + cz * cx, sz * sy * cx - cz * sx
    rot[2, 0], rot[2, 1], rot[2, 2] = -sy, cy * sx, cy * cx
    k = 2 * nn
    for e in range(n_e):
        white[e] = 1e-3 * (white_rng[0] + u[k] * (white_rng[1] - white_rng[0]))   # uV -> mV
        k += 1
    u_cm = u[k]               # amplitude: once the impedances are known (below)
    ph0 = 2.0 * np.pi * u[k + 1]
    k += 2
    for h in range(n_harm):
        pl[1 + 2 * h] = 1.0 if h == 0 else (0.02 + 0.28 * u[k]) / h
        pl[2 + 2 * h] = ph0 if h == 0 else 2.0 * np.pi * u[k + 1]
        k += 2
    j = 1 + 2 * n_harm
    pl[j] = 0.05 + 0.25 * u[k]            # modulation frequency, Hz
    pl[j + 1] = 0.3 * u[k + 1]            # modulation depth
    pl[j + 2] = 2.0 * np.pi * u[k + 2]
    k += 3
    for e in range(n_e):
        z0 = np.exp(np.log(z_rng[0]) + u[k] * (np.log(z_rng[1]) - np.log(z_rng[0])))
        # the draw is made either way: the stream layout is the same for every electrode type
        zi = np.exp(np.log(z_rng[2]) + u[k + n_e] * (np.log(z_rng[3]) - np.log(z_rng[2])))
        if not hydrates:
            zi = z0
        divider[e] = z0     # completed below once the wear time is known
        bwe[e, 0] = zi
        k += 1
    k += n_e
    wear = wear_rng[0] + u[k] * (wear_rng[1] - wear_rng[0])
    k += 1
    decay = np.exp(-wear / tau)
    zs = np.empty(n_e)
    for e in range(n_e):
        ze = bwe[e, 0] + (divider[e] - bwe[e, 0]) * decay
        zs[e] = ze
        divider[e] = ze / (ze + zin)      # Huhta & Webster 1973 potential divider
    if ground:
        # V_cm = i_d Z_ground, Z_ground the median impedance at the start of the record
        zs.sort()
        h = n_e // 2
        zg = zs[h] if n_e % 2 == 1 else (zs[h - 1] + zs[h]) / 2.0
        i_d = id_rng[0] + u_cm * (id_rng[1] - id_rng[0])                          # uA
        pl[0] = i_d * 1e-6 * zg * 1e3                                             # mV
        mains_src[0] = i_d
        mains_src[1] = zg
    else:
        pl[0] = cm_rng[0] + u_cm * (cm_rng[1] - cm_rng[0])                        # mV
        mains_src[0] = np.nan
        mains_src[1] = np.nan
    breath[0] = 0.2 + 0.13 * u[k]         # breathing rate, Hz (12-20 /min)
    breath[1] = 2.0 * np.pi * u[k + 1]
    coupling = coupling_rng[0] + u[k + 2] * (coupling_rng[1] - coupling_rng[0])
    k += 3
    for e in range(n_e):
        rms = bw_rng[0] + u[k + e] * (bw_rng[1] - bw_rng[0])
        bwe[e, 0] = rms * np.sqrt(2.0 * coupling)          # breathing-locked sine, RMS share
        bwe[e, 1] = rms * np.sqrt(2.0 * (1.0 - coupling))  # slow drift sine
        bwe[e, 2] = 0.03 + 0.12 * u[k + n_e + e]           # drift frequency, Hz
        bwe[e, 3] = 2.0 * np.pi * u[k + 2 * n_e + e]


@njit(cache=True)
def _draw_params_kernel(seeds, n_e, n_harm, base, center, sds, z_rng, wear_rng, tau, white_rng, cm_rng, bw_rng,
                        coupling_rng, zin, ground, id_rng, hydrates, offsets, rot, white, pl, divider, breath, bwe,
                        mains_src):
    k = n_uniforms(n_e, n_harm)
    words = np.empty(k, dtype=np.uint64)
    u = np.empty(k)
    for b in range(seeds.shape[0]):
        _fill_words(_stream_key(seeds[b], 0), 0, words)
        for i in range(k):
            u[i] = (np.float64(words[i] >> _S11) + 0.5) * _U53
        _draw_record(u, n_e, n_harm, base, center, sds, z_rng, wear_rng, tau, white_rng, cm_rng, bw_rng,
                     coupling_rng, offsets[b], rot[b], white[b], pl[b], divider[b], zin, breath[b], bwe[b],
                     ground, id_rng, mains_src[b], hydrates)


class Params:
    """Per-record random parameters of a batch (arrays with a leading record axis)."""

    def __init__(self, n_rec: int, n_e: int, n_harm: int):
        self.offsets = np.zeros((n_rec, n_e, 3))
        self.rot = np.zeros((n_rec, 3, 3))
        self.white = np.zeros((n_rec, n_e))
        self.pl = np.zeros((n_rec, 4 + 2 * n_harm))
        self.divider = np.zeros((n_rec, n_e))
        self.breath = np.zeros((n_rec, 2))
        self.bwe = np.zeros((n_rec, n_e, 4))
        #: mains displacement current (uA) and ground impedance (Ohm) behind ``pl[:, 0]``
        #: (NaN with ``powerline_coupling = 'fixed'``)
        self.mains_src = np.zeros((n_rec, 2))


def draw_params(seeds, base, center, spec) -> Params:
    """Random parameters of every record of a batch from its seed (numba).

    Parameters
    ----------
    seeds : ndarray (B,) uint64
    base : ndarray (n_e, 3) m -- electrode positions before the garment fit
    center : ndarray (3,) m -- body axis point the garment turns about
    spec : PhysicsSpec-like with ``sds`` (slip m, rotation deg, stretch, jitter m, heart deg),
        ``z_rng`` (z0 lo, hi, zinf lo, hi Ohm), ``wear_rng`` s, ``tau`` s, ``white_rng`` uV,
        ``cm_rng`` mV, ``bw_rng`` mV, ``coupling_rng``, ``zin`` Ohm, ``n_harm``, and the mains
        coupling: ``ground`` (bool; ``powerline_coupling == 'ground_electrode'``) with
        ``id_rng`` uA, the displacement-current range (``cm_rng`` is used when not ``ground``),
        and ``hydrates`` (bool; False: each electrode keeps its start impedance, as wet gel)
    """
    seeds = np.ascontiguousarray(seeds, dtype=np.uint64)
    n_e = base.shape[0]
    p = Params(len(seeds), n_e, spec.n_harm)
    _draw_params_kernel(seeds, n_e, spec.n_harm, np.ascontiguousarray(base, dtype=np.float64),
                        np.asarray(center, dtype=np.float64), spec.sds, spec.z_rng, spec.wear_rng, spec.tau,
                        spec.white_rng, spec.cm_rng, spec.bw_rng, spec.coupling_rng, spec.zin,
                        bool(spec.ground), np.asarray(spec.id_rng, dtype=np.float64), bool(spec.hydrates),
                        p.offsets, p.rot, p.white, p.pl, p.divider, p.breath, p.bwe, p.mains_src)
    return p


def params_numpy(seed: int, base, center, spec) -> Params:
    """NumPy twin of :func:`draw_params` for one record (layout of the uniform draws:
    ``6 + 3 n_e`` Box-Muller pairs -- slip, rotation, stretch, jitter xyz per electrode,
    heart angles x y z --, then white RMS per electrode, mains amplitude (displacement current
    with the ground-electrode coupling) and phase, harmonic
    level and phase pairs, modulation rate, depth and phase, z0 and z_inf per electrode,
    wear time, breathing rate and phase, breathing coupling, wander RMS, drift rate and
    drift phase per electrode)."""
    n_e, h = len(base), spec.n_harm
    k = n_uniforms(n_e, h)
    u = ((stream_words_numpy(seed, 0, k) >> _S11).astype(np.float64) + 0.5) * _U53
    nn = 6 + 3 * n_e
    z = np.sqrt(-2.0 * np.log(u[0:2 * nn:2])) * np.cos(2.0 * np.pi * u[1:2 * nn:2])
    sds = spec.sds
    slip, ang, stretch = z[0] * sds[0], np.deg2rad(z[1] * sds[1]), z[2] * sds[2]
    rel = np.asarray(base) - center
    c, s = np.cos(ang), np.sin(ang)
    moved = np.stack([c * rel[:, 0] - s * rel[:, 1], s * rel[:, 0] + c * rel[:, 1]], axis=1) * (1.0 + stretch)
    p = Params(1, n_e, h)
    jit = z[3:3 + 3 * n_e].reshape(n_e, 3) * sds[3]
    p.offsets[0, :, :2] = moved - rel[:, :2] + jit[:, :2]
    p.offsets[0, :, 2] = jit[:, 2] + slip
    ax, ay, az = np.deg2rad(z[3 + 3 * n_e:6 + 3 * n_e] * sds[4])
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    p.rot[0] = rz @ ry @ rx
    k = 2 * nn
    p.white[0] = 1e-3 * (spec.white_rng[0] + u[k:k + n_e] * (spec.white_rng[1] - spec.white_rng[0]))
    k += n_e
    pl = p.pl[0]
    u_cm = u[k]
    ph0 = 2 * np.pi * u[k + 1]
    k += 2
    for i in range(h):
        pl[1 + 2 * i] = 1.0 if i == 0 else (0.02 + 0.28 * u[k]) / i
        pl[2 + 2 * i] = ph0 if i == 0 else 2 * np.pi * u[k + 1]
        k += 2
    pl[1 + 2 * h:4 + 2 * h] = 0.05 + 0.25 * u[k], 0.3 * u[k + 1], 2 * np.pi * u[k + 2]
    k += 3
    zr = spec.z_rng
    z0 = np.exp(np.log(zr[0]) + u[k:k + n_e] * (np.log(zr[1]) - np.log(zr[0])))
    zinf = np.exp(np.log(zr[2]) + u[k + n_e:k + 2 * n_e] * (np.log(zr[3]) - np.log(zr[2])))
    if not spec.hydrates:
        zinf = z0
    k += 2 * n_e
    wear = spec.wear_rng[0] + u[k] * (spec.wear_rng[1] - spec.wear_rng[0])
    k += 1
    ze = zinf + (z0 - zinf) * np.exp(-wear / spec.tau)
    p.divider[0] = ze / (ze + spec.zin)
    if spec.ground:
        i_d = spec.id_rng[0] + u_cm * (spec.id_rng[1] - spec.id_rng[0])
        zg = float(np.median(ze))
        pl[0] = i_d * 1e-6 * zg * 1e3
        p.mains_src[0] = i_d, zg
    else:
        pl[0] = spec.cm_rng[0] + u_cm * (spec.cm_rng[1] - spec.cm_rng[0])
        p.mains_src[0] = np.nan
    p.breath[0] = 0.2 + 0.13 * u[k], 2 * np.pi * u[k + 1]
    coupling = spec.coupling_rng[0] + u[k + 2] * (spec.coupling_rng[1] - spec.coupling_rng[0])
    k += 3
    rms = spec.bw_rng[0] + u[k:k + n_e] * (spec.bw_rng[1] - spec.bw_rng[0])
    p.bwe[0, :, 0] = rms * np.sqrt(2 * coupling)
    p.bwe[0, :, 1] = rms * np.sqrt(2 * (1 - coupling))
    p.bwe[0, :, 2] = 0.03 + 0.12 * u[k + n_e:k + 2 * n_e]
    p.bwe[0, :, 3] = 2 * np.pi * u[k + 2 * n_e:k + 3 * n_e]
    return p


# ------------------------------------------------------------------------------ transfer
@njit(cache=True)
def _transfer_kernel(lf, rot, out):
    for b in range(lf.shape[0]):
        for e in range(lf.shape[1]):
            for j in range(3):
                acc = 0.0
                for k in range(3):
                    acc += lf[b, e, k] * rot[b, k, j]
                out[b, e, j] = 1e3 * acc


def transfer(lead_field: np.ndarray, rot: np.ndarray, q: int = 3) -> np.ndarray:
    """``G[b] = 1e3 L[b] @ R[b]`` (mV per A m) into the first three of ``q`` columns (numba).

    lead_field (B, n_e, 3) V/(A m) at the displaced electrodes; rot (B, 3, 3).
    """
    b, n_e, _ = lead_field.shape
    out = np.zeros((b, n_e, q))
    _transfer_kernel(np.ascontiguousarray(lead_field), np.ascontiguousarray(rot), out)
    return out


def transfer_numpy(lead_field: np.ndarray, rot: np.ndarray, q: int = 3) -> np.ndarray:
    """NumPy twin of :func:`transfer`."""
    out = np.zeros(lead_field.shape[:2] + (q,))
    out[..., :3] = 1e3 * np.einsum("bek,bkj->bej", lead_field, rot)
    return out


# ------------------------------------------------------------------------------ render
@njit(cache=True, inline="always")
def _rotate(c, s, cw, sw):
    return c * cw - s * sw, s * cw + c * sw


@njit(cache=True)
def _white(key, n, out, words, u32):
    """Standard normals into ``out`` from the record's SplitMix64 stream ``key``."""
    filled = 0
    first = 0
    while filled < n:
        nw = words.shape[0]
        _fill_words(key, first, words)
        first += nw
        for i in range(nw):
            u32[2 * i] = np.uint32(words[i] & np.uint64(0xFFFFFFFF))
            u32[2 * i + 1] = np.uint32(words[i] >> _S32)
        filled, _ = ziggurat_kernel(u32, out, filled, ZIG_KN, ZIG_WN, ZIG_FN)


@njit(cache=True)
def _render_kernel(src, g, residual, has_res, montage, rows, seeds, white, pl, divider, breath, bwe, flags,
                   mains, sos, zi, scale, inv_scale, qlo, qhi, device, out):
    n_rec, q_max, n = src.shape
    n_e = g.shape[1]
    n_l = montage.shape[0]
    n_r = rows.shape[0]
    n_harm = mains.shape[0]
    n_sec = sos.shape[0]
    phi = np.empty((n_e, n))
    lt = np.empty((n_r, n))
    xt = np.empty((n, n_r))
    yt = np.empty((n, n_r), dtype=np.float32)
    vcm = np.empty(n)
    breathing = np.empty(n)
    z = np.empty(n)
    nw = n // 2 + n // 32 + 64            # ~2.5 % of ziggurat candidates are rejected
    words = np.empty(nw, dtype=np.uint64)
    u32 = np.empty(2 * nw, dtype=np.uint32)
    z1 = np.empty((n_sec, n_r))
    z2 = np.empty((n_sec, n_r))
    fs = flags[4]
    for b in range(n_rec):
        # -- record-wide noise signals: mains common mode (odd harmonics, slow amplitude
        #    modulation) and the breathing-locked wander
        if flags[1]:
            for t in range(n):
                vcm[t] = 0.0
            for h in range(n_harm):
                a_s = pl[b, 1 + 2 * h] * np.cos(pl[b, 2 + 2 * h])
                a_c = pl[b, 1 + 2 * h] * np.sin(pl[b, 2 + 2 * h])
                for t in range(n):
                    vcm[t] += a_s * mains[h, 0, t] + a_c * mains[h, 1, t]
            j = 1 + 2 * n_harm
            wstep = 2.0 * np.pi * pl[b, j] / fs
            cw, sw = np.cos(wstep), np.sin(wstep)
            c, s = np.cos(pl[b, j + 2]), np.sin(pl[b, j + 2])
            amp, depth = pl[b, 0], pl[b, j + 1]
            for t in range(n):
                vcm[t] *= amp * (1.0 + depth * s)
                c, s = _rotate(c, s, cw, sw)
        else:
            for t in range(n):
                vcm[t] = 0.0
        if flags[2]:
            wstep = 2.0 * np.pi * breath[b, 0] / fs
            cw, sw = np.cos(wstep), np.sin(wstep)
            c, s = np.cos(breath[b, 1]), np.sin(breath[b, 1])
            for t in range(n):
                breathing[t] = s
                c, s = _rotate(c, s, cw, sw)
        else:
            for t in range(n):
                breathing[t] = 0.0
        # -- per electrode, one pass: the source through the displaced, rotated transfer,
        #    amplifier white noise, mains through the impedance divider, breathing wander and
        #    a slow drift (mV)
        for e in range(n_e):
            if flags[0]:
                _white(_stream_key(seeds[b], 1 + e), n, z, words, u32)
                a_w = white[b, e]
            else:
                a_w = 0.0
                for t in range(n):
                    z[t] = 0.0
            a_pl = divider[b, e] if flags[1] else 0.0
            a_b = bwe[b, e, 0] if flags[2] else 0.0
            a_d = bwe[b, e, 1] if flags[2] else 0.0
            wstep = 2.0 * np.pi * bwe[b, e, 2] / fs
            cw, sw = np.cos(wstep), np.sin(wstep)
            c, s = np.cos(bwe[b, e, 3]), np.sin(bwe[b, e, 3])
            for t in range(n):
                acc = a_w * z[t] + a_pl * vcm[t] + a_b * breathing[t] + a_d * s
                for q in range(q_max):
                    acc += g[b, e, q] * src[b, q, t]
                phi[e, t] = acc
                c, s = _rotate(c, s, cw, sw)
        # -- montage for the leads wanted (and the source's non-dipolar residual, fixed per lead)
        for r in range(n_r):
            lead = rows[r]
            if has_res[b]:
                for t in range(n):
                    lt[r, t] = residual[b, lead, t]
            else:
                for t in range(n):
                    lt[r, t] = 0.0
            for e in range(n_e):
                w = montage[lead, e]
                if w != 0.0:
                    for t in range(n):
                        lt[r, t] += w * phi[e, t]
        if not device:
            for r in range(n_r):
                for t in range(n):
                    out[b, r, t] = np.float32(lt[r, t])
            continue
        # -- device: analog band-pass from steady state, gain, ADC (cardiosim.device.apply_device).
        # Time-major copy so the recursion of every lead advances together (SIMD across leads).
        for t0 in range(0, n, 64):
            for r in range(n_r):
                for t in range(t0, min(n, t0 + 64)):
                    xt[t, r] = lt[r, t]
        for k in range(n_sec):
            for r in range(n_r):
                z1[k, r] = zi[k, 0] * xt[0, r]
                z2[k, r] = zi[k, 1] * xt[0, r]
        for t in range(n):
            for k in range(n_sec):
                b0, b1, b2, a1, a2 = sos[k, 0], sos[k, 1], sos[k, 2], sos[k, 4], sos[k, 5]
                for r in range(n_r):
                    xin = xt[t, r]
                    y = b0 * xin + z1[k, r]
                    z1[k, r] = b1 * xin - a1 * y + z2[k, r]
                    z2[k, r] = b2 * xin - a2 * y
                    xt[t, r] = y
            for r in range(n_r):
                code = min(max(np.rint(xt[t, r] * scale), qlo), qhi)
                yt[t, r] = np.float32(code * inv_scale)
        for t0 in range(0, n, 64):
            for r in range(n_r):
                for t in range(t0, min(n, t0 + 64)):
                    out[b, r, t] = yt[t, r]


@lru_cache(maxsize=16)
def mains_table(n: int, fs: float, mains_hz: float, n_harm: int) -> np.ndarray:
    """sin and cos of ``2 pi f_k t`` for the odd harmonics ``f_k = (2k + 1) mains_hz`` below
    Nyquist (zero rows above it), shape ``(n_harm, 2, n)``; the phase is reduced modulo one
    cycle in float64 so long records stay exact. Read-only, cached."""
    tab = np.zeros((n_harm, 2, n))
    for h in range(n_harm):
        f = (2 * h + 1) * mains_hz
        if f < fs / 2:
            cyc = np.mod(np.arange(n, dtype=np.float64) * (f / fs), 1.0) * (2 * np.pi)
            tab[h, 0], tab[h, 1] = np.sin(cyc), np.cos(cyc)
    tab.setflags(write=False)
    return tab


def render(src, g, residual, has_res, montage, rows, seeds, params: Params, flags, fs, device, out=None) -> np.ndarray:
    """Leads of every record of a batch, float32 ``(B, len(rows), T)`` mV (numba).

    Parameters
    ----------
    src : ndarray (B, Q, T) -- source rows (dipole A m, then any non-dipolar coefficients)
    g : ndarray (B, n_e, Q) -- transfer to the electrodes, mV per source unit
    residual : ndarray (B, L, T) mV or (B, 0, 0) -- fixed non-dipolar residual per lead
    has_res : ndarray (B,) bool
    montage : ndarray (L, n_e) -- lead = montage @ electrode potentials
    rows : ndarray (R,) int -- leads to output
    seeds : ndarray (B,) uint64
    params : Params
    flags : ndarray (4,) -- white, powerline, baseline wander on/off; mains frequency / 50
    fs : float, Hz
    device : None or (sos (S, 6), zi (S, 2), gain, lsb mV, code lo, code hi)
    out : ndarray (B, R, T) float32, optional -- written in place (e.g. shared memory)
    """
    b, _, n = src.shape
    if out is None:
        out = np.empty((b, len(rows), n), dtype=np.float32)
    elif out.shape != (b, len(rows), n) or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise SignalError(f"out must be C-contiguous float32 {(b, len(rows), n)}, got {out.dtype} {out.shape}")
    if device is None:
        sos, zi, gain, lsb, lo, hi, on = np.zeros((0, 6)), np.zeros((0, 2)), 1.0, 1.0, 0.0, 0.0, False
    else:
        (sos, zi, gain, lsb, lo, hi), on = device, True
    n_harm = (params.pl.shape[1] - 4) // 2
    mains = mains_table(int(n), float(fs), 50.0 * float(flags[3]), n_harm)
    flags5 = np.array([flags[0], flags[1], flags[2], flags[3], fs], dtype=np.float64)
    _render_kernel(np.ascontiguousarray(src, dtype=np.float64), np.ascontiguousarray(g), residual,
                   np.asarray(has_res, dtype=np.bool_), np.ascontiguousarray(montage, dtype=np.float64),
                   np.asarray(rows, dtype=np.int64), np.ascontiguousarray(seeds, dtype=np.uint64),
                   params.white, params.pl, params.divider, params.breath, params.bwe, flags5, mains,
                   np.ascontiguousarray(sos), np.ascontiguousarray(zi), float(gain) / float(lsb),
                   float(lsb) / float(gain), float(lo), float(hi), on, out)
    return out


def render_numpy(src, g, residual, montage, rows, seed, params: Params, flags, fs, device) -> np.ndarray:
    """NumPy twin of :func:`render` for one record (``src (Q, T)``, ``g (n_e, Q)``,
    ``residual (L, T)`` or None, ``params`` of one record): exact sines, scipy's sosfilt,
    the pure-Python ziggurat."""
    from scipy import signal

    n = src.shape[1]
    n_e = g.shape[0]
    t = np.arange(n) / fs
    phi = g @ src
    if flags[0]:
        nw = n // 2 + n // 32 + 64       # rounds of raw words as the kernel takes them
        for e in range(n_e):
            z, first = [], 0
            while len(z) < n:
                words = stream_words_numpy(seed, 1 + e, nw, first)
                u32 = np.stack([(words & np.uint64(0xFFFFFFFF)).astype(np.uint32),
                                (words >> _S32).astype(np.uint32)], axis=1).ravel()
                z.extend(ziggurat_ref(u32, n - len(z))[0].tolist())
                first += nw
            phi[e] += params.white[0, e] * np.asarray(z)
    if flags[1]:
        pl = params.pl[0]
        h = (len(pl) - 4) // 2
        v = np.zeros(n)
        for i in range(h):
            f = (2 * i + 1) * 50.0 * flags[3]
            if f < fs / 2:
                v += pl[1 + 2 * i] * np.sin(2 * np.pi * f * t + pl[2 + 2 * i])
        j = 1 + 2 * h
        v *= pl[0] * (1.0 + pl[j + 1] * np.sin(2 * np.pi * pl[j] * t + pl[j + 2]))
        phi += params.divider[0][:, None] * v[None]
    if flags[2]:
        br = np.sin(2 * np.pi * params.breath[0, 0] * t + params.breath[0, 1])
        bw = params.bwe[0]
        phi += bw[:, 0:1] * br[None] + bw[:, 1:2] * np.sin(2 * np.pi * bw[:, 2:3] * t[None] + bw[:, 3:4])
    leads = montage @ phi
    if residual is not None:
        leads = leads + residual
    leads = leads[np.asarray(rows)]
    if device is None:
        return leads.astype(np.float32)
    sos, zi, gain, lsb, lo, hi = device
    y, _ = signal.sosfilt(sos, leads, axis=-1, zi=zi[:, None, :] * leads[None, :, :1])
    codes = np.clip(np.round(y * (gain / lsb)), lo, hi)
    return (codes * (lsb / gain)).astype(np.float32)
