"""``edgeslim distill`` end to end on tiny user models: student saved, report with stages."""

from __future__ import annotations

import json

import pytest

from edgeslim.cli.main import main

MODELS = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, width):
        super().__init__()
        w = width
        self.layer1 = nn.Sequential(nn.Conv2d(3, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU())
        self.layer2 = nn.Sequential(
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.BatchNorm2d(2 * w), nn.ReLU()
        )
        self.fc = nn.Linear(2 * width, 10)

    def forward(self, x):
        return self.fc(self.layer2(self.layer1(x)).mean((2, 3)))


def teacher():
    return Net(8)


def student():
    return Net(4)
"""


@pytest.fixture
def models(tmp_path):
    f = tmp_path / "models.py"
    f.write_text(MODELS)
    return f


def test_cli_distill_writes_student_and_stages(tmp_path, models, capsys):
    out = tmp_path / "out"
    rc = main(
        [
            "distill",
            "--teacher", f"{models}:teacher",
            "--student", f"{models}:student",
            "--data", "digits",
            "--loss", "kd+feature",
            "--epochs", "1",
            "--batch-size", "64",
            "--no-augment",
            "--runs", "2",
            "-o", str(out),
        ]
    )  # fmt: skip
    assert rc == 0
    report = json.loads((out / "report.json").read_text())
    stages = report["stages"]
    assert [s["name"].split()[0] for s in stages] == ["teacher", "student"]
    for s in stages:
        assert set(s) >= {"name", "params", "macs", "size_bytes", "latency_ms", "accuracy"}
        assert set(s["latency_ms"]) == {"1", "8"} and s["latency_ms"]["1"] > 0
        assert 0 <= s["accuracy"] <= 1
    assert stages[0]["params"] > stages[1]["params"]
    assert (out / "edgeslim_model.json").is_file() and (out / "distill_extra.safetensors").is_file()
    assert "student" in capsys.readouterr().out


def test_cli_distill_bad_input_is_one_line_error(tmp_path, models, capsys):
    rc = main(
        ["distill", "--teacher", f"{models}:teacher", "--student", f"{models}:student",
         "--data", "digits", "--loss", "nope", "--epochs", "1", "-o", str(tmp_path / "o")]
    )  # fmt: skip
    assert rc == 2 and "unknown distillation loss" in capsys.readouterr().err


def test_cli_student_prune_ratio(tmp_path, models):
    pytest.importorskip("edgeslim.prune")
    from edgeslim.workflows.students import load_student, load_teacher

    teacher = load_teacher(f"{models}:teacher", "digits", epochs=1)
    student = load_student("prune:0.5", teacher, "digits")
    assert student.model.layer1[0].out_channels < teacher.model.layer1[0].out_channels
    assert teacher.model.layer1[0].out_channels == 8  # the teacher itself is not pruned
