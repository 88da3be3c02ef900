"""``quantize -> finetune -> export``: the fake-quant model trains, saves and deploys as INT8."""

import onnx
import pytest
import torch

from edgeslim.data import load_dataset, make_loader
from edgeslim.models.saved import load_saved
from edgeslim.quant.fake_quant import fake_quantizers
from edgeslim.recipe import parse_recipe
from edgeslim.recipe.runner import run_stages
from edgeslim.workflows.quantize import agreement

TINY = """
from torch import nn

def make():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
"""


def check_chain(text: str, out, data: str, min_agreement: float) -> float:
    """Run the recipe; check the fine-tune trained the fake-quant model and the INT8 file agrees."""
    loaded = parse_recipe(text)
    history = run_stages(loaded, out, progress=False)
    names = [n for n, _ in history]
    assert names[-3:] == ["quantize", "finetune", "export"]
    stages = sorted((out / "stages").iterdir())
    quantized = load_saved(stages[-3] / "model").model
    tuned = load_saved(stages[-2] / "model").model  # reloaded: methods replayed, strict load
    scales_q = {n: fq.scale.clone() for n, fq in fake_quantizers(quantized)}
    scales_t = {n: fq.scale for n, fq in fake_quantizers(tuned)}
    assert scales_q.keys() == scales_t.keys()
    assert any(not torch.equal(scales_q[n], scales_t[n]) for n in scales_q)  # scales trained
    final = history[-1][1]
    ops = {n.op_type for n in onnx.load(str(final.onnx)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    reloaded = load_saved(stages[-1] / "model").model
    test = make_loader(load_dataset(data, "test"), 256, shuffle=False)
    agree = agreement(reloaded, final.onnx, test)
    assert agree >= min_agreement
    # a rerun resumes every stage from its checkpoint, fake-quant ones included
    again = run_stages(loaded, out, progress=False)
    x = next(iter(test))[0][:8]
    with torch.no_grad():
        torch.testing.assert_close(again[-1][1].lm.model(x), reloaded(x), rtol=0, atol=0)
    return agree


def test_quantize_finetune_export_tiny(tmp_path):
    f = tmp_path / "tiny.py"
    f.write_text(TINY)
    text = f"""
version: 1
model: {f}:make
input_shape: [1, 3, 32, 32]
data: digits
stages:
  - finetune: {{epochs: 1, lr: 0.05, batch_size: 64}}
  - quantize: {{calib_method: minmax, calib_batches: 4}}
  - finetune: {{epochs: 1, lr: 0.005, batch_size: 64}}
  - export
"""
    check_chain(text, tmp_path / "out", "digits", 0.99)


@pytest.mark.slow
def test_quantize_finetune_export_resnet20_signs(tmp_path):
    """The acceptance check of issue 11: INT8 ONNX vs reloaded fake-quant, >= 99.5% top-1."""
    text = """
version: 1
model: resnet20
data: signs
pretrain: {epochs: 4, lr: 0.05}
stages:
  - quantize: {calib_method: percentile, calib_batches: 8}
  - finetune: {epochs: 2, lr: 0.002}
  - export
"""
    agree = check_chain(text, tmp_path / "out", "signs", 0.995)
    print(f"resnet20/signs: INT8 ONNX vs reloaded fake-quant top-1 agreement {agree:.4f}")
