"""Several outputs through export, the pruning oracle and the QDQ writer: each output is
a named graph output, checked on its own, and a failure names the output at fault."""

import copy

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from edgeslim.core import EdgeslimError
from edgeslim.export.onnx import export_onnx, output_parity
from edgeslim.export.ort import ort_outputs, ort_session
from edgeslim.models.inputs import InputSpec
from edgeslim.prune import PruneConfig, prune
from edgeslim.prune.structured import check_against_masked
from edgeslim.quant.config import PTQConfig
from edgeslim.quant.ptq import quantize_ptq
from edgeslim.quant.qdq import export_qdq

SPEC = InputSpec((1, 3, 16, 16))


class TwoHeads(nn.Module):
    """A trunk and two heads; ``out`` picks how the heads are returned."""

    def __init__(self, out: str = "tuple") -> None:
        super().__init__()
        self.out = out
        self.trunk = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.down = nn.Sequential(nn.Conv2d(16, 16, 3, 2, 1), nn.ReLU())
        self.cls = nn.Conv2d(16, 5, 1)
        self.box = nn.Conv2d(16, 4, 1)

    def forward(self, x):
        f = self.trunk(x)
        c, b = self.cls(f), self.box(self.down(f))
        if self.out == "dict":
            return {"scores": c, "boxes": b}
        if self.out == "nested":
            return {"scores": c, "extra": (b, b.amax((2, 3)))}
        return c, b


def two_heads(out="tuple"):
    torch.manual_seed(0)
    return TwoHeads(out).eval()


@pytest.mark.parametrize(
    ("out", "names"),
    [
        ("tuple", ["output0", "output1"]),
        ("dict", ["scores", "boxes"]),
        ("nested", ["scores", "extra_0", "extra_1"]),
    ],
)
def test_each_output_is_named_and_checked(tmp_path, out, names):
    m = two_heads(out)
    res = export_onnx(m, SPEC, tmp_path / "m.onnx")
    assert [o.name for o in onnx.load(str(res.path)).graph.output] == names
    assert list(res.output_diffs) == names and res.max_abs_diff == max(res.output_diffs.values())
    got = ort_outputs(ort_session(res.path), SPEC.example(batch=5).numpy())
    assert list(got) == names and all(v.shape[0] == 5 for v in got.values())  # dynamic batch


def test_parity_error_names_the_output_that_disagrees(tmp_path):
    m = two_heads("dict")
    res = export_onnx(m, SPEC, tmp_path / "m.onnx")
    with torch.no_grad():
        m.box.bias.add_(1.0)  # only "boxes" drifts from the file
    with pytest.raises(EdgeslimError, match="on output 'boxes'"):
        output_parity(m, SPEC, res.path)


def test_oracle_compares_every_output():
    m, x = two_heads(), SPEC.example()
    res = prune(m, x, PruneConfig(ratio=0.5))
    assert (res.model.cls.out_channels, res.model.box.out_channels) == (5, 4)  # outputs kept
    other = copy.deepcopy(res.model)
    with torch.no_grad():
        other.box.bias.add_(1.0)
    with pytest.raises(EdgeslimError, match="on output 'output1'"):
        check_against_masked(res.model, other, x)
    assert check_against_masked(res.model, copy.deepcopy(res.model), x) == 0.0


def test_qdq_export_checks_every_output_against_the_simulation(tmp_path):
    m = two_heads("dict")
    calib = [SPEC.example(batch=16, seed=s) for s in range(2)]
    qm = quantize_ptq(m, calib, PTQConfig(calib_batches=2), progress=False)
    res = export_qdq(qm.model, SPEC, tmp_path / "q.onnx")
    assert list(res.output_diffs) == ["scores", "boxes"] and res.quantized_weights == 4
    x = SPEC.example(batch=3, seed=4)
    got = ort_outputs(ort_session(res.path), x.numpy())
    with torch.no_grad():
        sim = qm.model(x)
    for name in ("scores", "boxes"):
        scale = max(1.0, float(sim[name].abs().max()))
        assert np.abs(got[name] - sim[name].numpy()).max() < 0.05 * scale


class DataDependent(TwoHeads):
    """torch.export rejects the data-dependent branch; the TorchScript fallback exports it."""

    def forward(self, x):
        if float(x.abs().sum()) > 0:
            return super().forward(x)
        return super().forward(-x)


def test_fallback_exporter_names_outputs_and_keeps_batch_dynamic(tmp_path):
    torch.manual_seed(0)
    m = DataDependent("dict").eval()
    res = export_onnx(m, SPEC, tmp_path / "m.onnx")
    assert [o.name for o in onnx.load(str(res.path)).graph.output] == ["scores", "boxes"]
    got = ort_outputs(ort_session(res.path), SPEC.example(batch=4).numpy())
    assert [v.shape[0] for v in got.values()] == [4, 4]
