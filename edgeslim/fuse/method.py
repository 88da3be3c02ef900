"""Conv+BN folding as a registered method, so a folded model saves, reloads and is recorded.

``apply_(model, FuseBNConfig(), calib=[example])`` folds every conv -> BatchNorm pair
that the ``torch.export`` capture of the example finds (:func:`edgeslim.fuse.conv_bn.fold_bn_`);
the record keeps the pairs, and a reload replays exactly those folds before the
saved (folded) weights load. The activation after a conv is not folded here: ONNX
Runtime fuses Conv + activation itself when it optimises the graph (its
``FusedConv``), which the compress report's layer table shows per layer.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeslim.core.methods import Method, MethodConfig, register_method
from edgeslim.fuse.conv_bn import fold_bn_


@dataclass(frozen=True)
class FuseBNConfig(MethodConfig):
    """Fold BatchNorm into the conv or linear layer before it (inference statistics).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from edgeslim.core.methods import apply
        >>> m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).eval()
        >>> new, rec = apply(m, FuseBNConfig(), calib=[torch.randn(1, 3, 8, 8)])
        >>> rec.details["pairs"], type(new[1]).__name__
        ([['0', '1']], 'Identity')
    """


def _example(calib):
    if calib is None:
        return None
    batch = next(iter(calib), None)
    return batch[0] if isinstance(batch, list | tuple) else batch


@register_method(FuseBNConfig, "fuse_bn")
class FuseBN(Method):
    """Folds the pairs the capture finds; replays the recorded pairs on load."""

    def apply_(self, model, config, layers, calib):
        pairs = fold_bn_(model.eval(), _example(calib))
        for conv, _bn in pairs:
            layers.done(conv, config)
        return model, {"pairs": [list(p) for p in pairs]}

    def restore_(self, model, config, layers, details):
        fold_bn_(model, pairs=[tuple(p) for p in details.get("pairs", [])])
        return model
