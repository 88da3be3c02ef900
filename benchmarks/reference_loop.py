"""A plain PyTorch training loop: the reference that ``edgeslim train`` must match.

SGD with Nesterov momentum, a one-cycle schedule with warm-up (Smith & Topin, 2019,
"Super-Convergence"), the dataset's own per-channel mean/std, a 4 px padded random crop.
Nothing from edgeslim but the zoo model, so the two runs train the same architecture.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from edgeslim.models.spec import load_model


def reference_train(
    npz: str, epochs: int, seed: int = 0, lr: float = 0.1, bs: int = 128, verbose: bool = False
) -> dict:
    """Train zoo ``resnet20`` on ``npz`` (uint8 N,H,W,C); return test top-1 and val history."""
    torch.manual_seed(seed)
    z = np.load(npz)
    splits = ("train", "val", "test")
    x = {s: torch.from_numpy(z[f"x_{s}"]).permute(0, 3, 1, 2).float() / 255 for s in splits}
    y = {s: torch.from_numpy(z[f"y_{s}"]).long() for s in splits}
    mean = x["train"].mean((0, 2, 3), keepdim=True)
    std = x["train"].std((0, 2, 3), keepdim=True)
    x = {s: (v - mean) / std for s, v in x.items()}
    model = load_model("resnet20", num_classes=int(y["train"].max()) + 1).model
    decay = [p for p in model.parameters() if p.dim() > 1]
    rest = [p for p in model.parameters() if p.dim() <= 1]
    opt = torch.optim.SGD(
        [{"params": decay, "weight_decay": 5e-4}, {"params": rest, "weight_decay": 0}],
        lr=lr, momentum=0.9, nesterov=True,
    )  # fmt: skip
    steps = -(-len(y["train"]) // bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=epochs * steps, pct_start=0.15)

    def top1(split: str) -> float:
        model.eval()
        with torch.no_grad():
            pred = torch.cat([model(b).argmax(1) for b in x[split].split(256)])
        return float((pred == y[split]).float().mean())

    history = []
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(y["train"])).split(bs):
            xb = F.pad(x["train"][idx], (4, 4, 4, 4))  # random 32x32 crop of the padded batch
            i, j = torch.randint(0, 9, (2,)).tolist()
            xb = xb[:, :, i : i + 32, j : j + 32]
            loss = F.cross_entropy(model(xb), y["train"][idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        history.append(top1("val"))
        if verbose:
            print(f"epoch {len(history)} val {100 * history[-1]:.1f}% loss {loss.item():.3f}")
    return {"test_top1": top1("test"), "val_top1": history}
