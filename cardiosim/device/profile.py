"""Device profiles: what a recording device does to the leads.

A profile is a frozen dataclass read from a TOML file (``cardiosim/device/profiles``).

Gain / magnification convention
-------------------------------
``gain`` multiplies the lead voltage in front of the ADC (an amplifier's gain, or a
patch's *magnification factor*). ``adc_range_mv`` is the ADC's full-scale range at its
input (``+-adc_range_mv``), so the body-surface range is ``+-adc_range_mv / gain``.
The device's raw output is in magnified units (``raw = code * lsb`` = lead x gain); the
recording in mV is ``raw / gain`` -- "raw output divided by the magnification factor".
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..config import check_range, from_dict, to_dict
from ..errors import ConfigError, DataFormatError
from ..leads import make_montage, montage_names

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"
#: Electrode types a profile may name (those of the noise model, cardiosim.noise.config), '' for none.
DEVICE_ELECTRODES = ("", "textile", "dry", "gel")


@dataclass(frozen=True)
class DeviceProfile:
    """A recording device.

    Attributes
    ----------
    name, description : str
    montage : str -- name for :func:`cardiosim.leads.make_montage` ('standard12', 'limb3', 'patch', ...)
    layout : str -- electrode layout name for :func:`cardiosim.geometry.make_layout`
    fs : float -- output sampling rate, Hz
    band_hz : (lo, hi) -- analog band-pass corners, Hz (Butterworth high-pass and low-pass)
    filter_order : int -- order of each of the high-pass and low-pass sections
    gain : float -- amplifier gain / magnification factor in front of the ADC
    adc_bits : int
    adc_range_mv : float -- ADC full scale +- at its input, mV
    powerline_hz : {50, 60} -- mains frequency where the device is used (notch, noise)
    notch : bool -- apply a second-order notch at ``powerline_hz`` (Q = 30)
    coupling : {'ac', 'dc'}
        'ac' (default): analog band-pass before the ADC, every lead formed before it.
        'dc': the front end of a DC-coupled ECG ADC (:mod:`cardiosim.device.frontend`):
        the measured leads are digitised over ``+-input_range_mv`` (clipping there, before
        any filtering), band-passed digitally, and the other leads derived digitally from
        the measured codes.
    measured_leads : tuple of str
        Leads the ADC measures ('dc' only; empty: all). For a 12-lead device I, II, V1-V6;
        III, aVR, aVL, aVF are then derived after the ADC (Einthoven, Goldberger).
    lead_off_code : {'negative', 'positive', 'zero'}
        What a measured channel reads when one of its electrodes (or the ground) is off:
        the negative or positive full-scale code (lead-off detection pulls the input to a
        rail), or 0.
    electrode : {'', 'textile', 'dry', 'gel'}
        The electrode type the device is worn with (a shirt's textile, a patch's or Holter's
        adhesive gel, a handheld's metal): the noise model's type when the simulation's
        ``noise.electrode`` is ``'device'`` (its default); '' = textile.
    """

    name: str
    montage: str
    layout: str
    fs: float
    band_hz: tuple[float, float]
    filter_order: int
    gain: float
    adc_bits: int
    adc_range_mv: float
    powerline_hz: int = 50
    notch: bool = False
    description: str = ""
    coupling: str = "ac"
    measured_leads: tuple[str, ...] = ()
    lead_off_code: str = "negative"
    electrode: str = ""

    def __post_init__(self):
        if self.electrode not in DEVICE_ELECTRODES:
            raise ConfigError(f"electrode must be one of {', '.join(repr(e) for e in DEVICE_ELECTRODES)}, "
                              f"got {self.electrode!r}")
        if self.montage not in montage_names():
            raise ConfigError(f"montage: unknown montage {self.montage!r}; known: {', '.join(montage_names())}")
        check_range("fs", self.fs, 0.0, lo_open=True)
        lo, hi = self.band_hz
        check_range("band_hz[0]", lo, 0.0, lo_open=True)
        check_range("band_hz[1]", hi, lo, lo_open=True)
        if hi >= self.fs / 2:
            # the analog low-pass is the device's first anti-aliasing stage; above Nyquist
            # it would promise a band the output cannot carry
            raise ConfigError(f"band_hz[1] = {hi} Hz must be below the output Nyquist frequency {self.fs / 2} Hz")
        check_range("filter_order", self.filter_order, 1, 8)
        check_range("gain", self.gain, 0.0, lo_open=True)
        check_range("adc_bits", self.adc_bits, 2, 32)
        check_range("adc_range_mv", self.adc_range_mv, 0.0, lo_open=True)
        if self.powerline_hz not in (50, 60):
            raise ConfigError(f"powerline_hz must be 50 or 60, got {self.powerline_hz!r}")
        if self.coupling not in ("ac", "dc"):
            raise ConfigError(f"coupling must be 'ac' or 'dc', got {self.coupling!r}")
        if self.lead_off_code not in ("negative", "positive", "zero"):
            raise ConfigError(f"lead_off_code must be 'negative', 'positive' or 'zero', got {self.lead_off_code!r}")
        measured = tuple(self.measured_leads)
        object.__setattr__(self, "measured_leads", measured)
        if measured:
            if self.coupling != "dc":
                raise ConfigError("measured_leads needs coupling = 'dc' (an 'ac' device forms every lead in analog)")
            leads = self.make_montage().leads
            bad = [m for m in measured if m not in leads]
            if bad:
                raise ConfigError(f"measured_leads: lead {bad[0]!r} is not a lead of montage {self.montage!r} {leads}")

    @property
    def input_range_mv(self) -> float:
        """Body-surface range ``+-adc_range_mv / gain`` (mV) before the ADC saturates."""
        return self.adc_range_mv / self.gain

    @property
    def lsb_mv(self) -> float:
        """One ADC step referred to the body surface (mV)."""
        return 2.0 * self.adc_range_mv / 2 ** self.adc_bits / self.gain

    def make_montage(self):
        return make_montage(self.montage)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DeviceProfile":
        return from_dict(cls, data)

    def to_dict(self) -> dict:
        return to_dict(self)


def device_names() -> tuple[str, ...]:
    """Names of the shipped device profiles."""
    return tuple(sorted(p.stem for p in PROFILE_DIR.glob("*.toml")))


def load_device(name_or_path: str | Path) -> DeviceProfile:
    """Load a shipped profile by name (``'shirt12_500hz'``, ``'patch_128hz'``, ``'shirt3_250hz'``)
    or a TOML file by path.

    Raises
    ------
    ConfigError
        Unknown profile name, unknown key or invalid value (the message names the key).
    DataFormatError
        The file cannot be read or is not valid TOML.
    """
    if isinstance(name_or_path, DeviceProfile):
        return name_or_path
    s = str(name_or_path)
    path = PROFILE_DIR / f"{s}.toml" if s in device_names() else Path(s)
    if not path.is_file():
        if path.suffix == ".toml" or "/" in s:
            raise DataFormatError(f"device profile file not found: {path}")
        raise ConfigError(f"unknown device {s!r}; shipped devices: {', '.join(device_names())}")
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise DataFormatError(f"cannot read device profile {path}: {exc}") from None
    try:
        return DeviceProfile.from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"device profile {path.name}: {exc}") from None
