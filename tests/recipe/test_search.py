"""The ``search`` stage on a tiny CNN: MACs and latency budgets met, impossible budgets reported."""

import json

import pytest

from edgeslim.bench.latency import measure, onnx_target
from edgeslim.bench.macs import count_macs
from edgeslim.core.errors import EdgeslimError
from edgeslim.models.spec import load_model
from edgeslim.quant.config import PTQConfig
from edgeslim.recipe import STAGES, compress, parse_recipe
from edgeslim.recipe.state import PipelineContext, PipelineState
from edgeslim.search.deploy import Deployment

NET = """
from torch import nn

def make():
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))
"""
FAST = (
    "ratios: [0.0, 0.5, 0.75], sensitivity_batches: 1, batch_size: 64, latency_runs: 10, "
    "round_to: 1"
)


def recipe(net, targets: str, quantize: bool = False, search: str = FAST):
    q = "  - quantize: {calib_batches: 2}\n" if quantize else ""
    return parse_recipe(f"""
version: 1
model: {net}:make
input_shape: [1, 3, 32, 32]
data: digits
stages:
  - search: {{{search}}}
{q}  - export
targets: {{{targets}}}
measure: {{runs: 2, batches: [1, 8], threads: 1}}
""")


def tiny(net):
    return load_model(f"{net}:make", input_shape=(1, 3, 32, 32))


def run_search(loaded, tmp_path) -> PipelineState:
    lm = tiny(loaded.recipe.model.rsplit(":", 1)[0])
    ctx = PipelineContext(loaded.recipe, lm, tmp_path / "work", progress=False)
    return STAGES.get("search").run(PipelineState(lm), loaded.stages[0].settings, ctx)


def test_macs_budget_is_met_exactly(net, tmp_path):
    lm = tiny(net)
    dense = count_macs(lm.model, lm.require_input().example())[0]
    budget = int(0.6 * dense)
    st = run_search(recipe(net, f"macs: {budget}"), tmp_path)
    s = st.notes["search"]
    got = count_macs(st.lm.model, st.lm.require_input().example())[0]
    assert s["met"] and not s["impossible"] and s["int8"] is False
    assert got <= budget < dense
    # MACs are modelled exactly (pairwise terms), so the MILP's prediction is the count
    assert s["predicted"]["macs"] == pytest.approx(got) == pytest.approx(s["measured"]["macs"])
    widths = {k: v[1] for k, v in s["channels"].items()}
    assert widths == {k: st.lm.model.get_submodule(k).out_channels for k in widths}
    assert any(r > 0 for r in s["policy"].values())
    json.dumps(s)  # the record is JSON-able as it is


def test_latency_budget_is_met_on_onnxruntime(net, tmp_path):
    lm = tiny(net)
    spec = lm.require_input()
    dep = Deployment(spec, True, PTQConfig(), (spec.example(batch=16),), 8, 1, 20)
    dense = dep.export(lm.model, tmp_path / "dense.onnx")
    budget = 0.7 * dep.time({"dense": dense})["dense"]
    # 3 candidates to deploy and time, no float fallback: keeps the test short
    two = FAST.replace("[0.0, 0.5, 0.75]", "[0.0, 0.75]") + ", float_fallback: 0"
    st = run_search(recipe(net, f"latency_ms: {budget:.4f}", True, two), tmp_path)
    s = st.notes["search"]
    m = s["measured"]
    # the budget is 0.7x the dense model timed before the search: a machine whose speed
    # drifts in between (CI measured the dense model 37% slower inside the search's loops)
    # can miss the absolute figure, so a miss must still be 0.7x (+10%) the dense model
    # timed in the same loops; the interleaved measurement below is the robust check
    ratio = m["latency_ms_this_loop"] / m["dense_ms_this_loop"]
    assert s["int8"]
    assert s["met"] or ratio <= 0.7 * 1.1, s["reason"]
    # measured again, independently, as `edgeslim bench` does (interleaved with the dense model)
    out = dep.export(st.lm.model, tmp_path / "out.onnx", tuple(s["float_layers"]))
    rep = measure(
        [onnx_target(dense, "dense", spec), onnx_target(out, "out", spec)], (8,), runs=30, threads=1
    )
    # the budget was 0.7x dense; compared interleaved with the dense model (an absolute ms
    # figure taken minutes later moves with the machine's load), within 15%
    assert rep.median("out", 8) / rep.median("dense", 8) <= 0.7 * 1.15
    assert rep.ratio["8"] > 1.2  # and the result is faster than the dense INT8 model


def test_impossible_budget_is_reported_and_the_pipeline_continues(net, tmp_path, capsys):
    out = tmp_path / "out"
    rep = compress(recipe(net, "macs: 1000"), out, progress=False)
    s = rep["search"]
    assert s["impossible"] and not s["met"]
    assert s["reason"].startswith("neither the policy with the lowest predicted cost nor every")
    assert "macs" in s["reason"]
    closest = count_macs(saved_model(out), tiny(net).require_input().example())[0]
    assert s["measured"]["macs"] == closest > 1000
    assert all(r == 0.75 for r in s["policy"].values())  # the closest point: everything pruned
    assert "WARNING: budget cannot be met" in capsys.readouterr().out
    assert (out / "model.onnx").is_file()
    md, html = (out / "report.md").read_text(), (out / "report.html").read_text()
    assert "## Search" in md and "IMPOSSIBLE" in md and "Closest point" in md
    assert "<h2>Search</h2>" in html and "IMPOSSIBLE" in html


def saved_model(out):
    from edgeslim.models.saved import load_saved

    return load_saved(out / "model").model


def test_no_budget_is_a_clear_error(net, tmp_path):
    with pytest.raises(EdgeslimError, match="needs a budget: set targets.latency_ms") as e:
        run_search(recipe(net, "max_accuracy_drop: 1.0"), tmp_path)
    assert "\n" not in str(e.value)


def test_bad_ratio_names_the_key(net):
    with pytest.raises(EdgeslimError, match=r"stages\[0\].search.ratios"):
        recipe(net, "macs: 1000", search="ratios: [0.5, 1.5]")


def test_budget_and_quantize_settings_are_part_of_the_checkpoint_key(net):
    dep = STAGES.get("search").depends
    a, b = recipe(net, "macs: 1000"), recipe(net, "macs: 2000")
    c = recipe(net, "macs: 1000", quantize=True)
    assert dep(a.recipe) != dep(b.recipe) and dep(a.recipe) != dep(c.recipe)


def test_quantize_keeps_the_float_layers_search_chose(net, tmp_path):
    import onnx

    loaded = recipe(net, "macs: 1000", quantize=True)
    lm = tiny(net)
    q, settings = STAGES.get("quantize"), loaded.stages[1].settings
    runs = {}
    for name, notes in (("plain", {}), ("search", {"search": {"float_layers": ["3"]}})):
        ctx = PipelineContext(loaded.recipe, lm, tmp_path / name, progress=False)
        runs[name] = q.run(PipelineState(lm, notes=notes), settings, ctx)
    plain, kept = runs["plain"], runs["search"]
    assert plain.layers["3"]["bits"] == 8 and "bits" not in kept.layers.get("3", {})
    assert kept.layers["0"]["bits"] == 8 and "1 kept in float by search" in kept.notes["quantize"]
    inits = {
        k: {i.name for i in onnx.load(str(st.onnx)).graph.initializer} for k, st in runs.items()
    }
    assert "3.weight_quantized" in inits["plain"] and "3.weight_quantized" not in inits["search"]


def test_report_shows_the_chosen_policy_and_the_verdict(tmp_path):
    from edgeslim.bench.report import write_reports

    search = {
        "budget": {"latency_ms": 2.0},
        "batch": 8,
        "int8": True,
        "impossible": False,
        "reason": None,
        "measured": {"latency_ms": 1.7, "macs": 1e6},
        "predicted": {"latency_ms": 1.6},
        "policy": {"conv1": 0.5, "layer1.0.conv1": 0.0},
        "channels": {"conv1": [16, 8], "layer1.0.conv1": [16, 16]},
        "float_layers": ["fc"],
        "accuracy": {"dense_top1": 0.95, "top1_before_finetune": 0.6},
        "rounds": [
            {
                "how": "milp",
                "effective_budget": {"latency_ms": 1.8},
                "predicted": {"latency_ms": 1.6},
                "measured": {"latency_ms": 1.7},
                "met": True,
            }
        ],
    }
    report = {
        "recipe": "r.yaml",
        "model": "m",
        "data": "signs",
        "threads": 1,
        "stages": [],
        "targets": {},
        "layers": [],
        "summary": {},
        "search": search,
    }
    write_reports(tmp_path, report)
    md, html = (tmp_path / "report.md").read_text(), (tmp_path / "report.html").read_text()
    assert "Budget latency_ms <= 2 (batch 8, INT8 QDQ on ONNX Runtime): met" in md
    assert "- latency_ms: budget 2, predicted 1.6, measured 1.7: met" in md
    assert "| conv1 | 16 | 8 | 0.5 |" in md and "Kept in float: fc." in md
    assert "| 1 | milp | latency_ms 1.8 | latency_ms 1.6 | latency_ms 1.7 | yes |" in md
    assert "<td>conv1</td><td>16</td><td>8</td><td>0.5</td>" in html and "IMPOSSIBLE" not in html
