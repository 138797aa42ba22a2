"""Lead names and montages: how electrode potentials become device leads.

A montage is a matrix ``M`` of shape ``(n_leads, n_electrodes)`` so that
``lead_k(t) = sum_e M[k, e] * phi_e(t)`` (DESIGN.md, "the one equation"). Because noise
is added to electrode potentials *before* the montage, every lead that uses an electrode
carries that electrode's noise, as in a real device.

Montages defined here:

* ``standard12`` -- I, II, III, aVR, aVL, aVF (Einthoven, Goldberger) and V1..V6 against
  Wilson's central terminal WCT = (RA + LA + LL) / 3, on electrodes RA, LA, LL, V1..V6.
* ``frank`` -- Frank's resistor network (Frank 1956; coefficients in PHYSICS.md section 1)
  on electrodes A, C, E, I, M, H, F, giving X (left), Y (feet), Z (back).
* ``easi`` -- Dower's EASI bipolar leads ES, AS, AI on electrodes E, A, S, I
  (Dower et al., J Electrocardiol 1988).
* ``limb3`` -- I, II, III on RA, LA, LL (3-lead shirts).
* ``lead_i`` -- lead I alone, LA - RA (handheld devices held in both hands).
* ``patch`` -- one bipolar lead between the two electrodes of a chest patch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import LeadError

STANDARD_LEADS: tuple[str, ...] = (
    "I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6",
)
FRANK_LEADS: tuple[str, ...] = ("X", "Y", "Z")

_ALIASES = {name.upper(): name for name in STANDARD_LEADS + FRANK_LEADS}
_ALIASES.update({"MLII": "II", "MLI": "I", "MLIII": "III", "VX": "X", "VY": "Y", "VZ": "Z",
                 "AVR": "aVR", "AVL": "aVL", "AVF": "aVF"})


def normalize_lead_name(name: str) -> str:
    """Return the canonical spelling of a lead name (``'avr'`` -> ``'aVR'``, ``'MLII'`` -> ``'II'``).

    Raises
    ------
    LeadError
        If ``name`` is not a lead cardiosim knows.
    """
    key = str(name).strip().upper().replace(" ", "")
    try:
        return _ALIASES[key]
    except KeyError:
        raise LeadError(f"unknown lead name {name!r}; known leads: {', '.join(sorted(set(_ALIASES.values())))}") from None


@dataclass(frozen=True)
class Montage:
    """A linear map from electrode potentials to leads.

    Attributes
    ----------
    name : str
    leads : tuple of str, length n_leads
    electrodes : tuple of str, length n_electrodes
    matrix : ndarray, shape (n_leads, n_electrodes), float64
        ``lead = matrix @ phi``.
    """

    name: str
    leads: tuple[str, ...]
    electrodes: tuple[str, ...]
    matrix: np.ndarray

    def __post_init__(self):
        m = np.asarray(self.matrix, dtype=np.float64)
        if m.shape != (len(self.leads), len(self.electrodes)):
            raise LeadError(f"montage {self.name!r}: matrix shape {m.shape} does not match "
                            f"{len(self.leads)} leads x {len(self.electrodes)} electrodes")
        m.setflags(write=False)
        object.__setattr__(self, "matrix", m)

    def apply(self, potentials: np.ndarray) -> np.ndarray:
        """Apply the montage to electrode potentials ``[..., n_electrodes, T]`` -> ``[..., n_leads, T]``."""
        potentials = np.asarray(potentials)
        if potentials.shape[-2] != len(self.electrodes):
            raise LeadError(f"montage {self.name!r} needs {len(self.electrodes)} electrodes "
                            f"{self.electrodes}, got an array with {potentials.shape[-2]} on axis -2")
        out = np.einsum("ke,...et->...kt", self.matrix.astype(potentials.dtype, copy=False), potentials)
        return out

    def electrode_index(self, names) -> np.ndarray:
        """Indices of electrode ``names`` in this montage (raises LeadError naming unknown ones)."""
        idx = []
        for n in names:
            if n not in self.electrodes:
                raise LeadError(f"electrode {n!r} is not part of montage {self.name!r} {self.electrodes}")
            idx.append(self.electrodes.index(n))
        return np.asarray(idx, dtype=np.intp)

    def select(self, leads) -> "Montage":
        """A montage restricted to ``leads`` (in that order)."""
        leads = [normalize_lead_name(x) if x not in self.leads else x for x in leads]
        rows = []
        for lead in leads:
            if lead not in self.leads:
                raise LeadError(f"lead {lead!r} is not produced by montage {self.name!r} {self.leads}")
            rows.append(self.leads.index(lead))
        return Montage(f"{self.name}[{','.join(leads)}]", tuple(leads), self.electrodes, self.matrix[rows])


def _standard12() -> Montage:
    electrodes = ("RA", "LA", "LL", "V1", "V2", "V3", "V4", "V5", "V6")
    m = np.zeros((12, 9))
    ra, la, ll = 0, 1, 2
    m[0, [la, ra]] = 1, -1                      # I = LA - RA
    m[1, [ll, ra]] = 1, -1                      # II = LL - RA
    m[2, [ll, la]] = 1, -1                      # III = LL - LA
    m[3, [ra, la, ll]] = 1, -0.5, -0.5          # aVR = RA - (LA + LL)/2  (Goldberger)
    m[4, [la, ra, ll]] = 1, -0.5, -0.5          # aVL
    m[5, [ll, ra, la]] = 1, -0.5, -0.5          # aVF
    for k in range(6):                          # Vk = Vk - WCT (Wilson)
        m[6 + k, 3 + k] = 1.0
        m[6 + k, [ra, la, ll]] = -1.0 / 3.0
    return Montage("standard12", STANDARD_LEADS, electrodes, m)


def _frank() -> Montage:
    # Frank 1956 resistor network; coefficients as listed in PHYSICS.md section 1.
    electrodes = ("A", "C", "E", "I", "M", "H", "F")
    a, c, e, i, mm, h, f = range(7)
    m = np.zeros((3, 7))
    m[0, [a, c, i]] = 0.610, 0.171, -0.781
    m[1, [f, mm, h]] = 0.655, 0.345, -1.0
    m[2, [a, mm, i, e, c]] = 0.133, 0.736, -0.264, -0.374, -0.231
    return Montage("frank", FRANK_LEADS, electrodes, m)


def _easi() -> Montage:
    electrodes = ("E", "A", "S", "I")
    m = np.array([[1.0, 0, -1, 0], [0, 1, -1, 0], [0, 1, 0, -1]])
    return Montage("easi", ("ES", "AS", "AI"), electrodes, m)


def _limb3() -> Montage:
    m = np.array([[-1.0, 1, 0], [-1, 0, 1], [0, -1, 1]])
    return Montage("limb3", ("I", "II", "III"), ("RA", "LA", "LL"), m)


def _lead_i() -> Montage:
    return Montage("lead_i", ("I",), ("RA", "LA"), np.array([[-1.0, 1.0]]))


def _patch() -> Montage:
    return Montage("patch", ("ECG",), ("P+", "P-"), np.array([[1.0, -1.0]]))


_MONTAGES = {"standard12": _standard12, "frank": _frank, "easi": _easi, "limb3": _limb3, "lead_i": _lead_i,
              "patch": _patch}


def make_montage(name: str) -> Montage:
    """Return a named montage: ``standard12``, ``frank``, ``easi``, ``limb3``, ``lead_i`` or ``patch``."""
    try:
        return _MONTAGES[name]()
    except KeyError:
        raise LeadError(f"unknown montage {name!r}; known montages: {', '.join(_MONTAGES)}") from None


def montage_names() -> tuple[str, ...]:
    """Names accepted by :func:`make_montage`."""
    return tuple(_MONTAGES)
