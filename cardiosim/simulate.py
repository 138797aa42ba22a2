"""One simulated record: source x body x garment x motion x noise x device.

Implements DESIGN.md's one equation for every electrode ``e`` of the device's layout::

    phi_e(t)  = L(r_e(t)) . R(t) p(t) + n_e(t)      electrode potential (mV)
    lead_k(t) = sum_e M[k, e] phi_e(t) + residual_k  device montage (+ non-dipolar part)
    recorded  = device(lead)                          band-pass, resample, gain, ADC

``r_e(t)`` is the electrode position after garment fit (slip, rotation, stretch,
jitter) and motion, landed back on the torso surface; ``R(t)`` turns the heart
(a static per-record orientation change and respiration); ``n_e`` is born at the
electrode-skin interface so it reaches every lead using that electrode.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from . import config as _config
from ._scratch import scratch as _scratch
from .errors import ConfigError, SignalError
from .frames import rotation_matrix
from .device.failures import FailureConfig
from . import noise as _noise_pkg      # loaded by the line below anyway; bound once, not per record
from .noise import NoiseConfig
from .sources.base import CardiacSource

__all__ = ["ClassicAugmentConfig", "GarmentConfig", "HeartConfig", "SimulationConfig", "SimulationContext", "SimulatedRecord",
           "simulate_records",
           "make_context", "simulate_record", "sample_garment_offsets"]


@dataclass(frozen=True)
class GarmentConfig:
    """How the shirt sits on the body, drawn once per record (SDs of normal draws).

    Attributes
    ----------
    slip_sd : float, m
        Vertical shift of the whole garment.
    rotation_sd_deg : float, degrees
        Rotation of the garment about the body's long axis.
    stretch_sd : float
        Relative circumferential stretch (garment size mismatch); 0.05 = 5 %.
    jitter_sd : float, m
        Independent per-electrode placement error.  Wenger & Kligfield (1996) measured
        2.9 cm mean misplacement by technicians; a woven electrode is fixed to the
        fabric, so the default is smaller.
    """

    slip_sd: float = 0.01
    rotation_sd_deg: float = 2.0
    stretch_sd: float = 0.03
    jitter_sd: float = 0.004

    def __post_init__(self):
        for name in ("slip_sd", "rotation_sd_deg", "stretch_sd", "jitter_sd"):
            _config.check_range(name, getattr(self, name), 0.0)
        _config.check_range("slip_sd", self.slip_sd, hi=0.1)
        _config.check_range("jitter_sd", self.jitter_sd, hi=0.1)
        _config.check_range("stretch_sd", self.stretch_sd, hi=0.5)


@dataclass(frozen=True)
class HeartConfig:
    """Per-record variation of the heart's orientation.

    Attributes
    ----------
    rotation_sd_deg : float, degrees
        SD of a random static rotation of the dipole about each axis; Hoekema et al.
        (1999) report a 5-9 degree spread of the heart's long axis (PHYSICS.md section 2).
    respiration : bool
        Rotate the heart with breathing (about 0.1 rad, PHYSICS.md section 2) when the
        motion model provides it.
    """

    rotation_sd_deg: float = 5.0
    respiration: bool = True

    def __post_init__(self):
        _config.check_range("rotation_sd_deg", self.rotation_sd_deg, 0.0, 45.0)


@dataclass(frozen=True)
class ClassicAugmentConfig:
    """Naive augmentations applied to the device output, for comparison with physics.

    All are off by default. They are the usual ones of ECG augmentation libraries
    (:mod:`cardiosim.noise.augment`); set ``SimulationConfig.noiseless()``-like physics
    and a standard layout to get the classic "hospital ECG + random augmentation" baseline.

    Attributes
    ----------
    amplitude_scale : (low, high)
        Uniform gain range; (1, 1) is off.
    time_warp : float
        Maximum relative local time stretch; 0 is off.
    lead_dropout : float
        Probability that a lead is zeroed; 0 is off.
    lead_mixing : float
        Strength of random mixing between leads; 0 is off.
    """

    amplitude_scale: tuple[float, float] = (1.0, 1.0)
    time_warp: float = 0.0
    lead_dropout: float = 0.0
    lead_mixing: float = 0.0

    def __post_init__(self):
        lo, hi = self.amplitude_scale
        _config.check_range("augment.amplitude_scale[0]", lo, 0.0, lo_open=True)
        _config.check_range("augment.amplitude_scale[1]", hi, lo)
        _config.check_range("augment.time_warp", self.time_warp, 0.0, 0.5)
        _config.check_range("augment.lead_dropout", self.lead_dropout, 0.0, 1.0)
        _config.check_range("augment.lead_mixing", self.lead_mixing, 0.0, 1.0)

    @property
    def enabled(self) -> bool:
        return (self.amplitude_scale != (1.0, 1.0) or self.time_warp > 0 or self.lead_dropout > 0
                or self.lead_mixing > 0)

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
        """Augment ``x [n_leads, T]``; returns the new array and the drawn parameters."""
        from .noise import augment

        params: dict = {}
        steps = [(self.amplitude_scale != (1.0, 1.0), augment.amplitude_scale, {"scale": self.amplitude_scale}),
                 (self.time_warp > 0, augment.time_warp, {"max_warp": self.time_warp}),
                 (self.lead_dropout > 0, augment.lead_dropout, {"p": self.lead_dropout}),
                 (self.lead_mixing > 0, augment.lead_mixing, {"alpha": self.lead_mixing})]
        for on, fn, kw in steps:
            if on:
                x, p = fn(x, rng, **kw)
                params.update({f"classic_{fn.__name__}_{k}": _plain(v) for k, v in p.items()})
        return x, params


def _plain(v):
    v = np.asarray(v)
    return v.item() if v.ndim == 0 else v.tolist()


@lru_cache(maxsize=32)
def _activity_cdf(items: tuple) -> tuple[tuple, np.ndarray]:
    """``(names, cdf)`` of ``(name, weight)`` pairs as ``Generator.choice(n, p=w / w.sum())``
    forms them (``cdf = p.cumsum(); cdf /= cdf[-1]``; read-only)."""
    names = tuple(n for n, _ in items)
    w = np.array([float(v) for _, v in items], dtype=float)
    cdf = (w / w.sum()).cumsum()
    cdf /= cdf[-1]
    cdf.flags.writeable = False
    return names, cdf


@dataclass(frozen=True)
class SimulationConfig:
    """Everything per record that is not the source, the body or the device.

    Attributes
    ----------
    garment, heart : GarmentConfig, HeartConfig
    activities : dict of str to float
        Weights of activity states ('rest', 'arms', 'walk', 'run', 'squats' as in the
        real textile recordings; the older 'sitting', 'walking', 'running',
        'arm_movement', 'posture_change' still work); one is drawn per record.
    motion : bool
        Simulate motion (breathing, activity) at all; False gives a static garment.
    noise : NoiseConfig
        Electrode noise settings (:class:`cardiosim.noise.NoiseConfig`).
    add_noise : bool
        False gives the noiseless physical projection (used by tests and for clean
        references).
    leadfield_rate : float, Hz
        Rate at which lead fields are evaluated along electrode trajectories; they are
        linearly interpolated in between (electrodes move at breathing/gait rates).
    failures : FailureConfig
        Rates of whole-record front-end failures (missing electrode or ground, dead
        channel or device; :mod:`cardiosim.device.failures`), all 0 by default; the drawn
        failure is stored as ``params['failure']``.
    augment : ClassicAugmentConfig
        Naive augmentations after the device, off by default (for comparisons).
    """

    garment: GarmentConfig = field(default_factory=GarmentConfig)
    heart: HeartConfig = field(default_factory=HeartConfig)
    activities: dict[str, float] = field(default_factory=lambda: {"rest": 1.0})
    motion: bool = True
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    add_noise: bool = True
    leadfield_rate: float = 25.0
    augment: ClassicAugmentConfig = field(default_factory=ClassicAugmentConfig)
    failures: FailureConfig = field(default_factory=FailureConfig)

    def __post_init__(self):
        _config.check_range("leadfield_rate", self.leadfield_rate, 0.0, lo_open=True)
        if not self.activities or sum(self.activities.values()) <= 0:
            raise ConfigError("activities must give a positive weight to at least one activity")
        for name, w in self.activities.items():
            _config.check_range(f"activities.{name}", w, 0.0)

    def draw_activity(self, rng: np.random.Generator) -> str:
        """Draw one activity state from :attr:`activities`: ``rng.choice(len(names), p=w / w.sum())``
        over the sorted names, the same draw (one ``rng.random()`` against ``choice``'s
        normalised cumulative weights, made once per weighting)."""
        names, cdf = _activity_cdf(tuple(sorted(self.activities.items())))
        return names[int(cdf.searchsorted(rng.random(), side="right"))]

    @classmethod
    def from_dict(cls, data) -> "SimulationConfig":
        return _config.from_dict(cls, data)

    @classmethod
    def noiseless(cls, **kw) -> "SimulationConfig":
        """A config with the garment exactly in place, no motion and no noise."""
        return cls(garment=GarmentConfig(0.0, 0.0, 0.0, 0.0), heart=HeartConfig(0.0, False),
                   motion=False, add_noise=False, **kw)


@dataclass(frozen=True)
class SimulationContext:
    """What stays the same across records: the body, its lead field, the device.

    Build with :func:`make_context`; reuse for every record (the BEM solve is cached).
    """

    torso: object
    forward: object
    layout: object
    device: object
    frank_layout: object

    @property
    def montage(self):
        return _montage(self.device.montage)


@lru_cache(maxsize=16)
def _montage(name: str):
    """``make_montage(name)``, built once per name (a Montage is frozen, its matrix read-only;
    building one cost 40 us a record)."""
    from .leads import make_montage
    return make_montage(name)


@dataclass(frozen=True)
class SimulatedRecord:
    """One simulated device recording and every parameter that shaped it.

    Attributes
    ----------
    ecg : ndarray, shape (n_leads, T), float32, mV
    fs : float, Hz
    leads : tuple of str
    electrodes : tuple of str
    displacement : ndarray, shape (n_electrodes, 3), float32, m
        Mean displacement of each electrode from its layout position (LPS).
    snr_db : dict
        Realised SNR per noise kind (dB).
    heart_rate : float, bpm
    labels : tuple of str
    source_id : str
    accelerometer : ndarray, shape (3, T), float32, m/s^2, or None
    params : dict
        Flat mapping of every random or physical parameter (JSON-serialisable).
    annotations : dict of str -> ndarray (n_beats,) int64
        Ground truth in the output's time base (sample indices of ``ecg``, -1 where a beat
        lacks the wave): the keys of ``cardiosim.ode.Beats.annotations`` for ODE sources,
        ``R_peak`` for real ones (QRS detector on the noiseless projection).
    beat_types : tuple of str
        WFDB symbol per beat (``N``, ``V``, ``A``; ``Q`` unclassified).
    clean_ecg : ndarray, shape (n_leads, T), float32, mV, or None
        The same recording without electrode noise (``simulate_record(clean=True)``).
    """

    ecg: np.ndarray
    fs: float
    leads: tuple
    electrodes: tuple
    displacement: np.ndarray
    snr_db: dict
    heart_rate: float
    labels: tuple
    source_id: str
    accelerometer: np.ndarray | None
    params: dict
    annotations: dict = field(default_factory=dict)
    beat_types: tuple = ()
    clean_ecg: np.ndarray | None = None

    def params_json(self) -> str:
        return json.dumps(self.params, sort_keys=True, default=_json_default)


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"parameter of type {type(obj).__name__} is not JSON-serialisable")


FORWARD_MODELS = ("bem", "bem-lungs", "infinite")


def make_context(device: str = "shirt12_500hz", *, forward: str = "bem", torso=None, layout=None,
                 cache_dir=None) -> SimulationContext:
    """Build the body, lead field and device shared by many records.

    Parameters
    ----------
    device : str
        Device profile name or TOML path (:func:`cardiosim.device.load_device`).
    forward : {'bem', 'bem-lungs', 'infinite'}
        Volume conductor: homogeneous boundary-element torso; the same torso with two
        lungs of lower conductivity (0.05 vs 0.2 S/m, :func:`cardiosim.forward.make_multilayer_bem_model`);
        or infinite homogeneous medium.
    torso : TorsoMesh, optional
        Defaults to :func:`cardiosim.geometry.make_torso` ().
    layout : str or ElectrodeLayout, optional
        Electrode layout name or TOML path overriding the device's own (e.g.
        ``'standard12'`` to put the shirt's electrodes exactly at the standard positions),
        or electrodes already on ``torso`` (:func:`cardiosim.geometry.read_electrodes`); it
        must hold every electrode of the device's montage.
    """
    from . import device as _device
    from . import forward as _forward
    from . import geometry as _geometry

    profile = _device.load_device(device)
    torso = _geometry.make_torso() if torso is None else torso
    if forward == "bem":
        model = _forward.make_bem_model(torso, cache_dir=cache_dir)
    elif forward == "bem-lungs":
        model = _forward.make_multilayer_bem_model(torso, cache_dir=cache_dir)
    elif forward == "infinite":
        model = _forward.make_infinite_model(torso.heart.position)
    else:
        raise ConfigError(f"unknown forward model {forward!r}; expected one of {FORWARD_MODELS}")
    if not isinstance(layout, _geometry.ElectrodeLayout):
        layout = _geometry.make_layout(profile.layout if layout is None else layout, torso)
    from .leads import make_montage
    missing = [e for e in make_montage(profile.montage).electrodes if e not in layout.electrodes]
    if missing:
        from .errors import LeadError
        raise LeadError(f"electrode layout {layout.name!r} lacks {missing} needed by device {profile.name!r} "
                        f"(montage {profile.montage!r}); it has {list(layout.electrodes)}")
    frank = _geometry.make_layout("frank", torso)
    return SimulationContext(torso=torso, forward=model, layout=layout, device=profile, frank_layout=frank)


def sample_garment_offsets(positions: np.ndarray, center: np.ndarray, cfg: GarmentConfig,
                           rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Draw how the garment sits: offsets ``(n, 3)`` m in LPS, before landing on the surface.

    Slip is a vertical shift, rotation turns the garment about the body axis through
    ``center``, stretch scales horizontal distances from the axis, jitter is per electrode.
    """
    n = positions.shape[0]
    slip = rng.normal(0.0, cfg.slip_sd) if cfg.slip_sd else 0.0
    angle = np.deg2rad(rng.normal(0.0, cfg.rotation_sd_deg)) if cfg.rotation_sd_deg else 0.0
    stretch = rng.normal(0.0, cfg.stretch_sd) if cfg.stretch_sd else 0.0
    jitter = rng.normal(0.0, cfg.jitter_sd, size=(n, 3)) if cfg.jitter_sd else np.zeros((n, 3))
    rel = positions - center
    rot = rotation_matrix("z", angle)
    moved = (rel @ rot.T)
    moved[:, :2] *= 1.0 + stretch
    offsets = moved - rel + jitter
    offsets[:, 2] += slip
    params = {"garment_slip_m": float(slip), "garment_rotation_deg": float(np.rad2deg(angle)),
              "garment_stretch": float(stretch)}
    return offsets, params


def _heart_rotation(cfg: HeartConfig, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    if cfg.rotation_sd_deg == 0:
        return np.eye(3), {"heart_rot_x_deg": 0.0, "heart_rot_y_deg": 0.0, "heart_rot_z_deg": 0.0}
    ang = rng.normal(0.0, cfg.rotation_sd_deg, size=3)
    rot = rotation_matrix("z", np.deg2rad(ang[2])) @ rotation_matrix("y", np.deg2rad(ang[1])) @ \
        rotation_matrix("x", np.deg2rad(ang[0]))
    return rot, {"heart_rot_x_deg": float(ang[0]), "heart_rot_y_deg": float(ang[1]), "heart_rot_z_deg": float(ang[2])}


def _rotate_small(p: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Rotate ``p [3, T]`` by time-varying angles ``[3, T]`` (rad) about x, then y, then z
    (:func:`cardiosim.forward._kernels.rotate_small_numpy`; the trajectory kernel applies
    the same rotation in its pass)."""
    from .forward._kernels import rotate_small_numpy
    return rotate_small_numpy(p, angles)


def _electrode_potentials(ctx: SimulationContext, positions_t: np.ndarray, times_idx: np.ndarray,
                          dipole: np.ndarray, surface=None, heart_angles: np.ndarray | None = None,
                          location=None, lf: np.ndarray | None = None) -> np.ndarray:
    """phi [n_e, T] in mV for electrode positions sampled at ``times_idx`` ([K, n_e, 3]).

    ``surface`` (a real source's fitted non-dipolar field, ``CardiacSource.surface``) adds
    ``nondipolar_transfer(r_e(t)) @ coefficients``: it moves with the electrodes but does
    not turn with the heart. ``heart_angles`` ([3, T] rad, optional) turns the dipole with
    respiration first (:func:`_rotate_small`), inside the trajectory kernel when K > 1.
    ``location`` (``(tri [K, n_e], bary [K, n_e, 3])`` on the context's torso, from the
    surface walk that produced ``positions_t``) lets a BEM lead field be read without
    searching for the points again (equal to rounding: the search finds the same points).
    ``lf`` ([K, n_e, 3] mV/(A m), without ``surface``): that lead field, read already (the
    block path reads it for the records of a sub-block in one call, :func:`_block_potentials`).
    """
    k, n_e, _ = positions_t.shape
    points = positions_t.reshape(-1, 3)
    src = dipole
    if surface is None and lf is not None:
        pass
    elif surface is None and location is not None and _reads_walk_locations(ctx):
        lf = 1e3 * ctx.forward.lead_field_at(location[0].reshape(-1), location[1].reshape(-1, 3)).reshape(k, n_e, 3)
    elif surface is None:
        lf = 1e3 * ctx.forward.lead_field(points).reshape(k, n_e, 3)  # mV/(A m)
    else:
        st = surface.torso
        if st is not ctx.torso and not (st.vertices.shape == ctx.torso.vertices.shape
                                        and np.array_equal(st.vertices, ctx.torso.vertices)):
            raise ConfigError(f"the source's surface field was fitted on torso {st.name!r}, not on the "
                              f"context's {ctx.torso.name!r}; convert the record with the context's torso")
        if _dipole_field_is_the_context_s(surface, ctx):
            # one closest-point search for both parts (SurfaceSource.split_transfer): the dipole
            # part is the context's lead field interpolated from the same vertex values (equal to
            # rounding: another locator finds the same point), the rest as nondipolar_transfer
            lead, tr = surface.split_transfer(points)
            lf = 1e3 * lead.reshape(k, n_e, 3)
        else:
            lf = 1e3 * ctx.forward.lead_field(points).reshape(k, n_e, 3)
            tr = surface.nondipolar_transfer(points)
        lf = np.concatenate([lf, tr.reshape(k, n_e, -1)], axis=2)
        src = np.concatenate([dipole, surface.coefficients], axis=0)
    if k == 1:
        if heart_angles is not None:
            src = np.concatenate([_rotate_small(src[:3], heart_angles), src[3:]]) if len(src) > 3 else \
                _rotate_small(src, heart_angles)
        phi = lf[0] @ src
    else:
        # the lead field interpolated linearly between trajectory samples (np.interp's weights),
        # and the dipole turned by the heart's angles, in one numba pass (forward._kernels;
        # its NumPy twin is the oracle)
        from .forward._kernels import potentials_along_trajectory
        phi = potentials_along_trajectory(lf, times_idx, src, heart_angles)
    return phi


def _reads_walk_locations(ctx: SimulationContext) -> bool:
    """Whether the context's forward model is a field on the context's own torso mesh that
    can be read at a (triangle, barycentric) location (the BEM models)."""
    return hasattr(ctx.forward, "lead_field_at") and getattr(ctx.forward, "torso", None) is ctx.torso


def _dipole_field_is_the_context_s(surface, ctx: SimulationContext) -> bool:
    """Whether a surface source's dipole part is the context's forward model's lead field at
    the torso's vertices (what ``sources.recording_to_source`` gives it), so that
    ``surface.split_transfer`` may stand for ``ctx.forward.lead_field`` plus
    ``surface.nondipolar_transfer``."""
    if not hasattr(surface, "split_transfer") or getattr(surface, "node_dipole", None) is None:
        return False
    from .sources.adapter import _node_lead_field   # the adapter's cached vertex lead field

    ref = _node_lead_field(ctx.forward, ctx.torso)
    node = surface.node_dipole
    return node is ref or (node.shape == ref.shape and np.array_equal(node, ref))


def simulate_record(source: CardiacSource, rng: np.random.Generator, *, context: SimulationContext | None = None,
                    config: SimulationConfig | None = None, device_stage: bool = True,
                    clean: bool = False) -> SimulatedRecord:
    """Simulate what the context's device records from ``source``.

    Parameters
    ----------
    source : CardiacSource
        Dipole ``[3, T]`` in A m (LPS) at ``source.fs`` plus optional residual.
    rng : numpy.random.Generator
        The only source of randomness; the same generator state gives the same record.
    context : SimulationContext, optional
        Body, lead field and device (default: :func:`make_context` ()).
    config : SimulationConfig, optional
    device_stage : bool
        False skips the device (filter, resampling, ADC) and returns the leads at the
        source rate: the physical signal at the electrodes, for validation.
    clean : bool
        Also record the leads without electrode noise through the same device
        (``SimulatedRecord.clean_ecg``): the denoising target of the noisy ``ecg``.

    Returns
    -------
    SimulatedRecord

    Notes
    -----
    The record runs through the stages of :data:`STAGES` one after another; it is the oracle
    of :func:`simulate_records`, which runs each stage over several records before the next.
    """
    r = _start_record(source, rng, context, config, device_stage, clean, 0)
    for _, stage in STAGES:
        stage(r)
    return _finish_record(r)


def simulate_records(sources, rngs, *, contexts=None, config: SimulationConfig | None = None,
                     device_stage: bool = True, clean: bool = False, block: int = 8,
                     timings: dict | None = None) -> list:
    """Simulate several records stage by stage: :func:`simulate_record` of each, bit for bit.

    The records run in sub-blocks of ``block``: each stage of :data:`STAGES` runs over every
    record of the sub-block before the next stage starts (those of :data:`BLOCK_STAGES` in
    one call for the sub-block). Every record draws from its own
    generator in the same order as :func:`simulate_record`, so the records, and the
    generators' states afterwards, are the same for any ``block``.

    Parameters
    ----------
    sources : sequence of CardiacSource
    rngs : sequence of numpy.random.Generator
        One per source, each the only source of randomness of its record.
    contexts : SimulationContext or sequence of SimulationContext, optional
        One for all records or one per record (default: :func:`make_context` ()).
    config : SimulationConfig, optional
    device_stage, clean : bool
        As in :func:`simulate_record`.
    block : int
        Records in flight at once (each holds ~3 MB between stages, and one per-thread
        leads buffer per position in the sub-block).
    timings : dict, optional
        Receives the process CPU seconds spent in each stage (added to ``timings[name]``;
        names of :data:`STAGES`, plus ``'start'`` and ``'finish'``).

    Returns
    -------
    list of SimulatedRecord
        In the order of ``sources``.
    """
    sources = list(sources)
    rngs = list(rngs)
    if len(rngs) != len(sources):
        raise ConfigError(f"simulate_records needs one generator per source: {len(sources)} sources, "
                          f"{len(rngs)} generators")
    if isinstance(contexts, SimulationContext) or contexts is None:
        contexts = [contexts] * len(sources)
    else:
        contexts = list(contexts)
        if len(contexts) != len(sources):
            raise ConfigError(f"simulate_records needs one context per source (or one for all): {len(sources)} "
                              f"sources, {len(contexts)} contexts")
    block = int(block)
    if block < 1:
        raise ConfigError(f"block must be at least 1, got {block}")
    clock = None
    if timings is not None:
        import time
        clock = time.process_time
    out = []
    for lo in range(0, len(sources), block):
        hi = min(lo + block, len(sources))
        t0 = clock() if clock else 0.0
        runs = [_start_record(sources[j], rngs[j], contexts[j], config, device_stage, clean, j - lo)
                for j in range(lo, hi)]
        if clock:
            t1 = clock()
            timings["start"] = timings.get("start", 0.0) + t1 - t0
        for name, stage in STAGES:
            batched = BLOCK_STAGES.get(name) if len(runs) > 1 else None
            if batched is not None:
                batched(runs)
            else:
                for r in runs:
                    stage(r)
            if clock:
                t0, t1 = t1, clock()
                timings[name] = timings.get(name, 0.0) + t1 - t0
        out.extend(_finish_record(r) for r in runs)
        if clock:
            timings["finish"] = timings.get("finish", 0.0) + clock() - t1
    return out


class _Record:
    """One record in flight between the stages of :func:`simulate_record`: its inputs, what
    each stage leaves for the later ones, and ``slot`` (its position in a sub-block of
    :func:`simulate_records`, which picks its per-thread leads buffer)."""

    __slots__ = ("source", "rng", "ctx", "cfg", "device_stage", "clean", "slot", "fs", "n_t", "montage",
                 "electrodes", "base", "params", "center", "fitted", "motion", "heart_angles", "dipole",
                 "times_idx", "traj", "positions_t", "location", "displacement", "phi", "rows", "clean_leads",
                 "leads", "snr_db", "contact_lost", "recorded", "fs_out", "clean_ref", "clean_recorded",
                 "annotations", "beat_types")


def _start_record(source: CardiacSource, rng: np.random.Generator, context, config, device_stage: bool,
                  clean: bool, slot: int) -> _Record:
    """A record's inputs and what its stages share (no draws)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    r = _Record()
    r.source, r.rng, r.slot = source, rng, slot
    r.ctx = ctx = default_context() if context is None else context
    r.cfg = SimulationConfig() if config is None else config
    r.device_stage, r.clean = device_stage, clean
    r.fs = fs = float(source.fs)
    r.n_t = n_t = source.n_samples
    r.montage = montage = ctx.montage
    layout = ctx.layout
    r.electrodes = electrodes = tuple(montage.electrodes)
    r.base = layout.positions[[layout.electrodes.index(e) for e in electrodes]]
    r.params = {"source_fs": fs, "n_samples_source": n_t}
    r.motion = r.heart_angles = r.location = None
    r.contact_lost = r.clean_recorded = None
    r.snr_db = {}
    return r


def _stage_garment(r: _Record) -> None:
    """Garment fit (static for the record) -> positions on the surface. Rotation and stretch
    act about the body's long axis (a landmark of the torso)."""
    from . import geometry as _geometry

    offsets = _garment_offsets(r)
    r.fitted = _geometry.displace_on_surface(r.ctx.torso, r.base, offsets) if np.any(offsets) else r.base


def _garment_offsets(r: _Record) -> np.ndarray:
    """The garment's draws: its offsets ``[n_e, 3]`` before landing on the surface."""
    ctx = r.ctx
    r.center = np.asarray(ctx.torso.landmarks["body_axis"], dtype=float) if "body_axis" in ctx.torso.landmarks \
        else np.array([ctx.torso.vertices[:, 0].mean(), ctx.torso.vertices[:, 1].mean(), 0.0])
    offsets, p = sample_garment_offsets(r.base, r.center, r.cfg.garment, r.rng)
    r.params.update(p)
    return offsets


def _stage_heart(r: _Record) -> None:
    """The per-record heart orientation change, a rotation about the heart's centre of the
    source dipole (expressed in the LPS frame of the reference body)."""
    rot, p = _heart_rotation(r.cfg.heart, r.rng)
    r.params.update(p)
    r.dipole = rot @ r.source.dipole


def _stage_motion(r: _Record) -> None:
    """Motion: activity, electrode offsets where the lead field is evaluated, heart rotation
    with breath, accelerometer."""
    if not r.cfg.motion:
        r.times_idx = np.array([0])
        r.traj = None
        return
    from . import motion as _motion

    activity, breathing_rate, times_idx = _motion_inputs(r)
    # the offsets only where the lead field is evaluated (the full-rate ones are read
    # nowhere else; the same values and mean offset)
    motion = _motion.simulate_motion(r.n_t / r.fs, r.fs, r.rng, activity=activity, n_electrodes=len(r.electrodes),
                                     positions=r.fitted - r.center, breathing_rate=breathing_rate,
                                     offsets_at=times_idx)
    _motion_done(r, motion, times_idx)


def _motion_inputs(r: _Record) -> tuple:
    """The activity (drawn, unless the source was made for one), the breathing rate (the
    source's, else None: drawn by the motion) and the samples where the lead field is read."""
    cfg, source, fs, n_t = r.cfg, r.source, r.fs, r.n_t
    activity = cfg.draw_activity(r.rng)
    # a source made for an activity (its heart rate follows it, dataset.plan) keeps it
    activity = source.metadata.get("activity", activity)
    r.params["activity"] = activity
    # The chest breathes at the rate that modulates the heart (RSA) when the source knows it.
    breathing_rate = source.breathing_rate if np.isfinite(source.breathing_rate) else None
    step = max(1, int(round(fs / cfg.leadfield_rate)))
    times_idx = np.arange(0, n_t, step)
    if times_idx[-1] != n_t - 1:
        times_idx = np.append(times_idx, n_t - 1)
    return activity, breathing_rate, times_idx


def _motion_done(r: _Record, motion, times_idx: np.ndarray) -> None:
    """What the later stages read of a record's motion."""
    r.params.update({f"motion_{k}": v for k, v in motion.params.items()})
    if r.cfg.heart.respiration:   # applied to the dipole in the potentials' pass
        r.heart_angles = motion.heart_rotation
    r.motion = motion
    r.times_idx = times_idx
    r.traj = motion.offsets.transpose(2, 0, 1)  # [K, n_e, 3], contiguous (np.moveaxis's view)


def _stage_walk(r: _Record) -> None:
    """The electrodes' trajectories landed on the torso surface (no draws)."""
    if r.traj is None:
        r.positions_t = r.fitted[None]
        return
    from . import geometry as _geometry

    r.positions_t, tri_t, bary_t = _geometry.displace_on_surface(r.ctx.torso, r.fitted, r.traj,
                                                                 return_location=True)
    r.location = (tri_t, bary_t)
    r.traj = None


def _stage_potentials(r: _Record, lf: np.ndarray | None = None) -> None:
    """Electrode potentials along the trajectory and the mean displacement (no draws);
    ``lf``: the lead field at the walked points, read already (:func:`_electrode_potentials`)."""
    r.phi = _electrode_potentials(r.ctx, r.positions_t, r.times_idx, r.dipole, getattr(r.source, "surface", None),
                                  r.heart_angles, location=r.location, lf=lf)
    from .geometry._kernels import trajectory_mean   # positions_t.mean(axis=0), bit for bit

    r.displacement = (trajectory_mean(r.positions_t) - r.base).astype(np.float32)
    r.dipole = r.positions_t = r.location = None


def _stage_noise(r: _Record) -> None:
    """Leads: clean, and with electrode noise brought to its drawn SNR; the source's residual."""
    if not r.cfg.add_noise:
        _noise_clean_leads(r)
        _noise_done(r, None)
        return
    _noise = _noise_pkg
    # the noiseless leads are formed with the noisy ones (_noise_done: no draws between)
    en = _noise.simulate_electrode_noise(len(r.electrodes), r.n_t, r.fs, r.rng,
                                         noise_for_device(r.cfg.noise, r.ctx.device), motion=r.motion)
    _noise_done(r, en, _noise)


def _noise_clean_leads(r: _Record) -> None:
    """The noiseless leads, into the record's per-thread leads buffer (no draws)."""
    montage = r.montage
    # Noisy (first half) and clean (second half) leads go into one array, which the device
    # filters in one call without stacking them (device.apply_device); a per-thread buffer per
    # position in the sub-block: only the device's outputs outlive the record.
    r.rows = rows = _scratch("simulate.leads" if r.slot == 0 else f"simulate.leads.{r.slot}",
                             (2 * len(montage.leads), r.n_t), np.float64)
    r.clean_leads = _leads_into(montage, r.phi, rows, len(montage.leads))


def _noise_done(r: _Record, en, _noise=None) -> None:
    """The record's electrode noise ``en`` (None without noise: the clean leads are formed
    already) scaled to its SNR targets and added to the leads, the noiseless leads with them;
    the source's residual; the finiteness check. ``_noise``: the :mod:`cardiosim.noise` package
    (the caller's; this module binds it once)."""
    montage, phi, source = r.montage, r.phi, r.source
    finite = False
    if en is not None:
        if _noise is None:
            _noise = _noise_pkg
        if r.ctx.device.coupling == "dc":   # its lead-off detection sees contact lost during the record
            r.contact_lost = np.asarray(en.contact) < 0.5
        # Without SNR targets the scaling leaves every kind as it is, so the noisy leads can be
        # formed before it, with the noiseless ones, in one call that also tells whether all
        # of them are finite (noise.electrode._stage_leads_into: the values of the two calls
        # below, bit for bit); else the noiseless leads first, the noisy ones after the scaling.
        leads = None
        kinds = None
        if not en.snr_targets and phi.dtype == np.float64 and phi.ndim == 2 \
                and phi.shape[0] == len(montage.electrodes):
            kinds = _noise_kinds(en.by_kind, phi.shape)
        if kinds is not None:
            n_l = len(montage.leads)
            r.rows = rows = _scratch("simulate.leads" if r.slot == 0 else f"simulate.leads.{r.slot}",
                                     (2 * n_l, r.n_t), np.float64)
            if _noise.electrode._stage_leads_into(montage.matrix, phi, en, kinds, rows):
                r.clean_leads = rows[n_l:]
                leads = rows[:n_l]
                finite = True
        if leads is None:
            _noise_clean_leads(r)
        rows, clean_leads = r.rows, r.clean_leads
        # Gains applied at the electrodes (so every lead keeps its electrodes' noise) bring each
        # kind to its drawn target SNR in every lead the montage allows; the realised SNR of
        # every kind, per lead and pooled, goes into params (noise.snr.scale_electrode_noise).
        r_peaks = _snr_r_peaks(source, clean_leads, r.fs)  # once, not once per noise kind
        en = _noise.scale_electrode_noise(en, montage, clean_leads, r_peaks=r_peaks, _finite_leads=finite)
        if leads is None:
            leads = _noisy_leads_into(montage, en, phi, rows)
        r.snr_db, noise_params = _noise_params(en.params)
        r.params.update(noise_params)
    else:
        rows, clean_leads = r.rows, r.clean_leads
        leads = _leads_into(montage, phi, rows, 0)
    if source.residual is not None:
        finite = False
        for row, name in enumerate(source.residual_leads):
            if name in montage.leads:
                leads[montage.leads.index(name)] += source.residual[row]
                clean_leads[montage.leads.index(name)] += source.residual[row]
    if not finite and not _all_finite(leads):
        raise SignalError(f"source {source.source_id!r}: simulation produced non-finite samples")
    r.leads = leads
    r.phi = None


def _stage_device(r: _Record) -> None:
    """Front-end failure, then the device (filter, resampling, gain, ADC) on the noisy leads
    and their noiseless twin; then the artefact grades of the recording (no draws), while it
    is in cache."""
    lanes = None    # the grades' band-pass buffer, when the device fills it
    if r.device_stage:
        from . import device as _device

        cfg, ctx = r.cfg, r.ctx
        failure = cfg.failures.draw(r.rng, r.electrodes, ctx.device.measured_leads or r.montage.leads)
        r.params["failure"] = failure.label
        if r.contact_lost is not None and r.contact_lost.any():
            import dataclasses
            failure = dataclasses.replace(failure, contact_lost=r.contact_lost)
        # The noiseless twin (stored, and the artefact grades' reference) goes through the
        # same device in the same call, on the stacked rows (bit-identical to a second call).
        twin = r.clean_leads if (r.clean or cfg.add_noise) else None
        fill = None
        if twin is not None and cfg.add_noise and r.fs == ctx.device.fs and ctx.device.coupling != "dc":
            # the device writes the rows the grades band-pass (time-major) from its own tiles:
            # the grades then do not transpose the recording again (with the grades taken here,
            # while the recording is in cache: device + grades 1.07 -> 0.99 ms a default record)
            from .noise.textile import grade_lanes_shape
            try:
                shape, padlen = grade_lanes_shape(r.leads.shape[0], r.leads.shape[1], r.fs)
            except ValueError:   # scipy: a rate the band-pass cannot take; the grades raise it below, as before
                shape = None
            if shape is not None:
                buf = _scratch("simulate.grade_lanes", shape)
                lanes, fill = buf, buf[padlen:padlen + r.leads.shape[1]]
        # only the recording and the scalars are kept: the per-sample arrays (codes, raw output,
        # saturation flags) are not formed
        recorded, info = _device.apply_device(ctx.device, r.leads, r.fs, failure=failure if failure.any else None,
                                              clean=twin, arrays=False, grade_lanes=fill)
        r.params.update({f"device_{k}": v for k, v in info.items() if isinstance(v, (int, float, str, bool))})
        r.recorded = recorded
        r.fs_out = float(info.get("fs", ctx.device.fs))
        r.clean_ref = info.get("clean")
        if info.get("grade_lanes") is None:
            lanes = None
    else:
        r.recorded, r.fs_out = r.leads.astype(np.float32), r.fs
        r.clean_ref = r.clean_leads
    if r.clean:
        r.clean_recorded = r.clean_ref.astype(np.float32, copy=False)
    r.leads = None
    if r.cfg.add_noise:
        # artefact grade 1-4 per 2-s segment and per record, by the rule fitted to the
        # graders of real chest-strap records (noise.textile.artefact_grades); the graders also
        # grade by activity, so the rule takes the record's (rest without motion, as the noise does)
        from .noise.textile import artefact_grades
        params = r.params
        seg_grades, params["artefact_grade"], _ = artefact_grades(
            r.recorded, r.clean_ref, r.fs_out, fit=r.cfg.noise.textile_fit or None,
            activity=params.get("activity", "rest"), electrode=device_electrode(r.cfg.noise, r.ctx.device),
            lanes=lanes)
        params["artefact_grade_segments"] = "".join(str(int(g)) for g in seg_grades)   # one digit per 2 s


def _stage_grades(r: _Record) -> None:
    """The annotations moved to the output's time base (no draws); the artefact grades were
    taken at the end of :func:`_stage_device`, while the recording was in cache."""
    r.annotations, r.beat_types = _annotations_at(r.source, r.clean_leads, r.fs, r.fs_out, r.recorded.shape[1])
    r.clean_ref = r.clean_leads = r.rows = None


#: metadata key -> its params name ``f"source_{key}"`` (:func:`_finish_record`).
_SOURCE_KEYS: dict = {}


def _finish_record(r: _Record) -> SimulatedRecord:
    """Classic augmentation (draws), the accelerometer at the output rate, the record."""
    cfg, params, recorded = r.cfg, r.params, r.recorded
    if cfg.augment.enabled:
        recorded, p = cfg.augment.apply(recorded, r.rng)
        params.update(p)
    accel = None
    motion = r.motion
    if motion is not None and getattr(motion, "accelerometer", None) is not None:
        from .sources import resample
        from .sources.recording import resample_ratio
        acc_in = np.asarray(motion.accelerometer)
        up, down = resample_ratio(r.fs, r.fs_out)
        if up == down and acc_in.dtype in (np.float32, np.float64):
            # the resampling is a copy: float32 -> float64 -> float32 gives back the same values
            accel = acc_in[:, :recorded.shape[1]].astype(np.float32)
        else:
            accel = resample(np.asarray(acc_in, dtype=np.float64), r.fs, r.fs_out)
            accel = accel[:, :recorded.shape[1]].astype(np.float32)
    source = r.source
    # an ODE source's ~120 scalar metadata as params "source_<key>": the prefixed names taken
    # from a cache (forming and hashing ~120 new strings a record was two thirds of the work)
    names = _SOURCE_KEYS
    if len(names) > 4096:       # bounded: the keys of a dataset's sources are a few hundred
        names.clear()
    for k, v in source.metadata.items():
        if isinstance(v, (int, float, str, bool)):
            name = names.get(k) if type(k) is str else f"source_{k}"   # (1 == True: str keys only)
            if name is None:
                name = names[k] = f"source_{k}"
            params[name] = v
    clean_recorded = r.clean_recorded
    return SimulatedRecord(ecg=np.ascontiguousarray(recorded, dtype=np.float32), fs=r.fs_out,
                           leads=tuple(r.montage.leads), electrodes=r.electrodes, displacement=r.displacement,
                           snr_db=r.snr_db, heart_rate=float(source.heart_rate), labels=tuple(source.labels),
                           source_id=source.source_id, accelerometer=accel, params=params,
                           annotations=r.annotations, beat_types=r.beat_types,
                           clean_ecg=None if clean_recorded is None else np.ascontiguousarray(clean_recorded,
                                                                                             dtype=np.float32))


#: The stages of a record, in order, as ``(name, function of a _Record)``: each draws from the
#: record's generator (or not, as its docstring says) and leaves its results on the record.
STAGES = (("garment", _stage_garment), ("heart", _stage_heart), ("motion", _stage_motion), ("walk", _stage_walk),
          ("potentials", _stage_potentials), ("noise", _stage_noise), ("device", _stage_device),
          ("grades", _stage_grades))


def _same_body_groups(runs, key) -> list:
    """``runs`` grouped by their context (the same torso, layout and lead field) and ``key(r)``
    (records for which ``key`` returns None are left out), in order of first appearance."""
    groups: dict = {}
    for r in runs:
        k = key(r)
        if k is not None:
            groups.setdefault((id(r.ctx), k), []).append(r)
    return list(groups.values())


def _block_garment(runs) -> None:
    """:func:`_stage_garment` over a sub-block: each record's draws, then the garments of the
    records of one body landed on the surface in one walk (the layout positions are the same,
    the offsets stacked on the walk's leading axis; every offset is walked on its own, so the
    points are :func:`_stage_garment`'s)."""
    from . import geometry as _geometry

    moved = []
    for r in runs:
        offsets = _garment_offsets(r)
        if np.any(offsets):
            moved.append((r, offsets))
        else:
            r.fitted = r.base
    by_run = {id(r): o for r, o in moved}
    for group in _same_body_groups([r for r, _ in moved], lambda r: r.base.shape):
        if len(group) == 1:
            r = group[0]
            r.fitted = _geometry.displace_on_surface(r.ctx.torso, r.base, by_run[id(r)])
            continue
        out = _geometry.displace_on_surface(group[0].ctx.torso, group[0].base,
                                            np.stack([by_run[id(r)] for r in group]))
        for j, r in enumerate(group):
            r.fitted = out[j]


def _block_walk(runs) -> None:
    """:func:`_stage_walk` over a sub-block: the trajectories of the records of one body (and
    one trajectory length) walked in one call, the records' electrodes side by side (each
    point is walked on its own from its own start, so the points and their locations are
    :func:`_stage_walk`'s)."""
    from . import geometry as _geometry

    for r in runs:
        if r.traj is None:
            r.positions_t = r.fitted[None]
    for group in _same_body_groups(runs, lambda r: None if r.traj is None else r.traj.shape):
        if len(group) == 1:
            _stage_walk(group[0])
            continue
        n_e = group[0].traj.shape[1]
        pos, tri, bary = _geometry.displace_on_surface(
            group[0].ctx.torso, np.concatenate([r.fitted for r in group]),
            np.concatenate([r.traj for r in group], axis=1), return_location=True)
        for j, r in enumerate(group):
            cols = slice(j * n_e, (j + 1) * n_e)
            r.positions_t = np.ascontiguousarray(pos[:, cols])
            r.location = (np.ascontiguousarray(tri[:, cols]), np.ascontiguousarray(bary[:, cols]))
            r.traj = None


def _block_potentials(runs) -> None:
    """:func:`_stage_potentials` over a sub-block: the BEM lead field at the walked points of
    the records of one body read in one call (point by point, the values
    :func:`_electrode_potentials` reads), then each record's potentials."""
    def key(r):
        if r.location is None or getattr(r.source, "surface", None) is not None or not _reads_walk_locations(r.ctx):
            return None
        return r.location[0].shape

    grouped = set()
    for group in _same_body_groups(runs, key):
        if len(group) == 1:
            continue
        grouped.update(map(id, group))
        tri = np.concatenate([r.location[0] for r in group], axis=1)
        bary = np.concatenate([r.location[1] for r in group], axis=1)
        k, m = tri.shape
        lf = 1e3 * group[0].ctx.forward.lead_field_at(tri.reshape(-1), bary.reshape(-1, 3)).reshape(k, m, 3)
        n_e = m // len(group)
        for j, r in enumerate(group):
            _stage_potentials(r, lf=np.ascontiguousarray(lf[:, j * n_e:(j + 1) * n_e]))
    for r in runs:
        if id(r) not in grouped:
            _stage_potentials(r)


def _block_motion(runs) -> None:
    """:func:`_stage_motion` over a sub-block: each record's activity drawn, then the records
    whose motion :mod:`cardiosim.motion._batch` makes (the same activity, length, electrode
    count and breathing; e.g. the default dataset's resting records) in one
    :func:`~cardiosim.motion._batch.simulate_motion_batch` call -- their draws in one kernel
    call stepping each record's own stream, their arrays computed over ``[B, ...]`` -- and the
    others one by one, as :func:`_stage_motion`."""
    from .motion import simulate_motion
    from .motion._batch import batch_key, simulate_motion_batch
    from .motion.simulate import _DEFAULT_BREATHING, _preset_activity

    groups: dict = {}
    for r in runs:
        if not r.cfg.motion:
            _stage_motion(r)
            continue
        activity, rate, times_idx = _motion_inputs(r)
        act = _preset_activity(activity) if isinstance(activity, str) else None
        key = None if act is None else batch_key(act, len(r.electrodes), r.n_t, r.fs, _DEFAULT_BREATHING,
                                                 rate is not None)
        if key is None:
            motion = simulate_motion(r.n_t / r.fs, r.fs, r.rng, activity=activity, n_electrodes=len(r.electrodes),
                                     positions=r.fitted - r.center, breathing_rate=rate, offsets_at=times_idx)
            _motion_done(r, motion, times_idx)
            continue
        groups.setdefault((key, times_idx.tobytes()), []).append((r, rate, times_idx))
    for (key, _), items in groups.items():
        if len(items) == 1:
            r, rate, times_idx = items[0]
            motion = simulate_motion(r.n_t / r.fs, r.fs, r.rng, activity=key[0], n_electrodes=len(r.electrodes),
                                     positions=r.fitted - r.center, breathing_rate=rate, offsets_at=times_idx)
            _motion_done(r, motion, times_idx)
            continue
        r0 = items[0][0]
        motions = simulate_motion_batch(r0.n_t / r0.fs, r0.fs, [r.rng for r, _, _ in items], activity=key[0],
                                        breathing=_DEFAULT_BREATHING,
                                        positions=np.stack([r.fitted - r.center for r, _, _ in items]),
                                        offsets_at=items[0][2],
                                        breathing_rates=[rate for _, rate, _ in items] if key[5] else None)
        for (r, _, times_idx), motion in zip(items, motions):
            _motion_done(r, motion, times_idx)


#: Stages that :func:`simulate_records` runs over a whole sub-block at once (a function of the
#: list of its records; each equals its per-record stage of :data:`STAGES`, run record by record).
BLOCK_STAGES = {"garment": _block_garment, "motion": _block_motion, "walk": _block_walk,
                "potentials": _block_potentials}


_NOISE_FOR_DEVICE: dict = {}


def device_electrode(noise: NoiseConfig, device) -> str:
    """The electrode type ``noise`` simulates on ``device``: its own, or with ``'device'``
    (the default) the device profile's (``DeviceProfile.electrode``; textile when the profile
    names none)."""
    if noise.electrode != "device":
        return noise.electrode
    return getattr(device, "electrode", "") or "textile"


def noise_for_device(noise: NoiseConfig, device) -> NoiseConfig:
    """``noise`` with its electrode type resolved for ``device`` (:func:`device_electrode`);
    ``noise`` itself when it names a type. Made once per configuration and device type, not
    once per record."""
    if noise.electrode != "device":
        return noise
    etype = device_electrode(noise, device)
    key = (id(noise), etype)
    hit = _NOISE_FOR_DEVICE.get(key)
    if hit is not None and hit[0] is noise:      # the cached config (kept alive with its key's id)
        return hit[1]
    import dataclasses

    resolved = dataclasses.replace(noise, electrode=etype)
    if len(_NOISE_FOR_DEVICE) >= 64:
        _NOISE_FOR_DEVICE.clear()
    _NOISE_FOR_DEVICE[key] = (noise, resolved)
    return resolved


def _leads_into(montage, phi: np.ndarray, rows: np.ndarray, row0: int) -> np.ndarray:
    """``montage.apply(phi)`` written into ``rows[row0:row0 + n_leads]`` (returned), by
    :func:`cardiosim.device._kernels.montage_rows_kernel` (bit for bit ``einsum``'s sums on
    finite input); ``montage.apply`` itself otherwise."""
    from .device._kernels import montage_rows_kernel

    n_l = len(montage.leads)
    if phi.dtype == np.float64 and phi.ndim == 2 and phi.shape[0] == len(montage.electrodes):
        if montage_rows_kernel(montage.matrix, phi, rows, row0) == 0:
            return rows[row0:row0 + n_l]
    return montage.apply(phi)


def _noise_params(p: dict) -> tuple[dict, zip]:
    """``({kind: pooled SNR dB} of the ``snr_db.<kind>`` entries, the ``noise_<key>`` items
    of the public entries)`` of the noise's params, in their order; the key work is done
    once per key layout (a record's ~110 keys are the same record after record)."""
    vals = list(p.values())
    get, names, snr = _noise_param_layout(tuple(p))
    # (an itemgetter of one position returns the value itself, of none there is no getter)
    values = get(vals) if len(names) > 1 else (get(vals),) if names else ()
    return {kind: float(vals[i]) for i, kind in snr}, zip(names, values)


@lru_cache(maxsize=64)
def _noise_param_layout(keys: tuple):
    """For the noise params' keys: a getter of the public values (keys not starting with
    ``_``), their ``noise_`` names, and ``(position, kind)`` of each ``snr_db.<kind>``."""
    from operator import itemgetter

    keep = [i for i, k in enumerate(keys) if not k.startswith("_")]
    snr = tuple((i, k.split(".", 1)[1]) for i, k in enumerate(keys) if k.startswith("snr_db."))
    return (itemgetter(*keep) if keep else None), tuple(f"noise_{keys[i]}" for i in keep), snr


def _all_finite(x: np.ndarray) -> bool:
    """``np.all(np.isfinite(x))`` of the float64 leads in one pass without a temporary
    (:func:`cardiosim.noise._kernels.all_finite_kernel`)."""
    from .device._kernels import all_finite_kernel

    if x.dtype == np.float64 and x.ndim == 2:
        return bool(all_finite_kernel(x))
    return bool(np.all(np.isfinite(x)))


def _noise_kinds(by_kind: dict, shape: tuple):
    """The noise kinds as :func:`cardiosim.device._kernels.noisy_sum_montage_rows_kernel`
    takes them: ``(arrays, which, consts)`` -- the C-contiguous float32 ``[n_e, T]`` kinds,
    and per kind in order its index among them or -1 and its value for a broadcast constant
    -- or None when a kind is neither (``ElectrodeNoise.noise`` then sums them)."""
    arrays, which, consts = [], [], []
    for v in by_kind.values():
        if type(v) is not np.ndarray or v.dtype != np.float32 or v.shape != shape:
            return None
        if v.flags.c_contiguous:
            which.append(len(arrays))
            arrays.append(v)
            consts.append(0.0)
        elif v.strides == (0, 0) and v.size:
            which.append(-1)
            consts.append(v.flat[0])
        else:
            return None
    if not arrays:
        return None
    return (tuple(arrays),) + _kinds_layout(tuple(which), tuple(consts))


@lru_cache(maxsize=64)
def _kinds_layout(which: tuple, consts: tuple) -> tuple:
    """``(which, consts)`` of :func:`_noise_kinds` as int64 and float32 arrays, made once per
    layout (a record's kinds are laid out as the record's before it; the kernels only read them)."""
    return np.array(which, dtype=np.int64), np.array(consts, dtype=np.float32)


def _noisy_leads_into(montage, en, phi: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``montage.apply(en.apply(phi))`` written into ``rows[:n_leads]`` (returned) in one pass
    (:func:`cardiosim.device._kernels.noisy_sum_montage_rows_kernel`: ``ElectrodeNoise.noise``'s
    float32 sum of the kinds, ``ElectrodeNoise.apply``'s float64 operations, then ``einsum``'s
    sums, bit for bit on finite values, without forming the noise array); the two calls
    themselves otherwise."""
    from .device._kernels import noisy_montage_rows_kernel, noisy_sum_montage_rows_kernel

    contact = np.asarray(en.contact)
    if (phi.dtype == np.float64 and phi.ndim == 2 and phi.shape == contact.shape
            and phi.shape[0] == len(montage.electrodes) and contact.dtype.kind == "f"):
        unit = contact.strides == (0, 0) and contact.size > 0 and contact.flat[0] == 1
        kinds = _noise_kinds(en.by_kind, phi.shape)
        if kinds is not None and \
                noisy_sum_montage_rows_kernel(montage.matrix, phi, contact, unit, *kinds, rows, 0) == 0:
            return rows[:len(montage.leads)]
        noise = en.noise
        if noise.dtype == np.float64 and noise.shape == phi.shape and \
                noisy_montage_rows_kernel(montage.matrix, phi, contact, unit, noise, rows, 0) == 0:
            return rows[:len(montage.leads)]
    return montage.apply(en.apply(phi))


def _snr_r_peaks(source: CardiacSource, clean_leads: np.ndarray, fs: float) -> np.ndarray:
    """The beats the SNR is measured on: the source's own R peaks when it knows them (ODE
    beats: every beat with a QRS, ``annotations['R_peak'] >= 0``), as the NSTDB definition
    takes them from a reference annotation (``sigamp -a``); else the QRS detector on the
    noiseless leads (:func:`cardiosim.noise.detect_r_peaks`), which also costs 4 ms a record."""
    r = source.annotations.get("R_peak") if source.annotations else None
    if r is None:
        from .noise import detect_r_peaks
        return detect_r_peaks(clean_leads, fs)
    r = np.asarray(r, dtype=np.int64)
    if r.ndim == 1:
        out = np.empty(r.shape[0], dtype=np.int64)              # the line below's values, one pass
        return out[:_noise_pkg._kernels.in_range_kernel(r, clean_leads.shape[1], out)]
    return r[(r >= 0) & (r < clean_leads.shape[1])]


def _annotations_at(source: CardiacSource, clean_leads: np.ndarray, fs: float, fs_out: float,
                    n_out: int) -> tuple[dict, tuple]:
    """Source annotations moved to the output's time base (sample ``i`` at ``fs`` -> ``round(i fs_out / fs)``).

    Sources without annotations (real recordings) get R peaks from the QRS detector on
    the noiseless leads (source rate), beat type ``Q``. The device's causal analog filter
    delays the recorded waves by its group delay (~1-2 ms for the shipped profiles); the
    annotations mark the physiological instants, as a reference annotator would.
    """
    ann = dict(source.annotations)
    types = tuple(source.beat_types)
    if not ann:
        from .qrs import detect_r_peaks
        ann = {"R_peak": np.asarray(detect_r_peaks(clean_leads, fs), dtype=np.int64)} if clean_leads.shape[1] >= fs \
            else {"R_peak": np.zeros(0, dtype=np.int64)}
        types = ("Q",) * len(ann["R_peak"])
    out = {}
    ratio = fs_out / fs
    idxs = [np.asarray(idx, dtype=np.int64) for idx in ann.values()]
    if len(idxs) > 1 and all(idx.ndim == 1 for idx in idxs):
        # every key's indices in one pass (an ODE source's 7 short arrays: the per-call cost of
        # NumPy's operations was the work), each key's result a slice of it: an index <0 stays
        # -1, one moved past the output is -1 (n_out >= 0: the two steps below in one); at an
        # unchanged rate round(i * 1.0) is i (sample indices are far below 2**53)
        cat = np.concatenate(idxs)
        at = cat if ratio == 1.0 else np.round(cat * ratio).astype(np.int64)
        moved = np.where((cat >= 0) & (at < n_out), at, -1)
        a = 0
        for key, idx in zip(ann, idxs):
            out[key] = moved[a:a + idx.shape[0]]
            a += idx.shape[0]
        return out, types
    for key, idx in zip(ann, idxs):
        at = idx if ratio == 1.0 else np.round(idx * ratio).astype(np.int64)
        moved = np.where(idx >= 0, at, -1)
        out[key] = np.where(moved < n_out, moved, -1)
    return out, types


@lru_cache(maxsize=4)
def default_context() -> SimulationContext:
    """The default body (BEM torso) with the default 12-lead shirt device, built once."""
    return make_context()
