"""``hf:config.json`` specs: a transformers BERT built offline, saved and reloaded."""

import json

import pytest
import torch

from edgeslim.models.saved import load_saved, save_model
from edgeslim.models.spec import load_model

pytest.importorskip("transformers")

CONFIG = {
    "model_type": "bert",
    "vocab_size": 500,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 64,
    "max_position_embeddings": 64,
    "num_labels": 3,
}


def test_hf_spec_builds_runs_and_roundtrips(tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(CONFIG))
    lm = load_model(f"hf:{cfg}", input_shape=(2, 16))
    assert lm.input.dtype == "int64" and lm.input.vocab_size == 500
    x = lm.input.example()
    assert x.dtype == torch.long and int(x.max()) < 500
    out = lm.model(x)
    assert out.shape == (2, 3)
    # eager attention (explicit matmuls), not SDPA: what export, pruning and PTQ must see
    assert lm.model.hf.config._attn_implementation == "eager"
    save_model(lm, tmp_path / "saved")
    back = load_saved(tmp_path / "saved")
    torch.testing.assert_close(back.model(x), out)
    assert load_model(f"hf:{cfg}", num_classes=5).model(x).shape == (2, 5)
