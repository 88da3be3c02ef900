"""Each QAT quantizer against its paper: forward = quantize -> dequantize on its grid, gradients."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeslim.quant.primitives import fake_quantize
from edgeslim.quant.qat.binary import BinaryQuantizer
from edgeslim.quant.qat.common import Grid
from edgeslim.quant.qat.dorefa import DoReFaActQuantizer, DoReFaWeightQuantizer
from edgeslim.quant.qat.dsq import DSQQuantizer
from edgeslim.quant.qat.lsq import LSQQuantizer
from edgeslim.quant.qat.lsq_plus import LSQPlusActQuantizer, LSQPlusWeightQuantizer
from edgeslim.quant.qat.pact import PACTQuantizer
from edgeslim.quant.qat.ste import STEQuantizer
from edgeslim.quant.qat.ternary import TernaryQuantizer


def _ready(q, x):
    q.calibrate_on(x)
    return q.eval()


def _weight(seed=0, shape=(6, 4, 3, 3)):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * 0.3


def _act(seed=1, signed=False):
    x = torch.randn(8, 4, 5, 5, generator=torch.Generator().manual_seed(seed)) * 2
    return x if signed else x.relu()


# every quantizer, ready to use, with the tensor it quantizes
def _cases():
    w, a, sa = _weight(), _act(), _act(signed=True)
    return {
        "ste_w4": (STEQuantizer(4, channels=6), w),
        "ste_a4": (STEQuantizer(4), sa),
        "lsq_w4": (LSQQuantizer(4, is_weight=True), w),
        "lsq_w3_channel": (LSQQuantizer(3, channels=6, is_weight=True), w),
        "lsq_a4": (LSQQuantizer(4), a),
        "lsq_a4_signed": (LSQQuantizer(4), sa),
        "lsq_w4_mse": (LSQQuantizer(4, is_weight=True, init="mse"), w),
        "lsq_w3_channel_mse": (LSQQuantizer(3, channels=6, is_weight=True, init="mse"), w),
        "lsq_a4_mse": (LSQQuantizer(4, init="mse"), a),
        "lsq_plus_w4": (LSQPlusWeightQuantizer(4), w),
        "lsq_plus_a4": (LSQPlusActQuantizer(4), sa),
        "pact_a4": (PACTQuantizer(4), a),
        "pact_a4_signed": (PACTQuantizer(4), sa),
        "dorefa_w3": (DoReFaWeightQuantizer(3), w),
        "dorefa_a4": (DoReFaActQuantizer(4), a),
        "dsq_w3": (DSQQuantizer(3, channels=6), w),
        "dsq_a4": (DSQQuantizer(4), a),
        "binary": (BinaryQuantizer(), w),
        "ternary": (TernaryQuantizer(), w),
    }


CASES = sorted(_cases())
WEIGHT_DEPENDENT = {"binary", "ternary"}  # the grid's scale is a function of the weight


def _grid_of(name, q, x):
    return q.grid(x) if name in WEIGHT_DEPENDENT else q.grid()


def _axis(g):
    return 0 if g.scale.numel() > 1 else None


def _close_or_tie(out, ref, step):
    """Equal, except where x sat on a rounding tie (one step apart, a vanishing fraction)."""
    off = (out - ref).abs() > 1e-5 * max(1.0, float(ref.abs().max()))
    assert float(off.float().mean()) < 1e-3
    assert bool(((out - ref).abs()[off] <= step * 1.001 + 1e-6).all())


@pytest.mark.parametrize("name", CASES)
def test_forward_is_quantize_dequantize_on_its_grid(name):
    q, x = _cases()[name]
    q = _ready(q, x)
    g = _grid_of(name, q, x)
    with torch.no_grad():
        out = q(x)
        if name.startswith("dorefa_w"):  # the grid holds tanh-normalised weights
            n = 2**q.bits - 1
            t = torch.tanh(x)
            ref = 2 * torch.round((t / (2 * t.abs().max()) + 0.5) * n) / n - 1
        elif name == "binary":
            ref = x.abs().mean((1, 2, 3), keepdim=True) * torch.where(x >= 0, 1.0, -1.0)
        elif name == "ternary":
            flat = x.reshape(6, -1)
            delta = 0.7 * flat.abs().mean(1, keepdim=True)
            keep = flat.abs() > delta
            alpha = (flat.abs() * keep).sum(1, keepdim=True) / keep.sum(1, keepdim=True)
            ref = (alpha * torch.sign(flat) * keep).reshape(x.shape)
        elif name.startswith("dsq"):  # rounding onto [l, u] in steps of Delta
            u = q.upper.detach().abs()
            u = u.reshape(-1, 1, 1, 1) if u.numel() > 1 else u
            lo = -u if bool(q.signed) else torch.zeros_like(u)
            d = (u - lo) / (2**q.bits - 1)
            ref = lo + d * torch.clamp(torch.round((x - lo) / d), 0, 2**q.bits - 1)
        elif name == "lsq_plus_a4":  # a whole zero point: then it is exactly affine
            s, z = g.scale, g.zero_point
            with torch.no_grad():
                q.offset.copy_(-z.float() * s)
            out = q(x)
            ref = fake_quantize(x, s, z, g.qmin, g.qmax)
        else:
            ref = fake_quantize(x, g.scale, g.zero_point, g.qmin, g.qmax, _axis(g))
    step = float(g.scale.max())
    _close_or_tie(out, ref, step)
    # and the output lies on the grid the quantizer reports
    on = fake_quantize(out, g.scale, g.zero_point, g.qmin, g.qmax, _axis(g))
    _close_or_tie(on, out, 0.0)


def test_lsq_step_gradient_hand_computed():
    """Esser et al. eq. 3 on a 2-bit signed grid (Qn = 2, Qp = 1), s = 1, N = 4 weights."""
    q = LSQQuantizer(2, is_weight=True)
    q.initialized = True
    q.signed = True
    with torch.no_grad():
        q.step.fill_(1.0)
    x = torch.tensor([0.3, -0.6, 1.7, -3.0], requires_grad=True)
    q.train()(x).sum().backward()
    # inside: round(v/s) - v/s = -0.3, -0.4; above: Qp = 1; below: -Qn = -2; g = 1/sqrt(4 * 1)
    assert q.step.grad.item() == pytest.approx((-0.3 - 0.4 + 1 - 2) * 0.5)
    assert x.grad.tolist() == [1.0, 1.0, 0.0, 0.0]


def test_lsq_gradient_scale_is_one_over_sqrt_n_qp():
    q = _ready(LSQQuantizer(4, is_weight=True), _weight())
    x = _weight().requires_grad_(True)
    q.train()(x).sum().backward()
    scaled = q.step.grad.clone()
    q.step.grad = None
    q.eval()(x).sum().backward()  # no gradient scale outside training
    assert scaled.item() == pytest.approx(q.step.grad.item() / math.sqrt(x.numel() * 7))


def test_lsq_plus_offset_gradient_is_one_outside_the_range():
    q = LSQPlusActQuantizer(2)
    q.initialized = True
    with torch.no_grad():
        q.step.fill_(1.0)
        q.offset.fill_(-1.0)
    x = torch.tensor([-5.0, 0.2, 0.9, 9.0])  # (x - beta)/s: -4 below, 1.2 and 1.9 inside, 10 above
    q.eval()(x).sum().backward()
    assert q.offset.grad.item() == pytest.approx(2.0)
    # d/ds: 0 below (clamp at 0 codes), round(1.2) - 1.2 + round(1.9) - 1.9, 3 above
    assert q.step.grad.item() == pytest.approx(-0.2 + 0.1 + 3)


@pytest.mark.parametrize("signed", [False, True])
def test_pact_alpha_gradient_counts_clipped_values(signed):
    q = PACTQuantizer(4)
    q.initialized = True
    q.signed = signed
    with torch.no_grad():
        q.alpha.fill_(1.0)
    x = torch.tensor([-2.0, -0.5, 0.0, 0.4, 1.0, 1.5, 3.0], requires_grad=True)
    q.train()(x).sum().backward()
    above, below = int((x >= 1).sum()), int((x <= -1).sum())
    assert q.alpha.grad.item() == (above - below if signed else above)
    inside = (x.abs() < 1) if signed else ((x >= 0) & (x < 1))
    assert x.grad.tolist() == inside.float().tolist()


def test_ste_passes_gradient_inside_the_range_and_none_outside():
    q = _ready(STEQuantizer(4), torch.tensor([[0.0, 1.5]]))
    x = torch.tensor([-1.0, 0.2, 0.77, 1.4, 3.0], requires_grad=True)
    q(x).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]


def test_binary_gradient_is_xnor_formula():
    w = _weight(3, (3, 5)).mul(4).requires_grad_(True)  # some |w| > 1: no sign gradient there
    g = torch.randn(3, 5, generator=torch.Generator().manual_seed(4))
    q = BinaryQuantizer()
    q.initialized = True
    (q(w) * g).sum().backward()
    wd = w.detach()
    alpha = wd.abs().mean(1, keepdim=True)
    sign = torch.where(wd >= 0, 1.0, -1.0)
    ref = g * alpha * (wd.abs() <= 1) + sign * (g * sign).sum(1, keepdim=True) / wd.shape[1]
    torch.testing.assert_close(w.grad, ref)


def test_ternary_gradient_is_straight_through():
    w = _weight(5, (4, 9)).requires_grad_(True)
    g = torch.randn(4, 9, generator=torch.Generator().manual_seed(6))
    q = TernaryQuantizer()
    q.initialized = True
    (q(w) * g).sum().backward()
    torch.testing.assert_close(w.grad, g)


def test_dsq_gradient_at_an_interval_centre():
    """dQ_S/dx at m_i is Delta s k / 2 = log(2/alpha - 1) / (2 (1 - alpha)) (Gong et al.)."""
    q = DSQQuantizer(2)
    q.initialized = True
    with torch.no_grad():
        q.upper.fill_(3.0)  # unsigned: [0, 3], Delta = 1, centres 0.5, 1.5, 2.5
    x = torch.tensor([0.5, 1.5, 2.5, 4.0], requires_grad=True)
    q.train()(x).sum().backward()
    slope = math.log(2 / 0.2 - 1) / (2 * (1 - 0.2))
    assert x.grad[:3].tolist() == pytest.approx([slope] * 3, rel=1e-5)
    assert x.grad[3].item() == 0.0  # clipped: no gradient to x
    assert q.alpha.grad is not None and q.alpha.grad.item() != 0.0
    assert q.upper.grad is not None


def test_dsq_soft_forward_is_off_the_grid():
    q = DSQQuantizer(2, soft_forward=True)
    q.initialized = True
    with torch.no_grad():
        q.upper.fill_(3.0)
    x = torch.tensor([0.3, 1.2, 2.9])
    soft, hard = q.train()(x), q.eval()(x)
    assert torch.equal(hard, torch.tensor([0.0, 1.0, 3.0]))
    assert not torch.equal(soft, hard)


values = st.lists(st.floats(-50, 50, allow_nan=False, width=32), min_size=6, max_size=6).map(
    lambda v: torch.tensor(v).reshape(2, 3)
)


@settings(max_examples=30, deadline=None)
@given(values, st.sampled_from(CASES))
def test_outputs_lie_on_the_grid_and_are_idempotent(x, name):
    q, _ = _cases()[name]
    if isinstance(q, LSQQuantizer) and q.per_channel:
        q = LSQQuantizer(q.bits, channels=2, is_weight=True)
    elif q.per_channel:  # STE, DSQ: one range per row of x
        q = type(q)(q.bits, channels=2)
    q = _ready(q, x)
    g = _grid_of(name, q, x)
    if g is None:  # a signed DSQ input: odd multiples of Delta / 2, no rounding grid of x
        n = 2**q.bits - 1
        g = Grid(q.upper.detach().abs() / n, torch.zeros(1, dtype=torch.int32), -n, n)
    with torch.no_grad():
        y = q(x)
        tol = 1e-4 * max(1.0, float(x.abs().max()))
        if name.startswith("lsq_plus_a"):  # on the grid shifted by the continuous offset beta
            codes = (y - q.offset) / q.step.abs()
            assert float((codes - codes.round()).abs().max()) <= tol
            assert float(codes.min()) >= -tol and float(codes.max()) <= g.qmax + tol
        else:
            on = fake_quantize(y, g.scale, g.zero_point, g.qmin, g.qmax, _axis(g))
            assert float((on - y).abs().max()) <= tol
        if not name.startswith(("dorefa_w", "lsq_plus_a")):  # tanh renormalises; beta is off-grid
            assert float((q(y) - y).abs().max()) <= tol


def _sq_err(x, step, qmin, qmax):
    return float(((torch.clamp(torch.round(x / step), qmin, qmax) * step - x) ** 2).sum())


@pytest.mark.parametrize("bits", [2, 3, 4])
@pytest.mark.parametrize("signed", [True, False])
def test_lsq_mse_init_matches_a_brute_force_step_search(bits, signed):
    """Oracle: the step a dense search over every candidate finds, on the data itself."""
    g = torch.Generator().manual_seed(bits)
    x = torch.randn(20_000, generator=g) * 0.5
    x[:20] *= 12  # heavy tails: the max-abs grid is far from the best one
    x = x if signed else x.relu()
    q = LSQQuantizer(bits, is_weight=signed, init="mse")
    q.calibrate_on(x)
    qmin, qmax = q.qrange()
    amax = float(x.abs().max())
    cands = torch.linspace(amax / 2000, amax / max(qmax, 1), 4000)
    best = min(_sq_err(x, float(s), qmin, qmax) for s in cands)
    got = _sq_err(x, float(q.step), qmin, qmax)
    assert got <= best * 1.02  # within the histogram's resolution of the best grid
    paper = LSQQuantizer(bits, is_weight=signed)
    paper.calibrate_on(x)
    assert got <= _sq_err(x, float(paper.step), qmin, qmax)


def test_lsq_mse_init_is_per_channel_and_leaves_no_calibration_state():
    w = _weight(3)
    w[0] *= 10  # one channel far wider than the rest
    q = LSQQuantizer(4, channels=6, is_weight=True, init="mse")
    q.calibrate_on(w)
    assert q.step.shape == (6,) and float(q.step[0]) > 5 * float(q.step[1:].max())
    assert not q._mse and set(q.state_dict()) == {"flags", "step"}


def test_lsq_config_rejects_an_unknown_init():
    from edgeslim.core.errors import EdgeslimError
    from edgeslim.quant.qat.lsq import LSQConfig

    with pytest.raises(EdgeslimError, match="init"):
        LSQConfig(init="maxabs")
