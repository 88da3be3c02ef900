"""Iterative prune -> fine-tune with the shared trainer, and its distillation hook."""

import numpy as np
import torch

from edgeslim.bench.macs import count_macs
from edgeslim.data.arrays import ArrayDataset
from edgeslim.models import build_zoo_model
from edgeslim.prune import PruneConfig
from edgeslim.prune.schedule import prune_finetune
from edgeslim.train.config import TrainConfig
from edgeslim.train.trainer import cross_entropy


def _images(n: int, seed: int) -> ArrayDataset:
    """``n`` random 32x32 RGB images with 10 random labels."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, (n, 32, 32, 3), dtype=np.uint8)
    return ArrayDataset(img, rng.integers(0, 10, n), (0.5,) * 3, (0.25,) * 3)


def test_rounds_reach_the_macs_target_and_call_the_loss_hook():
    ds = _images(32, seed=0)
    model = build_zoo_model("resnet20_half").eval()
    x = torch.randn(1, 3, 32, 32)
    macs0 = count_macs(model, x)[0]
    calls = []
    base = cross_entropy()

    def distill_like(student, xb, yb):  # where a teacher's loss would plug in
        calls.append(xb.shape[0])
        return base(student, xb, yb)

    pruned, log = prune_finetune(
        model,
        x,
        PruneConfig(target_macs=macs0 // 2, criterion="taylor", global_ranking=True),
        TrainConfig(epochs=1, batch_size=16, lr=0.01),
        ds,
        steps=2,
        objective=lambda m: distill_like,
        progress=False,
    )
    assert [r["round"] for r in log] == [1, 2]
    assert log[0]["macs"] > log[1]["macs"] and count_macs(pruned, x)[0] <= macs0 // 2
    assert len(calls) == 4  # 2 rounds x 1 epoch x 2 batches
    assert count_macs(model, x)[0] == macs0  # the input is not modified


def test_a_feature_distiller_is_rebuilt_for_each_rounds_widths():
    from edgeslim.distill.distiller import Distiller
    from edgeslim.distill.losses import LossSpec

    ds = _images(16, seed=1)
    teacher = build_zoo_model("resnet20_half").eval()
    x = torch.randn(1, 3, 32, 32)
    built = []

    def objective(student):
        d = Distiller.build(student, [teacher], "kd+feature", LossSpec(), torch.randn(2, 3, 32, 32))
        built.append(sum(p.numel() for p in d.parameters()))
        return d

    pruned, log = prune_finetune(
        teacher,
        x,
        PruneConfig(ratio=0.5),
        TrainConfig(epochs=1, batch_size=16, lr=0.01),
        ds,
        steps=2,
        objective=objective,
        progress=False,
    )
    assert len(built) == 2 and built[0] != built[1]  # adapters sized to each round's widths
    assert count_macs(pruned, x)[0] < count_macs(teacher, x)[0]
