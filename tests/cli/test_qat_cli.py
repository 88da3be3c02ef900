"""``edgeslim qat``: trains, saves a reloadable model, exports, and says what is simulated only."""

import json

import torch

from edgeslim.cli.main import main
from edgeslim.models.saved import load_saved
from edgeslim.quant.qat import qat_layers

TINY = """
from torch import nn

def make():
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=4, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
"""


def test_qat_cli_w4a4_reports_simulated_only(tmp_path, capsys):
    f = tmp_path / "tiny.py"
    f.write_text(TINY)
    out = tmp_path / "q"
    argv = [
        "qat",
        f"{f}:make",
        "--input-shape",
        "1,3,32,32",
        "--method",
        "lsq",
        "--w-bits",
        "4",
        "--a-bits",
        "4",
        "--data",
        "digits",
        "--epochs",
        "1",
        "--batch-size",
        "64",
        "-o",
        str(out),
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "simulated only" in printed
    rep = json.loads((out / "report.json").read_text())
    assert rep["method"] == "qat_lsq" and rep["onnx_kind"] == "float_simulation"
    assert "simulated only" in rep["deployment"] and "4-bit activations" in rep["deployment"]
    assert rep["machine"]["cpu"] and 0.0 <= rep["qat_simulated_top1"] <= 1.0
    assert (out / "model.onnx").stat().st_size == rep["onnx_size_bytes"]
    # the float graph of the simulation stores the 4-bit weights as int4 codes
    assert rep["onnx_weight_storage"] == {"int4": 3} and "int4/int8 codes" in rep["deployment"]
    back = load_saved(out / "model").model
    assert len(list(qat_layers(back))) == 3
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert back(x).shape == (2, 10)
    # bad bits are a clear error, not a traceback
    assert main([*argv[:-1], str(tmp_path / "bad"), "--w-bits", "9"]) == 2
    assert "2..8" in capsys.readouterr().err


def test_qat_cli_learned_bits_runs_its_steps_and_reports_the_bits(tmp_path, capsys):
    f = tmp_path / "tiny.py"
    f.write_text(TINY)
    out = tmp_path / "lb"
    argv = ["qat", f"{f}:make", "--input-shape", "1,3,32,32", "--method", "learned_bits",
            "--target-bits", "5", "--steps", "1,1,1", "--data", "digits", "--batch-size", "64",
            "--pack-int4", "-o", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    rep = json.loads((out / "report.json").read_text())
    assert rep["method"] == "qat_learned_bits"
    steps = [h["step"] for h in rep["history"]]
    assert steps == ["weights", "activations", "finetune"]
    rows = rep["learned_bits"]
    assert [r["name"] for r in rows] == ["0", "3"]  # the head (6) stays float
    assert all(float(r["w_bits"]).is_integer() and 2 <= r["w_bits"] <= 8 for r in rows)
    assert all(r["a_bits"] == 8 for r in rows)
    # layers packed as INT4 leave ORT's integer kernels: the deployment note says so
    int4 = rep["onnx_weight_storage"].get("int4", 0)
    assert int4 == sum(r["w_bits"] <= 4 for r in rows)
    assert ("stored as INT4" in rep["deployment"]) == (int4 > 0)
    assert rep["avg_w_bits"] < 8 and "learned bits (avg" in printed
    assert (out / "learned_bits.png").read_bytes()[:4] == b"\x89PNG"
    back = load_saved(out / "model").model
    assert [q.weight_q.bits for _, q in qat_layers(back)] == [r["w_bits"] for r in rows]
    assert main([*argv[:-1], str(tmp_path / "bad"), "--steps", "1,1"]) == 2
    assert "--steps" in capsys.readouterr().err
