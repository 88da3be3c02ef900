"""Each factorization against its maths: exact at full rank, Eckart–Young at reduced rank."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from edgeslim.core.errors import EdgeslimError, UnsupportedLayerError
from edgeslim.core.methods import apply
from edgeslim.lowrank import (
    CPConfig,
    CPNotConvergedWarning,
    DWSConfig,
    RankRule,
    SpatialSVDConfig,
    SVDConfig,
    Tucker2Config,
    cp,
    dws,
    spatial,
    tucker2,
)

FULL = RankRule(rank=10_000, allow_larger=True)  # clipped to each layer's largest rank

# (kernel, stride, padding, dilation): square, strided, dilated, rectangular
GEOMETRIES = [
    ((3, 3), 1, 1, 1),
    ((3, 3), 2, 1, 1),
    ((3, 3), 1, 2, 2),
    ((5, 3), (2, 1), (2, 1), 1),
]


def _conv(kernel, stride, padding, dilation, bias=True, c=6, o=10) -> nn.Conv2d:
    torch.manual_seed(0)
    return nn.Conv2d(c, o, kernel, stride, padding, dilation, bias=bias)


def _assert_same_outputs(a: nn.Module, b: nn.Module, x: torch.Tensor, atol=1e-4):
    with torch.no_grad():
        ya, yb = a(x), b(x)
    assert ya.shape == yb.shape
    assert float((ya - yb).abs().max()) <= atol


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize(
    "config", [Tucker2Config(FULL), SpatialSVDConfig(FULL), DWSConfig(FULL)], ids=type
)
def test_conv_full_rank_reproduces_the_layer(config, geometry):
    conv = nn.Sequential(_conv(*geometry))
    new, rec = apply(conv, config)
    assert rec.layers == {"0": config}
    assert all(type(m) is nn.Conv2d for m in new[0])
    assert new[0][-1].bias is not None and all(m.bias is None for m in new[0][:-1])
    _assert_same_outputs(conv, new, torch.randn(2, 6, 13, 11))
    assert rec.details["layers"]["0"]["rel_error"] < 1e-6


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_cp_reproduces_a_kernel_of_known_cp_rank(geometry):
    conv = _conv(*geometry)
    rng = np.random.default_rng(1)
    factors = [rng.normal(size=(n, 3)) for n in (*conv.weight.shape[:2], *conv.kernel_size)]
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(np.einsum("or,cr,ir,jr->ocij", *factors)))
    m = nn.Sequential(conv)
    new, rec = apply(m, CPConfig(RankRule(rank=3, allow_larger=True), max_rel_error=1e-6))
    assert [c.groups for c in new[0]] == [1, 3, 3, 1]
    _assert_same_outputs(m, new, torch.randn(2, 6, 13, 11))
    assert rec.details["layers"]["0"]["converged"]


def test_svd_full_rank_reproduces_the_layer():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(24, 16))
    new, rec = apply(m, SVDConfig(FULL))
    assert [tuple(layer.weight.shape) for layer in new[0]] == [(16, 24), (16, 16)]
    _assert_same_outputs(m, new, torch.randn(5, 24))


def _spectrum_tail(matrix: np.ndarray, rank: int) -> float:
    s = np.linalg.svd(matrix, compute_uv=False)
    return float(np.sqrt(np.sum(s[rank:] ** 2)))


@pytest.mark.parametrize("rank", [1, 4, 9])
def test_svd_error_is_eckart_young(rank):
    torch.manual_seed(0)
    lin = nn.Linear(32, 20)
    new, rec = apply(nn.Sequential(lin), SVDConfig(RankRule(rank=rank, allow_larger=True)))
    w = lin.weight.detach().double()
    w_hat = new[0][1].weight.double() @ new[0][0].weight.double()
    predicted = _spectrum_tail(w.numpy(), rank)
    assert float((w - w_hat).norm()) == pytest.approx(predicted, rel=1e-5)
    # the error on inputs is the weight error applied to them
    x = torch.eye(32)
    with torch.no_grad():
        diff = (lin(x) - new[0](x)).double()
    assert float(diff.norm()) == pytest.approx(predicted, rel=1e-5)
    assert rec.details["layers"]["0"]["rel_error"] == pytest.approx(
        predicted / float(w.norm()), rel=1e-5
    )


@pytest.mark.parametrize("rank", [2, 7])
def test_spatial_error_is_eckart_young_of_the_reshaped_kernel(rank):
    conv = _conv((3, 3), 1, 1, 1)
    new, _ = apply(nn.Sequential(conv), SpatialSVDConfig(RankRule(rank=rank, allow_larger=True)))
    w = conv.weight.detach().double()
    err = float((w - spatial.kernel(new[0])).norm())
    assert err == pytest.approx(_spectrum_tail(spatial.reshaped(w.numpy()), rank), rel=1e-5)


@pytest.mark.parametrize("rank", [1, 3])
def test_dws_error_is_eckart_young_per_input_channel(rank):
    conv = _conv((3, 3), 1, 1, 1)
    new, _ = apply(nn.Sequential(conv), DWSConfig(RankRule(rank=rank, allow_larger=True)))
    w = conv.weight.detach().double().numpy()
    predicted = np.sqrt(sum(_spectrum_tail(w[:, c].reshape(10, 9), rank) ** 2 for c in range(6)))
    err = float((torch.from_numpy(w) - dws.kernel(new[0])).norm())
    assert err == pytest.approx(predicted, rel=1e-5)


def test_tucker2_error_within_the_hosvd_bound():
    """HOSVD's error is at most the energy both unfoldings discard; HOOI only lowers it."""
    conv = _conv((3, 3), 1, 1, 1, c=12, o=16)
    w = conv.weight.detach().double().numpy()
    for iters in (0, 10):
        new, rec = apply(nn.Sequential(conv), Tucker2Config(RankRule(rank=5), hooi_iters=iters))
        assert rec.details["layers"]["0"]["rank"] == [5, 5]
        err = float((torch.from_numpy(w) - tucker2.kernel(new[0])).norm())
        bound = np.hypot(
            _spectrum_tail(w.reshape(16, -1), 5),
            _spectrum_tail(np.moveaxis(w, 1, 0).reshape(12, -1), 5),
        )
        assert err <= bound + 1e-9
        assert err >= _spectrum_tail(w.reshape(16, -1), 5) - 1e-9  # no better than mode 0 alone


def test_unsupported_layers_are_skipped_or_refused_by_name():
    m = nn.Sequential(nn.Conv2d(8, 8, 3, groups=2), nn.Conv2d(8, 8, 1), nn.Conv2d(8, 16, 3))
    new, rec = apply(m, SpatialSVDConfig(RankRule(rank=2)))
    assert list(rec.layers) == ["2"]
    assert "groups=2" in rec.details["skipped"]["0"]
    assert "1x1 kernel" in rec.details["skipped"]["1"]
    with pytest.raises(UnsupportedLayerError, match="layer '0'.*groups=2"):
        apply(m, SpatialSVDConfig(RankRule(rank=2)), overrides={"0": SpatialSVDConfig()})


def test_a_factorization_no_smaller_than_the_layer_is_skipped():
    m = nn.Sequential(nn.Linear(8, 8))
    _, rec = apply(m, SVDConfig(RankRule(rank=8)))
    assert rec.layers == {} and "set allow_larger" in rec.details["skipped"]["0"]


def test_bad_rules_are_clear_errors():
    with pytest.raises(EdgeslimError, match="exactly one"):
        RankRule(rank=2, energy=0.9)
    with pytest.raises(EdgeslimError, match="exactly one"):
        RankRule()
    with pytest.raises(EdgeslimError, match="energy must be"):
        RankRule(energy=1.5)
    with pytest.raises(EdgeslimError, match="no VBMF"):
        DWSConfig(RankRule(vbmf=True))


def test_cp_warns_when_als_stops_early_and_raises_above_max_error():
    conv = nn.Sequential(_conv((3, 3), 1, 1, 1))
    with pytest.warns(CPNotConvergedWarning, match="relative error"):
        apply(conv, CPConfig(RankRule(rank=4), n_iter_max=2, tol=1e-12))
    with pytest.raises(EdgeslimError, match="relative error .* > max_rel_error"):
        apply(conv, CPConfig(RankRule(rank=2), n_iter_max=50, max_rel_error=0.01))


@pytest.mark.filterwarnings("ignore::edgeslim.lowrank.CPNotConvergedWarning")
def test_cp_is_deterministic():
    conv = nn.Sequential(_conv((3, 3), 1, 1, 1))
    a, _ = apply(conv, CPConfig(RankRule(rank=12), n_iter_max=30))
    b, _ = apply(conv, CPConfig(RankRule(rank=12), n_iter_max=30))
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.filterwarnings("ignore::edgeslim.lowrank.CPNotConvergedWarning")
def test_recorded_error_is_the_error_of_the_kernel_the_layers_compute():
    conv = _conv((3, 3), 1, 1, 1)
    cases = [
        (CPConfig(RankRule(rank=5), n_iter_max=20), cp),
        (Tucker2Config(RankRule(rank=4)), tucker2),
        (SpatialSVDConfig(RankRule(rank=4)), spatial),
        (DWSConfig(RankRule(rank=2)), dws),
    ]
    for config, mod in cases:
        new, rec = apply(nn.Sequential(conv), config)
        err = float((conv.weight.double() - mod.kernel(new[0])).norm() / conv.weight.norm())
        assert err == pytest.approx(rec.details["layers"]["0"]["rel_error"], rel=1e-5)
        assert 0 < err < 1
