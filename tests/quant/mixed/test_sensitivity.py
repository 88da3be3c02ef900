"""HAWQ-V3 Omega = trace / n * ||Q_b(W) - W||^2."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeslim.core.errors import EdgeslimError
from edgeslim.quant.mixed.sensitivity import FLOAT_BITS, omega, quantize_weight, sensitivities


def _reference_q(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Row by row: symmetric narrow grid, scale = max|row| / (2^(b-1) - 1)."""
    qmax = 2 ** (bits - 1) - 1
    rows = []
    for row in w.reshape(w.shape[0], -1):
        s = torch.clamp(row.abs().max() / qmax, min=1e-12)
        rows.append(torch.clamp(torch.round(row / s), -qmax, qmax) * s)
    return torch.stack(rows).reshape(w.shape)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([2, 4, 8]), st.sampled_from([(3, 5), (4, 2, 3, 3)]))
def test_quantizer_matches_per_channel_reference(seed, bits, shape):
    w = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(quantize_weight(w, bits), _reference_q(w, bits))


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.01, 100.0))
def test_omega_is_scaled_quantization_error(seed, trace):
    w = torch.randn(6, 3, 3, 3, generator=torch.Generator().manual_seed(seed))
    o4, o8 = omega(trace, w, 4), omega(trace, w, 8)
    err8 = float((_reference_q(w, 8).double() - w.double()).pow(2).sum())
    assert o8 == pytest.approx(trace / w.numel() * err8, rel=1e-4)
    assert o4 > o8 > 0.0
    assert omega(trace, w, FLOAT_BITS) == 0.0


def test_weights_on_the_grid_cost_nothing():
    w = torch.tensor([[127.0, -3.0, 0.0], [1.0, -127.0, 64.0]]) / 127
    assert omega(5.0, w, 8) == pytest.approx(0.0, abs=1e-12)


def test_sensitivities_table_and_missing_trace():
    w = {"a": torch.randn(4, 4), "b": torch.randn(2, 4)}
    table = sensitivities(w, {"a": 1.0, "b": 2.0})
    assert set(table) == {"a", "b"} and set(table["a"]) == {4, 8, FLOAT_BITS}
    with pytest.raises(EdgeslimError, match="no Hessian trace"):
        sensitivities(w, {"a": 1.0})


def test_negative_traces_are_clamped_to_zero():
    table = sensitivities({"a": torch.randn(4, 4)}, {"a": -3.0})
    assert table["a"] == {4: 0.0, 8: 0.0, FLOAT_BITS: 0.0}
