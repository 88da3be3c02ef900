"""Oracle on architectures written here: concat, split/shuffle, SE, depthwise, grouped,
norms, channels-last MLP, a two-output detector; plus attention heads and unsupported ops."""

import copy

import pytest
import torch
from custom_archs import CNNS, AttnClassifier, EmbeddingBag, PixelShuffleUp
from oracle import check_oracle, randomize_

from edgeslim.core.errors import UnsupportedLayerError
from edgeslim.export.onnx import export_onnx
from edgeslim.graph import build_dependency_graph
from edgeslim.models.inputs import InputSpec
from edgeslim.prune import PruneConfig, prune


@pytest.mark.parametrize("name", sorted(CNNS))
def test_custom_cnn_pruned_equals_masked(name):
    torch.manual_seed(0)
    model = randomize_(CNNS[name]())
    x = torch.randn(2, 3, 32, 32)
    check_oracle(model, x[:1], PruneConfig(ratio=0.5), x=x)


def test_shuffle_and_chunk_prune_alike_in_every_group():
    g = build_dependency_graph(CNNS["shufflenet"](), torch.randn(1, 3, 32, 32))
    trunk = next(gr for gr in g.groups if ("units.0.branch1.2.0", "out") in gr.spaces)
    # 24 trunk channels, shuffled twice and chunked: units of 8 positions, pruned alike
    assert all(len(u[("units.0.branch1.2.0", "out")]) == 4 for u in trunk.units)


def test_layernorm_pins_residual_width_but_mlp_prunes():
    g = build_dependency_graph(CNNS["convnext"](), torch.randn(1, 3, 32, 32))
    assert [gr.layers for gr in g.groups] == [["fc1", "fc2"]]


def test_grouped_conv_loses_whole_groups():
    model, x = randomize_(CNNS["depthwise_grouped"]()), torch.randn(1, 3, 32, 32)
    g = build_dependency_graph(model, x)
    grp = next(gr for gr in g.groups if ("grouped", "out") in gr.spaces)
    # one unit per group of 4: its 8 inputs (pw's outputs) and its 8 outputs
    assert len(grp.units) == 4
    assert all(len(u[("grouped", "out")]) == 8 and len(u[("pw", "out")]) == 8 for u in grp.units)
    res = prune(model, x, PruneConfig(ratio=0.5, round_to=1))
    assert res.max_abs_diff is not None and res.max_abs_diff < 1e-5
    gc = res.model.grouped
    assert gc.groups == 2 and gc.in_channels == gc.out_channels == 16  # group width kept
    assert gc.weight.shape == (16, 8, 3, 3) and res.model.pw.out_channels == 16
    assert res.model.dw.groups == res.model.dw.in_channels == 8
    assert res.model.gn.num_groups == 2 and res.model.gn.num_channels == 16


def test_detector_two_outputs_onnx(tmp_path):
    model = randomize_(CNNS["detector"]())
    res = prune(model, torch.randn(1, 3, 64, 64), PruneConfig(ratio=0.5))
    assert res.max_abs_diff is not None and res.max_abs_diff < 1e-5
    assert res.model.head_s.out_channels == 27  # outputs are pinned
    out = res.model(torch.randn(1, 3, 64, 64))
    assert out[0].shape == (1, 27, 16, 16) and out[1].shape == (1, 27, 8, 8)


def test_multihead_attention_whole_heads(tmp_path):
    torch.manual_seed(0)
    model = AttnClassifier().eval()
    x = torch.randn(2, 6, 8)
    res = prune(model, x[:1], PruneConfig(ratio=0.5))
    attn = res.model.attn
    assert attn.num_heads == 2 and attn.q_proj.out_features == 16 and attn.head_dim == 8
    assert res.model.ffn1.out_features == 32
    assert type(model.attn) is torch.nn.MultiheadAttention  # the input is not modified
    r = export_onnx(res.model, InputSpec((1, 6, 8)), tmp_path / "attn.onnx")
    assert r.max_abs_diff < 1e-4


def test_head_prunable_mha_matches_torch():
    from edgeslim.graph.attention import HeadPrunableMHA

    torch.manual_seed(0)
    for batch_first in (True, False):
        ref = torch.nn.MultiheadAttention(16, 4, batch_first=batch_first).eval()
        new = HeadPrunableMHA.from_mha(ref).eval()
        q = torch.randn(2, 5, 16) if batch_first else torch.randn(5, 2, 16)
        mask = torch.zeros(2, 5, dtype=torch.bool)
        mask[0, -2:] = True
        a, wa = ref(q, q, q, key_padding_mask=mask)
        b, wb = new(q, q, q, key_padding_mask=mask)
        assert torch.allclose(a, b, atol=1e-5) and torch.allclose(wa, wb, atol=1e-5)


def test_unsupported_op_left_untouched_or_named_in_strict_mode():
    model, x = PixelShuffleUp(), torch.randn(1, 3, 16, 16)
    g = build_dependency_graph(model, x)
    assert any("pixel_shuffle" in u and "'up" in u for u in g.unsupported)
    assert all(("up.0", "out") not in gr.spaces for gr in g.groups)  # its outputs are kept
    res = prune(model, x, PruneConfig(ratio=0.5))
    assert res.model.up[0].out_channels == 16 and res.model.conv[0].out_channels == 8
    with pytest.raises(UnsupportedLayerError, match=r"pixel_shuffle.*layer 'up"):
        build_dependency_graph(model, x, strict=True)


def test_custom_layer_handler_registration():
    from edgeslim.graph import LayerSpec, channelwise, register_layer, register_module

    class Scale(torch.nn.Module):
        def __init__(self, c):
            super().__init__()
            self.s = torch.nn.Parameter(torch.rand(c) + 0.5)

        def forward(self, x):
            return x * self.s.view(1, -1, 1, 1)

    def resize(m, kind, n):
        pass

    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3), Scale(8), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 1)
    )
    x = torch.randn(1, 3, 8, 8)
    assert not build_dependency_graph(net, x).groups  # unknown parameter: left untouched
    register_layer(Scale, LayerSpec(out=(("s", 0),), inp=(), resize=resize))
    register_module(Scale, channelwise(axis=1))
    g = build_dependency_graph(net, x)
    assert g.groups and "1" in g.groups[0].layers
    check_oracle(copy.deepcopy(net).eval(), x)


def test_embedding_width_is_prunable():
    torch.manual_seed(0)
    model = EmbeddingBag().eval()
    ids = torch.randint(0, 50, (2, 7))
    pruned = check_oracle(model, ids[:1], PruneConfig(ratio=0.5), x=ids)
    assert pruned.emb.embedding_dim == 8 and pruned.proj.in_features == 8
