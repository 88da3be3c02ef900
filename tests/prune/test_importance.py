"""Group importance against hand-computed references: "sum" is the group norm over
every coupled parameter, "mean" weighs every coupled layer the same."""

import pytest
import torch
from torch import nn

from edgeslim.core.errors import EdgeslimError
from edgeslim.graph.groups import build_dependency_graph
from edgeslim.prune.criteria import CRITERIA, Criterion
from edgeslim.prune.importance import group_scores


class Pair(nn.Module):
    """conv1 -> bn1 -> relu -> conv2 -> bn2 -> relu -> pool -> fc: conv1's channels touch
    conv1's filters, bn1's scales and conv2's input columns."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 6, 3, padding=1), nn.BatchNorm2d(6)
        self.fc = nn.Linear(6, 4)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.fc(x.mean((2, 3)))


@pytest.fixture
def scored():
    torch.manual_seed(0)
    model = Pair().eval()
    with torch.no_grad():  # BN scales of very different size from the filters' norms
        model.bn1.weight.uniform_(0.1, 3.0)
    graph = build_dependency_graph(model, torch.randn(2, 3, 8, 8))
    (gi,) = [i for i, g in enumerate(graph.groups) if ("conv1", "out") in g.spaces]
    assert [u[("conv1", "out")][0] for u in graph.groups[gi].units] == list(range(8))
    return model, graph, gi


def test_l1_is_the_l1_norm_of_every_parameter_removed_with_the_channel(scored):
    model, graph, gi = scored
    m = model
    want = (
        (
            m.conv1.weight.abs().sum((1, 2, 3))
            + m.bn1.weight.abs()
            + m.conv2.weight.abs().sum((0, 2, 3))
        )
        .detach()
        .double()
    )
    want = want / want.mean()
    got = torch.as_tensor(group_scores(model, graph, CRITERIA.get("l1"))[gi])
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-9)


def test_mean_reduce_weighs_each_coupled_layer_the_same(scored):
    model, graph, gi = scored
    m = model
    per_layer = [
        m.conv1.weight.flatten(1).norm(dim=1),
        m.bn1.weight.abs(),
        m.conv2.weight.transpose(0, 1).flatten(1).norm(dim=1),
    ]
    want = sum(s.detach().double() / s.detach().double().mean() for s in per_layer) / 3
    want = want / want.mean()
    got = torch.as_tensor(group_scores(model, graph, CRITERIA.get("l2"))[gi])
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-9)


def test_the_two_rules_rank_differently_when_layers_disagree(scored):
    """A channel with a huge BN scale but tiny weights: the group norm drops it, the
    equal-weight mean keeps it."""
    model, graph, gi = scored
    with torch.no_grad():
        model.bn1.weight.fill_(0.1)
        model.bn1.weight[0] = 1.0
        model.conv1.weight[0].mul_(1e-3)
        model.conv2.weight[:, 0].mul_(1e-3)
    l1 = Criterion(CRITERIA.get("l1").fn, spaces="all", reduce="sum")
    mean = Criterion(CRITERIA.get("l1").fn, spaces="all", reduce="mean")
    assert group_scores(model, graph, l1)[gi].argmin() == 0
    assert group_scores(model, graph, mean)[gi].argmax() == 0


def test_an_unknown_reduce_rule_is_a_clear_error():
    with pytest.raises(EdgeslimError, match="reduce"):
        Criterion(lambda rows: rows["weight"].sum(1), reduce="max")
