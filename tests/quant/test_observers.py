"""Calibrators against oracles: exact min-max, known distributions, closed-form ACIQ."""

import math

import numpy as np
import pytest
import scipy.stats
import torch

from edgeslim.quant.observers import OBSERVERS, make_observer
from edgeslim.quant.observers.aciq import expected_mse, optimal_alpha
from edgeslim.quant.observers.kl import kl_threshold

# Banner et al. 2019, Section 3: optimal clipping per bit width, in units of b / sigma
LAPLACE = {2: 2.83, 3: 3.89, 4: 5.03, 8: 9.89}
GAUSS = {2: 1.71, 3: 2.15, 4: 2.55, 8: 3.92}


def test_registry_has_every_calibrator():
    assert set(OBSERVERS.names()) >= {"minmax", "ema_minmax", "percentile", "kl", "mse", "aciq"}


def test_minmax_exact_and_per_channel():
    o = make_observer("minmax", ch_axis=0)
    x = torch.tensor([[1.0, -2.0, 3.0], [0.5, 0.25, -0.125]])
    o(x)
    o(x * 2)
    lo, hi = o.range(-127, 127, True)
    assert lo.tolist() == [-4.0, -0.25] and hi.tolist() == [6.0, 1.0]
    assert "min_val" in o.state_dict()


def test_moving_average_smooths_outlier_batch():
    o = make_observer("ema_minmax", momentum=0.1)
    for _ in range(10):
        o(torch.tensor([0.0, 1.0]))
    o(torch.tensor([0.0, 100.0]))
    assert 1.0 < float(o.range(0, 255, False)[1]) < 15.0


@pytest.mark.parametrize("bits,table", [(b, LAPLACE) for b in LAPLACE])
def test_aciq_laplace_closed_form(bits, table):
    assert optimal_alpha(bits, "laplace") == pytest.approx(table[bits], abs=0.02)


@pytest.mark.parametrize("bits", list(GAUSS))
def test_aciq_gauss_closed_form(bits):
    assert optimal_alpha(bits, "gauss") == pytest.approx(GAUSS[bits], abs=0.02)
    a = optimal_alpha(bits, "gauss")
    assert expected_mse(a, bits, "gauss") <= expected_mse(a * 1.1, bits, "gauss")


def test_aciq_estimates_laplace_scale():
    b = 0.5
    x = torch.distributions.Laplace(0.0, b).sample((400_000,))
    o = make_observer("aciq")
    o(x)
    lo, hi = o.range(-8, 7, True)  # 4 bits
    assert float(hi) == pytest.approx(5.03 * b, rel=0.05)
    assert float(lo) == pytest.approx(-5.03 * b, rel=0.05)


def _reference_kl_bin(bins, levels, eps=1e-4):
    """TensorRT entropy calibration, written as plainly as NVIDIA's pytorch-quantization.

    For each candidate ``i``: ``P`` = first ``i`` bins with the tail folded into the
    last one; ``Q`` = the same bins without the tail, merged into ``levels`` levels
    (``np.digitize`` over ``linspace(0, i, levels + 1)``) and spread evenly over the
    non-empty bins; an empty last bin of ``Q`` under a clipped tail gets ``eps``
    counts (MXNet's smoothing). The last minimum wins.
    """
    divergences = []
    for i in range(levels, len(bins) + 1):
        level = np.digitize(range(i), np.linspace(0, i, num=levels + 1)) - 1
        level[bins[:i] == 0] = -1
        q = np.zeros(i)
        for k in set(level.tolist()) - {-1}:
            members = level == k
            q[members] = bins[:i][members].sum() / members.sum()
        p = bins[:i].copy()
        p[-1] += bins[i:].sum()
        if bins[:i].sum() <= 0:
            divergences.append(math.inf)
            continue
        if q[-1] == 0 and p[-1] > 0:
            q[-1] = eps
        divergences.append(scipy.stats.entropy(p, q))
    d = np.array(divergences)
    return levels + len(d) - 1 - int(np.argmin(d[::-1]))


@pytest.mark.parametrize("seed", range(8))
def test_kl_threshold_equals_reference_implementation(seed):
    rng = np.random.default_rng(seed)
    n, levels = int(rng.integers(150, 400)), [8, 16, 64, 128][seed % 4]
    x = [
        np.abs(rng.normal(size=40_000)),
        np.abs(rng.laplace(size=40_000)),
        np.maximum(rng.normal(0.3, 1.0, size=20_000), 0.0),
        np.concatenate([np.abs(rng.normal(size=30_000)), rng.uniform(20, 40, size=5)]),
    ][seed % 4]
    h = np.histogram(x, n, (0, x.max()))[0].astype(float)
    if seed >= 4:  # gaps: empty bins inside the range
        h[rng.integers(0, n, n // 5)] = 0
    assert round(kl_threshold(h, 1.0, levels)) == _reference_kl_bin(h, levels)


def test_kl_on_gaussian_keeps_the_bulk():
    x = torch.randn(400_000, generator=torch.Generator().manual_seed(0))
    for grid in [(-127, 127, True), (0, 255, False)]:
        o = make_observer("kl")
        o(x)
        lo, hi = (float(v) for v in o.range(*grid))
        assert 3.5 < -lo and 3.5 < hi < 5.0  # a few sigma: 8 bits need no clipping here
        assert float(((x < lo) | (x > hi)).float().mean()) < 1e-4


def test_kl_after_relu_ignores_the_zero_spike():
    x = torch.relu(torch.randn(400_000, generator=torch.Generator().manual_seed(0)))
    o = make_observer("kl")
    o(x)
    lo, hi = (float(v) for v in o.range(0, 255, False))
    assert lo == 0.0 and 3.5 < hi  # half the values are 0: they must not drag T down


def test_kl_clips_rare_far_outliers():
    x = torch.randn(200_000, generator=torch.Generator().manual_seed(0))
    x[:20] = 200.0
    for grid in [(-128, 127, True), (0, 255, False)]:
        o = make_observer("kl")
        o(x)
        assert float(o.range(*grid)[1]) < 25.0


def test_kl_asymmetric_grid_keeps_the_signal_beside_a_one_sided_spike():
    # an image batch: 60% background at -1, strokes spread over (0, 2.2]. Folded onto
    # |x| (TensorRT, symmetric int8) the background spike at 1 swallows the clipped
    # strokes and T lands at 1; the asymmetric uint8 grid thresholds each side apart.
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.full((60_000,), -1.0), torch.rand(40_000, generator=g) * 2.2])
    o = make_observer("kl")
    o(x)
    assert float(o.range(-127, 127, True)[1]) < 1.1  # the TensorRT fold, for contrast
    lo, hi = (float(v) for v in o.range(0, 255, False))
    assert lo == -1.0 and hi > 2.1


@pytest.mark.parametrize("dist", ["laplace", "gauss"])
@pytest.mark.parametrize("grid,bits", [((0, 15, False), 5), ((-7, 7, True), 4)])
def test_aciq_after_relu_models_the_rectified_distribution(dist, grid, bits):
    # x = max(0, z): all the levels covering [0, alpha] see half a distribution, so the
    # optimum is the two-sided one for one bit more than those levels, and b / sigma
    # come from the positive values (the mean and spread of x itself underestimate them)
    g = torch.Generator().manual_seed(0)
    z = torch.randn(400_000, generator=g)
    if dist == "laplace":
        z = torch.distributions.Laplace(0.0, 1.0).icdf(
            torch.rand(400_000, generator=g) * 0.999998 + 1e-6
        )
    o = make_observer("aciq" if dist == "laplace" else "aciq_gauss")
    o(torch.relu(z * 0.5))
    lo, hi = (float(v) for v in o.range(*grid))
    assert lo == 0.0
    assert hi == pytest.approx(optimal_alpha(bits, dist) * 0.5, rel=0.04)


def test_percentile_and_mse_clip_outliers():
    x = torch.randn(100_000)
    x[0] = 30.0
    p = make_observer("percentile", percentile=99.9)
    p(x)
    assert float(p.range(0, 255, False)[1]) == pytest.approx(3.09, abs=0.3)
    m = make_observer("mse")
    m(x)
    assert float(m.range(-8, 7, True)[1]) < 6.0


def test_histogram_grows_exactly():
    o = make_observer("percentile", bins=64)
    o(torch.tensor([0.1, -0.2]))
    o(torch.tensor([3.0]))
    assert float(o.hist.sum()) == 3.0
    assert float(o.half_range) >= 3.0
    assert math.isclose(float(o.min_val), -0.2, rel_tol=1e-6)
