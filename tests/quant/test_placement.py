"""Quantizer placement on the torch.export capture: the old fx placement is the oracle."""

import copy
import json

import pytest
import torch
from torch import nn

from edgeslim.models.spec import load_model
from edgeslim.quant.config import PTQConfig, activation_spec
from edgeslim.quant.fake_quant import FakeQuantize
from edgeslim.quant.graph import Placement, attach_quantizers_, insert_activation_quantizers
from edgeslim.quant.ptq import QuantizedModel, calibrate_, prepare, quantize_ptq

from . import fx_oracle
from .nets import NETS


def _randomize_bn(model):
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model.eval()


def _fx_quantized(model, calib, example):
    """The placement edgeslim made with torch.fx before (weights and folding identical)."""
    wq = prepare(model, PTQConfig(activation=None), example)
    gm = fx_oracle.traceable(wq.model)
    input_of = fx_oracle.insert_activation_quantizers(gm, activation_spec())
    qm = QuantizedModel(gm, wq.float_model, wq.config, "fx", input_of)
    calibrate_(qm, calib, len(calib), progress=False)
    return qm


def _nets():
    out = [(name, lambda c=cls: c(), (3, 8, 8)) for name, cls in NETS.items()]
    for zoo in ("resnet20", "mobilenet_v2_cifar"):
        out.append((zoo, lambda z=zoo: load_model(z).model, (3, 32, 32)))
    return out


@pytest.mark.parametrize(("name", "build", "shape"), _nets(), ids=[n for n, *_ in _nets()])
def test_placement_equals_the_fx_placement(name, build, shape):
    torch.manual_seed(0)
    model = _randomize_bn(build())
    calib = [torch.randn(8, *shape) for _ in range(2)]
    new = quantize_ptq(model, calib, PTQConfig(calib_batches=2), progress=False)
    old = _fx_quantized(model, calib, calib[0][:2])
    assert new.graph_mode == "export" and not new.placement.notes
    assert type(new.model) is type(model)
    old_fq = [m for m in old.model.act_fq.children() if isinstance(m, FakeQuantize)]
    assert len(new.model.act_fq) == len(old_fq)
    # the same tensors quantized with the same qparams give the same outputs
    x = torch.randn(16, *shape)
    torch.testing.assert_close(new.model(x), old.model(x), rtol=0, atol=1e-6)
    assert set(new.input_quantizer_of) == set(old.input_quantizer_of)
    for layer, fq in new.input_quantizer_of.items():
        a = new.model.get_submodule(fq)
        b = old.model.get_submodule(old.input_quantizer_of[layer])
        assert float(a.scale) == float(b.scale) and int(a.zero_point) == int(b.zero_point)


def test_module_called_twice_gets_one_site_per_call():
    qm = quantize_ptq(NETS["se"](), [torch.randn(4, 3, 8, 8)], PTQConfig(), progress=False)
    calls = {s.call for s in qm.placement.sites if s.module == "se_pool"}
    assert calls == {0, 1}
    funcs = {s.op for s in qm.placement.sites if s.op}
    assert {"relu", "sigmoid", "mul"} <= funcs  # functional ops in the user's forward


def test_placement_replays_from_json_and_survives_deepcopy():
    torch.manual_seed(0)
    model = _randomize_bn(NETS["resnet_tiny"]())
    calib = [torch.randn(8, 3, 8, 8)]
    qm = quantize_ptq(model, calib, PTQConfig(calib_batches=1), progress=False)
    x = torch.randn(5, 3, 8, 8)
    ref = qm.model(x)
    # saved as "float architecture + config + placement", rebuilt, then loaded
    saved = json.loads(json.dumps(qm.placement.to_dict()))
    rebuilt = prepare(model, PTQConfig(activation=None), x).model
    attach_quantizers_(rebuilt, Placement.from_dict(saved), activation_spec())
    missing, unexpected = rebuilt.load_state_dict(qm.model.state_dict(), strict=False)
    assert not unexpected and not [k for k in missing if "act_fq" in k]
    for _, fq in rebuilt.named_modules():
        if isinstance(fq, FakeQuantize):
            fq.observing, fq.quantizing = False, True
            fq._cache_scalars()
    for layer, fq in qm.input_quantizer_of.items():
        rebuilt.get_submodule(layer).set_bias_scale(rebuilt.get_submodule(fq).scale)
    torch.testing.assert_close(rebuilt(x), ref, rtol=0, atol=0)
    twin = copy.deepcopy(qm.model)
    torch.testing.assert_close(twin(x), ref, rtol=0, atol=0)
    twin.act_fq.get_submodule("0").scale.mul_(2)
    twin.act_fq.get_submodule("0")._cache_scalars()
    torch.testing.assert_close(qm.model(x), ref, rtol=0, atol=0)  # the copy has its own


def test_insert_leaves_the_model_alone_and_keeps_its_class():
    model = NETS["concat"]().eval()
    wq = prepare(model, PTQConfig(activation=None), torch.randn(2, 3, 8, 8)).model
    before = list(wq.named_modules())
    out, placement = insert_activation_quantizers(wq, activation_spec(), torch.randn(2, 3, 8, 8))
    assert list(wq.named_modules()) == before and not hasattr(wq, "act_fq")
    assert type(out) is type(model) and len(out.act_fq) == placement.quantizers


class _Branchy(nn.Module):
    """Data-dependent Python control flow: torch.export cannot capture it."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 4, 3), nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return self.a(x) if x.sum() > 0 else self.b(x)


def test_capture_failure_warns_and_is_recorded():
    with pytest.warns(UserWarning, match="cannot capture the model graph"):
        qm = quantize_ptq(_Branchy(), [torch.randn(2, 3, 8, 8)], PTQConfig(), progress=False)
    assert qm.graph_mode == "module"
    assert "cannot capture the model graph" in qm.graph_note
    assert set(qm.input_quantizer_of) == {"a", "b"}


def test_a_failed_forward_leaves_no_mode_behind_and_sequential_roots_work():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 2))
    qm = quantize_ptq(model, [torch.randn(4, 3, 8, 8)], PTQConfig(), progress=False)
    assert qm.graph_mode == "export" and len(qm.model.act_fq) == 2  # input, ReLU (-> fc)
    x = torch.randn(2, 3, 8, 8)
    ref = qm.model(x)
    depth = torch._C._len_torch_function_stack()
    with pytest.raises(RuntimeError):
        qm.model(torch.randn(2, 5, 8, 8))  # wrong channel count: the conv raises
    assert torch._C._len_torch_function_stack() == depth
    assert not qm.model.act_fq._warned  # an interrupted forward is not a skipped site
    torch.testing.assert_close(qm.model(x), ref, rtol=0, atol=0)
