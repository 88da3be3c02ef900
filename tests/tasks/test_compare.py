"""Each task's parity check flags a perturbed model; its KD loss matches the reference."""

import copy

import pytest
import torch
from torch import nn

from edgeslim.distill.losses.kd import kd_loss
from edgeslim.tasks import get_task
from edgeslim.tasks.compare import class_rows


class _TokenClassifier(nn.Module):
    """A BERT stand-in: keyword arguments in, ``(batch, classes)`` logits out."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.EmbeddingBag(50, 16, mode="sum")
        self.head = nn.Linear(16, 4)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.emb(input_ids, per_sample_weights=attention_mask.float()))


def _case(task: str):
    torch.manual_seed(0)
    if task == "classification":
        model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))
        return model, torch.randn(64, 3, 8, 8)
    if task == "sequence_classification":
        ids = torch.randint(0, 50, (64, 12))
        return _TokenClassifier(), {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    return nn.Conv2d(3, 4, 3, padding=1), torch.randn(8, 3, 8, 8)


def _perturbed(model: nn.Module, scale: float) -> nn.Module:
    twin = copy.deepcopy(model)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in twin.parameters():
            p.add_(scale * p.abs().mean() * torch.randn(p.shape, generator=g))
    return twin


@pytest.mark.parametrize("task", ["classification", "sequence_classification", "segmentation"])
def test_parity_passes_a_twin_and_flags_a_perturbed_model(task):
    t = get_task(task)
    model, x = _case(task)
    with torch.no_grad():
        ref = t.forward(model, x)
        t.check_output(ref, x, None)
        same = t.forward(copy.deepcopy(model), x)
        slight = t.forward(_perturbed(model, 1e-2), x)
        heavy = t.forward(_perturbed(model, 2.0), x)

    def verdict(out, lossy):
        meter = t.parity.meter(lossy)
        meter.update(ref[: len(ref) // 2], out[: len(out) // 2])  # two batches
        meter.update(ref[len(ref) // 2 :], out[len(out) // 2 :])
        return meter.result()

    assert verdict(same, lossy=False)["ok"] and verdict(same, lossy=True)["ok"]
    assert verdict(same, lossy=False)[t.parity.measure] == 1.0
    assert not verdict(slight, lossy=False)["ok"]  # exact twins: any real drift is flagged
    bad = verdict(heavy, lossy=True)
    assert not bad["ok"] and bad[t.parity.measure] < t.parity.min_agreement


def test_classification_kd_is_hinton_kd():
    g = torch.Generator().manual_seed(0)
    zs, zt = torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g)
    y = torch.randint(0, 5, (8,), generator=g)
    got = get_task("classification").distill(zs, zt, y, 3.0, 0.7)
    assert torch.allclose(got, kd_loss(zs, zt, y, 3.0, 0.7))


def test_segmentation_kd_is_kd_at_every_pixel():
    g = torch.Generator().manual_seed(0)
    zs, zt = torch.randn(2, 4, 3, 5, generator=g), torch.randn(2, 4, 3, 5, generator=g)
    y = torch.randint(0, 4, (2, 3, 5), generator=g)
    got = get_task("segmentation").distill(zs, zt, y, 2.0, 0.5)
    want = kd_loss(class_rows(zs), class_rows(zt), y.reshape(-1), 2.0, 0.5)
    assert torch.allclose(got, want, atol=1e-6)
