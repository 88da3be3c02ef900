"""Masks are parametrizations in the state_dict: they train, save, reload, squash and export."""

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from torch import nn

from edgeslim.core.methods import apply_
from edgeslim.export.onnx import export_onnx
from edgeslim.models.saved import load_saved, save_model
from edgeslim.models.spec import load_model
from edgeslim.sparsity import (
    MagnitudeConfig,
    NMConfig,
    RTossConfig,
    mask_of,
    masked_layers,
    sparsity_of,
    squash_,
    squashed,
)

KINDS = [MagnitudeConfig(0.7), MagnitudeConfig(0.6, scope="global"), NMConfig(2, 4), RTossConfig(2)]


def _sparse_resnet20(cfg):
    torch.manual_seed(0)
    lm = load_model("resnet20")
    model, rec = apply_(lm.model, cfg)
    lm.model, lm.methods = model, [*lm.methods, rec.to_dict()]
    return lm, rec


def test_masks_are_buffers_in_the_state_dict():
    lm, rec = _sparse_resnet20(MagnitudeConfig(0.5))
    keys = lm.model.state_dict().keys()
    assert "conv1.parametrizations.weight.original" in keys
    assert "conv1.parametrizations.weight.0.mask" in keys
    assert "conv1.weight" not in keys


@pytest.mark.parametrize("cfg", KINDS, ids=lambda c: f"{type(c).__name__}")
def test_a_saved_sparse_model_reloads_with_its_masks(cfg, tmp_path):
    lm, rec = _sparse_resnet20(cfg)
    save_model(lm, tmp_path / "m")
    back = load_saved(tmp_path / "m")
    assert list(masked_layers(back.model)) == list(masked_layers(lm.model))
    sd, sd2 = lm.model.state_dict(), back.model.state_dict()
    assert sd.keys() == sd2.keys()
    assert all(torch.equal(sd[k], sd2[k]) for k in sd)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(lm.model.eval()(x), back.model(x))
    assert sparsity_of(back.model) == pytest.approx(rec.details["sparsity"])


def test_training_through_a_mask_keeps_the_zeros():
    lm, _ = _sparse_resnet20(MagnitudeConfig(0.8))
    model = lm.model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    zeros = {n: (m.weight == 0).clone() for n, m in masked_layers(model).items()}
    for _ in range(3):
        loss = model(torch.randn(4, 3, 32, 32)).logsumexp(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    for n, m in masked_layers(model).items():
        assert bool((m.weight[zeros[n]] == 0).all())
        assert bool((m.parametrizations.weight.original.grad[zeros[n]] == 0).all())


def test_squash_makes_the_zeros_permanent():
    lm, rec = _sparse_resnet20(NMConfig(2, 4))
    before = {n: m.weight.detach().clone() for n, m in masked_layers(lm.model).items()}
    model = squash_(lm.model)
    assert not masked_layers(model)
    assert all(type(model.get_submodule(n)) is nn.Conv2d for n in before if n != "fc")
    for n, w in before.items():
        mod = model.get_submodule(n)
        assert mask_of(mod) is None and isinstance(mod.weight, nn.Parameter)
        assert torch.equal(mod.weight.detach(), w)
    assert "conv1.weight" in model.state_dict()


def test_squashed_copy_leaves_the_masked_model_alone():
    lm, _ = _sparse_resnet20(RTossConfig(3))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        y = lm.model(x)
        plain, again = squashed(lm.model), squashed(lm.model)  # torch's removal would break here
        assert torch.equal(plain(x), y) and torch.equal(again(x), y) and torch.equal(lm.model(x), y)
    assert masked_layers(lm.model) and not masked_layers(plain)


@pytest.mark.parametrize("cfg", [RTossConfig(2)], ids=["rtoss2"])
def test_onnx_export_keeps_the_zeros_with_ort_parity(cfg, tmp_path):
    lm, rec = _sparse_resnet20(cfg)
    plain = squashed(lm.model)
    res = export_onnx(plain, lm.input, tmp_path / "m.onnx")
    assert res.max_abs_diff < 1e-4
    inits = [
        numpy_helper.to_array(t) for t in onnx.load(str(tmp_path / "m.onnx")).graph.initializer
    ]
    for name in rec.layers:
        w = plain.get_submodule(name).weight.detach().numpy()
        # the exporter may fold BatchNorm into the conv (a per-channel scale): zeros stay zeros
        found = [a for a in inits if a.shape == w.shape and np.array_equal(a == 0, w == 0)]
        assert found, f"{name}: its zeros are not in the ONNX file's initializers"
