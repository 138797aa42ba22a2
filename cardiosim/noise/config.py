"""Configuration of the electrode noise model (a frozen dataclass, unknown keys raise)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ..config import check_range, from_dict, to_dict
from ..errors import ConfigError

#: Noise kinds, in the order they are generated. Names follow NSTDB where one exists
#: (``bw`` baseline wander, ``em`` electrode motion); ``emg`` is the muscle artifact
#: (NSTDB ``ma``), ``white`` the amplifier/thermal floor, ``powerline`` the mains
#: interference, ``contact`` contact loss and pops, ``recorded`` noise synthesised from a
#: model fitted to a real noise recording (NSTDB or the user's own), ``activity`` the
#: noise of a worn device fitted per electrode type x activity to real single-lead chest
#: recordings (:mod:`cardiosim.noise.textile`), ``drift`` the slow (< 0.5 Hz) electrode wander an
#: ambulatory recorder with a 0.05 Hz front end sees, fitted to Holter records
#: (:mod:`cardiosim.noise.drift`).
NOISE_KINDS: tuple[str, ...] = ("white", "bw", "em", "emg", "powerline", "contact", "recorded", "activity",
                                "drift")

#: Kinds enabled by default: the fitted activity noise (its level follows the activity,
#: the electrode type and, through the QRS size, the body), the amplifier floor, mains by
#: impedance mismatch, rare contact events and the electrodes' slow drift (below 0.5 Hz, which
#: the activity fit does not cover). The NSTDB-shaped ``bw``, ``em``, ``emg`` and ``recorded``
#: stay available.
DEFAULT_KINDS: tuple[str, ...] = ("white", "activity", "powerline", "contact", "drift")

#: Kinds whose amplitude may be set by a target SNR (the others are physical only:
#: powerline follows the impedance mismatch, contact events are rail-size by nature).
SNR_KINDS: tuple[str, ...] = ("white", "bw", "em", "emg", "powerline", "recorded", "activity", "drift")

#: Electrode types (:attr:`NoiseConfig.electrode`).
ELECTRODE_TYPES: tuple[str, ...] = ("gel", "dry", "textile")


def _default_snr() -> dict:
    # No per-record SNR targets by default: the noise level follows from the activity, the
    # electrode and the body. Users who want NSTDB-style stress levels (24 ... -6 dB, Moody
    # et al. 1984) set e.g. snr_db = {em = [6, 24]}.
    return {}


def _range(key: str, value, lo=None, hi=None, *, lo_open=False) -> None:
    a, b = value
    check_range(f"{key}[0]", a, lo, hi, lo_open=lo_open)
    check_range(f"{key}[1]", b, lo, hi, lo_open=lo_open)
    if b < a:
        raise ConfigError(f"{key} must be (low, high) with low <= high, got {tuple(value)!r}")


@dataclass(frozen=True)
class NoiseConfig:
    """Settings of :func:`cardiosim.noise.simulate_electrode_noise`.

    Ranges ``(low, high)`` are drawn uniformly per record (log-uniformly for impedances);
    every drawn value is stored in ``ElectrodeNoise.params``.

    Attributes
    ----------
    kinds : tuple of str
        Noise kinds enabled, a subset of :data:`NOISE_KINDS`.
    snr_db : dict kind -> (low, high) dB
        Optional target SNR per kind (drawn per record), applied by
        ``ElectrodeNoise.scale_to_snr``. Empty by default: every kind keeps its physical
        amplitude, so the noise follows the activity, electrode type and body.
    snr_definition : {'nstdb', 'power'}
        See :mod:`cardiosim.noise.snr`.
    electrode : {'device', 'textile', 'dry', 'gel'}
        Electrode type; ``'device'`` (default): the type the device profile is worn with
        (``DeviceProfile.electrode``: a shirt's textile, a patch's, Holter's or 12-lead's gel, a
        handheld's dry metal; textile where no device or none is named). Skin-electrode impedance (PHYSICS.md section 6): textile 93-350 kOhm
        when donned, falling to 20-56 kOhm after an hour of wear; dry metal (chrome-nickel)
        200-1000 kOhm falling to 50-150 kOhm; gel Ag/AgCl 0.3-1 kOhm, no drift. The
        ``activity`` kind's level and spectrum per electrode type and activity come from the
        real recordings (gel electrodes on lead wires are the noisiest when walking and
        running: cable motion).
    hydration_tau_s : float
        Time constant of the impedance fall as sweat hydrates the skin (s). 1200 s puts
        the textile impedance within 10 % of its hydrated value after about an hour.
    wear_time_s : (low, high)
        Time since the garment was put on at the start of the record (s).
    powerline_hz : {50, 60}
    powerline_harmonics : int
        Number of odd harmonics (1 = fundamental only, 2 = + 3rd, 3 = + 5th ...).
    powerline_coupling : {'ground_electrode', 'fixed'}
        How the body's mains common-mode voltage is set. ``'ground_electrode'`` (default):
        the displacement current the mains wiring couples into the body (drawn from
        ``displacement_current_ua``) flows to the amplifier's common through the
        reference/ground electrode, so ``V_cm = i_d Z_ground`` follows the electrode type
        and its hydration (Huhta & Webster 1973; Webster, Medical Instrumentation, ch. 6:
        i_d about 0.2 uA, Z_G = 50 kOhm gives 10 mV). ``Z_ground`` is the median of the
        electrodes' impedances at the start of the record. ``'fixed'``: ``cm_voltage_mv``
        whatever the electrodes (the model before issue 14).
    displacement_current_ua : (low, high)
        Amplitude of the mains displacement current into the body (microampere).
    cm_voltage_mv : (low, high)
        Amplitude of the body's mains common-mode voltage (mV) when
        ``powerline_coupling = 'fixed'``.
    input_impedance_ohm : float
        Amplifier common-mode input impedance per input (Ohm); the potential divider
        ``Z_e / (Z_e + Z_in)`` turns the common-mode voltage into a differential one
        when ``Z_e`` differ between electrodes (Huhta & Webster 1973).
    white_uv : (low, high)
        Amplifier input noise, RMS per electrode (microvolt).
    bw_mv, em_mv, emg_mv : (low, high)
        Physical RMS amplitudes per electrode (mV) before any SNR scaling; ``em`` at a
        reference impedance of 100 kOhm (it scales with impedance), ``emg`` at full
        activity intensity.
    breathing_coupling : (low, high)
        Fraction of the baseline-wander power carried by the breathing-locked component.
    contact_loss_rate_per_min : float
        Contact-loss events per electrode per minute at rest (scaled up by activity).
    contact_loss_s : (low, high)
        Duration of a contact-loss event (s), log-uniform.
    contact_loss_mode : {'flat', 'saturated', 'mixed'}
    saturation_mv : float
        Offset of a saturated (lead-off) electrode (mV): the input swings to the rail.
    pop_rate_per_min : float
        Short (20-80 ms) contact pops per electrode per minute at rest.
    recorded_source : str
        Source of the ``recorded`` kind: ``'nstdb:bw'``, ``'nstdb:em'``, ``'nstdb:ma'``
        (MIT-BIH Noise Stress Test Database under ``$CARDIOSIM_DATA``) or
        ``'wfdb:<record path>'`` (a WFDB recording of the user's own device noise, in mV).
    recorded_method : {'psd', 'ar'}
        Model fitted to the source (:func:`cardiosim.noise.fit_noise_model`).
    recorded_rms_mv : (low, high)
        Physical RMS per electrode of the ``recorded`` kind before SNR scaling (mV).
    activity_level_scale : float
        Multiplier of the fitted ``activity`` noise level (1 = as in the real recordings).
    textile_fit : str
        Fit file of the ``activity`` kind (level, spectrum, bursts per electrode type x
        activity, grading rule, heart rate per activity); '' = the shipped fit of the textile
        recordings. ``cardiosim noise fit`` makes one from your own device's recordings. In a
        recipe the path is relative to the recipe file and generation pins it by SHA-256.
    textile_fit_sha256 : str
        SHA-256 of ``textile_fit`` (filled in by generation; a changed file is refused).
    drift_ratio, drift_log_sd : float
        The ``drift`` kind's RMS per electrode: one log-normal level per record, whose median is
        ``drift_ratio`` times the record's own ``activity`` noise RMS per electrode (its drawn
        level for the electrode type and activity, times ``activity_level_scale``; skin-stretch
        potentials grow with movement, as the fitted 1-40 Hz residual does; the cell's typical
        RMS when the record has no activity noise), and the standard deviation of its log. Fitted to CPSC 2021 Holter records of
        patients 8, 35, 92 and 101 and half the CinC 2021 resting records, each simulated through its
        source's recorder (``noise.drift.RESTING_CORNER_HZ``; ``scripts/fit_holter_drift.py``, 2026-12-07:
        7.510, 0.035 -- the between-record spread is then carried by the activity levels; 6.602, 0.249
        when every resting record was taken as recorded through 0.05 Hz; :mod:`cardiosim.noise.drift`);
        ``drift_ratio = 0`` turns it off with the same random draws.
    drift_exponent : float
        Exponent ``beta`` of the drift's power-law spectrum ``f^-beta`` (0.02-0.7 Hz), fitted likewise.
    """

    kinds: tuple[str, ...] = DEFAULT_KINDS
    snr_db: dict[str, tuple[float, float]] = field(default_factory=_default_snr)
    snr_definition: str = "nstdb"
    electrode: str = "device"
    hydration_tau_s: float = 1200.0
    wear_time_s: tuple[float, float] = (0.0, 3600.0)
    powerline_hz: int = 50
    powerline_harmonics: int = 3
    powerline_coupling: str = "ground_electrode"
    displacement_current_ua: tuple[float, float] = (0.1, 0.5)
    cm_voltage_mv: tuple[float, float] = (20.0, 200.0)
    input_impedance_ohm: float = 1.0e8
    white_uv: tuple[float, float] = (2.0, 10.0)
    bw_mv: tuple[float, float] = (0.05, 0.3)
    em_mv: tuple[float, float] = (0.02, 0.2)
    emg_mv: tuple[float, float] = (0.005, 0.05)
    breathing_coupling: tuple[float, float] = (0.2, 0.6)
    # real chest-strap records show no rail hit in 1,350 graded 2-s segments of the fit
    # subjects (noise.textile): at most about 0.2 % of segments (95 % bound)
    contact_loss_rate_per_min: float = 0.002
    contact_loss_s: tuple[float, float] = (0.2, 3.0)
    contact_loss_mode: str = "mixed"
    saturation_mv: float = 1000.0
    pop_rate_per_min: float = 0.005
    recorded_source: str = "nstdb:ma"
    recorded_method: str = "psd"
    recorded_rms_mv: tuple[float, float] = (0.05, 0.2)
    activity_level_scale: float = 1.0
    textile_fit: str = ""
    textile_fit_sha256: str = ""
    # scripts/fit_holter_drift.py, 2026-12-06: CPSC 2021 patients 8, 35, 92, 101 (Holter day) and the
    # first, third, ... CinC 2021 records (resting 12-lead); 300 + 150 simulated records, seed 5
    drift_ratio: float = 7.51
    drift_log_sd: float = 0.035
    drift_exponent: float = 1.33

    def __post_init__(self):
        kinds = tuple(self.kinds)
        for k in kinds:
            if k not in NOISE_KINDS:
                raise ConfigError(f"kinds: unknown noise kind {k!r}; known kinds: {', '.join(NOISE_KINDS)}")
        object.__setattr__(self, "kinds", kinds)
        snr = {}
        for k, rng in dict(self.snr_db).items():
            if k not in SNR_KINDS:
                raise ConfigError(f"snr_db.{k}: unknown or non-scalable noise kind {k!r}; "
                                  f"SNR can be set for: {', '.join(SNR_KINDS)}")
            rng = tuple(float(v) for v in rng)
            if len(rng) != 2:
                raise ConfigError(f"snr_db.{k} must be (low, high), got {rng!r}")
            _range(f"snr_db.{k}", rng, -60.0, 120.0)
            snr[k] = rng
        object.__setattr__(self, "snr_db", snr)
        off = [k for k in snr if k not in kinds]
        if off:
            # a target for a kind that is not simulated changes nothing: said, not silently dropped
            import warnings

            from ..errors import ConsistencyWarning
            warnings.warn(f"snr_db sets a target for {', '.join(off)}, which kinds leaves off ({', '.join(kinds)}): "
                          "the target changes nothing; add the kind to kinds", ConsistencyWarning, stacklevel=3)
        if self.snr_definition not in ("nstdb", "power"):
            raise ConfigError(f"snr_definition must be 'nstdb' or 'power', got {self.snr_definition!r}")
        if self.electrode not in ELECTRODE_TYPES + ("device",):
            raise ConfigError(f"electrode must be 'device' or one of {', '.join(ELECTRODE_TYPES)}, "
                              f"got {self.electrode!r}")
        check_range("activity_level_scale", self.activity_level_scale, 0.0)
        check_range("drift_ratio", self.drift_ratio, 0.0)
        check_range("drift_log_sd", self.drift_log_sd, 0.0, 5.0)
        check_range("drift_exponent", self.drift_exponent, 0.0, 4.0)
        if self.textile_fit_sha256 and not self.textile_fit:
            raise ConfigError("textile_fit_sha256 needs textile_fit")
        if self.powerline_hz not in (50, 60):
            raise ConfigError(f"powerline_hz must be 50 or 60, got {self.powerline_hz!r}")
        check_range("powerline_harmonics", self.powerline_harmonics, 1, 10)
        check_range("hydration_tau_s", self.hydration_tau_s, 0.0, lo_open=True)
        check_range("input_impedance_ohm", self.input_impedance_ohm, 0.0, lo_open=True)
        check_range("contact_loss_rate_per_min", self.contact_loss_rate_per_min, 0.0)
        check_range("pop_rate_per_min", self.pop_rate_per_min, 0.0)
        check_range("saturation_mv", self.saturation_mv, 0.0, lo_open=True)
        if self.contact_loss_mode not in ("flat", "saturated", "mixed"):
            raise ConfigError(f"contact_loss_mode must be 'flat', 'saturated' or 'mixed', "
                              f"got {self.contact_loss_mode!r}")
        if self.powerline_coupling not in ("ground_electrode", "fixed"):
            raise ConfigError(f"powerline_coupling must be 'ground_electrode' or 'fixed', "
                              f"got {self.powerline_coupling!r}")
        for key in ("wear_time_s", "cm_voltage_mv", "displacement_current_ua", "white_uv", "bw_mv", "em_mv", "emg_mv"):
            _range(key, getattr(self, key), 0.0)
        _range("contact_loss_s", self.contact_loss_s, 0.0, lo_open=True)
        _range("breathing_coupling", self.breathing_coupling, 0.0, 1.0)
        _range("recorded_rms_mv", self.recorded_rms_mv, 0.0)
        src = self.recorded_source
        if not (src in ("nstdb:bw", "nstdb:em", "nstdb:ma") or (src.startswith("wfdb:") and len(src) > 5)):
            raise ConfigError(f"recorded_source must be 'nstdb:bw', 'nstdb:em', 'nstdb:ma' or "
                              f"'wfdb:<record path>', got {src!r}")
        if self.recorded_method not in ("psd", "ar"):
            raise ConfigError(f"recorded_method must be 'psd' or 'ar', got {self.recorded_method!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "NoiseConfig":
        """Build from a mapping (a TOML table); unknown keys raise ConfigError naming the key."""
        return from_dict(cls, data)

    def to_dict(self) -> dict:
        """Plain-dict form (inverse of :meth:`from_dict`)."""
        d = to_dict(self)
        d["snr_db"] = {k: list(v) for k, v in self.snr_db.items()}
        return d
