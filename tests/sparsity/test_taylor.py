"""Taylor scores equal a by-hand reference, and Taylor masks follow an AGP schedule."""

import pytest
import torch
from torch import nn

from edgeslim.core.errors import EdgeslimError
from edgeslim.core.methods import apply_
from edgeslim.sparsity import AGPSchedule, Sparsifier, TaylorConfig, masked_layers, sparsity_of


def _data(n_batches=3):
    g = torch.Generator().manual_seed(1)
    return [
        (torch.randn(8, 6, generator=g), torch.randint(0, 3, (8,), generator=g))
        for _ in range(n_batches)
    ]


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 10), nn.ReLU(), nn.Linear(10, 3))


def test_taylor_masks_keep_the_largest_mean_squared_gradient_times_weight():
    model, data = _mlp(), _data()
    # reference: per-batch gradients by hand, (g * w)^2 averaged, the k smallest zeroed
    ref = {"0": torch.zeros(10, 6), "2": torch.zeros(3, 10)}
    for x, y in data:
        model.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        for n in ref:
            layer = model.get_submodule(n)
            ref[n] += (layer.weight.grad * layer.weight.detach()) ** 2 / len(data)
    model.zero_grad()
    w0 = {n: model.get_submodule(n).weight.detach().clone() for n in ref}
    model, rec = apply_(model, TaylorConfig(0.6, batches=3), calib=data)
    for n, score in ref.items():
        w = model.get_submodule(n).weight.detach()
        assert int((w == 0).sum()) == round(0.6 * w.numel())
        kept, dropped = score[w != 0], score[w == 0]
        assert kept.min() >= dropped.max() - 1e-12
        assert torch.equal(w[w != 0], w0[n][w != 0])
    assert all(p.grad is None for p in model.parameters())  # gradients left untouched


def test_taylor_under_agp_follows_the_schedule_with_training_gradients():
    model, data = _mlp(), _data(4)
    sched = AGPSchedule(final=0.8, steps=4, every=2)
    sp = Sparsifier(TaylorConfig(0.8, scope="global"), schedule=sched)
    sp.prepare(model, calib=data)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for t in range(1, 9):
        x, y = data[t % len(data)]
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        s = sp.step()
        total = sum(m.weight.numel() for m in masked_layers(model).values())
        assert s == pytest.approx(round(sched.sparsity_at(t) * total) / total)
    assert sparsity_of(model) == pytest.approx(0.8, abs=1 / 90)


def test_taylor_without_data_is_a_clear_error():
    with pytest.raises(EdgeslimError, match="calibration"):
        apply_(_mlp(), TaylorConfig(0.5))
