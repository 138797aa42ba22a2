"""12-lead ECG -> heart dipole: torso-model least squares (with residual), inverse Dower, Kors;
body-surface electrodes -> a distributed source predicting the potential anywhere on the surface.

``recording_to_source`` (real record -> ``CardiacSource``) lives in ``cardiosim.sources``
because it needs the source types, and sources sit above inverse in the layer order.
"""

from .dipole import (METHODS, default_fit_leads, dipole_from_vcg, estimate_dipole, frank_from_dipole,
                     lead_transfer, model_frank, project_dipole)
from .surface import (SurfaceSource, estimate_heart_position, fit_surface_source, select_heart,
                      source_space)
from .transforms import (DOWER, DOWER_LEADS, INVERSE_DOWER, KORS, KORS_LEADS, dower,
                         inverse_dower, kors, select_leads)

__all__ = [
    "DOWER", "DOWER_LEADS", "METHODS", "INVERSE_DOWER", "KORS", "KORS_LEADS", "SurfaceSource",
    "default_fit_leads", "dipole_from_vcg", "dower", "estimate_dipole", "estimate_heart_position",
    "fit_surface_source", "frank_from_dipole",
    "inverse_dower", "kors", "lead_transfer", "model_frank", "project_dipole", "select_heart", "select_leads",
    "source_space",
]
