"""Class-conditional patient priors: a Gaussian over the beat-parameter vector.

The vector is ``Patient.to_vector()`` = ``[tau (3x11) s, log sigma (3x11), amp (3x11) mV]``.
The shipped default (``data/normal_prior.json``) was fitted to real recordings by
``scripts/fit_ode_prior.py`` with :func:`cardiosim.ode.fit.fit_prior`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataFormatError
from .model import (
    AXES,
    NW,
    P_WAVES,
    QRS_WAVES,
    REPOL,
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
    """Intervals inside NORMAL_BOUNDS, P ending before the QRS, slow P/ST/T (cheapest first)."""
    q0, q1 = p.span(QRS_WAVES, fs=1000.0)
    lo, hi = NORMAL_BOUNDS["qrs"]
    if not lo <= q1 - q0 <= hi:
        return False
    p0, p1 = p.span(P_WAVES, fs=1000.0)
    lo, hi = NORMAL_BOUNDS["pr"]
    if not (lo <= q0 - p0 <= hi and p1 < q0):
        return False
    lo, hi = NORMAL_BOUNDS["qtc"]
    if not lo <= p.t_end(fs=1000.0) - q0 <= hi:
        return False
    # P, ST and T are slow waves: their slopes stay below SLOW_WAVE_REL of the QRS's, so
    # the QRS is delineated by its velocity in the full signal as in the QRS alone
    vq = SLOW_WAVE_REL * p.max_velocity(QRS_WAVES)
    return p.max_velocity(P_WAVES) < vq and p.max_velocity(REPOL) < vq


def sample_patient(rng, morphology="NORM", prior=None, max_tries=5000) -> Patient:
    """Draw one patient: a normal beat from ``prior``, then the class morphology.

    Each draw's timing is projected onto the slots' support (the fit's bounds); draws
    are rejected until their intervals satisfy ``NORMAL_BOUNDS`` (so the prior is
    truncated to the normal criteria of ``CLASSES["NORM"]``).

    Parameters
    ----------
    rng : numpy.random.Generator
    morphology : str — class name (see ``classes.MORPHOLOGIES``)
    prior : Prior, optional — default :func:`default_prior`
    """
    from .classes import MORPHOLOGY_ALIASES
    from .synth import _resolve  # local: synth imports this module

    morphology = _resolve(morphology, MORPHOLOGY_ALIASES, "morphology")
    prior = default_prior() if prior is None else prior
    for _ in range(max_tries):
        v = prior.sample_vector(rng)
        p = Patient.from_vector(v)
        # project timing onto the slots' support (the fit's bounds): a Gaussian prior
        # from few records has tails where slots would swap roles
        p = p.replace(tau=np.clip(p.tau, TAU_BOUNDS[:, 0], TAU_BOUNDS[:, 1]),
                      sigma=np.clip(p.sigma, SIGMA_BOUNDS[:, 0], SIGMA_BOUNDS[:, 1]))
        if _plausible(p):
            break
    else:
        raise ConfigError(f"no plausible normal patient in {max_tries} draws from the prior "
                          f"(bounds {NORMAL_BOUNDS}); the prior is too wide or off-centre")
    p, _ = apply_morphology(p, morphology, rng)
    return p
