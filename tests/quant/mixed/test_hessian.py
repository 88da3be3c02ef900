"""Hutchinson traces against the exact Hessian (torch.autograd.functional.hessian)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call

from edgeslim.core.errors import EdgeslimError
from edgeslim.quant.mixed.hessian import hutchinson_traces


def _exact_block_trace(model: nn.Module, name: str, batches) -> float:
    """Trace of d^2 L / dW^2 for ``name.weight`` from the explicit Hessian matrix."""
    key = f"{name}.weight" if name else "weight"
    params = dict(model.named_parameters())
    w0 = params[key].detach().clone()

    def loss_of(w: torch.Tensor) -> torch.Tensor:
        p = {**{k: v.detach() for k, v in params.items()}, key: w}
        return sum(
            nn.functional.mse_loss(functional_call(model, p, (x,)), y) for x, y in batches
        ) / len(batches)

    h = torch.autograd.functional.hessian(loss_of, w0)
    return float(h.reshape(w0.numel(), w0.numel()).diagonal().sum())


def _data(n_in: int, n_out: int, batches: int = 2):
    g = torch.Generator().manual_seed(1)
    return [
        (torch.randn(16, n_in, generator=g), torch.randn(16, n_out, generator=g))
        for _ in range(batches)
    ]


def test_quadratic_linear_layer_matches_exact_trace_within_ci():
    torch.manual_seed(0)
    lin = nn.Linear(6, 4)
    data = _data(6, 4)
    est = hutchinson_traces(lin, nn.functional.mse_loss, data, [""], probes=64)[""]
    exact = _exact_block_trace(lin, "", data)
    assert est.ci95[0] <= exact <= est.ci95[1]
    assert est.mean == pytest.approx(exact, rel=0.25)
    assert est.numel == 24 and est.probes == 64


def test_two_layer_blocks_match_exact_block_traces():
    # not quadratic jointly: checks that one joint probe gives each block's own trace
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3))
    data = _data(5, 3)
    est = hutchinson_traces(net, nn.functional.mse_loss, data, probes=200)
    assert set(est) == {"0", "2"}
    for name in ("0", "2"):
        exact = _exact_block_trace(net, name, data)
        assert est[name].ci95[0] <= exact <= est[name].ci95[1], (name, exact, est[name])


def test_diagonal_hessian_is_exact_with_rademacher_probes():
    # a single-output linear regression on one-hot inputs has a diagonal Hessian,
    # so v^T H v = tr(H) for every Rademacher v: zero-width interval
    lin = nn.Linear(4, 1, bias=False)
    x = torch.eye(4)
    y = torch.zeros(4, 1)
    est = hutchinson_traces(lin, nn.functional.mse_loss, [(x, y)], [""], probes=4)[""]
    assert est.mean == pytest.approx(2.0 * 4 / 4)  # d^2/dw_i^2 of mean((w_i)^2) = 2/4 each
    assert est.half_width == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_more_probes_shrink_the_interval(seed):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))
    data = _data(5, 3, batches=1)
    few = hutchinson_traces(net, nn.functional.mse_loss, data, probes=8, seed=seed)
    many = hutchinson_traces(net, nn.functional.mse_loss, data, probes=256, seed=seed)
    for name in few:
        assert many[name].half_width < few[name].half_width


def test_model_state_is_restored():
    net = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3), nn.Linear(3, 2)).train()
    net[0].weight.requires_grad_(False)
    hutchinson_traces(net, nn.functional.mse_loss, _data(3, 2, 1), probes=2)
    assert net.training and net[1].training
    assert not net[0].weight.requires_grad and net[2].weight.requires_grad
    assert net[0].weight.grad is None


def test_bad_inputs_raise_clear_errors():
    lin = nn.Linear(2, 2)
    data = _data(2, 2, 1)
    with pytest.raises(EdgeslimError, match="at least 2 probes"):
        hutchinson_traces(lin, nn.functional.mse_loss, data, [""], probes=1)
    with pytest.raises(EdgeslimError, match="not found"):
        hutchinson_traces(lin, nn.functional.mse_loss, data, ["nope"])
    with pytest.raises(EdgeslimError, match="no batches"):
        hutchinson_traces(lin, nn.functional.mse_loss, [], [""])
