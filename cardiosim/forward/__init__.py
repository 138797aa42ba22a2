"""Lead fields of volume conductors: infinite medium, analytic sphere, BEM torso.

Every model has ``.lead_field(points (..., 3) m) -> (..., 3) V/(A·m)`` for unit dipoles
along x, y, z at ``.source_position``: ``phi = lead_field(r) @ p`` (docs/ARCHITECTURE.md).
The piecewise-homogeneous torso with lungs (:func:`make_multilayer_bem_model`) is opt-in.
"""

from .bem import BEMModel, BEMSolver, default_cache_dir, make_bem_model, make_bem_solver, solve_bem
from .models import (
    InfiniteModel,
    SphereModel,
    infinite_lead_field,
    make_infinite_model,
    make_sphere_model,
    rotate_lead_field,
)
from .multilayer import MultilayerBEMModel, make_multilayer_bem_model, solve_multilayer_bem

__all__ = ["BEMModel", "BEMSolver", "InfiniteModel", "MultilayerBEMModel", "SphereModel", "default_cache_dir",
           "infinite_lead_field", "make_bem_model", "make_bem_solver", "make_infinite_model", "make_multilayer_bem_model",
           "make_sphere_model", "rotate_lead_field", "solve_bem", "solve_multilayer_bem"]
