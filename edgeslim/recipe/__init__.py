"""Recipes: validated YAML that chains compression stages; ``compress`` runs one."""

from edgeslim.recipe import stages  # noqa: F401  (registers the built-in stages)
from edgeslim.recipe.compress import compress
from edgeslim.recipe.loader import LoadedRecipe, load_recipe, parse_recipe
from edgeslim.recipe.registry import STAGES, register_stage

__all__ = ["STAGES", "LoadedRecipe", "compress", "load_recipe", "parse_recipe", "register_stage"]
