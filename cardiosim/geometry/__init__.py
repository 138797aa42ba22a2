"""Torso surfaces, landmarks, heart, electrode layouts and points on the surface (LPS, metres).

Public API (docs/ARCHITECTURE.md): :class:`TorsoMesh`, :class:`Heart`, :func:`make_torso`,
:class:`TorsoParams`, :func:`read_torso` / :func:`read_electrodes` (a user's body and electrodes from files), :func:`make_sphere_mesh`, :class:`ElectrodeLayout`,
:func:`make_layout`, :func:`displace_on_surface` and the garment helpers
(:func:`slip_garment`, :func:`stretch_garment`, :func:`jitter_electrodes`,
:func:`move_intercostal`); :func:`make_lungs` for the multi-compartment forward model.
"""

from .layouts import ElectrodeLayout, layout_names, make_layout, move_intercostal
from .mesh import Heart, TorsoMesh, check_surface, heart_long_axis, heart_rotation, make_sphere_mesh
from .io import proportional_anatomy, read_electrodes, read_torso, snap_to_surface
from .surface import (displace_on_surface, intercostal_spacing, jitter_electrodes, project_to_surface,
                      slip_garment, stretch_garment)
from .organs import make_lungs
from .torso import TorsoParams, make_torso, torso_circumference

__all__ = ["ElectrodeLayout", "Heart", "TorsoMesh", "TorsoParams", "check_surface", "displace_on_surface",
           "heart_long_axis", "heart_rotation", "intercostal_spacing", "jitter_electrodes", "layout_names",
           "make_layout", "make_lungs", "make_sphere_mesh", "make_torso", "move_intercostal", "project_to_surface",
           "proportional_anatomy", "read_electrodes", "read_torso", "slip_garment", "snap_to_surface", "stretch_garment", "torso_circumference"]
