"""QRS (R-peak) detection: the one detector of cardiosim, used by the NSTDB SNR definition
(:mod:`cardiosim.noise.snr`) and the evaluation helpers (:mod:`cardiosim.evaluate`).

Public API: ``detect_r_peaks(ecg, fs, *, refractory=0.2) -> int64 sample indices`` for one
lead ``(T,)`` or several ``(n_leads, T)``. Bottom layer: imports only :mod:`cardiosim.errors`.
"""

from .detect import MIN_FS, bandpass_filtfilt, detect_r_peaks

__all__ = ["detect_r_peaks", "bandpass_filtfilt", "MIN_FS"]
