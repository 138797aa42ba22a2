"""Published linear transforms between the 12-lead ECG and the Frank VCG (PHYSICS.md section 1).

All matrices map millivolts to millivolts. Frank axes: X toward the patient's left,
Y toward the feet, Z toward the back (``cardiosim.frames``).

References
----------
- Dower GE, Machado HB, Osborne JA. On deriving the electrocardiogram from
  vectorcardiographic leads. Clin Cardiol 1980;3:87-95.  (``DOWER``)
- Edenbrandt L, Pahlm O. Vectorcardiogram synthesized from a 12-lead ECG: superiority of
  the inverse Dower matrix. J Electrocardiol 1988;21:361-367.  (``INVERSE_DOWER``)
- Kors JA, van Herpen G, Sittig AC, van Bemmel JH. Reconstruction of the Frank
  vectorcardiogram from standard electrocardiographic leads: diagnostic comparison of
  different methods. Eur Heart J 1990;11:1083-1092.  (``KORS``)
"""

from __future__ import annotations

import numpy as np

from ..errors import LeadError, SignalError
from ..leads import normalize_lead_name

#: Leads (columns) of :data:`INVERSE_DOWER`, rows of :data:`DOWER`.
DOWER_LEADS: tuple[str, ...] = ("V1", "V2", "V3", "V4", "V5", "V6", "I", "II")

#: Inverse Dower, rows X, Y, Z; columns :data:`DOWER_LEADS` (Edenbrandt & Pahlm 1988).
INVERSE_DOWER = np.array([
    [-0.172, -0.074, 0.122, 0.231, 0.239, 0.194, 0.156, -0.010],
    [0.057, -0.019, -0.106, -0.022, 0.041, 0.048, -0.227, 0.887],
    [-0.229, -0.310, -0.246, -0.063, 0.055, 0.108, 0.022, 0.102],
])

#: Dower, rows :data:`DOWER_LEADS`, columns X, Y, Z (Dower et al. 1980).
DOWER = np.array([
    [-0.515, 0.157, -0.917],
    [0.044, 0.164, -1.387],
    [0.882, 0.098, -1.277],
    [1.213, 0.127, -0.601],
    [1.125, 0.127, -0.086],
    [0.831, 0.076, 0.230],
    [0.632, -0.235, 0.059],
    [0.235, 1.066, -0.132],
])

#: Leads (columns) of :data:`KORS`.
KORS_LEADS: tuple[str, ...] = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")

#: Kors regression, rows X, Y, Z; columns :data:`KORS_LEADS` (Kors et al. 1990).
KORS = np.array([
    [0.38, -0.07, -0.13, 0.05, -0.01, 0.14, 0.06, 0.54],
    [-0.07, 0.93, 0.06, -0.02, -0.05, 0.06, -0.17, 0.13],
    [0.11, -0.23, -0.43, -0.06, -0.14, -0.20, -0.11, 0.31],
])

for _m in (INVERSE_DOWER, DOWER, KORS):
    _m.setflags(write=False)


def select_leads(ecg: np.ndarray, leads, wanted) -> np.ndarray:
    """Rows of ``ecg`` ``[..., n_leads, T]`` for the ``wanted`` lead names, in that order.

    Lead names are normalised (``'avr'`` -> ``'aVR'``). A wanted lead that is absent but
    derivable from I and II (III, aVR, aVL, aVF) is *not* synthesised: a missing lead
    raises, because silently deriving it would hide a data problem.

    Raises
    ------
    LeadError
        Naming the missing leads, or if ``leads`` does not match the lead axis.
    """
    ecg = np.asarray(ecg)
    names = [normalize_lead_name(x) for x in leads]
    if ecg.ndim < 2 or ecg.shape[-2] != len(names):
        raise LeadError(f"ecg has shape {ecg.shape} but {len(names)} lead names were given: {names}")
    missing = [w for w in wanted if w not in names]
    if missing:
        raise LeadError(f"missing leads {missing}; have {names}")
    return ecg[..., [names.index(w) for w in wanted], :]


def _apply(matrix: np.ndarray, ecg, leads, wanted, what: str) -> np.ndarray:
    x = select_leads(ecg, leads, wanted)
    if not np.all(np.isfinite(x)):
        raise SignalError(f"{what}: ecg contains NaN or infinite samples")
    out = np.einsum("kl,...lt->...kt", matrix, x.astype(np.float64))
    return out.astype(np.float32) if np.asarray(ecg).dtype == np.float32 else out


def inverse_dower(ecg: np.ndarray, leads) -> np.ndarray:
    """Frank X, Y, Z from a 12-lead ECG by the inverse Dower matrix (Edenbrandt & Pahlm 1988).

    Parameters
    ----------
    ecg : ndarray, shape (..., n_leads, T), mV
        Must contain V1..V6, I and II (any order, any extra leads).
    leads : sequence of str, length n_leads
        Lead names of the rows of ``ecg``.

    Returns
    -------
    ndarray, shape (..., 3, T), mV
        Frank X (left), Y (feet), Z (back). float32 if ``ecg`` is float32, else float64.
    """
    return _apply(INVERSE_DOWER, ecg, leads, DOWER_LEADS, "inverse_dower")


def kors(ecg: np.ndarray, leads) -> np.ndarray:
    """Frank X, Y, Z from a 12-lead ECG by the Kors regression matrix (Kors et al. 1990).

    Parameters and returns as :func:`inverse_dower`; needs I, II, V1..V6.
    """
    return _apply(KORS, ecg, leads, KORS_LEADS, "kors")


def dower(vcg: np.ndarray) -> np.ndarray:
    """The 8 independent leads V1..V6, I, II from a Frank VCG by the Dower matrix (Dower et al. 1980).

    Parameters
    ----------
    vcg : ndarray, shape (..., 3, T), mV, Frank X, Y, Z

    Returns
    -------
    ndarray, shape (..., 8, T), mV, rows :data:`DOWER_LEADS`
    """
    vcg = np.asarray(vcg)
    if vcg.ndim < 2 or vcg.shape[-2] != 3:
        raise SignalError(f"dower: vcg must have shape (..., 3, T), got {vcg.shape}")
    return np.einsum("lk,...kt->...lt", DOWER, vcg)
