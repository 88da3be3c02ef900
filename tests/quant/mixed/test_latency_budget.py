"""HAWQ's latency budget: the ILP against brute force, the impossible case, the ORT timings."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from edgeslim.quant.mixed import hawq_bits
from edgeslim.quant.mixed.ilp import LatencyImpossible, solve_bits
from edgeslim.recipe import parse_recipe
from edgeslim.recipe.runner import run_stages
from edgeslim.workflows.layer_latency import bit_latencies

from .test_ilp import TOL, _problem


def _with_latency(seed: int, n_layers: int):
    p = _problem(seed, n_layers)
    rng = np.random.default_rng(seed + 100)
    fp32 = rng.uniform(0.5, 2.0, n_layers)
    int8 = fp32 * rng.uniform(0.3, 1.3, n_layers)  # INT8 is not always faster
    lat = np.stack([int8, int8, fp32], 1)  # (4, 8, 32): 4 bits run in the INT8 kernel
    return replace(p, latency=lat)


def _brute(p, size_budget, latency_budget):
    best = None
    for choice in itertools.product(range(len(p.choices)), repeat=len(p.layers)):
        om, size, _ = p.cost(choice)
        if size <= size_budget + TOL and p.latency_of(choice) <= latency_budget + TOL:
            best = om if best is None else min(best, om)
    return best


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 5), s=st.floats(0.2, 1.0),
       t=st.floats(0.0, 1.0))  # fmt: skip
def test_latency_constrained_optimum_matches_brute_force(seed, n, s, t):
    p = _with_latency(seed, n)
    lo, hi = float(p.size.min(1).sum()), float(p.size.max(1).sum())
    size_budget = lo + s * (hi - lo)
    fast, slow = float(p.latency.min(1).sum()), float(p.latency.max(1).sum())
    latency_budget = fast + t * (slow - fast)
    want = _brute(p, size_budget, latency_budget)
    try:
        sol = solve_bits(p, size_budget, latency_budget=latency_budget)
    except LatencyImpossible as e:
        assert want is None
        # the closest point is the fastest choice within the size budget
        fastest = min(
            p.latency_of(c)
            for c in itertools.product(range(3), repeat=n)
            if p.cost(c)[1] <= size_budget + TOL
        )
        assert e.closest.latency == pytest.approx(fastest, abs=1e-6)
        assert e.closest.size <= size_budget + TOL
        return
    assert want is not None and sol.omega == pytest.approx(want, rel=1e-6, abs=1e-12)
    assert sol.latency <= latency_budget + TOL and sol.size <= size_budget + TOL


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 4))


def _data():
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(8, 3, 8, 8, generator=g), torch.randint(0, 4, (8,), generator=g))]


def test_hawq_keeps_the_fastest_choice_when_the_latency_budget_is_impossible():
    model = _net()
    latency = {"0": {4: 1.0, 8: 1.0, 32: 3.0}, "3": {4: 2.0, 8: 2.0, 32: 0.5}}
    n = sum(model.get_submodule(k).weight.numel() for k in latency)
    rec = hawq_bits(model, nn.functional.cross_entropy, _data(), size_budget=32 * n / 8,
                    latency=latency, latency_budget=0.1)  # fmt: skip
    assert rec.impossible and "impossible" in rec.impossible
    assert rec.bits == {"0": rec.bits["0"], "3": 32} and rec.bits["0"] in (4, 8)
    assert rec.latency == pytest.approx(1.5)
    ok = hawq_bits(model, nn.functional.cross_entropy, _data(), size_budget=32 * n / 8,
                   latency=latency, latency_budget=2.6)  # fmt: skip
    assert ok.impossible is None and ok.latency <= 2.6


def test_bit_latencies_time_each_layer_on_ort_and_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGESLIM_CACHE", str(tmp_path))
    model = _net().eval()
    got = bit_latencies(model, torch.randn(1, 3, 8, 8), ["0", "3"], (4, 8, 32), runs=3, threads=1)
    assert set(got) == {"0", "3"}
    for ms in got.values():
        assert ms[4] == ms[8] > 0 and ms[32] > 0  # 4-bit weights run in the INT8 kernel
    again = bit_latencies(model, torch.randn(1, 3, 8, 8), ["0", "3"], (4, 8, 32), runs=3,
                          threads=1)  # fmt: skip
    assert again == got  # from the cache


TINY = """
from torch import nn

def make():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
"""


def test_quantize_stage_takes_hawq_bits(tmp_path):
    f = tmp_path / "tiny.py"
    f.write_text(TINY)
    text = f"""
version: 1
model: {f}:make
input_shape: [1, 3, 32, 32]
data: digits
stages:
  - quantize: {{calib_batches: 2, hawq: {{avg_bits: 5, probes: 4, batches: 1}}}}
"""
    history = run_stages(parse_recipe(text), tmp_path / "out", progress=False)
    state = history[-1][1]
    assert "HAWQ-V3:" in state.notes["quantize"]
    bits = {k: v.get("bits") for k, v in state.layers.items() if v.get("bits") is not None}
    assert set(bits.values()) <= {4, 8} and 4 in bits.values()
    assert state.onnx is not None and state.onnx.exists()
    work = state.onnx.parent
    assert (work / "hawq.json").is_file()
    assert (work / "hawq_pareto.png").read_bytes()[:4] == b"\x89PNG"
