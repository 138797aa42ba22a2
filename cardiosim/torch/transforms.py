"""Online physical augmentation: a new shirt recording of a clean source on every call.

Each call runs the full simulator (:func:`cardiosim.simulate.simulate_record`): a new
garment fit (slip, rotation, stretch, electrode jitter), heart orientation, motion and
electrode noise, seen through the device -- so an epoch of training sees physically
different shirt variants of the same clean records rather than the fixed set a
pre-generated dataset holds.

Randomness is explicit and reproducible: the transform owns one
``numpy.random.Generator`` built from the seed or generator it is given. In DataLoader
worker processes it re-derives its generator from ``(seed, worker seed)``
(``SeedSequence``), so workers draw different variants and a run seeded with
``torch.manual_seed`` repeats exactly.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import ConfigError, LeadError
from ._torch import torch


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


class ShirtTransform:
    """Turn a clean :class:`~cardiosim.sources.CardiacSource` into a random shirt recording.

    Parameters
    ----------
    generator : int, numpy.random.Generator or torch.Generator
        Seed material; the transform's own numpy Generator is derived from it once.
    context : cardiosim.simulate.SimulationContext, optional
        Body, lead field and device (default: :func:`cardiosim.simulate.make_context` ()).
    config : cardiosim.simulate.SimulationConfig, optional
        Garment, heart, motion and noise settings (default: the simulator's defaults).
    leads : sequence of str, optional
        Leads to return, in this order (default: all of the device's leads).
    output : {"tensor", "record"}
        ``"tensor"``: a float32 tensor ``(n_leads, T)`` in mV; ``"record"``: the full
        :class:`~cardiosim.simulate.SimulatedRecord` (parameters, displacement, SNR...).

    Calling ``transform(source)`` returns a new variant each time; ``transform(source,
    rng=...)`` uses the given numpy Generator instead of the transform's own.
    """

    def __init__(self, generator, *, context=None, config=None, leads=None, output: str = "tensor"):
        from .. import simulate as _simulate

        if output not in ("tensor", "record"):
            raise ConfigError(f"unknown output {output!r}; expected 'tensor' or 'record'")
        self._simulate = _simulate
        self.context = context if context is not None else _simulate.default_context()
        self.config = config
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
        self._rng = np.random.default_rng(self.seed)
        self._pid = os.getpid()

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

    def __call__(self, source, rng: np.random.Generator | None = None):
        rng = self._generator() if rng is None else rng
        rec = self._simulate.simulate_record(source, rng, context=self.context, config=self.config)
        if self.output == "record":
            return rec
        ecg = rec.ecg if self._rows is None else rec.ecg[self._rows]
        return torch.from_numpy(np.ascontiguousarray(ecg, dtype=np.float32))

    def __repr__(self) -> str:
        return (f"ShirtTransform(device={self.context.device.name!r}, leads={len(self.leads)}, seed={self.seed}, "
                f"output={self.output!r})")


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
