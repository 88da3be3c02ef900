"""BatchNorm folding in QAT: on by default above 2 weight bits, off at 2 bits.

At 2 bits the folded scale and shift keep the float conv's statistics while the
quantized weights shrink every conv's output; W2A2 ResNet-20 fell to chance folded
and trains with BatchNorm kept as a layer (``benchmarks/results/qat_intel_amx/qat.md``).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edgeslim.core.methods import apply
from edgeslim.quant.qat import LSQConfig


@pytest.mark.parametrize(("w_bits", "folded"), [(2, False), (3, True), (4, True), (8, True)])
def test_default_folds_above_two_bits(w_bits, folded):
    assert LSQConfig(w_bits=w_bits, a_bits=4).fold_bn is folded


@pytest.mark.parametrize("explicit", [True, False])
def test_an_explicit_choice_is_kept(explicit):
    assert LSQConfig(w_bits=2, a_bits=2, fold_bn=explicit).fold_bn is explicit
    assert LSQConfig(w_bits=4, a_bits=4, fold_bn=explicit).fold_bn is explicit


def test_two_bit_model_keeps_its_batchnorm_pairs_unfolded():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Flatten(), nn.Linear(8 * 8 * 8, 4),
    )  # fmt: skip
    calib = [torch.randn(8, 3, 8, 8) for _ in range(2)]
    _, two = apply(model, LSQConfig(w_bits=2, a_bits=2), calib=calib)
    _, four = apply(model, LSQConfig(w_bits=4, a_bits=4), calib=calib)
    assert two.details["bn_pairs"] == []
    assert four.details["bn_pairs"] == [["0", "1"]]
