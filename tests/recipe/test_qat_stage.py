"""``finetune (float) -> qat -> export``: the QAT model trains, reloads and deploys as INT8."""

import onnx
import torch

from edgeslim.core.cpu import int8_pairs_saturate
from edgeslim.data import load_dataset, make_loader
from edgeslim.models.saved import load_saved
from edgeslim.quant.qat import qat_layers
from edgeslim.recipe import parse_recipe
from edgeslim.recipe.runner import run_stages
from edgeslim.workflows.quantize import agreement

W8 = 7 if int8_pairs_saturate() else 8  # x86 without VNNI saturates full-range int8 weights
TINY = """
from torch import nn

def make():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
"""


def test_pretrain_qat_export_tiny(tmp_path):
    f = tmp_path / "tiny.py"
    f.write_text(TINY)
    text = f"""
version: 1
model: {f}:make
input_shape: [1, 3, 32, 32]
data: digits
stages:
  - finetune: {{epochs: 1, lr: 0.05, batch_size: 64}}
  - qat: {{method: lsq, w_bits: {W8}, a_bits: 8, epochs: 1, lr: 0.005, batch_size: 64,
           distill: true, freeze_bn_epoch: 0, overrides: {{"8": {{w_bits: {W8}}}}}}}
  - export
"""
    out = tmp_path / "out"
    history = run_stages(parse_recipe(text), out, progress=False)
    assert [n for n, _ in history][-3:] == ["finetune", "qat", "export"]
    qat_state = history[-2][1]
    assert f"lsq W{W8}A8, 3 layers, 1 epochs, distilled; INT8 QDQ" in qat_state.notes["qat"]
    assert qat_state.layers["0"] == {"w_bits": W8, "a_bits": 8}
    final = history[-1][1]
    ops = {n.op_type for n in onnx.load(str(final.onnx)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    stages = sorted((out / "stages").iterdir())
    reloaded = load_saved(stages[-1] / "model").model  # methods replayed, strict load
    assert len(list(qat_layers(reloaded))) == 3
    test = make_loader(load_dataset("digits", "test"), 256, shuffle=False)
    assert agreement(reloaded, final.onnx, test) >= 0.98
    x = next(iter(test))[0][:8]
    with torch.no_grad():
        torch.testing.assert_close(final.lm.model(x), reloaded(x), rtol=0, atol=0)


def test_qat_of_the_hawq_configuration(tmp_path):
    """qat {hawq}: HAWQ-V3 picks 4/8/float weight bits under a 6-bit average, and QAT trains
    exactly that configuration (issue 13: "then QAT fine-tuning of the chosen configuration")."""
    f = tmp_path / "tiny.py"
    f.write_text(TINY)
    text = f"""
version: 1
model: {f}:make
input_shape: [1, 3, 32, 32]
data: digits
stages:
  - qat: {{method: lsq, w_bits: {W8}, a_bits: 8, epochs: 1, lr: 0.005, batch_size: 64,
           hawq: {{avg_bits: 6, probes: 2, batches: 1, choices: [4, 8]}}}}
"""
    history = run_stages(parse_recipe(text), tmp_path / "out", progress=False)
    st = history[-1][1]
    assert "chosen by HAWQ-V3" in st.notes["qat"]
    bits = {n: v["w_bits"] for n, v in st.layers.items()}
    assert set(bits.values()) <= {4, W8} and 4 in bits.values()
    sizes = {"0": 8 * 27, "3": 16 * 72, "8": 160}
    avg = sum(sizes[n] * (8 if b == W8 else b) for n, b in bits.items()) / sum(sizes.values())
    assert avg <= 6.0 + 1e-9


def test_lsq_init_is_a_recipe_setting_of_lsq_only():
    import pytest

    from edgeslim.core.errors import EdgeslimError
    from edgeslim.recipe.stages.qat import QATSettings, qat_config

    head = "version: 1\nmodel: resnet20\ndata: digits\nstages:\n"
    with pytest.raises(EdgeslimError, match="init applies to method lsq only"):
        parse_recipe(head + "  - qat: {method: pact, init: mse}\n")
    parse_recipe(head + "  - qat: {method: lsq, init: mse}\n")
    cfg, _ = qat_config(QATSettings(method="lsq", init="paper"))
    assert cfg.init == "paper"
    assert qat_config(QATSettings(method="lsq"))[0].init == "mse"  # the default
