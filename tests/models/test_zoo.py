"""Every zoo model builds, runs and exports; reference architectures match torchvision.

Parameter counts and MACs are checked against torchvision's published numbers. Those
checks build on the ``meta`` device: shapes only, no memory or compute, so even
VGG-16 (138M params) costs nothing.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from edgeslim.core.errors import EdgeslimError
from edgeslim.models import ZOO, build_zoo_model
from edgeslim.tasks import get_task

ALL_MODELS = ZOO.names()
# one (batch, classes[, H, W]) output; detectors return a tuple of head maps (test_yolo.py)
DENSE = [n for n in ALL_MODELS if ZOO.get(n).task != "detection"]

# Heavy ImageNet models run their real forward at a small size (all pool adaptively).
SMALL_INPUT = {"vgg16_bn": (1, 3, 32, 32), "resnet50": (1, 3, 64, 64)}

TORCHVISION_PARAMS = {
    "resnet18": 11_689_512,
    "resnet50": 25_557_032,
    "mobilenet_v2": 3_504_872,
    "vgg16_bn": 138_365_992,
}

# (expected MACs at the default input, relative tolerance)
REFERENCE_MACS = {
    "resnet18": (1.82e9, 0.02),
    "resnet50": (4.1e9, 0.05),
    "mobilenet_v2": (0.30e9, 0.05),
}


def _batch(shape: tuple[int, ...], n: int = 2) -> tuple[int, ...]:
    return (n, *shape[1:])


def _num_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_zoo_has_expected_models() -> None:
    expected = {
        "resnet18", "resnet50", "resnet20", "resnet56", "resnet20_half",
        "vgg16_bn", "vgg16_bn_cifar", "mobilenet_v2", "mobilenet_v2_cifar",
    }  # fmt: skip
    assert expected <= set(ALL_MODELS)


@pytest.mark.parametrize("name", DENSE)
def test_forward_shape(name: str) -> None:
    entry = ZOO.get(name)
    model = build_zoo_model(name).eval()
    x = torch.randn(_batch(SMALL_INPUT.get(name, entry.input_shape)))
    with torch.no_grad():
        out = model(x)
    get_task(entry.task).check_output(out, x, entry.num_classes)  # (2, classes[, H, W])
    assert out.shape[:2] == (2, entry.num_classes)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", DENSE)
def test_num_classes_override(name: str) -> None:
    with torch.device("meta"):
        model = build_zoo_model(name, num_classes=7)
        out = model.eval()(torch.empty(_batch(ZOO.get(name).input_shape)))
    assert out.shape[:2] == (2, 7)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_no_shared_activation_modules(name: str) -> None:
    """Each activation module runs once per call of the module holding it (torch.export
    needs it): never reused at two places of one forward. A subnet that is itself called
    several times (RetinaNet's heads, shared by the pyramid levels) runs it once a call."""
    with torch.device("meta"):
        model = build_zoo_model(name).eval()
        calls: dict[str, int] = {}
        acts = {
            n for n, m in model.named_modules()
            if isinstance(m, torch.nn.ReLU | torch.nn.ReLU6 | torch.nn.SiLU)
        }  # fmt: skip
        handles = [
            m.register_forward_hook(lambda *_, n=n: calls.__setitem__(n, calls.get(n, 0) + 1))
            for n, m in model.named_modules()
        ]
        try:
            model(torch.empty(ZOO.get(name).input_shape))
        finally:
            for h in handles:
                h.remove()
    assert acts and acts <= set(calls)
    for n in acts:
        assert calls[n] == calls[n.rpartition(".")[0]], n
    shared = {n for n in acts if calls[n] > 1}
    assert not shared or name.startswith("retinanet"), shared


@pytest.mark.parametrize("name", sorted(TORCHVISION_PARAMS))
def test_param_count_matches_torchvision(name: str) -> None:
    with torch.device("meta"):
        model = build_zoo_model(name)
    assert _num_params(model) == TORCHVISION_PARAMS[name]


@pytest.mark.parametrize("name", sorted(REFERENCE_MACS))
def test_macs_match_reference(name: str) -> None:
    expected, rel = REFERENCE_MACS[name]
    with torch.device("meta"):
        model = build_zoo_model(name).eval()
        counter = FlopCounterMode(display=False)
        with counter:
            model(torch.empty(ZOO.get(name).input_shape))
    macs = counter.get_total_flops() / 2
    assert macs == pytest.approx(expected, rel=rel)


@pytest.mark.parametrize("name", ["resnet20", "mobilenet_v2_cifar"])
def test_torch_export(name: str) -> None:
    model = build_zoo_model(name).eval()
    x = torch.randn(ZOO.get(name).input_shape)
    exported = torch.export.export(model, (x,))
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x), model(x))


def test_unknown_model_names_choices() -> None:
    with pytest.raises(EdgeslimError, match="resnet20"):
        build_zoo_model("resnet21")
