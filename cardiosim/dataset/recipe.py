"""Recipes: one TOML file that fully describes a dataset.

A record ``i`` of a dataset is a function of (recipe, seed, ``i``) alone, so the recipe
plus the seed is the dataset: stored in the output's ``recipe`` attribute, it
regenerates the same records bit for bit on any number of workers or shards.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from .. import config as _config
from ..device.profile import device_names
from ..errors import ConfigError, DataFormatError
from ..simulate import FORWARD_MODELS, SimulationConfig

#: Default ODE class mix: (rhythm, morphology) combinations, equal weights.
DEFAULT_ODE_CLASSES = {
    "SR+NORM": 1.0, "SB+NORM": 1.0, "STACH+NORM": 1.0, "AF+NORM": 1.0, "AFL+NORM": 1.0,
    "PVC+NORM": 1.0, "PAC+NORM": 1.0, "IAVB+NORM": 1.0, "SR+LBBB": 1.0, "SR+RBBB": 1.0,
    "SR+STE": 1.0, "SR+STD": 1.0, "SR+TINV": 1.0, "SR+LVH": 1.0,
}
SOURCE_KINDS = ("ode", "ptbxl", "wfdb", "sph")


@dataclass(frozen=True)
class SourceRecipe:
    """Where cardiac sources come from.

    Attributes
    ----------
    kind : {'ode', 'ptbxl', 'wfdb', 'sph'}
    path : str
        Folder or file of a real dataset (not used by 'ode').
    variants : int
        Shirt variants generated from each source record (each with its own garment,
        motion and noise draw).
    limit : int
        Use only the first ``limit`` source records (0: all).
    classes : dict of str to float
        ODE only: weights of ``RHYTHM+MORPHOLOGY`` combinations.
    label_map : str
        Label map name or TOML path giving the dataset's classes for every source kind
        ('' picks ``ten_class``; ODE classes map through its ``[ode]`` table).
    patient_sampler : {'auto', 'proposal', 'rejection'}
        ODE only: how patients are drawn from the fitted prior — its screened proposal
        ('auto', fast) or exact rejection from the prior itself (four times slower).
    prior : str
        ODE only: a patient prior file (``cardiosim prior fit``; .json or .npz) replacing
        the shipped NORM prior ('' keeps the shipped one).
    class_priors : dict of str to str
        ODE only: class priors p(eta | class) by morphology class, e.g.
        ``{LVH = "lvh.npz", TINV = "tinv.npz"}`` (``cardiosim prior fit --class C``): records of
        a class named here draw its beat from that prior (class screens, no hand-built
        morphology); other classes keep the hand-built morphology on the NORM prior. Each
        file must hold a prior of its key's class (checked when the dataset is planned;
        records store the file and its SHA-256 as ``ode_class_prior`` parameters).
    rhythm_prior : str
        ODE only: a rhythm prior file (AF rate and RR irregularity, ectopic coupling;
        ``cardiosim.ode.rhythm_prior``) replacing the shipped one ('' keeps it), e.g. the
        validation fit ``rhythm_prior.VALIDATION_RHYTHM_PRIOR_PATH``.
    """

    kind: str = "ode"
    path: str = ""
    variants: int = 1
    limit: int = 0
    classes: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_ODE_CLASSES))
    label_map: str = ""
    patient_sampler: str = "auto"
    prior: str = ""
    class_priors: dict[str, str] = field(default_factory=dict)
    rhythm_prior: str = ""

    def __post_init__(self):
        if self.kind not in SOURCE_KINDS:
            raise ConfigError(f"source.kind must be one of {', '.join(SOURCE_KINDS)}, got {self.kind!r}")
        if self.kind != "ode" and not self.path:
            raise ConfigError(f"source.path is required for source.kind = {self.kind!r}")
        _config.check_range("source.variants", self.variants, 1, 10_000)
        _config.check_range("source.limit", self.limit, 0)
        if self.patient_sampler not in ("auto", "proposal", "rejection"):
            raise ConfigError(f"source.patient_sampler must be 'auto', 'proposal' or 'rejection', "
                              f"got {self.patient_sampler!r}")
        if self.prior and self.kind != "ode":
            raise ConfigError(f"source.prior applies to the ODE source only, not source.kind = {self.kind!r}")
        if self.rhythm_prior and self.kind != "ode":
            raise ConfigError(f"source.rhythm_prior applies to the ODE source only, not source.kind = {self.kind!r}")
        if self.class_priors:
            from ..ode.classes import MORPHOLOGIES

            if self.kind != "ode":
                raise ConfigError(f"source.class_priors applies to the ODE source only, not source.kind = {self.kind!r}")
            known = [m for m in MORPHOLOGIES if m != "NORM"]
            for key, path in self.class_priors.items():
                if key not in known:
                    raise ConfigError(f"source.class_priors.{key}: unknown class {key!r}; known classes: "
                                      f"{', '.join(known)} (the NORM prior is source.prior)")
                if not isinstance(path, str) or not path:
                    raise ConfigError(f"source.class_priors.{key}: expected a prior file path, got {path!r}")
        if self.kind == "ode":
            if not self.classes:
                raise ConfigError("source.classes must name at least one RHYTHM+MORPHOLOGY class")
            for name, w in self.classes.items():
                _config.check_range(f"source.classes.{name}", w, 0.0)
                if name.count("+") != 1:
                    raise ConfigError(f"source.classes key {name!r} must look like RHYTHM+MORPHOLOGY, e.g. 'SR+NORM'")
            if sum(self.classes.values()) <= 0:
                raise ConfigError("source.classes weights must not all be zero")


@dataclass(frozen=True)
class BodyRecipe:
    """The population of bodies records are projected through.

    Body 0 is the reference adult male torso (the body sources are estimated on);
    bodies 1..n-1 are drawn once per dataset from ``SeedSequence([seed, k, 3])``: sex
    from ``female_fraction``, every anthropometric breadth, depth and the torso length
    scaled by ``1 + N(0, shape_sd)`` from that sex's defaults, the heart centre moved by
    ``N(0, heart_offset_sd)`` per axis. Each body gets its own BEM lead field (cached on
    disk). All variants of a source record share the source's body.

    A user's body replaces the parametric one when ``mesh`` is set (one body,
    :func:`cardiosim.geometry.read_torso`); ``electrodes`` replaces the device's layout
    by explicit coordinates (:func:`cardiosim.geometry.read_electrodes`). Relative paths
    are relative to the recipe file. Generation pins both files: it stores their absolute
    paths and SHA-256 in the dataset's recipe, and refuses a file whose content changed.

    Attributes
    ----------
    bodies : int
    female_fraction : float
    shape_sd : float
        Relative SD of body dimensions (adult anthropometry spreads about 5-8 %).
    heart_offset_sd : float, m
    mesh : str
        Torso mesh file (OBJ, PLY, STL, VTK, ...; LPS frame); '' for the parametric torso.
    units : {'m', 'cm', 'mm'}
        Unit of the mesh (required with ``mesh``) and of ``heart``.
    heart : list of 3 floats
        Heart centre in ``units`` ([] for the mesh's sidecar or the proportional default).
    electrodes : str
        Electrode coordinate file (CSV ``name,x,y,z`` or TOML); '' keeps the device's layout.
    electrode_units : {'', 'm', 'cm', 'mm'}
        Unit of the electrode file ('' : the file's own, else ``units``).
    mesh_sha256, electrodes_sha256 : str
        Filled in by generation; a mismatch with the file raises.
    """

    bodies: int = 1
    female_fraction: float = 0.5
    shape_sd: float = 0.05
    heart_offset_sd: float = 0.005
    mesh: str = ""
    units: str = ""
    heart: tuple[float, ...] = ()
    electrodes: str = ""
    electrode_units: str = ""
    mesh_sha256: str = ""
    electrodes_sha256: str = ""

    def __post_init__(self):
        from ..geometry.io import UNITS

        _config.check_range("body.bodies", self.bodies, 1, 1000)
        _config.check_range("body.female_fraction", self.female_fraction, 0.0, 1.0)
        _config.check_range("body.shape_sd", self.shape_sd, 0.0, 0.3)
        _config.check_range("body.heart_offset_sd", self.heart_offset_sd, 0.0, 0.03)
        for key in ("units", "electrode_units"):
            if getattr(self, key) not in ("", *UNITS):
                raise ConfigError(f"body.{key} must be one of {', '.join(UNITS)}, got {getattr(self, key)!r}")
        if self.mesh and not self.units:
            raise ConfigError(f"body.units is required with body.mesh = {self.mesh!r}: 'm', 'cm' or 'mm'")
        if self.mesh and self.bodies != 1:
            raise ConfigError(f"body.bodies must be 1 with a user mesh (body.mesh = {self.mesh!r}), got {self.bodies}")
        if self.heart and (len(self.heart) != 3 or not self.mesh):
            raise ConfigError(f"body.heart must be [x, y, z] in body.units, with body.mesh; got {list(self.heart)}")
        if (self.mesh_sha256 and not self.mesh) or (self.electrodes_sha256 and not self.electrodes):
            raise ConfigError("body.mesh_sha256 / body.electrodes_sha256 need body.mesh / body.electrodes")

    def relative_to(self, folder) -> "BodyRecipe":
        """The same body with relative file paths taken relative to ``folder``."""
        fix = {k: str(Path(folder) / getattr(self, k)) for k in ("mesh", "electrodes")
               if getattr(self, k) and not Path(getattr(self, k)).is_absolute()}
        return replace(self, **fix) if fix else self

    def pinned(self) -> "BodyRecipe":
        """Absolute file paths and their SHA-256 filled in (raises if a stored hash differs)."""
        fix = {}
        for key in ("mesh", "electrodes"):
            if getattr(self, key):
                path = Path(getattr(self, key)).resolve()
                fix[key], fix[f"{key}_sha256"] = str(path), _file_hash(path, key, getattr(self, f"{key}_sha256"))
        return replace(self, **fix) if fix else self

    def user_body(self):
        """``(torso, electrodes)`` read from the files (``None`` for what is not set), hashes checked."""
        from ..geometry import read_electrodes, read_torso

        torso = layout = None
        if self.mesh:
            _file_hash(Path(self.mesh), "mesh", self.mesh_sha256)
            torso = read_torso(self.mesh, units=self.units, heart=list(self.heart) or None)
        if self.electrodes:
            _file_hash(Path(self.electrodes), "electrodes", self.electrodes_sha256)
            if torso is None:
                from ..geometry import make_torso
                torso = make_torso()
            layout = read_electrodes(self.electrodes, torso, units=self.electrode_units or self.units or None)
        return torso, layout

    def torso_params(self, seed: int, k: int):
        """TorsoParams of body ``k`` (``None`` for the reference body 0 and for a user mesh)."""
        if k == 0 or self.mesh:
            return None
        import numpy as np

        from ..geometry import TorsoParams

        rng = np.random.default_rng(np.random.SeedSequence([seed, k, 3]))
        sex = "female" if rng.random() < self.female_fraction else "male"
        ref = TorsoParams(sex=sex).resolved()
        dims = ("torso_length", "chest_width", "chest_depth", "waist_width", "waist_depth", "hip_width",
                "shoulder_width")
        scaled = {d: float(getattr(ref, d) * (1.0 + self.shape_sd * np.clip(rng.normal(), -2.5, 2.5))) for d in dims}
        offset = tuple(float(v) for v in np.asarray(ref.heart_offset) + rng.normal(0.0, self.heart_offset_sd, 3))
        return TorsoParams(sex=sex, heart_offset=offset, **scaled)


def _file_hash(path: Path, key: str, expected: str, section: str = "body") -> str:
    from .io import sha256_file

    if not path.is_file():
        raise DataFormatError(f"{section}.{key}: file {str(path)!r} not found")
    digest = sha256_file(path)
    if expected and digest != expected:
        raise ConfigError(f"{section}.{key}: {str(path)!r} changed since the recipe was written (SHA-256 "
                          f"{digest[:12]}..., recipe says {expected[:12]}...); restore the file or clear "
                          f"{section}.{key}_sha256")
    return digest


@dataclass(frozen=True)
class RefineRecipe:
    """A learned refiner applied to every simulated record (:mod:`cardiosim.torch.refine`).

    The refiner (``cardiosim refine train``) makes simulated records look like the user's
    own device recordings. Generating with it needs torch: ``cardiosim generate`` or
    :func:`cardiosim.torch.refine.generate_refined` apply it (``cardiosim.dataset.generate``
    refuses a recipe with a model and no postprocess). Like the body's files, a relative
    path is relative to the recipe file, and generation pins the file by SHA-256.

    Attributes
    ----------
    model : str
        Refiner file (``.pt``, :func:`cardiosim.torch.refine.save_refiner`); '' : none.
    keep_simulated : bool
        Also store the unrefined record as ``ecg_simulated`` (doubles the signal storage).
    model_sha256 : str
        Filled in by generation; a mismatch with the file raises.
    """

    model: str = ""
    keep_simulated: bool = True
    model_sha256: str = ""

    def __post_init__(self):
        if self.model_sha256 and not self.model:
            raise ConfigError("refine.model_sha256 needs refine.model")

    def relative_to(self, folder) -> "RefineRecipe":
        """The same settings with a relative model path taken relative to ``folder``."""
        if self.model and not Path(self.model).is_absolute():
            return replace(self, model=str(Path(folder) / self.model))
        return self

    def pinned(self) -> "RefineRecipe":
        """Absolute model path and its SHA-256 filled in (raises if a stored hash differs)."""
        if not self.model:
            return self
        path = Path(self.model).resolve()
        return replace(self, model=str(path), model_sha256=_file_hash(path, "model", self.model_sha256, "refine"))


@dataclass(frozen=True)
class OutputRecipe:
    """How records are stored.

    Attributes
    ----------
    shard_size : int
        Records per netCDF shard when the output is a directory. A worker holds one shard
        in memory while simulating it: about 1.5 MB per 10-s 12-lead 500-Hz record, so the
        default 256 keeps a worker near 0.6 GB whatever the dataset size.
    compression : {'zstd', 'blosc_lz4', 'zlib', 'none'}
        HDF5 filter of the signal variables (with byte shuffle). zstd and blosc_lz4 ship
        with the netCDF4 wheels; where the writing library lacks them, zlib is used with a
        warning (:mod:`cardiosim.dataset.storage`). On 10-s 12-lead int16 records zstd
        level 1 writes 3-4x faster than zlib at the same size.
    complevel : int
        Compression level: 1-9 (zlib, blosc_lz4), 1-22 (zstd); 1 is nearly as small as
        higher levels on noisy ECG and fastest.
    pack_int16 : bool
        Store ``ecg``, ``clean_ecg`` and ``accelerometer`` as int16 with a CF
        ``scale_factor``: steps of the device's input range / 32767 (12.2 uV for
        shirt12_500hz), every sample within half a step of the simulated value, never
        clipped; 3.4x smaller than float32 once compressed. ``false`` keeps float32.
    store_clean : bool
        Also store ``clean_ecg``: the same device recording without electrode noise
        (denoising pairs; doubles the signal storage).
    """

    shard_size: int = 256
    compression: str = "zstd"
    complevel: int = 1
    pack_int16: bool = True
    store_clean: bool = False

    def __post_init__(self):
        _config.check_range("output.shard_size", self.shard_size, 1, 1_000_000)
        from .storage import COMPRESSIONS

        if self.compression not in COMPRESSIONS:
            raise ConfigError(f"output.compression must be one of {', '.join(map(repr, COMPRESSIONS))}, "
                              f"got {self.compression!r}")
        _config.check_range("output.complevel", self.complevel, 1, 22 if self.compression == "zstd" else 9)


@dataclass(frozen=True)
class Recipe:
    """A whole dataset: sources, bodies, garment, motion, noise, device, output, seed.

    Attributes
    ----------
    seed : int
        Master seed; record ``i`` draws from ``numpy.random.SeedSequence([seed, i])``.
    records : int
        Number of records for ODE sources (real sources: source records x variants).
    duration : float, s
    device : str
        Device profile name or TOML path.
    layout : str
        Electrode layout overriding the device's own ('' keeps it); e.g. 'standard12' puts
        the electrodes exactly at the standard positions (the hospital-ECG baseline).
    sampling_rate : float, Hz
        Overrides the device's output rate (0: the device's own).
    source_fs : float, Hz
        Rate at which sources are synthesised or resampled before the device stage.
    forward : {'bem', 'bem-lungs', 'infinite'}
    splits : dict of str to float
        Fractions of source records (never of variants) in train / val / test.
    """

    seed: int = 0
    records: int = 32
    duration: float = 10.0
    device: str = "shirt12_500hz"
    layout: str = ""
    sampling_rate: float = 0.0
    source_fs: float = 500.0
    forward: str = "bem"
    splits: dict[str, float] = field(default_factory=lambda: {"train": 0.8, "val": 0.1, "test": 0.1})
    source: SourceRecipe = field(default_factory=SourceRecipe)
    body: BodyRecipe = field(default_factory=BodyRecipe)
    simulation: SimulationConfig = field(default_factory=SimulationConfig)
    output: OutputRecipe = field(default_factory=OutputRecipe)
    refine: RefineRecipe = field(default_factory=RefineRecipe)

    def __post_init__(self):
        _config.check_range("seed", self.seed, 0, 2**63 - 1)
        _config.check_range("records", self.records, 1, 100_000_000)
        _config.check_range("duration", self.duration, 0.0, 3600.0, lo_open=True)
        _config.check_range("sampling_rate", self.sampling_rate, 0.0, 100_000.0)
        _config.check_range("source_fs", self.source_fs, 50.0, 10_000.0)
        if self.forward not in FORWARD_MODELS:
            raise ConfigError(f"forward must be one of {FORWARD_MODELS}, got {self.forward!r}")
        unknown = set(self.splits) - {"train", "val", "test"}
        if unknown:
            raise ConfigError(f"splits: unknown split {sorted(unknown)[0]!r}; use train, val, test")
        for name, w in self.splits.items():
            _config.check_range(f"splits.{name}", w, 0.0, 1.0)
        if abs(sum(self.splits.values()) - 1.0) > 1e-6:
            raise ConfigError(f"splits must sum to 1, got {sum(self.splits.values())!r}")

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data) -> "Recipe":
        return _config.from_dict(cls, data)

    @classmethod
    def from_toml(cls, text: str) -> "Recipe":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            one_line = text.strip()
            if one_line and "\n" not in one_line and "=" not in one_line:
                # generate("recipe.toml", ...): a file name where the recipe's text was expected
                raise ConfigError(f"recipe text {one_line!r} is not TOML but looks like a file name: read the "
                                  f"file with Recipe.read({one_line!r})") from None
            raise ConfigError(f"recipe is not valid TOML: {exc}") from None
        return cls.from_dict(data)

    @classmethod
    def read(cls, path) -> "Recipe":
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise DataFormatError(f"cannot read recipe {str(path)!r}: {exc.strerror or exc}") from None
        try:
            recipe = cls.from_toml(text)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        return replace(recipe, body=recipe.body.relative_to(path.parent),
                       refine=recipe.refine.relative_to(path.parent),
                       simulation=_noise_fit_relative_to(recipe.simulation, path.parent))

    def replace(self, **changes) -> "Recipe":
        return replace(self, **changes)

    # -- serialisation ------------------------------------------------------------------
    def to_dict(self) -> dict:
        return _config.to_dict(self)

    def to_toml(self) -> str:
        return _config.dumps_toml(self.to_dict(), _COMMENTS)

    def pinned(self) -> "Recipe":
        """The recipe with the body's files and the refiner pinned (absolute paths, SHA-256):
        see :class:`BodyRecipe`, :class:`RefineRecipe`."""
        body, refine, sim = self.body.pinned(), self.refine.pinned(), _noise_fit_pinned(self.simulation)
        if (body, refine, sim) == (self.body, self.refine, self.simulation):
            return self
        return replace(self, body=body, refine=refine, simulation=sim)

    def digest(self) -> str:
        """SHA-256 of the canonical TOML: identifies the dataset this recipe makes."""
        return hashlib.sha256(self.to_toml().encode()).hexdigest()


def _noise_fit_relative_to(sim: SimulationConfig, folder) -> SimulationConfig:
    """``sim`` with a relative ``noise.textile_fit`` taken relative to ``folder``."""
    fit = sim.noise.textile_fit
    if fit and not Path(fit).is_absolute():
        return replace(sim, noise=replace(sim.noise, textile_fit=str(Path(folder) / fit)))
    return sim


def _noise_fit_pinned(sim: SimulationConfig) -> SimulationConfig:
    """``sim`` with ``noise.textile_fit`` absolute and its SHA-256 filled in (raises if a
    stored hash differs) and the file checked as a fit."""
    noise = sim.noise
    if not noise.textile_fit:
        return sim
    from ..noise.textile import load_fit

    path = Path(noise.textile_fit).resolve()
    digest = _file_hash(path, "textile_fit", noise.textile_fit_sha256, "simulation.noise")
    load_fit(path)
    return replace(sim, noise=replace(noise, textile_fit=str(path), textile_fit_sha256=digest))


_COMMENTS = {
    "seed": "master seed: record i uses numpy.random.SeedSequence([seed, i])",
    "records": "number of records for ODE sources (real sources: source records x variants)",
    "duration": "seconds per record",
    "device": f"device profile: {', '.join(device_names())} or a TOML path",
    "layout": "electrode layout overriding the device's ('' keeps it), e.g. standard12",
    "sampling_rate": "output sampling rate in Hz; 0 keeps the device's own",
    "source_fs": "rate (Hz) at which sources are synthesised before the device stage",
    "forward": "volume conductor: bem (boundary-element torso), bem-lungs (the torso with lungs) or infinite (homogeneous medium)",
    "simulation.activities": "weights of activities: rest, arms, walk, run, squats (as recorded; older sitting, walking, running, arm_movement, posture_change still work)",
    "simulation.failures": "whole-record front-end failures per record: ground_off, electrode_off(_by_name), channel_flat, device_flat",
    "splits": "fractions of source records in each split (variants of a record share its split)",
    "source": "cardiac sources: kind = ode | ptbxl | wfdb | sph",
    "source.classes": "ODE class mix, RHYTHM+MORPHOLOGY = weight",
    "source.rhythm_prior": "AF rate/irregularity and ectopic coupling prior ('' = the shipped one; yours: cardiosim prior rhythm)",
    "body": "population of torsos: body 0 is the reference torso, others vary shape and heart position; or a user's mesh (mesh, units) and electrode file",
    "simulation": "per-record physics: garment fit, heart orientation, motion, noise",
    "simulation.garment": "garment fit SDs: slip (m), rotation (deg), stretch (fraction), jitter (m)",
    "simulation.noise": "electrode noise settings (see cardiosim.noise.NoiseConfig)",
    "simulation.noise.textile_fit": "activity noise fit file ('' = the shipped one; your device's: cardiosim noise fit), relative to this recipe",
    "simulation.augment": "classic augmentations after the device, for comparison (all off by default)",
    "refine": "learned refiner applied to every record (cardiosim refine train); '' for none; needs torch",
    "output": "storage: shard size, compression (zstd | blosc_lz4 | zlib | none), int16 packing (steps of the device range / 32767)",
}


def default_recipe_text() -> str:
    """The commented default recipe written by ``cardiosim recipe init``."""
    header = ("# cardiosim recipe: everything that defines a dataset.\n"
              "# Generate with: cardiosim generate --recipe THIS_FILE --output DIR\n\n")
    return header + Recipe().to_toml()
