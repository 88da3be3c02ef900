"""``targets.runtime``: the final model timed and evaluated on every installed runtime."""

import onnx
import pytest

from edgeslim.export.runtimes import available_runtimes, get_runtime
from edgeslim.recipe import compress, parse_recipe
from edgeslim.recipe.measure import pick_deploy
from edgeslim.recipe.schema import Recipe

TINY = """
from torch import nn

def make():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
"""


def _recipe(tmp_path, runtime: str, stages: str):
    f = tmp_path / "tiny.py"
    f.write_text(TINY)
    return parse_recipe(f"""
version: 1
model: {f}:make
input_shape: [1, 3, 32, 32]
data: digits
stages: {stages}
targets: {{max_metric_drop: 100, runtime: {runtime}}}
measure: {{runs: 2, batches: [1, 8]}}
""")


@pytest.mark.skipif("openvino" not in available_runtimes(), reason="needs openvino")
def test_best_runtime_times_and_evaluates_every_candidate_and_says_why(tmp_path):
    rec = _recipe(tmp_path, "best", "[quantize: {calib_batches: 2}, export]")
    report = compress(rec, tmp_path / "out", progress=False)
    dep = report["deploy"]
    tried = {(c["runtime"], c["precision"]) for c in dep["candidates"]}
    assert {("onnxruntime", "int8"), ("openvino", "int8")} <= tried
    assert not any(c["runtime"].startswith("torch") for c in dep["candidates"])  # no INT8 path
    for c in dep["candidates"]:
        assert c["accuracy"] is not None and c["latency_ms"]["8"] > 0
    assert (dep["runtime"], dep["precision"]) in tried and "fastest at batch 8" in dep["why"]
    last = report["stages"][-1]
    assert (last["runtime"], last["precision"]) == (dep["runtime"], dep["precision"])
    assert "deploy" in (tmp_path / "out" / "report.md").read_text().lower()
    # BF16 of the float model stands beside INT8 wherever a runtime has native BF16 kernels
    if "bf16" in get_runtime("openvino").native_precisions():
        assert ("openvino", "bf16") in tried
    deployed = onnx.load(str(tmp_path / "out" / "model.onnx"))
    qdq = any(n.op_type == "QuantizeLinear" for n in deployed.graph.node)
    assert qdq == (dep["precision"] == "int8")  # the file written is the one that was picked


def test_plain_onnxruntime_has_no_deploy_section_and_records_precision(tmp_path):
    rec = _recipe(tmp_path, "onnxruntime", "[quantize: {calib_batches: 2}, export]")
    report = compress(rec, tmp_path / "out", progress=False)
    assert report["deploy"] is None
    assert report["stages"][-1]["precision"] == "int8"
    assert report["stages"][0]["precision"] == "fp32"


def _rec(name, rt, prec, ms, acc):
    return {
        "name": name,
        "runtime": rt,
        "precision": prec,
        "latency_ms": {"8": ms},
        "accuracy": acc,
    }


def test_pick_deploy_keeps_ort_when_the_faster_runtime_loses_accuracy():
    recipe = Recipe.model_validate(
        {
            "version": 1,
            "model": "resnet20",
            "stages": ["export"],
            "targets": {"max_metric_drop": 1.0, "runtime": "best"},
        }
    )
    records = [
        _rec("input", "torch", "fp32", 50.0, 0.90),
        _rec("quantize", "onnxruntime", "int8", 10.0, 0.899),
    ]
    tried = [_rec("deploy (openvino int8)", "openvino", "int8", 3.0, 0.80)]
    dep = pick_deploy(records, tried, recipe)
    assert dep["runtime"] == "onnxruntime" and len(records) == 2
    assert "excluded" in dep["why"] and "openvino int8" in dep["why"]
    tried[0]["accuracy"] = 0.895
    dep = pick_deploy(records, tried, recipe)
    assert dep["runtime"] == "openvino" and records[-1]["name"] == "deploy (openvino int8)"
