"""The job behind ``edgeslim sparsify``: mask, fine-tune (AGP for ``agp``), measure, store.

Stages measured side by side (:func:`edgeslim.workflows.measure.measure_stages`):
the dense input, the one-shot sparse model (not for ``agp``, which starts dense)
and the fine-tuned one. The directory gets the saved model with its masks (it
reloads by replaying the sparsity method), ``model.onnx`` (dense: ONNX Runtime
stores and runs zeros like any weight), the compressed archive
``weights.esz`` (:mod:`edgeslim.sparsity.archive`) and ``report.json``.

No speed is claimed: ONNX Runtime on CPU densifies sparse weights at load and has
no sparse kernels (onnxruntime #5578, #2121), so these models are smaller on
disk only; the report says so (``speedup_claimed: false``).
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from torch import nn

from edgeslim.bench.stages import format_stages
from edgeslim.core.atomic import write_text_atomic
from edgeslim.core.configs import to_json
from edgeslim.core.errors import EdgeslimError
from edgeslim.distill.losses import LossSpec
from edgeslim.models.saved import save_model
from edgeslim.models.spec import LoadedModel
from edgeslim.sparsity import (
    AGPSchedule,
    MagnitudeConfig,
    NMConfig,
    RTossConfig,
    SharedPatternConfig,
    Sparsifier,
    SparsityConfig,
    TaylorConfig,
    masked_layers,
    sparsity_of,
    squashed,
)
from edgeslim.sparsity.archive import save_archive
from edgeslim.train.config import TrainConfig
from edgeslim.workflows.measure import Stage, measure_stages

METHODS = ("magnitude", "taylor", "agp", "nm", "rtoss-3ep", "rtoss-2ep", "patterns")
PATTERN_GROUPS = 4  # filter groups per conv of --method patterns
NO_SPEEDUP = (
    "no speed gain is claimed: ONNX Runtime on CPU stores sparse weights densely at load "
    "and has no sparse kernels, so the sparse model runs as fast as the dense one"
)
AGP_FRACTION = 0.75  # AGP prunes over the first 75% of fine-tuning; the rest recovers


@dataclass(frozen=True)
class SparsifyPlan:
    """What to do: the method name (CLI spelling), its config, and whether it is scheduled."""

    method: str
    config: SparsityConfig
    scheduled: bool


def sparsity_plan(
    method: str,
    sparsity: float | None = None,
    nm: str = "2:4",
    scope: str = "layer",
    parent_child: bool = True,
) -> SparsifyPlan:
    """The config of a CLI / recipe method name.

    ``magnitude``, ``taylor`` and ``agp`` need ``sparsity``; ``nm`` (``nm="N:M"``) and the
    R-TOSS kinds have a fixed sparsity, and a ``sparsity`` that differs from it
    is an error rather than being ignored. ``parent_child=False`` lets every R-TOSS layer
    choose its own patterns (the paper's children reuse their parent's).

    Example:
        >>> sparsity_plan("nm", nm="1:4").config
        NMConfig(n=1, m=4)
    """
    if method in ("magnitude", "agp", "taylor"):
        if sparsity is None:
            raise EdgeslimError(f"--method {method} needs --sparsity (a fraction, e.g. 0.8)")
        if method == "taylor":
            return SparsifyPlan(method, TaylorConfig(sparsity, scope), False)
        return SparsifyPlan(method, MagnitudeConfig(sparsity, scope), method == "agp")
    if method == "patterns":
        return SparsifyPlan(method, shared_pattern_config(sparsity), False)
    if method == "nm":
        try:
            n, m = (int(v) for v in nm.split(":"))
        except ValueError:
            raise EdgeslimError(f"bad N:M {nm!r}: expected e.g. 2:4") from None
        cfg: SparsityConfig = NMConfig(n, m)
    elif method in ("rtoss-3ep", "rtoss-2ep"):
        cfg = RTossConfig(entries=int(method[-3]), parent_child=parent_child)
    else:
        raise EdgeslimError(f"unknown sparsity method {method!r}; choose one of {METHODS}")
    fixed = 1 - cfg.n / cfg.m if isinstance(cfg, NMConfig) else 1 - cfg.entries / 9
    if sparsity is not None and abs(sparsity - fixed) > 0.005:
        raise EdgeslimError(
            f"--method {method} has a fixed sparsity of {fixed:.3f} (per masked layer); "
            f"--sparsity {sparsity} does not apply (omit it)"
        )
    return SparsifyPlan(method, cfg, False)


def shared_pattern_config(sparsity: float | None) -> SharedPatternConfig:
    """``patterns`` at ``sparsity``: ``k = 9 (1 - sparsity)`` taps (2, 3 or 4) of each 3×3 conv.

    Example:
        >>> shared_pattern_config(0.67).entries
        3
    """
    if sparsity is None:
        return SharedPatternConfig(3, PATTERN_GROUPS)
    k = round(9 * (1 - sparsity))
    if k not in (2, 3, 4) or abs(1 - k / 9 - sparsity) > 0.02:
        raise EdgeslimError(
            f"--method patterns keeps 2, 3 or 4 taps of each 3x3 kernel: --sparsity 0.778, "
            f"0.667 or 0.556 (per masked layer), not {sparsity}"
        )
    return SharedPatternConfig(k, PATTERN_GROUPS)


def agp_schedule(final: float, total_steps: int) -> AGPSchedule:
    """AGP over the first :data:`AGP_FRACTION` of ``total_steps``, in at most 10 pruning steps."""
    span = max(1, int(total_steps * AGP_FRACTION))
    n = min(10, span)
    return AGPSchedule(final=final, steps=n, every=max(1, span // n))


def run_sparsify(
    lm: LoadedModel,
    plan: SparsifyPlan,
    out_dir: str | Path,
    *,
    data: str | None = None,
    finetune_epochs: int = 0,
    lr: float = 0.01,
    train: TrainConfig | None = None,
    values: str = "int8",
    codebook_bits: int = 4,
    distill: str | None = None,
    distill_spec: LossSpec | None = None,
    batches: tuple[int, ...] = (1, 8),
    runs: int = 30,
    threads: int | None = None,
    progress: bool = True,
) -> dict:
    """Sparsify ``lm`` as ``plan`` says, fine-tune on ``data``, write ``out_dir``; report.

    Args:
        plan: from :func:`sparsity_plan`; a scheduled (AGP) plan needs ``data`` and
            ``finetune_epochs >= 1``: the masks grow during fine-tuning.
        values: how the archive stores nonzeros: ``"int8"``, ``"kmeans"`` (a
            ``codebook_bits`` codebook per tensor) or ``"float"`` (exact).
        distill: fine-tune with these distillation losses (``"kd"``, ``"kd+at"``, ...)
            from the dense input model as a frozen teacher, instead of the task loss.
        distill_spec: temperature, alpha, ... of ``distill``.

    Example:
        >>> # run_sparsify(load_model("resnet20"), sparsity_plan("rtoss-2ep"), "out/r20-2ep",
        >>> #              data="signs", finetune_epochs=2)
    """
    from edgeslim.data import dataset_info, load_dataset, make_loader

    if isinstance(plan.config, TaylorConfig) and not data:
        raise EdgeslimError("--method taylor scores weights on training batches: it needs --data")
    if plan.scheduled and not (data and finetune_epochs >= 1):
        raise EdgeslimError("--method agp prunes while fine-tuning: it needs --data and epochs")
    if finetune_epochs and not data:
        raise EdgeslimError("fine-tuning needs --data")
    if distill and not finetune_epochs:
        raise EdgeslimError("--distill needs fine-tuning epochs (it is how the model recovers)")
    spec = lm.require_input().with_batch(1)
    out_dir = Path(out_dir)
    task = dataset_info(data).task if data else "classification"
    test = make_loader(load_dataset(data, "test"), 256, shuffle=False) if data else None
    model = copy.deepcopy(lm.model)
    stages: list[tuple[str, nn.Module]] = [("input", lm.model)]
    tcfg = replace(train or TrainConfig(), epochs=max(finetune_epochs, 1), lr=lr)
    train_ds = load_dataset(data, "train", augment=tcfg.augment) if finetune_epochs else None
    schedule = None
    if plan.scheduled:
        per_epoch = math.ceil(len(train_ds) / tcfg.batch_size)
        schedule = agp_schedule(plan.config.sparsity, finetune_epochs * per_epoch)
    sp = Sparsifier(plan.config, schedule=schedule)
    calib = make_loader(load_dataset(data, "train"), 64, shuffle=True) if data else None
    if calib is None and plan.config.kind in ("patterns", "rtoss"):
        # the channel permutation (patterns) and R-TOSS's parent-child groups are traced on it
        calib = [spec.example()]
    sp.prepare(model, calib=calib)
    if not masked_layers(model):
        raise EdgeslimError(f"{lm.name}: no layer can take {plan.method} sparsity")
    if not plan.scheduled:
        stages.append((f"{plan.method} (one-shot)", squashed(model)))
    log: list[dict] = []
    if finetune_epochs:
        from edgeslim.train.trainer import Trainer

        objective = None
        if distill:
            x = next(iter(make_loader(load_dataset(data, "val"), 4, shuffle=False)))[0]
            objective = _distiller(lm.model, model, distill, distill_spec, x, task)
        trainer = Trainer(
            model,
            tcfg,
            loss_fn=objective,
            extra=objective,
            task=task,
            progress=progress,
            on_step=sp.step if schedule else None,
        )
        log = trainer.fit(train_ds, load_dataset(data, "val"))
        how = ("AGP" if schedule else "fine-tuned") + (f" + {distill}" if distill else "")
        stages.append((f"{plan.method} + {how} ({finetune_epochs} ep)", squashed(model)))
    final = stages[-1][1]
    archive = save_archive(final, out_dir / "weights.esz", values=values, bits=codebook_bits)
    records, _ = measure_stages(
        [
            Stage(
                name,
                m,
                spec,
                evaluate="model",
                export_to=out_dir / "model.onnx" if m is final else None,
            )
            for name, m in stages
        ],
        loader=test,
        task=task,
        batches=batches,
        runs=runs,
        threads=threads,
        progress=progress,
    )
    onnx_bytes = records[-1]["size_bytes"]
    for rec in records[1:]:
        rec["sparsity_kind"] = plan.method
    records[-1]["compressed_bytes"] = archive.size_bytes
    layers = {n: round(sparsity_of(final, [n]), 6) for n in sp.record.layers}
    report = {
        "model": lm.name,
        "input_shape": list(spec.shape),
        "method": plan.method,
        "config": {"type": type(plan.config).__name__, **to_json(plan.config)},
        "schedule": asdict(schedule) if schedule else None,
        "sparsity": {
            "kind": plan.config.kind,
            "masked_layers": sparsity_of(final, list(layers)),
            "all_weights": records[-1]["sparsity"],
            "per_layer": layers,
            "skipped_layers": sp.record.details.get("skipped", []),
        },
        "storage": {
            "onnx_bytes": onnx_bytes,
            "archive_bytes": archive.size_bytes,
            "archive_values": values if values != "kmeans" else f"kmeans{codebook_bits}",
            "onnx_over_archive": round(onnx_bytes / archive.size_bytes, 3),
            "archive": archive.to_dict(),
        },
        "speedup_claimed": False,
        "speed_note": NO_SPEEDUP,
        "stages": records,
        "finetune": {"train": asdict(tcfg), "distill": distill} if finetune_epochs else None,
        "finetune_log": log,
    }
    out = LoadedModel(
        model,
        lm.source,
        spec,
        f"{lm.name}-{plan.method}",
        {**lm.meta, "sparsity": {"method": plan.method, "stages": records}},
        [*lm.methods, sp.record.to_dict()],
    )
    extra = []
    if isinstance(plan.config, SharedPatternConfig):
        from edgeslim.workflows.pattern_deploy import execution_line, pattern_execution

        report["execution"] = pattern_execution(final, spec.example(), threads=threads, runs=runs)
        extra.append(execution_line(report["execution"]))
    save_model(out, out_dir)
    write_text_atomic(out_dir / "report.json", json.dumps(report, indent=2, default=str) + "\n")
    report["text"] = "\n".join(
        [
            format_stages(records),
            f"sparsity ({plan.method}): {report['sparsity']['masked_layers']:.1%} of masked "
            f"weights, {report['sparsity']['all_weights']:.1%} of all weights are zero",
            f"size: model.onnx {onnx_bytes / 1024:.1f} KB (dense), weights.esz "
            f"{archive.size_bytes / 1024:.1f} KB ({values} nonzeros + bitmask + zstd), "
            f"{report['storage']['onnx_over_archive']:.2f}x smaller",
            NO_SPEEDUP,
            *extra,
        ]
    )
    return report


def _distiller(teacher: nn.Module, student: nn.Module, losses: str, spec, x, task):
    """The distillation objective: a frozen copy of the dense input teaches the sparse model."""
    from edgeslim.distill.distiller import Distiller

    frozen = copy.deepcopy(teacher).eval().requires_grad_(False)
    return Distiller.build(student, [frozen], losses, spec or LossSpec(), x, task)
