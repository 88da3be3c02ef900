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


def test_quantize_a_bert_config_at_the_length_of_its_data(tmp_path, capsys):
    """An hf: config's default input is its longest position (128); with text calibration
    data and no --input-shape the command runs at the data's length (synthtext: 32)."""
    import json

    cfg = {"model_type": "bert", "vocab_size": 128, "hidden_size": 32, "num_hidden_layers": 1,
           "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 128,
           "num_labels": 4}  # fmt: skip
    (tmp_path / "bert.json").write_text(json.dumps(cfg))
    out = tmp_path / "q"
    argv = ["quantize", f"hf:{tmp_path / 'bert.json'}", "--calib-data", "synthtext",
            "--calib-batches", "1", "--batch", "1", "--runs", "2", "-o", str(out)]  # fmt: skip
    assert main(argv) == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["input_shape"] == [1, 32]
