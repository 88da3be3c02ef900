"""The CLI end to end on user-written models from ``tests/fixtures``: a YOLO-style
detector with three outputs (C3/SPPF/PAN, concat-heavy neck) and a ViT on
``nn.MultiheadAttention``. analyze, export, prune --ratio 0.3 and quantize must exit 0
with real properties: named ONNX outputs that agree with eager one by one, output
shapes kept by pruning (head convs are the outputs), MACs that drop."""

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from edgeslim.cli.main import main
from edgeslim.core.outputs import flatten_outputs, output_diffs
from edgeslim.export.ort import ort_outputs, ort_session
from edgeslim.models.spec import load_model
from edgeslim.models.user import build_from_file

FIX = Path(__file__).resolve().parents[1] / "fixtures"
YOLO = f"{FIX}/yolo_tiny.py:yolo_tiny"
YOLO_DICT = f"{FIX}/yolo_tiny.py:yolo_tiny_dict"
VIT = f"{FIX}/vit_tiny.py:vit_tiny"
SHAPE = {YOLO: "1,3,64,64", YOLO_DICT: "1,3,64,64", VIT: "1,3,32,32"}
FAST = ["--batch", "1", "--runs", "2", "--threads", "1"]


def x_for(spec, batch=2):
    shape = [int(d) for d in SHAPE[spec].split(",")]
    return torch.randn((batch, *shape[1:]), generator=torch.Generator().manual_seed(3))


def ort_vs_eager(path, model, x) -> dict:
    with torch.no_grad():
        ref = flatten_outputs(model.eval()(x))
    got = ort_outputs(ort_session(path), x.numpy())
    assert list(got) == list(ref)  # same names, same order
    return output_diffs(ref, got)


def graph_outputs(path) -> list[str]:
    return [o.name for o in onnx.load(str(path)).graph.output]


@pytest.mark.parametrize(
    ("spec", "names"),
    [
        (YOLO, ["output0", "output1", "output2"]),
        pytest.param(YOLO_DICT, ["p3", "p4", "p5"], marks=pytest.mark.slow),  # quantize has it
        (VIT, ["output"]),
    ],
)
def test_analyze_and_export(tmp_path, spec, names):
    rep_path = tmp_path / "a.json"
    assert main(["analyze", spec, "--input-shape", SHAPE[spec], "--json", str(rep_path)]) == 0
    rep = json.loads(rep_path.read_text())
    assert list(rep["outputs"]) == names and list(rep["onnx_output_diffs"]) == names
    assert rep["macs"] > 0 and rep["onnx_max_abs_diff"] < 1e-4
    out = tmp_path / "m.onnx"
    assert main(["export", spec, "--input-shape", SHAPE[spec], "-o", str(out)]) == 0
    assert graph_outputs(out) == names
    for diff, scale in ort_vs_eager(out, build_from_file(spec), x_for(spec, 5)).values():
        assert diff <= 1e-4 * max(1.0, scale)


@pytest.mark.parametrize("runtime", ["torch", "onnxruntime"])
def test_bench(tmp_path, runtime):
    out = tmp_path / "b.json"
    args = ["bench", YOLO, "--input-shape", SHAPE[YOLO], "--runtime", runtime, "--warmup", "1",
            "--json", str(out), *FAST]  # fmt: skip
    assert main(args) == 0
    (r,) = json.loads(out.read_text())["results"]
    assert r["runtime"] == runtime and r["median_ms"] > 0


@pytest.mark.parametrize("spec", [YOLO, VIT])
def test_prune_keeps_outputs_and_drops_macs(tmp_path, spec):
    out = tmp_path / "p"
    # a fixed alignment: "auto" follows this CPU's measured staircase, and an alignment of
    # 32 on the ViT's 64-wide layers leaves only 10% of the MACs to prune
    assert main(["prune", spec, "--input-shape", SHAPE[spec], "--ratio", "0.3", "-o", str(out),
                 "--round-to", "8", *FAST]) == 0  # fmt: skip
    stages = json.loads((out / "report.json").read_text())["stages"]
    base = build_from_file(spec)
    from edgeslim.bench.macs import count_macs

    x1 = x_for(spec, 1)
    assert stages[0]["macs"] == count_macs(base, x1)[0]  # the input, counted as given
    assert stages[-1]["macs"] < 0.85 * stages[0]["macs"]
    pruned = load_model(str(out)).model
    with torch.no_grad():
        a, b = flatten_outputs(base(x1)), flatten_outputs(pruned(x1))
    assert {n: t.shape for n, t in a.items()} == {n: t.shape for n, t in b.items()}
    if spec == YOLO:
        assert [h.out_channels for h in pruned.head] == [h.out_channels for h in base.head]
        widths = [
            sum(m.out_channels for m in net.modules() if isinstance(m, torch.nn.Conv2d))
            for net in (base, pruned)
        ]
        assert widths[1] < widths[0]
    for diff, scale in ort_vs_eager(out / "model.onnx", pruned, x_for(spec, 3)).values():
        assert diff <= 1e-4 * max(1.0, scale)


@pytest.mark.parametrize("spec", [YOLO_DICT, VIT])
def test_quantize_every_output(tmp_path, spec):
    out = tmp_path / "q"
    c, h, w = SHAPE[spec].split(",")[1:]
    args = ["quantize", spec, "--input-shape", SHAPE[spec], "--calib-data",
            f"random:{c},{h},{w}", "--calib-batches", "1", "-o", str(out), *FAST]  # fmt: skip
    with pytest.warns(UserWarning, match="random"):
        assert main(args) == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["graph_mode"] == "export" and len(rep["quantized_layers"]) > 0
    path = out / "model.onnx"
    nodes = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert nodes.count("QuantizeLinear") > 0
    names = list(flatten_outputs(build_from_file(spec)(x_for(spec, 1))))
    assert graph_outputs(path) == names
    # INT8 (ONNX Runtime) against FP32 eager: every output is there and still carries the
    # signal (random weights and noise calibration: agreement, not accuracy). The QDQ
    # export itself already checked the file against the fake-quant simulation per output.
    with torch.no_grad():
        ref = flatten_outputs(build_from_file(spec)(x_for(spec, 4)))
    got = ort_outputs(ort_session(path), x_for(spec, 4).numpy())
    assert list(got) == names
    for n in names:
        a, b = ref[n].flatten().numpy(), got[n].flatten()
        assert got[n].shape == tuple(ref[n].shape)
        assert np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)) > 0.95, n
