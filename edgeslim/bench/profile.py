"""Where the time goes: ONNX Runtime's per-node profile, tied back to the model's modules.

ORT rewrites the graph before running it: it folds BatchNorm into Conv, fuses an
activation into its Conv (``FusedConv``), moves convolutions to its blocked NCHWc
layout (nodes renamed ``<tensor>_nchwc``), and runs QDQ groups as integer kernels
(``QLinearConv``). Its profiler times the *optimised* nodes, so the profile shows what
the runtime really ran: which kernel, in which layout, with which fusions. Each node is
tied back to the module that produced it through the exporter's ``name_scopes``
metadata (for a Conv folded with its BatchNorm that is the BatchNorm's scope).

Example:
    >>> # rows = profile_onnx("model.onnx", InputSpec((1, 3, 32, 32)), batch=8)
    >>> # print(format_profile(rows))
"""

from __future__ import annotations

import ast
import json
import re
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import onnx
from torch import nn

from edgeslim.core.errors import EdgeslimError
from edgeslim.export.ort import ort_session
from edgeslim.models.inputs import InputSpec

WEIGHTED = {"Conv", "ConvTranspose", "Gemm", "MatMul", "QLinearConv", "QLinearMatMul"}


@dataclass(frozen=True)
class NodeTime:
    node: str  # ORT's name for the optimised node
    kernel: str  # the op ORT ran (Conv, FusedConv, QLinearConv, MatMul, ...)
    layout: str  # "nchwc" (ORT's blocked layout) or "" (the graph's own)
    scope: str  # the module that produced it ("" when unknown)
    fused: str  # original ops folded into this node, e.g. "Conv+Relu"
    ms: float  # mean time per run (milliseconds)
    share: float  # fraction of all node time


def _scopes(model: onnx.ModelProto) -> tuple[dict, dict, dict]:
    """name -> scope, output tensor -> node, node name -> node, for the exported graph."""
    scope, producer, by_name = {}, {}, {}
    for n in model.graph.node:
        by_name[n.name] = n
        for o in n.output:
            producer[o] = n
        meta = {p.key: p.value for p in n.metadata_props}
        raw = meta.get("pkg.torch.onnx.name_scopes")
        if raw:
            try:
                parts = [p for p in ast.literal_eval(raw) if p]
            except (ValueError, SyntaxError):
                parts = []
            # the last entry is the aten op; the one before it the innermost module
            scope[n.name] = parts[-2] if len(parts) >= 2 else ""
        if not scope.get(n.name) and n.op_type in WEIGHTED and len(n.input) > 1:
            # the TorchScript exporter (QDQ files) keeps parameter names: "<module>.weight"
            w = n.input[1]
            if w.endswith(".weight"):
                scope[n.name] = w.removesuffix(".weight")
    return scope, producer, by_name


def _origin(name: str, producer: dict, by_name: dict, kernel: str):
    """The exported node an ORT node came from, and the ops it fused (walks back over
    the activation or Add that gave a fused Conv its output name)."""
    base = re.sub(r"_token_\d+$", "", name.removesuffix("_kernel_time")).removesuffix("_nchwc")
    node = by_name.get(base) or producer.get(base)
    fused = []
    seen = 0
    while node is not None and kernel in WEIGHTED | {"FusedConv"} and seen < 4:
        if node.op_type in WEIGHTED:
            break
        fused.append(node.op_type)
        node = producer.get(node.input[0]) if node.input else None
        seen += 1
    if node is not None and fused:
        fused = [node.op_type, *reversed(fused)]
    return node, "+".join(fused)


def profile_onnx(
    path: str | Path,
    spec: InputSpec,
    *,
    batch: int = 1,
    runs: int = 20,
    warmup: int = 3,
    threads: int | None = None,
) -> list[NodeTime]:
    """Mean per-node time of ``runs`` runs of the ONNX file at ``path``, slowest first."""
    if runs < 1:
        raise EdgeslimError("profile runs must be at least 1")
    model = onnx.load(str(path), load_external_data=False)
    scope, producer, by_name = _scopes(model)
    x = spec.example(batch=batch).numpy()
    with tempfile.TemporaryDirectory() as tmp:
        warm = ort_session(path, threads)
        feed = {warm.get_inputs()[0].name: x}
        for _ in range(warmup):
            warm.run(None, feed)
        sess = ort_session(path, threads, profile_prefix=str(Path(tmp) / "ort"))
        for _ in range(warmup + runs):
            sess.run(None, feed)
        events = json.loads(Path(sess.end_profiling()).read_text())
    nodes = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    # the first ``warmup`` runs of the profiled session are dropped per node
    per: dict[str, list] = {}
    for e in nodes:
        per.setdefault(e["name"], []).append(e)
    total_us: dict[str, float] = {}
    kinds: dict[str, str] = {}
    for name, evs in per.items():
        kept = evs[warmup:] or evs
        total_us[name] = sum(float(e["dur"]) for e in kept) / len(kept)
        kinds[name] = evs[0].get("args", {}).get("op_name", "")
    grand = sum(total_us.values()) or 1.0
    rows = []
    for name, us in total_us.items():
        node, fused = _origin(name, producer, by_name, kinds[name])
        rows.append(
            NodeTime(
                node=name.removesuffix("_kernel_time"),
                kernel=kinds[name],
                layout="nchwc" if "_nchwc" in name else "",
                scope=scope.get(node.name, "") if node is not None else "",
                fused=fused,
                ms=us / 1e3,
                share=us / grand,
            )
        )
    rows.sort(key=lambda r: -r.ms)
    return rows


def format_profile(rows: list[NodeTime], limit: int = 30) -> str:
    """A text table of the slowest ``limit`` nodes and the per-kernel totals."""
    lines = [f"{'module':28} {'kernel':14} {'layout':6} {'fused':14} {'ms':>8} {'share':>6}"]
    for r in rows[:limit]:
        lines.append(
            f"{(r.scope or r.node)[:28]:28} {r.kernel[:14]:14} {r.layout:6} {r.fused[:14]:14} "
            f"{r.ms:8.3f} {100 * r.share:5.1f}%"
        )
    by_kernel: dict[str, float] = {}
    for r in rows:
        key = r.kernel + (f" ({r.layout})" if r.layout else "")
        by_kernel[key] = by_kernel.get(key, 0.0) + r.share
    lines.append("time by kernel: " + ", ".join(
        f"{k} {100 * v:.0f}%" for k, v in sorted(by_kernel.items(), key=lambda kv: -kv[1])
    ))  # fmt: skip
    return "\n".join(lines)


def to_json(rows: list[NodeTime]) -> list[dict]:
    return [asdict(r) for r in rows]


def layer_times(rows: list[NodeTime], model: nn.Module) -> dict[str, float]:
    """Milliseconds per weighted layer of ``model`` (the module names of its layer table).

    A Conv that ORT ran folded into its BatchNorm carries the BatchNorm's scope; it is
    credited to the nearest Conv or Linear registered before that BatchNorm (the
    conv -> bn order every zoo and torchvision model uses).
    """
    out: dict[str, float] = {}
    for r, name in _layers_of(rows, model):
        out[name] = out.get(name, 0.0) + r.ms
    return out


def layer_kernels(rows: list[NodeTime], model: nn.Module) -> dict[str, str]:
    """The kernel ORT ran for each weighted layer and the ops it fused into it.

    ``"FusedConv (Conv+Relu)"``: the runtime's own operator fusion, made visible;
    ``"QLinearConv"``: an integer kernel. A layer ORT split over several nodes lists
    each kernel once, slowest first.
    """
    out: dict[str, list[str]] = {}
    for r, name in _layers_of(rows, model):
        label = f"{r.kernel} ({r.fused})" if r.fused else r.kernel
        if label not in out.setdefault(name, []):
            out[name].append(label)
    return {k: ", ".join(v) for k, v in out.items()}


def _layers_of(rows: list[NodeTime], model: nn.Module):
    """``(row, layer name)`` for each profiled node that belongs to a weighted layer."""
    mods = list(model.named_modules())
    index = {n: i for i, (n, _) in enumerate(mods)}
    for r in rows:
        name = r.scope
        if not name or name not in index:
            continue
        if isinstance(mods[index[name]][1], nn.modules.batchnorm._BatchNorm):
            i = index[name] - 1
            while i >= 0 and not _weighted(mods[i][1]):
                i -= 1
            if i < 0:
                continue
            name = mods[i][0]
        if _weighted(mods[index[name]][1]):
            yield r, name


def _weighted(mod: nn.Module) -> bool:
    """A layer of the layer table: it has output channels or features."""
    return isinstance(getattr(mod, "out_channels", None) or getattr(mod, "out_features", None), int)
