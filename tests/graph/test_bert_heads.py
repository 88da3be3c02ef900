"""transformers' BERT built offline from a config: whole attention heads and FFN width."""

import pytest
import torch
from oracle import check_oracle

from edgeslim.export.onnx import export_onnx
from edgeslim.graph import build_dependency_graph
from edgeslim.models.inputs import InputSpec
from edgeslim.prune import PruneConfig, prune

transformers = pytest.importorskip("transformers")

CONFIG = dict(
    model_type="bert",
    vocab_size=100,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=64,
    max_position_embeddings=32,
    num_labels=3,
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
)


@pytest.fixture(scope="module")
def bert():
    from edgeslim.models.hf import build_hf

    torch.manual_seed(0)
    return build_hf(dict(CONFIG)).eval()


def ids(batch=1):
    return torch.randint(0, 100, (batch, 12), generator=torch.Generator().manual_seed(0))


def test_groups_are_heads_and_ffn(bert):
    g = build_dependency_graph(bert, ids())
    kinds = sorted((len(gr.units), len(gr.spaces)) for gr in g.groups)
    # 2 layers x (heads, FFN), and the pooler dense -> classifier
    assert kinds == [(4, 4), (4, 4), (32, 2), (64, 2), (64, 2)]
    head = next(gr for gr in g.groups if len(gr.units) == 4)
    assert all(len(u[head.spaces[0]]) == 8 for u in head.units)  # 8 dims per head


def test_bert_pruned_equals_masked_and_exports(bert, tmp_path):
    check_oracle(bert, ids(), PruneConfig(ratio=0.5), x=ids(3))
    res = prune(bert, ids(), PruneConfig(ratio=0.5))
    att = res.model.hf.bert.encoder.layer[0].attention
    assert att.self.query.out_features == 16 and att.self.num_attention_heads == 2
    assert res.model.hf.bert.encoder.layer[0].intermediate.dense.out_features == 32
    r = export_onnx(res.model, InputSpec((1, 12), "int64", 100), tmp_path / "bert.onnx")
    assert r.max_abs_diff < 1e-4


def test_pruned_bert_saves_and_reloads(bert, tmp_path):
    from edgeslim.models.saved import load_saved, save_model
    from edgeslim.models.spec import LoadedModel

    res = prune(bert, ids(), PruneConfig(ratio=0.5, criterion="l2"))
    source = {"kind": "hf", "config": dict(CONFIG)}
    save_model(LoadedModel(res.model, source, InputSpec((1, 12), "int64", 100), "b"), tmp_path)
    back = load_saved(tmp_path).model
    with torch.no_grad():
        assert torch.allclose(back(ids(2)), res.model(ids(2)), atol=1e-5)
