"""The entropy criterion (Luo & Wu 2017): histogram entropy oracle, and it prunes dull channels."""

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from edgeslim.prune import PruneConfig, prune
from edgeslim.prune.importance import channel_entropy


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 8), st.integers(2, 64), st.integers(0, 1000))
def test_entropy_of_a_uniform_spread_is_log_bins(k, n_per_bin, seed):
    """k equally filled bins over the column's range give entropy log(k); a constant, 0."""
    bins = 8
    centers = (torch.arange(bins, dtype=torch.float64) + 0.5) / bins
    vals = centers[torch.randperm(bins, generator=torch.Generator().manual_seed(seed))[:k]]
    col = vals.repeat_interleave(n_per_bin)
    # stretch the range to [0, 1] so the histogram's bins are the centres' bins
    col = torch.cat([col, torch.tensor([0.0, 1.0], dtype=torch.float64)])
    x = torch.stack([col, torch.full_like(col, 3.0)], 1)
    h = channel_entropy(x, bins=bins)
    counts = torch.histc(col, bins=bins, min=0.0, max=1.0)
    p = counts[counts > 0] / len(col)
    assert math.isclose(float(h[0]), float(-(p * p.log()).sum()), rel_tol=1e-5)
    assert float(h[1]) == 0.0


def test_entropy_prunes_the_channels_that_do_not_vary():
    torch.manual_seed(0)
    m = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1),
        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2),
    )  # fmt: skip
    dull = [1, 4, 6, 7]
    with torch.no_grad():
        for c in dull:  # zero filter + positive bias: the same activation for every image
            m[0].weight[c].zero_()
            m[0].bias[c] = 0.5
    data = [torch.randn(16, 3, 8, 8) for _ in range(3)]
    res = prune(m, data[0][:1], PruneConfig(ratio=0.5, criterion="entropy", ignore=("2",)),
                data=data)  # fmt: skip
    assert res.model[0].out_channels == 4
    kept = [c for c in range(8) if c not in dull]
    w = m[0].weight[kept]
    assert torch.allclose(res.model[0].weight, w)  # exactly the varying channels survive
