"""FastBERT end to end: fine-tune, self-distil the branches, export the exit segments, measure.

The two training stages of Liu et al. (ACL 2020), both on the one
:class:`~edgeslim.train.trainer.Trainer`:

1. fine-tune the backbone and its final classifier on the labels (optional: skip it
   for a model that is already trained);
2. freeze the backbone and train a branch classifier on every layer but the last
   by self-distillation from the final classifier (the ``fastbert`` loss, or
   ``fastbert-attn`` with the paper's attention branch; no labels).
   The Trainer runs the model in train mode, so the frozen backbone's dropout stays on
   while the branches learn (its weights do not change).

Then :func:`measure_fastbert` exports one ONNX graph per exit point (run in
sequence by :class:`~edgeslim.export.early_exit.EarlyExitRunner`), checks it
against eager PyTorch and against the whole model as one ONNX graph, and times
every test sample at several thresholds (:mod:`edgeslim.bench.early_exit`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from edgeslim.bench.early_exit import (
    PLOT_TITLE,
    exit_stages,
    exit_sweep,
    exit_table,
    ort_callable,
)
from edgeslim.core.atomic import atomic_path, write_text_atomic
from edgeslim.core.errors import EdgeslimError
from edgeslim.data import dataset_info, load_dataset, make_loader
from edgeslim.distill.distiller import Distiller
from edgeslim.distill.fastbert import branch_parity, export_fastbert
from edgeslim.distill.losses import LossSpec
from edgeslim.export.early_exit import EarlyExitRunner
from edgeslim.export.onnx import export_onnx
from edgeslim.export.ort import ort_session
from edgeslim.models.spec import LoadedModel
from edgeslim.train.config import TrainConfig
from edgeslim.train.trainer import Trainer

BRANCHES = {"cls": "fastbert", "attn": "fastbert-attn"}  # branch kind -> loss name
THRESHOLDS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8)


@dataclass
class FastBERTResult:
    """The model (weights in place), its trained branches and both stages' histories."""

    model: LoadedModel
    distiller: Distiller  # ``distiller.losses[0]`` holds the branches
    history: dict[str, list[dict]] = field(default_factory=dict)

    @property
    def branches(self) -> torch.nn.Module:
        return self.distiller.losses[0]


def train_fastbert(
    lm: LoadedModel,
    data: str,
    branch_config: TrainConfig,
    *,
    finetune: TrainConfig | None = None,
    temperature: float = 1.0,
    branch: str = "attn",
    progress: bool = True,
) -> FastBERTResult:
    """FastBERT's two training stages on ``data``; ``lm.model`` is fine-tuned in place.

    Args:
        lm: an ``hf:`` BERT classifier (trained already, or pass ``finetune``).
        data: dataset spec (``synthtext``, ...).
        branch_config: the self-distillation run (the backbone is frozen meanwhile).
        finetune: stage 1, the backbone + final classifier on the labels; None skips it.
        temperature: of the branch KL (the paper: 1).
        branch: ``attn`` (the paper's student classifier: a 2-head self-attention over
            every token; the default) or ``cls`` (a bottleneck + classifier on [CLS] alone).
            On textlogic the attention branches reached 2.02x at -0.2 points, the [CLS]
            ones 1.67x at -0.9 (``benchmarks/results/fastbert_*.md``).

    Example:
        >>> # r = train_fastbert(load_model("hf:bert.json", num_classes=4), "synthtext",
        >>> #                    TrainConfig(epochs=3, optimizer="adamw", lr=1e-3),
        >>> #                    finetune=TrainConfig(epochs=6, optimizer="adamw", lr=1e-3))
    """
    if branch not in BRANCHES:
        raise EdgeslimError(f"FastBERT branch must be one of {sorted(BRANCHES)}, got {branch!r}")
    task = dataset_info(data).task
    train, val = load_dataset(data, "train"), load_dataset(data, "val")
    history: dict[str, list[dict]] = {}
    if finetune is not None:
        history["finetune"] = Trainer(lm.model, finetune, progress=progress, task=task).fit(
            train, val
        )
    example = next(iter(make_loader(val, 8, shuffle=False)))[0]
    trainable = [p for p in lm.model.parameters() if p.requires_grad]
    try:
        for p in trainable:  # stage 2 trains the branches only
            p.requires_grad_(False)
        spec = LossSpec(temperature=temperature)
        distiller = Distiller.build(lm.model, [], BRANCHES[branch], spec, example, task)
        # no validation: the final classifier, which it would score, does not change
        trainer = Trainer(
            lm.model,
            branch_config,
            loss_fn=distiller,
            extra=distiller,
            progress=progress,
            task=task,
        )
        history["branches"] = trainer.fit(train)
    finally:
        for p in trainable:
            p.requires_grad_(True)
    lm.model.eval()
    return FastBERTResult(lm, distiller, history)


def test_arrays(data: str, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The test split as ``(tokens (N, length) int64, labels (N,))``."""
    xs, ys = [], []
    for x, y in make_loader(load_dataset(data, "test"), 256, shuffle=False):
        xs.append(x.numpy())
        ys.append(np.asarray(y))
    x, y = np.concatenate(xs), np.concatenate(ys)
    return (x[:limit], y[:limit]) if limit else (x, y)


def measure_fastbert(
    result: FastBERTResult,
    data: str,
    out_dir: str | Path,
    thresholds: Sequence[float] = THRESHOLDS,
    *,
    threshold: float = 0.3,
    repeats: int = 3,
    threads: int = 1,
    limit: int | None = None,
) -> dict:
    """Export the segments and the whole model, check parity, time the thresholds per sample.

    Writes ``out_dir/earlyexit/`` (the deployable segments + manifest), ``out_dir/full.onnx``
    (the baseline) and returns the report (``parity`` and ``sweep``).
    """
    lm, out_dir = result.model, Path(out_dir)
    spec = lm.require_input()
    exit_dir = export_fastbert(
        lm.model, result.branches, spec, out_dir / "earlyexit",
        threshold=threshold, thresholds=thresholds,
    )  # fmt: skip
    full_path = export_onnx(lm.model, spec, out_dir / "full.onnx").path
    x, y = test_arrays(data, limit)
    if x.shape[1:] != spec.shape[1:]:
        raise EdgeslimError(f"{data} test inputs are {x.shape[1:]}, the model takes {spec.shape}")
    full = ort_session(full_path, threads)
    runner = EarlyExitRunner(exit_dir, threads)
    check = x[:64]
    chain = runner(check, 0.0)
    whole = full.run(None, {full.get_inputs()[0].name: check})[0]
    eager = branch_parity(lm.model, result.branches, exit_dir, torch.from_numpy(check))
    parity = {
        "segmented_t0_vs_full_onnx": float(abs(chain.logits - whole).max()),
        **{f"{k}_ort_vs_eager": v for k, v in eager.items()},
    }
    never_left = bool((chain.exits == runner.layers - 1).all())
    if parity["segmented_t0_vs_full_onnx"] > 1e-4 or not never_left:
        raise EdgeslimError(f"the segmented model does not match the full one: {parity}")
    sweep = exit_sweep(runner, ort_callable(full), x, y, thresholds, repeats=repeats)
    return {"parity": parity, "threads": threads, "sweep": sweep}


def write_fastbert_report(report: dict, out_dir: str | Path, title: str = "FastBERT") -> list[Path]:
    """``report.json``, ``report.md`` (table) and ``accuracy_latency.png`` in ``out_dir``."""
    from edgeslim.bench.report.plots import accuracy_vs_latency

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [write_text_atomic(out_dir / "report.json", json.dumps(report, indent=2) + "\n")]
    md = [f"# {title}", "", exit_table(report["sweep"]), ""]
    paths.append(write_text_atomic(out_dir / "report.md", "\n".join(md)))
    png = accuracy_vs_latency(exit_stages(report["sweep"]), batch="1", title=PLOT_TITLE)
    if png is not None:
        with atomic_path(out_dir / "accuracy_latency.png") as tmp:
            tmp.write_bytes(png)
        paths.append(out_dir / "accuracy_latency.png")
    return paths
