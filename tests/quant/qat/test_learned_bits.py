"""The learnable per-layer bit-width: fractional-bit oracle, the penalty, rounding, reload."""

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from edgeslim.core.errors import EdgeslimError
from edgeslim.core.methods import apply
from edgeslim.models.inputs import InputSpec
from edgeslim.models.saved import load_saved, save_model
from edgeslim.models.spec import LoadedModel
from edgeslim.quant.qat import qat_layers
from edgeslim.quant.qat.learned_bits import (
    LearnedBitsConfig,
    LearnedBitsQuantizer,
    average_bits,
    bits_penalty,
    bits_table,
    enable_inputs_,
    round_bits_,
)

NETS_FILE = Path(__file__).parent.parent / "nets.py"


def uniform(x, alpha, k):
    """Oracle: symmetric narrow k-bit quantization of x clipped to [-alpha, alpha]."""
    n = 2 ** (k - 1) - 1
    s = alpha / n
    return torch.round(torch.clamp(x / s, -n, n)) * s


def weight_quantizer(bits, alpha=1.0, **kw):
    q = LearnedBitsQuantizer(bits, is_weight=True, **kw)
    with torch.no_grad():
        q.alpha.fill_(alpha)
    q.initialized = True
    return q


@settings(max_examples=30, deadline=None)
@given(k=st.integers(2, 7), f=st.floats(0.0, 0.99), seed=st.integers(0, 1000))
def test_fractional_bits_interpolate_the_neighbouring_grids(k, f, seed):
    """FracBits eq. 4: Q_b = (1-f) Q_k + f Q_{k+1}, and dQ/db = Q_{k+1} - Q_k."""
    x = torch.randn(64, generator=torch.Generator().manual_seed(seed))
    q = weight_quantizer(k).eval()
    with torch.no_grad():
        q.bits_param.fill_(k + f)
    y = q(x)
    want = (1 - f) * uniform(x, 1.0, k) + f * uniform(x, 1.0, k + 1)
    assert torch.allclose(y, want, atol=1e-5)
    g = torch.randn(64, generator=torch.Generator().manual_seed(seed + 1))
    (y * g).sum().backward()
    db = (g * (uniform(x, 1.0, k + 1) - uniform(x, 1.0, k))).sum()
    assert math.isclose(float(q.bits_param.grad), float(db) * q.bits_lr_scale, abs_tol=1e-3)


def test_integer_bits_are_the_plain_grid_and_rounding_freezes_them():
    x = torch.randn(200)
    q = weight_quantizer(4, alpha=2.0).eval()
    assert torch.allclose(q(x), uniform(x, 2.0, 4))
    with torch.no_grad():
        q.bits_ema.fill_(5.4)
    assert q.round_() == 5 and q.rounded and not q.bits_param.requires_grad
    y = q(x)
    assert torch.allclose(y, uniform(x, 2.0, 5))
    assert len(torch.unique(y)) <= 2**5 - 1
    g = q.grid()
    assert (g.qmin, g.qmax) == (-15, 15) and torch.allclose(g.scale, torch.tensor([2.0 / 15]))


def test_moving_average_follows_the_bits_while_training():
    q = weight_quantizer(8, momentum=0.5).train()
    with torch.no_grad():
        q.bits_param.fill_(4.0)
    for _ in range(10):
        q(torch.randn(16))
    assert abs(float(q.bits_ema) - 4.0) < 0.01
    q.eval()
    with torch.no_grad():
        q.bits_param.fill_(7.0)
    q(torch.randn(16))  # eval: the average stays
    assert abs(float(q.bits_ema) - 4.0) < 0.01


def _net():
    return nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3), nn.ReLU(),
        nn.Flatten(), nn.Linear(16 * 4 * 4, 10),
    )  # fmt: skip


def test_head_stays_float_unless_asked():
    calib = [torch.randn(4, 3, 8, 8)]
    m, rec = apply(_net(), LearnedBitsConfig(), calib=calib)
    assert sorted(rec.layers) == ["0", "3"] and rec.details["head_in_float"] == "6"
    assert isinstance(m[6], nn.Linear)
    m2, rec2 = apply(_net(), LearnedBitsConfig(quantize_head=True), calib=calib)
    assert sorted(rec2.layers) == ["0", "3", "6"] and rec2.details["head_in_float"] is None


def test_penalty_pushes_the_average_down_to_the_target():
    torch.manual_seed(0)
    ref = _net().eval()
    cfg = LearnedBitsConfig(target_bits=4.0, penalty=1.0, bits_lr_scale=10.0)
    calib = [torch.randn(8, 3, 8, 8) for _ in range(2)]
    m, _ = apply(ref, cfg, calib=calib)
    pen0, avg0 = bits_penalty(m, cfg)
    assert float(avg0.detach()) == 8.0 and math.isclose(float(pen0.detach()), 4.0)  # |8 - 4|
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    m.train()
    for _ in range(150):
        x = torch.randn(8, 3, 8, 8)
        loss = F.mse_loss(m(x), ref(x).detach())
        pen, _ = bits_penalty(m, cfg)
        opt.zero_grad()
        (loss + pen).backward()
        opt.step()
    avg = float(average_bits(m))
    assert 3.5 <= avg <= 4.5, avg
    bits = round_bits_(m)
    assert set(bits) == {"0", "3"} and all(2 <= b <= 8 for b in bits.values())
    assert float(bits_penalty(m, cfg)[0]) == pytest.approx(
        abs((bits["0"] * 216 + bits["3"] * 1152) / (216 + 1152) - 4.0)
    )


def test_bops_penalty_weighs_by_macs():
    calib = [torch.randn(4, 3, 8, 8)]
    cfg = LearnedBitsConfig(regularizer="bops", target_bits=4.0)
    m, _ = apply(_net(), cfg, calib=calib)
    # conv 0: 216 weights x 36 positions; conv 3: 1152 x 16; activations float -> a_max
    assert (m[0].macs, m[3].macs) == (216 * 36, 1152 * 16)
    pen, _ = bits_penalty(m, cfg)
    assert math.isclose(float(pen), 8.0 * 8 / 8 - 4.0, rel_tol=1e-6)


def test_activations_switch_on_in_step_three_and_the_model_reloads(tmp_path):
    torch.manual_seed(0)
    calib = [torch.randn(8, 3, 8, 8) for _ in range(2)]
    m, rec = apply(_net(), LearnedBitsConfig(a_bits=6), calib=calib)
    x = torch.randn(2, 3, 8, 8)
    before = m.eval()(x)
    assert enable_inputs_(m, calib, 2) == 2
    assert not torch.equal(before, m(x))  # inputs now quantized
    round_bits_(m)
    rows = bits_table(m)
    assert [r["a_bits"] for r in rows] == [6.0, 6.0] and [r["w_bits"] for r in rows] == [8.0, 8.0]
    rec.details["learned_bits"] = rows
    spec = InputSpec((1, 3, 8, 8))
    source = {"kind": "file", "path": str(Path(__file__)), "factory": "_net"}
    save_model(LoadedModel(m, source, spec, "lb", {}, [rec.to_dict()]), tmp_path / "m")
    back = load_saved(tmp_path / "m").model.eval()
    with torch.no_grad():
        assert torch.equal(m(x), back(x))
    assert [q.weight_q.bits for _, q in qat_layers(back)] == [8, 8]


def test_bad_configs_are_clear_errors():
    with pytest.raises(EdgeslimError, match="min_bits"):
        LearnedBitsConfig(min_bits=6, max_bits=4)
    with pytest.raises(EdgeslimError, match="target_bits"):
        LearnedBitsConfig(target_bits=9)
    with pytest.raises(EdgeslimError, match="regularizer"):
        LearnedBitsConfig(regularizer="flops")
