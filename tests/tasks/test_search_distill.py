"""Search sensitivity and distillation go through the task (checked on segmentation)."""

import math
from pathlib import Path

import torch
import torch.nn.functional as F

from edgeslim.distill.distiller import Distiller
from edgeslim.distill.losses import LossSpec
from edgeslim.models import build_zoo_model
from edgeslim.prune.config import PruneConfig
from edgeslim.search.candidates import CandidateConfig, damage, measure_candidates
from edgeslim.search.deploy import Deployment
from edgeslim.tasks import MeanIoU


def _batches(n=2, b=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(b, 3, 32, 32, generator=g), torch.randint(0, 4, (b, 32, 32), generator=g))
        for _ in range(n)
    ]


def test_damage_is_the_task_loss_and_primary_metric():
    torch.manual_seed(0)
    model = build_zoo_model("seg_tiny").eval()
    batches = _batches()
    loss, miou = damage(model, batches, "segmentation")
    with torch.no_grad():
        outs = [model(x) for x, _ in batches]
    ref = MeanIoU()
    for o, (_, y) in zip(outs, batches, strict=True):
        ref.update(o, y)
    want = sum(float(F.cross_entropy(o, y)) for o, (_, y) in zip(outs, batches, strict=True)) / 2
    assert math.isclose(loss, want, rel_tol=1e-5) and math.isclose(miou, ref.compute())


def test_sensitivity_scan_runs_on_a_segmentation_model(tmp_path: Path):
    torch.manual_seed(0)
    model = build_zoo_model("seg_tiny")
    cfg = CandidateConfig(
        (0.0, 0.5), PruneConfig(ratio=0.0), frozenset({"macs"}), 0, task="segmentation"
    )
    example = torch.randn(2, 3, 32, 32)
    from edgeslim.models.inputs import InputSpec
    from edgeslim.quant.config import PTQConfig

    deploy = Deployment(InputSpec((1, 3, 32, 32)), False, PTQConfig(), (), batch=1)
    c = measure_candidates(model, example, cfg, _batches(), deploy, tmp_path, progress=False)
    assert c.table and all(r["macs"] <= 0 for r in c.table)
    assert 0.0 <= c.dense["top1"] <= 1.0  # the primary metric: mIoU here
    assert any(r["loss"] != 0.0 for r in c.table if r["ratio"] > 0)


def test_distiller_uses_the_task_for_kd_and_hard_labels():
    torch.manual_seed(0)
    s, t = build_zoo_model("seg_tiny"), build_zoo_model("seg_tiny")
    ((x, y),) = _batches(1)
    kd = Distiller.build(s, [t], "kd", LossSpec(temperature=2.0, alpha=0.5), x, "segmentation")
    loss, out = kd(s, x, y)
    with torch.no_grad():
        zt = t.eval()(x)
    from edgeslim.tasks import get_task

    want = get_task("segmentation").distill(out, zt, y, 2.0, 0.5)
    assert out.shape == (4, 4, 32, 32) and torch.allclose(loss, want, atol=1e-5)
    loss.backward()
    spec = LossSpec(layers=(("dec", "dec"),))
    feat = Distiller.build(s, [t], "feature", spec, x, "segmentation")
    assert feat.add_ce and feat.task.name == "segmentation"
    assert torch.isfinite(feat(s, x, y)[0])
