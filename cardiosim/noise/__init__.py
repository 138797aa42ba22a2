"""Electrode-level noise of textile (and gel) electrodes, SNR control, noise fitted to
recordings, and classic augmentations for comparison.

Public API
----------
NoiseConfig, NOISE_KINDS
simulate_electrode_noise(n_electrodes, n_samples, fs, rng, config, *, motion=None) -> ElectrodeNoise
scale_to_snr, measure_snr, snr_gain, signal_power, noise_power, detect_r_peaks
scale_electrode_noise (per-lead or pooled SNR targets for electrode-born noise), electrode_gains
fit_noise_model(recording, fs, ...) -> NoiseModel; synthesize_noise(model, n_samples, rng)
read_nstdb_noise, nstdb_noise_model, read_noise_record (a user's WFDB noise record), noise_statistics
BurstParams, burst_envelope, modulate (artefact bursts, :mod:`cardiosim.noise.bursts`)
interbeat_floor(x, fs) -> FloorMeasures (the noise floor between beats, :mod:`cardiosim.noise.floor`)
"""

from .bursts import BurstParams, burst_envelope, lognormal_sigma, modulate
from .config import DEFAULT_KINDS, NOISE_KINDS, SNR_KINDS, NoiseConfig
from .electrode import ElectrodeNoise, common_mode_voltage, powerline_from_impedance, simulate_electrode_noise
from .floor import FloorMeasures, interbeat_floor
from .fit import (NoiseModel, fit_noise_model, noise_statistics, nstdb_noise_model, read_noise_record, read_nstdb_noise,
                  recorded_noise_model, synthesize_noise)
from .snr import (detect_r_peaks, electrode_gains, measure_snr, noise_power, scale_electrode_noise, scale_to_snr,
                  signal_power, snr_gain)
from .spectra import log_spectral_distance, psd_shape, welch_psd

__all__ = [
    "NOISE_KINDS", "DEFAULT_KINDS", "SNR_KINDS", "recorded_noise_model", "NoiseConfig", "ElectrodeNoise", "simulate_electrode_noise",
    "common_mode_voltage", "powerline_from_impedance",
    "NoiseModel", "fit_noise_model", "synthesize_noise", "read_nstdb_noise", "nstdb_noise_model",
    "read_noise_record", "noise_statistics",
    "detect_r_peaks", "measure_snr", "noise_power", "scale_to_snr", "signal_power", "snr_gain",
    "electrode_gains", "scale_electrode_noise",
    "log_spectral_distance", "psd_shape", "welch_psd",
    "BurstParams", "burst_envelope", "lognormal_sigma", "modulate",
    "FloorMeasures", "interbeat_floor",
]
