"""The PTQ flow on zoo models and on concat / depthwise / SE / residual nets."""

import pytest
import torch

from edgeslim.bench.accuracy import evaluate_model
from edgeslim.models.spec import load_model
from edgeslim.quant.bit_allocation import allocate_bits
from edgeslim.quant.config import PTQConfig, activation_spec, weight_spec
from edgeslim.quant.fake_quant import FakeQuantize, QuantConv2d, fake_quantizers
from edgeslim.quant.observers import OBSERVERS
from edgeslim.quant.ptq import quantize_ptq


def _calib(loader, n=2):
    return [x for (x, _), _ in zip(loader, range(n), strict=False)]


@pytest.mark.parametrize("name", ["concat", "depthwise", "se", "resnet_tiny"])
def test_w8a8_keeps_accuracy_on_test_nets(trained, digits, name):
    model = trained(name)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    qm = quantize_ptq(model, _calib(digits[1]), PTQConfig(calib_batches=2), progress=False)
    assert qm.graph_mode == "export"
    for k, v in model.state_dict().items():  # the functional verb leaves the caller alone
        assert torch.equal(v, before[k])
    fp = evaluate_model(model, digits[2])["top1"]
    q8 = evaluate_model(qm.model, digits[2])["top1"]
    assert fp > 0.8
    assert q8 >= fp - 0.02


@pytest.mark.parametrize("observer", OBSERVERS.names())
@pytest.mark.parametrize("name", ["concat", "depthwise", "se", "resnet_tiny"])
def test_w8a8_every_calibrator_keeps_accuracy(trained, digits, name, observer):
    model = trained(name)
    cfg = PTQConfig(activation=activation_spec(8, observer), calib_batches=2)
    qm = quantize_ptq(model, _calib(digits[1]), cfg, progress=False)
    fp = evaluate_model(model, digits[2])["top1"]
    assert evaluate_model(qm.model, digits[2])["top1"] >= fp - 0.015  # 4 of 269 images


def test_bias_is_simulated_as_int32_once_the_input_scale_is_known(trained, digits):
    model = trained("resnet_tiny")
    qm = quantize_ptq(model, _calib(digits[1]), PTQConfig(calib_batches=2), progress=False)
    for layer_name, fq_name in qm.input_quantizer_of.items():
        layer, fq = qm.model.get_submodule(layer_name), qm.model.get_submodule(fq_name)
        expect = (fq.scale.double() * layer.weight_fq.scale.double()).float()
        torch.testing.assert_close(layer.bias_scale, expect, rtol=0, atol=0)
        codes = torch.round(layer.bias.double() / layer.bias_scale.double())
        torch.testing.assert_close(layer.qbias(), codes.float() * layer.bias_scale, rtol=0, atol=0)
    weight_only = quantize_ptq(model, None, PTQConfig(activation=None), progress=False)
    for name in weight_only.layers():  # no input scale: the runtime adds a float bias
        layer = weight_only.model.get_submodule(name)
        assert layer.bias_scale.numel() == 0 and layer.qbias() is layer.bias


def test_quantization_points_cover_add_cat_and_pool(trained, digits):
    qm = quantize_ptq(trained("concat"), _calib(digits[1]), PTQConfig(), progress=False)
    where = {(s.module, s.op, s.slot): s.quantizer for s in qm.placement.sites}
    # both inputs of the cat (the branches' ReLUs) and its output go through a quantizer
    assert {("a.2", None, "out"), ("b.2", None, "out"), ("", "cat", "out")} <= set(where)
    assert where[("pool", None, "out")] == where[("stem.2", None, "out")]  # max pool shares
    assert set(qm.input_quantizer_of) == set(qm.layers())
    assert type(qm.model).__name__ == "ConcatNet"  # the user's class, not a GraphModule


def test_exclude_regex_and_weight_only(trained, digits):
    cfg = PTQConfig(activation=None, exclude=(r"fc",), overrides=((r"stem\..*", weight_spec(4)),))
    qm = quantize_ptq(trained("resnet_tiny"), None, cfg, progress=False)
    assert "fc" not in qm.layers()
    assert type(qm.model.get_submodule("fc")).__name__ == "Linear"
    assert qm.model.get_submodule("stem.0").weight_fq.spec.bits == 4
    assert all(name.endswith("weight_fq") for name, _ in fake_quantizers(qm.model))


def test_w4_bias_correction_and_bit_allocation(trained, digits):
    model = trained("resnet_tiny")
    calib = _calib(digits[1], 4)
    base = PTQConfig(weight=weight_spec(4), calib_batches=4)
    plain = quantize_ptq(model, calib, base, progress=False)
    bc = quantize_ptq(
        model, calib, PTQConfig(**{**base.__dict__, "bias_correction": True}), progress=False
    )
    assert bc.bias_shifts and max(bc.bias_shifts.values()) > 0
    x = torch.cat(calib)
    ref = plain.float_model(x)
    err_plain = (plain.model(x) - ref).pow(2).mean()
    err_bc = (bc.model(x) - ref).pow(2).mean()
    assert err_bc < err_plain  # measured on the data it was corrected on
    ba = quantize_ptq(
        model, calib, PTQConfig(**{**base.__dict__, "bit_allocation": True}), progress=False
    )
    for _, m in ba.model.named_modules():
        if isinstance(m, QuantConv2d):
            bits = torch.log2(m.weight_fq.qmax + 1) + 1
            assert float(bits.mean()) <= 4 + 1e-6


def test_allocate_bits_budget_and_monotone():
    r = torch.rand(64) * 10
    b = allocate_bits(r, 4)
    assert float(b.float().mean()) <= 4 and int(b.min()) >= 2 and int(b.max()) <= 8
    order = torch.argsort(r)
    assert bool((b[order].diff() >= 0).all())


@pytest.mark.parametrize("name", ["resnet20", "mobilenet_v2_cifar"])
def test_flow_runs_on_zoo(name):
    lm = load_model(name)
    x = lm.input.example(batch=4)
    qm = quantize_ptq(lm.model, [x], PTQConfig(calib_batches=1), progress=False)
    assert qm.graph_mode == "export"
    n_act = sum(1 for n, _ in fake_quantizers(qm.model) if n.startswith("act_fq"))
    assert n_act > len(qm.layers()) // 2
    assert qm.model(x).shape == lm.model(x).shape
    assert all(isinstance(m, FakeQuantize) for _, m in fake_quantizers(qm.model))


def test_sensitivity_one_layer_at_a_time(trained, digits, tmp_path):
    from edgeslim.quant.sensitivity import layer_sensitivity, plot, to_markdown

    model = trained("resnet_tiny")
    cfg = PTQConfig(weight=weight_spec(2), calib_batches=2)
    qm = quantize_ptq(model, _calib(digits[1]), cfg, progress=False)
    x = _calib(digits[2], 1)[0]
    rows = layer_sensitivity(qm, x, digits[2], progress=False)
    assert {r.layer for r in rows} == set(qm.layers())
    assert all(r.sqnr_db > 0 and r.top1 is not None for r in rows)
    assert rows[0].drop >= rows[-1].drop  # most damaging first
    # quantizers are all restored afterwards
    assert all(fq.quantizing for _, fq in fake_quantizers(qm.model))
    assert plot(rows, tmp_path / "s.png").stat().st_size > 1000
    assert to_markdown(rows).count("\n") == len(rows) + 2
