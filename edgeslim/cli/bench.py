"""``edgeslim bench``: latency (median, p90) with warm-up; ``--vs`` times two models interleaved.

``--runtime`` is any registered runtime (``onnxruntime``, ``openvino``, ``torch``,
``torch_compile``) or ``best``: every installed runtime at every precision it runs
natively here, timed in one interleaved loop, with the fastest named per batch.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
from pathlib import Path

from edgeslim.cli.common import add_model_args, batches_arg, model_from_args, write_json
from edgeslim.core.errors import EdgeslimError

HELP = "measure latency; --vs B times A and B interleaved and reports A/B"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    p.add_argument("--vs", default=None, help="second model (spec or .onnx), timed interleaved")
    p.add_argument(
        "--runtime",
        default="onnxruntime",
        help="onnxruntime (default), openvino, torch, torch_compile, or best: every "
        "installed runtime and native precision, interleaved",
    )
    p.add_argument(
        "--precision",
        default="fp32",
        choices=("fp32", "bf16", "fp16"),
        help="float precision of a float model (an INT8 or INT4 file runs in its own)",
    )
    p.add_argument("--batch", type=batches_arg, default=(1, 8), help="batch sizes, e.g. 1,8")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="intra-op threads")
    p.add_argument("--runs", type=int, default=30, help="timed runs per model and batch")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--json", default=None)


def make_targets(spec: str, args: argparse.Namespace, workdir: Path, tag: str) -> list:
    """Latency targets for ``spec`` on ``--runtime`` (several with ``best``)."""
    from edgeslim.bench.latency import module_target, onnx_target
    from edgeslim.bench.runtimes import Candidate, candidates
    from edgeslim.export.runtimes import file_precision, get_runtime
    from edgeslim.recipe.deploy import export_deployable

    module, inp = None, None
    if spec.endswith(".onnx"):
        if not Path(spec).is_file():
            raise EdgeslimError(f"ONNX model not found: {spec}")
        onnx = Path(spec)
    else:
        lm = model_from_args(args, spec)
        module, inp = lm.model, lm.require_input()
        onnx = None
        if args.runtime == "best" or get_runtime(args.runtime).artifact == "onnx":
            onnx = export_deployable(module, inp, workdir / f"{tag}.onnx")
    if args.runtime == "best":
        cands = candidates(onnx, module_ok=module is not None)
    else:
        rt = get_runtime(args.runtime)
        if rt.artifact == "module" and module is None:
            raise EdgeslimError(f"{spec} is an ONNX file; {rt.name} runs models, not files")
        precision = (file_precision(onnx) if onnx is not None else None) or args.precision
        cands = [Candidate(rt.name, precision)]
    many = len(cands) > 1
    targets = []
    for c in cands:
        label = f"{spec} [{c.label}]" if many else spec
        if get_runtime(c.runtime).artifact == "module":
            targets.append(
                module_target(module, inp, label, runtime=c.runtime, precision=c.precision)
            )
        else:
            targets.append(onnx_target(onnx, label, inp, runtime=c.runtime, precision=c.hint))
    return targets


def run(args: argparse.Namespace) -> int:
    from edgeslim.bench.latency import measure
    from edgeslim.bench.machine import machine_info, machine_line

    with tempfile.TemporaryDirectory() as d:
        targets = make_targets(args.model, args, Path(d), "a")
        if args.vs:
            if args.runtime == "best":
                raise EdgeslimError("--vs compares two models on one runtime; not with best")
            targets += make_targets(args.vs, args, Path(d), "b")
        if len(targets) == 2 and targets[0].label == targets[1].label:
            targets[1] = dataclasses.replace(targets[1], label=targets[1].label + " (B)")
        rep = measure(targets, args.batch, runs=args.runs, warmup=args.warmup, threads=args.threads)
    machine = machine_info(args.threads)
    print(machine_line(machine))
    print(f"{'model':<48} {'runtime':<14} {'batch':>5} {'median ms':>10} {'p90 ms':>9}")
    for r in rep.results:
        print(
            f"{r['model'][:48]:<48} {r['runtime']:<14} {r['batch']:>5} "
            f"{r['median_ms']:>10.3f} {r['p90_ms']:>9.3f}"
        )
    for b, ratio in rep.ratio.items():
        print(
            f"batch {b}: A/B latency ratio {ratio:.3f} (B is {ratio:.2f}x faster)"
            if ratio >= 1
            else f"batch {b}: A/B latency ratio {ratio:.3f} (A is {1 / ratio:.2f}x faster)"
        )
    if args.runtime == "best":
        for b in args.batch:
            rows = [r for r in rep.results if r["batch"] == b]
            fast = min(rows, key=lambda r: r["median_ms"])
            print(f"batch {b}: fastest is {fast['model']} ({fast['median_ms']:.3f} ms)")
    if args.json:
        out = rep.to_dict()
        out["threads"] = args.threads
        out["machine"] = machine
        write_json(args.json, out)
    return 0
