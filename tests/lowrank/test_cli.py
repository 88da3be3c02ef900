"""``edgeslim decompose`` end to end: the MAC target is met, the output reloads and matches ORT."""

from __future__ import annotations

import json

import numpy as np
import torch

from edgeslim.cli.main import main
from edgeslim.export.ort import ort_run, ort_session
from edgeslim.models.saved import load_saved

USER_MODEL = """
from torch import nn

def make():
    return nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                         nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 5))
"""


def test_decompose_to_half_the_macs(tmp_path, capsys):
    (tmp_path / "net.py").write_text(USER_MODEL)
    out = tmp_path / "net-tucker"
    argv = ["decompose", f"{tmp_path / 'net.py'}:make", "--input-shape", "1,3,16,16",
            "--method", "tucker2", "--target-macs", "0.5", "--batch", "1", "--runs", "3",
            "-o", str(out)]  # fmt: skip
    assert main(argv) == 0
    rep = json.loads((out / "report.json").read_text())
    inp, dec = rep["stages"]
    assert dec["macs"] <= 0.5 * inp["macs"] and rep["search"]["macs"] == dec["macs"]
    assert rep["method"] == "lowrank_tucker2" and {"2", "5"} <= set(rep["layers"])
    lm = load_saved(out)
    x = lm.input.example(batch=2, seed=0)
    with torch.no_grad():
        want = lm.model(x).numpy()
    np.testing.assert_allclose(ort_run(ort_session(out / "model.onnx"), x.numpy()), want, atol=1e-4)
    assert "lowrank_tucker2: " in capsys.readouterr().out


def test_decompose_refuses_a_bad_rule(tmp_path, capsys):
    argv = ["decompose", "resnet20", "--method", "spatial", "--energy", "1.5", "-o", str(tmp_path)]
    assert main(argv) == 2
    assert "energy must be in (0, 1]" in capsys.readouterr().err
