"""Numerical faults get a clear error or a documented, logged fallback (issue 17).

- NaN/Inf in weights, example inputs or calibration batches: EdgeslimError naming them;
- a training loss that diverges stops with a message, and the checkpoint on disk is
  the last good epoch (never NaN weights);
- a quantizer that sees only zeros (zero range) gets scale 1.0 with a warning;
- an all-zero filter (or layer) in pruning: every criterion still scores finitely, and
  the norm criteria remove the dead filter first.
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import TensorDataset

from edgeslim.core import EdgeslimError
from edgeslim.prune.config import PruneConfig
from edgeslim.prune.criteria import CRITERIA
from edgeslim.prune.structured import prune
from edgeslim.quant.config import PTQConfig
from edgeslim.quant.fake_quant import fake_quantizers
from edgeslim.quant.ptq import quantize_ptq
from edgeslim.train.checkpoint import WEIGHTS, load_checkpoint
from edgeslim.train.config import TrainConfig
from edgeslim.train.trainer import Trainer


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 4),
    ).eval()


def _batches(n=2, nan=False):
    g = torch.Generator().manual_seed(1)
    xs = [torch.randn(4, 3, 8, 8, generator=g) for _ in range(n)]
    if nan:
        xs[-1][0, 0, 0, 0] = float("nan")
    return xs


# ---- NaN / Inf in weights and inputs --------------------------------------------------


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_quantize_refuses_nonfinite_weights(value):
    m = _net()
    with torch.no_grad():
        m[3].weight[0, 0, 0, 0] = value
    with pytest.raises(EdgeslimError, match=r"model to quantize: weight '3.weight' holds 1 NaN"):
        quantize_ptq(m, _batches(), PTQConfig(calib_batches=2), progress=False)


def test_quantize_refuses_a_nan_calibration_batch():
    with pytest.raises(EdgeslimError, match="calibration batch 2 holds 1 NaN or Inf"):
        quantize_ptq(_net(), _batches(nan=True), PTQConfig(calib_batches=2), progress=False)


def test_quantize_refuses_activations_that_overflow():
    m = _net()
    with torch.no_grad():
        m[3].weight.fill_(3e38)  # finite weights, infinite activations
    with pytest.raises(EdgeslimError, match="reached NaN or Inf during calibration"):
        quantize_ptq(m, _batches(), PTQConfig(calib_batches=2), progress=False)


@pytest.mark.parametrize("where", ["weight", "example"])
def test_prune_refuses_nonfinite(where):
    m, x = _net(), torch.randn(1, 3, 8, 8)
    if where == "weight":
        with torch.no_grad():
            m[0].weight[1].fill_(float("nan"))
    else:
        x[0, 0, 0, 0] = float("inf")
    with pytest.raises(EdgeslimError, match="NaN or Inf"):
        prune(m, x, PruneConfig(ratio=0.5))


# ---- zero-range activations in quantization --------------------------------------------


def test_constant_zero_activation_gets_scale_one_with_a_warning():
    m = _net()
    with torch.no_grad():  # the first ReLU only ever sees negatives: its output is all 0
        m[0].weight.abs_().neg_()
        m[0].bias.fill_(-1.0)
        m[1].weight.fill_(1.0)
        m[1].bias.fill_(-1.0)
    pos = [x.abs() for x in _batches()]
    with pytest.warns(UserWarning, match="zero range"):
        qm = quantize_ptq(m, pos, PTQConfig(calib_batches=2), progress=False)
    scales = [float(fq.scale.min()) for _, fq in fake_quantizers(qm.model) if fq.observer.observed]
    assert min(scales) > 1e-6  # never the 1e-12 floor that crushes later values to 0
    assert 1.0 in scales
    out = qm.model(torch.randn(2, 3, 8, 8))
    assert torch.isfinite(out).all()


# ---- all-zero filters in pruning -------------------------------------------------------


FAST_CASES = {("filter", "l1"), ("filter", "l2"), ("filter", "taylor"), ("layer", "fpgm")}


@pytest.mark.parametrize(
    "dead, criterion",
    [
        pytest.param(d, c, marks=() if (d, c) in FAST_CASES else pytest.mark.slow)
        for d in ("filter", "layer")
        for c in CRITERIA.names()
    ],
)
def test_all_zero_filter_prunes_with_every_criterion(criterion, dead):
    m, x = _net(), torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        rows = slice(None) if dead == "layer" else 5
        m[3].weight[rows].zero_()
        m[3].bias[rows] = 0.0
    data = [(xb, torch.randint(0, 4, (4,))) for xb in _batches()]
    res = prune(m, x, PruneConfig(ratio=0.5, criterion=criterion), data)
    assert res.model[3].out_channels == 4
    assert torch.isfinite(res.model(x)).all()
    assert res.max_abs_diff is not None and res.max_abs_diff < 1e-4  # equals the masked model
    if dead == "filter" and criterion in ("l1", "l2"):
        removed = {u for units in res.plan.values() for u in units}
        assert any(5 in (u if isinstance(u, tuple | list) else (u,)) for u in removed)


# ---- a diverging training run ----------------------------------------------------------


def _data(n=32):
    g = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randn(n, 3, 8, 8, generator=g), torch.randint(0, 4, (n,)))


def _fit(ckpt, loss_fn, epochs=3, batch_size=16):
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=0.01, augment=False)
    return Trainer(_net(), cfg, loss_fn=loss_fn, ckpt_dir=ckpt, progress=False).fit(_data())


def _ce(model, x, y):
    out = model(x)
    return nn.functional.cross_entropy(out, y), out


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    calls = {"n": 0}

    def loss_nan_in_epoch_2(model, x, y):
        calls["n"] += 1
        loss, out = _ce(model, x, y)
        return (loss * float("nan") if calls["n"] == 3 else loss), out

    with pytest.raises(EdgeslimError) as e:
        _fit(tmp_path, loss_nan_in_epoch_2)
    msg = str(e.value)
    assert (
        "training diverged: loss is nan at epoch 2 step 0" in msg
        and "lower the learning rate" in msg
    )
    assert f"last good checkpoint (epoch 1) is kept in {tmp_path}" in msg and "\n" not in msg
    state = load_checkpoint(tmp_path, _net().train())
    assert state is not None and state["epoch"] == 0
    assert all(torch.isfinite(t).all() for t in load_file(tmp_path / WEIGHTS).values())


def test_weights_that_turn_nan_are_never_checkpointed(tmp_path):
    calls = {"n": 0}

    def finite_loss_nan_grads(model, x, y):
        calls["n"] += 1
        loss, out = _ce(model, x, y)
        if calls["n"] == 2:  # sqrt(0) has an infinite slope: 0 * inf = NaN gradients
            loss = loss + torch.sqrt(sum((p * 0).sum() for p in model.parameters()))
        return loss, out

    with pytest.raises(
        EdgeslimError, match="training diverged: weights became NaN or Inf at epoch 2"
    ) as e:
        _fit(tmp_path, finite_loss_nan_grads, batch_size=32)  # one step per epoch
    assert "last good checkpoint (epoch 1)" in str(e.value)
    state = load_checkpoint(tmp_path, _net().train())
    assert state["epoch"] == 0
    assert all(torch.isfinite(t).all() for t in load_file(tmp_path / WEIGHTS).values())


def test_nan_inputs_are_blamed_on_the_data(tmp_path):
    def nan_input(model, x, y):
        return _ce(model, x.clone().fill_(float("nan")), y)

    ds = _data()
    ds.tensors[0][0, 0, 0, 0] = float("nan")

    cfg = TrainConfig(epochs=1, batch_size=64, lr=0.01, augment=False)
    with pytest.raises(EdgeslimError, match="input batch holds NaN or Inf; check the data"):
        Trainer(_net(), cfg, progress=False).fit(ds)
