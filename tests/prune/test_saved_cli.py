"""Pruned models save and reload with their new widths; the CLI writes model, ONNX, report."""

import json

import pytest
import torch
from custom_archs import AttnClassifier

from edgeslim.cli.main import main
from edgeslim.models.saved import load_saved, save_model
from edgeslim.models.spec import LoadedModel, load_model
from edgeslim.prune import PruneConfig, prune
from edgeslim.prune.slimming import bn_l1, with_bn_l1


@pytest.mark.parametrize("name", ["resnet20", "mobilenet_v2_cifar"])
def test_pruned_zoo_model_round_trips(tmp_path, name):
    lm = load_model(name)
    res = prune(lm.model, lm.input.example(), PruneConfig(ratio=0.5, criterion="l2"))
    save_model(LoadedModel(res.model, lm.source, lm.input, name), tmp_path / "m")
    back = load_saved(tmp_path / "m")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(back.model(x), res.model.eval()(x))


def test_head_pruned_attention_round_trips(tmp_path):
    f = tmp_path / "attn.py"
    f.write_text(
        "from custom_archs import AttnClassifier\n\ndef make():\n    return AttnClassifier()\n"
    )
    lm = load_model(f"{f}:make", input_shape=(1, 6, 8))
    res = prune(lm.model, lm.input.example(), PruneConfig(ratio=0.5))
    save_model(LoadedModel(res.model, lm.source, lm.input, "attn"), tmp_path / "m")
    back = load_saved(tmp_path / "m")
    x = torch.randn(2, 6, 8)
    with torch.no_grad():
        assert torch.allclose(back.model(x), res.model.eval()(x), atol=1e-6)
    assert back.model.attn.num_heads == 2
    assert isinstance(AttnClassifier().attn, torch.nn.MultiheadAttention)


def test_cli_prune_writes_model_onnx_report(tmp_path, capsys):
    out = tmp_path / "p"
    rc = main(
        [
            "prune",
            "resnet20",
            "--ratio",
            "0.5",
            "--criterion",
            "fpgm",
            "--round-to",
            "4",
            "--ignore",
            "layer1.0.conv1",
            "--runs",
            "2",
            "--batch",
            "1,8",
            "-o",
            str(out),
        ]
    )
    assert rc == 0
    rep = json.loads((out / "report.json").read_text())
    names = [s["name"] for s in rep["stages"]]
    assert names == ["input", "pruned"]
    first, last = rep["stages"][0], rep["stages"][-1]
    assert set(first) >= {"name", "params", "macs", "size_bytes", "latency_ms", "accuracy"}
    assert set(last["latency_ms"]) == {"1", "8"} and last["accuracy"] is None
    assert last["macs"] < first["macs"] / 3 and (out / "model.onnx").is_file()
    assert load_saved(out).model.layer1[0].conv1.out_channels == 16
    assert main(["analyze", str(out), "--input-shape", "1,3,32,32"]) == 0


def test_cli_help_lists_criteria(capsys):
    with pytest.raises(SystemExit):
        main(["prune", "--help"])
    text = capsys.readouterr().out
    for name in (
        "l1",
        "l2",
        "fpgm",
        "bn_scale",
        "apoz",
        "mean_activation",
        "entropy",
        "taylor",
        "obd",
        "random",
    ):
        assert name in text


def test_cli_rejects_two_targets(capsys):
    with pytest.raises(SystemExit):
        main(["prune", "resnet20", "--ratio", "0.5", "--target-macs", "1e6", "-o", "x"])


def test_slimming_penalty_adds_l1_of_bn_scales():
    m = load_model("resnet20").model
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([0, 1])
    loss, _ = with_bn_l1(1e-2)(m, x, y)
    base = torch.nn.functional.cross_entropy(m(x), y)
    assert torch.allclose(loss, base + 1e-2 * bn_l1(m))
    loss.backward()
    assert m.bn1.weight.grad is not None


def test_cli_prune_fine_tunes_with_kd_from_the_input(tmp_path):
    out = tmp_path / "kd"
    args = ["prune", "resnet20_half", "--ratio", "0.5", "--data", "digits", "--runs", "2"]
    args += ["--batch", "1", "--finetune-epochs", "1", "--distill", "kd", "--round-to", "1"]
    args += ["-o", str(out)]
    assert main(args) == 0
    rep = json.loads((out / "report.json").read_text())
    assert [s["name"] for s in rep["stages"]] == [
        "input",
        "pruned",
        "pruned + kd from the input (1 ep)",
    ]
    assert rep["finetune"]["distill"] == "kd" and rep["finetune"]["train"]["epochs"] == 1
    assert all(s["accuracy"] is not None for s in rep["stages"])
    assert len(rep["finetune_log"]) == 1


def test_cli_prune_distill_needs_finetuning(tmp_path, capsys):
    rc = main(["prune", "resnet20", "--ratio", "0.5", "--distill", "kd", "-o", str(tmp_path / "x")])
    assert rc == 2 and "--distill needs --finetune-epochs" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
