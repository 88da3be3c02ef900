"""Recipe targets: the drop names its metric, values are rounded for people."""

import pytest

from edgeslim.bench.report.rows import human, target_line
from edgeslim.recipe import parse_recipe
from edgeslim.recipe.measure import check_targets


def _record(acc: float, lat8: float = 2.0, size: int = 1000, macs: int = 10) -> dict:
    return {"accuracy": acc, "latency_ms": {"8": lat8}, "size_bytes": size, "macs": macs}


def _recipe(targets: str):
    return parse_recipe(
        f"version: 1\nmodel: resnet20\nstages: [export]\ntargets: {targets}\n"
    ).recipe


@pytest.mark.parametrize("key", ["max_metric_drop", "max_accuracy_drop"])
def test_metric_drop_is_checked_in_points_of_the_named_metric(key):
    # 0.9045 - 0.9085 in float is -0.40000000000000036 points: noise the report must not show
    got = check_targets([_record(0.9045), _record(0.9085)], _recipe(f"{{{key}: 1.0}}"))
    t = got["max_metric_drop"]
    assert t == {"metric": "top1", "target": 1.0, "achieved": -0.4, "met": True}
    assert target_line("max_metric_drop", t) == (
        "max_metric_drop (top1): wanted 1.0, achieved -0.40: met"
    )


def test_drop_over_the_limit_is_not_met_and_exact_limit_is_met():
    recipe = _recipe("{max_metric_drop: 1.0, metric: top1}")
    over = check_targets([_record(0.90), _record(0.8899)], recipe)["max_metric_drop"]
    assert over["achieved"] == pytest.approx(1.01) and over["met"] is False
    assert target_line("max_metric_drop", over).endswith("achieved 1.01: NOT MET")
    # 0.93 - 0.92 is 1.0000000000000009 points in float; rounding keeps it at the limit
    exact = check_targets([_record(0.93), _record(0.92)], recipe)["max_metric_drop"]
    assert exact["achieved"] == 1.0 and exact["met"] is True


def test_other_targets_and_their_lines():
    recipe = _recipe("{latency_ms: 2.0, batch: 8, size_bytes: 900, macs: 10}")
    got = check_targets([_record(0.9), _record(0.9, lat8=1.23456, size=901, macs=10)], recipe)
    assert "max_metric_drop" not in got
    lines = [target_line(k, t) for k, t in got.items()]
    assert lines == [
        "latency_ms (batch 8): wanted 2.0, achieved 1.23: met",
        "size_bytes: wanted 900, achieved 901: NOT MET",
        "macs: wanted 10, achieved 10: met",
    ]


@pytest.mark.parametrize(
    "value, text",
    [
        (0.8, "0.80"),
        (-0.40000000000000036, "-0.40"),
        (0.01234, "0.0123"),
        (0.0, "0.00"),
        (7, "7"),
        (None, "-"),
    ],
)
def test_human_rounding(value, text):
    assert human(value) == text
