"""Model specs and saved model directories: round trips, changed widths, damaged files."""

import json

import pytest
import torch
from torch import nn

from edgeslim.core import EdgeslimError
from edgeslim.models.codecs import set_submodule
from edgeslim.models.saved import WEIGHTS, load_saved, save_model
from edgeslim.models.spec import load_model

USER_MODEL = """
import torch
from torch import nn

def make():
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
"""


@pytest.fixture
def user_file(tmp_path):
    f = tmp_path / "user_models.py"
    f.write_text(USER_MODEL)
    return f


def test_zoo_spec_defaults_and_overrides():
    lm = load_model("resnet20", num_classes=7, input_shape=(2, 3, 40, 40))
    assert lm.input.shape == (2, 3, 40, 40)
    assert lm.model(lm.input.example()).shape == (2, 7)
    assert not lm.model.training


def test_file_spec(user_file):
    lm = load_model(f"{user_file}:make", input_shape=(1, 3, 16, 16))
    assert lm.model(lm.input.example()).shape == (1, 4)
    with pytest.raises(EdgeslimError, match="no default input shape"):
        load_model(f"{user_file}:make").require_input()


@pytest.mark.parametrize(
    "spec, match",
    [
        ("nosuchmodel", "unknown model 'nosuchmodel'"),
        ("missing/file.py:make", "model file not found"),
        ("./no/such/dir", "model not found"),
        ("x.onnx", "ONNX file"),
        ("hf:/no/config.json", "config not found"),
    ],
)
def test_bad_specs_are_clear(spec, match):
    with pytest.raises(EdgeslimError, match=match):
        load_model(spec)


def test_file_spec_errors(user_file):
    with pytest.raises(EdgeslimError, match="no callable 'nope'"):
        load_model(f"{user_file}:nope")
    broken = user_file.with_name("broken.py")
    broken.write_text("raise ValueError('boom')\ndef make(): pass\n")
    with pytest.raises(EdgeslimError, match="importing .* failed: ValueError: boom"):
        load_model(f"{broken}:make")


def _narrow_first_block(model: nn.Module) -> None:
    """Mimic channel pruning: layer1.0's inner width 16 -> 5, with new random weights."""
    set_submodule(model, "layer1.0.conv1", nn.Conv2d(16, 5, 3, padding=1, bias=False))
    set_submodule(model, "layer1.0.bn1", nn.BatchNorm2d(5))
    set_submodule(model, "layer1.0.conv2", nn.Conv2d(5, 16, 3, padding=1, bias=False))


def test_saved_roundtrip_keeps_changed_widths(tmp_path):
    lm = load_model("resnet20")
    _narrow_first_block(lm.model)
    lm.model.eval()
    x = lm.input.example(batch=2)
    ref = lm.model(x)
    save_model(lm, tmp_path / "m")
    back = load_model(str(tmp_path / "m"))
    assert back.model.layer1[0].conv1.out_channels == 5
    torch.testing.assert_close(back.model(x), ref, rtol=0, atol=0)
    assert back.input == lm.input and back.source == lm.source


def test_saved_file_model_roundtrip(tmp_path, user_file):
    lm = load_model(f"{user_file}:make", input_shape=(1, 3, 16, 16))
    save_model(lm, tmp_path / "m")
    back = load_saved(tmp_path / "m")
    x = lm.input.example()
    torch.testing.assert_close(back.model(x), lm.model(x))


def test_damaged_saved_models_are_refused(tmp_path):
    lm = load_model("resnet20")
    d = save_model(lm, tmp_path / "m")
    (d / WEIGHTS).write_bytes((d / WEIGHTS).read_bytes()[:1000])
    with pytest.raises(EdgeslimError, match="corrupt"):
        load_saved(d)
    with pytest.raises(EdgeslimError, match="not a saved edgeslim model"):
        load_saved(tmp_path)
    d2 = save_model(lm, tmp_path / "m2")
    (d2 / "edgeslim_model.json").write_text("{not json")
    with pytest.raises(EdgeslimError, match="corrupt"):
        load_saved(d2)


def test_nan_weights_are_refused(tmp_path):
    lm = load_model("resnet20")
    with torch.no_grad():
        lm.model.conv1.weight[0, 0, 0, 0] = float("nan")
    d = save_model(lm, tmp_path / "m")
    with pytest.raises(EdgeslimError, match="NaN"):
        load_saved(d)


def test_unknown_layer_type_in_manifest_is_refused(tmp_path):
    d = save_model(load_model("resnet20"), tmp_path / "m")
    man = json.loads((d / "edgeslim_model.json").read_text())
    man["modules"]["conv1"] = {"type": "os.system", "args": {}}
    (d / "edgeslim_model.json").write_text(json.dumps(man))
    with pytest.raises(EdgeslimError, match="unknown type"):
        load_saved(d)
