"""BERT built from a config: PTQ on its Linear layers, QDQ export, ONNX Runtime INT8 kernels."""

import collections

import numpy as np
import onnx
import onnxruntime as ort
import pytest

pytest.importorskip("transformers")

from edgeslim.export.ort import ort_run, ort_session  # noqa: E402
from edgeslim.models.hf import build_hf  # noqa: E402
from edgeslim.models.inputs import InputSpec  # noqa: E402
from edgeslim.quant.config import PTQConfig  # noqa: E402
from edgeslim.quant.ptq import quantize_ptq  # noqa: E402
from edgeslim.quant.qdq import export_qdq  # noqa: E402

CFG = {
    "model_type": "bert",
    "vocab_size": 500,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "num_labels": 3,
}


def test_bert_quantizes_exports_and_runs(tmp_path):
    model = build_hf(CFG).eval()
    spec = InputSpec((1, 12), "int64", 500)
    calib = [spec.example(batch=4, seed=i) for i in range(2)]
    with pytest.warns(UserWarning, match="not torch.fx-traceable"):
        qm = quantize_ptq(model, calib, PTQConfig(calib_batches=2), progress=False)
    assert len(qm.layers()) == 2 * 6 + 2  # q, k, v, out, ffn1, ffn2 per layer + pooler + head
    res = export_qdq(qm.model, spec, tmp_path / "bert.onnx")
    assert res.quantized_weights == len(qm.layers())
    x = spec.example(batch=6, seed=9)
    got = ort_run(ort_session(res.path), x.numpy())
    sim = qm.model(x).detach().numpy()
    assert np.abs(got - sim).max() < 1e-3 * max(1.0, np.abs(sim).max())
    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    so.log_severity_level = 3
    ort.InferenceSession(str(res.path), so, providers=["CPUExecutionProvider"])
    ops = collections.Counter(n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node)
    assert ops["MatMulIntegerToFloat"] >= 12  # the encoder's linears run on int8 kernels
