"""Fake-quant modules equal quantize -> dequantize; buffers hold the whole state."""

import torch
from torch import nn

from edgeslim.quant.config import QuantSpec, activation_spec, weight_spec
from edgeslim.quant.fake_quant import FakeQuantize, QuantConv2d, QuantLinear, quantize_bias
from edgeslim.quant.primitives import choose_qparams, dequantize, quantize


def test_activation_fake_quant_equals_quantize_dequantize():
    torch.manual_seed(0)
    x = torch.randn(4, 8, 5, 5) * 2
    fq = FakeQuantize(activation_spec())
    fq(x)
    fq.freeze()
    s, z = choose_qparams(x.min(), x.max(), 0, 255, symmetric=False)
    assert float(fq.scale) == float(s) and int(fq.zero_point) == int(z)
    ref = dequantize(quantize(x, fq.scale, fq.zero_point, 0, 255), fq.scale, fq.zero_point)
    got = fq(x)
    assert float((got - ref).abs().max()) <= float(fq.scale) * 1.0001
    assert float((got != ref).float().mean()) < 1e-3


def test_weight_fake_quant_per_channel_and_conv_equivalence():
    conv = nn.Conv2d(3, 6, 3)
    q = QuantConv2d.from_float(conv, weight_spec(4))
    w = conv.weight.detach()
    amax = w.flatten(1).abs().amax(1)
    s, z = choose_qparams(-amax, amax, -7, 7, symmetric=True)
    wq = dequantize(quantize(w, s, z, -7, 7, 0), s, z, 0)
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(q(x), nn.functional.conv2d(x, wq, conv.bias))
    assert torch.equal(q.weight, conv.weight)  # float weights kept for export and BC


def test_state_dict_round_trip_restores_qparams():
    fq = FakeQuantize(activation_spec(observer="percentile"))
    fq(torch.rand(1000) * 5)
    fq.freeze()
    fresh = FakeQuantize(activation_spec(observer="percentile"))
    fresh.load_state_dict(fq.state_dict())
    fresh.observing, fresh.quantizing = False, True
    x = torch.rand(100) * 5
    assert torch.equal(fresh(x), fq(x))


def test_group_and_linear():
    lin = nn.Linear(16, 4)
    q = QuantLinear.from_float(lin, QuantSpec(4, granularity="group", group_size=8))
    x = torch.randn(3, 16)
    assert q(x).shape == (3, 4)
    assert not torch.equal(q.qweight(), lin.weight)


def test_bias_quantization_is_int32_codes_with_straight_through_gradient():
    b = torch.tensor([0.1234567, -2.5e-3, 7.0], requires_grad=True)
    s = torch.tensor([1e-3, 2e-4, 0.5])
    q = quantize_bias(b, s)
    assert torch.equal(q.detach(), torch.round(b.detach().double() / s.double()).float() * s)
    q.sum().backward()
    assert torch.equal(b.grad, torch.ones(3))


def test_quant_linear_bias_int32_only_where_export_writes_gemm():
    lin = QuantLinear.from_float(nn.Linear(8, 4), weight_spec(8))
    lin.set_bias_scale(torch.tensor(0.37))
    x = torch.randn(2, 8)
    ref = nn.functional.linear(x, lin.qweight(), lin.qbias())
    assert torch.equal(lin(x), ref) and not torch.equal(lin.qbias(), lin.bias)
    x3 = torch.randn(2, 5, 8)  # MatMul + Add in ONNX: ONNX Runtime adds the float bias
    assert torch.equal(lin(x3), nn.functional.linear(x3, lin.qweight(), lin.bias))
