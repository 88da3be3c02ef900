"""The CLI end to end, in-process: outputs, JSON schemas and one-line errors."""

import json
import re

import pytest

from edgeslim.cli.main import main

USER_MODEL = """
from torch import nn

def make():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))
"""


@pytest.fixture
def user_spec(tmp_path):
    f = tmp_path / "my_net.py"
    f.write_text(USER_MODEL)
    return f"{f}:make"


def test_analyze_user_model(tmp_path, user_spec, capsys):
    out = tmp_path / "a.json"
    assert main(["analyze", user_spec, "--input-shape", "1,3,16,16", "--json", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert rep["params"] == 3 * 8 * 9 + 8 + 16 + 8 * 5 + 5
    assert rep["macs"] == 8 * 3 * 9 * 256 + 40
    assert rep["size_bytes"]["onnx"] > 0 and rep["onnx_max_abs_diff"] < 1e-4
    assert {r["name"] for r in rep["layers"]} == {"0", "1", "5"}
    assert "parameters" in capsys.readouterr().out


def test_bench_vs_json(tmp_path, user_spec):
    out = tmp_path / "b.json"
    args = ["bench", user_spec, "--vs", "resnet20", "--input-shape", "1,3,32,32", "--batch", "1,2",
            "--runs", "3", "--warmup", "1", "--json", str(out)]  # fmt: skip
    assert main(args) == 0
    rep = json.loads(out.read_text())
    assert len(rep["results"]) == 4 and set(rep["ratio"]) == {"1", "2"}
    for r in rep["results"]:
        assert set(r) >= {"model", "runtime", "batch", "median_ms", "p90_ms"}
        assert r["runtime"] == "onnxruntime"
    a = [r for r in rep["results"] if r["batch"] == 1]
    assert rep["ratio"]["1"] == pytest.approx(a[0]["median_ms"] / a[1]["median_ms"])


def test_export_then_bench_and_evaluate_onnx(tmp_path, capsys):
    onnx = tmp_path / "d.onnx"
    assert main(["export", "resnet20", "--num-classes", "10", "-o", str(onnx)]) == 0
    assert "parity" in capsys.readouterr().out
    assert main(["bench", str(onnx), "--batch", "1", "--runs", "2", "--warmup", "0"]) == 0
    assert main(["evaluate", str(onnx), "--data", "digits"]) == 0
    assert "top-1" in capsys.readouterr().out


def test_train_then_reload_and_evaluate(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "resnet20_half", "--data", "digits", "--epochs", "1", "-o", str(out),
            "--batch-size", "64", "--no-augment", "--channels-last"]  # fmt: skip
    assert main(args) == 0
    assert (out / "checkpoints" / "last.safetensors").is_file()
    meta = json.loads((out / "edgeslim_model.json").read_text())["meta"]
    assert meta["train_config"]["channels_last"] is True
    assert main(["evaluate", str(out), "--data", "digits", "--json", str(tmp_path / "e.json")]) == 0
    assert json.loads((tmp_path / "e.json").read_text())["n"] > 0
    assert main(["analyze", str(out), "--no-onnx"]) == 0  # saved dir is a model spec


@pytest.mark.parametrize(
    "argv, match",
    [
        (["analyze", "nosuch"], "unknown model 'nosuch'"),
        (
            ["analyze", "resnet20", "--input-shape", "1,5,32,32", "--no-onnx"],
            "does not run on input",
        ),
        (["evaluate", "resnet20", "--data", "nosuchdata"], "unknown dataset 'nosuchdata'"),
        (["evaluate", "resnet20", "--data", "cifar10:/no/where"], "cifar"),
        (["bench", "/no/model.onnx"], "not found"),
        (["export", "missing.py:make", "-o", "x.onnx"], "model file not found"),
        (["train", "resnet20", "--data", "digits", "--epochs", "0", "-o", "x"], "epochs"),
    ],
)
def test_errors_are_one_line(argv, match, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edgeslim: error:") and "\n" not in err
    assert re.search(match, err, flags=re.IGNORECASE), err


def test_refuses_to_overwrite_input(tmp_path, capsys):
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"x")
    assert main(["export", str(onnx), "-o", str(onnx)]) == 2
    assert onnx.read_bytes() == b"x"
