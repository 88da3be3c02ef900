"""The segmentation toy end to end: data, model, trainer, evaluation and the CLI."""

import json

import torch
from torch.utils.data import Subset

from edgeslim.bench.accuracy import evaluate_model
from edgeslim.cli.main import main
from edgeslim.data import dataset_info, load_dataset, make_loader
from edgeslim.models import build_zoo_model
from edgeslim.train.config import TrainConfig
from edgeslim.train.trainer import Trainer


def test_shapes_seg_declares_its_task_and_is_deterministic():
    info = dataset_info("shapes_seg")
    assert info.task == "segmentation" and info.num_classes == 4
    a, b = load_dataset("shapes_seg", "val"), load_dataset("shapes_seg", "val")
    x, m = a[3]
    assert x.shape == (3, 32, 32) and m.shape == (32, 32) and m.dtype == torch.int64
    assert torch.equal(a.masks, b.masks) and set(a.masks.unique().tolist()) == {0, 1, 2, 3}
    assert not torch.equal(a.masks, load_dataset("shapes_seg", "test").masks[: len(a)])


def test_segmentation_trains_through_the_task_and_its_loss_drops():
    torch.manual_seed(0)
    model = build_zoo_model("seg_tiny")
    train = Subset(load_dataset("shapes_seg", "train"), range(64))
    val = Subset(load_dataset("shapes_seg", "val"), range(16))
    cfg = TrainConfig(epochs=3, batch_size=16, lr=0.05, augment=False)
    hist = Trainer(model, cfg, progress=False, task="segmentation").fit(train, val)
    assert hist[-1]["train_loss"] < 0.8 * hist[0]["train_loss"]
    assert {"train_miou", "val_miou", "val_pixel_acc"} <= set(hist[-1])
    res = evaluate_model(model, make_loader(val, 16, shuffle=False), "segmentation")
    assert res["primary"] == "miou" and res["n"] == 16
    assert res["miou"] == hist[-1]["val_miou"] and 0.0 < res["miou"] <= res["pixel_acc"] <= 1.0


def test_cli_train_and_evaluate_a_segmentation_model(tmp_path, capsys):
    out = tmp_path / "seg"
    argv = ["train", "seg_tiny", "--data", "shapes_seg", "--epochs", "1", "-o", str(out)]
    assert main([*argv, "--batch-size", "64"]) == 0
    assert "test mIoU" in capsys.readouterr().out
    meta = json.loads((out / "edgeslim_model.json").read_text())["meta"]
    assert meta["task"] == "segmentation" and 0.0 <= meta["test_miou"] <= 1.0
    js = tmp_path / "eval.json"
    assert main(["evaluate", str(out), "--data", "shapes_seg", "--json", str(js)]) == 0
    assert "mIoU" in capsys.readouterr().out
    res = json.loads(js.read_text())
    assert res["task"] == "segmentation" and res["n"] == 128
    assert 0.0 <= res["miou"] <= 1.0 and 0.0 <= res["pixel_acc"] <= 1.0


def test_onnx_export_of_a_segmentation_model_scores_and_compares_through_the_task(tmp_path):
    from edgeslim.bench.accuracy import compare, evaluate_onnx, onnx_predict, torch_predict
    from edgeslim.export.onnx import export_onnx
    from edgeslim.models.inputs import InputSpec

    torch.manual_seed(0)
    model = build_zoo_model("seg_tiny").eval()
    path = export_onnx(model, InputSpec((1, 3, 32, 32)), tmp_path / "seg.onnx").path
    loader = make_loader(Subset(load_dataset("shapes_seg", "test"), range(16)), 8, shuffle=False)
    ours, theirs = (
        evaluate_model(model, loader, "segmentation"),
        evaluate_onnx(path, loader, "segmentation"),
    )
    assert abs(ours["miou"] - theirs["miou"]) < 1e-3 and ours["n"] == theirs["n"] == 16
    same = compare(torch_predict(model), onnx_predict(path), loader, "segmentation")
    assert same["ok"] and same["pixel_agreement"] > 0.999 and same["n"] == 16 * 32 * 32
    broken = build_zoo_model("seg_tiny").eval()  # other random weights
    diff = compare(torch_predict(broken), onnx_predict(path), loader, "segmentation", lossy=True)
    assert not diff["ok"]
