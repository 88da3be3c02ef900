"""Recipe stages: one file each; importing this package registers them all."""

from edgeslim.recipe.stages import export, finetune  # noqa: F401
