"""ALBERT's factorized embedding and cross-layer sharing, as rewrites of a trained BERT."""

import json

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from edgeslim.cli.main import main
from edgeslim.core.errors import EdgeslimError
from edgeslim.core.methods import apply
from edgeslim.lowrank import EmbeddingFactorConfig, LayerSharingConfig, RankRule
from edgeslim.lowrank.sharing import find_stack, partition
from edgeslim.models.saved import load_saved, save_model
from edgeslim.models.spec import load_model

CONFIG = {"model_type": "bert", "vocab_size": 300, "hidden_size": 32, "num_hidden_layers": 4,
          "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 128,
          "num_labels": 3}  # fmt: skip


def test_factorized_embedding_is_the_best_rank_r_table():
    torch.manual_seed(0)
    emb = nn.Embedding(200, 48, padding_idx=0)
    new, rec = apply(nn.Sequential(emb), EmbeddingFactorConfig(RankRule(rank=8), names=()))
    table = new[0](torch.arange(200)).detach().double().numpy()
    w = emb.weight.detach().double().numpy()
    s = np.linalg.svd(w, compute_uv=False)
    # Eckart-Young: the error of the best rank-8 table is the tail of the spectrum
    assert np.isclose(np.linalg.norm(w - table), np.sqrt((s[8:] ** 2).sum()), rtol=1e-4)
    d = rec.details["layers"]["0"]
    assert d["params_after"] == 200 * 8 + 8 * 48 < d["params_before"] == 200 * 48
    assert new[0][0].padding_idx == 0 and new[0][1].bias is None


def test_only_the_word_embeddings_of_a_bert_are_factorized():
    lm = load_model_from(CONFIG)
    _, rec = apply(lm.model, EmbeddingFactorConfig(RankRule(rank=8)))
    assert list(rec.details["layers"]) == ["hf.bert.embeddings.word_embeddings"]


@given(st.integers(1, 30), st.integers(1, 30))
def test_partition_is_contiguous_and_near_equal(n, groups):
    if groups > n:
        with pytest.raises(EdgeslimError, match="groups"):
            partition(n, groups)
        return
    parts = partition(n, groups)
    assert [i for g in parts for i in g] == list(range(n)) and len(parts) == groups
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_sharing_averages_each_group_and_links_the_blocks():
    torch.manual_seed(0)
    blocks = [nn.Linear(6, 6) for _ in range(4)]
    model = nn.Sequential(nn.ModuleList(blocks))
    mean01 = (blocks[0].weight + blocks[1].weight).detach() / 2
    new, rec = apply(model, LayerSharingConfig(groups=2))
    stack = new[0]
    assert stack[0] is stack[1] and stack[2] is stack[3] and stack[1] is not stack[2]
    assert torch.allclose(stack[0].weight, mean01)
    assert rec.details["params_after"] == 2 * 42 and rec.details["params_before"] == 4 * 42
    first, _ = apply(model, LayerSharingConfig(groups=1, init="first"))
    assert torch.equal(first[0][3].weight, blocks[0].weight)


def test_sharing_needs_a_stack_of_alike_blocks():
    with pytest.raises(EdgeslimError, match="no stack"):
        find_stack(nn.Sequential(nn.Linear(2, 2), nn.ModuleList([nn.Linear(2, 2)])))
    mixed = nn.Sequential(nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 3)]))
    with pytest.raises(EdgeslimError, match="differ"):
        apply(mixed, LayerSharingConfig(stack="0"))
    with pytest.raises(EdgeslimError, match="groups"):
        LayerSharingConfig(groups=0)


def load_model_from(config, tmp=None):
    import tempfile
    from pathlib import Path

    d = Path(tmp or tempfile.mkdtemp())
    (d / "bert.json").write_text(json.dumps(config))
    return load_model(f"hf:{d / 'bert.json'}")


def test_albert_bert_saves_once_per_shared_tensor_and_reloads(tmp_path):
    torch.manual_seed(0)
    lm = load_model_from(CONFIG, tmp_path)
    m1, r1 = apply(lm.model, EmbeddingFactorConfig(RankRule(rank=8)))
    m2, r2 = apply(m1, LayerSharingConfig(groups=1))
    assert m2.hf.bert.encoder.layer[0] is m2.hf.bert.encoder.layer[3]
    dense = type(lm)(lm.model, lm.source, lm.input, "bert", {}, [])
    albert = type(lm)(m2, lm.source, lm.input, "albert", {}, [r1.to_dict(), r2.to_dict()])
    save_model(dense, tmp_path / "dense")
    save_model(albert, tmp_path / "albert")
    size = lambda d: (tmp_path / d / "model.safetensors").stat().st_size  # noqa: E731
    assert size("albert") < 0.5 * size("dense")
    back = load_saved(tmp_path / "albert").model
    assert back.hf.bert.encoder.layer[0] is back.hf.bert.encoder.layer[2]
    x = torch.randint(0, 300, (2, 16))
    with torch.no_grad():
        assert torch.equal(back(x), m2.eval()(x))


def test_decompose_cli_albert_says_size_only(tmp_path, capsys):
    (tmp_path / "bert.json").write_text(json.dumps(CONFIG))
    out = tmp_path / "albert"
    argv = ["decompose", f"hf:{tmp_path / 'bert.json'}", "--method", "embedding", "--rank", "8",
            "--share-groups", "1", "--batch", "1", "--runs", "3", "-o", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "size on disk only" in printed and "sharing: 1 distinct blocks for the 4" in printed
    rep = json.loads((out / "report.json").read_text())
    inp, dec = rep["stages"]
    # parameters count each shared tensor once; the saved weights hold it once (this tiny
    # ONNX file is mostly graph, and its exporter folds small transposed weights per use)
    assert dec["params"] < 0.5 * inp["params"] and dec["size_bytes"] < inp["size_bytes"]
    assert (out / "model.safetensors").stat().st_size < 0.5 * 4 * inp["params"]
    assert rep["sharing"]["groups"] == [[0, 1, 2, 3]]
