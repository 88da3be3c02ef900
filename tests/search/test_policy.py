"""A policy is planned exactly as ``prune_`` applies it: what search measured is what ships."""

import copy

import torch

from edgeslim.graph.groups import build_dependency_graph
from edgeslim.models import build_zoo_model
from edgeslim.prune.config import PruneConfig
from edgeslim.prune.criteria import CRITERIA
from edgeslim.prune.importance import group_scores
from edgeslim.prune.remove import remove_
from edgeslim.search.policy import Policy, apply_, decisions, kept, plan_for


def test_decisions_cover_each_group_once_and_the_plan_is_what_prune_applies():
    torch.manual_seed(0)
    model = build_zoo_model("resnet20").eval()
    x = torch.randn(2, 3, 32, 32)
    graph = build_dependency_graph(model, x)
    base = PruneConfig(ratio=0.0, round_to=2)
    ds = decisions(graph, base)
    assert len({d.key for d in ds}) == len(ds) == len(graph.groups)  # ResNet-20: one each
    assert sorted(g for d in ds for g in d.groups) == list(range(len(graph.groups)))
    ratios = [0.25 * (i % 4) for i in range(len(ds))]  # every option, mixed
    scores = group_scores(model, graph, CRITERIA.get(base.criterion))
    plan = plan_for(graph, scores, base, ds, ratios)
    planned = remove_(copy.deepcopy(model), graph, plan)
    applied = copy.deepcopy(model)
    res = apply_(applied, x, base, ds, Policy(tuple(ratios)))
    assert res.plan.keys() == plan.keys()
    assert all((res.plan[g] == plan[g]).all() for g in plan)
    for d, r in zip(ds, ratios, strict=True):
        want = d.channels - int(d.channels * r)
        want += want % 2  # round_to=2 rounds the kept width to a multiple of 2
        assert kept(graph, plan, d) == want
        assert applied.get_submodule(d.key).out_channels == want
    for a, b in zip(planned.state_dict().values(), applied.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_ignored_layers_are_not_decisions():
    model = build_zoo_model("resnet20").eval()
    graph = build_dependency_graph(model, torch.randn(2, 3, 32, 32))
    ds = decisions(graph, PruneConfig(ratio=0.0, ignore=("layer3.*",)))
    assert ds and not any(d.key.startswith("layer3.") for d in ds)
