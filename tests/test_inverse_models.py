"""Small stand-in volume conductor for the inverse tests: infinite homogeneous medium.

Used when cardiosim.forward / cardiosim.geometry are not available (they are built in
parallel); the inverse code only needs ``lead_field(points)`` and a layout with
``electrodes`` and ``positions``. Electrode positions: the measured torso of PHYSICS.md
section 2 (CinC 2007, Dalhousie case 3, mm, +x left, -y anterior, +z up = LPS) for the
12-lead electrodes; Frank electrodes on the 4th-5th intercostal transverse level of the
same torso (PHYSICS.md section 1) with H at the back of the neck and F on the left leg.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SIGMA = 0.2  # S/m, PHYSICS.md section 4

_STD_MM = {
    "RA": (-158.0, -30.8, 135.5), "LA": (136.5, -52.9, 135.5), "LL": (106.1, -95.8, -208.6),
    "V1": (-41.9, -120.0, 8.9), "V2": (6.6, -117.0, 8.9), "V3": (49.0, -126.5, -15.5),
    "V4": (85.8, -120.0, -39.5), "V5": (132.3, -80.9, -39.5), "V6": (157.0, -14.5, -39.5),
}
_FRANK_MM = {
    "A": (158.0, -14.0, -30.0), "C": (112.0, -95.0, -30.0), "E": (0.0, -122.0, -30.0),
    "I": (-158.0, -14.0, -30.0), "M": (0.0, 110.0, -30.0), "H": (0.0, 60.0, 300.0),
    "F": (100.0, -40.0, -600.0),
}
HEART_MM = (25.0, -45.0, -20.0)


@dataclass(frozen=True)
class Layout:
    name: str
    electrodes: tuple
    positions: np.ndarray


@dataclass(frozen=True)
class InfiniteModel:
    """phi = p . d / (4 pi sigma |d|^3), d = r - r0 (PHYSICS.md section 4)."""

    source_position: np.ndarray
    conductivity: float = SIGMA

    def lead_field(self, points):
        d = np.asarray(points, dtype=np.float64) - self.source_position
        r = np.linalg.norm(d, axis=1, keepdims=True)
        return d / (4 * np.pi * self.conductivity * r ** 3)


def make_local_setup():
    """(forward, standard12 layout, frank layout, description) in the infinite medium."""
    std = Layout("standard12", tuple(_STD_MM), np.array(list(_STD_MM.values())) * 1e-3)
    frank = Layout("frank", tuple(_FRANK_MM), np.array(list(_FRANK_MM.values())) * 1e-3)
    return InfiniteModel(np.array(HEART_MM) * 1e-3), std, frank, "infinite medium (test stand-in)"


def make_setup():
    """The project's torso, layouts and BEM model (a broken import of them fails the tests)."""
    from cardiosim.forward import make_bem_model
    from cardiosim.geometry import make_layout, make_torso

    torso = make_torso()
    std, frank = make_layout("standard12", torso), make_layout("frank", torso)
    return make_bem_model(torso), std, frank, f"BEM torso {torso.name!r}"


def test_infinite_model_matches_two_monopoles():
    """The stand-in's lead field equals the limit of a +q/-q monopole pair (independent formula)."""
    model, std, _, _ = make_local_setup()
    p = np.array([1e-4, -2e-4, 0.5e-4])  # A·m
    h = 1e-6  # m
    r0 = model.source_position
    q = p / np.linalg.norm(p) * 1.0
    qmag = np.linalg.norm(p) / h  # A
    d_plus = std.positions - (r0 + q * h / 2)
    d_minus = std.positions - (r0 - q * h / 2)
    phi_pair = qmag / (4 * np.pi * SIGMA) * (1 / np.linalg.norm(d_plus, axis=1) - 1 / np.linalg.norm(d_minus, axis=1))
    np.testing.assert_allclose(model.lead_field(std.positions) @ p, phi_pair, rtol=1e-6)
