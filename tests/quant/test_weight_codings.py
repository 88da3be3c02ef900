"""Power-of-two weights, k-means weight sharing, fp16/bf16: accuracy and storage."""

import pytest
import torch
from torch import nn

from edgeslim.bench.accuracy import evaluate_model
from edgeslim.quant.half import half_bytes, to_half
from edgeslim.quant.kmeans import kmeans_1d, kmeans_share_model
from edgeslim.quant.log2 import pow2_quantize, pow2_quantize_model


def test_pow2_values_are_signed_powers_of_two_or_zero():
    w = torch.randn(8, 3, 3, 3)
    q = pow2_quantize(w, bits=4)
    nz = q[q != 0].abs()
    assert torch.equal(torch.log2(nz), torch.log2(nz).round())
    assert bool((torch.sign(q[q != 0]) == torch.sign(w[q != 0])).all())
    # at most 2^(bits-1) - 1 distinct magnitudes per channel (+ zero)
    for c in range(8):
        assert len(q[c][q[c] != 0].abs().unique()) <= 7
    # nearest level in the linear domain: q / w lies in [2/3, 4/3] unless clipped at the top
    nz = q != 0
    ratio = (q[nz] / w[nz]).abs()
    top = q.abs().reshape(8, -1).amax(1)[:, None].expand(8, 27).reshape(w.shape)[nz]
    inside = (w[nz].abs() > w.abs().amax() / 32) & (w[nz].abs() <= top)
    assert float(ratio[inside].max()) <= 4 / 3 + 1e-6
    assert float(ratio[inside].min()) >= 2 / 3 - 1e-6


def test_kmeans_oracle_and_shared_values():
    x = torch.cat([torch.full((50,), -1.0), torch.full((50,), 2.0)]) + 0.01 * torch.randn(100)
    c, a = kmeans_1d(x, 2)
    assert c.tolist() == pytest.approx([-1.0, 2.0], abs=0.01)
    assert torch.equal(a[:50], torch.zeros(50, dtype=a.dtype))


def test_codings_keep_accuracy_and_report_storage(trained, digits):
    model = trained("resnet_tiny")
    fp = evaluate_model(model, digits[2])["top1"]
    km, km_rep = kmeans_share_model(model, bits=4, exclude=("fc",))
    p2, p2_rep = pow2_quantize_model(model, bits=5, exclude=("fc",))
    assert evaluate_model(km, digits[2])["top1"] >= fp - 0.03
    assert evaluate_model(p2, digits[2])["top1"] >= fp - 0.05
    for rep in (km_rep, p2_rep):
        assert rep.ratio > 2.0  # the fc head stays fp32
        assert "fc.weight" not in rep.layers
    for name, m in km.named_modules():
        if isinstance(m, nn.Conv2d):
            assert len(m.weight.unique()) <= 16, name
    assert kmeans_share_model(model, 2)[1].compressed_bytes < km_rep.compressed_bytes


@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
def test_half_precision(trained, digits, dtype):
    model = trained("depthwise")
    h = to_half(model, dtype)
    assert next(model.parameters()).dtype == torch.float32  # caller untouched
    assert half_bytes(h) < 0.55 * half_bytes(model)
    assert evaluate_model(h, digits[2])["top1"] >= evaluate_model(model, digits[2])["top1"] - 0.02
