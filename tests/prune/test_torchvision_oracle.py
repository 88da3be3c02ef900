"""Architectures written elsewhere: torchvision's DenseNet (concat), ShuffleNetV2 (split +
shuffle), MobileNetV3 (depthwise + squeeze-excitation + hardswish), EfficientNet (SE +
stochastic depth), RegNetY and ResNeXt (grouped convs, pruned by whole groups). Pruned ==
masked dense within 1e-5, and the result exports."""

import importlib.util

import pytest
import torch
from oracle import check_oracle, randomize_

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("torchvision") is None, reason="torchvision not installed"
)

MODELS = [
    "densenet121",
    "shufflenet_v2_x1_0",
    "mobilenet_v3_small",
    "efficientnet_b0",
    "regnet_y_400mf",
    "resnext50_32x4d",
]


@pytest.mark.parametrize("name", MODELS)
def test_torchvision_model_prunes_exactly_and_exports(name, tmp_path):
    from edgeslim.export.onnx import export_onnx
    from edgeslim.models.inputs import InputSpec
    from edgeslim.models.tv import build_tv
    from edgeslim.prune import PruneConfig

    torch.manual_seed(0)
    model = randomize_(build_tv(name, num_classes=10))
    x = torch.randn(2, 3, 64, 64)
    pruned = check_oracle(model, x[:1], PruneConfig(ratio=0.3, criterion="l1"), x=x)
    export_onnx(pruned, InputSpec((1, 3, 64, 64)), tmp_path / f"{name}.onnx")
