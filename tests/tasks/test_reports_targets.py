"""Reports name the task's primary metric; targets follow the metric's direction."""

from types import SimpleNamespace

import pytest

from edgeslim.bench.latency import BenchReport
from edgeslim.bench.report import markdown, summarize
from edgeslim.bench.stages import format_stages, stage_record
from edgeslim.recipe.measure import check_targets


def _stages(metric, accs):
    rep = BenchReport(results=[])
    return [
        stage_record(
            name,
            name,
            rep,
            runtime="onnxruntime",
            params=10,
            macs=10**6,
            size_bytes=1000,
            accuracy=acc,
            metric=metric,
        )
        for name, acc in zip(("input", "prune"), accs, strict=True)
    ]


def test_stage_table_and_report_headers_name_the_primary_metric():
    stages = _stages("mIoU", [0.70, 0.65])
    assert format_stages(stages).splitlines()[0].split()[1] == "mIoU"
    summary = summarize(stages)
    assert summary["metric"] == "mIoU" and summary["accuracy_change_pts"] == pytest.approx(-5.0)
    md = markdown.render(
        {
            "recipe": "r.yaml",
            "model": "seg_tiny",
            "data": "shapes_seg",
            "threads": 2,
            "stages": stages,
            "targets": {},
            "layers": [],
            "summary": summary,
            "search": None,
        }
    )
    assert "| stage | runtime | mIoU % |" in md and "top-1" not in md
    assert "mIoU change -5.00 points" in md
    deploy = {"runtime": "openvino", "precision": "bf16", "why": "fastest", "batch": 8,
              "candidates": [{"name": "deploy (openvino bf16)", "runtime": "openvino",
                              "precision": "bf16", "latency_ms": {"1": 1.0, "8": 5.0},
                              "accuracy": 0.6}]}  # fmt: skip
    report = {"recipe": "r.yaml", "model": "seg_tiny", "data": "shapes_seg", "threads": 2,
              "stages": stages, "targets": {}, "layers": [], "summary": summary,
              "search": None, "deploy": deploy}  # fmt: skip
    from edgeslim.bench.report import html
    from edgeslim.bench.report.rows import DEPLOY_HEAD, stage_head

    assert stage_head(stages, DEPLOY_HEAD)[2] == "mIoU %"  # the runtime table's column too
    assert "| runtime | precision | mIoU % |" in markdown.render(report)
    assert "top-1" not in html.render(report)
    assert format_stages(_stages("top-1", [0.9, 0.8])).splitlines()[0].split()[1] == "top-1"


def _recipe(data, **targets):
    fields = {"max_metric_drop": None, "metric": None, "latency_ms": None}
    fields.update(size_bytes=None, macs=None)
    return SimpleNamespace(data=data, targets=SimpleNamespace(**{**fields, **targets}))


def test_metric_drop_target_in_points_of_the_primary_metric():
    stages = _stages("mIoU", [0.70, 0.68])
    got = check_targets(stages, _recipe("shapes_seg", max_metric_drop=1.0))
    assert got["max_metric_drop"]["achieved"] == pytest.approx(2.0)
    assert got["max_metric_drop"]["metric"] == "miou" and not got["max_metric_drop"]["met"]
    got = check_targets(stages, _recipe("shapes_seg", max_metric_drop=3))
    assert set(got) == {"max_metric_drop"} and got["max_metric_drop"]["met"]
