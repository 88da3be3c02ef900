"""The weights' moving average: YOLOv5's ramped decay against a hand-rolled reference, and
the Trainer evaluating, keeping and resuming it."""

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import TensorDataset

from edgeslim.train.config import TrainConfig
from edgeslim.train.ema import ema_model, ramped_decay
from edgeslim.train.trainer import Trainer


@settings(max_examples=25, deadline=None)
@given(
    decay=st.floats(0.5, 0.9999),
    tau=st.floats(0.5, 50.0),
    steps=st.integers(1, 12),
    seed=st.integers(0, 10_000),
)
def test_ema_matches_the_reference_recursion(decay, tau, steps, seed):
    g = torch.Generator().manual_seed(seed)
    m = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    ema = ema_model(m, decay, tau)
    ref = {k: v.clone() for k, v in m.state_dict().items()}
    for n in range(steps):
        with torch.no_grad():
            for p in m.parameters():
                p.add_(torch.randn(p.shape, generator=g))
            m[1].running_mean.add_(torch.randn(2, generator=g))
        ema.update_parameters(m)
        d = 0.0 if n == 0 else ramped_decay(decay, n, tau)  # the first update copies
        for k, v in m.state_dict().items():
            if v.is_floating_point():
                ref[k] = d * ref[k] + (1 - d) * v
            else:
                ref[k] = v.clone()
    for k, v in ema.module.state_dict().items():
        torch.testing.assert_close(v, ref[k], rtol=1e-5, atol=1e-5)


def test_ramp_starts_at_zero_and_reaches_decay():
    assert ramped_decay(0.9999, 0) == 0.0
    assert math.isclose(ramped_decay(0.9, 10**6), 0.9)
    assert ramped_decay(0.9, 10) < ramped_decay(0.9, 100) < 0.9


def data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 8, generator=g)
    y = (x[:, 0] > 0).long()
    return TensorDataset(x, y)


def net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))


def test_trainer_keeps_the_average_and_resumes_it(tmp_path):
    cfg = TrainConfig(epochs=3, batch_size=32, lr=0.1, ema=0.9, warmup_epochs=0)
    plain = net()
    Trainer(
        plain, TrainConfig(epochs=3, batch_size=32, lr=0.1, warmup_epochs=0), progress=False
    ).fit(data(), data())
    full = net()
    t = Trainer(full, cfg, progress=False)
    t.fit(data(), data())
    for a, b in zip(full.state_dict().values(), t.ema.module.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)  # the model handed back is the average
    assert not torch.equal(full[0].weight, plain[0].weight)  # and not the last step's

    # killed after its first epoch, then resumed: the average resumes too (checkpointed)
    class Stop(Exception):
        pass

    def stop(history):
        raise Stop

    part = net()
    try:
        Trainer(part, cfg, ckpt_dir=tmp_path, progress=False, on_epoch=stop).fit(data(), data())
    except Stop:
        pass
    resumed = net()
    Trainer(resumed, cfg, ckpt_dir=tmp_path, progress=False).fit(data(), data())
    for a, b in zip(resumed.state_dict().values(), full.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
