"""Class-conditional patient priors: a Gaussian over the beat-parameter vector.

The vector is ``Patient.to_vector()`` = ``[tau (3x11) s, log sigma (3x11), amp (3x11) mV]``.
The shipped default (``data/normal_prior.json``) was fitted to real recordings by
``scripts/fit_ode_prior.py`` with :func:`cardiosim.ode.fit.fit_prior`.

:func:`sample_patient` truncates the prior to normal beats by rejection: draws are
screened by a numba kernel (``_kernels.draw_screen_kernel``) against NORMAL_BOUNDS and
against a whole-beat delineation with perturbed thresholds, so the NORM class criteria
hold in every beat of a generated record, not only in the template.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataFormatError
from . import _kernels
from .classes import CLASSES
from .dipole import _backend
from .model import (
    AXES,
    NW,
    SIGMA_BOUNDS,
    TAU_BOUNDS,
    WAVES,
    Patient,
    apply_morphology,
)

DEFAULT_PRIOR_PATH = Path(__file__).parent / "data" / "normal_prior.json"

# rejection bounds for a normal patient at RR = 1 s (inside CLASSES["NORM"].limits with margin)
NORMAL_BOUNDS = {"pr": (0.14, 0.19), "qrs": (0.07, 0.10), "qtc": (0.36, 0.45)}
SLOW_WAVE_REL = 0.12


@dataclass(frozen=True)
class Prior:
    """Gaussian prior over ``Patient.to_vector()``.

    Attributes
    ----------
    mean : ndarray (99,);  cov : ndarray (99, 99)
    morphology : str — the class it describes ("NORM")
    n_beats, n_records : int — how many fits it was estimated from
    sources : tuple of str — record names used
    meta : dict — fitting details (residuals, shrinkage, ...)
    """

    mean: np.ndarray
    cov: np.ndarray
    morphology: str = "NORM"
    n_beats: int = 0
    n_records: int = 0
    sources: tuple = ()
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        m = np.asarray(self.mean, float)
        c = np.asarray(self.cov, float)
        n = 9 * NW
        if m.shape != (n,) or c.shape != (n, n):
            raise ConfigError(f"prior mean/cov must have shapes ({n},)/({n},{n}), got {m.shape}/{c.shape}")
        scale = max(np.abs(c).max(), 1e-300)
        if not np.allclose(c, c.T, atol=1e-12 * scale) or np.linalg.eigvalsh(c).min() < -1e-10 * scale:
            raise ConfigError("prior covariance must be symmetric positive semi-definite")
        object.__setattr__(self, "mean", m)
        object.__setattr__(self, "cov", c)
        w, U = np.linalg.eigh(c)
        object.__setattr__(self, "_sqrt_cov", U * np.sqrt(np.clip(w, 0, None)))

    def sample_vector(self, rng) -> np.ndarray:
        """One draw ``mean + sqrt(cov) z``, z standard normal (99,)."""
        return self.mean + self._sqrt_cov @ rng.standard_normal(self.mean.shape[0])

    def sample_vectors(self, rng, n: int) -> np.ndarray:
        """``n`` draws (n, 99) ``mean + sqrt(cov) z``. ``z`` is drawn in float32 (half the
        cost of float64 normals; 24-bit normals are far finer than the prior is known)."""
        z = rng.standard_normal((int(n), self.mean.shape[0]), dtype=np.float32)
        return self.mean + z.astype(np.float64) @ self._sqrt_cov.T

    def to_json(self) -> str:
        return json.dumps({"format": "cardiosim.ode.Prior/1", "morphology": self.morphology,
                           "vector": [f"{q}.{a}.{w}" for q in ("tau_s", "log_sigma_s", "amp_mV")
                                      for a in AXES for w in WAVES],
                           "mean": self.mean.tolist(), "cov": self.cov.tolist(),
                           "n_beats": self.n_beats, "n_records": self.n_records,
                           "sources": list(self.sources), "meta": self.meta}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Prior:
        d = json.loads(text)
        if d.get("format") != "cardiosim.ode.Prior/1":
            raise DataFormatError(f"not a cardiosim prior (format {d.get('format')!r})")
        return cls(np.array(d["mean"]), np.array(d["cov"]), d["morphology"], d["n_beats"],
                   d["n_records"], tuple(d["sources"]), d.get("meta", {}))


def read_prior(path) -> Prior:
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"prior file not found: {path}")
    return Prior.from_json(path.read_text())


def write_prior(prior: Prior, path) -> None:
    """Write atomically (temporary file, then rename)."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(prior.to_json())
    tmp.replace(path)


@lru_cache(maxsize=1)
def default_prior() -> Prior:
    """The shipped normal prior (fitted to PTB and CinC 2021 records)."""
    return read_prior(DEFAULT_PRIOR_PATH)


def _plausible(p: Patient) -> bool:
    """Intervals inside NORMAL_BOUNDS, P ending before the QRS, slow P/ST/T (one patient;
    the batched :func:`screen_candidates` is what sampling uses)."""
    codes, _ = screen_candidates(p.tau[None], p.sigma[None], p.amp[None])
    return bool(codes[0] == 0)


SCREEN_FS = 1000.0  # Hz, delineation grid of the screen
SCREEN_BATCH = 128  # candidates drawn and screened per batch (acceptance ~0.4 %)
REJECT_REASONS = {0: "accepted", 1: "qrs", 2: "pr", 3: "qtc", 4: "slow_wave", 5: "robust_qrs",
                  6: "robust_t", 7: "robust_p", -1: "not screened"}


def screen_candidates(tau, sigma, amp, *, first_only=False, backend="numba"):
    """Screen candidate patients against NORMAL_BOUNDS at RR = 1 s.

    Each candidate's QRS (spatial velocity at 15 % of its peak), P (magnitude at 5 %) and
    T end (tangent method) are delineated on a 1 kHz grid exactly as ``Patient.span`` /
    ``Patient.t_end`` do; a candidate passes when QRS, PR and QTc lie in NORMAL_BOUNDS,
    P ends before the QRS onset and the P and ST-T peak slopes stay below SLOW_WAVE_REL
    of the QRS's (so the QRS is delineated by its velocity in the full signal as in the
    QRS alone).

    Parameters
    ----------
    tau, sigma : ndarray (B, 3, 11), s — centres / widths at RR = 1 s
    amp : ndarray (B, 3, 11), mV
    first_only : bool — stop at the first accepted candidate (later ones: code -1)
    backend : "numba" or "numpy" (the twin, built on ``Patient``'s own methods)

    Returns
    -------
    codes : ndarray (B,) int — 0 accepted, else the first failed check (REJECT_REASONS)
    intervals : ndarray (B, 3), s — QRS, PR, QT (nan where not reached)
    """
    arrs = [np.ascontiguousarray(x, np.float64) for x in (tau, sigma, amp)]
    if arrs[0].ndim != 3 or arrs[0].shape[1:] != (3, NW) or any(a.shape != arrs[0].shape for a in arrs):
        raise ConfigError(f"tau, sigma, amp must share shape (B, 3, {NW}), got "
                          f"{[a.shape for a in arrs]}")
    if np.any(arrs[1] <= 0) or not all(np.all(np.isfinite(a)) for a in arrs):
        raise ConfigError("candidate widths must be positive and all parameters finite")
    out = np.empty((arrs[0].shape[0], 4))
    _backend(backend).screen_kernel(*arrs, _screen_limits(), SCREEN_FS, bool(first_only), out)
    return out[:, 3].astype(np.int64), out[:, :3]


def _screen_limits():
    """The kernel's bounds: NORMAL_BOUNDS (QRS, PR, QTc), SLOW_WAVE_REL, then the NORM class
    criteria (QRS, PR, QTc) the whole-beat delineation must meet robustly."""
    crit = CLASSES["NORM"].limits
    return np.array([*NORMAL_BOUNDS["qrs"], *NORMAL_BOUNDS["pr"], *NORMAL_BOUNDS["qtc"], SLOW_WAVE_REL,
                     *crit["qrs"], *crit["pr"], *crit["qtc"]], dtype=np.float64)


# entries of Patient.to_vector() belonging to the QRS slots (stage 1 of the screen) / not
_QRS_IDX = np.array([b * 3 * NW + a * NW + w for b in range(3) for a in range(3) for w in range(2, 8)])
_REST_IDX = np.setdiff1d(np.arange(9 * NW), _QRS_IDX)


def _project(p: Patient) -> Patient:
    """Timing projected onto the slots' support (a Gaussian prior from few records has
    tails where slots would swap roles)."""
    return p.replace(tau=np.clip(p.tau, TAU_BOUNDS[:, 0], TAU_BOUNDS[:, 1]),
                     sigma=np.clip(p.sigma, SIGMA_BOUNDS[:, 0], SIGMA_BOUNDS[:, 1]))


def _candidates(prior, rng, n):
    """``n`` draws from ``prior`` with timing projected onto the slots' support."""
    v = prior.sample_vectors(rng, n)
    m = 3 * NW
    # a Gaussian prior from few records has tails where slots would swap roles
    tau = np.ascontiguousarray(np.clip(v[:, :m].reshape(n, 3, NW), TAU_BOUNDS[:, 0], TAU_BOUNDS[:, 1]))
    sigma = np.clip(np.exp(v[:, m:2 * m]).reshape(n, 3, NW), SIGMA_BOUNDS[:, 0], SIGMA_BOUNDS[:, 1])
    return tau, sigma, np.ascontiguousarray(v[:, 2 * m:].reshape(n, 3, NW))


def sample_patient(rng, morphology="NORM", prior=None, max_tries=20000) -> Patient:
    """Draw one patient: a normal beat from ``prior``, then the class morphology.

    Each draw's timing is projected onto the slots' support (the fit's bounds); draws
    are rejected until their intervals satisfy ``NORMAL_BOUNDS`` and the whole beat is
    robustly delineable inside the ``CLASSES["NORM"]`` criteria (:func:`screen_candidates`;
    about 0.3 % of draws of the shipped prior pass). Standard normals are drawn in batches
    of SCREEN_BATCH and each draw is formed and screened in numba, stopping at the first
    accepted one: the patient a one-at-a-time rejection loop on the same normals would
    return (the generator just advances by whole batches).

    Parameters
    ----------
    rng : numpy.random.Generator
    morphology : str — class name (see ``classes.MORPHOLOGIES``)
    prior : Prior, optional — default :func:`default_prior`
    max_tries : int — candidates screened before giving up (ConfigError)
    """
    from .classes import MORPHOLOGY_ALIASES
    from .synth import _resolve  # local: synth imports this module

    morphology = _resolve(morphology, MORPHOLOGY_ALIASES, "morphology")
    prior = default_prior() if prior is None else prior
    tried = 0
    lims = _screen_limits()
    x = np.empty(9 * NW)
    while tried < max_tries:
        n = min(SCREEN_BATCH, max_tries - tried)
        # the standard normals of prior.sample_vectors; the kernel forms each draw (QRS
        # entries first) and screens it, so most rejected draws cost half an affine map
        z = rng.standard_normal((n, 9 * NW), dtype=np.float32).astype(np.float64)
        i = _kernels.draw_screen_kernel(z, prior.mean, prior._sqrt_cov, TAU_BOUNDS, SIGMA_BOUNDS,
                                        _QRS_IDX, _REST_IDX, lims, SCREEN_FS, x, np.empty((n, 4)))
        if i >= 0:
            p = _project(Patient.from_vector(x))
            break
        tried += n
    else:
        raise ConfigError(f"no plausible normal patient in {max_tries} draws from the prior "
                          f"(bounds {NORMAL_BOUNDS}); the prior is too wide or off-centre")
    p, _ = apply_morphology(p, morphology, rng)
    return p
