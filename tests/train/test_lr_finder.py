"""The LR range test picks a rate that trains, and leaves the caller's model and RNG alone."""

import math

import torch
from torch import nn
from torch.utils.data import TensorDataset

from edgeslim.train.config import TrainConfig
from edgeslim.train.lr_finder import _read, find_lr
from edgeslim.train.trainer import Trainer


def _data(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 10, generator=g)
    y = (x[:, :3].sum(1) > 0).long() + 2 * (x[:, 3] > 0).long()
    return TensorDataset(x, y)


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(10, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 4))


def test_range_test_suggests_a_sane_rate_and_touches_nothing():
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    cfg = TrainConfig(epochs=1, batch_size=32, lr="auto", augment=False)
    r = find_lr(model, _data(), cfg, num_steps=80)
    assert 1e-3 <= r.suggestion <= 1.0, r
    assert r.suggestion == r.min_loss_lr / 10
    assert min(r.losses) < r.losses[0]  # the sweep found a rate that learns
    assert all(a < b for a, b in zip(r.lrs, r.lrs[1:], strict=False))  # exponential sweep
    assert math.isclose(r.lrs[1] / r.lrs[0], r.lrs[2] / r.lrs[1], rel_tol=1e-9)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0, msg=k)
    assert torch.equal(torch.get_rng_state(), rng)


def test_lr_auto_trains_and_is_reported():
    cfg = TrainConfig(epochs=4, batch_size=32, lr="auto", augment=False)
    trainer = Trainer(_model(), cfg, progress=False)
    hist = trainer.fit(_data(), _data(128, seed=1))
    assert trainer.lr_range is not None and trainer.config.lr == trainer.lr_range.suggestion
    assert hist[-1]["val_top1"] > 0.7


def test_reading_a_known_curve():
    lrs = [10 ** (-5 + i * 0.1) for i in range(60)]  # 1e-5 .. ~8
    # flat, a steep fall around 1e-3, a minimum at 1e-1, then divergence
    losses = [2.0 - 1.5 / (1 + math.exp(-4 * (math.log10(lr) + 3))) for lr in lrs]
    losses = [
        v + (0.0 if lr <= 0.1 else 5 * (math.log10(lr) + 1))
        for v, lr in zip(losses, lrs, strict=True)
    ]
    r = _read(lrs, losses)
    assert math.isclose(r.min_loss_lr, 0.1, rel_tol=0.05)
    assert math.isclose(r.suggestion, 0.01, rel_tol=0.05)
    assert 3e-4 < r.steepest_lr < 3e-3


def test_range_test_uses_the_task():
    """Segmentation batches (per-pixel masks) go through the task's loss."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, 8, 8, generator=g)
    masks = (x[:, 0] > 0).long()  # class 1 where the first channel is positive
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 1), nn.ReLU(), nn.Conv2d(8, 2, 1))
    cfg = TrainConfig(epochs=1, batch_size=16, lr="auto", augment=False)
    r = find_lr(model, TensorDataset(x, masks), cfg, task="segmentation", num_steps=40)
    assert min(r.losses) < r.losses[0]
