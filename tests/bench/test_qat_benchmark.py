"""``benchmarks/qat.py`` on any zoo model: the layers kept at W8A8 and W4A8 rows in the report.

The benchmark keeps the first conv and the classifier at W8A8 (LSQ paper, Section 3).
It named ResNet-20's ``conv1`` / ``fc``; it now derives them, so MobileNetV2
(issue 13's depthwise check) keeps ``features.0.0`` / ``classifier.1``.
"""

from __future__ import annotations

import pytest
from torch import nn

from edgeslim.core.select import matches
from edgeslim.models.spec import load_model


@pytest.mark.parametrize(
    ("model", "kept"),
    [("resnet20", ("conv1", "fc")), ("mobilenet_v2_cifar", ("features.0.0", "classifier.1"))],
)
def test_first_conv_and_last_linear_are_kept(model, kept, bench_script):
    qat = bench_script("qat")
    m = load_model(model, num_classes=10).model
    assert qat.keep_8bit(m) == kept
    names = [n for n, _ in m.named_modules()]
    for layer in kept:  # each override pattern selects its layer and no other
        assert [n for n in names if matches(n, qat.exact(layer))] == [layer]


def test_a_1x1_conv_classifier_is_kept_when_there_is_no_linear(bench_script):
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.Conv2d(8, 4, 1))
    assert bench_script("qat").keep_8bit(net) == ("0", "3")


def test_w4a8_runs_get_their_own_rows_and_the_1_5_point_target(bench_script):
    report = bench_script("qat_report")
    run = {"method": "lsq+pc", "label": "lsq+pc", "bits": 4, "seed": 0, "top1": 0.95}
    runs = {
        "lsq+pc_W4A8_s0": {**run, "a_bits": 8, "seconds": 1.0, "protocol": "p"},
        "lsq+pc_W4A4_s0": {**run, "top1": 0.90, "seconds": 1.0, "protocol": "p"},
    }
    by = report.groups(runs)
    assert set(by) == {("lsq+pc", 4, 8), ("lsq+pc", 4, 4)}
    lines = report.targets(by, fp32=0.96)
    assert any(
        line.startswith("- W4A8 lsq+pc within 1.5 points") and "met" in line for line in lines
    )
    assert any(
        line.startswith("- W4A4 lsq+pc within 1.0 point") and "missed" in line for line in lines
    )
