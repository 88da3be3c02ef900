"""``edgeslim sparsify`` writes a reloadable masked model, a dense ONNX file, an archive and a
report that states sizes and claims no speed-up."""

import json

import numpy as np
import pytest
import torch

from edgeslim.cli.main import main
from edgeslim.models.saved import load_saved
from edgeslim.sparsity import masked_layers, sparsity_of
from edgeslim.sparsity.archive import load_archive
from edgeslim.workflows.sparsify import sparsity_plan

TINY = """
from torch import nn


def make():
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 16, 1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4),
    )
"""


def _tiny_npz(path):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 64), ("val", 32), ("test", 32)):
        y = rng.integers(0, 4, n)
        x = rng.normal(size=(n, 3, 16, 16)).astype(np.float32) + y[:, None, None, None] * 0.5
        arrays[f"x_{split}"], arrays[f"y_{split}"] = x, y.astype(np.int64)
    np.savez(path, **arrays)
    return f"npz:{path}"


def test_cli_agp_fine_tunes_saves_archives_and_reports_honestly(tmp_path, capsys):
    data = _tiny_npz(tmp_path / "d.npz")
    out = tmp_path / "s"
    (tmp_path / "tiny.py").write_text(TINY)
    model = f"{tmp_path / 'tiny.py'}:make"
    argv = ["sparsify", model, "--input-shape", "1,3,16,16", "--method", "agp", "--sparsity", "0.8"]
    argv += ["--data", data, "--distill", "kd"]
    argv += ["--finetune-epochs", "1", "--batch-size", "16", "--runs", "2", "--batch", "1"]
    argv += ["--threads", "1"]
    assert main([*argv, "-o", str(out)]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert [s["name"] for s in rep["stages"]] == ["input", "agp + AGP + kd (1 ep)"]
    last = rep["stages"][-1]
    assert last["sparsity_kind"] == "agp" and last["compressed_bytes"] > 0
    assert rep["sparsity"]["masked_layers"] == pytest.approx(0.8, abs=1e-3)
    assert rep["schedule"]["final"] == 0.8 and rep["finetune"]["distill"] == "kd"
    # sizes: the ONNX file is dense, the archive is what is small; no speed claim
    st = rep["storage"]
    assert st["onnx_bytes"] == (out / "model.onnx").stat().st_size
    assert st["archive_bytes"] == (out / "weights.esz").stat().st_size < st["onnx_bytes"] / 2
    assert rep["speedup_claimed"] is False and "no speed gain" in rep["speed_note"]
    assert "speedup" not in capsys.readouterr().out.lower().replace("b8 speedup", "")
    # the saved model reloads with its masks and equals the archive's weights (int8 aside)
    back = load_saved(out)
    assert masked_layers(back.model)
    assert sparsity_of(back.model) == pytest.approx(0.8, abs=1e-3)
    arch = load_archive(out / "weights.esz")
    w = back.model[3].weight.detach()
    assert torch.equal(arch["3.weight"] == 0, w == 0)


def test_fixed_sparsity_kinds_refuse_a_different_sparsity(capsys):
    assert main(["sparsify", "resnet20", "--method", "nm", "--sparsity", "0.7", "-o", "x"]) == 2
    assert "fixed sparsity" in capsys.readouterr().err
    assert sparsity_plan("rtoss-2ep").config.entries == 2
    assert main(["sparsify", "resnet20", "--method", "agp", "--sparsity", "0.5", "-o", "x"]) == 2
    assert "needs --data" in capsys.readouterr().err


def test_cli_one_shot_without_data_writes_a_kmeans_archive(tmp_path):
    (tmp_path / "tiny.py").write_text(TINY)
    out = tmp_path / "nm"
    argv = ["sparsify", f"{tmp_path / 'tiny.py'}:make", "--input-shape", "1,3,16,16"]
    argv += ["--method", "nm", "--nm", "1:4", "--values", "kmeans", "--codebook-bits", "3"]
    assert main([*argv, "--runs", "2", "--batch", "1", "--threads", "1", "-o", str(out)]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert [s["name"] for s in rep["stages"]] == ["input", "nm (one-shot)"]
    assert rep["finetune"] is None and rep["storage"]["archive_values"] == "kmeans3"
    assert rep["sparsity"]["skipped_layers"] == ["0"]  # 3 input channels: not a multiple of 4
    arch = load_archive(out / "weights.esz")
    w = arch["3.weight"]
    assert float((w != 0).float().mean()) == pytest.approx(0.25)
    assert w[w != 0].unique().numel() <= 8


@pytest.mark.parametrize(
    "kind", [["--method", "magnitude", "--sparsity", "0.7"], ["--method", "nm", "--nm", "2:4"]]
)
def test_unstructured_and_nm_on_ort_cpu_claim_size_not_speed(tmp_path, capsys, kind):
    (tmp_path / "tiny.py").write_text(TINY)
    out = tmp_path / "o"
    argv = ["sparsify", f"{tmp_path / 'tiny.py'}:make", "--input-shape", "1,3,16,16", *kind]
    assert main([*argv, "--runs", "2", "--batch", "1", "--threads", "1", "-o", str(out)]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["speedup_claimed"] is False and "no speed gain" in rep["speed_note"]
    assert rep["storage"]["onnx_over_archive"] > 1  # the gain that is claimed: size
    text = capsys.readouterr().out.lower()
    assert "no speed gain" in text and "smaller" in text
    for claim in ("faster", "speed-up", "speedup of", "accelerat"):
        assert claim not in text.replace("b8 speedup", "")
