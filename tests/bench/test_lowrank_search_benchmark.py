"""``benchmarks/lowrank_search.py``'s report: rows per model, per seed, with their CPU.

The accuracy part writes one file per run; ``report`` merges them, and a row carries
the CPU it ran on (the CPU kind changes between sessions: AMD rows must stay AMD rows).
"""

from __future__ import annotations

import json

from edgeslim.bench.machine import machine_info


def row(top1: float, seeds: dict | None = None, **extra) -> dict:
    r = {"macs_fraction": 0.49, "top1_before_ft": 0.9, "top1_after_ft": top1,
         "drop_points": 100 * (0.95 - top1), **extra}  # fmt: skip
    if seeds:
        r["top1_after_ft_seeds"] = seeds
    return r


def test_report_merges_files_per_model_and_keeps_each_rows_cpu(tmp_path, monkeypatch, bench_script):
    mod = bench_script("lowrank_search")
    monkeypatch.setattr(mod, "OUT", tmp_path)
    amd, intel = ({**machine_info(1), "cpu": c} for c in ("AMD EPYC", "Intel(R) Xeon(R) Processor"))
    dense = {"model": "dense", "params": 1, "macs": 10, "ort_b1_ms": 2.0, "speedup": 1.0}
    one = {"rows": [dense], "threads": 1, "runs": 3, "uptime": "up", "input": [1, 3, 8, 8]}
    speed = {"resnet18": one}
    old = {"accuracy": {"dense_top1": 0.95, "rows": {"rank": row(0.954)}}, "machine": amd,
           "speed": speed}  # fmt: skip
    new = {
        "accuracy": {"dense_top1": 0.95, "rows": {"prune": row(0.948, {"0": 0.95, "1": 0.946})}},
        "accuracy:vgg16_bn_cifar": {
            "dense_top1": 0.97, "model": "vgg16_bn_cifar",
            "rows": {"rank": row(0.965, svd_fraction=0.675)},
        },
        "machine": intel,
        "speed": speed,
    }  # fmt: skip
    (tmp_path / "lowrank_search.accuracy.json").write_text(json.dumps(old))
    (tmp_path / "lowrank_search.accuracy_intel.json").write_text(json.dumps(new))
    mod.report(None)
    res = json.loads((tmp_path / "lowrank_search.json").read_text())
    assert res["accuracy"]["rows"]["rank"]["cpu"] == "AMD EPYC"
    assert res["accuracy"]["rows"]["prune"]["cpu"] == "Intel(R) Xeon(R) Processor"
    assert set(res["accuracy:vgg16_bn_cifar"]["rows"]) == {"rank"}  # not mixed with ResNet's
    md = (tmp_path / "lowrank_search.md").read_text()
    assert "## vgg16_bn_cifar (32x32) on signs" in md
    assert "| 94.80 (95.00, 94.60) |" in md  # the mean, then each seed
    assert "rank (SVD to 0.675 first)" in md
    assert md.count("| AMD EPYC |") == 1
    # the same model timed on two CPUs: two sections, neither overwrites the other
    assert set(res["speed"]) == {"resnet18 on AMD EPYC", "resnet18 on Intel(R) Xeon(R) Processor"}
    assert "Measured on 2 CPU kinds" in md
