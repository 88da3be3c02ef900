"""``edgeslim distill``: train a student from one or more frozen teachers; report both.

Writes the student (a saved model directory), its ONNX export and ``report.json``
with the shared ``stages`` schema: each teacher first, the student last.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edgeslim.cli.common import add_train_args, batches_arg, refuse_overwrite, train_config

HELP = "distil a student from a teacher (KD, features, attention, multi-teacher, self)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--teacher", default=None, help="teacher spec (zoo name: trained and cached)")
    p.add_argument("--teachers", default=None, help="several teachers, comma separated")
    p.add_argument(
        "--teacher-weights", default=None, help="multi-teacher weights, e.g. 2,1 (default: equal)"
    )
    p.add_argument("--teacher-epochs", type=int, default=8, help="epochs for a zoo teacher")
    p.add_argument(
        "--student",
        required=True,
        help="zoo name, file.py:factory, saved (e.g. pruned) model dir, hf:config.json, "
        "prune:R (the teacher pruned by ratio R) or distilbert (every other teacher layer)",
    )
    p.add_argument("--data", required=True, help="dataset spec: signs, digits, synthtext, ...")
    p.add_argument(
        "--loss",
        default="kd",
        help="kd, mse, feature, at, cosine, tinybert, multi, self, or a sum like kd+feature",
    )
    p.add_argument(
        "--stage",
        default=None,
        choices=("general", "task", "both"),
        help="with --loss tinybert: TinyBERT's general stage (layer losses, no labels), task "
        "stage (layer losses then soft CE at --temperature, no labels) or both",
    )
    p.add_argument(
        "--pred-epochs", type=int, default=None, help="--stage task/both: prediction epochs"
    )
    p.add_argument(
        "--corpus", default=None, help="--stage general/both: unlabeled corpus (dataset spec)"
    )
    p.add_argument("--temperature", type=float, default=4.0)
    p.add_argument("--alpha", type=float, default=0.9, help="weight of the soft term vs. CE")
    p.add_argument("--beta", type=float, default=None, help="feature-term weight")
    p.add_argument("--layers", default=None, help="layer map STUDENT=TEACHER,... (default: auto)")
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("-o", "--output", required=True, help="output directory")
    add_train_args(p)
    p.add_argument("--batch", type=batches_arg, default=(1, 8), help="latency batch sizes")
    p.add_argument("--runs", type=int, default=30, help="timed runs per model and batch")


def run(args: argparse.Namespace) -> int:
    import torch

    from edgeslim.bench.stages import format_stages
    from edgeslim.cli.common import write_json
    from edgeslim.core.errors import EdgeslimError
    from edgeslim.distill.layers import parse_layer_map
    from edgeslim.distill.losses import LossSpec
    from edgeslim.train.distributed import is_main_process
    from edgeslim.workflows.distill import distill_model
    from edgeslim.workflows.distill_report import stage_records
    from edgeslim.workflows.students import load_student, load_teacher

    if args.stage is not None and (args.loss != "tinybert" or args.teachers or not args.teacher):
        raise EdgeslimError("--stage runs TinyBERT's stages: give --loss tinybert, one --teacher")

    specs = [t.strip() for t in (args.teachers or "").split(",") if t.strip()]
    if args.teacher:
        specs.insert(0, args.teacher)
    losses = args.loss
    if len(specs) > 1 and losses == "kd":
        losses = "multi"  # several teachers with plain KD: their averaged soft targets
    for s in specs:
        refuse_overwrite(s, args.output)
    refuse_overwrite(args.student, args.output)
    weights = None
    if args.teacher_weights:
        try:
            weights = tuple(float(w) for w in args.teacher_weights.split(","))
        except ValueError:
            raise EdgeslimError(f"bad --teacher-weights {args.teacher_weights!r}") from None
    spec = LossSpec(
        temperature=args.temperature,
        alpha=args.alpha,
        beta=args.beta,
        layers=parse_layer_map(args.layers) if args.layers else (),
        teacher_weights=weights,
    )
    cfg = train_config(args)
    teachers = [load_teacher(s, args.data, args.teacher_epochs) for s in specs]
    torch.manual_seed(args.seed)  # a freshly built student's initial weights
    student = load_student(args.student, teachers[0] if teachers else None, args.data)
    out = Path(args.output)
    if args.stage is None:
        res = distill_model(student, teachers, args.data, losses, spec, cfg, out)
    else:
        res = _tinybert(args, student, teachers, spec, cfg, out)
        losses = f"tinybert {args.stage} stage"
    if not is_main_process():
        return 0
    from edgeslim.data import dataset_info
    from edgeslim.tasks import get_task

    task = get_task(dataset_info(args.data).task)
    metric = task.primary_metric
    print(f"saved {out}: student test {metric.label} {100 * res.test_top1:.2f}%")
    models = [(f"teacher {t.name}", t, t.meta.get(f"test_{metric.name}")) for t in teachers]
    if any(acc is None for _, _, acc in models):
        from edgeslim.bench.accuracy import evaluate_model
        from edgeslim.data import load_dataset, make_loader

        test = make_loader(load_dataset(args.data, "test"), 256, shuffle=False)
        models = [
            (n, t, acc if acc is not None else evaluate_model(t.model, test, task)[metric.name])
            for n, t, acc in models
        ]
    models.append((f"student {student.name} ({losses})", res.student, res.test_top1))
    stages = stage_records(models, batches=args.batch, runs=args.runs, onnx_dir=out / "onnx")
    write_json(
        out / "report.json",
        {
            "command": "distill",
            "data": args.data,
            "loss": losses,
            "teachers": specs,
            "student": args.student,
            "loss_spec": {k: v for k, v in vars(spec).items()},
            "history": res.history,
            "stages": stages,
        },
    )
    print(format_stages(stages))
    print(f"wrote {out}/report.json, {out}/onnx/, student model in {out}/")
    return 0


def _tinybert(args, student, teachers, spec, cfg, out):
    """TinyBERT's general and/or task stage (:mod:`edgeslim.workflows.tinybert`)."""
    from edgeslim.data import load_dataset
    from edgeslim.workflows.tinybert import TinyBERTPlan, tinybert_distill

    plan = TinyBERTPlan.for_stage(args.stage, args.epochs, args.pred_epochs, args.temperature)
    corpus = load_dataset(args.corpus, "train") if args.corpus else None
    teacher = teachers[0]
    return tinybert_distill(student, teacher, args.data, plan, cfg, out, spec=spec, corpus=corpus)
