"""MAC counting against hand-computed formulas; latency report structure and ratios."""

import pytest
import torch
from torch import nn

from edgeslim.bench.latency import Target, measure, torch_target
from edgeslim.bench.macs import count_macs, count_params, layer_table, zero_fraction
from edgeslim.models.inputs import InputSpec


def test_macs_match_formulas():
    conv = nn.Conv2d(3, 8, 3, padding=1)  # MACs = Cout * Cin * k*k * H * W
    dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)  # depthwise: Cout * k*k * H * W
    lin = nn.Linear(8, 10)
    m = nn.Sequential(conv, nn.ReLU(), dw, nn.AdaptiveAvgPool2d(1), nn.Flatten(), lin)
    total, per = count_macs(m, torch.zeros(1, 3, 16, 16))
    assert per["0"] == 8 * 3 * 9 * 256
    assert per["2"] == 8 * 9 * 256
    assert per["5"] == 80
    assert total == per["0"] + per["2"] + per["5"]
    assert count_macs(m, torch.zeros(4, 3, 16, 16))[0] == 4 * total  # scales with batch


def test_params_sparsity_and_layer_table():
    shared = nn.Linear(4, 4, bias=False)
    m = nn.Sequential(shared, shared)
    assert count_params(m) == 16  # shared weights counted once
    with torch.no_grad():
        shared.weight[:2] = 0
    assert zero_fraction(m) == pytest.approx(0.5)
    rows = layer_table(nn.Sequential(nn.Linear(4, 3)), {"0": 12})
    assert rows[0].name == "0" and rows[0].params == 15 and rows[0].macs == 12


def test_measure_interleaves_and_reports_ratio():
    calls = []

    def fake(label, cost):
        def prepare(batch, threads):
            def run():
                calls.append(label)
                x = torch.randn(cost * batch, 64)
                return x @ x.T

            return run

        return Target(label, "torch", prepare)

    rep = measure([fake("slow", 40), fake("fast", 1)], (1, 2), runs=6, warmup=1, progress=False)
    assert [r["batch"] for r in rep.results] == [1, 1, 2, 2]
    timed = calls[2:14]  # after each target's single warm-up at batch 1
    assert timed[:4] == ["slow", "fast", "fast", "slow"]  # order alternates every round
    assert set(rep.ratio) == {"1", "2"}
    assert rep.ratio["1"] == pytest.approx(rep.median("slow", 1) / rep.median("fast", 1))
    assert rep.ratio["1"] > 1.0
    for r in rep.results:
        assert r["p90_ms"] >= r["median_ms"] > 0


def test_torch_target_restores_mode():
    m = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    m.train()
    measure([torch_target(m, InputSpec((1, 4)), "m")], (1,), runs=2, warmup=0, progress=False)
    assert m.training
