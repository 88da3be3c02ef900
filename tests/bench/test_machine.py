"""Every report says which CPU, vector extensions and runtime versions produced it."""

import importlib.metadata

from edgeslim.bench.machine import machine_info, machine_line
from edgeslim.bench.report import markdown
from edgeslim.core.cpu import cpu_isa, cpu_model, int8_pairs_saturate


def test_machine_info_names_cpu_isa_int8_path_and_versions():
    m = machine_info(threads=2)
    assert m["cpu"] == cpu_model() and m["isa"] == cpu_isa() and m["threads"] == 2
    assert ("saturate" in m["int8"]) == int8_pairs_saturate()
    assert m["versions"]["torch"] == importlib.metadata.version("torch")
    assert m["versions"]["onnxruntime"] == importlib.metadata.version("onnxruntime")
    line = machine_line(m)
    assert m["cpu"] in line and "onnxruntime" in line and "2 threads" in line


def test_markdown_report_starts_with_the_machine():
    report = {
        "model": "m", "recipe": "r.yaml", "data": "signs", "threads": 2,
        "machine": machine_info(2), "summary": {}, "stages": [], "targets": {}, "layers": [],
    }  # fmt: skip
    text = markdown.render(report)
    assert machine_line(report["machine"]) in text.splitlines()[:4]
