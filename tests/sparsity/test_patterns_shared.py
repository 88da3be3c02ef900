"""Shared-pattern sparsity: PatternConv2d equals the masked dense conv, the filter permutation
leaves the model's function unchanged, both methods save and reload, the CLI runs."""

import copy
import itertools
import json

import pytest
import torch
from torch import nn

from edgeslim.cli.main import main
from edgeslim.core.errors import EdgeslimError
from edgeslim.core.methods import apply_
from edgeslim.models import build_zoo_model
from edgeslim.models.saved import load_saved, save_model
from edgeslim.models.spec import load_model
from edgeslim.sparsity import (
    PatternConv2d,
    PatternExecConfig,
    SharedPatternConfig,
    add_mask_,
    masked_layers,
    squashed,
)
from edgeslim.sparsity.pattern_conv import layout_of
from edgeslim.sparsity.pattern_groups import group_filters, tap_energy
from edgeslim.sparsity.patterns import adjacent_patterns, pattern_matrix

torch.manual_seed(0)


def _patterned_conv(cin, sizes, pats, stride, padding, bias=True):
    conv = nn.Conv2d(cin, sum(sizes), 3, stride, padding, bias=bias)
    rows = torch.cat([pattern_matrix((p,)).expand(s, 9) for s, p in zip(sizes, pats, strict=True)])
    with torch.no_grad():
        conv.weight.mul_(rows.reshape(-1, 1, 3, 3))
    return conv


@pytest.mark.parametrize(
    ("stride", "padding", "batch"),
    [(1, 0, 1), (1, 1, 3), (1, (1, 0), 1), (2, 0, 3), (2, 1, 1), (2, (1, 0), 3)],
)
def test_pattern_conv_equals_the_masked_dense_conv(stride, padding, batch):
    sizes, pats = [5, 1, 12, 3], [(0, 1), (4, 5, 8), (1, 4, 7, 8), (2, 5)]
    conv = _patterned_conv(6, sizes, pats, stride, padding, bias=batch == 1)
    pc = PatternConv2d.from_conv(conv).eval()
    assert pc.layout == list(zip(sizes, pats, strict=True))
    for h, w in ((9, 9), (8, 11), (4, 5)):
        x = torch.randn(batch, 6, h, w)
        with torch.no_grad():
            want = conv(x)
            for xin in (x, x.contiguous(memory_format=torch.channels_last)):
                got = pc(xin)
                assert got.shape == want.shape
                assert got.stride(1) == 1  # channels last: a view of the padded result
                assert (got - want).abs().max() < 1e-4
            pc.relu = True  # fused: the ReLU written once, contiguous channels_last
            got = pc(x)
            assert got.is_contiguous(memory_format=torch.channels_last)
            assert (got - torch.relu(want)).abs().max() < 1e-4
            pc.relu = False
    assert torch.equal(pc.dense_weight(), conv.weight.detach())


@pytest.mark.parametrize(("stride", "block"), [(1, 1), (1, 7), (1, 64), (2, 5), (2, 1000)])
def test_row_blocks_change_the_call_order_not_the_result(stride, block):
    # blocks that divide the rows, that leave a short last block, and one larger than all
    conv = _patterned_conv(6, [5, 1, 12, 3], [(0, 1), (4, 5, 8), (1, 4, 7, 8), (2, 5)], stride, 1)
    pc = PatternConv2d.from_conv(conv).eval()
    x = torch.randn(2, 6, 9, 11)
    with torch.no_grad():
        whole = pc(x)
        pc.block_rows = block
        got = pc(x)
    assert (got - whole).abs().max() < 1e-5 and (got - conv(x)).abs().max() < 1e-4
    with pytest.raises(EdgeslimError, match="block_rows"):
        PatternConv2d(6, pc.layout, block_rows=-1)
    with pytest.raises(EdgeslimError, match="blocks"):
        PatternExecConfig(blocks=())


def test_pattern_conv_trains_through_its_dense_equivalent():
    conv = _patterned_conv(4, [3, 5], [(0, 1, 2), (1, 4, 7)], 1, 1)
    pc = PatternConv2d.from_conv(conv)
    x = torch.randn(2, 4, 6, 6)
    pc(x).square().sum().backward()
    conv(x).square().sum().backward()
    got = pc.to_dense([p.grad for p in pc.weights])
    mask = (conv.weight != 0).float()
    assert torch.allclose(got, conv.weight.grad * mask, atol=1e-4)
    assert len(pc.weights) == 5  # taps 0, 2 | 4, 7 | tap 1 for both groups: one GEMM


def test_layout_keeps_every_nonzero():
    conv = _patterned_conv(3, [2, 2, 3], [(0, 1, 3), (0, 1), (4,)], 1, 1)
    with torch.no_grad():
        conv.weight[2:4, :, 0, 1] = 0  # the 2nd group keeps only tap 0 now: a subset, merged
    assert layout_of(conv.weight) == [(4, (0, 1, 3)), (3, (4,))]


def test_grouping_keeps_more_energy_than_any_single_pattern():
    w = torch.randn(32, 8, 3, 3)
    pats = pattern_matrix(adjacent_patterns(3)).double()
    e = tap_energy(w)
    assign, chosen = group_filters([e], pats, 4)
    kept = sum(float((e[assign == g] @ pats[chosen[g, 0]]).sum()) for g in range(len(chosen)))
    assert len(chosen) <= 4 and kept >= float((e @ pats.T).sum(0).max()) - 1e-9


def _model_with_stats():
    m = build_zoo_model("resnet20").eval()
    gen = torch.Generator().manual_seed(1)
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.copy_(torch.rand(mod.num_features, generator=gen) - 0.5)
            mod.running_var.copy_(torch.rand(mod.num_features, generator=gen) + 0.5)
    return m


@pytest.fixture(scope="module")
def resnet20_shared():
    """ResNet-20 with BN statistics, and its shared-pattern twin (3 taps, 4 groups)."""
    lm = load_model("resnet20")
    lm.model = _model_with_stats()
    dense = copy.deepcopy(lm.model)
    x = torch.randn(3, 3, 32, 32)
    sparse, rec = apply_(lm.model, SharedPatternConfig(3, groups=4), calib=[x[:1]])
    return lm, dense, sparse, rec, x


def test_permutation_is_absorbed_and_groups_are_contiguous(resnet20_shared):
    _, dense, sparse, rec, x = resnet20_shared
    assert rec.details["sparsity"] == pytest.approx(1 - 3 / 9)
    # residual-coupled convs share one permutation: the conv2s of a stage (and the
    # conv1 before the first add) split the channels at <= 3 common boundaries
    lay = rec.details["layouts"]
    cuts = set()
    for n in ("conv1", "layer1.0.conv2", "layer1.1.conv2", "layer1.2.conv2"):
        cuts |= set(itertools.accumulate(s for s, _ in lay[n]))
    assert len(cuts - {16}) <= 3
    assert all(len(v) <= 4 and all(len(t) == 3 for _, t in v) for v in lay.values())
    assert "layer2.0.conv1" in rec.details["permuted"]
    ones = copy.deepcopy(sparse)
    for mod in masked_layers(ones).values():
        add_mask_(mod)  # masks off: only the permutation is left
    with torch.no_grad():
        assert (ones(x) - dense(x)).abs().max() < 1e-4
        assert not torch.equal(ones.layer1[0].conv1.weight, dense.layer1[0].conv1.weight)


def _reloaded(lm, model, records, tmp_path):
    """``model`` saved with its method ``records`` (as ``lm``'s kind) and loaded back."""
    out = copy.copy(lm)
    out.model, out.methods = model, [r.to_dict() for r in records]
    save_model(out, tmp_path / "m")
    return load_saved(tmp_path / "m").model


def test_deployed_model_matches_masked_dense_and_reloads(tmp_path, resnet20_shared):
    lm, _, sparse, rec, x = resnet20_shared
    cfg = PatternExecConfig(keep_faster=False, blocks=(16,))
    dep, rec2 = apply_(copy.deepcopy(sparse), cfg, calib=[x])
    kept = rec2.details["layers"]
    assert len(kept) == 19 and all(v["kept"] == "pattern" for v in kept.values())
    assert all(v["block_rows"] == 16 for v in kept.values())
    assert not any("relu" in v for v in kept.values())  # BN not folded: the ReLU reads the BN
    assert isinstance(dep.layer1[0].conv1, PatternConv2d)
    with torch.no_grad():
        assert (dep(x) - sparse(x)).abs().max() < 1e-4
    back = _reloaded(lm, dep, [rec, rec2], tmp_path)
    assert isinstance(back.layer3[0].conv1, PatternConv2d)
    assert back.layer3[0].conv1.block_rows == 16  # the block travels with the record
    with torch.no_grad():
        assert (back(x) - dep(x)).abs().max() < 1e-6
        assert (back(x) - squashed(sparse)(x)).abs().max() < 1e-4


def test_relu_that_only_the_conv_feeds_is_fused_and_replayed(tmp_path, resnet20_shared):
    from edgeslim.fuse.method import FuseBNConfig

    lm, _, sparse, _, x = resnet20_shared
    folded, frec = apply_(squashed(sparse).eval(), FuseBNConfig(), calib=[x[:1]])
    dep, rec2 = apply_(copy.deepcopy(folded), PatternExecConfig(keep_faster=False), calib=[x])
    kept = rec2.details["layers"]
    # each block's first conv feeds its own ReLU (BN folded away) and takes it in; the
    # second conv's ReLU comes after the residual add, so it stays
    fused = {n: v["relu"] for n, v in kept.items() if "relu" in v}
    assert fused["layer1.0.conv1"] == "layer1.0.relu1" and "layer1.0.conv2" not in fused
    assert len(fused) == 10 and fused["conv1"] == "relu"  # each block's conv1, and the stem
    assert isinstance(dep.layer1[0].relu1, nn.Identity) and dep.layer1[0].conv1.relu
    assert isinstance(dep.layer1[0].relu2, nn.ReLU)
    with torch.no_grad():
        assert (dep(x) - folded(x)).abs().max() < 1e-4
    back = _reloaded(lm, dep, [frec, rec2], tmp_path)
    assert back.layer2[1].conv1.relu and isinstance(back.layer2[1].relu1, nn.Identity)
    with torch.no_grad():
        assert (back(x) - dep(x)).abs().max() < 1e-6


def test_exec_keeps_dense_where_dense_is_faster_by_the_record():
    conv = _patterned_conv(4, [4], [(0, 1)], 1, 1)
    m, rec = apply_(nn.Sequential(conv), PatternExecConfig(runs=1), calib=[torch.randn(1, 4, 5, 5)])
    info = rec.details["layers"]["0"]
    want = "pattern" if info["pattern_ms"] < info["dense_ms"] else "dense"
    assert info["kept"] == want and (type(m[0]) is PatternConv2d) == (want == "pattern")
    # the pattern time is its fastest block's, and only blocks under the output's rows ran
    assert info["pattern_ms"] == min(info["block_ms"].values())
    assert info["block_ms"][str(info["block_rows"])] == info["pattern_ms"]
    assert set(info["block_ms"]) == {"0"}  # 1x4x5x5 has 49 padded rows: no block of 2048


TINY = """
from torch import nn


def make():
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 16, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4),
    )
"""


def test_cli_patterns_method(tmp_path, capsys):
    (tmp_path / "tiny.py").write_text(TINY)
    out = tmp_path / "p"
    argv = ["sparsify", f"{tmp_path / 'tiny.py'}:make", "--input-shape", "1,3,16,16"]
    argv += ["--method", "patterns", "--sparsity", "0.778"]
    assert main([*argv, "--runs", "1", "--batch", "1", "--threads", "1", "-o", str(out)]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["method"] == "patterns" and rep["config"]["entries"] == 2
    assert rep["sparsity"]["masked_layers"] == pytest.approx(1 - 2 / 9)
    assert set(rep["execution"]["layers"]) == {"0", "3"}  # each kept as dense or pattern
    assert all(v["kept"] in ("dense", "pattern") for v in rep["execution"]["layers"].values())
    assert "pattern convs run as PatternConv2d" in capsys.readouterr().out
    back = load_saved(out)
    assert sorted(masked_layers(back.model)) == ["0", "3"]
    assert main([*argv[:-1], "0.5", "-o", str(tmp_path / "q")]) == 2
    assert "2, 3 or 4 taps" in capsys.readouterr().err
