"""The job behind ``edgeslim prune``: prune, optionally fine-tune, measure, save, report.

Every stage (input, pruned, fine-tuned) is exported to ONNX and timed on ONNX
Runtime in one interleaved run, so the speedup in ``report.json`` is measured on the
same machine state, not estimated from MACs.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, replace
from pathlib import Path

from torch import nn

from edgeslim.bench.stages import format_stages
from edgeslim.core.atomic import write_text_atomic
from edgeslim.core.errors import EdgeslimError
from edgeslim.distill.losses import LossSpec
from edgeslim.models.saved import save_model
from edgeslim.models.spec import LoadedModel
from edgeslim.prune.align import coarser, resolve_alignment
from edgeslim.prune.config import PruneConfig
from edgeslim.prune.structured import PruneResult, prune
from edgeslim.train.config import TrainConfig
from edgeslim.workflows.measure import Stage, measure_stages
from edgeslim.workflows.speed_check import SpeedCheck, conclude, realign_loop


def run_prune(
    lm: LoadedModel,
    cfg: PruneConfig,
    out_dir: str | Path,
    *,
    data: str | None = None,
    finetune_epochs: int = 0,
    steps: int = 1,
    lr: float = 0.01,
    batches: tuple[int, ...] = (1, 8),
    runs: int = 30,
    threads: int | None = None,
    train: TrainConfig | None = None,
    distill: str | None = None,
    distill_spec: LossSpec | None = None,
    search: bool = False,
    recalibrate: bool = False,
    realign: bool = True,
) -> dict:
    """Prune ``lm``, fine-tune it on ``data``, write ``out_dir``; return the report dict.

    Args:
        train: the fine-tuning run (default: SGD at ``lr`` for ``finetune_epochs``); its
            ``epochs`` and ``lr`` are replaced by those arguments.
        distill: fine-tune with these distillation losses (``"kd"``, ``"kd+at"``, ...)
            from the unpruned input model as a frozen teacher, instead of plain CE.
        distill_spec: temperature, alpha, ... of ``distill``.
        search: choose each group's ratio by measured damage under ``cfg``'s MAC or
            latency target (:mod:`edgeslim.search.prune_target`) instead of a uniform
            or global rule; needs ``data`` (its validation split).
        recalibrate: re-estimate the pruned model's BatchNorm statistics on 30 training
            batches of ``data`` (:mod:`edgeslim.prune.recalibrate`), recorded as its own
            stage; fine-tuning starts from it.
        realign: when ``cfg.round_to`` is ``"auto"`` (kept widths aligned to what the
            measured latency staircase favours, :mod:`edgeslim.prune.align`) and the
            pruned model measures slower than the input at any batch size, prune again
            at the next coarser alignments and keep the fastest
            (:mod:`edgeslim.workflows.speed_check`). A slowdown that remains is said
            plainly in ``report.json`` (``speed_check``) and on the console.

    Example:
        >>> # run_prune(load_model("resnet18"), PruneConfig(ratio=0.5), "out/r18-p50")
    """
    from edgeslim.data import dataset_info, load_dataset, make_loader

    spec = lm.require_input().with_batch(1)
    example = spec.example()
    out_dir = Path(out_dir)
    align = resolve_alignment(lm.model, example, cfg.round_to, threads=threads)
    cfg = replace(cfg, round_to=align.round_to)
    task = dataset_info(data).task if data else "classification"
    timing = {"batches": batches, "runs": runs, "threads": threads, "task": task}
    check = SpeedCheck()
    records: list[dict] | None = None
    calib = make_loader(load_dataset(data, "train"), 64, shuffle=True) if data else None
    test = make_loader(load_dataset(data, "test"), 256, shuffle=False) if data else None
    stages: list[tuple[str, nn.Module]] = [("input", lm.model)]
    res: PruneResult | None = None
    log: list[dict] = []
    tcfg = (
        replace(train or TrainConfig(), epochs=finetune_epochs, lr=lr) if finetune_epochs else None
    )
    objective = _objective(lm.model, distill, distill_spec, data, task) if distill else None
    searched = None
    if search and steps > 1:
        raise EdgeslimError("--search chooses every ratio at once: use it with --steps 1")
    if recalibrate and (not data or steps > 1):
        raise EdgeslimError("--recalibrate-bn needs --data and --steps 1")
    if finetune_epochs and steps > 1:
        from edgeslim.prune.schedule import prune_finetune

        model, log = prune_finetune(
            lm.model,
            example,
            cfg,
            tcfg,
            load_dataset(data, "train", augment=tcfg.augment),
            load_dataset(data, "val"),
            steps=steps,
            objective=objective,
            task=task,
        )
        stages.append((f"pruned + fine-tuned ({steps} rounds)", model))
    else:
        if search:
            searched = _search(lm, cfg, data, calib, threads)
            stages.append(("pruned (searched ratios)", searched.model))
        else:
            res = prune(lm.model, example, cfg, data=calib)
            if realign and align.source != "user":
                last = not (recalibrate or finetune_epochs)  # then this timing is the report's
                res, records = _realign(lm, cfg, res, out_dir, timing, calib, check, last, test)
            stages.append(("pruned", res.model))
        if recalibrate:
            from edgeslim.prune.recalibrate import recalibrate_bn

            fresh = copy.deepcopy(stages[-1][1])
            recalibrate_bn(fresh, calib, max_batches=30)
            stages.append((f"{stages[-1][0]} + BN recalibrated", fresh))
        if finetune_epochs:
            from edgeslim.train.trainer import Trainer

            tuned = copy.deepcopy(stages[-1][1])
            loss_fn = objective(tuned) if objective else None
            log = Trainer(tuned, tcfg, loss_fn=loss_fn, extra=loss_fn, task=task).fit(
                load_dataset(data, "train", augment=tcfg.augment), load_dataset(data, "val")
            )
            how = f"{distill} from the input" if distill else "fine-tuned"
            stages.append((f"pruned + {how} ({finetune_epochs} ep)", tuned))
    final = stages[-1][1]
    if records is None:
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
            **timing,
        )
    round_to = res.alignment.round_to if res is not None and res.alignment else cfg.round_to
    conclude(check, records, res, round_to)
    report = {
        "model": lm.name,
        "input_shape": list(spec.shape),
        "config": asdict(replace(cfg, round_to=round_to)),
        "alignment": {**align.to_dict(), "used": round_to},
        "speed_check": check.to_dict(),
        "stages": records,
        "groups": _groups(res) if res is not None else None,
        "untouched_ops": res.graph.unsupported if res is not None else [],
        "latency_steps": res.steps if res is not None else [],
        "max_abs_diff_vs_masked": res.max_abs_diff if res is not None else None,
        "search": searched.notes if searched is not None else None,
        "finetune": {"train": asdict(tcfg), "distill": distill} if finetune_epochs else None,
        "finetune_log": log,
    }
    pruned = LoadedModel(
        final,
        lm.source,
        spec,
        f"{lm.name}-pruned",
        {**lm.meta, "pruning": {"config": report["config"], "stages": records}},
    )
    save_model(pruned, out_dir)
    write_text_atomic(out_dir / "report.json", json.dumps(report, indent=2, default=str) + "\n")
    lines = [align.line()]
    if round_to != align.round_to:
        lines.append(f"re-aligned to multiples of {round_to}: the first alignment measured slower")
    lines.append(format_stages(records))
    if check.message:
        lines.append(check.message)
    report["text"] = "\n".join(lines)
    return report


def _realign(lm, cfg, res, out_dir, timing, calib, check, final: bool, test):
    """Time input against pruned; while slower, re-align (:mod:`edgeslim.workflows.speed_check`).

    With ``final`` (nothing trains after pruning) this is the report's own measurement
    (full runs, ``model.onnx`` written, accuracy on ``test``) and its records are
    returned; otherwise a shorter timing, and the records are measured again at the end.
    """
    spec = lm.require_input().with_batch(1)
    quick = timing if final else {**timing, "runs": max(5, timing["runs"] // 3)}

    def measure(r: PruneResult) -> list[dict]:
        recs, _ = measure_stages(
            [
                Stage("input", lm.model, spec, evaluate="model"),
                Stage(
                    "pruned",
                    r.model,
                    spec,
                    evaluate="model",
                    export_to=out_dir / "model.onnx" if final else None,
                ),
            ],
            loader=test if final else None,
            **quick,
        )
        return recs

    def prune_at(a: int) -> PruneResult:
        return prune(lm.model, spec.example(), replace(cfg, round_to=a), data=calib)

    res, recs = realign_loop(res, cfg.round_to, coarser(cfg.round_to), prune_at, measure, check)
    return res, recs if final else None


def _search(lm: LoadedModel, cfg: PruneConfig, data: str | None, calib, threads: int | None):
    """The sensitivity search to ``cfg``'s target, damage measured on 4 validation batches."""
    import itertools

    from edgeslim.data import load_dataset, make_loader
    from edgeslim.search.prune_target import search_to_target

    if not data:
        raise EdgeslimError("--search measures each group's damage: it needs --data")
    val = list(itertools.islice(make_loader(load_dataset(data, "val"), 128, shuffle=False), 4))
    return search_to_target(lm.model, lm.require_input(), cfg, val, data=calib, threads=threads)


def _objective(teacher: nn.Module, losses: str, spec: LossSpec | None, data: str | None, task: str):
    """A builder of the distillation objective for a pruned student, the input as teacher.

    The teacher is a frozen copy of the unpruned model: the pruned model recovers by
    matching what it computed before (Hinton KD with a label mix, features, ...).
    """
    from edgeslim.data import load_dataset, make_loader
    from edgeslim.distill.distiller import Distiller, parse_loss_names

    if not data:
        raise EdgeslimError("distillation during fine-tuning needs --data")
    parse_loss_names(losses)  # fail before pruning on an unknown loss
    frozen = copy.deepcopy(teacher).eval().requires_grad_(False)
    x = next(iter(make_loader(load_dataset(data, "val"), 4, shuffle=False)))[0]  # sizes adapters

    def build(student: nn.Module) -> Distiller:
        return Distiller.build(student, [frozen], losses, spec or LossSpec(), x, task)

    return build


def _groups(res: PruneResult) -> list[dict]:
    out = []
    for gi, g in enumerate(res.graph.groups):
        removed = len(res.plan.get(gi, ()))
        out.append(
            {
                "name": g.name,
                "layers": g.layers,
                "units": g.size,
                "removed": removed,
                "kept": g.size - removed,
            }
        )
    return out
