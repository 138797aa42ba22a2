"""Datasets: recipes, deterministic parallel generation, xarray schema, netCDF I/O."""

from .generate import GenerationSummary, PreparedRecipe, generate, simulate_block
from .io import RecordReader, open_dataset, summarize, write_netcdf
from .recipe import OutputRecipe, Recipe, SourceRecipe, default_recipe_text

__all__ = ["GenerationSummary", "OutputRecipe", "PreparedRecipe", "Recipe", "RecordReader", "SourceRecipe",
           "default_recipe_text", "generate", "open_dataset", "simulate_block", "summarize", "write_netcdf"]
