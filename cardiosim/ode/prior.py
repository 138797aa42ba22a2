"""Class-conditional patient priors: a Gaussian over the beat-parameter vector.

The vector is ``Patient.to_vector()`` = ``[tau (3x11) s, log sigma (3x11), amp (3x11) mV]``.
The shipped default (``data/normal_prior.json``) was fitted to real recordings by
``scripts/fit_ode_prior.py`` with :func:`cardiosim.ode.fit.fit_prior`.

:func:`sample_patient` truncates the prior to normal beats by rejection: draws are
screened by a numba kernel (``_kernels.draw_screen_kernel``) against NORMAL_BOUNDS and
against a whole-beat delineation with perturbed thresholds, so the NORM class criteria
hold in every beat of a generated record, not only in the template.

Only ~0.3 % of draws from the fitted prior pass that screen. A prior may therefore carry
a *proposal*: a Gaussian moment-matched to screened draws of the prior (the prior
truncated to normal beats), its covariance inflated so that the proposal, screened in
turn, reproduces the truncated prior's spread, its mean corrected so it reproduces the
truncated prior's mean (:func:`fit_proposal`). Sampling then screens proposal draws
(~2 % pass, seven times fewer candidates per patient); the result approximates the
truncated prior in its first two moments (exact rejection from the prior stays
available: ``sample_patient(..., method="rejection")``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
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
    meta : dict — fitting details (residuals, shrinkage, proposal fit, ...)
    proposal_mean : ndarray (99,), optional;  proposal_cov : ndarray (99, 99), optional —
        the sampling proposal of :func:`fit_proposal` (None: sample the prior itself)
    """

    mean: np.ndarray
    cov: np.ndarray
    morphology: str = "NORM"
    n_beats: int = 0
    n_records: int = 0
    sources: tuple = ()
    meta: dict = field(default_factory=dict)
    proposal_mean: np.ndarray | None = None
    proposal_cov: np.ndarray | None = None

    def __post_init__(self):
        m, c, sq = _checked_gaussian(self.mean, self.cov, "prior")
        object.__setattr__(self, "mean", m)
        object.__setattr__(self, "cov", c)
        object.__setattr__(self, "_sqrt_cov", sq)
        if (self.proposal_mean is None) != (self.proposal_cov is None):
            raise ConfigError("a proposal needs both proposal_mean and proposal_cov")
        if self.proposal_mean is not None:
            m, c, sq = _checked_gaussian(self.proposal_mean, self.proposal_cov, "proposal")
            object.__setattr__(self, "proposal_mean", m)
            object.__setattr__(self, "proposal_cov", c)
            object.__setattr__(self, "_proposal_sqrt_cov", sq)

    def sample_vector(self, rng) -> np.ndarray:
        """One draw ``mean + sqrt(cov) z``, z standard normal (99,)."""
        return self.mean + self._sqrt_cov @ rng.standard_normal(self.mean.shape[0])

    def sample_vectors(self, rng, n: int) -> np.ndarray:
        """``n`` draws (n, 99) ``mean + sqrt(cov) z``. ``z`` is drawn in float32 (half the
        cost of float64 normals; 24-bit normals are far finer than the prior is known)."""
        z = rng.standard_normal((int(n), self.mean.shape[0]), dtype=np.float32)
        return self.mean + z.astype(np.float64) @ self._sqrt_cov.T

    def to_json(self) -> str:
        d = {"format": "cardiosim.ode.Prior/1", "morphology": self.morphology,
             "vector": [f"{q}.{a}.{w}" for q in ("tau_s", "log_sigma_s", "amp_mV")
                        for a in AXES for w in WAVES],
             "mean": self.mean.tolist(), "cov": self.cov.tolist(),
             "n_beats": self.n_beats, "n_records": self.n_records,
             "sources": list(self.sources), "meta": self.meta}
        if self.proposal_mean is not None:
            d["proposal"] = {"mean": self.proposal_mean.tolist(), "cov": self.proposal_cov.tolist()}
        return json.dumps(d, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Prior:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataFormatError(f"prior file is not valid JSON: {e}") from None
        if not isinstance(d, dict) or d.get("format") != "cardiosim.ode.Prior/1":
            raise DataFormatError(f"not a cardiosim prior (format {d.get('format') if isinstance(d, dict) else None!r})")
        prop = d.get("proposal") or {}
        try:
            return cls(np.array(d["mean"]), np.array(d["cov"]), d["morphology"], d["n_beats"],
                       d["n_records"], tuple(d["sources"]), d.get("meta", {}),
                       np.array(prop["mean"]) if prop else None, np.array(prop["cov"]) if prop else None)
        except KeyError as e:
            raise DataFormatError(f"prior file lacks the field {e.args[0]!r}") from None

    def without_proposal(self) -> Prior:
        """The same prior, sampled by plain rejection."""
        return replace(self, proposal_mean=None, proposal_cov=None)


def _checked_gaussian(mean, cov, what):
    """(mean, cov, a square root of cov) after checking shapes and positive semi-definiteness."""
    m = np.asarray(mean, float)
    c = np.asarray(cov, float)
    n = 9 * NW
    if m.shape != (n,) or c.shape != (n, n):
        raise ConfigError(f"{what} mean/cov must have shapes ({n},)/({n},{n}), got {m.shape}/{c.shape}")
    if not (np.all(np.isfinite(m)) and np.all(np.isfinite(c))):
        raise ConfigError(f"{what} mean/cov must be finite")
    scale = max(np.abs(c).max(), 1e-300)
    if not np.allclose(c, c.T, atol=1e-12 * scale) or np.linalg.eigvalsh(c).min() < -1e-10 * scale:
        raise ConfigError(f"{what} covariance must be symmetric positive semi-definite")
    w, U = np.linalg.eigh(c)
    return m, c, U * np.sqrt(np.clip(w, 0, None))


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


def _unpacked(v):
    """Vectors (n, 99) as (tau, sigma, amp) arrays (n, 3, 11), timing projected onto the
    slots' support (a Gaussian prior from few records has tails where slots would swap
    roles)."""
    n, m = v.shape[0], 3 * NW
    tau = np.ascontiguousarray(np.clip(v[:, :m].reshape(n, 3, NW), TAU_BOUNDS[:, 0], TAU_BOUNDS[:, 1]))
    sigma = np.clip(np.exp(v[:, m:2 * m]).reshape(n, 3, NW), SIGMA_BOUNDS[:, 0], SIGMA_BOUNDS[:, 1])
    return tau, sigma, np.ascontiguousarray(v[:, 2 * m:].reshape(n, 3, NW))


def _candidates(prior, rng, n):
    """``n`` draws from ``prior`` with timing projected onto the slots' support."""
    return _unpacked(prior.sample_vectors(rng, n))


def sample_patient(rng, morphology="NORM", prior=None, max_tries=20000, method="auto") -> Patient:
    """Draw one patient: a normal beat from ``prior``, then the class morphology.

    Each draw's timing is projected onto the slots' support (the fit's bounds); draws
    are rejected until their intervals satisfy ``NORMAL_BOUNDS`` and the whole beat is
    robustly delineable inside the ``CLASSES["NORM"]`` criteria (:func:`screen_candidates`).
    Standard normals are drawn in batches of SCREEN_BATCH and each draw is formed and
    screened in numba, stopping at the first accepted one: the patient a one-at-a-time
    rejection loop on the same normals would return (the generator just advances by
    whole batches).

    Parameters
    ----------
    rng : numpy.random.Generator
    morphology : str — class name (see ``classes.MORPHOLOGIES``)
    prior : Prior, optional — default :func:`default_prior`
    max_tries : int — candidates screened before giving up (ConfigError)
    method : {"auto", "proposal", "rejection"} — draw candidates from the prior's
        proposal (:func:`fit_proposal`; ~2 % of the shipped proposal's draws pass, against
        ~0.3 % of the prior's) or from the prior itself (exact truncation); "auto" uses
        the proposal when the prior has one
    """
    from .classes import MORPHOLOGY_ALIASES
    from .synth import _resolve  # local: synth imports this module

    morphology = _resolve(morphology, MORPHOLOGY_ALIASES, "morphology")
    prior = default_prior() if prior is None else prior
    if method not in ("auto", "proposal", "rejection"):
        raise ConfigError(f"unknown sampling method {method!r}; expected 'auto', 'proposal' or 'rejection'")
    if method == "proposal" and prior.proposal_mean is None:
        raise ConfigError("this prior has no proposal; fit one with cardiosim.ode.prior.fit_proposal")
    if method != "rejection" and prior.proposal_mean is not None:
        mean, sqrt_cov = prior.proposal_mean, prior._proposal_sqrt_cov
    else:
        mean, sqrt_cov = prior.mean, prior._sqrt_cov
    tried = 0
    lims = _screen_limits()
    x = np.empty(9 * NW)
    while tried < max_tries:
        n = min(SCREEN_BATCH, max_tries - tried)
        # the standard normals of prior.sample_vectors; the kernel forms each draw (QRS
        # entries first) and screens it, so most rejected draws cost half an affine map
        z = rng.standard_normal((n, 9 * NW), dtype=np.float32).astype(np.float64)
        i = _kernels.draw_screen_kernel(z, mean, sqrt_cov, TAU_BOUNDS, SIGMA_BOUNDS,
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


def screened_draws(prior, rng, n_accepted, *, batch=50_000, max_draws=50_000_000):
    """Vectors (n_accepted, 99) of the prior truncated to normal beats (exact rejection:
    prior draws that pass :func:`screen_candidates`), and the acceptance rate."""
    kept, drawn = [], 0
    while sum(len(k) for k in kept) < n_accepted:
        if drawn >= max_draws:
            raise ConfigError(f"fewer than {n_accepted} of {drawn} prior draws pass the normal screen")
        v = prior.sample_vectors(rng, batch)
        tau, sigma, amp = _unpacked(v)
        codes, _ = screen_candidates(tau, sigma, amp)
        kept.append(v[codes == 0])
        drawn += batch
    acc = np.concatenate(kept)
    return acc[:n_accepted], float(acc.shape[0] / drawn)


def fit_proposal(prior, rng, *, n_accepted=20_000, inflation=1.3, shrinkage=0.05, rounds=2,
                 round_draws=200_000) -> Prior:
    """The prior with a sampling proposal fitted to its normal-screened draws.

    The target is the prior truncated to normal beats, represented by ``n_accepted`` exact
    draws (:func:`screened_draws`). The proposal starts as the Gaussian moment-matched to
    them, covariance shrunk toward its diagonal by ``shrinkage`` (as
    :func:`cardiosim.ode.fit.fit_prior`) and scaled by ``inflation`` (screening the
    proposal truncates it again; 1.3 makes the screened proposal's per-parameter
    standard deviations match the target's, median ratio 1.00). Then ``rounds`` of mean
    matching: ``round_draws`` proposal draws are screened and the proposal's mean is moved
    by the difference between the target's mean and the screened draws' mean (matching
    the scales as well was tried: it drives the proposal back toward the prior and the
    acceptance down to the prior's). Acceptance rates and the final agreement are stored
    in ``meta["proposal"]``; for the shipped prior, patients drawn either way have
    indistinguishable QRS, PR and QTc distributions and a QRS peak 3 % (0.13 SD) higher
    through the proposal (tests/test_ode_fit.py).
    """
    if not (np.isfinite(inflation) and inflation >= 1.0):
        raise ConfigError(f"inflation must be >= 1, got {inflation!r}")
    if not 0.0 <= shrinkage <= 1.0:
        raise ConfigError(f"shrinkage must be in [0, 1], got {shrinkage!r}")
    target, rate = screened_draws(prior.without_proposal(), rng, int(n_accepted))
    t_mean, t_sd = target.mean(0), target.std(0)
    cov = np.cov(target.T)
    cov = ((1.0 - shrinkage) * cov + shrinkage * np.diag(np.diag(cov))) * inflation
    mean = t_mean.copy()

    def screened(mean, cov):
        _, _, sq = _checked_gaussian(mean, cov, "proposal")
        z = mean + rng.standard_normal((int(round_draws), 9 * NW)) @ sq.T
        codes, _ = screen_candidates(*_unpacked(z))
        return z[codes == 0], float(np.mean(codes == 0))

    for _ in range(int(rounds)):
        got, _ = screened(mean, cov)
        mean = mean + (t_mean - got.mean(0))
    got, acceptance = screened(mean, cov)
    sd_ratio = got.std(0) / t_sd
    meta = dict(prior.meta)
    meta["proposal"] = {"n_accepted": int(n_accepted), "inflation": float(inflation),
                        "shrinkage": float(shrinkage), "rounds": int(rounds),
                        "round_draws": int(round_draws), "prior_acceptance": rate,
                        "proposal_acceptance": acceptance,
                        "sd_ratio_median": float(np.median(sd_ratio)),
                        "sd_ratio_p10_p90": [float(x) for x in np.percentile(sd_ratio, [10, 90])],
                        "mean_shift_sd_median": float(np.median(np.abs(got.mean(0) - t_mean) / t_sd)),
                        "mean_shift_sd_max": float(np.max(np.abs(got.mean(0) - t_mean) / t_sd))}
    return replace(prior, proposal_mean=mean, proposal_cov=cov, meta=meta)
