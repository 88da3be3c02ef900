"""Export to ONNX (opset >= 17, dynamic batch) with a mandatory parity check.

The exported file is self-contained (weights inside, no ``.onnx.data``), so its
size on disk is one number. Every export is checked: ONNX Runtime and eager
PyTorch must agree on a batch different from the one used for export, or the
export fails loudly.

Models may return a tuple, list or dict of tensors (nested): each tensor becomes
one named graph output (``output0``, ``output1``, ... or the dict keys, see
:mod:`edgeslim.core.outputs`), and parity is checked output by output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from edgeslim.core.atomic import atomic_path
from edgeslim.core.errors import EdgeslimError
from edgeslim.core.modes import eval_mode, quiet_exporter
from edgeslim.core.outputs import flatten_outputs, output_diffs
from edgeslim.export.ort import ort_outputs, ort_session
from edgeslim.models.inputs import InputSpec

DEFAULT_OPSET = 18


@dataclass(frozen=True)
class ExportResult:
    path: Path
    max_abs_diff: float  # ONNX Runtime vs eager, on the parity batch, worst output
    size_bytes: int
    output_diffs: dict[str, float] = field(default_factory=dict)  # per named graph output


def export_onnx(
    model: nn.Module,
    input_spec: InputSpec,
    path: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    atol: float = 1e-4,
    check: bool = True,
    dynamo: bool = True,
) -> ExportResult:
    """Export ``model`` to ``path`` with a dynamic batch axis and check parity.

    Args:
        model: the model; its train/eval mode is restored afterwards.
        input_spec: shape/dtype of one input; the batch dimension becomes dynamic.
        path: destination ``.onnx`` (written atomically).
        opset: ONNX opset, 17 or newer.
        atol: tolerance of the parity check, per output:
            ``|ort - eager| <= atol * max(1, |eager|max)``.
        check: run the parity check (disable only for models you check yourself).
        dynamo: try ``torch.export`` first (the default); False goes straight to the
            TorchScript tracer, ~20x faster to export small graphs (tests).

    Example:
        >>> from edgeslim.models import build_zoo_model
        >>> r = export_onnx(build_zoo_model("resnet20"), InputSpec((1, 3, 32, 32)), "/tmp/r20.onnx")
        >>> r.max_abs_diff < 1e-4
        True
    """
    if opset < 17:
        raise EdgeslimError(f"opset {opset} is too old; edgeslim exports opset 17 or newer")
    path = Path(path)
    with eval_mode(model), atomic_path(path) as tmp:
        _export(model, input_spec, tmp, opset, dynamo)
        diffs = output_parity(model, input_spec, tmp, atol) if check else {}
    worst = max(diffs.values()) if diffs else float("nan")
    return ExportResult(path, worst, path.stat().st_size, diffs)


def _export(model: nn.Module, spec: InputSpec, dest: Path, opset: int, dynamo: bool = True) -> None:
    example = (spec.example(batch=2),)  # batch 2: batch 1 would be specialised away
    with torch.no_grad():
        names = list(flatten_outputs(model(*example)))
    if "input" in names:
        raise EdgeslimError("a model output named 'input' would clash with the graph's input")
    batch = torch.export.Dim("batch", min=1, max=4096)
    errors = []
    with quiet_exporter():
        try:
            if dynamo:
                torch.onnx.export(
                    model,
                    example,
                    str(dest),
                    dynamo=True,
                    external_data=False,
                    opset_version=opset,
                    dynamic_shapes=({0: batch},),
                    input_names=["input"],
                    output_names=names,
                    verbose=False,
                )
                return
        except Exception as e:  # torch.export may reject data-dependent code; try the tracer
            errors.append(f"dynamo: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        try:
            torch.onnx.export(
                model,
                example,
                str(dest),
                dynamo=False,
                opset_version=opset,
                input_names=["input"],
                output_names=names,
                dynamic_axes={"input": {0: "batch"}, **{n: {0: "batch"} for n in names}},
            )
            return
        except Exception as e:
            errors.append(f"torchscript: {type(e).__name__}: {e}")
    raise EdgeslimError("ONNX export failed: " + " | ".join(errors))


def parity(model: nn.Module, spec: InputSpec, onnx_path: Path, atol: float = 1e-4) -> float:
    """Max |ONNX Runtime - eager| over every output on a batch of 3; raise beyond tolerance."""
    return max(output_parity(model, spec, onnx_path, atol).values())


def output_parity(
    model: nn.Module, spec: InputSpec, onnx_path: Path, atol: float = 1e-4
) -> dict[str, float]:
    """Per named output, max |ONNX Runtime - eager| on a batch of 3.

    Each output must be within ``atol * max(1, |eager|max)`` of its own scale; the
    error names the first output that is not.

    Example:
        >>> # output_parity(yolo, InputSpec((1, 3, 64, 64)), "yolo.onnx")
        >>> # {'output0': 1.2e-06, 'output1': 9.5e-07, 'output2': 8.3e-07}
    """
    x = spec.example(batch=3, seed=1)
    with torch.no_grad():
        ref = flatten_outputs(model(x))
    got = ort_outputs(ort_session(onnx_path), x.numpy())
    try:
        diffs = output_diffs(ref, list(got.values()))
    except EdgeslimError as e:
        raise EdgeslimError(f"ONNX parity check failed: {e}") from None
    for name, (diff, scale) in diffs.items():
        tol = atol * max(1.0, scale)
        if not diff <= tol:
            raise EdgeslimError(
                f"ONNX parity check failed on output {name!r}: "
                f"max |ort - eager| = {diff:.3g} > {tol:.3g}"
            )
    return {name: diff for name, (diff, _) in diffs.items()}
