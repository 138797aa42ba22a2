"""The coordinate frame of cardiosim.

Every position, lead field and dipole lives in the **patient LPS frame** (as in DICOM):
``+x`` toward the patient's left, ``+y`` posterior (toward the back), ``+z`` superior
(toward the head). Lengths are metres. The origin is defined per torso (documented on
:class:`cardiosim.geometry.TorsoMesh`); for the default torso it is on the body axis at
the level of the heart centre.

The Frank vectorcardiogram uses X toward the left, Y toward the feet and Z toward the
back (the axes of the Dower, inverse-Dower and Kors matrices, PHYSICS.md section 1), so
``(X, Y, Z) = (x, -z, y)``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .errors import ConfigError

# Rows: Frank X, Y, Z; columns: LPS x, y, z.  frank = FRANK_FROM_LPS @ lps
FRANK_FROM_LPS = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
LPS_FROM_FRANK = FRANK_FROM_LPS.T


def frank_to_lps(vcg: np.ndarray) -> np.ndarray:
    """Convert Frank-axis vectors ``[3, ...]`` (X left, Y feet, Z back) to LPS ``[3, ...]``."""
    vcg = np.asarray(vcg)
    return np.tensordot(LPS_FROM_FRANK, vcg, axes=(1, 0)).astype(vcg.dtype, copy=False)


def lps_to_frank(vec: np.ndarray) -> np.ndarray:
    """Convert LPS vectors ``[3, ...]`` to Frank axes ``[3, ...]`` (X left, Y feet, Z back)."""
    vec = np.asarray(vec)
    return np.tensordot(FRANK_FROM_LPS, vec, axes=(1, 0)).astype(vec.dtype, copy=False)


def rotation_matrix(axis: str | np.ndarray, angle: float) -> np.ndarray:
    """Right-handed rotation by ``angle`` radians about ``axis`` ('x', 'y', 'z' or a 3-vector)."""
    if isinstance(axis, str):
        if axis not in _AXES:
            raise ConfigError(f"unknown rotation axis {axis!r}; expected 'x', 'y', 'z' or a 3-vector")
        k, kk = _axis_terms(axis)   # every record rotates about named axes: made once
    else:
        k = _cross_matrix(axis)
        kk = k @ k
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * kk


_AXES = {"x": (1.0, 0.0, 0.0), "y": (0.0, 1.0, 0.0), "z": (0.0, 0.0, 1.0)}


def _cross_matrix(axis) -> np.ndarray:
    """The cross-product matrix of the unit vector along ``axis``."""
    axis = np.asarray(axis, dtype=float)
    axis = axis / np.linalg.norm(axis)
    return np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])


@lru_cache(maxsize=3)
def _axis_terms(name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(K, K @ K)`` of a named axis (read-only; the same numbers as for its 3-vector)."""
    k = _cross_matrix(_AXES[name])
    kk = k @ k
    k.flags.writeable = kk.flags.writeable = False
    return k, kk
