"""Alignment from a latency staircase: the choice on synthetic staircases, the cache, and the
default ``edgeslim prune`` run aligned and reporting why (staircase seeded, nothing timed)."""

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st_
from torch import nn

import edgeslim.bench.staircase as st
from edgeslim.bench.staircase import (
    WIDTHS,
    Staircase,
    cache_path,
    cpu_model,
    effective_threads,
    measure_staircase,
    network_macs,
    runtime_name,
    save_staircase,
    staircase,
)
from edgeslim.cli.main import main
from edgeslim.core.errors import EdgeslimError
from edgeslim.models.saved import load_saved
from edgeslim.prune import PruneConfig, prune
from edgeslim.prune.align import (
    choose_alignment,
    gains,
    layer_shapes,
    resolve_alignment,
    round_width,
)


def synthetic(kind: str, block: int, noise: float = 0.0, seed: int = 0, threads=None) -> Staircase:
    """Latency of a kernel that pads every width up to ``block`` channels (plus noise)."""
    rng = np.random.default_rng(seed)
    macs = [network_macs(kind, w) for w in WIDTHS]
    ms = [
        1e-6 * m * (-(-w // block) * block / w) ** 2 * (1 + noise * rng.standard_normal())
        for w, m in zip(WIDTHS, macs, strict=True)
    ]
    n = effective_threads(threads)
    return Staircase(kind, runtime_name(), cpu_model(), n, WIDTHS, tuple(ms), tuple(macs), 5)


def flat(kind: str) -> Staircase:
    macs = tuple(network_macs(kind, w) for w in WIDTHS)
    return Staircase(kind, "ort", "cpu", 1, WIDTHS, tuple(1e-6 * m for m in macs), macs)


@pytest.mark.parametrize("block", [4, 8, 16, 32])
def test_a_padded_kernel_gets_its_block(block):
    assert choose_alignment({"conv3x3": synthetic("conv3x3", block)}).round_to == block


@pytest.mark.parametrize("seed", range(8))
def test_noise_does_not_move_a_16_staircase(seed):
    a = choose_alignment({"conv3x3": synthetic("conv3x3", 16, noise=0.05, seed=seed)})
    assert a.round_to == 16 and "multiples of 16" in a.reason


def test_no_staircase_keeps_exact_widths():
    a = choose_alignment({"conv1x1": flat("conv1x1")})
    assert a.round_to == 1 and "no alignment" in a.reason
    assert all(g == pytest.approx(1.0) for g in gains(flat("conv1x1")).values())


def test_shapes_are_weighted_by_time_not_macs():
    # the depthwise staircase (blocks of 8) holds few MACs but most of the time
    dw = synthetic("dw3x3", 8)
    dw = Staircase(**{**dw.to_dict(), "ms": tuple(50 * v for v in dw.ms)})
    a = choose_alignment({"conv1x1": flat("conv1x1"), "dw3x3": dw}, {"conv1x1": 9, "dw3x3": 1})
    assert a.round_to == 8
    assert a.evidence["staircases"]["dw3x3"]["time_share"] > 0.8


def test_round_width_is_nearest_multiple_ties_up():
    assert [round_width(c, 16) for c in (7, 8, 23, 24, 25, 40)] == [16, 16, 16, 32, 32, 48]
    assert round_width(23, 1) == 23


def test_gain_is_the_geometric_mean_of_cost_per_mac_ratios():
    ws = (4, 5, 6, 7, 8)
    s = Staircase("conv1x1", "ort", "cpu", 1, ws, (1.0, 2.0, 2.0, 2.0, 1.0), ws)
    want = math.exp(
        np.mean(np.log([1, (2 / 5) / (1 / 4), (2 / 6) / (1 / 8), (2 / 7) / (1 / 8), 1]))
    )
    assert gains(s, (4,))[4] == pytest.approx(want)


def test_layer_shapes_finds_depthwise_and_pointwise():
    m = nn.Sequential(nn.Conv2d(16, 16, 3, groups=16), nn.Conv2d(16, 32, 1))
    shapes = layer_shapes(m, torch.zeros(1, 16, 8, 8))
    assert set(shapes) == {"dw3x3", "conv1x1"}
    assert shapes["conv1x1"] == 16 * 32 * 6 * 6


def test_seeded_cache_is_used_and_never_measured(monkeypatch):
    s = Staircase(**{**synthetic("conv3x3", 16, threads=1).to_dict(), "source": "seeded"})
    path = save_staircase(s)
    assert path == cache_path("conv3x3", 1) and json.loads(path.read_text())["kind"] == "conv3x3"

    def boom(*a, **k):
        raise AssertionError("measured although the cache was seeded")

    monkeypatch.setattr(st, "measure_staircase", boom)
    got = staircase("conv3x3", 1)
    assert got.source == "seeded" and got.ms == s.ms


def test_a_missing_staircase_is_measured_once_and_cached(monkeypatch):
    calls = []

    def fake(kind, threads, widths, runs):
        calls.append(kind)
        return synthetic(kind, 8, threads=threads)

    monkeypatch.setattr(st, "measure_staircase", fake)
    assert staircase("dw5x5", 1).source == "measured"
    assert staircase("dw5x5", 1).source == "cache"
    assert calls == ["dw5x5"]


def test_measure_staircase_times_real_onnx_graphs():
    s = measure_staircase("dw3x3", threads=1, widths=(8, 12), runs=2)
    assert s.widths == (8, 12) and all(v > 0 for v in s.ms) and s.macs[1] > s.macs[0]
    with pytest.raises(EdgeslimError, match="unknown layer shape"):
        measure_staircase("pool2x2", threads=1, widths=(8,), runs=1)


def test_resolve_given_and_injected():
    m = nn.Sequential(nn.Conv2d(3, 32, 3), nn.ReLU(), nn.Conv2d(32, 32, 3))
    x = torch.zeros(1, 3, 16, 16)
    assert resolve_alignment(m, x, 1).source == "user"
    a = resolve_alignment(m, x, "auto", stairs={"conv3x3": synthetic("conv3x3", 8)})
    assert (a.round_to, a.source) == (8, "injected")
    with pytest.raises(EdgeslimError, match="round_to"):
        resolve_alignment(m, x, 0)


def test_prune_auto_aligns_every_pruned_width(monkeypatch):
    monkeypatch.setattr(st, "measure_staircase", lambda k, t, w, r: synthetic(k, 16, threads=t))
    m = nn.Sequential(nn.Conv2d(3, 64, 3), nn.ReLU(), nn.Conv2d(64, 96, 3), nn.ReLU())
    res = prune(m, torch.randn(1, 3, 16, 16), PruneConfig(ratio=0.3, round_to="auto"))
    assert res.alignment.round_to == 16
    assert res.model[0].out_channels == 48 and res.model[2].out_channels == 96  # the output stays
    exact = prune(m, torch.randn(1, 3, 16, 16), PruneConfig(ratio=0.3))
    assert exact.model[0].out_channels == 64 - int(64 * 0.3)  # round_to=1: the exact ratio


def _seed_for_cli(block: int) -> None:
    """What `edgeslim prune` reads: conv3x3 at the CLI's default thread count."""
    s = synthetic("conv3x3", block, threads=None)
    save_staircase(Staircase(**{**s.to_dict(), "source": "seeded"}))


def test_cli_prune_is_aligned_by_default_and_says_why(tmp_path, capsys):
    _seed_for_cli(16)
    out = tmp_path / "p"
    assert (
        main(["prune", "resnet20", "--ratio", "0.3", "--runs", "2", "--batch", "1", "-o", str(out)])
        == 0
    )
    text = capsys.readouterr().out
    assert "alignment: kept channels are multiples of 16 (measured:" in text
    rep = json.loads((out / "report.json").read_text())
    al = rep["alignment"]
    assert al["round_to"] == 16 and al["source"] == "measured"
    assert al["staircases"]["conv3x3"]["source"] == "seeded" and al["gain"]["16"] > 1.2
    chk = rep["speed_check"]
    assert chk["attempts"][0]["round_to"] == 16 and set(chk["speedup"]) == {"1"}
    used = al["used"]
    assert used in (16, 32) and rep["config"]["round_to"] == used
    for g in rep["groups"]:
        assert g["removed"] == 0 or g["kept"] % used == 0
    assert chk["slower"] == (chk["message"] is not None)
    if chk["slower"]:
        assert "SLOWER" in chk["message"] and chk["message"] in text


def test_cli_round_to_1_restores_exact_ratios(tmp_path):
    _seed_for_cli(16)
    out = tmp_path / "exact"
    args = ["prune", "resnet20", "--ratio", "0.5", "--round-to", "1", "--runs", "2"]
    assert main([*args, "--batch", "1", "-o", str(out)]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["alignment"]["round_to"] == 1 and rep["alignment"]["source"] == "user"
    assert rep["speed_check"]["attempts"] == []  # a given alignment is never changed
    assert load_saved(out).model.layer1[0].conv1.out_channels == 8
    assert all(g["removed"] == g["units"] // 2 for g in rep["groups"] if g["removed"])


def test_cli_rejects_a_bad_round_to(capsys):
    with pytest.raises(SystemExit):
        main(["prune", "resnet20", "--ratio", "0.5", "--round-to", "0", "-o", "x"])
    assert "expected 'auto' or an integer" in capsys.readouterr().err


@given(st_.integers(1, 4096), st_.sampled_from([1, 2, 4, 8, 16, 32, 64]))
def test_round_width_is_the_nearest_multiple(c, a):
    r = round_width(c, a)
    assert r % a == 0 and r >= a
    assert abs(r - c) <= a / 2 or (c < a / 2 and r == a)
