"""A transformers config in a recipe takes its number of labels from the recipe's data."""

import json

from edgeslim.recipe import parse_recipe
from edgeslim.recipe.runner import input_model


def test_hf_config_labels_follow_the_data(tmp_path):
    cfg = {"model_type": "bert", "vocab_size": 128, "hidden_size": 16, "num_hidden_layers": 1,
           "num_attention_heads": 2, "intermediate_size": 32, "max_position_embeddings": 64,
           "num_labels": 2}  # fmt: skip
    (tmp_path / "b.json").write_text(json.dumps(cfg))
    text = f"version: 1\nmodel: hf:{tmp_path / 'b.json'}\ndata: synthtext\nstages:\n  - export\n"
    lm = input_model(parse_recipe(text).recipe)
    assert lm.model.hf.config.num_labels == 4  # synthtext has 4 classes, the config said 2
    assert lm.source["config"]["num_labels"] == 4  # and a reload rebuilds the same head
