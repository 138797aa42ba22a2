"""Recording devices: montage, sampling rate, analog band-pass, gain / magnification, ADC.

Public API: ``DeviceProfile``, ``load_device(name_or_path)``, ``device_names()``,
``apply_device(profile, leads_mV, fs_in) -> (recorded float32 [n_leads, T'], info)``.
Shipped profiles (``cardiosim/device/profiles/*.toml``): ``shirt12_500hz``,
``patch_128hz``, ``shirt3_250hz``, ``chest_strap_500hz``, ``handheld_300hz``,
``mobile12_500hz`` (DC-coupled front end, :mod:`cardiosim.device.frontend`). Whole-record
front-end failures: ``FailureConfig`` (rates) -> ``FrontEndFailure`` -> ``apply_device(..., failure=)``.
"""

from .apply import analog_filter, apply_device, quantize
from .failures import CINC2011_RATES, FailureConfig, FrontEndFailure, channel_states
from .frontend import apply_dc_frontend, derivation_matrix
from .profile import PROFILE_DIR, DeviceProfile, device_names, load_device

__all__ = ["DeviceProfile", "load_device", "device_names", "apply_device", "analog_filter", "quantize",
           "PROFILE_DIR", "FailureConfig", "FrontEndFailure", "CINC2011_RATES", "channel_states",
           "apply_dc_frontend", "derivation_matrix"]
