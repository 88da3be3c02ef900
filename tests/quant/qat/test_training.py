"""QAT models train (each method lowers the loss), fold BN in simulation, freeze, reload."""

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgeslim.core.methods import apply
from edgeslim.data import make_loader
from edgeslim.models.inputs import InputSpec
from edgeslim.models.saved import load_saved, save_model
from edgeslim.models.spec import LoadedModel
from edgeslim.quant.qat import CONFIGS, QATConv2d, freeze_, qat_layers
from edgeslim.quant.qat.ste import STEQuantizer

NETS_FILE = Path(__file__).parent.parent / "nets.py"
SPEC = InputSpec((1, 3, 8, 8))
BITS = {"binary": {}, "ternary": {}, "learned_bits": {"quantize_head": True}}  # method specifics


def _config(method, **kw):
    return CONFIGS[method](**{"w_bits": 4, "a_bits": 4, "calib_batches": 2, **BITS.get(method, kw)})


def _calib(loader, n=2):
    return [x for (x, _), _ in zip(loader, range(n), strict=False)]


def _loss(model, batches):
    with torch.no_grad():
        return sum(float(F.cross_entropy(model.eval()(x), y)) for x, y in batches) / len(batches)


def _fit(model, loader, epochs, config=None):
    opt = torch.optim.Adam(model.parameters(), 2e-3)
    for epoch in range(epochs):
        if config is not None:
            freeze_(model, config, epoch)
        model.train()
        for x, y in loader:
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
    return model.eval()


@pytest.mark.parametrize("method", sorted(CONFIGS))
def test_qat_lowers_the_loss_then_saves_and_reloads_exactly(method, trained, digits, tmp_path):
    torch.manual_seed(0)
    # 512 digits in a fixed order (the session's loader has been iterated by other tests
    # an unknown number of times): two epochs take about a second
    batches = list(make_loader(digits[0].dataset, 64, shuffle=True, seed=0))[:8]
    float_loss = _loss(trained("resnet_tiny"), batches)
    model, rec = apply(trained("resnet_tiny"), _config(method), calib=_calib(batches))
    assert len(list(qat_layers(model))) == 4
    before = _loss(model, batches)
    _fit(model, batches, 2)
    after = _loss(model, batches)
    # training lowers the loss, unless calibration already put the model next to the float
    # one (DoReFa re-estimates BN statistics first and can start at the float loss)
    assert after < before or after < float_loss + 0.05, (method, float_loss, before, after)

    source = {"kind": "file", "path": str(NETS_FILE), "factory": "ResNetTiny"}
    save_model(LoadedModel(model, source, SPEC, method, {}, [rec.to_dict()]), tmp_path / "m")
    back = load_saved(tmp_path / "m")
    a, b = model.state_dict(), back.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    x = next(iter(digits[2]))[0]
    with torch.no_grad():
        assert torch.equal(model(x), back.model(x))


def test_bn_folded_in_simulation_equals_conv_then_bn():
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(3, 5, 3, bias=True), nn.BatchNorm2d(5)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2)
        bn.bias.normal_()
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2)
    ref = nn.Sequential(copy.deepcopy(conv), copy.deepcopy(bn))
    q = QATConv2d.from_float(conv, bn)  # no quantizers: only the folding
    x = torch.randn(4, 3, 7, 7)
    torch.testing.assert_close(q.eval()(x), ref.eval()(x), rtol=1e-5, atol=1e-5)
    # training: batch statistics fold in, and the running statistics follow as BN's do
    torch.testing.assert_close(q.train()(x), ref.train()(x), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(q.bn.running_mean, ref[1].running_mean)
    torch.testing.assert_close(q.bn.running_var, ref[1].running_var)


def test_bn_and_observers_freeze_at_their_epoch(trained, digits):
    cfg = CONFIGS["ste"](w_bits=4, a_bits=4, freeze_bn_epoch=1, freeze_observer_epoch=1)
    model, _ = apply(trained("resnet_tiny"), cfg, calib=_calib(digits[0]))
    layer = dict(qat_layers(model))["stem.0"]
    assert layer.bn is not None and isinstance(layer.input_q, STEQuantizer)
    x = next(iter(digits[0]))[0]

    def state():
        return layer.bn.running_mean.clone(), layer.input_q.hi.clone()

    assert freeze_(model, cfg, 0) == {"bn": False, "observers": False}
    m0, h0 = state()
    model.train()(x)
    m1, h1 = state()
    assert not torch.equal(m0, m1) and not torch.equal(h0, h1)  # both still follow the data
    assert freeze_(model, cfg, 1) == {"bn": True, "observers": True}
    model.train()(x * 3)
    m2, h2 = state()
    assert torch.equal(m1, m2) and torch.equal(h1, h2)


def test_8_bit_weights_are_coded_in_7_bits_where_int8_pairs_saturate(monkeypatch):
    """As PTQ does on x86 without VNNI; the choice is stored in the config and replays."""
    from edgeslim.core.configs import from_json, to_json
    from edgeslim.quant.qat import common
    from edgeslim.quant.qat.learned_bits import LearnedBitsConfig

    monkeypatch.setattr(common, "int8_pairs_saturate", lambda: True)
    cfg = CONFIGS["lsq"](w_bits=8, a_bits=8)
    assert (cfg.w_bits, cfg.reduce_range) == (7, True)
    assert CONFIGS["lsq"](w_bits=4).w_bits == 4  # below 8 bits nothing saturates
    assert CONFIGS["lsq"](w_bits=8, reduce_range=False).w_bits == 8  # the user's choice
    assert LearnedBitsConfig().max_bits == 7
    monkeypatch.setattr(common, "int8_pairs_saturate", lambda: False)
    back = from_json(type(cfg), to_json(cfg))  # another CPU replays the stored choice
    assert (back.w_bits, back.reduce_range) == (7, True)
    assert CONFIGS["lsq"](w_bits=8).w_bits == 8


def test_a_record_saved_before_reduce_range_replays_full_range(monkeypatch):
    """Records written before the field existed were applied with full-range weights: on a
    CPU without VNNI they must not turn into 7-bit ones when a saved model reloads."""
    from edgeslim.core.methods import Record
    from edgeslim.quant.qat import common

    monkeypatch.setattr(common, "int8_pairs_saturate", lambda: True)
    calib = [torch.randn(4, 3, 8, 8)]
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 2))
    _, rec = apply(net, CONFIGS["lsq"](w_bits=8, a_bits=8, reduce_range=False), calib=calib)
    old = rec.to_dict()
    old["config"].pop("reduce_range")
    for c in old["layer_configs"]:
        c.pop("reduce_range")
    back = Record.from_dict(old)
    assert (back.config.w_bits, back.config.reduce_range) == (8, False)
    assert all(c.w_bits == 8 for c in back.layers.values())
    new = Record.from_dict(rec.to_dict())  # a record that has the key keeps its value
    assert new.config.reduce_range is False and new.config.w_bits == 8
