"""``edgeslim earlyexit`` end to end on a tiny BERT and ``synthtext``: segments, report, plot."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("transformers")

from edgeslim.cli.main import main  # noqa: E402
from edgeslim.export.early_exit import EarlyExitRunner  # noqa: E402

CONFIG = {
    "model_type": "bert",
    "vocab_size": 128,
    "hidden_size": 32,
    "num_hidden_layers": 3,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 32,
}


@pytest.mark.slow  # two training epochs over synthtext's 4000 samples and four ONNX exports
def test_earlyexit_cli_writes_segments_and_report(tmp_path, capsys):
    cfg = tmp_path / "bert.json"
    cfg.write_text(json.dumps(CONFIG))
    out = tmp_path / "run"
    code = main(
        ["earlyexit", f"hf:{cfg}", "--data", "synthtext", "--epochs", "1",
         "--finetune-epochs", "1", "--optimizer", "adamw", "--lr", "1e-3", "--batch-size", "64",
         "--no-augment", "--thresholds", "0,0.5,1", "--limit", "24", "--repeats", "1",
         "--branch", "cls", "-o", str(out)]
    )  # fmt: skip
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    rows = report["sweep"]["rows"]
    assert [r["threshold"] for r in rows] == [None, 0.0, 0.5, 1.0]
    assert rows[1]["layers_run"] == 3 and rows[1]["accuracy"] == rows[0]["accuracy"]
    assert rows[3]["layers_run"] == 1
    assert report["parity"]["segmented_t0_vs_full_onnx"] < 1e-4
    assert (out / "accuracy_latency.png").read_bytes()[:4] == b"\x89PNG"
    assert "| threshold 0.5 |" in (out / "report.md").read_text()
    assert EarlyExitRunner(out / "earlyexit").layers == 3
    assert (out / "model").is_dir()  # the fine-tuned model, reusable as MODEL


def test_earlyexit_rejects_bad_thresholds(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["earlyexit", "x", "--data", "synthtext", "--epochs", "1", "--thresholds", "0,2",
              "-o", str(tmp_path)])  # fmt: skip
    assert "each must be in [0, 1]" in capsys.readouterr().err


def test_recipe_stage_is_registered_and_validated():
    from edgeslim.core.errors import EdgeslimError
    from edgeslim.recipe import STAGES, parse_recipe

    assert "earlyexit" in STAGES
    head = "version: 1\nmodel: hf:x.json\ndata: synthtext\nstages:\n"
    parse_recipe(head + "  - earlyexit: {epochs: 2, thresholds: [0, 0.3]}\n")
    parse_recipe(head + "  - earlyexit: {branch: attn}\n")
    with pytest.raises(EdgeslimError, match="line 5"):
        parse_recipe(head + "  - earlyexit: {branch: tokens}\n")
    with pytest.raises(EdgeslimError, match="line 5"):
        parse_recipe(head + "  - earlyexit: {thresholds: [0, 1.5]}\n")


def test_unknown_branch_is_refused_before_any_training():
    from edgeslim.core.errors import EdgeslimError
    from edgeslim.workflows.fastbert import train_fastbert

    with pytest.raises(EdgeslimError, match="branch must be one of"):
        train_fastbert(None, "synthtext", None, branch="tokens")
