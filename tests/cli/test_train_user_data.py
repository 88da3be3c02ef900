"""``edgeslim train`` on user data: statistics saved with the model, the chance guard."""

import json
import re

import numpy as np
import pytest

from edgeslim.bench.accuracy import evaluate_model
from edgeslim.cli.main import main
from edgeslim.data import Normalization, dataset_normalization, load_dataset, make_loader
from edgeslim.export.metadata import read_onnx_metadata
from edgeslim.models.saved import load_saved

NET = """
from torch import nn

def make():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
"""


@pytest.fixture
def net(tmp_path):
    f = tmp_path / "net.py"
    f.write_text(NET)
    return f"{f}:make"


def _npz(path, images, labels, seed=0):
    """Train/val/test splits of the given generators, as uint8 N,H,W,C."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", 64), ("val", 40), ("test", 40)):
        y = labels(rng, n)
        arrays[f"x_{split}"], arrays[f"y_{split}"] = images(rng, y), y
    np.savez(path, **arrays)
    return f"npz:{path}"


def _colour_coded(rng, y):
    """Class k is a bright channel-k blob: learnable in an epoch or two."""
    x = rng.integers(0, 60, (len(y), 8, 8, 3), dtype=np.uint8)
    for i, k in enumerate(y):
        x[i, 2:6, 2:6, k % 3] = 200 + 50 * (k // 3)
    return x


def _balanced(rng, n):
    return rng.permutation(np.arange(n) % 4).astype(np.int64)


def test_statistics_travel_with_the_saved_model(tmp_path, net, capsys):
    data = _npz(tmp_path / "a.npz", _colour_coded, _balanced)
    out = tmp_path / "run"
    args = ["train", net, "--data", data, "--epochs", "1", "--batch-size", "16", "-o", str(out)]
    assert main(args) == 0
    manifest = json.loads((out / "edgeslim_model.json").read_text())
    saved = Normalization.from_meta(manifest["meta"])
    assert saved == dataset_normalization(data)
    assert Normalization.from_meta(load_saved(out).meta) == saved
    # evaluated on other data (own statistics differ), the model still gets its own
    other = _npz(tmp_path / "b.npz", lambda r, y: _colour_coded(r, y) // 2, _balanced, seed=1)
    assert dataset_normalization(other) != saved
    res = tmp_path / "e.json"
    assert main(["evaluate", str(out), "--data", other, "--json", str(res)]) == 0
    ds = load_dataset(other, "test", normalization=saved)
    expected = evaluate_model(load_saved(out).model, make_loader(ds, 256, shuffle=False))
    assert json.loads(res.read_text())["top1"] == pytest.approx(expected["top1"])
    # exported, the ONNX file carries them too, and evaluate reads them from it
    onnx = tmp_path / "m.onnx"
    assert main(["export", str(out), "-o", str(onnx)]) == 0
    assert Normalization.from_meta(read_onnx_metadata(onnx)) == saved
    res_onnx = tmp_path / "o.json"
    assert main(["evaluate", str(onnx), "--data", other, "--json", str(res_onnx)]) == 0
    assert json.loads(res_onnx.read_text())["top1"] == pytest.approx(expected["top1"])


def _unlearnable(rng, y):
    return np.zeros((len(y), 8, 8, 3), np.uint8)  # identical images, balanced labels


def test_chance_is_a_warning_and_an_error_with_strict(tmp_path, net, capsys):
    data = _npz(tmp_path / "u.npz", _unlearnable, _balanced)
    base = ["train", net, "--data", data, "--epochs", "3", "--batch-size", "16"]
    assert main([*base, "-o", str(tmp_path / "w")]) == 0
    err = capsys.readouterr().err
    assert "warning: validation top-1 is 25.0% after 3 epoch(s)" in err
    assert "chance level for 4 classes" in err
    assert main([*base, "--strict", "-o", str(tmp_path / "s")]) == 2
    last = re.split(r"[\r\n]", capsys.readouterr().err.strip())[-1]  # after the progress bars
    assert last.startswith("edgeslim: error: validation top-1 is 25.0% after 3 epoch(s)")
    assert not (tmp_path / "s" / "edgeslim_model.json").exists()


def test_learning_model_gets_no_warning(tmp_path, net, capsys):
    data = _npz(tmp_path / "a.npz", _colour_coded, _balanced)
    args = ["train", net, "--data", data, "--epochs", "3", "--batch-size", "16", "--strict"]
    assert main([*args, "--lr", "0.05", "-o", str(tmp_path / "r")]) == 0
    assert "warning" not in capsys.readouterr().err


@pytest.mark.parametrize("lr", ["fast", "-1", "0"])
def test_bad_lr_is_a_usage_error(tmp_path, net, lr, capsys):
    with pytest.raises(SystemExit):
        main(["train", net, "--data", "digits", "--epochs", "1", "--lr", lr, "-o", "x"])
    assert "--lr" in capsys.readouterr().err
