"""Differentiable forward projection: dipole -> electrode potentials -> device leads.

DESIGN.md's one equation without the noise term, in torch:

    phi_e(t)  = L(r_e) . p(t)                      (lead field, V/(A m) times A m = V)
    lead_k(t) = sum_e M[k, e] phi_e(t)              (montage)

Lead fields are closed-form functions of the electrode and source positions, so
gradients reach the electrode positions (shirt displacement), the heart position and
the dipole (for example the output of :class:`~cardiosim.torch.dipole.GaussianWaveDipole`).

* Infinite homogeneous medium (PHYSICS.md section 4): ``phi = p . d / (4 pi sigma |d|^3)``,
  ``d = r - r0``.
* Homogeneous insulated sphere of radius R, field point on the surface (Kavanagh 1978;
  Lütkenhöner 1992 eq. A.17; PHYSICS.md section 4):
  ``phi = p . [2 d/|d|^3 + (|d| r + R d) / (R |d| (R |d| + r . d))] / (4 pi sigma)``.

A BEM lead field is not differentiable in closed form; pass its values ``L`` (a tensor
from ``cardiosim.forward``) to :func:`project_dipole` instead.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ConfigError, GeometryError, LeadError
from ..leads import Montage, make_montage
from ._torch import torch


def _check_conductivity(conductivity):
    if not float(conductivity) > 0:
        raise ConfigError(f"conductivity must be positive (S/m), got {conductivity!r}")


def _check_points(points, name="points"):
    if points.shape[-1] != 3:
        raise GeometryError(f"{name} must have shape (..., 3) in metres, got {tuple(points.shape)}")


def infinite_lead_field(points: torch.Tensor, source_position: torch.Tensor,
                        conductivity: float = 0.2) -> torch.Tensor:
    """Lead field of a dipole in an infinite homogeneous medium.

    Parameters
    ----------
    points : Tensor, shape (..., n, 3), metres
        Field points (electrode positions), LPS frame.
    source_position : Tensor, shape (..., 3), metres
        Dipole position ``r0``.
    conductivity : float, S/m

    Returns
    -------
    Tensor, shape (..., n, 3), V/(A m)
        ``L[e] = d_e / (4 pi sigma |d_e|^3)`` so that ``phi_e = L[e] @ p`` (PHYSICS.md §4).
    """
    _check_points(points)
    _check_conductivity(conductivity)
    d = points - source_position[..., None, :]
    r = torch.linalg.vector_norm(d, dim=-1, keepdim=True)
    if bool((r.detach() == 0).any()):
        raise GeometryError("a field point coincides with the dipole position (singular lead field)")
    return d / (4.0 * math.pi * conductivity * r ** 3)


def sphere_lead_field(points: torch.Tensor, radius: float, source_position: torch.Tensor,
                      conductivity: float = 0.2) -> torch.Tensor:
    """Lead field on the surface of a homogeneous insulated sphere centred at the origin.

    Parameters
    ----------
    points : Tensor, shape (..., n, 3), metres
        Field points on the sphere surface (``|r| = radius``).
    radius : float, metres
    source_position : Tensor, shape (..., 3), metres, inside the sphere.
    conductivity : float, S/m

    Returns
    -------
    Tensor, shape (..., n, 3), V/(A m)
        Kavanagh 1978 / Lütkenhöner 1992 eq. A.17 (PHYSICS.md section 4); a centred
        dipole gives three times the infinite-medium value.
    """
    _check_points(points)
    _check_conductivity(conductivity)
    if bool((torch.linalg.vector_norm(source_position.detach(), dim=-1) >= radius).any()):
        raise GeometryError(f"dipole at {source_position.detach().tolist()} is not inside the sphere of radius {radius}")
    r = points
    d = r - source_position[..., None, :]
    dn = torch.linalg.vector_norm(d, dim=-1, keepdim=True)
    rd = (r * d).sum(dim=-1, keepdim=True)
    term = 2.0 * d / dn ** 3 + (dn * r + radius * d) / (radius * dn * (radius * dn + rd))
    return term / (4.0 * math.pi * conductivity)


def project_dipole(lead_field: torch.Tensor, dipole: torch.Tensor) -> torch.Tensor:
    """Electrode potentials ``phi = L @ p``.

    Parameters
    ----------
    lead_field : Tensor, shape (..., n_electrodes, 3), V/(A m)
    dipole : Tensor, shape (..., 3, T), A m

    Returns
    -------
    Tensor, shape (..., n_electrodes, T), volts
    """
    if lead_field.shape[-1] != 3 or dipole.shape[-2] != 3:
        raise GeometryError(f"lead field (..., n, 3) and dipole (..., 3, T) expected, got "
                            f"{tuple(lead_field.shape)} and {tuple(dipole.shape)}")
    return lead_field @ dipole


def montage_tensor(montage: str | Montage, *, dtype=torch.float64, device=None) -> torch.Tensor:
    """The matrix ``(n_leads, n_electrodes)`` of a montage (name or :class:`cardiosim.leads.Montage`)."""
    if isinstance(montage, str):
        montage = make_montage(montage)
    return torch.tensor(np.array(montage.matrix), dtype=dtype, device=device)


def apply_montage(matrix: torch.Tensor, potentials: torch.Tensor) -> torch.Tensor:
    """``lead = M @ phi``: ``(n_leads, n_e)`` x ``(..., n_e, T)`` -> ``(..., n_leads, T)``."""
    if potentials.shape[-2] != matrix.shape[-1]:
        raise LeadError(f"montage has {matrix.shape[-1]} electrodes, potentials have "
                        f"{potentials.shape[-2]} on axis -2")
    return matrix.to(potentials.dtype) @ potentials


def simulate_leads(dipole: torch.Tensor, electrode_positions: torch.Tensor,
                   source_position: torch.Tensor, montage: str | Montage | torch.Tensor = "standard12",
                   *, conductivity: float = 0.2, model: str = "infinite",
                   radius: float | None = None) -> torch.Tensor:
    """Differentiable noise-free device leads of a dipole seen by electrodes.

    Parameters
    ----------
    dipole : Tensor, shape (..., 3, T), A m, LPS frame
    electrode_positions : Tensor, shape (..., n_electrodes, 3), metres, in the montage's
        electrode order (``Montage.electrodes``).
    source_position : Tensor, shape (..., 3), metres
    montage : str, Montage or Tensor (n_leads, n_electrodes)
    conductivity : float, S/m
    model : {"infinite", "sphere"}
    radius : float, metres, required for ``model="sphere"``.

    Returns
    -------
    Tensor, shape (..., n_leads, T), mV
    """
    if model == "infinite":
        lf = infinite_lead_field(electrode_positions, source_position, conductivity)
    elif model == "sphere":
        if radius is None:
            raise ConfigError("model='sphere' needs radius (metres)")
        lf = sphere_lead_field(electrode_positions, radius, source_position, conductivity)
    else:
        raise ConfigError(f"unknown lead-field model {model!r}; expected 'infinite' or 'sphere'")
    m = montage if isinstance(montage, torch.Tensor) else montage_tensor(montage, dtype=dipole.dtype,
                                                                         device=dipole.device)
    return 1e3 * apply_montage(m, project_dipole(lf, dipole))
