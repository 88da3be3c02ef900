"""Recipe stages: one file each; importing this package registers them all."""

from edgeslim.recipe.stages import distill, export, finetune, prune, quantize  # noqa: F401
