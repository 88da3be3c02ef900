"""Fake-quant models are first-class: they save, reload, train and export after a reload."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from edgeslim.core.methods import apply
from edgeslim.models.inputs import InputSpec
from edgeslim.models.saved import load_saved, save_model
from edgeslim.models.spec import LoadedModel
from edgeslim.quant import PTQConfig, learn_scales_, weight_spec
from edgeslim.quant.fake_quant import fake_quantizers
from edgeslim.quant.qdq import export_qdq
from edgeslim.workflows.quantize import agreement

NETS_FILE = Path(__file__).with_name("nets.py")
FACTORY = {"concat": "ConcatNet", "depthwise": "DepthwiseNet", "se": "SENet"}
FACTORY["resnet_tiny"] = "ResNetTiny"
SPEC = InputSpec((1, 3, 8, 8))


def _calib(loader, n=2):
    return [x for (x, _), _ in zip(loader, range(n), strict=False)]


def _saved(model, net, methods, path):
    source = {"kind": "file", "path": str(NETS_FILE), "factory": FACTORY[net]}
    save_model(LoadedModel(model, source, SPEC, net, {}, methods), path)
    return load_saved(path)


CONFIGS = {
    "w8a8": PTQConfig(calib_batches=2),
    "w4a8_bias_corr": PTQConfig(weight=weight_spec(4), calib_batches=2, bias_correction=True),
    "weight_only_bits": PTQConfig(activation=None, bit_allocation=True, exclude=("fc",)),
}


@pytest.mark.parametrize("net", sorted(FACTORY))
@pytest.mark.parametrize("cfg", sorted(CONFIGS))
def test_fake_quant_model_reloads_exactly(net, cfg, trained, digits, tmp_path):
    qmodel, rec = apply(trained(net), CONFIGS[cfg], calib=_calib(digits[0]))
    back = _saved(qmodel, net, [rec.to_dict()], tmp_path / "m")
    assert back.methods[0]["method"] == "ptq"
    a, b = qmodel.state_dict(), back.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    x = next(iter(digits[2]))[0]
    with torch.no_grad():
        assert torch.equal(qmodel(x), back.model(x))
    pairs = zip(fake_quantizers(qmodel), fake_quantizers(back.model), strict=True)
    for (n1, f1), (n2, f2) in pairs:
        assert n1 == n2 and (f1.observing, f1.quantizing) == (f2.observing, f2.quantizing)


@pytest.mark.parametrize("net", ["resnet_tiny", "concat"])
def test_reloaded_model_exports_int8_that_agrees(net, trained, digits, tmp_path):
    qmodel, rec = apply(trained(net), CONFIGS["w8a8"], calib=_calib(digits[0]))
    back = _saved(qmodel, net, [rec.to_dict()], tmp_path / "m")
    res = export_qdq(back.model, SPEC, tmp_path / "int8.onnx")
    assert res.quantized_weights == len(rec.layers) and res.activation_qdq > 0
    assert agreement(back.model, res.path, digits[2]) >= 0.99


def test_training_moves_the_scales_lowers_the_loss_and_still_exports(trained, digits, tmp_path):
    qmodel, rec = apply(trained("resnet_tiny"), CONFIGS["w8a8"], calib=_calib(digits[0]))
    assert learn_scales_(qmodel) == len(list(fake_quantizers(qmodel)))
    scales = {n: p.detach().clone() for n, p in qmodel.named_parameters() if n.endswith("scale")}
    assert scales and all(p.requires_grad for p in qmodel.parameters())
    x, y = next(iter(digits[0]))
    opt = torch.optim.SGD(qmodel.parameters(), lr=0.01)
    qmodel.train()
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = F.cross_entropy(qmodel(x) * 0.3, y)  # tempered: a trained model has room to learn
        loss.backward()
        if not losses:  # gradients reach weights and scales through the quantizers
            assert qmodel.get_submodule("stem.0").weight.grad.abs().sum() > 0
            grads = [p.grad for n, p in qmodel.named_parameters() if n.endswith("scale")]
            assert sum(int(g is not None and bool(g.abs().sum() > 0)) for g in grads) >= 0.8 * len(
                grads
            )
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    params = dict(qmodel.named_parameters())
    moved = [n for n in scales if not torch.equal(params[n], scales[n])]
    assert len(moved) >= 0.8 * len(scales)
    qmodel.eval()
    back = _saved(qmodel, "resnet_tiny", [rec.to_dict()], tmp_path / "m")
    with torch.no_grad():
        torch.testing.assert_close(back.model(x), qmodel(x), rtol=0, atol=0)
    res = export_qdq(back.model, SPEC, tmp_path / "int8.onnx")
    assert agreement(back.model, res.path, digits[2]) >= 0.99
