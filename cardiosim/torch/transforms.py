"""Online physical augmentation: a new shirt recording of a clean source on every call.

Two engines behind one :class:`ShirtTransform`:

* ``mode="full"`` runs the full simulator per record (:func:`cardiosim.simulate.simulate_record`):
  a new garment fit (slip, rotation, stretch, electrode jitter), heart orientation, motion
  and electrode noise, seen through the device (about 20 ms a 10-s 12-lead record).
* ``mode="batch"`` takes a block of records per call (:meth:`ShirtTransform.batch`, or
  :meth:`ShirtTransform.collate` as a DataLoader ``collate_fn``) through numba kernels
  (:mod:`cardiosim.torch._kernels`): the same garment fit and heart orientation, the
  boundary-element lead field at the displaced electrodes, electrode-level noise (amplifier
  white noise, mains through the electrode impedance mismatch, breathing-locked and slow
  baseline wander) and the device's analog band-pass, gain and ADC. It leaves out what
  needs per-record planning: electrode motion within the record, contact events, the
  fitted activity noise and SNR targets (a config asking for them is refused, naming
  them). Every record draws from its own seed, so a record is bit-identical whether it is
  transformed alone or in any batch; see ``benchmarks/bench_transform.py`` for its speed.

An epoch of training thus sees physically different shirt variants of the same clean
records rather than the fixed set a pre-generated dataset holds.

Randomness is explicit and reproducible: the transform owns one
``numpy.random.Generator`` built from the seed or generator it is given. In DataLoader
worker processes it re-derives its generator from ``(seed, worker seed)``
(``SeedSequence``), so workers draw different variants and a run seeded with
``torch.manual_seed`` repeats exactly.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import ConfigError, LeadError, SamplingRateError, SignalError
from ._torch import torch

#: Noise kinds the batched engine models (the others need per-record planning).
BATCH_NOISE_KINDS = ("white", "powerline", "bw")


def _entropy(generator) -> int:
    if generator is None:
        raise ConfigError("ShirtTransform needs an explicit generator: an int seed, a numpy.random.Generator "
                          "or a torch.Generator")
    if isinstance(generator, (int, np.integer)) and not isinstance(generator, bool):
        if generator < 0:
            raise ConfigError(f"seed must be non-negative, got {generator}")
        return int(generator)
    if isinstance(generator, np.random.Generator):
        return int(generator.integers(0, 2 ** 63 - 1))
    if isinstance(generator, torch.Generator):
        return int(torch.randint(0, 2 ** 62, (1,), generator=generator).item())
    raise ConfigError(f"generator must be an int, numpy.random.Generator or torch.Generator, "
                      f"got {type(generator).__name__}")


def default_batch_config():
    """The simulator's defaults without what the batched engine does not model: no motion
    within a record, noise kinds white, powerline and baseline wander."""
    from ..noise import NoiseConfig
    from ..simulate import SimulationConfig

    return SimulationConfig(motion=False, noise=NoiseConfig(kinds=BATCH_NOISE_KINDS))


class _BatchEngine:
    """What the batched kernels need from a context and a config, checked once."""

    def __init__(self, context, config):
        from ..device.apply import _filter_design
        from ..noise.config import ELECTRODE_TYPES
        from . import _kernels

        cfg = config
        refused = []
        if cfg.motion:
            refused.append("motion = true (electrode motion within a record)")
        extra = [k for k in cfg.noise.kinds if k not in BATCH_NOISE_KINDS]
        if cfg.add_noise and extra:
            refused.append(f"noise kinds {extra}")
        if cfg.add_noise and cfg.noise.snr_db:
            refused.append(f"noise.snr_db targets {sorted(cfg.noise.snr_db)}")
        if cfg.augment.enabled:
            refused.append("simulation.augment")
        dev = context.device
        if dev.coupling != "ac":
            refused.append(f"device {dev.name!r} coupling {dev.coupling!r}")
        if refused:
            raise ConfigError("ShirtTransform(mode='batch') does not model " + "; ".join(refused) +
                              f": use mode='full', or a config without them (default_batch_config(); batch "
                              f"noise kinds: {', '.join(BATCH_NOISE_KINDS)})")
        from ..simulate import device_electrode

        self.electrode = device_electrode(cfg.noise, dev)   # 'device' -> the device profile's type
        assert self.electrode in ELECTRODE_TYPES
        self.context = context
        self._buffers: dict = {}
        montage = context.montage
        layout = context.layout
        self.base = layout.positions[layout.index(montage.electrodes)]
        lm = context.torso.landmarks
        v = context.torso.vertices
        self.center = np.asarray(lm["body_axis"], dtype=float) if "body_axis" in lm else \
            np.array([v[:, 0].mean(), v[:, 1].mean(), 0.0])
        self.montage = np.asarray(montage.matrix, dtype=np.float64)
        self.leads = tuple(montage.leads)
        nz = cfg.noise
        z0, zinf = _kernels.IMPEDANCE_OHM[self.electrode]
        hydrates = zinf is not None
        zinf = zinf if hydrates else z0   # drawn and unused: one stream layout for every type
        self.spec = _Spec(
            sds=np.array([cfg.garment.slip_sd, cfg.garment.rotation_sd_deg, cfg.garment.stretch_sd,
                          cfg.garment.jitter_sd, cfg.heart.rotation_sd_deg], dtype=float),
            z_rng=np.array([*z0, *zinf], dtype=float), wear_rng=np.array(nz.wear_time_s, dtype=float),
            tau=float(nz.hydration_tau_s), white_rng=np.array(nz.white_uv, dtype=float),
            cm_rng=np.array(nz.cm_voltage_mv, dtype=float), ground=nz.powerline_coupling == "ground_electrode",
            id_rng=np.array(nz.displacement_current_ua, dtype=float), bw_rng=np.array(nz.bw_mv, dtype=float),
            coupling_rng=np.array(nz.breathing_coupling, dtype=float), zin=float(nz.input_impedance_ohm),
            n_harm=int(nz.powerline_harmonics), hydrates=hydrates)
        on = cfg.add_noise
        self.flags = np.array([on and "white" in nz.kinds, on and "powerline" in nz.kinds, on and "bw" in nz.kinds,
                               nz.powerline_hz / 50.0], dtype=float)
        lo, hi = dev.band_hz
        if hi >= dev.fs / 2 or (dev.notch and dev.powerline_hz >= dev.fs / 2):
            raise SamplingRateError(f"device {dev.name!r}: its {hi} Hz low-pass (or notch) needs more than "
                                    f"{dev.fs} Hz")
        sos, zi = _filter_design(dev.filter_order, float(lo), float(hi), float(dev.fs),
                                 int(dev.powerline_hz) if dev.notch else 0)
        lsb = 2.0 * dev.adc_range_mv / 2 ** dev.adc_bits
        self.device = (sos, zi, float(dev.gain), lsb, float(-(2 ** (dev.adc_bits - 1))),
                       float(2 ** (dev.adc_bits - 1) - 1))

    def run(self, sources, seeds, rows, device_stage=True, out=None):
        from ..geometry import displace_on_surface
        from . import _kernels as k

        n_rec = len(sources)
        fs = float(self.context.device.fs)
        n = sources[0].n_samples
        for src in sources:
            if float(src.fs) != fs:
                raise SamplingRateError(f"source {src.source_id!r} is at {src.fs} Hz; mode='batch' needs sources at "
                                        f"the device's {fs} Hz (resample them first, or use mode='full')")
            if src.n_samples != n:
                raise SignalError(f"a batch needs sources of one length: {sources[0].source_id!r} has {n} samples, "
                                  f"{src.source_id!r} {src.n_samples}")
        p = k.draw_params(seeds, self.base, self.center, self.spec)
        fitted = displace_on_surface(self.context.torso, self.base, p.offsets)
        lf = self.context.forward.lead_field(fitted.reshape(-1, 3)).reshape(n_rec, -1, 3)
        surfaces = [getattr(src, "surface", None) for src in sources]
        q = 3 + max((sf.coefficients.shape[0] for sf in surfaces if sf is not None), default=0)
        g = k.transfer(lf, p.rot, q)
        src_rows = self._buffer("src", (n_rec, q, n))     # reused: fresh pages cost page faults
        for b, src in enumerate(sources):
            src_rows[b, :3] = src.dipole
            src_rows[b, 3:] = 0.0
        has_res = np.array([src.residual is not None for src in sources])
        residual = self._buffer("res", (n_rec, len(self.leads), n) if has_res.any() else (n_rec, 0, 0))
        residual[has_res] = 0.0
        for b, (src, sf) in enumerate(zip(sources, surfaces)):
            if sf is not None:    # a real source's non-dipolar field moves with the electrodes (not the heart)
                self._check_surface(sf)
                m = sf.coefficients.shape[0]
                g[b, :, 3:3 + m] = sf.nondipolar_transfer(fitted[b])
                src_rows[b, 3:3 + m] = sf.coefficients
            if src.residual is not None:
                for row, name in enumerate(src.residual_leads):
                    if name in self.leads:
                        residual[b, self.leads.index(name)] = src.residual[row]
        out = k.render(src_rows, g, residual, has_res, self.montage, rows, seeds, p, self.flags, fs,
                       self.device if device_stage else None, out)
        return out, p, fitted

    def _buffer(self, key, shape):
        buf = self._buffers.get(key)
        if buf is None or buf.shape != shape:
            buf = self._buffers[key] = np.empty(shape)
        return buf

    def _check_surface(self, sf):
        t = self.context.torso
        if sf.torso is not t and not (sf.torso.vertices.shape == t.vertices.shape
                                      and np.array_equal(sf.torso.vertices, t.vertices)):
            raise ConfigError(f"the source's surface field was fitted on torso {sf.torso.name!r}, not on the "
                              f"context's {t.name!r}")


class _Spec:
    def __init__(self, **kw):
        self.__dict__.update(kw)


class ShirtTransform:
    """Turn clean :class:`~cardiosim.sources.CardiacSource` records into random shirt recordings.

    Parameters
    ----------
    generator : int, numpy.random.Generator or torch.Generator
        Seed material; the transform's own numpy Generator is derived from it once.
    context : cardiosim.simulate.SimulationContext, optional
        Body, lead field and device (default: :func:`cardiosim.simulate.make_context` ()).
    config : cardiosim.simulate.SimulationConfig, optional
        Garment, heart, motion and noise settings (default: the simulator's defaults for
        ``mode="full"``, :func:`default_batch_config` for ``mode="batch"``).
    leads : sequence of str, optional
        Leads to return, in this order (default: all of the device's leads).
    output : {"tensor", "record"}
        ``"tensor"``: a float32 tensor ``(n_leads, T)`` in mV; ``"record"`` (``mode="full"``
        only): the full :class:`~cardiosim.simulate.SimulatedRecord`.
    mode : {"full", "batch"}
        The per-record simulator, or the batched numba engine (module docstring).
    refiner : cardiosim.torch.refine.Refiner or path of a saved one, optional
        Applied to every record after the physics (both modes; ``output="tensor"`` only):
        a simulated record made to look like the user's own device
        (:mod:`cardiosim.torch.refine`). It must take the returned leads; a saved refiner
        must have been trained at the device's rate. Each record is refined on its own, on
        one CPU thread, so batching does not change its bits.

    A transform is picklable (DataLoader workers started by ``spawn``) but not meant to
    be called from several threads at once (the batched engine reuses its buffers).

    Calling ``transform(source)`` returns a new variant each time; ``transform(source,
    rng=...)`` (full) uses the given numpy Generator, ``transform(source, seed=...)``
    (batch) the given record seed. ``transform.batch(sources, seeds=None)`` returns
    ``(B, n_leads, T)``; record ``j`` equals ``transform(sources[j], seed=seeds[j])`` bit
    for bit.
    """

    def __init__(self, generator, *, context=None, config=None, leads=None, output: str = "tensor",
                 mode: str = "full", refiner=None):
        from .. import simulate as _simulate

        if output not in ("tensor", "record"):
            raise ConfigError(f"unknown output {output!r}; expected 'tensor' or 'record'")
        if mode not in ("full", "batch"):
            raise ConfigError(f"unknown mode {mode!r}; expected 'full' or 'batch'")
        if mode == "batch" and output == "record":
            raise ConfigError("output='record' needs mode='full' (the batched engine returns tensors)")
        self.context = context if context is not None else _simulate.default_context()
        self.mode = mode
        self.config = config if config is not None or mode == "full" else default_batch_config()
        self.output = output
        self.seed = _entropy(generator)
        device_leads = tuple(self.context.montage.leads)
        if leads is None:
            self.leads = device_leads
            self._rows = None
        else:
            missing = [x for x in leads if x not in device_leads]
            if missing:
                raise LeadError(f"leads {missing} are not recorded by device {self.context.device.name!r} "
                                f"{device_leads}")
            self.leads = tuple(leads)
            self._rows = [device_leads.index(x) for x in leads]
        self._engine = _BatchEngine(self.context, self.config) if mode == "batch" else None
        self.refiner = self._check_refiner(refiner)
        self._rng = np.random.default_rng(self.seed)
        self._pid = os.getpid()

    def _check_refiner(self, refiner):
        if refiner is None:
            return None
        from .refine import Refiner, RefinePostprocess

        if self.output != "tensor":
            raise ConfigError("refiner= needs output='tensor' (a refined record has no SimulatedRecord)")
        if isinstance(refiner, Refiner):
            if refiner.config["n_leads"] != len(self.leads):
                raise LeadError(f"the refiner takes {refiner.config['n_leads']} leads, the transform returns "
                                f"{len(self.leads)} ({', '.join(self.leads)})")
            return refiner.cpu().eval()
        if isinstance(refiner, (str, os.PathLike)):
            # checked here (rate, leads); the loaded model is dropped on pickling and reloaded per worker
            post = RefinePostprocess(refiner)
            post.load(self.fs, len(self.leads))
            return post
        raise ConfigError(f"refiner must be a Refiner or the path of a saved one, got {type(refiner).__name__}")

    def _refine(self, x: np.ndarray) -> np.ndarray:
        """``x (B, n_leads, T)`` through the refiner (identity without one)."""
        if self.refiner is None:
            return x
        from .refine import Refiner, refine_records

        model = self.refiner if isinstance(self.refiner, Refiner) else self.refiner.load(self.fs, len(self.leads))[0]
        # a refiner that keeps the average beat or bounds its slope by the QRS's finds each record's R peaks
        # on the record (no annotations here)
        return refine_records(model, x, fs=self.fs)

    @property
    def fs(self) -> float:
        """Sampling rate of the output (the device's), Hz."""
        return float(self.context.device.fs)

    def _generator(self) -> np.random.Generator:
        if os.getpid() != self._pid:      # first call inside a worker process
            info = torch.utils.data.get_worker_info()
            worker_seed = info.seed if info is not None else os.getpid()
            self._rng = np.random.default_rng(np.random.SeedSequence([self.seed, int(worker_seed) % 2 ** 63]))
            self._pid = os.getpid()
        return self._rng

    def draw_seeds(self, n: int) -> np.ndarray:
        """``n`` record seeds (uint64) from the transform's generator."""
        return self._generator().integers(0, 2 ** 63 - 1, size=n, dtype=np.uint64)

    def __call__(self, source, rng: np.random.Generator | None = None, *, seed: int | None = None):
        if self.mode == "batch":
            if rng is not None:
                raise ConfigError("mode='batch' draws from record seeds: pass seed=, not rng=")
            return self.batch([source], None if seed is None else [seed])[0]
        from ..simulate import simulate_record

        rng = self._generator() if rng is None else rng
        rec = simulate_record(source, rng, context=self.context, config=self.config)
        if self.output == "record":
            return rec
        ecg = rec.ecg if self._rows is None else rec.ecg[self._rows]
        ecg = np.ascontiguousarray(ecg, dtype=np.float32)
        if self.refiner is not None:
            ecg = self._refine(ecg[None])[0]
        return torch.from_numpy(ecg)

    def batch(self, sources, seeds=None):
        """A new shirt variant of each of ``sources``: float32 tensor ``(B, n_leads, T)`` mV.

        Parameters
        ----------
        sources : sequence of CardiacSource
            One sampling rate (the device's, for ``mode="batch"``) and one length.
        seeds : sequence of int, optional
            One seed per record (``mode="batch"``); default: drawn from the transform's
            generator. The same seed gives the same record in any batch.
        """
        sources = list(sources)
        if not sources:
            raise SignalError("batch needs at least one source")
        if self.mode == "full":
            if seeds is not None:
                raise ConfigError("mode='full' draws from the transform's generator; seeds= needs mode='batch'")
            return torch.stack([self(src) for src in sources])
        if seeds is None:
            seeds = self.draw_seeds(len(sources))
        seeds = np.asarray(seeds)
        if seeds.shape != (len(sources),) or (seeds.dtype.kind not in "ui") or np.any(seeds < 0):
            raise ConfigError(f"seeds must be {len(sources)} non-negative integers, got {seeds!r}")
        rows = np.arange(len(self.leads)) if self._rows is None else np.asarray(self._rows)
        shape = (len(sources), len(rows), sources[0].n_samples)
        if torch.utils.data.get_worker_info() is not None:
            # a DataLoader worker: write straight into shared memory, so the batch reaches the
            # main process without the copy (and page faults) of share_memory_()
            storage = torch.UntypedStorage._new_shared(4 * int(np.prod(shape)))
            out = torch.empty(0, dtype=torch.float32).set_(storage, 0, shape)
        else:
            out = torch.empty(shape, dtype=torch.float32)
        self._engine.run(sources, seeds.astype(np.uint64), rows, out=out.numpy())
        if self.refiner is not None:
            out.numpy()[:] = self._refine(out.numpy())
        return out

    def collate(self, items):
        """DataLoader ``collate_fn``: a list of sources, or of ``(source, label)`` pairs, becomes
        the batch tensor (and the stacked labels), so each worker transforms whole batches."""
        if items and isinstance(items[0], tuple):
            sources, labels = zip(*items)
            return self.batch(sources), torch.utils.data.default_collate(list(labels))
        return self.batch(items)

    def __repr__(self) -> str:
        return (f"ShirtTransform(device={self.context.device.name!r}, leads={len(self.leads)}, seed={self.seed}, "
                f"mode={self.mode!r}, output={self.output!r}" + (", refined" if self.refiner is not None else "") + ")")


class OnlineShirtDataset(torch.utils.data.Dataset):
    """Clean sources seen through a :class:`ShirtTransform`: a new shirt variant per access.

    Parameters
    ----------
    sources : sequence of CardiacSource (or any object with ``__len__``/``__getitem__``
        returning one, e.g. a lazy reader)
    transform : ShirtTransform
    classes : sequence of str
        Class vocabulary of the multi-hot label; a source label outside it raises.

    Item ``i`` is ``(ecg, label)``: the transform's output and a float32 multi-hot
    ``(n_classes,)`` from ``sources[i].labels``.
    """

    def __init__(self, sources, transform: ShirtTransform, classes):
        self.sources = sources
        self.transform = transform
        self.classes = tuple(classes)
        if not self.classes:
            raise ConfigError("classes must name at least one class")

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, i):
        source = self.sources[i]
        label = torch.zeros(len(self.classes), dtype=torch.float32)
        for name in source.labels:
            if name not in self.classes:
                raise ConfigError(f"source {source.source_id!r} has label {name!r}, not in classes {self.classes}")
            label[self.classes.index(name)] = 1.0
        return self.transform(source), label
