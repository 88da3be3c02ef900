"""Fixtures: digits data and a few small nets trained on it in seconds."""

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from edgeslim.data import load_dataset, make_loader

from .nets import NETS


def _train(model, loader, epochs=4):
    torch.manual_seed(0)
    loader = make_loader(loader.dataset, loader.batch_size, shuffle=True, seed=0)  # same order
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    model.train()
    for _ in range(epochs):
        for x, y in loader:
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
    return model.eval()


def _small(split):
    """The digits split at its native 8x8 resolution: training takes a second, not a minute."""
    ds = load_dataset("digits", split)
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    y = torch.tensor([int(ds[i][1]) for i in range(len(ds))])
    return TensorDataset(F.avg_pool2d(x, 4), y)


@pytest.fixture(scope="session")
def digits():
    train = make_loader(_small("train"), 64, shuffle=True)
    val = make_loader(_small("val"), 128, shuffle=False)
    test = make_loader(_small("test"), 128, shuffle=False)
    return train, val, test


@pytest.fixture(scope="session")
def trained(digits):
    """``get(name, seed=0)``: a test net trained on digits (about 2 s each on 2 cores)."""
    cache = {}

    def get(name, seed=0):
        if (name, seed) not in cache:
            torch.manual_seed(seed)
            cache[name, seed] = _train(NETS[name](), digits[0])
        return cache[name, seed]

    return get
