"""ONNX Runtime's per-node profile, tied back to modules: what the runtime really ran."""

import pytest
import torch
from torch import nn

from edgeslim.bench.profile import format_profile, layer_times, profile_onnx
from edgeslim.core.errors import EdgeslimError
from edgeslim.export.onnx import export_onnx
from edgeslim.models.inputs import InputSpec
from edgeslim.quant.ptq import quantize_ptq
from edgeslim.quant.qdq import export_qdq

SPEC = InputSpec((1, 3, 16, 16))


def _net():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4),
    ).eval()  # fmt: skip


def test_fp32_profile_names_modules_kernels_and_fusions(tmp_path):
    net = _net()
    path = export_onnx(net, SPEC, tmp_path / "m.onnx").path
    rows = profile_onnx(path, SPEC, batch=2, runs=3, threads=1)
    assert abs(sum(r.share for r in rows) - 1.0) < 1e-6
    assert all(r.ms >= 0 for r in rows) and rows == sorted(rows, key=lambda r: -r.ms)
    convs = [r for r in rows if "Conv" in r.kernel]
    assert len(convs) == 2  # BN folded and ReLU fused: two conv nodes, no BN/Relu nodes left
    modules = {n for n, _ in net.named_modules()}
    assert all(r.scope in modules for r in convs)  # "1" (the BN the conv folded into) or "3"
    assert {r.fused for r in convs} == {"Conv+Relu"}
    assert not any(r.kernel in ("BatchNormalization", "Relu") for r in rows)
    # the conv folded into BN "1" is credited to conv "0"; the Linear is there too
    times = layer_times(rows, net)
    assert {"0", "3"} <= set(times) <= {"0", "3", "7"} and all(v >= 0 for v in times.values())
    text = format_profile(rows)
    assert "time by kernel:" in text and "Conv" in text


def test_int8_qdq_runs_as_integer_kernels(tmp_path):
    net = _net()
    qm = quantize_ptq(net, [torch.randn(4, 3, 16, 16) for _ in range(2)], progress=False)
    path = export_qdq(qm.model, SPEC, tmp_path / "q.onnx").path
    rows = profile_onnx(path, SPEC, batch=2, runs=2, threads=1)
    kernels = {r.kernel for r in rows}
    assert {"0", "3"} <= set(layer_times(rows, qm.model))  # tied back to the layers
    assert kernels & {"QLinearConv", "ConvInteger", "NhwcQLinearConv"}, kernels
    assert "DequantizeLinear" not in kernels or "QLinearConv" in kernels


def test_profile_refuses_zero_runs(tmp_path):
    path = export_onnx(_net(), SPEC, tmp_path / "m.onnx").path
    with pytest.raises(EdgeslimError, match="at least 1"):
        profile_onnx(path, SPEC, runs=0)
