"""Pruning never increases MACs, and the input's MACs are counted the same way as the
pruned model's (attention models included: a ViT once reported 15.6 -> 18.5 MMACs).

Every zoo model, a user-style ViT on ``nn.MultiheadAttention``, torchvision's
VisionTransformer (small config) and a user-style YOLO with three outputs.
"""

import importlib.util
from pathlib import Path

import pytest
import torch

from edgeslim.bench.macs import count_macs, count_params
from edgeslim.models import ZOO, build_zoo_model
from edgeslim.models.user import build_from_file
from edgeslim.prune import PruneConfig, prune

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
HEAVY = {"vgg16_bn", "resnet50", "yolov5s"}  # yolov5s: yolov5n covers its graph


def tv_vit():
    from edgeslim.models.tv import import_torchvision

    tv = import_torchvision()
    torch.manual_seed(0)
    return tv.models.VisionTransformer(32, 8, 2, 4, 64, 128, num_classes=10).eval()


MODELS = {
    **{n: (lambda n=n: build_zoo_model(n, num_classes=10), (1, 3, 32, 32)) for n in ZOO.names()},
    "vit_tiny": (lambda: build_from_file(f"{FIXTURES}/vit_tiny.py:vit_tiny"), (1, 3, 32, 32)),
    "tv_vit": (tv_vit, (1, 3, 32, 32)),
    "yolo_tiny": (lambda: build_from_file(f"{FIXTURES}/yolo_tiny.py:yolo_tiny"), (1, 3, 64, 64)),
}
NEEDS = {"tv_vit": "torchvision"}


def _case(name):
    marks = [pytest.mark.slow] if name in HEAVY else []
    if name in NEEDS and importlib.util.find_spec(NEEDS[name]) is None:
        marks.append(pytest.mark.skip(reason=f"{NEEDS[name]} not installed"))
    return pytest.param(name, marks=marks)


@pytest.mark.parametrize("name", [_case(n) for n in MODELS])
def test_pruning_never_increases_macs(name):
    factory, shape = MODELS[name]
    model = factory().eval()
    x = torch.randn(shape)
    before = count_macs(model, x)[0]
    res = prune(model, x, PruneConfig(ratio=0.3))
    assert res.macs[0] == before  # the input counted as it is, not only once converted
    assert count_macs(res.model, x)[0] == res.macs[1] < before
    assert res.params[1] < res.params[0] == count_params(model)
