"""The ``fuse`` method and stage: BN folded on the record, reloaded, and ORT's own fusion shown."""

import torch
from torch import nn

from edgeslim.bench.profile import layer_kernels, profile_onnx
from edgeslim.core.methods import apply
from edgeslim.export.onnx import export_onnx
from edgeslim.fuse.method import FuseBNConfig
from edgeslim.models.inputs import InputSpec
from edgeslim.models.saved import load_saved
from edgeslim.recipe import parse_recipe
from edgeslim.recipe.runner import run_stages

TINY = """
from torch import nn

def make():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
"""


def _net():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                      nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())  # fmt: skip
    with torch.no_grad():
        m[1].running_mean.uniform_(-1, 1)
        m[1].running_var.uniform_(0.5, 2)
        m[1].weight.uniform_(0.5, 2)
    return m.eval()


def test_fold_keeps_the_function_and_records_the_pairs():
    m = _net()
    x = torch.randn(2, 3, 8, 8)
    new, rec = apply(m, FuseBNConfig(), calib=[x])
    assert rec.details["pairs"] == [["0", "1"]] and isinstance(new[1], nn.Identity)
    with torch.no_grad():
        torch.testing.assert_close(new(x), m(x), rtol=1e-5, atol=1e-5)


def test_ort_kernels_show_the_activation_fused_into_the_conv(tmp_path):
    m, _ = apply(_net(), FuseBNConfig(), calib=[torch.randn(1, 3, 8, 8)])
    spec = InputSpec((1, 3, 8, 8))
    export_onnx(m, spec, tmp_path / "m.onnx")
    kernels = layer_kernels(profile_onnx(tmp_path / "m.onnx", spec, runs=2, threads=1), m)
    assert set(kernels) == {"0", "3"}
    assert all("Relu" in k for k in kernels.values()), kernels


def test_fuse_stage_notes_the_pairs_and_the_model_reloads(tmp_path):
    f = tmp_path / "tiny.py"
    f.write_text(TINY)
    text = f"version: 1\nmodel: {f}:make\ninput_shape: [1, 3, 16, 16]\nstages:\n  - fuse\n"
    history = run_stages(parse_recipe(text), tmp_path / "out", progress=False)
    state = history[-1][1]
    assert state.notes["fuse"].startswith("2 Conv+BN pairs folded (0+1, 3+4)")
    assert state.layers["0"]["bn_folded"] == "1" and state.layers["3"]["bn_folded"] == "4"
    saved = sorted((tmp_path / "out" / "stages").iterdir())[-1] / "model"
    back = load_saved(saved).model
    assert isinstance(back[1], nn.Identity) and back[0].bias is not None
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(back(x), state.lm.model(x), rtol=0, atol=0)
