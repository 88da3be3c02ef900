"""ORT's dynamic INT8 and INT4 ``MatMulNBits`` on an exported BERT: graph, oracle, errors."""

from __future__ import annotations

import collections
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper
from torch import nn

from edgeslim.bench.runtimes import candidates
from edgeslim.cli.main import main
from edgeslim.core.errors import EdgeslimError
from edgeslim.export.onnx import export_onnx
from edgeslim.export.ort import ort_run, ort_session
from edgeslim.export.ort_quant import OrtQuantConfig, quantize_onnx
from edgeslim.export.runtimes import file_precision, get_runtime
from edgeslim.models.inputs import InputSpec

pytest.importorskip("transformers")
from edgeslim.models.hf import build_hf  # noqa: E402

CFG = {
    "model_type": "bert",
    "vocab_size": 300,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "num_labels": 3,
}
SPEC = InputSpec((1, 16), "int64", 300)
LINEAR_MATMULS = 2 * 6  # q, k, v, attention out, FFN in, FFN out per layer (3-D inputs)
# ORT vs eager FP32 logits, as a fraction of max |eager logit|: measured ~2% (dynamic INT8,
# activations quantized per run) and <1% (INT4 blocks of 32, float activations)
REL_TOL = {"dynamic": 0.1, "int4": 0.1}


@pytest.fixture(scope="module")
def bert():
    torch.manual_seed(0)
    return build_hf(CFG).eval()


@pytest.fixture(scope="module")
def files(bert, tmp_path_factory):
    d = tmp_path_factory.mktemp("ortq")
    fp32 = export_onnx(bert, SPEC, d / "fp32.onnx").path  # once (export_quantized: CLI test)
    return {m: quantize_onnx(fp32, d / f"{m}.onnx", OrtQuantConfig(m)) for m in REL_TOL}


def _optimized_ops(path, tmp_path) -> collections.Counter:
    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    so.log_severity_level = 3
    ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return collections.Counter(n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node)


@pytest.mark.parametrize("mode", list(REL_TOL))
def test_quantized_bert_matches_eager(mode, bert, files):
    res = files[mode]
    x = SPEC.example(batch=32, seed=5)
    ref = bert(x).detach().numpy()
    got = ort_run(ort_session(res.path, threads=1), x.numpy())
    assert np.abs(got - ref).max() <= REL_TOL[mode] * np.abs(ref).max()
    assert res.quantized == LINEAR_MATMULS
    assert res.size_bytes < res.fp32_size_bytes
    assert file_precision(res.path) == ("int4" if mode == "int4" else "int8")


def test_dynamic_is_per_channel_and_runs_integer_kernels(files, tmp_path):
    res = files["dynamic"]
    model = onnx.load(str(res.path))
    assert res.ops["DynamicQuantizeLinear"] >= 1 and res.ops["MatMulInteger"] >= LINEAR_MATMULS
    inits = {i.name: i for i in model.graph.initializer}
    mmi = [n for n in model.graph.node if n.op_type == "MatMulInteger"]
    widths = [numpy_helper.to_array(inits[n.input[3]]).size for n in mmi if n.input[3] in inits]
    assert len(widths) >= LINEAR_MATMULS and min(widths) > 1  # one zero-point per column
    ops = _optimized_ops(res.path, tmp_path)
    integer = ops["DynamicQuantizeMatMul"] + ops["MatMulIntegerToFloat"]
    assert integer >= LINEAR_MATMULS
    # what stays float: attention's two activation x activation matmuls per layer
    assert ops["MatMul"] + ops["FusedMatMul"] <= 2 * CFG["num_hidden_layers"]


def _dequantize_nbits(node, inits) -> np.ndarray:
    """The (N, K) weight a symmetric ``MatMulNBits`` node holds: (code - 8) * block scale."""
    attr = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    k, n, bs = attr["K"], attr["N"], attr["block_size"]
    packed = numpy_helper.to_array(inits[node.input[1]]).reshape(n, -1)
    codes = np.stack([packed & 0x0F, packed >> 4], -1).reshape(n, -1)[:, :k].astype(np.float32)
    scales = numpy_helper.to_array(inits[node.input[2]]).reshape(n, -1)
    assert len(node.input) < 4 or not node.input[3]  # symmetric: no zero-points stored
    return (codes - 8) * np.repeat(scales, bs, axis=1)[:, :k]


def test_int4_graph_is_matmulnbits_and_equals_its_dequantized_weights(bert, files, tmp_path):
    """Oracle: eager PyTorch with the file's dequantized 4-bit weights equals ORT's kernel."""
    res = files["int4"]
    model = onnx.load(str(res.path))
    nodes = [n for n in model.graph.node if n.op_type == "MatMulNBits"]
    assert len(nodes) == LINEAR_MATMULS and all(n.domain == "com.microsoft" for n in nodes)
    for n in nodes:
        attr = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        assert attr["bits"] == 4 and attr["block_size"] == 32
    inits = {i.name: i for i in model.graph.initializer}
    twin = build_hf(CFG).eval()
    twin.load_state_dict(bert.state_dict())
    linears = {n: m for n, m in twin.named_modules() if isinstance(m, nn.Linear)}
    for node in nodes:
        w_hat = _dequantize_nbits(node, inits)
        name, lin = min(
            ((k, m) for k, m in linears.items() if tuple(m.weight.shape) == w_hat.shape),
            key=lambda km: float((km[1].weight.detach().numpy() - w_hat).__abs__().max()),
        )
        w = lin.weight.detach().numpy()
        step = np.abs(w).max()  # a block's scale is at most max|w| / 8
        assert np.abs(w - w_hat).max() <= step / 8, name  # within one code step of the original
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(w_hat))
        del linears[name]
    x = SPEC.example(batch=8, seed=3)
    ref = twin(x).detach().numpy()
    got = ort_run(ort_session(res.path, threads=1), x.numpy())
    np.testing.assert_allclose(got, ref, atol=1e-4 * max(1.0, np.abs(ref).max()))
    assert _optimized_ops(res.path, tmp_path)["MatMulNBits"] == LINEAR_MATMULS


def test_runtimes_load_quantized_files_in_their_precision(files):
    x = [SPEC.example(batch=2).numpy()]
    for mode, prec in (("dynamic", "int8"), ("int4", "int4")):
        sess = get_runtime("onnxruntime").load(files[mode].path, threads=1)
        assert sess.precision == prec and sess.run(x)[0].shape == (2, 3)
        ort_cands = [c for c in candidates(files[mode].path) if c.runtime == "onnxruntime"]
        assert [c.precision for c in ort_cands] == [prec]


def test_cli_export_ort_quant_then_bench(tmp_path, capsys):
    cfg = tmp_path / "bert.json"
    cfg.write_text(json.dumps(CFG))
    out = tmp_path / "b.int4.onnx"
    assert main(["export", f"hf:{cfg}", "-o", str(out), "--ort-quant", "int4"]) == 0
    text = capsys.readouterr().out
    assert "MatMulNBits" in text and "smaller" in text and "parity" in text
    assert main(["bench", str(out), "--batch", "1", "--runs", "2", "--warmup", "0"]) == 0


def _cnn_onnx(tmp_path):
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()
    return export_onnx(net, InputSpec((1, 3, 8, 8)), tmp_path / "cnn.onnx").path


@pytest.mark.parametrize("mode", list(REL_TOL))
def test_bad_inputs_are_clear_errors(mode, files, tmp_path):
    with pytest.raises(EdgeslimError, match="no MatMul with a constant weight"):
        quantize_onnx(_cnn_onnx(tmp_path), tmp_path / "q.onnx", OrtQuantConfig(mode))
    with pytest.raises(EdgeslimError, match="already quantized"):
        quantize_onnx(files[mode].path, tmp_path / "q.onnx", OrtQuantConfig(mode))
    with pytest.raises(EdgeslimError, match="not found"):
        quantize_onnx(tmp_path / "nosuch.onnx", tmp_path / "q.onnx", OrtQuantConfig(mode))
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx file")
    with pytest.raises(EdgeslimError, match="not a readable ONNX model"):
        quantize_onnx(bad, tmp_path / "q.onnx", OrtQuantConfig(mode))
    assert not (tmp_path / "q.onnx").exists()  # nothing half-written


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"mode": "int2"}, "choose dynamic or int4"),
        ({"mode": "int4", "block_size": 24}, "power of two"),
        ({"mode": "int4", "accuracy_level": 7}, "accuracy level"),
    ],
)
def test_bad_config_is_a_clear_error(kwargs, match):
    with pytest.raises(EdgeslimError, match=match):
        OrtQuantConfig(**kwargs)


def test_cli_refuses_ort_quant_of_a_cnn(tmp_path, capsys):
    f = tmp_path / "cnn.py"
    f.write_text(
        "from torch import nn\n"
        "def make():\n"
        "    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())\n"
    )
    out = tmp_path / "r.onnx"
    argv = ["export", f"{f}:make", "--input-shape", "1,3,8,8", "-o", str(out)]
    argv += ["--ort-quant", "int4"]
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert "the model's FP32 export: no MatMul with a constant weight" in err
    assert not out.exists() and not list(tmp_path.glob(".r.onnx*"))  # no temporaries left
