"""QDQ export: edgeslim's own qparams in the graph, INT8 kernels, parity with the simulation."""

import collections

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from edgeslim.core.cpu import int8_pairs_saturate
from edgeslim.core.errors import EdgeslimError
from edgeslim.data import load_dataset, make_loader
from edgeslim.models.inputs import InputSpec
from edgeslim.models.spec import load_model
from edgeslim.quant.config import PTQConfig, activation_spec
from edgeslim.quant.ptq import quantize_ptq
from edgeslim.quant.qdq import export_qdq


class Net(nn.Module):
    """Residual + concat + max-pool + ReLU6, trained on 8x8 digits."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()
        )
        self.a = nn.Sequential(
            nn.Conv2d(16, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU6()
        )
        self.b = nn.Conv2d(16, 16, 3, 1, 1)
        self.c = nn.Conv2d(16, 8, 1)
        self.pool = nn.MaxPool2d(2)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(24, 10)

    def forward(self, x):
        x = self.pool(self.stem(x))
        y = self.relu(x + self.b(self.a(x)))
        y = torch.cat([y, self.c(y)], 1)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(y, 1), 1))


def _digits(split):
    ds = load_dataset("digits", split)
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    y = torch.tensor([int(ds[i][1]) for i in range(len(ds))])
    return TensorDataset(F.avg_pool2d(x, 4), y)


@pytest.fixture(scope="module")
def quantized():
    torch.manual_seed(0)
    model = Net()
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    train = make_loader(_digits("train"), 64, shuffle=True)
    for _ in range(2):
        for x, y in train:
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
    model.eval()
    calib = [x for x, _ in make_loader(_digits("val"), 64, shuffle=False)]
    return quantize_ptq(model, calib[:3], PTQConfig(calib_batches=3), progress=False)


def _ops(path):
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.optimized_model_filepath = str(path) + ".opt.onnx"
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    ops = collections.Counter(n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node)
    return sess, ops


def test_qdq_parity_and_int8_kernels(quantized, tmp_path):
    res = export_qdq(quantized.model, InputSpec((1, 3, 8, 8)), tmp_path / "q.onnx")
    assert res.quantized_weights == len(quantized.layers())
    sess, ops = _ops(res.path)
    assert ops["QLinearConv"] == 4  # every conv runs on integer kernels
    assert ops["QLinearAdd"] == 1 and ops["QLinearConcat"] == 1
    assert ops.get("Conv", 0) == 0
    agree = n = 0
    for split in ("val", "test"):
        for x, _ in make_loader(_digits(split), 128, shuffle=False):
            got = sess.run(None, {"input": x.numpy()})[0]
            with torch.no_grad():
                sim = quantized.model(x).numpy()
            agree += int((got.argmax(1) == sim.argmax(1)).sum())
            n += len(x)
            diff, scale = np.abs(got - sim), max(1.0, np.abs(sim).max())
            assert diff.max() < 0.05 * scale
            # the same arithmetic up to float rounding: a float bias in the simulation
            # (against ORT's int32 bias) made the 99th percentile 3.5e-2 here, now 1e-6
            assert np.percentile(diff, 99) < 1e-4 * scale
    assert agree / n >= 0.995


def test_simulated_bias_is_the_int32_bias_in_the_graph(quantized, tmp_path):
    res = export_qdq(quantized.model, InputSpec((1, 3, 8, 8)), tmp_path / "q.onnx")
    g = onnx.load(str(res.path)).graph
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in g.initializer}
    dq = {n.output[0]: n for n in g.node if n.op_type == "DequantizeLinear"}
    checked = 0
    for node in g.node:
        if node.op_type not in ("Conv", "Gemm") or len(node.input) < 3:
            continue
        layer = quantized.model.get_submodule(node.input[1].removesuffix(".weight"))
        codes, scale, _ = (inits[i] for i in dq[node.input[2]].input)
        assert codes.dtype == np.int32
        np.testing.assert_array_equal(scale, layer.bias_scale.numpy())
        with torch.no_grad():
            np.testing.assert_array_equal(codes.astype(np.float32) * scale, layer.qbias().numpy())
        checked += 1
    assert checked == len(quantized.layers())  # every layer here has a bias after BN folding


def test_scales_are_edgeslims_own(quantized, tmp_path):
    res = export_qdq(quantized.model, InputSpec((1, 3, 8, 8)), tmp_path / "q.onnx")
    g = onnx.load(str(res.path)).graph
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in g.initializer}
    w = inits["stem.0.weight_quantized"]
    assert w.dtype == np.int8
    fq = quantized.model.get_submodule("stem.0").weight_fq
    np.testing.assert_array_equal(inits["stem.0.weight_scale"], fq.scale.numpy())
    ref = torch.clamp(
        torch.round(
            quantized.model.get_submodule("stem.0").weight.detach() / fq.scale[:, None, None, None]
        ),
        -127,
        127,
    )
    np.testing.assert_array_equal(w, ref.numpy().astype(np.int8))
    # the input quantizer's scale is in the graph too
    s0 = float(quantized.model.act_fq.get_submodule("0").scale)
    consts = [
        onnx.numpy_helper.to_array(n.attribute[0].t)
        for n in g.node
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"
    ]
    scalars = [float(c) for c in consts if c.size == 1 and c.dtype == np.float32]
    assert any(
        abs(v - s0) == 0
        for v in scalars
        + [float(v) for v in inits.values() if v.size == 1 and v.dtype == np.float32]
    )


def test_zoo_resnet20_exports_smaller(tmp_path):
    lm = load_model("resnet20")
    qm = quantize_ptq(
        lm.model, [lm.input.example(batch=8)], PTQConfig(calib_batches=1), progress=False
    )
    res = export_qdq(qm.model, lm.input, tmp_path / "r20.onnx")
    _, ops = _ops(res.path)
    assert ops["QLinearConv"] == 21 and ops.get("Conv", 0) == 0
    assert res.size_bytes < 0.35 * 1_100_000  # float ResNet-20 is about 1.1 MB


def test_low_bit_activations_refused(tmp_path):
    lm = load_model("resnet20")
    cfg = PTQConfig(activation=activation_spec(4), calib_batches=1)
    qm = quantize_ptq(lm.model, [lm.input.example(batch=2)], cfg, progress=False)
    with pytest.raises(EdgeslimError, match="8-bit per-tensor"):
        export_qdq(qm.model, lm.input, tmp_path / "x.onnx")


@pytest.mark.skipif(not int8_pairs_saturate(), reason="this CPU's INT8 kernels do not saturate")
def test_full_range_weights_fail_parity_where_kernels_saturate(tmp_path):
    """Why ``reduce_range`` exists: without VNNI, ORT clips full 8-bit weights, and the
    parity check refuses the file rather than ship a wrong model."""
    torch.manual_seed(0)
    model = Net().eval()
    calib = [x for x, _ in make_loader(_digits("val"), 64, shuffle=False)][:2]
    full = quantize_ptq(model, calib, PTQConfig(calib_batches=2, reduce_range=False), False)
    with pytest.raises(EdgeslimError, match="parity"):
        export_qdq(full.model, InputSpec((1, 3, 8, 8)), tmp_path / "full.onnx")
