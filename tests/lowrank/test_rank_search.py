"""``decompose --search``: ranks by the MILP from measured damage and (injected) ORT timings.

The timings are injected (``MeasuredRule.time_pair`` or a patched
``ort_time_pair``), so nothing here depends on this CPU's speed.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn

from edgeslim.bench.macs import count_macs
from edgeslim.cli.main import main
from edgeslim.core import EdgeslimError
from edgeslim.lowrank import SpatialSVDConfig
from edgeslim.models.saved import load_saved
from edgeslim.recipe import compress, parse_recipe
from edgeslim.workflows import lowrank_measured
from edgeslim.workflows.lowrank_measured import MeasuredRule
from edgeslim.workflows.rank_search import (
    RankSearch,
    loss_damage,
    output_damage,
    rank_candidates,
    search_ranks,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "search"))
from test_ranks import brute_force  # noqa: E402

USER_MODEL = """
from torch import nn

def make():
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(16, 24, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(24, 24, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(24, 5))
"""


def convs() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 24, 3, padding=1), nn.ReLU(),
        nn.Conv2d(24, 24, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(24, 5),
    )  # fmt: skip


def timer(slow_inputs: set[int]):
    """Dense 1 ms; a factorized layer 0.4 ms plus 0.02 ms per output channel of its first
    factor, or 2 ms (slower) when its input has a channel count in ``slow_inputs``."""

    def time_pair(dense, factorized, shape):
        if shape[1] in slow_inputs:
            return 1.0, 2.0
        return 1.0, 0.4 + 0.02 * factorized[0].out_channels

    return time_pair


X = torch.randn(1, 3, 12, 12, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("budget", [{"target_macs": 0.7}, {"latency_fraction": 0.8}])
def test_search_is_the_brute_force_optimum_and_never_picks_a_slower_form(budget):
    m = convs()
    rs = RankSearch(
        **budget, fractions=(0.25, 0.5, 0.75), timing=MeasuredRule(time_pair=timer({16}))
    )
    dmg = output_damage([X])
    new, rec = search_ranks(m, SpatialSVDConfig(), X, dmg, rs)
    s = rec.details["search"]
    assert isinstance(new[2], nn.Conv2d) and new[2] is not m[2]  # "2" sees 16 channels: slower
    assert all(not o["faster"] for o in s["layers"]["2"]["options"][1:])
    assert s["layers"]["2"]["chosen"] == "dense"
    # the choice is the optimum over the measured candidates
    layers, _ = rank_candidates(m, SpatialSVDConfig(), X, output_damage([X]), rs)
    want = brute_force(layers, s["base"], s["budgets"])
    assert s["predicted_damage"] == pytest.approx(want[0], rel=1e-6)
    chosen = [la.options[j].label for la, j in zip(layers, want[1], strict=True)]
    assert chosen == [s["layers"][la.name]["chosen"] for la in layers]
    # the predicted MACs are exact, and the budget is met
    macs = count_macs(new, X)[0]
    assert macs == pytest.approx(s["predicted"]["macs"])
    for k, b in s["budgets"].items():
        assert s["predicted"][k] <= b + 1e-6
    assert set(rec.layers) == {n for n, t in s["layers"].items() if t["chosen"] != "dense"}
    assert rec.layers  # something was factorized
    torch.testing.assert_close(m(X), convs()(X))  # the input model is untouched


def test_impossible_budget_says_what_the_faster_forms_reach():
    rs = RankSearch(target_macs=0.05, timing=MeasuredRule(time_pair=timer({16})))
    with pytest.raises(EdgeslimError, match="cannot meet"):
        search_ranks(convs(), SpatialSVDConfig(), X, output_damage([X]), rs)


def test_all_slower_keeps_every_layer_dense_when_the_budget_allows():
    rs = RankSearch(target_macs=1.0, timing=MeasuredRule(time_pair=timer({3, 16, 24})))
    new, rec = search_ranks(convs(), SpatialSVDConfig(), X, output_damage([X]), rs)
    assert not rec.layers and all(type(new[i]) is nn.Conv2d for i in (0, 2, 4))


def test_loss_damage_is_the_loss_increase():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(6, 64), nn.ReLU(), nn.Linear(64, 3))
    other = nn.Sequential(nn.Linear(6, 64), nn.ReLU(), nn.Linear(64, 3))
    x, y = torch.randn(32, 6), torch.randint(0, 3, (32,))
    dmg = loss_damage([(x, y)])
    dmg.dense(m)
    with torch.no_grad():
        want = nn.functional.cross_entropy(other(x), y) - nn.functional.cross_entropy(m(x), y)
    assert dmg(other) == pytest.approx(float(want), rel=1e-5)
    assert dmg(m) == pytest.approx(0.0, abs=1e-7)


def test_settings_are_checked():
    with pytest.raises(EdgeslimError, match="exactly one"):
        RankSearch()
    with pytest.raises(EdgeslimError, match="exactly one"):
        RankSearch(target_macs=0.5, latency_fraction=0.5)
    with pytest.raises(EdgeslimError, match=r"\(0, 1\]"):
        RankSearch(latency_fraction=1.5)
    with pytest.raises(EdgeslimError, match="fractions"):
        RankSearch(target_macs=0.5, fractions=(1.0,))


def fake_ort(dense, factorized, shape, *, runs, threads):
    return (1.0, 2.0) if shape[1] == 16 else (1.0, 0.4 + 0.02 * factorized[0].out_channels)


def test_cli_search_saves_a_model_that_reloads(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(lowrank_measured, "ort_time_pair", fake_ort)
    monkeypatch.setenv("EDGESLIM_CACHE", str(tmp_path / "cache"))
    (tmp_path / "net.py").write_text(USER_MODEL)
    out = tmp_path / "out"
    argv = ["decompose", f"{tmp_path / 'net.py'}:make", "--input-shape", "1,3,12,12",
            "--method", "spatial", "--search", "--target-macs", "0.7", "--batch", "1",
            "--runs", "2", "--threads", "1", "-o", str(out)]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "rank search (MILP)" in text and "2: dense (0 of" in text
    rep = json.loads((out / "report.json").read_text())
    inp, dec = rep["stages"]
    assert dec["macs"] <= 0.7 * inp["macs"] + 1
    assert rep["search"]["layers"]["2"]["chosen"] == "dense" and "2" not in rep["layers"]
    lm = load_saved(out)
    assert type(lm.model[2]) is nn.Conv2d and isinstance(lm.model[4], nn.Sequential)


def test_cli_search_needs_a_budget_and_latency_budget_needs_search(tmp_path):
    (tmp_path / "net.py").write_text(USER_MODEL)
    base = ["decompose", f"{tmp_path / 'net.py'}:make", "--input-shape", "1,3,12,12",
            "--method", "spatial", "-o", str(tmp_path / "o")]  # fmt: skip
    assert main([*base, "--search", "--rank", "4"]) != 0
    assert main([*base, "--latency-budget", "0.5"]) != 0
    assert main([*base, "--target-macs", "0.5", "--fill", "0.9"]) != 0  # fill needs --search


def test_recipe_stage_search(tmp_path, monkeypatch):
    monkeypatch.setattr(lowrank_measured, "ort_time_pair", fake_ort)
    monkeypatch.setenv("EDGESLIM_CACHE", str(tmp_path / "cache"))
    (tmp_path / "net.py").write_text(USER_MODEL)
    recipe = parse_recipe(f"""
version: 1
model: {tmp_path / "net.py"}:make
input_shape: [1, 3, 12, 12]
stages:
  - lowrank: {{method: spatial, search: true, latency_fraction: 0.7}}
measure: {{runs: 2, batches: [1]}}
""")
    rep = compress(recipe, tmp_path / "out", progress=False)
    rows = {r["name"]: r for r in rep["layers"]}
    assert rows["2"]["rank"] is None
    assert any(rows[n]["rank"] is not None for n in ("0", "4"))
    for bad in (
        "search: true, rank: 4",
        "latency_fraction: 0.5",
        "search: true, macs_fraction: 0.5, measured: true",
        "macs_fraction: 0.5, fill: 0.9",
        "search: true, macs_fraction: 0.5, fill: 1.5",
    ):
        with pytest.raises(Exception, match="search|latency_fraction|less than or equal"):
            parse_recipe(f"""
version: 1
model: {tmp_path / "net.py"}:make
input_shape: [1, 3, 12, 12]
stages:
  - lowrank: {{method: spatial, {bad}}}
""")


def test_a_loss_that_falls_is_not_spent_on_compressing_more():
    def lucky(model):  # every factorization "improves" the loss on the damage batches
        return -1.0

    rs = RankSearch(target_macs=0.9, timing=MeasuredRule(time_pair=timer(set())))
    _, rec = search_ranks(convs(), SpatialSVDConfig(), X, lucky, rs)
    s = rec.details["search"]
    opts = [o for t in s["layers"].values() for o in t["options"][1:]]
    assert all(o["damage"] >= 0 and o["measured_damage"] == -1.0 for o in opts)
    # the least compression that meets the budget, not the most the MACs allow
    assert s["predicted"]["macs"] <= s["budgets"]["macs"]
    full = s["base"]["macs"]
    least = min(
        full + sum(min(o["macs"] for o in t["options"][1:]) for t in s["layers"].values()), full
    )
    assert s["predicted"]["macs"] > least


def test_fill_spends_the_budget_where_low_ranks_measure_less_damage():
    def noisy(model):  # the lower the rank, the less damage measured (noise, as on signs)
        return 1e-6 * sum(p.numel() for p in model.parameters())

    timing = MeasuredRule(time_pair=timer(set()))
    rs = RankSearch(target_macs=0.8, timing=timing)
    below, ceiling = search_ranks(convs(), SpatialSVDConfig(), X, noisy, rs)
    budget = ceiling.details["search"]["budgets"]["macs"]
    assert ceiling.details["search"]["fill"] is None
    assert count_macs(below, X)[0] < 0.9 * budget  # the ceiling alone lands far below
    new, rec = search_ranks(convs(), SpatialSVDConfig(), X, noisy, replace(rs, fill=0.9))
    s = rec.details["search"]
    assert s["fill"] == {"asked": 0.9, "floors": {"macs": 0.9 * budget}, "met": True}
    assert 0.9 * budget <= count_macs(new, X)[0] <= budget


def test_fill_that_no_policy_meets_warns_and_keeps_the_ceiling():
    rs = RankSearch(target_macs=0.9, timing=MeasuredRule(time_pair=timer(set())), fill=1.0)
    with pytest.warns(UserWarning, match="cannot spend 100%"):
        _, rec = search_ranks(convs(), SpatialSVDConfig(), X, output_damage([X]), rs)
    s = rec.details["search"]
    assert s["fill"]["met"] is False
    assert s["predicted"]["macs"] <= s["budgets"]["macs"]


def test_fill_is_checked():
    with pytest.raises(EdgeslimError, match="fill"):
        RankSearch(target_macs=0.5, fill=1.5)
