"""The whole chain on a tiny model: prune -> distill -> quantize (INT8 QDQ) -> export."""

import json

import onnx

from edgeslim.recipe import compress, parse_recipe

TINY = """
from torch import nn

def make():
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
"""


def test_prune_distill_quantize_export(tmp_path):
    f = tmp_path / "tiny.py"
    f.write_text(TINY)
    recipe = parse_recipe(f"""
version: 1
model: {f}:make
input_shape: [1, 3, 32, 32]
data: digits
stages:
  - finetune: {{epochs: 2, lr: 0.05, batch_size: 64}}
  - prune: {{ratio: 0.5, criterion: l2, round_to: 1}}
  - distill: {{epochs: 1, lr: 0.02, batch_size: 64}}
  - quantize: {{calib_method: minmax, calib_batches: 4, sensitivity_batches: 1}}
  - export
measure: {{runs: 2}}
""")
    rep = compress(recipe, tmp_path / "out", progress=False)
    names = [s["name"] for s in rep["stages"]]
    assert names[2:] == ["finetune", "prune", "distill", "quantize"]
    by = {s["name"]: s for s in rep["stages"]}
    assert by["prune"]["params"] < 0.5 * by["finetune"]["params"]  # channels physically removed
    assert by["prune"]["macs"] < 0.5 * by["finetune"]["macs"]
    assert by["quantize"]["size_bytes"] < 0.5 * by["distill"]["size_bytes"]  # int8 weights
    int8 = onnx.load(str(tmp_path / "out" / "model.onnx"))
    ops = {n.op_type for n in int8.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    kept = {r["name"]: r for r in rep["layers"]}
    assert kept["0"]["kept"] == 8 and kept["0"]["bits"] == 8
    # per-layer sensitivity filled for every quantized layer (points of top-1, weights only)
    assert sum(1 for r in kept.values() if r.get("ms")) >= 2  # per-layer time on ORT
    sens = {n: r["sensitivity"] for n, r in kept.items() if r.get("bits")}
    assert sens and all(s is not None and -100 <= s <= 100 for s in sens.values())
    on_disk = json.loads((tmp_path / "out" / "report.json").read_text())
    last, before = on_disk["stages"][-1], on_disk["stages"][-2]
    assert abs(last["accuracy"] - before["accuracy"]) < 0.05  # INT8 tracks its float model
