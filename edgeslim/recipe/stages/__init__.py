"""Recipe stages: one file each; importing this package registers them all."""

from edgeslim.recipe.stages import (  # noqa: F401
    distill,
    earlyexit,
    export,
    finetune,
    fuse,
    lowrank,
    prune,
    qat,
    quantize,
    search,
    sparsify,
)
