"""Which source, variant and split each record index gets: the dataset's plan.

Record ``i`` is a pure function of (recipe, ``i``):

* its source record is ``i // variants`` and its variant ``i % variants``;
* the source (ODE patient and beats) draws from ``SeedSequence([seed, src, 1])``, so
  every variant of a source shares the same heart;
* everything else about the record (body, garment, motion, noise) draws from
  ``SeedSequence([seed, i])``;
* the split of a source record comes from ``SeedSequence([seed, src, 2])`` (or from
  PTB-XL's ``strat_fold``), so variants of one source never straddle splits.
"""

from __future__ import annotations

import bisect
import copy
import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, SignalError
from ..sources.base import CardiacSource
from .recipe import Recipe

SPLITS = ("train", "val", "test")


_U32 = 1 << 32


def _seed_sequence(*words) -> np.random.SeedSequence:
    """``SeedSequence(list(words))``: the same entropy pool (a list of ints below 2^32 is
    coerced word by word to uint32) from a uint32 array where every word fits, which
    ``SeedSequence`` takes as it is (≈ 4 µs less a generator than coercing the list)."""
    if all(type(w) is int and 0 <= w < _U32 for w in words):
        return np.random.SeedSequence(np.array(words, dtype=np.uint32))
    return np.random.SeedSequence(list(words))


class _SeedWords(np.random.bit_generator.ISpawnableSeedSequence):
    """``SeedSequence(entropy)`` for a uint32 ``entropy`` array whose PCG64 state words
    (``generate_state(4, np.uint64)``, all ``PCG64`` asks of it) were computed by
    :func:`cardiosim.ode._rng_kernels.seed_state_kernel` (the same integer hash in one
    call: a ``SeedSequence`` and its ``generate_state`` cost ~12 µs a generator); anything
    else (other state sizes, ``spawn``, ``entropy``, ``pool``, ...) from the ``SeedSequence``
    itself, made when first asked and kept (so spawning counts its children as it would)."""

    def __init__(self, entropy, state):
        self._entropy = entropy
        self._state = state
        self._seq = None

    def _sequence(self) -> np.random.SeedSequence:
        if self._seq is None:
            self._seq = np.random.SeedSequence(self._entropy)
        return self._seq

    def generate_state(self, n_words, dtype=np.uint32):
        if n_words == 4 and dtype is np.uint64 and self._state is not None:
            state, self._state = self._state, None  # (handed out once: the caller owns it)
            return state
        return self._sequence().generate_state(n_words, dtype)

    def spawn(self, n_children):
        return self._sequence().spawn(n_children)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._sequence(), name)

    def __repr__(self):
        return repr(self._sequence())


_SEED_STATE = []  # [seed_state_kernel], imported on first use


def _generator(*words) -> np.random.Generator:
    """``np.random.default_rng(SeedSequence(list(words)))`` (:func:`_seed_sequence`): the
    same state and draws; where every word fits in uint32, its PCG64 state from
    :func:`cardiosim.ode._rng_kernels.seed_state_kernel` (:class:`_SeedWords`)."""
    if all(type(w) is int and 0 <= w < _U32 for w in words):
        if not _SEED_STATE:
            from ..ode._rng_kernels import seed_state_kernel
            _SEED_STATE.append(seed_state_kernel)
        entropy = np.array(words, dtype=np.uint32)
        state = np.empty(4, np.uint64)
        _SEED_STATE[0](entropy, state)
        return np.random.Generator(np.random.PCG64(_SeedWords(entropy, state)))
    return np.random.Generator(np.random.PCG64(_seed_sequence(*words)))


def record_rng(seed: int, index: int) -> np.random.Generator:
    """Generator for everything record ``index`` draws besides its source."""
    return _generator(seed, index)


def source_rng(seed: int, src: int) -> np.random.Generator:
    """Generator for the cardiac source ``src`` (shared by its variants)."""
    return _generator(seed, src, 1)


def _split_from_uniform(u: float, fractions: dict) -> str:
    acc = 0.0
    for name in SPLITS:
        acc += fractions.get(name, 0.0)
        if u < acc:
            return name
    return [n for n in SPLITS if fractions.get(n, 0.0) > 0][-1]


@dataclass
class SourcePlan:
    """Maps record indices to sources, variants, splits and labels.

    Attributes
    ----------
    classes : tuple of str
        Label vocabulary (the ``class`` coordinate of the dataset): the label map's
        classes, the same for ODE and real sources.
    n_sources : int
    n_records : int
    label_map : LabelMap
        Maps source codes (ODE classes, SCP, SNOMED...) to ``classes``.
    """

    recipe: Recipe
    classes: tuple
    n_sources: int
    n_records: int
    _records: object = None  # lazy sequence of real recordings (None for ODE)
    label_map: object = None

    def locate(self, index: int) -> tuple[int, int]:
        """(source index, variant) of record ``index``."""
        if not 0 <= index < self.n_records:
            raise IndexError(f"record index {index} outside 0..{self.n_records - 1}")
        v = self.recipe.source.variants
        return index // v, index % v

    def split(self, src: int, metadata: dict | None = None) -> str:
        fold = (metadata or {}).get("strat_fold")
        if fold is not None and int(fold) > 0:
            # PTB-XL's recommended split (Wagner et al. 2020): folds 1-8 train, 9 val, 10 test.
            return "val" if int(fold) == 9 else "test" if int(fold) == 10 else "train"
        u = _generator(self.recipe.seed, src, 2).random()
        return _split_from_uniform(float(u), self.recipe.splits)

    def body(self, src: int) -> int:
        """Body index of source ``src`` (shared by all its variants)."""
        n = self.recipe.body.bodies
        if n == 1:
            return 0
        return int(_generator(self.recipe.seed, src, 3).integers(n))

    def source(self, src: int, context) -> CardiacSource:
        """Build cardiac source ``src`` for the reference body in ``context``."""
        if self._records is None:
            return _ode_source(self.recipe, src, context, self.label_map)
        return _real_source(self.recipe, self._records, src, context)


def make_plan(recipe: Recipe) -> SourcePlan:
    """Plan the records of ``recipe`` (opens real datasets lazily)."""
    from ..sources import load_label_map

    kind = recipe.source.kind
    label_map = load_label_map(recipe.source.label_map or "ten_class")
    if kind == "ode":
        from ..ode import CLASSES
        names = tuple(CLASSES)
        for combo in recipe.source.classes:
            for part in combo.split("+"):
                if part not in names:
                    raise ConfigError(f"source.classes: unknown ODE class {part!r} in {combo!r}; "
                                      f"known classes: {', '.join(names)}")
        unmapped = sorted(set(names) - set(label_map.table["ode"]) - label_map.ignore["ode"])
        if unmapped:
            raise ConfigError(f"label map {label_map.name!r} has no [ode] entry for ODE classes {unmapped}")
        for key, path in recipe.source.class_priors.items():
            check_class_prior(key, path)
        if recipe.source.rhythm_prior:
            _rhythm_prior(recipe)
        n_sources = -(-recipe.records // recipe.source.variants)
        return SourcePlan(recipe, label_map.classes, n_sources, recipe.records, label_map=label_map)
    from ..sources import open_source
    spec = f"{kind}:{recipe.source.path}"
    kwargs = {"label_map": recipe.source.label_map} if recipe.source.label_map else {}
    records = open_source(spec, **kwargs)
    n_sources = len(records)
    if recipe.source.limit:
        n_sources = min(n_sources, recipe.source.limit)
    if n_sources == 0:
        raise ConfigError(f"source {spec!r} holds no records")
    return SourcePlan(recipe, tuple(records.classes), n_sources, n_sources * recipe.source.variants, records,
                      label_map=getattr(records, "label_map", label_map))


def check_class_prior(key: str, path: str):
    """The class prior of ``[source] class_priors`` entry ``key``: the file read (cached), and
    (its class's check) a ConfigError naming ``source.class_priors.<key>`` if it cannot be
    read or holds a prior of another class. Returns (prior, SHA-256 of the file)."""
    from ..errors import DataFormatError
    from ..ode.prior import read_prior_cached

    try:
        prior = read_prior_cached(str(path))
    except DataFormatError as e:
        raise ConfigError(f"source.class_priors.{key}: {e}") from None
    if prior.morphology != key:
        raise ConfigError(f"source.class_priors.{key}: {str(path)!r} holds a {prior.morphology} prior, not a {key} "
                          f"prior (fit one with 'cardiosim prior fit --class {key}')")
    return prior, _sha256_cached(str(path))


@functools.lru_cache(maxsize=16)
def _sha256_cached(path: str) -> str:
    from .io import sha256_file

    return sha256_file(Path(path))


@functools.lru_cache(maxsize=16)
def _class_cdf(classes: tuple) -> tuple[tuple, list]:
    """The class mix ``(combo, weight)`` pairs of a recipe as ``((rhythm, morphology), ...)``
    in sorted order and the cumulative distribution ``Generator.choice`` draws them from
    (``p = w / w.sum()``, ``cdf = p.cumsum()``, ``cdf /= cdf[-1]``; the choice is the first
    entry above one ``random()``), computed once per class mix."""
    weights = dict(classes)
    combos = sorted(weights)
    w = np.array([weights[c] for c in combos], dtype=float)
    cdf = (w / w.sum()).cumsum()
    cdf /= cdf[-1]
    return tuple(tuple(c.split("+")) for c in combos), cdf.tolist()


def _rhythm_prior(recipe: Recipe):
    """The recipe's ``[source] rhythm_prior`` read (cached) or None; a ConfigError naming the
    setting if the file cannot be read as a rhythm prior."""
    if not recipe.source.rhythm_prior:
        return None
    from ..errors import DataFormatError
    from ..ode.rhythm_prior import read_rhythm_prior_cached
    try:
        return read_rhythm_prior_cached(str(recipe.source.rhythm_prior))
    except DataFormatError as e:
        raise ConfigError(f"source.rhythm_prior: {e}") from None


_ODE_DEPS = []  # [(read_prior_cached, _source, _synthetic_fields, draw_source_activity)], imported on first use


def _ode_deps() -> tuple:
    """:func:`_ode_source`'s functions, imported (lazily: the ODE and noise packages) once;
    four function-level imports cost ~3.5 µs a source."""
    if not _ODE_DEPS:
        from ..noise.textile import draw_source_activity
        from ..ode.prior import read_prior_cached
        from ..sources.synthetic import _source, _synthetic_fields
        _ODE_DEPS.append((read_prior_cached, _source, _synthetic_fields, draw_source_activity))
    return _ODE_DEPS[0]


def _ode_source(recipe: Recipe, src: int, context, label_map) -> CardiacSource:
    read_prior_cached, _source, _synthetic_fields, draw_source_activity = _ODE_DEPS[0] if _ODE_DEPS else _ode_deps()
    rng = source_rng(recipe.seed, src)
    combos, cdf = _class_cdf(tuple(recipe.source.classes.items()))
    # ``rng.choice(len(combos), p=w / w.sum())`` (Generator.choice: one ``random()`` against
    # the normalised cumulative sum, ``searchsorted(side="right")``) without re-validating
    # and re-summing the recipe's weights at every source
    rhythm, morphology = combos[bisect.bisect_right(cdf, rng.random())]
    # the wearer's activity is drawn per source (its own stream) and sets the heart rate
    # (exercise may take a sinus rhythm into another rate class: the record is labelled by its rate)
    drawn_rhythm = rhythm
    # (its generator built only if a draw can change the result: not for resting wearers)
    activity, heart_rate, rhythm = draw_source_activity(
        lambda: _generator(recipe.seed, src, 2), recipe.simulation.activities,
        rhythm, motion=recipe.simulation.motion, fit=recipe.simulation.noise.textile_fit or None)
    prior, provenance = read_prior_cached(recipe.source.prior) if recipe.source.prior else None, {}
    if morphology in recipe.source.class_priors:
        # the class's own prior (fitted to real records of the class): traceable per record
        path = recipe.source.class_priors[morphology]
        prior, digest = check_class_prior(morphology, path)
        provenance = {"ode_class_prior": f"{morphology}:{Path(path).resolve()}", "ode_class_prior_sha256": digest,
                      "ode_class_prior_records": ",".join(prior.sources)}
    if recipe.source.rhythm_prior:  # traceable per record, as a class prior
        provenance = {**provenance, "ode_rhythm_prior": str(Path(recipe.source.rhythm_prior).resolve()),
                      "ode_rhythm_prior_sha256": _sha256_cached(str(recipe.source.rhythm_prior))}
    # synthetic_source's fields, the source built once with the dataset's labels and metadata
    # (as synthetic_source's source copied with those two fields set)
    fields, checked = _synthetic_fields(recipe.duration, recipe.source_fs, rng, context.forward,
                                        context.frank_layout, rhythm=rhythm, morphology=morphology,
                                        source_id=f"ode:{src}", heart_rate=heart_rate,
                                        patient_sampler=recipe.source.patient_sampler, prior=prior,
                                        rhythm_prior=_rhythm_prior(recipe), resp_scale=_ode_resp_scale(recipe))
    # The raw ODE classes stay in the parameters (source_ode_class); labels use the dataset vocabulary.
    labels = _ode_labels(label_map, fields["labels"], fields["source_id"])
    if checked:
        fields["labels"] = labels
        fields["metadata"] = {**fields["metadata"], **provenance, "activity": activity,
                              "rhythm_at_rest": drawn_rhythm}
        return _source(**fields)
    source = CardiacSource(**fields)  # the dataclass's checks (and errors), as synthetic_source's
    # a copy with the two fields set (``dataclasses.replace`` would validate the source's
    # 5,000-sample dipole again: it was checked when it was built)
    out = copy.copy(source)
    object.__setattr__(out, "labels", labels)
    object.__setattr__(out, "metadata", {**source.metadata, **provenance, "activity": activity,
                                         "rhythm_at_rest": drawn_rhythm})
    return out


def _ode_labels(label_map, codes: tuple, source_id: str) -> tuple:
    """``label_map.map_codes(codes, "ode", source_id=source_id).labels``, kept per label map
    and codes when every code was mapped or ignored (no warning to repeat): a source's two
    ODE classes map the same way record after record."""
    key = (id(label_map), codes)
    hit = _ODE_LABELS.get(key)
    if hit is not None and hit[0] is label_map:
        return hit[1]
    res = label_map.map_codes(codes, "ode", source_id=source_id)
    if not res.unmapped:
        if len(_ODE_LABELS) >= 256:
            _ODE_LABELS.clear()
        _ODE_LABELS[key] = (label_map, res.labels)
    return res.labels


_ODE_LABELS: dict = {}  # (id(label map), codes) -> (label map, labels)


def _ode_resp_scale(recipe: Recipe) -> float:
    """The ODE's respiratory amplitude modulation is a stand-in for what breathing does to the
    projected beat; where the simulation makes that happen on the torso -- the heart turning
    with respiration, the chest and the electrodes moving (``[simulation] motion`` with
    ``heart.respiration``) -- it is off (0), so that breathing is not counted twice. Measured
    (``tests/test_amplitude_variation.py``): the beat-to-beat R-amplitude variation of a
    resting wearer then reads like real resting records instead of 1.6x theirs."""
    sim = recipe.simulation
    return 0.0 if sim.motion and sim.heart.respiration else 1.0


def _real_source(recipe: Recipe, records, src: int, context) -> CardiacSource:
    from ..sources import recording_to_source
    from ..sources import resample

    rec = records[src]
    signal, fs = rec.signal, float(rec.fs)
    if fs != recipe.source_fs:
        signal = resample(signal, fs, recipe.source_fs)
        fs = recipe.source_fs
    n = int(round(recipe.duration * fs))
    if signal.shape[1] < n:
        raise SignalError(f"record {rec.source_id!r} lasts {signal.shape[1] / fs:.2f} s, shorter than the "
                          f"recipe's duration {recipe.duration} s")
    rec = dataclasses.replace(rec, signal=signal[:, :n], fs=fs)
    from ..geometry import make_layout
    return recording_to_source(rec, context.forward, make_layout("standard12", context.torso))
