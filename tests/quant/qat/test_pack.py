"""Low-bit QAT weights stored as int2/int4/int8 codes in ONNX: smaller, and exactly the same."""

import copy

import numpy as np
import onnx
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from edgeslim.core.errors import EdgeslimError
from edgeslim.core.methods import apply
from edgeslim.export.onnx import export_onnx
from edgeslim.export.ort import ort_session
from edgeslim.models.inputs import InputSpec
from edgeslim.quant.qat import CONFIGS
from edgeslim.quant.qat.export import export_qat_qdq
from edgeslim.quant.qat.pack import (
    channel_scales,
    code_bits,
    export_packed,
    int4_weights,
    pack_int2,
    pack_int4,
    weight_storage,
)

SPEC = InputSpec((1, 3, 8, 8))


def _net():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 32, 3), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 32, 3), nn.ReLU(),
        nn.Flatten(), nn.Linear(32 * 4 * 4, 10),
    )  # fmt: skip


def _qat(method, **kw):
    calib = [torch.randn(8, 3, 8, 8, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    q, _ = apply(_net(), CONFIGS[method](**{"w_bits": 4, "a_bits": 4, **kw}), calib=calib)
    return q.eval()


@settings(max_examples=40, deadline=None)
@given(st.data(), st.sampled_from([(4, TensorProto.INT4), (2, TensorProto.INT2)]))
def test_packing_round_trips_through_onnx(data, kind):
    """Our 4- and 2-bit packing, read back by onnx's own decoders, gives the codes."""
    bits, onnx_type = kind
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    values = data.draw(st.lists(st.integers(lo, hi), min_size=1, max_size=37))
    codes = np.array(values, dtype=np.int8)
    pack = pack_int4 if bits == 4 else pack_int2
    t = helper.make_tensor("c", onnx_type, codes.shape, pack(codes), raw=True)
    assert np.array_equal(numpy_helper.to_array(t).astype(np.int8), codes)
    per_byte = 8 // bits
    assert len(t.raw_data) == (len(values) + per_byte - 1) // per_byte
    with pytest.raises(EdgeslimError, match=rf"\[{lo}, {hi}\]"):
        pack(np.array([hi + 1], dtype=np.int8))


def test_code_bits_is_the_fewest_onnx_type():
    assert code_bits(np.array([-1, 0, 1])) == 2
    assert code_bits(np.array([-2, 1])) == 2
    assert code_bits(np.array([-3, 1])) == 4
    assert code_bits(np.array([2])) == 4
    assert code_bits(np.array([-8, 7])) == 4
    assert code_bits(np.array([8])) == 8


def test_channel_scales_absorb_a_folded_constant_and_refuse_other_values():
    codes = np.array([[1, -2, 3], [0, 0, 0], [4, 4, -4]], dtype=np.int8)
    s = np.array([0.5, 2.0, 0.1], dtype=np.float32)
    got = channel_scales(codes * s[:, None] * 0.999995, codes)
    assert got is not None and np.allclose(got[[0, 2]], s[[0, 2]] * 0.999995)
    assert channel_scales(codes * s[:, None] + np.eye(3, dtype=np.float32) * 0.01, codes) is None


@pytest.mark.parametrize(
    ("method", "kind", "kw"),
    [
        ("lsq", "int4", {}),
        ("lsq", "int2", {"w_bits": 2}),
        ("binary", "int2", {}),
        ("ternary", "int2", {}),
        ("dorefa", "int8", {}),
    ],
)
def test_packed_file_is_smaller_and_matches_the_simulation(method, kind, kw, tmp_path):
    q = _qat(method, **kw)
    before = copy.deepcopy(q.state_dict())
    plain = export_onnx(q, SPEC, tmp_path / "plain.onnx")
    packed = export_packed(q, SPEC, tmp_path / "packed.onnx")
    assert set(packed.storage.values()) == {kind} and len(packed.storage) == 3
    assert weight_storage(packed.path) == {kind: 3}
    # each weight went from 4 bytes to its code's bits; the graph and the scales stay
    numel = sum(m.weight.numel() for m in q.modules() if isinstance(m, nn.Conv2d | nn.Linear))
    bits = int(kind[3:])
    assert plain.size_bytes - packed.size_bytes >= 0.97 * numel * (4 - bits / 8)
    x = SPEC.example(4, seed=3)
    with torch.no_grad():
        want = q(x).numpy()
    sess = ort_session(packed.path)
    got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    assert np.abs(got - want).max() <= 1e-4 * max(1.0, np.abs(want).max())
    after = q.state_dict()  # the model itself is not changed
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert onnx.load(str(packed.path)).opset_import[0].version >= (25 if kind == "int2" else 21)


def test_int4_retyping_of_a_qdq_file_halves_its_4_bit_weights(tmp_path):
    q = _qat("lsq", a_bits=8)
    r = export_qat_qdq(q, SPEC, tmp_path / "q8.onnx")
    counts = int4_weights(r.path, tmp_path / "q4.onnx")
    assert counts == {"int4": 3, "int8": 0} and weight_storage(tmp_path / "q4.onnx") == {"int4": 3}
    assert (tmp_path / "q4.onnx").stat().st_size < 0.75 * r.path.stat().st_size
    x = SPEC.example(4, seed=5).numpy()
    a, b = ort_session(r.path), ort_session(tmp_path / "q4.onnx")
    ya = a.run(None, {a.get_inputs()[0].name: x})[0]
    yb = b.run(None, {b.get_inputs()[0].name: x})[0]
    assert np.abs(ya - yb).max() <= 1e-5 * max(1.0, np.abs(ya).max())


def test_a_model_without_quantized_weights_is_a_clear_error(tmp_path):
    with pytest.raises(EdgeslimError, match="no quantized weights"):
        export_packed(_net().eval(), SPEC, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()
