"""A recipe that factorizes then exports: the stage is recorded, the ONNX file matches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgeslim.core import EdgeslimError
from edgeslim.export.ort import ort_run, ort_session
from edgeslim.models.saved import load_saved
from edgeslim.recipe import compress, parse_recipe

TINY = """
from torch import nn

def make():
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                         nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
"""


def test_lowrank_then_export(tmp_path):
    f = tmp_path / "tiny.py"
    f.write_text(TINY)
    recipe = parse_recipe(f"""
version: 1
model: {f}:make
input_shape: [1, 3, 32, 32]
stages:
  - lowrank: {{method: spatial, macs_fraction: 0.6, exclude: ["0"]}}
  - export
measure: {{runs: 2, batches: [1]}}
""")
    rep = compress(recipe, tmp_path / "out", progress=False)
    by = {s["name"]: s for s in rep["stages"]}
    assert by["lowrank"]["macs"] <= 0.6 * rep["stages"][0]["macs"]
    ranks = {r["name"]: r.get("rank") for r in rep["layers"]}
    assert ranks["3"] and ranks["6"] and not ranks.get("0")
    lm = load_saved(tmp_path / "out" / "model")
    assert [m["method"] for m in lm.methods] == ["lowrank_spatial"]
    x = lm.input.example(batch=2, seed=0)
    with torch.no_grad():
        want = lm.model(x).numpy()
    got = ort_run(ort_session(tmp_path / "out" / "model.onnx"), x.numpy())
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_lowrank_settings_need_one_rule():
    text = "version: 1\nmodel: resnet20\nstages:\n  - lowrank: {method: cp, rank: 4, energy: 0.9}\n"
    with pytest.raises(EdgeslimError, match="exactly one of rank, energy"):
        parse_recipe(text, "r.yaml")


@pytest.mark.slow
def test_lowrank_prune_quantize_export_in_one_recipe(tmp_path):
    """The issue's combined chain: each stage is reported and the INT8 result reloads."""
    f = tmp_path / "tiny.py"
    f.write_text(TINY)
    recipe = parse_recipe(f"""
version: 1
model: {f}:make
input_shape: [1, 3, 32, 32]
data: digits
stages:
  - lowrank: {{method: tucker2, macs_fraction: 0.6, exclude: ["0"]}}
  - prune: {{ratio: 0.25, round_to: 1}}
  - quantize: {{calib_method: minmax, calib_batches: 2}}
  - export
measure: {{runs: 2, batches: [1]}}
""")
    rep = compress(recipe, tmp_path / "out", progress=False)
    by = {s["name"]: s for s in rep["stages"]}
    assert {"lowrank", "prune", "quantize"} <= set(by)
    assert by["prune"]["macs"] < by["lowrank"]["macs"] <= 0.6 * rep["stages"][0]["macs"]
    lm = load_saved(tmp_path / "out" / "model")
    assert [m["method"] for m in lm.methods] == ["lowrank_tucker2", "ptq"]


@pytest.mark.slow
def test_finetune_lowrank_distill_recovers(tmp_path):
    """A trained model, factorized hard (rank 2 per layer), then distilled from itself."""
    f = tmp_path / "tiny.py"
    f.write_text(TINY)
    recipe = parse_recipe(f"""
version: 1
model: {f}:make
input_shape: [1, 3, 32, 32]
data: digits
stages:
  - finetune: {{epochs: 3, lr: 0.05, batch_size: 64}}
  - lowrank: {{method: dws, rank: 1, exclude: ["0"]}}
  - distill: {{epochs: 2, lr: 0.02, batch_size: 64}}
measure: {{runs: 2, batches: [1]}}
""")
    rep = compress(recipe, tmp_path / "out", progress=False)
    by = {s["name"]: s for s in rep["stages"]}
    assert by["lowrank"]["params"] < by["finetune"]["params"]
    assert by["distill"]["accuracy"] > by["lowrank"]["accuracy"]
    lm = load_saved(tmp_path / "out" / "model")
    assert [m["method"] for m in lm.methods] == ["lowrank_dws"]
