"""``analyze``: parameters, MACs, per-layer table, sparsity and size on disk of one model."""

from __future__ import annotations

import tempfile
from dataclasses import asdict
from pathlib import Path

import torch

from edgeslim.bench.macs import count_macs, count_params, layer_table, zero_fraction
from edgeslim.bench.size import onnx_bytes, safetensors_bytes
from edgeslim.core.errors import EdgeslimError
from edgeslim.core.modes import eval_mode
from edgeslim.core.outputs import flatten_outputs
from edgeslim.export.onnx import export_onnx
from edgeslim.models.inputs import InputSpec
from edgeslim.models.spec import LoadedModel


def analyze(lm: LoadedModel, spec: InputSpec | None = None, *, onnx: bool = True) -> dict:
    """Measure ``lm`` on one example input of ``spec`` (default: the model's own).

    Returns a JSON-able dict: ``params``, ``macs``, ``zero_fraction``,
    ``outputs`` (shape of each named output, see :mod:`edgeslim.core.outputs`),
    ``size_bytes: {safetensors, onnx}``, ``onnx_max_abs_diff`` (worst output),
    ``onnx_output_diffs`` (per output) and ``layers``.

    Example:
        >>> from edgeslim.models.spec import load_model
        >>> analyze(load_model("resnet20"), onnx=False)["params"]  # doctest: +SKIP
        272474
    """
    spec = spec or lm.require_input()
    example = spec.example(batch=spec.shape[0])
    try:
        macs, per_module = count_macs(lm.model, example)
        with eval_mode(lm.model), torch.no_grad():
            outputs = {n: list(t.shape) for n, t in flatten_outputs(lm.model(example)).items()}
    except RuntimeError as e:
        raise EdgeslimError(
            f"{lm.name} does not run on input {spec.shape}: {str(e).splitlines()[0]}"
        ) from None
    report = {
        "model": lm.name,
        "input_shape": list(spec.shape),
        "params": count_params(lm.model),
        "macs": macs,
        "zero_fraction": zero_fraction(lm.model),
        "outputs": outputs,
        "size_bytes": {"safetensors": safetensors_bytes(lm.model), "onnx": None},
        "onnx_max_abs_diff": None,
        "onnx_output_diffs": None,
        "layers": [asdict(r) for r in layer_table(lm.model, per_module)],
    }
    if onnx:
        with tempfile.TemporaryDirectory() as d:
            res = export_onnx(lm.model, spec, Path(d) / "model.onnx")
            report["size_bytes"]["onnx"] = onnx_bytes(res.path)
            report["onnx_max_abs_diff"] = res.max_abs_diff
            report["onnx_output_diffs"] = res.output_diffs
    return report


def format_analysis(report: dict, max_rows: int = 40) -> str:
    """Human-readable summary plus the per-layer table (largest MACs first beyond ``max_rows``)."""
    sz = report["size_bytes"]
    lines = [
        f"model         {report['model']}  input {tuple(report['input_shape'])}",
        f"parameters    {report['params']:,} ({report['params'] / 1e6:.2f}M)",
        f"MACs          {report['macs']:,} ({report['macs'] / 1e9:.3f}G)",
        f"zero weights  {100 * report['zero_fraction']:.2f}%",
        "outputs       "
        + ", ".join(f"{n} {'x'.join(map(str, s))}" for n, s in report["outputs"].items()),
        f"size          safetensors {sz['safetensors']:,} B"
        + (f", onnx {sz['onnx']:,} B" if sz["onnx"] is not None else ""),
    ]
    rows = report["layers"]
    if len(rows) > max_rows:
        rows = sorted(rows, key=lambda r: -r["macs"])[:max_rows]
        lines.append(f"(top {max_rows} of {len(report['layers'])} layers by MACs)")
    lines.append(f"{'layer':<40} {'type':<16} {'params':>10} {'MACs':>14} {'zero%':>6}  shape")
    for r in rows:
        shape = "x".join(map(str, r["weight_shape"])) if r["weight_shape"] else "-"
        lines.append(
            f"{r['name'][:40]:<40} {r['type'][:16]:<16} {r['params']:>10,} "
            f"{r['macs']:>14,} {100 * r['zero_fraction']:>6.1f}  {shape}"
        )
    return "\n".join(lines)
