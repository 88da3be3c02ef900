"""torchvision architectures (the ``vision`` extra): pruned == masked dense, ONNX exports.

Needs a working torchvision (see FACTS.md for the CPU shim); skipped without one.
"""

import pytest
import torch
from oracle import check_oracle, randomize_

from edgeslim.export.onnx import export_onnx
from edgeslim.models.inputs import InputSpec
from edgeslim.prune import PruneConfig, prune

NAMES = ["densenet121", "shufflenet_v2_x1_0", "mobilenet_v3_small", "efficientnet_b0"]


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_torchvision_model_oracle_and_export(tmp_path, name):
    models = pytest.importorskip("torchvision.models")
    torch.manual_seed(0)
    model = randomize_(getattr(models, name)(weights=None, num_classes=10))
    x = torch.randn(2, 3, 64, 64)
    check_oracle(model, x[:1], PruneConfig(ratio=0.3), x=x)
    res = prune(model, x[:1], PruneConfig(ratio=0.3))
    assert (
        export_onnx(res.model, InputSpec((1, 3, 64, 64)), tmp_path / "m.onnx").max_abs_diff < 1e-4
    )
