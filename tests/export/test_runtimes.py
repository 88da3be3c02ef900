"""The runtime registry: every installed runtime loads, runs and agrees with eager PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from edgeslim.bench.runtimes import Candidate, candidates, choose
from edgeslim.core.cpu import native_bf16
from edgeslim.core.errors import EdgeslimError
from edgeslim.export.onnx import export_onnx
from edgeslim.export.runtimes import (
    PRECISIONS,
    RUNTIMES,
    available_runtimes,
    get_runtime,
    is_qdq,
    runtimes_summary,
)
from edgeslim.models.inputs import InputSpec

SPEC = InputSpec((1, 3, 16, 16))


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 4),
    ).eval()


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory):
    return export_onnx(_net(), SPEC, tmp_path_factory.mktemp("rt") / "m.onnx").path


def test_registry_lists_every_runtime_with_version_and_native_precisions():
    assert {"onnxruntime", "openvino", "torch", "torch_compile"} <= set(RUNTIMES.names())
    assert available_runtimes()[0] == "onnxruntime"
    for d in runtimes_summary():
        assert d["version"], d
        assert "fp32" in d["native"] and set(d["native"]) <= set(PRECISIONS)
    torch_native = get_runtime("torch").native_precisions()
    assert ("bf16" in torch_native) == native_bf16()


@pytest.mark.parametrize("name", [n for n in available_runtimes() if n != "torch_compile"])
def test_fp32_runtime_matches_eager(name, onnx_file):
    net, x = _net(), SPEC.example(batch=3)
    rt = get_runtime(name)
    sess = rt.load(onnx_file if rt.artifact == "onnx" else net, threads=1, batch=None)
    out = sess.run([x.numpy()])[0]
    assert sess.precision == "fp32"
    np.testing.assert_allclose(out, net(x).detach().numpy(), atol=1e-4)


def test_unknown_runtime_and_missing_file_are_clear_errors(tmp_path):
    with pytest.raises(EdgeslimError, match="unknown runtime 'tensorrtx'"):
        get_runtime("tensorrtx")
    with pytest.raises(EdgeslimError, match="not found"):
        get_runtime("onnxruntime").load(tmp_path / "nope.onnx")
    with pytest.raises(EdgeslimError, match="precision"):
        get_runtime("onnxruntime").load(tmp_path / "nope.onnx", precision="int3")


@pytest.mark.skipif(native_bf16(), reason="this CPU has native bf16")
def test_bf16_is_refused_where_the_cpu_has_no_native_bf16():
    with pytest.raises(EdgeslimError, match="no native bf16"):
        get_runtime("torch").load(_net(), precision="bf16")


def test_candidates_offer_int8_only_for_a_qdq_file(onnx_file, tmp_path):
    from edgeslim.quant import PTQConfig, quantize_ptq
    from edgeslim.quant.qdq import export_qdq

    float_c = candidates(onnx_file)
    assert Candidate("onnxruntime", "fp32") in float_c
    assert all(c.precision in ("fp32", "bf16") for c in float_c)
    assert any(c.runtime == "torch" for c in float_c)
    qm = quantize_ptq(
        _net(), [SPEC.example(batch=4) for _ in range(2)], PTQConfig(), progress=False
    )
    q = export_qdq(qm.model, SPEC, tmp_path / "q.onnx").path
    assert is_qdq(q) and not is_qdq(onnx_file)
    q_c = candidates(q)
    assert q_c and all(c.precision == "int8" for c in q_c)
    assert not any(get_runtime(c.runtime).artifact == "module" for c in q_c)
    for c in q_c:  # every runtime that takes the file runs it as INT8 and agrees with ORT
        sess = get_runtime(c.runtime).load(q, threads=1)
        assert sess.precision == "int8"
        x = SPEC.example(batch=2).numpy()
        ref = get_runtime("onnxruntime").load(q, threads=1).run([x])[0]
        assert np.argmax(sess.run([x])[0], 1).tolist() == np.argmax(ref, 1).tolist()


def _row(rt, prec, ms, acc):
    return {"runtime": rt, "precision": prec, "latency_ms": {"8": ms}, "accuracy": acc}


def test_choose_picks_the_fastest_that_keeps_accuracy():
    rows = [
        _row("onnxruntime", "int8", 10.0, 0.90),
        _row("openvino", "int8", 4.0, 0.85),  # 5 points lost: excluded at 1 point
        _row("openvino", "bf16", 6.0, 0.899),
    ]
    ch = choose(rows, 8, max_drop=1.0, reference=0.90)
    assert ch.candidate == Candidate("openvino", "bf16")
    assert "1.67x onnxruntime int8" in ch.why and "excluded" in ch.why
    assert choose(rows, 8).candidate == Candidate("openvino", "int8")
    with pytest.raises(EdgeslimError, match="batch 1"):
        choose(rows, 1)
