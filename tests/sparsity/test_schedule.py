"""The AGP schedule follows Zhu & Gupta's cubic, and the Sparsifier follows the schedule."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from edgeslim.core.errors import EdgeslimError
from edgeslim.sparsity import AGPSchedule, MagnitudeConfig, NMConfig, Sparsifier, masked_layers


def zhu_gupta(t, s_i, s_f, t0, n, dt):
    """s_t = s_f + (s_i - s_f)(1 - (t - t0)/(n dt))^3 at the last pruning step <= t."""
    if t < t0:
        return s_i
    steps = [t0 + k * dt for k in range(n + 1)]
    last = max(s for s in steps if s <= t)
    return s_f + (s_i - s_f) * (1 - (last - t0) / (n * dt)) ** 3


@settings(max_examples=60, deadline=None)
@given(
    s_i=st.floats(0, 0.5),
    s_f=st.floats(0.5, 0.95),
    t0=st.integers(0, 20),
    n=st.integers(1, 10),
    dt=st.integers(1, 10),
    t=st.integers(0, 200),
)
def test_schedule_is_the_cubic_of_zhu_and_gupta(s_i, s_f, t0, n, dt, t):
    s = AGPSchedule(final=s_f, steps=n, every=dt, start=t0, initial=s_i)
    assert s.sparsity_at(t) == pytest.approx(zhu_gupta(t, s_i, s_f, t0, n, dt), abs=1e-12)
    assert s.sparsity_at(s.end) == pytest.approx(s_f)
    assert s.sparsity_at(t) <= s.sparsity_at(t + 1) + 1e-12  # never decreases


def test_sparsifier_follows_the_schedule_exactly_and_masks_only_grow():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(40, 30), nn.ReLU(), nn.Linear(30, 20))
    sched = AGPSchedule(final=0.9, steps=5, every=3, start=2, initial=0.1)
    sp = Sparsifier(MagnitudeConfig(0.9), schedule=sched, overrides={"2": MagnitudeConfig(0.6)})
    sp.prepare(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    prev = {n: (m.weight == 0).clone() for n, m in masked_layers(model).items()}
    for t in range(1, 25):
        loss = model(torch.randn(8, 40)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sp.step()
        for name, final in (("0", 0.9), ("2", 0.6)):
            w = model.get_submodule(name).weight
            expected = zhu_gupta(t, 0.1, final, 2, 5, 3) if t >= 2 else 0.1
            assert int((w == 0).sum()) == round(expected * w.numel()), (t, name)
            assert bool((w[prev[name]] == 0).all())  # once pruned, stays pruned
            prev[name] = (w == 0).clone()
    assert sp.record.layers["0"].sparsity == pytest.approx(0.9)
    assert sp.record.layers["2"].sparsity == pytest.approx(0.6)
    assert sp.state_dict() == {"step": 24}


def test_a_schedule_needs_a_kind_with_a_sparsity_parameter():
    with pytest.raises(EdgeslimError, match="fixed sparsity"):
        Sparsifier(NMConfig(2, 4), schedule=AGPSchedule(0.5, steps=2))
    with pytest.raises(EdgeslimError):
        AGPSchedule(final=0.5, steps=0)
    with pytest.raises(EdgeslimError, match="prepare"):
        Sparsifier(MagnitudeConfig(0.5)).step()
