"""CLI smoke tests: ``edgeslim quantize`` and ``edgeslim sensitivity``."""

import json

import pytest

from edgeslim.cli.main import main


def test_quantize_random_calibration_writes_int8_and_report(tmp_path):
    out = tmp_path / "q"
    with pytest.warns(UserWarning, match="random"):
        rc = main(
            [
                "quantize",
                "resnet20",
                "--bits",
                "8",
                "--calib-method",
                "percentile",
                "--calib-data",
                "random:3,32,32",
                "--calib-batches",
                "1",
                "--exclude",
                "fc",
                "--batch",
                "1",
                "--runs",
                "2",
                "-o",
                str(out),
            ]
        )
    assert rc == 0
    rep = json.loads((out / "report.json").read_text())
    names = [s["name"] for s in rep["stages"]]
    assert names[0] == "fp32" and names[-1].startswith("int8")
    for s in rep["stages"]:
        assert s["accuracy"] is None and s["latency_ms"]["1"] > 0
        assert {"params", "macs", "size_bytes"} <= set(s)
    assert rep["stages"][1]["size_bytes"] < 0.4 * rep["stages"][0]["size_bytes"]
    assert "fc" not in rep["quantized_layers"]
    assert (out / "model.onnx").is_file()


def test_quantize_refuses_low_bit_activations(tmp_path, capsys):
    rc = main(
        [
            "quantize",
            "resnet20",
            "--a-bits",
            "4",
            "--calib-data",
            "random:3,32,32",
            "-o",
            str(tmp_path / "x"),
        ]
    )
    assert rc == 2
    assert "8-bit activations" in capsys.readouterr().err


@pytest.mark.slow
def test_sensitivity_writes_table_json_and_plot(tmp_path):
    out = tmp_path / "s"
    rc = main(
        [
            "sensitivity",
            "resnet20_half",
            "--data",
            "digits",
            "--calib-batches",
            "1",
            "--eval-samples",
            "64",
            "-o",
            str(out),
        ]
    )
    assert rc == 0
    rows = json.loads((out / "sensitivity.json").read_text())["layers"]
    assert len(rows) == 22 and all("sqnr_db" in r and r["top1"] is not None for r in rows)
    assert (out / "sensitivity.png").stat().st_size > 1000
    assert (out / "sensitivity.md").read_text().startswith("| layer |")
