"""Calibration memory is bounded (issue 17): what a quantized model holds after calibration
does not grow with the number of calibration batches, for every activation observer."""

import pytest
import torch
from torch import nn

from edgeslim.core.methods import apply
from edgeslim.quant.config import PTQConfig, activation_spec, weight_spec


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.ReLU(),
                         nn.Flatten(), nn.Linear(8 * 4 * 4, 4)).eval()  # fmt: skip


def _held_bytes(model: nn.Module) -> int:
    """Bytes of every tensor the model holds: parameters, buffers, tensor attributes."""
    seen, total = set(), 0
    for mod in model.modules():
        for v in list(mod.state_dict(keep_vars=True).values()) + list(vars(mod).values()):
            if isinstance(v, torch.Tensor) and id(v) not in seen:
                seen.add(id(v))
                total += v.numel() * v.element_size()
    return total


@pytest.mark.parametrize("method", ["minmax", "percentile", "kl", "mse", "aciq"])
def test_observer_state_does_not_grow_with_calibration_batches(method):
    g = torch.Generator().manual_seed(0)
    data = [torch.randn(16, 3, 8, 8, generator=g) * (1 + i) for i in range(12)]  # ranges grow
    sizes = []
    for n in (2, 12):
        cfg = PTQConfig(weight=weight_spec(8), activation=activation_spec(8, method),
                        calib_batches=n)  # fmt: skip
        q, _ = apply(_net(), cfg, calib=data)
        sizes.append(_held_bytes(q))
    assert sizes[0] == sizes[1], sizes


def test_bias_correction_keeps_only_its_batches():
    g = torch.Generator().manual_seed(0)
    data = [torch.randn(16, 3, 8, 8, generator=g) for _ in range(12)]
    seen = []

    class Counting(list):
        def __iter__(self):
            for x in super().__iter__():
                seen.append(1)
                yield x

    cfg = PTQConfig(weight=weight_spec(8), activation=activation_spec(8, "minmax"),
                    calib_batches=2, bias_correction=True, bias_correction_batches=3)  # fmt: skip
    apply(_net(), cfg, calib=Counting(data))
    # the calibration pass reads 2 batches (+1 to see the end); bias correction 3 (+1):
    # never the whole dataset
    assert len(seen) <= 2 + 3 + 4, len(seen)
