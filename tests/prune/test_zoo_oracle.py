"""Every zoo model x every criterion: the pruned model equals the masked dense model
(within 1e-5), and every pruned zoo model exports to ONNX with parity."""

import pytest
import torch
from oracle import check_oracle, randomize_

from edgeslim.export.onnx import export_onnx
from edgeslim.graph import build_dependency_graph
from edgeslim.models import ZOO, build_zoo_model
from edgeslim.models.inputs import InputSpec
from edgeslim.prune import CRITERIA, PruneConfig, prune
from edgeslim.prune.importance import activation_stats, gradient_stats

SIZE = {name: 32 for name in ZOO.names()}  # ImageNet models too: they pool adaptively


@pytest.fixture(scope="module")
def prepared():
    cache: dict = {}

    def get(name: str):
        if name not in cache:
            torch.manual_seed(0)
            model = randomize_(build_zoo_model(name, num_classes=10))
            s = SIZE[name]
            x = torch.randn(2, 3, s, s)
            graph = build_dependency_graph(model, x[:1])
            batches = [(x, torch.tensor([1, 3]))]
            stats = {
                "grad": gradient_stats(model, batches),
                "act": activation_stats(model, graph, batches),
            }
            cache[name] = (model, x, graph, stats)
        return cache[name]

    return get


HEAVY = {"vgg16_bn", "resnet50"}  # 138M / 25M parameters: in the slow run only
CASES = [
    pytest.param(n, c, marks=[pytest.mark.slow] if n in HEAVY else [])
    for n in ZOO.names()
    if ZOO.get(n).task == "classification"  # the data criteria score with class labels
    for c in CRITERIA.names()
]


@pytest.mark.parametrize(("name", "criterion"), CASES)
def test_zoo_criterion_oracle(prepared, name, criterion):
    model, x, graph, stats = prepared(name)
    check_oracle(
        model, x[:1], PruneConfig(ratio=0.4, criterion=criterion), graph=graph, stats=stats, x=x
    )


FAST_EXPORT = ("resnet20", "resnet18", "vgg16_bn_cifar")  # residual, plain, flatten-free VGG
EXPORTS = [
    pytest.param(n, marks=[] if n in FAST_EXPORT else [pytest.mark.slow]) for n in ZOO.names()
]


@pytest.mark.parametrize("name", EXPORTS)
def test_zoo_pruned_exports_to_onnx(tmp_path, name):
    s = SIZE[name]
    res = prune(
        build_zoo_model(name, num_classes=10), torch.randn(1, 3, s, s), PruneConfig(ratio=0.5)
    )
    r = export_onnx(res.model, InputSpec((1, 3, s, s)), tmp_path / f"{name}.onnx")
    assert r.max_abs_diff < 1e-4
