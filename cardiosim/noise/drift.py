"""Electrode drift: the slow baseline wander an ambulatory recorder sees, fitted to Holter records.

Below about 0.5 Hz an electrode's potential wanders: the half-cell potential and the skin's
own potential change as the skin stretches with breathing and movement and as the gel or
sweat layer settles (Tam & Webster 1977; Webster, *Medical Instrumentation*, ch. 5). A monitor
or a chest strap high-passes at 0.5 Hz and hides it; a Holter, a diagnostic 12-lead or a shirt
recorded through a 0.05 Hz front end (Kligfield et al. 2007) records it. The ``activity`` kind
cannot supply it: it is fitted to chest-strap recordings whose sensor removes everything below
about 1 Hz, and it is zero below 0.3 Hz.

Model (the ``drift`` noise kind): every electrode carries an independent Gaussian process with
the power-law spectrum of the real records, ``S(f) ~ max(f, F_LO)^-beta / (1 + (f / F_HI)^4)``
(exponent ``beta`` fitted; flat below :data:`F_LO`, where a 10-s record holds no information;
rolled off above :data:`F_HI`, where the heart's own harmonics make the real spectrum
unmeasurable and the ``activity`` fit owns the 1-40 Hz band), synthesised by inverse FFT on a
5 Hz grid over :data:`SYNTH_S` seconds (so the slowest components are not forced periodic over
the record), from the bins below the frequency that leaves out :data:`TAIL` of its variance,
and linearly interpolated to the record's rate; its RMS is one per-record level, log-normal with log standard deviation
``drift_log_sd`` and median ``drift_ratio`` times the record's own ``activity`` noise RMS per
electrode (its drawn level for the electrode type and activity: skin-stretch potentials grow
with movement as the fitted 1-40 Hz residual does, and a wearer who moves more drifts more;
:func:`cardiosim.noise.textile.typical_activity_rms_mv` where the record has no activity noise),
the same for every electrode of the record.

Fitted (``scripts/fit_holter_drift.py``) to CPSC 2021's 2-lead ambulatory records of the
patients the rest of cardiosim is fitted on (8, 35, 92, 101) and to half the CinC 2021 resting
12-leads, each source through its recorder's high-pass (:data:`RESTING_CORNER_HZ`), and reported
on the held-out patients 21 and 84 (:data:`HELD_OUT_PATIENTS`), MIT-BIH 100 and the other CinC
half (``tests/test_noise_drift.py``):
the measure is :func:`wander_ratio_db`, the 0.1-0.3 Hz power of a 10-s window over its 5-15 Hz
power (mostly QRS), on both leads. The simulated side is the AF task's Holter wearer
(``holter3_200hz``, gel electrodes, a day's activities). The same level is used for every
electrode type relative to its 1-40 Hz noise: the textile and dry-electrode recordings here carry
no information below 1 Hz.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import signal as _signal

from .._pcg64_kernels import _pcg64_address_last, pcg64_draws_match, standard_normal_into
from ..errors import ConfigError, SignalError
from . import _kernels

#: Rate of the slow grid the drift is drawn on (Hz): at its 2.5 Hz Nyquist frequency the spectrum
#: is 50 dB below its low-frequency plateau, and linear interpolation to the record's rate keeps
#: the 0.1-0.7 Hz band within 0.3 dB (sinc^2(f / 5)).
DRIFT_FS = 5.0
#: Share of the drift's variance left out by drawing only the bins below the frequency that
#: holds the rest (2.1 Hz at the fitted exponent): the spectrum falls as f^-5.3 there, and
#: the normals are most of the kind's cost.
TAIL = 1e-4
#: Below this frequency (Hz) the spectrum is flat; above :data:`F_HI` it falls as f^-(beta + 4).
F_LO = 0.02
F_HI = 0.7
#: Shortest synthesis span (s): longer than a record so its slowest components are not periodic.
SYNTH_S = 100.0
#: CPSC 2021 patients the drift is NOT fitted on (the project's held-out AF patients).
HELD_OUT_PATIENTS = ("21", "84")
#: CPSC 2021 patients it is fitted on.
FIT_PATIENTS = ("8", "35", "92", "101")
#: The measure's bands (Hz): wander and the QRS reference.
WANDER_BAND = (0.1, 0.3)
QRS_BAND = (5.0, 15.0)
WINDOW_S = 10.0


@functools.lru_cache(maxsize=64)
def _plan(n: int, fs: float, exponent: float) -> tuple:
    """``(m_fft, amplitude [k_max] read-only, step, table)`` for ``n`` samples at ``fs``: the
    synthesis length on the slow grid; the amplitude of bins ``1 .. k_max`` (the bins holding all
    but :data:`TAIL` of the variance; DC left out), giving a unit-variance output; slow samples
    per output sample; and the interpolation table (:func:`cardiosim.noise._kernels.drift_table`)."""
    step = DRIFT_FS / fs
    need = int(math.ceil((n - 1) * step)) + 2
    m = 1 << max(need, int(SYNTH_S * DRIFT_FS)).bit_length()     # a power of two >= both
    f = np.fft.rfftfreq(m, 1.0 / DRIFT_FS)
    s = drift_psd(f, exponent)
    s[0] = 0.0
    s[-1] = 0.0                                  # Nyquist: 50 dB down, and real-valued in irfft
    # irfft of A_k (a_k + i b_k), a, b ~ N(0, 1), 0 < k < m/2: variance 4 sum A_k^2 / m^2
    tail = np.cumsum(s[::-1])[::-1]             # tail[k] = sum of s[k:]
    k_max = int(np.argmax(tail <= TAIL * tail[0])) - 1
    s = s[1:k_max + 1]
    amp = np.sqrt(s / (4.0 * float(np.sum(s)) / m ** 2))
    amp.setflags(write=False)
    table = _kernels.drift_table(n, step, need)
    for arr in table:
        arr.setflags(write=False)
    return m, amp, step, table


def simulate_drift(rng: np.random.Generator, n_electrodes: int, n: int, fs: float, *, median_mv: float,
                   log_sd: float, exponent: float, params: dict | None = None) -> np.ndarray:
    """Drift at each electrode, ``[n_electrodes, n]`` float32 mV.

    Draws one standard normal (the record's level, ``median_mv * exp(log_sd * z)``), then
    ``rng.standard_normal((n_electrodes, 2 k_max))`` for the spectrum's bins ``1 .. k_max``
    (real and imaginary parts; :func:`_plan`). ``params`` receives ``drift_rms_mv`` (the level).
    """
    if not (median_mv >= 0 and math.isfinite(median_mv)):
        raise ConfigError(f"drift median must be a finite level >= 0 mV, got {median_mv!r}")
    if not (log_sd >= 0 and math.isfinite(log_sd)):
        raise ConfigError(f"drift log_sd must be finite and >= 0, got {log_sd!r}")
    if not (0 <= exponent <= 4):
        raise ConfigError(f"drift exponent must be in [0, 4], got {exponent!r}")
    n_e, n = int(n_electrodes), int(n)
    m, amp, step, (starts, w1) = _plan(n, float(fs), float(exponent))
    k = amp.size
    addr = _pcg64_address_last(rng)
    if addr is not None and pcg64_draws_match():
        # the level's normal, the zeros, the bins' normals and their scaling in one kernel call
        # (the numbers and order of the lines below)
        z = np.empty((n_e, m // 2 + 1), dtype=np.complex128)
        with rng.bit_generator.lock:
            z0 = _kernels.drift_spectrum_pcg64_kernel(addr, amp, z)
        level = float(median_mv * math.exp(log_sd * z0))
    else:
        level = float(median_mv * math.exp(log_sd * float(rng.standard_normal())))
        z = np.zeros((n_e, m // 2 + 1), dtype=np.complex128)
        # the normals of rng.standard_normal((n_e, 2 k)) written straight into bins 1 .. k (their
        # real and imaginary parts, in that order): no temporary, the same numbers
        standard_normal_into(rng, z.view(np.float64)[:, 2:2 * k + 2])
        _kernels.scale_bins_kernel(z, amp, 1)          # z[:, 1:k + 1] *= amp, NumPy's complex product
    c2r = _c2r_matching_irfft(m, n_e)
    y = c2r(z, (1,), m, False, 2, None, 1) if c2r is not None else np.fft.irfft(z, m, axis=1)
    out = np.empty((n_e, n), dtype=np.float32)      # every sample written
    scale = np.empty(n_e)
    scale.fill(level)                               # np.full's values without its Python wrapper
    _kernels.drift_kernel(y, starts, w1, scale, out)
    if params is not None:
        params["drift_rms_mv"] = level
    return out


@functools.lru_cache(maxsize=16)
def _c2r_matching_irfft(m: int, rows: int):
    """scipy's pocketfft ``c2r`` (``(a, axes, lastsize, forward, inorm, out, nthreads)``), what
    ``numpy.fft.irfft(z, m, axis=1)`` computes without its Python wrapper (~10 us a call here),
    or ``None`` -- then ``numpy.fft.irfft`` is used -- when this scipy does not have it under
    that name or it does not give ``numpy.fft.irfft``'s values bit for bit on test spectra of
    this shape (scipy transforms several rows at once in SIMD lanes, NumPy one at a time:
    checked once per shape and process)."""
    try:
        from scipy.fft._pocketfft import pypocketfft as pfft
        g = np.random.default_rng(m)
        for _ in range(2):
            z = g.standard_normal((rows, 2 * (m // 2 + 1))).view(np.complex128)
            z[:, 0] = 0.0
            z[:, m // 3:] = 0.0
            want = np.fft.irfft(z, m, axis=1)
            got = pfft.c2r(z, (1,), m, False, 2, None, 1)
            if got.dtype != want.dtype or got.shape != want.shape or got.tobytes() != want.tobytes():
                return None
        return pfft.c2r
    except Exception:        # noqa: BLE001 - any failure: the public function
        return None


def drift_psd(f, exponent: float) -> np.ndarray:
    """The drift's spectral shape ``max(f, F_LO)^-exponent / (1 + (f / F_HI)^4)`` (not normalised)."""
    f = np.asarray(f, dtype=np.float64)
    return np.maximum(f, F_LO) ** -float(exponent) / (1.0 + (f / F_HI) ** 4)


def band_mask(f, band) -> np.ndarray:
    """Bins of ``f`` inside ``band`` (edges included, to a relative 1e-9: ``rfftfreq``'s 0.3 Hz
    may read 0.30000000000000004)."""
    lo, hi = band
    return (f >= lo * (1 - 1e-9)) & (f <= hi * (1 + 1e-9))


def wander_ratio_db(x: np.ndarray, fs: float, *, window_s: float = WINDOW_S) -> np.ndarray:
    """Baseline wander of each whole ``window_s`` window of ``x`` (1-D, mV or any unit):
    ``10 log10(P[0.1-0.3 Hz] / P[5-15 Hz])`` of its Hann-windowed periodogram (mean removed).

    Raises
    ------
    SignalError
        For non-finite samples, a signal shorter than one window, or a rate that cannot
        resolve the 5-15 Hz band.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise SignalError(f"wander_ratio_db takes one lead (1-D), got shape {x.shape}")
    if fs <= 2 * QRS_BAND[1]:
        raise SignalError(f"fs = {fs} Hz cannot resolve the {QRS_BAND[0]:g}-{QRS_BAND[1]:g} Hz reference band")
    w = int(round(window_s * fs))
    if x.size < w:
        raise SignalError(f"signal of {x.size / fs:.2f} s is shorter than one {window_s:g}-s window")
    if not np.all(np.isfinite(x)):
        raise SignalError("wander_ratio_db: the signal has non-finite samples")
    segs = x[: (x.size // w) * w].reshape(-1, w)
    segs = segs - segs.mean(axis=1, keepdims=True)
    f, p = _signal.periodogram(segs * _signal.windows.hann(w)[None, :], fs, axis=1, scaling="spectrum")
    lo = p[:, band_mask(f, WANDER_BAND)].sum(axis=1)
    hi = p[:, band_mask(f, QRS_BAND)].sum(axis=1)
    return 10.0 * np.log10(np.maximum(lo, 1e-30) / np.maximum(hi, 1e-30))


#: The front-end high-pass corner (Hz) of a resting 12-lead recorder held to the diagnostic
#: standard (AHA, Kligfield et al. 2007): the corner of every CinC 2021 source not in
#: :data:`RESTING_CORNER_HZ`.
DIAGNOSTIC_CORNER_HZ = 0.05
#: CinC 2021 sources (record-name prefixes) whose records were high-passed above the drift band
#: by their recorder or its export, and the corner (Hz, second-order Butterworth as the device
#: profiles') fitted to them. The JS records (Ningbo here; the Chapman-Shaoxing records share the
#: prefix) are the only source whose median power *rises* from 0.1 to 0.5 Hz (+5 dB, against -5
#: and -11 dB in the Georgia ``E`` and PTB-XL ``HR`` records): no electrode's drift has a rising
#: spectrum, a high-pass makes one. Fitted by ``scripts/fit_holter_drift.py``
#: (:mod:`cardiosim.recorder_fit`) on the fit half of the records (:func:`resting_split`: JS20000,
#: JS20004, JS20006, JS20008, JS20010): the corner through which simulated resting records, at the
#: drift level fitted to the Holter and 0.05 Hz records, read their wander ratios (percentiles, RMS
#: 1.5 dB at 0.2 Hz; 0.15 Hz 2.8, 0.25 Hz 2.2, 0.3 Hz 3.8), alternating with the level fit until
#: the corner repeats; reported on the other half in ``tests/test_noise_drift.py``. The Georgia and
#: PTB-XL records fall, as a 0.05 Hz recorder's do, and keep :data:`DIAGNOSTIC_CORNER_HZ`.
RESTING_CORNER_HZ = {"JS": 0.20}


def resting_source(name: str) -> str:
    """The CinC 2021 source of a record name: its leading letters (``'JS20004'`` -> ``'JS'``)."""
    s = str(name)
    k = len(s) - len(s.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"))
    if k == 0:
        raise ConfigError(f"CinC 2021 record name {name!r} has no source prefix (letters, then digits)")
    return s[:k].upper()


def resting_corner(name: str, corners: dict | None = None) -> float:
    """High-pass corner (Hz) of the recorder of CinC 2021 record ``name``: its source's in
    ``corners`` (default :data:`RESTING_CORNER_HZ`), else :data:`DIAGNOSTIC_CORNER_HZ`."""
    table = RESTING_CORNER_HZ if corners is None else corners
    return float(table.get(resting_source(name), DIAGNOSTIC_CORNER_HZ))


def by_recorder(names, corners: dict | None = None) -> dict:
    """``{corner Hz: names}`` of CinC 2021 record names, grouped by :func:`resting_corner`
    (sorted by corner; names keep their order)."""
    out: dict = {}
    for n in names:
        out.setdefault(resting_corner(n, corners), []).append(n)
    return {c: tuple(out[c]) for c in sorted(out)}


def recorder_profile(corner_hz: float, folder) -> str:
    """Path of a device profile written to ``folder``: the resting 12-lead front end of
    :func:`cardiosim.sim2real.conditions.resting_12lead_recipe` (``shirt12_500hz``'s, 0.05-150 Hz)
    with its high-pass corner at ``corner_hz`` -- the recorder of a source in
    :data:`RESTING_CORNER_HZ`. The shipped profile itself for the diagnostic corner."""
    from pathlib import Path

    from ..device.profile import PROFILE_DIR, load_device

    corner = float(corner_hz)
    if not (0.0 < corner < 150.0):
        raise ConfigError(f"recorder corner must be in (0, 150) Hz, got {corner_hz!r}")
    if corner == DIAGNOSTIC_CORNER_HZ:
        return "shirt12_500hz"
    text = (PROFILE_DIR / "shirt12_500hz.toml").read_text()
    name = f"resting12_hp{corner:g}".replace(".", "p")
    new = text.replace("band_hz = [0.05, 150.0]", f"band_hz = [{corner!r}, 150.0]")
    new = new.replace('name = "shirt12_500hz"', f'name = "{name}"')
    if new.count(name) != 1 or f"[{corner!r}, 150.0]" not in new:
        raise ConfigError("shirt12_500hz.toml no longer has the band and name this function rewrites")
    path = Path(folder) / f"{name}.toml"
    path.write_text(new)
    load_device(path)          # checked now: a bad corner fails here, not inside a simulation
    return str(path)


def resting_split(data_dir) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(fit, held_out)`` names of the CinC 2021 resting 12-lead records under
    ``data_dir/cinc2021``: sorted, every other record (the first, third, ... are fitted on)."""
    from pathlib import Path

    names = sorted(p.stem for p in (Path(data_dir) / "cinc2021").glob("*.hea"))
    if len(names) < 2:
        raise ConfigError(f"need at least two CinC 2021 records under {data_dir}/cinc2021, found {len(names)}")
    return tuple(names[0::2]), tuple(names[1::2])


def resting_wander(data_dir, names, leads=("I", "II")) -> np.ndarray:
    """Wander ratios dB (:func:`wander_ratio_db`, one 10-s window per record and lead) of the
    CinC 2021 records ``names`` under ``data_dir/cinc2021``, leads ``leads``."""
    from pathlib import Path

    import wfdb

    out = []
    for name in names:
        rec = wfdb.rdrecord(str(Path(data_dir) / "cinc2021" / name))
        for lead in leads:
            if lead not in rec.sig_name:
                raise SignalError(f"CinC 2021 record {name} has no lead {lead!r}")
            out.append(wander_ratio_db(rec.p_signal[:, rec.sig_name.index(lead)], float(rec.fs)))
    return np.concatenate(out)


def cpsc_patients(data_dir) -> tuple[str, ...]:
    """Patients of the CPSC 2021 records (``data_<patient>_<n>.hea``) under ``data_dir/cpsc2021``."""
    from pathlib import Path

    folder = Path(data_dir) / "cpsc2021"
    pats = sorted({h.stem.split("_")[1] for h in folder.glob("data_*_*.hea")}, key=lambda p: (len(p), p))
    if not pats:
        raise ConfigError(f"no CPSC 2021 records (data_<patient>_<n>.hea) under {folder}")
    return tuple(pats)


def cpsc_wander(data_dir, patients, *, channels=(0, 1)) -> dict:
    """``{patient: wander ratios dB of every 10-s window of every record and channel}`` of the
    CPSC 2021 records of ``patients`` under ``data_dir/cpsc2021``, read with wfdb."""
    from pathlib import Path

    import wfdb

    folder = Path(data_dir) / "cpsc2021"
    if not folder.is_dir():
        raise ConfigError(f"no cpsc2021 folder under {data_dir}")
    out = {}
    for p in patients:
        heads = sorted(folder.glob(f"data_{p}_*.hea"))
        if not heads:
            raise ConfigError(f"no CPSC 2021 records of patient {p!r} in {folder}")
        vals = []
        for h in heads:
            rec = wfdb.rdrecord(str(h.with_suffix("")))
            for ch in channels:
                vals.append(wander_ratio_db(rec.p_signal[:, ch], float(rec.fs)))
        out[str(p)] = np.concatenate(vals)
    return out
