"""Calibrators against oracles: exact min-max, known distributions, closed-form ACIQ."""

import math

import numpy as np
import pytest
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


def test_kl_on_gaussian_is_a_few_sigma():
    rng = np.random.default_rng(0)
    h, _ = np.histogram(np.abs(rng.normal(size=400_000)), 1024, (0, 6))
    t = kl_threshold(h.astype(float), 6 / 1024, 128)
    assert 2.5 < t < 5.0
    # rare huge outliers are clipped (the histogram spans [0, 256]: 32 is the finest
    # threshold 128 levels can express there)
    x = torch.randn(200_000)
    x[:20] = 200.0
    o = make_observer("kl")
    o(x)
    assert float(o.range(-128, 127, True)[1]) <= 33.0


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
