"""Whole-record front-end failures of out-of-hospital recordings, drawn at recipe rates.

What the unacceptable records of the PhysioNet/CinC Challenge 2011 (mobile-phone 12-lead
ECGs taken by non-specialists, ``$CARDIOSIM_DATA/cinc2011``) show most often is not noise
but a device stuck for the whole record: every measured channel at the negative rail
(I, II, V1-V6 at -80 mV; III = 0, aVR = +80, aVL = aVF = -40 mV, derived after the ADC)
when the RA or the ground (RL) electrode is missing; I and V1-V6 railed with II alive when
LA is missing; II and V1-V6 railed when LL is; one precordial channel railed when its
electrode is missing; one channel, or the whole device, stuck at 0. Counts in the 120
records of set a (30 unacceptable): RA/ground pattern 10, one V electrode 3, LA 1, LL 1,
device at 0 1, one channel at 0 1 (:data:`CINC2011_RATES` gives these as rates).

:class:`FailureConfig` holds the rates (a recipe's ``[simulation.failures]`` table, all 0
by default); :meth:`FailureConfig.draw` draws one record's :class:`FrontEndFailure`,
which :func:`cardiosim.device.apply_device` applies as the device does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from ..config import check_range, from_dict, to_dict
from ..errors import ConfigError


@dataclass(frozen=True)
class FrontEndFailure:
    """What is broken for the whole record.

    Attributes
    ----------
    electrodes_off : tuple of str -- electrodes missing (not attached) for the whole record
    ground_off : bool -- the ground / right-leg-drive electrode is missing
    channels_flat : tuple of str -- measured channels stuck at 0 (a dead input)
    device_flat : bool -- the whole device records 0
    contact_lost : ndarray (n_electrodes, T_in) bool, optional
        Samples (at the device's input rate, electrodes in montage order) where an electrode
        has lost contact during the record; a DC-coupled device's lead-off detection puts
        the channels using it at the lead-off code for that time. Not part of the label.
    """

    electrodes_off: tuple[str, ...] = ()
    ground_off: bool = False
    channels_flat: tuple[str, ...] = ()
    device_flat: bool = False
    contact_lost: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def any(self) -> bool:
        return bool(self.electrodes_off or self.ground_off or self.channels_flat or self.device_flat
                    or (self.contact_lost is not None and self.contact_lost.any()))

    @property
    def label(self) -> str:
        """``'none'`` or ``;``-joined parts: ``device_flat``, ``ground_off``,
        ``electrode_off:RA,LA``, ``channel_flat:V1``."""
        parts = []
        if self.device_flat:
            parts.append("device_flat")
        if self.ground_off:
            parts.append("ground_off")
        if self.electrodes_off:
            parts.append("electrode_off:" + ",".join(self.electrodes_off))
        if self.channels_flat:
            parts.append("channel_flat:" + ",".join(self.channels_flat))
        return ";".join(parts) or "none"


#: Per-record rates seen in CinC 2011 set a (120 records; counts in the module docstring):
#: ``electrode_off`` is per electrode (10 RA-or-ground records are split evenly between a
#: missing RA and a missing ground; one V electrode in 3 records over 6 electrodes).
CINC2011_RATES: dict[str, float] = {"ground_off": 5 / 120, "electrode_off": 0.0, "device_flat": 1 / 120,
                                    "channel_flat": 1 / 120 / 8,
                                    "electrode_off_by_name": {"RA": 5 / 120, "LA": 1 / 120, "LL": 1 / 120,
                                                              "V1": 0.5 / 120, "V2": 0.5 / 120, "V3": 0.5 / 120,
                                                              "V4": 0.5 / 120, "V5": 0.5 / 120, "V6": 0.5 / 120}}


@dataclass(frozen=True)
class FailureConfig:
    """Rates of whole-record front-end failures (all 0 by default: nothing fails).

    Attributes
    ----------
    ground_off : float -- probability per record that the ground (RL) electrode is missing
    electrode_off : float -- probability per record and electrode that it is missing
    electrode_off_by_name : dict str -> float -- per-electrode probabilities overriding ``electrode_off``
    device_flat : float -- probability per record that the device records 0 throughout
    channel_flat : float -- probability per record and measured channel that it is stuck at 0
    """

    ground_off: float = 0.0
    electrode_off: float = 0.0
    electrode_off_by_name: dict[str, float] = field(default_factory=dict)
    device_flat: float = 0.0
    channel_flat: float = 0.0

    def __post_init__(self):
        for k in ("ground_off", "electrode_off", "device_flat", "channel_flat"):
            check_range(f"failures.{k}", getattr(self, k), 0.0, 1.0)
        by = {str(k): float(v) for k, v in dict(self.electrode_off_by_name).items()}
        for k, v in by.items():
            check_range(f"failures.electrode_off_by_name.{k}", v, 0.0, 1.0)
        object.__setattr__(self, "electrode_off_by_name", by)

    @property
    def enabled(self) -> bool:
        return bool(self.ground_off or self.electrode_off or self.device_flat or self.channel_flat
                    or any(self.electrode_off_by_name.values()))

    @classmethod
    def cinc2011(cls) -> "FailureConfig":
        """The rates of :data:`CINC2011_RATES`."""
        return cls(**CINC2011_RATES)

    def draw(self, rng: np.random.Generator, electrodes, channels) -> FrontEndFailure:
        """One record's failure. Draws nothing from ``rng`` when every rate is 0 (records
        of recipes without failures stay bit-identical)."""
        if not self.enabled:
            return FrontEndFailure()
        unknown = set(self.electrode_off_by_name) - set(electrodes)
        if unknown:
            raise ConfigError(f"failures.electrode_off_by_name: electrode {sorted(unknown)[0]!r} is not one of "
                              f"the device's electrodes {tuple(electrodes)}")
        u = rng.random(3 + len(electrodes) + len(channels))
        p_e = np.array([self.electrode_off_by_name.get(e, self.electrode_off) for e in electrodes])
        off = tuple(e for e, x, p in zip(electrodes, u[3: 3 + len(electrodes)], p_e) if x < p)
        flat = tuple(c for c, x in zip(channels, u[3 + len(electrodes):]) if x < self.channel_flat)
        return FrontEndFailure(electrodes_off=off, ground_off=bool(u[1] < self.ground_off), channels_flat=flat,
                               device_flat=bool(u[0] < self.device_flat))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "FailureConfig":
        return from_dict(cls, data)

    def to_dict(self) -> dict:
        return to_dict(self)


def channel_states(codes: np.ndarray, full_scale: int, *, tol: int = 16) -> tuple[str, ...]:
    """State of each channel of a record in ADC codes [n_channels, T]: ``'-rail'`` /
    ``'+rail'`` (constant within ``tol`` codes of a rail), ``'zero'`` (constant 0),
    ``'half-'`` / ``'half+'`` (constant near half a rail: derived from railed channels),
    ``'const'`` (another constant), ``'live'``."""
    out = []
    for x in np.asarray(codes):
        if np.ptp(x) > tol:
            out.append("live")
            continue
        v = float(np.median(x))
        if abs(v + full_scale) <= tol:
            out.append("-rail")
        elif abs(v - full_scale) <= tol:
            out.append("+rail")
        elif abs(v) <= tol:
            out.append("zero")
        elif abs(v + full_scale / 2) <= tol:
            out.append("half-")
        elif abs(v - full_scale / 2) <= tol:
            out.append("half+")
        else:
            out.append("const")
    return tuple(out)
