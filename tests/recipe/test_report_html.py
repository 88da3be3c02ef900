"""The HTML report renders in a real headless browser (Debian's chromium), plots included."""

import os
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from edgeslim.bench.report import summarize, write_reports

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _stage(name, runtime, acc, b1, b8, size):
    return {
        "name": name,
        "runtime": runtime,
        "accuracy": acc,
        "latency_ms": {"1": b1, "8": b8},
        "latency_p90_ms": {"1": b1 * 1.1, "8": b8 * 1.1},
        "size_bytes": size,
        "params": 1000,
        "macs": 10**6,
        "sparsity": 0.0,
    }


def _report():
    stages = [
        _stage("input (fp32, torch eager)", "torch", 0.90, 4.0, 30.0, 1_000_000),
        _stage("prune", "onnxruntime", 0.89, 1.0, 6.0, 300_000),
        _stage("quantize", "onnxruntime", 0.888, 0.5, 2.5, 80_000),
    ]
    layers = [
        {
            "name": f"conv{i}",
            "type": "Conv2d",
            "channels": 64,
            "kept": 32 - i,
            "bits": 8,
            "sensitivity": 0.1 * i,
        }
        for i in range(6)
    ]
    return {
        "recipe": "test.yaml",
        "model": "resnet20",
        "data": "signs",
        "threads": 2,
        "stages": stages,
        "targets": {"latency_ms": {"target": 3.0, "batch": 8, "achieved": 2.5, "met": True}},
        "layers": layers,
        "summary": summarize(stages),
        "search": None,
    }


def test_markdown_and_json_written(tmp_path):
    write_reports(tmp_path, _report())
    md = (tmp_path / "report.md").read_text()
    assert "| quantize | onnxruntime | 88.80 |" in md and "12.00x faster at batch 8" in md
    assert (tmp_path / "report.html").read_text().count("<img") == 3


def test_html_renders_with_plots_in_chromium(tmp_path):
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run must install it")
        pytest.skip("chromium not installed (apt-get install chromium)")
    write_reports(tmp_path, _report())
    shot = tmp_path / "shot.png"
    cmd = [
        CHROMIUM,
        *FLAGS,
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1200,2400",
        f"--screenshot={shot}",
        (tmp_path / "report.html").as_uri(),
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert img.shape[0] >= 2000 and img.shape[1] >= 1000

    def count(rgb, tol=30):
        return int((np.abs(img - np.array(rgb)).sum(-1) < tol).sum())

    assert count((31, 119, 180)) > 200  # tab:blue accuracy-vs-latency line and points
    assert count((44, 160, 44)) > 2000  # tab:green channels-kept bars
    assert count((214, 39, 40)) > 500  # tab:red sensitivity bars


def test_a_collapsed_stage_is_drawn_off_scale_and_keeps_the_others_readable():
    from edgeslim.bench.report.plots import accuracy_points, accuracy_vs_latency

    stages = [
        _stage("input", "torch", 0.951, 4.0, 50.0, 1),
        _stage("prune", "onnxruntime", 0.0875, 1.0, 2.5, 1),  # before its fine-tune
        _stage("distill", "onnxruntime", 0.948, 1.0, 2.4, 1),
        _stage("quantize", "onnxruntime", 0.947, 0.5, 1.4, 1),
    ]
    pts, (bottom, top) = accuracy_points(stages)
    assert [p[3] for p in pts] == [False, True, False, False]
    assert 94.0 < bottom < 94.7 and 95.1 < top < 96.0  # the range the kept stages span
    png = accuracy_vs_latency(stages)
    assert png is not None and png.startswith(b"\x89PNG")
    assert accuracy_points([])[0] == []
