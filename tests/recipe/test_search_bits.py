"""Bit-width as a search decision: 4-bit weights beside channel ratios, honoured by quantize."""

import onnx
import pytest
from onnx import TensorProto
from test_search import recipe, tiny

from edgeslim.quant.config import PTQConfig
from edgeslim.recipe import compress
from edgeslim.search.deploy import Deployment

BITS = (
    "ratios: [0.0, 0.25], sensitivity_batches: 1, batch_size: 64, latency_runs: 5, "
    "round_to: 1, float_fallback: 0, low_bits: 4"
)


def int4_tensors(path) -> set[str]:
    g = onnx.load(str(path)).graph
    return {i.name for i in g.initializer if i.data_type == TensorProto.INT4}


def test_packed_low_bit_export_is_smaller_and_really_int4(net, tmp_path):
    lm = tiny(net)
    spec = lm.require_input()
    dep = Deployment(spec, True, PTQConfig(), (spec.example(batch=16),), 8, 1, 5)
    dense = dep.export(lm.model, tmp_path / "dense.onnx")
    low = dep.export(lm.model, tmp_path / "low.onnx", low_bits=(("6", 4),))
    assert not int4_tensors(dense) and len(int4_tensors(low)) >= 1
    # 36864 weights of layer 6: half a byte each saved, within the zero points' bytes
    saved = Deployment.size(dense) - Deployment.size(low)
    assert 36864 / 2 - 64 <= saved <= 36864 / 2 + 256


def test_size_budget_only_four_bits_can_meet_is_met_and_deployed(net, tmp_path):
    """Pruning every group by 25% alone cannot reach 45% of the INT8 file; with 4-bit
    weights as one more decision the search meets it, and the quantize stage writes
    exactly the layers the search chose at 4 bits, packed, and says they are not faster."""
    lm = tiny(net)
    spec = lm.require_input()
    dep = Deployment(spec, True, PTQConfig(), (spec.example(batch=16),), 8, 1, 5)
    budget = int(0.45 * Deployment.size(dep.export(lm.model, tmp_path / "d.onnx")))
    out = tmp_path / "out"
    rep = compress(recipe(net, f"size_bytes: {budget}", True, BITS), out, progress=False)
    s = rep["search"]
    assert s["met"], s["reason"]
    assert s["low_bits"] and set(s["low_bits"].values()) == {4}
    assert s["measured"]["size_bytes"] <= budget
    rows = {r["layer"]: r for r in s["low_bit_candidates"]}
    assert set(s["low_bits"]) <= set(rows)
    assert all(r["size_bytes"] < 0 for r in rows.values() if r["params"] > 1000)
    note = str(rep)
    assert "stored packed as INT4" in note and "run as float convs" in note
    bits = {r["name"]: r["bits"] for r in rep["layers"]}  # the report's layer table
    assert all(bits[name] == 4 for name in s["low_bits"])
    assert all(bits[n] != 4 for n in ("0", "3", "6", "11") if n not in s["low_bits"])
    deployed = out / "model.onnx"
    assert len(int4_tensors(deployed)) >= len(s["low_bits"])


@pytest.mark.slow  # a search and a QAT epoch: about 45 s
def test_qat_trains_the_configuration_the_search_chose(net, tmp_path):
    """search (4-bit switches) -> qat {from_search} -> export: the chosen layers train at W4,
    the rest at W8A8, the file holds them packed, and the stage says who chose the bits."""
    from edgeslim.core.cpu import int8_pairs_saturate
    from edgeslim.recipe import parse_recipe
    from edgeslim.recipe.runner import run_stages
    from edgeslim.search.deploy import Deployment as D

    w8 = 7 if int8_pairs_saturate() else 8
    lm = tiny(net)
    spec = lm.require_input()
    dep = D(spec, True, PTQConfig(), (spec.example(batch=16),), 8, 1, 5)
    budget = int(0.45 * D.size(dep.export(lm.model, tmp_path / "d.onnx")))
    text = f"""
version: 1
model: {net}:make
input_shape: [1, 3, 32, 32]
data: digits
stages:
  - search: {{{BITS}, int8: true}}
  - qat: {{method: lsq, w_bits: {w8}, a_bits: 8, epochs: 1, lr: 0.005, batch_size: 64,
           from_search: true}}
  - export
targets: {{size_bytes: {budget}}}
"""
    history = run_stages(parse_recipe(text), tmp_path / "out", progress=False)
    search = history[1][1].notes["search"]
    qat_state, final = history[2][1], history[3][1]
    assert search["low_bits"]
    for name, layer in qat_state.layers.items():
        want = 4 if name in search["low_bits"] else w8
        assert layer["w_bits"] == want, name
    assert "chosen by the search" in qat_state.notes["qat"]
    assert len(int4_tensors(final.onnx)) >= len(search["low_bits"])


def test_qat_from_search_without_a_search_is_a_clear_error(net, tmp_path):
    from edgeslim.core.errors import EdgeslimError
    from edgeslim.recipe import parse_recipe
    from edgeslim.recipe.runner import run_stages

    text = f"""
version: 1
model: {net}:make
input_shape: [1, 3, 32, 32]
data: digits
stages:
  - qat: {{method: lsq, epochs: 1, from_search: true}}
"""
    with pytest.raises(EdgeslimError, match="from_search needs a 'search' stage"):
        run_stages(parse_recipe(text), tmp_path / "out", progress=False)
