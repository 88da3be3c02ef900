"""``--measured``: a layer stays factorized only where it is timed faster than the dense layer.

Most tests inject the timings (``MeasuredRule.time_pair``), so what they check does
not depend on this CPU; one smoke test times a real pair on ONNX Runtime.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from edgeslim.cli.main import main
from edgeslim.core import EdgeslimError
from edgeslim.core.methods import apply
from edgeslim.export.ort import ort_run, ort_session
from edgeslim.lowrank import RankRule, SVDConfig, Tucker2Config
from edgeslim.models.saved import load_saved, save_model
from edgeslim.models.spec import load_model
from edgeslim.recipe import compress, parse_recipe
from edgeslim.recipe.stages.lowrank import LowRankSettings
from edgeslim.workflows import lowrank_measured
from edgeslim.workflows.decompose import decompose
from edgeslim.workflows.lowrank_measured import MeasuredRule, input_shapes, keep_faster

TWO_LINEARS = """
from torch import nn

def make():
    return nn.Sequential(nn.Linear(48, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())
"""


def two_linears() -> nn.Sequential:
    torch.manual_seed(0)
    # "0" sees 48 features, "2" sees 64: the fake timer tells them apart by input shape
    return nn.Sequential(nn.Linear(48, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())


def fake_timer(factorized_ms: dict[int, float]):
    """Dense takes 1 ms; the factorized layer whose input has ``f`` features takes ``[f]`` ms."""
    calls = []

    def time_pair(dense, factorized, shape):
        calls.append(shape)
        assert isinstance(dense, nn.Linear) and isinstance(factorized, nn.Sequential)
        return 1.0, factorized_ms[shape[-1]]

    return time_pair, calls


def test_slower_layer_stays_dense_faster_one_is_factorized():
    m = two_linears()
    timer, calls = fake_timer({48: 1.5, 64: 0.5})
    x = torch.randn(3, 48)
    out = keep_faster(m, apply(m, SVDConfig(RankRule(rank=4))), x, MeasuredRule(time_pair=timer))
    new, rec = out
    assert sorted(calls) == [(3, 48), (3, 64)]  # each layer timed once, at its real input
    assert type(new[0]) is nn.Linear and isinstance(new[2], nn.Sequential)
    assert torch.equal(new[0].weight, m[0].weight) and new[0] is not m[0]
    assert list(rec.layers) == ["2"] and list(rec.details["layers"]) == ["2"]
    assert "not 5% faster" in rec.details["skipped"]["0"]
    t = rec.details["measured"]["layers"]
    assert t["0"] == {
        "input_shape": [3, 48],
        "dense_ms": 1.0,
        "factorized_ms": 1.5,
        "speedup": pytest.approx(1 / 1.5),
        "kept": False,
        "source": "injected",
    }
    assert t["2"]["kept"] and t["2"]["factorized_ms"] == 0.5 and t["2"]["speedup"] == 2.0
    d = rec.details["layers"]["2"]
    assert (rec.details["params_before"], rec.details["params_after"]) == (
        d["params_before"],
        d["params_after"],
    )
    # the layer put back computes exactly what the input model's layer did
    with torch.no_grad():
        np.testing.assert_array_equal(new[:2](x).numpy(), m[:2](x).numpy())


@pytest.mark.parametrize(
    ("factorized_ms", "kept"), [(0.96, False), (0.95, True), (0.5, True), (1.0, False)]
)
def test_margin_is_a_fraction_of_the_dense_time(factorized_ms, kept):
    m = nn.Sequential(nn.Linear(64, 64))
    timer, _ = fake_timer({64: factorized_ms})
    rule = MeasuredRule(margin=0.05, time_pair=timer)
    _, rec = keep_faster(m, apply(m, SVDConfig(RankRule(rank=4))), torch.zeros(1, 64), rule)
    assert rec.details["measured"]["layers"]["0"]["kept"] is kept
    assert (list(rec.layers) == ["0"]) is kept


def test_saved_model_reloads_only_the_kept_layers(tmp_path):
    (tmp_path / "net.py").write_text(TWO_LINEARS)
    lm = load_model(f"{tmp_path / 'net.py'}:make", input_shape=(1, 48))
    timer, _ = fake_timer({48: 2.0, 64: 0.25})
    new, info = decompose(lm, SVDConfig(RankRule(rank=4)), measured=MeasuredRule(time_pair=timer))
    assert set(info["layers"]) == {"2"} and info["measured"]["layers"]["0"]["kept"] is False
    save_model(new, tmp_path / "m")
    back = load_saved(tmp_path / "m")
    assert type(back.model[0]) is nn.Linear and isinstance(back.model[2], nn.Sequential)
    x = torch.randn(2, 48)
    with torch.no_grad():
        assert torch.equal(back.model(x), new.model(x))


class Unused(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.used, self.unused = nn.Linear(2, 2), nn.Linear(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.used(x)


def test_input_shapes_are_captured_and_the_hooks_removed():
    m = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3))
    m.train()
    assert input_shapes(m, torch.zeros(2, 3, 16, 16), ["0", "2"]) == {
        "0": (2, 3, 16, 16),
        "2": (2, 8, 8, 8),
    }
    assert m.training and all(not mod._forward_pre_hooks for mod in m.modules())
    with pytest.raises(EdgeslimError, match="did not run"):
        input_shapes(Unused(), torch.zeros(1, 2), ["unused"])


def test_bad_rule_is_refused():
    with pytest.raises(EdgeslimError, match="margin"):
        MeasuredRule(margin=1.0)
    with pytest.raises(EdgeslimError, match="runs"):
        MeasuredRule(runs=0)


def test_real_timing_on_onnx_runtime_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGESLIM_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.ReLU())
    x = torch.randn(1, 16, 8, 8)
    rule = MeasuredRule(runs=3, threads=1)
    cfg = Tucker2Config(RankRule(rank=4))
    _, rec = keep_faster(m, apply(m, cfg), x, rule)
    t = rec.details["measured"]["layers"]["0"]
    assert t["source"] == "measured" and t["dense_ms"] > 0 and t["factorized_ms"] > 0
    assert t["kept"] == (t["factorized_ms"] <= 0.95 * t["dense_ms"])
    assert (list(rec.layers) == ["0"]) == t["kept"]
    assert rec.details["measured"]["threads"] == 1
    _, again = keep_faster(m, apply(m, cfg), x, rule)  # same layer, shape, CPU: no timing
    t2 = again.details["measured"]["layers"]["0"]
    assert t2["source"] == "cache" and t2["dense_ms"] == t["dense_ms"]


USER_MODEL = """
from torch import nn

def make():
    return nn.Sequential(nn.Linear(48, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                         nn.Linear(64, 5))
"""


def test_cli_measured_reports_timings_and_keeps_only_the_faster(tmp_path, monkeypatch, capsys):
    def fake_ort(dense, factorized, shape, *, runs, threads):
        assert runs == 2 and threads == 1
        return (1.0, 0.5) if shape[-1] == 64 else (1.0, 3.0)

    monkeypatch.setattr(lowrank_measured, "ort_time_pair", fake_ort)
    (tmp_path / "net.py").write_text(USER_MODEL)
    out = tmp_path / "out"
    argv = ["decompose", f"{tmp_path / 'net.py'}:make", "--input-shape", "1,48",
            "--method", "svd", "--rank", "4", "--measured", "--layers", "0", "2",
            "--batch", "1", "--runs", "2", "--threads", "1", "-o", str(out)]  # fmt: skip
    assert main(argv) == 0
    rep = json.loads((out / "report.json").read_text())
    assert set(rep["layers"]) == {"2"}
    timed = rep["measured"]["layers"]
    assert set(timed) == {"0", "2"} and timed["2"]["kept"] and not timed["0"]["kept"]
    assert timed["0"]["factorized_ms"] == 3.0 and timed["0"]["source"] == "measured"
    assert (
        "0: dense 1.0000 ms, factorized 3.0000 ms (0.33x) -> left dense" in capsys.readouterr().out
    )
    lm = load_saved(out)
    assert type(lm.model[0]) is nn.Linear and isinstance(lm.model[2], nn.Sequential)
    x = lm.input.example(batch=2, seed=0)
    with torch.no_grad():
        want = lm.model(x).numpy()
    np.testing.assert_allclose(ort_run(ort_session(out / "model.onnx"), x.numpy()), want, atol=1e-4)


def test_recipe_stage_takes_measured_and_margin():
    s = LowRankSettings(method="svd", rank=2, measured=True, margin=0.1)
    assert s.measured is True and s.margin == 0.1
    assert LowRankSettings(method="svd", rank=2).measured is False
    bad = "version: 1\nmodel: resnet20\nstages:\n  - lowrank: {method: svd, rank: 2, margin: 1.5}\n"
    with pytest.raises(EdgeslimError, match="margin"):
        parse_recipe(bad)


def test_recipe_stage_measured_puts_both_ms_in_the_layer_table(tmp_path, monkeypatch):
    def fake_ort(dense, factorized, shape, *, runs, threads):
        return (1.0, 0.5) if shape[-1] == 64 else (1.0, 3.0)

    monkeypatch.setattr(lowrank_measured, "ort_time_pair", fake_ort)
    (tmp_path / "net.py").write_text(USER_MODEL)
    recipe = parse_recipe(f"""
version: 1
model: {tmp_path / "net.py"}:make
input_shape: [1, 48]
stages:
  - lowrank: {{method: svd, rank: 4, measured: true, layers: ["0", "2"]}}
measure: {{runs: 2, batches: [1]}}
""")
    rep = compress(recipe, tmp_path / "out", progress=False)
    rows = {r["name"]: r for r in rep["layers"]}
    assert rows["2"]["rank"] == 4 and (rows["2"]["dense_ms"], rows["2"]["factorized_ms"]) == (
        1,
        0.5,
    )
    assert rows["0"]["rank"] is None and rows["0"]["factorized_ms"] == 3.0
    assert "dense_ms" not in rows["4"]
    lm = load_saved(tmp_path / "out" / "model")
    assert type(lm.model[0]) is nn.Linear and isinstance(lm.model[2], nn.Sequential)
