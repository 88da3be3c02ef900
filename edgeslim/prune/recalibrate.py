"""Re-estimate BatchNorm statistics after pruning ("adaptive BN", Li et al., EagleEye,
ECCV 2020, arXiv:2007.02491).

Removing channels shifts the distribution every downstream BN normalises, so the
running statistics kept from the dense model are stale: a half-MACs ResNet-56
keeps 9-17% top-1 right after pruning and 61% once its BN statistics are
re-estimated on a few training batches, without a gradient step
(``benchmarks/results/pruning.md``). The pruned model's quality before
fine-tuning, hence a fair way to compare criteria and allocations.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import torch
from torch import nn

from edgeslim.core.errors import EdgeslimError
from edgeslim.core.modes import eval_mode


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable, max_batches: int = 30) -> int:
    """Reset every BatchNorm's running mean/var to the average over ``batches``, in place.

    Only the BN buffers change (weights, and every other module, are untouched); the
    model's train/eval modes are restored. Batches are tensors or ``(x, y)`` pairs.
    Returns the number of batches used.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    it = iter(batches)
    first = next(it, None)
    if first is None:  # checked before any statistic is reset
        raise EdgeslimError("BN recalibration got no batches")
    if not bns:
        return 0
    momenta = {m: m.momentum for m in bns}
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches seen
    n = 0
    try:
        with eval_mode(model):  # every mode comes back after, per submodule
            for m in bns:
                m.train()  # only the BNs update statistics
            for batch in itertools.chain([first], it):
                if n >= max_batches:
                    break
                model(batch[0] if isinstance(batch, (tuple, list)) else batch)
                n += 1
    finally:
        for m, momentum in momenta.items():
            m.momentum = momentum
    return n
