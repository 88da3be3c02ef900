"""Rank rules: minimal energy rank, maximal rank under a budget, and EVBMF on known ranks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeslim.core.errors import EdgeslimError
from edgeslim.lowrank.evbmf import evbmf
from edgeslim.lowrank.ranks import RankRule, energy_kept, energy_rank, matrix_rank, ratio_rank

spectra = st.lists(st.floats(0.0, 100.0, allow_nan=False), min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(s=spectra, energy=st.floats(0.01, 1.0))
def test_energy_rank_is_the_smallest_that_keeps_the_energy(s, energy):
    s = np.array(s)
    r = energy_rank(s, energy)
    assert 1 <= r <= max(1, len(s))
    if (s**2).sum() > 0:
        assert energy_kept(s, r) >= energy - 1e-9
        if r > 1:
            assert energy_kept(s, r - 1) < energy


@settings(max_examples=200, deadline=None)
@given(
    i=st.integers(1, 300),
    o=st.integers(1, 300),
    ratio=st.floats(0.01, 1.0),
)
def test_ratio_rank_is_the_largest_within_budget(i, o, ratio):
    def cost(r):
        return r * (i + o)

    max_rank = min(i, o)
    r = ratio_rank(cost, i * o, ratio, max_rank)
    assert 1 <= r <= max_rank
    if r > 1 or cost(1) <= ratio * i * o:
        assert cost(r) <= ratio * i * o
    if r < max_rank:
        assert cost(r + 1) > ratio * i * o


@settings(max_examples=50, deadline=None)
@given(rank=st.integers(1, 50), rows=st.integers(2, 20), cols=st.integers(2, 20))
def test_a_fixed_rank_is_clipped_to_the_matrix(rank, rows, cols):
    m = np.random.default_rng(0).normal(size=(rows, cols))
    assert matrix_rank(RankRule(rank=rank), m, lambda r: r, rows * cols) == min(rank, rows, cols)


@pytest.mark.parametrize(
    ("shape", "rank", "noise"),
    [((40, 60), 3, 0.1), ((64, 576), 8, 0.5), ((128, 64), 10, 1.0), ((50, 50), 5, 0.3)],
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_evbmf_recovers_a_known_rank_and_noise(shape, rank, noise, seed):
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=(shape[0], rank)) @ rng.normal(size=(rank, shape[1]))
    res = evbmf(signal + noise * rng.normal(size=shape))
    assert res.rank == rank
    assert res.sigma2 == pytest.approx(noise**2, rel=0.1)
    # shrinkage: every kept singular value moves towards zero
    s = np.linalg.svd(signal + noise * rng.normal(size=shape), compute_uv=False)
    assert len(res.shrunk) == rank and (res.shrunk < s[:rank] * 1.05).all()


def test_evbmf_with_a_known_noise_keeps_components_above_its_threshold():
    rng = np.random.default_rng(3)
    y = rng.normal(size=(30, 3)) @ rng.normal(size=(3, 40)) + 0.01 * rng.normal(size=(30, 40))
    s = np.linalg.svd(y, compute_uv=False)
    res = evbmf(y, sigma2=1e-4)
    assert res.rank == int((s > res.threshold).sum())


def test_evbmf_pure_noise_keeps_nothing_and_bad_input_is_clear():
    rng = np.random.default_rng(0)
    assert evbmf(rng.normal(size=(60, 80))).rank == 0
    with pytest.raises(EdgeslimError, match="matrix"):
        evbmf(np.ones(5))
    with pytest.raises(EdgeslimError, match="NaN"):
        evbmf(np.full((3, 3), np.nan))
