"""ONNX export: dynamic batch, parity against eager, loud failure."""

import numpy as np
import pytest
import torch
from torch import nn

from edgeslim.core import EdgeslimError
from edgeslim.export.onnx import export_onnx, parity
from edgeslim.export.ort import ort_run, ort_session
from edgeslim.models.inputs import InputSpec
from edgeslim.models.spec import load_model


@pytest.mark.parametrize("name", ["resnet20", "mobilenet_v2_cifar"])
def test_export_parity_dynamic_batch(tmp_path, name):
    lm = load_model(name)
    lm.model.train()  # export must use eval mode and give the mode back
    res = export_onnx(lm.model, lm.input, tmp_path / "m.onnx")
    assert lm.model.training
    assert res.max_abs_diff < 1e-4 and res.size_bytes == (tmp_path / "m.onnx").stat().st_size
    sess = ort_session(res.path)
    lm.model.eval()
    for batch in (1, 5):
        x = lm.input.example(batch=batch, seed=7)
        got = ort_run(sess, x.numpy())
        np.testing.assert_allclose(got, lm.model(x).detach().numpy(), atol=1e-4)


def test_parity_failure_is_loud(tmp_path):
    m = nn.Linear(4, 2).eval()
    spec = InputSpec((1, 4))
    res = export_onnx(m, spec, tmp_path / "m.onnx")
    with torch.no_grad():
        m.weight.add_(1.0)  # the eager model drifts away from the exported file
    with pytest.raises(EdgeslimError, match="parity check failed"):
        parity(m, spec, res.path)


def test_old_opset_rejected(tmp_path):
    with pytest.raises(EdgeslimError, match="opset 13"):
        export_onnx(nn.Linear(2, 2), InputSpec((1, 2)), tmp_path / "m.onnx", opset=13)


def test_missing_onnx_is_clear(tmp_path):
    with pytest.raises(EdgeslimError, match="not found"):
        ort_session(tmp_path / "none.onnx")
