"""DoReFa on a trained conv/BN stack: the activation clip levels fit the data, no collapse.

Regression: DoReFa normalises weights to [-1, 1] whatever their float scale, and
kept the float model's BatchNorm statistics while calibrating, so the activations
it observed grew layer after layer (a ResNet-20's classifier input reached 1.8e7),
every clip level was far too wide, all activations rounded to zero and the
network trained at chance (``benchmarks/results/qat.md``, W4A4 6.35% top-1).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from edgeslim.core.methods import apply
from edgeslim.quant.qat import DoReFaConfig, LSQConfig


def _trained_stack() -> tuple[nn.Module, list[torch.Tensor]]:
    """Three conv/BN/ReLU blocks with float BN statistics, and calibration batches."""
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for c_in in (3, 8, 8):
        layers += [nn.Conv2d(c_in, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU()]
    model = nn.Sequential(*layers, nn.Flatten(), nn.Linear(8 * 8 * 8, 4))
    batches = [torch.randn(16, 3, 8, 8) for _ in range(4)]
    bns = [m for m in model if isinstance(m, nn.BatchNorm2d)]
    for bn in bns:
        bn.momentum = None  # the float model's statistics: the average over the batches
    with torch.no_grad():
        for x in batches:
            model(x)
    for bn in bns:
        bn.momentum = 0.1
    return model.eval(), batches


def _input_of(model: nn.Module, index: int, x: torch.Tensor) -> torch.Tensor:
    return model[:index](x)


def test_dorefa_clip_levels_fit_the_float_activations():
    model, batches = _trained_stack()
    q, _ = apply(copy.deepcopy(model), DoReFaConfig(w_bits=4, a_bits=4), calib=batches)
    for index in (3, 6):  # the 2nd and 3rd conv read ReLU outputs
        float_max = max(float(_input_of(model, index, x).max()) for x in batches)
        clip = float(q[index].input_q.clip)
        assert 0.5 * float_max < clip < 2.0 * float_max, (index, clip, float_max)


def test_dorefa_keeps_the_float_models_predictions():
    model, batches = _trained_stack()
    q, _ = apply(copy.deepcopy(model), DoReFaConfig(w_bits=4, a_bits=4), calib=batches)
    x = torch.randn(64, 3, 8, 8)
    with torch.no_grad():
        ref, out = model(x), q.eval()(x)
    assert torch.isfinite(out).all()
    # DoReFa rescales the classifier (no BN after it): compare directions, not sizes
    cos = torch.nn.functional.cosine_similarity(out.flatten(), ref.flatten(), dim=0)
    assert float(cos) > 0.8
    assert float(out.std()) > 0.0  # not a constant output


def test_methods_that_keep_the_weight_scale_leave_bn_statistics_alone():
    model, batches = _trained_stack()
    q, _ = apply(copy.deepcopy(model), LSQConfig(w_bits=4, a_bits=4, fold_bn=False), calib=batches)
    assert torch.equal(q[1].running_var, model[1].running_var)
    assert torch.equal(q[4].running_mean, model[4].running_mean)
