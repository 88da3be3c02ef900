"""Allocation and targets: exact ratios, round_to, min channels, ignore, overrides,
global ranking, MACs and latency targets, and that the input model is untouched."""

import copy

import pytest
import torch

from edgeslim.bench.macs import count_macs
from edgeslim.core.errors import EdgeslimError
from edgeslim.models import build_zoo_model
from edgeslim.prune import PruneConfig, prune, prune_

X = torch.randn(1, 3, 32, 32)


@pytest.fixture(scope="module")
def r20():
    return build_zoo_model("resnet20").eval()


def widths(m):
    return {n: c.out_channels for n, c in m.named_modules() if isinstance(c, torch.nn.Conv2d)}


def test_uniform_ratio_is_exact_per_group(r20):
    res = prune(r20, X, PruneConfig(ratio=0.25))
    for g in res.graph.groups:
        assert len(res.plan.get(res.graph.groups.index(g), ())) == int(g.size * 0.25)
    assert res.model.conv1.out_channels == 12 and res.model.layer3[0].conv1.out_channels == 48
    assert widths(r20)["conv1"] == 16  # the input model is not modified


def test_round_to_and_min_channels(r20):
    res = prune(r20, X, PruneConfig(ratio=0.6, round_to=8))
    assert all(c % 8 == 0 for c in widths(res.model).values())
    res = prune(r20, X, PruneConfig(ratio=0.95, min_channels=4))
    assert min(widths(res.model).values()) == 4


def test_ignore_and_override(r20):
    res = prune(
        r20,
        X,
        PruneConfig(ratio=0.5, ignore=("layer1.0.conv1",), overrides=((r"layer3\..*", 0.25),)),
    )
    w = widths(res.model)
    assert w["layer1.0.conv1"] == 16 and w["layer1.1.conv1"] == 8
    assert w["layer3.1.conv1"] == 48 and w["layer3.0.conv2"] == 48


def test_global_ranking_removes_the_ratio_overall(r20):
    res = prune(r20, X, PruneConfig(ratio=0.5, global_ranking=True))
    total = sum(g.size for g in res.graph.groups)
    removed = sum(len(u) for u in res.plan.values())
    assert removed == total // 2
    assert len({len(res.plan.get(i, ())) / g.size for i, g in enumerate(res.graph.groups)}) > 1


@pytest.mark.parametrize("global_ranking", [False, True])
def test_macs_target_is_hit(r20, global_ranking):
    macs0 = count_macs(r20, X)[0]
    target = macs0 // 2
    res = prune(r20, X, PruneConfig(target_macs=target, global_ranking=global_ranking))
    # a uniform ratio moves every group at once (one channel of 16 is 6%); global is finer
    assert target * (0.97 if global_ranking else 0.9) <= res.macs[1] <= target


def test_unreachable_macs_target_is_a_clear_error(r20):
    with pytest.raises(EdgeslimError, match="cannot reach"):
        prune(r20, X, PruneConfig(target_macs=10))


def test_latency_target_prunes_in_measured_steps(r20):
    res = prune(r20, X, PruneConfig(target_latency_ms=1e6, latency_step=0.2))
    first, *refined = res.steps
    assert first["macs_fraction"] == 0.8 and not first["refine"] and first["latency_ms"] > 0
    # met at the first step: bisected back towards the input, fewest channels removed
    assert refined and all(s["refine"] and s["macs_fraction"] > 0.8 for s in refined)
    assert 0.8 * res.macs[0] < res.macs[1] < res.macs[0]


def test_in_place_verb(r20):
    m = copy.deepcopy(r20)
    res = prune_(m, X, PruneConfig(ratio=0.5))
    assert res.model is m and m.conv1.out_channels == 8


def test_config_validation():
    with pytest.raises(EdgeslimError, match="exactly one"):
        PruneConfig(ratio=0.5, target_macs=10)
    with pytest.raises(EdgeslimError, match="choose one of"):
        PruneConfig(ratio=0.5, criterion="nope")


def test_data_criteria_need_data(r20):
    with pytest.raises(EdgeslimError, match="needs data"):
        prune(r20, X, PruneConfig(ratio=0.5, criterion="taylor"))
    data = [(torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3]))]
    res = prune(r20, X, PruneConfig(ratio=0.5, criterion="taylor"), data=data)
    assert res.max_abs_diff < 1e-5


def narrow_net() -> torch.nn.Sequential:
    """Widths like a factorized model's ranks (12-36): with round_to 16 a group jumps a
    whole block, so the MACs are a coarse step function of the ratio."""
    torch.manual_seed(0)
    c = torch.nn.Conv2d
    return torch.nn.Sequential(
        c(3, 24, 3, padding=1), torch.nn.ReLU(), c(24, 36, 3, padding=1), torch.nn.ReLU(),
        c(36, 12, 3, padding=1), torch.nn.ReLU(), c(12, 40, 3, padding=1), torch.nn.ReLU(),
        c(40, 20, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(), torch.nn.Linear(20, 5),
    ).eval()  # fmt: skip


def test_macs_target_with_coarse_alignment_is_filled_back_up(monkeypatch):
    from edgeslim.prune import structured

    net = narrow_net()
    macs0 = count_macs(net, X)[0]
    target = int(0.65 * macs0)
    cfg = PruneConfig(target_macs=target, round_to=16)
    monkeypatch.setattr(structured, "FILL_BELOW", 0.0)  # the bisection alone
    alone = count_macs(prune(net, X, cfg).model, X)[0]
    monkeypatch.undo()
    res = prune(net, X, cfg)
    filled = count_macs(res.model, X)[0]
    assert alone < 0.85 * target  # the step the bisection lands on is far below the target
    assert alone < filled <= target and filled >= 0.95 * target
    for n, w in widths(res.model).items():  # still aligned: a multiple of 16, or unpruned
        assert w % 16 == 0 or w == widths(net)[n], (n, w)
