"""Warm-up by default: a linear ramp to the peak rate, then the schedule over the rest."""

import pytest

from edgeslim.core.errors import EdgeslimError
from edgeslim.train.config import TrainConfig
from edgeslim.train.schedule import lr_at, warmup_steps


def test_default_warmup_is_15_percent_of_the_run_capped_at_three_epochs():
    assert TrainConfig().warmup_epochs is None
    assert warmup_steps(None, steps_per_epoch=32, total_steps=15 * 32) == 72
    assert warmup_steps(None, steps_per_epoch=32, total_steps=200 * 32) == 96
    assert warmup_steps(None, steps_per_epoch=10, total_steps=10) == 1
    assert warmup_steps(0, 32, 480) == 0
    assert warmup_steps(1.5, 32, 480) == 48
    assert warmup_steps(100.0, 32, 480) == 480  # never longer than the run


def test_warmup_values_then_cosine():
    total, warm, peak = 100, 10, 0.2
    lrs = [lr_at(s, total, peak, "cosine", warm) for s in range(total)]
    assert lrs[:warm] == pytest.approx([peak * (s + 1) / warm for s in range(warm)])
    assert lrs[warm - 1] == pytest.approx(peak)  # the ramp ends on the peak
    assert lrs[warm] == pytest.approx(peak)  # the cosine starts there
    assert lrs[warm + 45] == pytest.approx(peak / 2)  # half-way through the decay
    assert all(a >= b for a, b in zip(lrs[warm:], lrs[warm + 1 :], strict=False))
    assert lr_at(total, total, peak, "cosine", warm) == pytest.approx(0.0)


def test_warmup_then_step_and_constant():
    assert lr_at(4, 100, 0.1, "step", 10) == pytest.approx(0.05)
    assert lr_at(10 + 45, 100, 0.1, "step", 10) == pytest.approx(0.01)
    assert lr_at(50, 100, 0.1, "constant", 10) == pytest.approx(0.1)


def test_trainer_applies_the_warmup():
    import torch
    from torch import nn
    from torch.utils.data import TensorDataset

    from edgeslim.train.trainer import Trainer

    seen = []

    def loss_fn(model, x, y):
        logits = model(x)
        return nn.functional.cross_entropy(logits, y), logits

    torch.manual_seed(0)
    ds = TensorDataset(torch.randn(40, 4), torch.randint(0, 2, (40,)))
    model = nn.Linear(4, 2)
    cfg = TrainConfig(epochs=2, batch_size=10, lr=0.4, warmup_epochs=1.0, augment=False)
    trainer = Trainer(model, cfg, loss_fn=loss_fn, progress=False)
    real = trainer._optimizer

    def spy():
        opt = real()
        step = opt.step

        def record(*a, **k):
            seen.append(opt.param_groups[0]["lr"])
            return step(*a, **k)

        opt.step = record
        return opt

    trainer._optimizer = spy
    trainer.fit(ds)
    assert seen[:4] == pytest.approx([0.1, 0.2, 0.3, 0.4])  # epoch 1: the ramp
    assert seen[4] == pytest.approx(0.4) and seen[-1] < 0.4  # epoch 2: cosine from the peak


@pytest.mark.parametrize("bad", [{"warmup_epochs": -1.0}, {"lr": "fast"}, {"lr": 0}])
def test_bad_warmup_or_lr(bad):
    with pytest.raises(EdgeslimError):
        TrainConfig(**bad)
