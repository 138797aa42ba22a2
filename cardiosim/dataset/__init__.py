"""Datasets: recipes, deterministic parallel generation, xarray schema, netCDF I/O."""

from .generate import GenerationSummary, generate, simulate_block
from .io import open_dataset, summarize, write_netcdf
from .recipe import OutputRecipe, Recipe, SourceRecipe, default_recipe_text

__all__ = ["GenerationSummary", "OutputRecipe", "Recipe", "SourceRecipe", "default_recipe_text", "generate",
           "open_dataset", "simulate_block", "summarize", "write_netcdf"]
