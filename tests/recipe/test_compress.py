"""compress end to end on a tiny model: outputs, report schema, and resume after a kill."""

import json

import pytest
import torch

from edgeslim.models.saved import load_saved
from edgeslim.recipe import compress, parse_recipe
from edgeslim.train import trainer as trainer_mod

TINY = """
from torch import nn

def make():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
"""


@pytest.fixture
def recipe(tmp_path):
    f = tmp_path / "tiny.py"
    f.write_text(TINY)
    return parse_recipe(f"""
version: 1
model: {f}:make
input_shape: [1, 3, 32, 32]
data: digits
stages:
  - finetune: {{epochs: 2, lr: 0.1, batch_size: 64}}
  - finetune: {{epochs: 1, lr: 0.02, batch_size: 64}}
  - export
targets: {{max_accuracy_drop: 100, latency_ms: 1000, size_bytes: 1000000}}
measure: {{runs: 2, batches: [1, 8]}}
""")


def test_compress_outputs_and_schema(tmp_path, recipe):
    out = tmp_path / "out"
    rep = compress(recipe, out, progress=False)
    for f in ("report.json", "report.md", "report.html", "model.onnx", "model/edgeslim_model.json"):
        assert (out / f).is_file(), f
    on_disk = json.loads((out / "report.json").read_text())
    names = [s["name"] for s in on_disk["stages"]]
    assert names == [
        "input (fp32, torch eager)",
        "input (fp32, onnxruntime)",
        "finetune",
        "finetune",
    ]
    for s in on_disk["stages"]:
        assert set(s) >= {"name", "params", "macs", "size_bytes", "latency_ms", "accuracy"}
        assert set(s["latency_ms"]) == {"1", "8"} and 0 <= s["accuracy"] <= 1
    assert all(t["met"] for t in rep["targets"].values())
    assert rep["stages"][-1]["accuracy"] > rep["stages"][1]["accuracy"]  # training helped
    assert "<img" in (out / "report.html").read_text()


def test_kill_mid_stage_then_resume_gives_same_result(tmp_path, recipe, monkeypatch):
    ref = tmp_path / "ref"
    compress(recipe, ref, progress=False)

    real_fit = trainer_mod.Trainer.fit
    calls = {"n": 0}

    def fit_killed_in_stage_2(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # Ctrl-C during the second finetune stage
        return real_fit(self, *a, **k)

    monkeypatch.setattr(trainer_mod.Trainer, "fit", fit_killed_in_stage_2)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        compress(recipe, out, progress=False)
    assert (out / "stages" / "01-finetune" / "state.json").is_file()
    assert not (out / "stages" / "02-finetune" / "state.json").exists()

    calls["n"] = 10  # from now on fit runs normally; count the stages that still train
    compress(recipe, out, progress=False)
    assert calls["n"] == 11  # only the unfinished stage trained again
    a, b = load_saved(ref / "model").model, load_saved(out / "model").model
    for (k, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0, msg=k)
