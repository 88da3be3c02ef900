"""Run by ``torchrun`` from test_ddp.py (and imported by it for the 1-process reference).

A plain MLP (no BatchNorm, no dropout: their per-process statistics and masks are the
only legitimate differences between 1 and 2 processes) trained by the unchanged Trainer.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import TensorDataset

from edgeslim.train.config import TrainConfig
from edgeslim.train.trainer import Trainer

CFG = TrainConfig(epochs=3, batch_size=16, lr=0.05, augment=False, grad_clip=5.0)


def data(n: int = 96, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    return TensorDataset(x, y)


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))


def train(ckpt_dir: Path) -> tuple[nn.Module, list[dict]]:
    m = model()
    hist = Trainer(m, CFG, ckpt_dir=ckpt_dir, progress=False).fit(data(), data(40, seed=1))
    return m, hist


def distill() -> tuple[nn.Module, nn.Module]:
    """KD + FitNets hint from a wider teacher: the adapter lives in ``extra`` and must be
    averaged across processes like the student's own weights."""
    from edgeslim.distill.distiller import Distiller
    from edgeslim.distill.losses import LossSpec

    torch.manual_seed(1)
    teacher = nn.Sequential(nn.Linear(8, 48), nn.ReLU(), nn.Linear(48, 2))
    student = model()
    spec = LossSpec(beta=1.0, layers=(("1", "1"),))
    d = Distiller.build(student, [teacher], "kd+feature", spec, data(4)[:][0])
    Trainer(student, CFG, loss_fn=d, extra=d, progress=False).fit(data())
    return student, d


if __name__ == "__main__":
    torch.set_num_threads(1)
    out = Path(sys.argv[1])
    m, hist = train(out / "ckpt")
    import os

    rank = int(os.environ["RANK"])
    s, d = distill()
    torch.save(
        {
            "state": m.state_dict(),
            "history": hist,
            "student": s.state_dict(),
            "extra": d.state_dict(),
        },
        out / f"rank{rank}.pt",
    )
    from edgeslim.train.distributed import shutdown

    shutdown()
