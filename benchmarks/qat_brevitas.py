"""The Brevitas peer of ``benchmarks/qat.py``: the same ResNet-20, quantized by Brevitas 0.13.4.

Brevitas is a benchmark peer, never a dependency of edgeslim: it is imported here
only, when the benchmark asks for it (``pip install brevitas==0.13.4``).

The FP32 edgeslim ResNet-20 is copied and its layers swapped for Brevitas's:

* every ``nn.Conv2d`` -> ``QuantConv2d`` and ``fc`` -> ``QuantLinear`` with the same
  weights (Brevitas's default weight quantizer, ``Int8WeightPerTensorFloat``:
  symmetric per-tensor, max-abs scale, straight-through rounding);
* every ``nn.ReLU`` -> ``QuantReLU`` (default ``Uint8ActPerTensorFloat``: a learned
  scale initialised from a percentile of the data);
* ``QuantIdentity`` on the network input and on the pooled features before ``fc``.

So every conv's input is quantized where edgeslim quantizes it: the block convs and
the shortcut convs read ``bits``-bit ReLU outputs, the stem and ``fc`` are W8A8 (the
stem's ReLU, whose output feeds the first block, is at ``bits``). BatchNorm stays a
float layer (Brevitas does not fold it in training); edgeslim folds it in simulation.
The activation scales are calibrated on the same batches as edgeslim's quantizers
(``brevitas.graph.calibrate.calibration_mode``), then the model trains with the
same edgeslim :class:`~edgeslim.train.trainer.Trainer` and schedule.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from edgeslim.core.modes import eval_mode

KEEP_8BIT = ("conv1", "fc")


def brevitas_version() -> str:
    import brevitas

    return brevitas.__version__


def _conv(qnn, conv: nn.Conv2d, bits: int) -> nn.Module:
    new = qnn.QuantConv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=conv.bias is not None,
        weight_bit_width=bits,
    )
    new.load_state_dict(conv.state_dict())
    return new


def _linear(qnn, fc: nn.Linear, bits: int) -> nn.Module:
    new = qnn.QuantLinear(
        fc.in_features, fc.out_features, bias=fc.bias is not None, weight_bit_width=bits
    )
    new.load_state_dict(fc.state_dict())
    return new


def _swap_(qnn, module: nn.Module, bits: int, prefix: str = "") -> None:
    for name, child in list(module.named_children()):
        full = f"{prefix}{name}"
        b = 8 if full in KEEP_8BIT else bits
        if isinstance(child, nn.Conv2d):
            setattr(module, name, _conv(qnn, child, b))
        elif isinstance(child, nn.Linear):
            setattr(module, name, _linear(qnn, child, b))
        elif isinstance(child, nn.ReLU):
            setattr(module, name, qnn.QuantReLU(bit_width=bits))
        elif full == "avgpool":  # fc reads 8-bit features
            setattr(module, name, nn.Sequential(child, qnn.QuantIdentity(bit_width=8)))
        else:
            _swap_(qnn, child, bits, f"{full}.")


def brevitas_resnet(model: nn.Module, bits: int, calib, calib_batches: int) -> nn.Module:
    """A Brevitas twin of the edgeslim CIFAR ResNet ``model`` at W``bits``A``bits``, calibrated."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "fast_hadamard_transform package not found"
        import brevitas.nn as qnn
        from brevitas.graph.calibrate import calibration_mode

    body = copy.deepcopy(model)
    _swap_(qnn, body, bits)
    net = nn.Sequential(qnn.QuantIdentity(bit_width=8), body)
    with torch.no_grad(), eval_mode(net), calibration_mode(net):
        for i, batch in enumerate(calib):
            if i >= calib_batches:
                break
            net(batch[0] if isinstance(batch, list | tuple) else batch)
    return net
