"""Which form each 3×3 conv of a shared-pattern model runs in, measured: dense or PatternConv2d.

The deploy form of ``--method patterns`` is PyTorch eager in channels_last with BN
folded (:mod:`edgeslim.fuse`); :class:`edgeslim.sparsity.PatternExecConfig` times
every 3×3 conv in both forms on its real input and keeps the faster one. The
dense ONNX file the workflow also writes gains nothing from the patterns (ONNX
Runtime's Slice copies every shifted input), so this table is the only speed claim.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from edgeslim.core.methods import apply_
from edgeslim.core.modes import torch_threads
from edgeslim.fuse.conv_bn import fold_bn
from edgeslim.sparsity import PatternExecConfig


def pattern_execution(
    model: nn.Module, example: torch.Tensor, *, threads: int | None, runs: int
) -> dict:
    """Per 3×3 conv of ``model`` (squashed or masked): kept form, dense ms, pattern ms.

    Example:
        >>> m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)).eval()
        >>> rep = pattern_execution(m, torch.randn(1, 3, 8, 8), threads=1, runs=1)
        >>> list(rep["layers"]), rep["runtime"].startswith("PyTorch eager")
        ([], True)
    """
    with torch_threads(threads), torch.no_grad():
        twin = fold_bn(copy.deepcopy(model).eval(), example)
        twin = twin.to(memory_format=torch.channels_last)
        _, rec = apply_(twin, PatternExecConfig(runs=max(runs, 3)), calib=[example])
    layers = {
        n: {k: v[k] for k in ("kept", "dense_ms", "pattern_ms") if k in v}
        for n, v in rec.details["layers"].items()
    }
    return {
        "runtime": "PyTorch eager, channels_last, BN folded",
        "batch": int(example.shape[0]),
        "threads": rec.details["threads"],
        "layers": layers,
        "pattern_layers": sum(v["kept"] == "pattern" for v in layers.values()),
    }


def execution_line(ex: dict) -> str:
    """One report line: how many 3×3 convs run as PatternConv2d and the summed times."""
    d = sum(v.get("dense_ms", 0.0) for v in ex["layers"].values())
    p = sum(
        v.get("pattern_ms" if v["kept"] == "pattern" else "dense_ms", 0.0)
        for v in ex["layers"].values()
    )
    return (
        f"execution ({ex['runtime']}, batch {ex['batch']}, {ex['threads']} threads): "
        f"{ex['pattern_layers']} of {len(ex['layers'])} pattern convs run as PatternConv2d "
        f"(measured faster); 3x3 convs {d:.2f} ms dense -> {p:.2f} ms as kept"
    )
