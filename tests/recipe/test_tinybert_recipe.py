"""The transformer recipe: TinyBERT settings of the distill stage, AdamW in training
stages, and ``pretrain`` of ``hf:`` configs (cached by the config's content)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeslim.core import EdgeslimError
from edgeslim.recipe import load_recipe, parse_recipe
from edgeslim.train.config import TrainConfig
from edgeslim.workflows.train import pretrained_path

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
BASE = """\
version: 1
model: resnet20
data: digits
stages:
  - distill: {SETTINGS}
"""


@pytest.mark.parametrize("name", ["bert_text.yaml", "bert_synthtext_tinybert.yaml"])
def test_bert_text_recipes_parse(name):
    r = load_recipe(RECIPES / name)
    names = [s.name for s in r.stages]
    assert names == ["prune", "distill", "quantize", "export"]
    d = r.stages[1].settings
    assert d.tinybert_stage == "task" and d.optimizer == "adamw" and not d.attention_maps
    assert r.recipe.pretrain.optimizer == "adamw"
    assert r.recipe.pretrain.train_config(0).optimizer == "adamw"


@pytest.mark.parametrize(
    "settings, match",
    [
        ("{prediction_epochs: 2}", "prediction_epochs belongs to tinybert_stage"),
        ("{tinybert_stage: task, losses: kd+cosine}", "TinyBERT's own losses"),
        ("{tinybert_stage: all}", "tinybert_stage"),
        ("{optimizer: adam}", "optimizer"),
    ],
)
def test_bad_tinybert_settings_are_named(settings, match):
    with pytest.raises(EdgeslimError, match=match):
        parse_recipe(BASE.replace("{SETTINGS}", settings))


def test_tinybert_settings_parse():
    r = parse_recipe(BASE.replace("{SETTINGS}", "{tinybert_stage: both, prediction_epochs: 2}"))
    s = r.stages[0].settings
    assert (s.tinybert_stage, s.epochs, s.prediction_epochs) == ("both", 3, 2)


def test_pretrain_key_of_hf_config_is_its_content(tmp_path):
    cfg = {"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 2}
    a, b = tmp_path / "a" / "bert.json", tmp_path / "b" / "bert.json"
    for p in (a, b):
        p.parent.mkdir()
    a.write_text(json.dumps(cfg))
    b.write_text(json.dumps(cfg, indent=2))  # same config, other path and formatting
    tc = TrainConfig(epochs=1)
    assert pretrained_path(f"hf:{a}", "synthtext", tc) == pretrained_path(
        f"hf:{b}", "synthtext", tc
    )
    b.write_text(json.dumps({**cfg, "num_hidden_layers": 3}))
    assert pretrained_path(f"hf:{a}", "synthtext", tc) != pretrained_path(
        f"hf:{b}", "synthtext", tc
    )
    assert pretrained_path(f"hf:{a}", "synthtext", tc).name.startswith("hf_bert_")
    with pytest.raises(EdgeslimError, match="zoo and hf"):
        pretrained_path("model.py:make", "synthtext", tc)
