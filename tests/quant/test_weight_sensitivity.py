"""Per-layer weight sensitivity on any fake-quantized module (the recipe's quantize stage)."""

import copy

import torch
from torch import nn

from edgeslim.quant.fake_quant import fake_quantizers
from edgeslim.quant.ptq import quantize_ptq
from edgeslim.quant.sensitivity import only_weights_of, weight_drops


def _qmodel():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1))
    calib = [torch.randn(4, 3, 8, 8) for _ in range(2)]
    return quantize_ptq(net, calib, progress=False).model, calib[0]


def test_only_weights_of_enables_one_weight_quantizer_and_restores():
    model, _ = _qmodel()
    before = {n: fq.quantizing for n, fq in fake_quantizers(model)}
    with only_weights_of(model, "0"):
        on = [n for n, fq in fake_quantizers(model) if fq.quantizing]
    assert on == ["0.weight_fq"]
    assert {n: fq.quantizing for n, fq in fake_quantizers(model)} == before


def test_weight_drops_match_a_hand_computed_oracle():
    model, x = _qmodel()
    with torch.no_grad():
        ref = model[0].weight.detach().clone()
    # score = minus the output error against the float path: the drop is the error
    with torch.no_grad(), only_weights_of(model, None):
        float_out = model(x)

    def score(m):
        with torch.no_grad():
            return -float((m(x) - float_out).abs().mean())

    drops = weight_drops(model, ["0", "2"], score)
    assert set(drops) == {"0", "2"} and all(d > 0 for d in drops.values())
    # oracle: the float path of a copy whose layer-"0" weights hold their fake-quantized
    # values, obtained from that layer's own weight quantizer
    fq = dict(fake_quantizers(model))["0.weight_fq"]
    twin = copy.deepcopy(model)
    with torch.no_grad(), only_weights_of(model, "0"):
        w_q = fq(model[0].weight)
    assert not torch.equal(w_q, ref)  # the grid moved the weights
    with torch.no_grad():
        twin[0].weight.copy_(w_q)
    with only_weights_of(twin, None):
        assert abs(drops["0"] - (0.0 - score(twin))) < 1e-7  # the float score is 0
    assert torch.equal(model[0].weight, ref)  # the float weights were not changed
