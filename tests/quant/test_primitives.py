"""Property tests of the affine quantization math (Hypothesis)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeslim.quant.primitives import (
    choose_qparams,
    dequantize,
    fake_quantize,
    fake_quantize_groups,
    qrange,
    quantize,
    sqnr_db,
)

bits_st = st.integers(2, 8)
floats = st.floats(-1e3, 1e3, allow_nan=False, width=32)


@st.composite
def case(draw):
    bits = draw(bits_st)
    signed = draw(st.booleans())
    symmetric = draw(st.booleans()) if signed else False
    pow2 = draw(st.booleans())
    lo = draw(st.floats(-100, 0, allow_nan=False, width=32))
    hi = draw(st.floats(0, 100, allow_nan=False, width=32))
    xs = draw(st.lists(floats, min_size=1, max_size=64))
    return bits, signed, symmetric, pow2, lo, hi, torch.tensor(xs)


def _params(bits, signed, symmetric, pow2, lo, hi):
    qmin, qmax = qrange(bits, signed, narrow=signed and symmetric)
    s, z = choose_qparams(
        torch.tensor(lo), torch.tensor(hi), qmin, qmax, symmetric=symmetric, pow2=pow2
    )
    return qmin, qmax, s, z


@settings(max_examples=200, deadline=None)
@given(case())
def test_error_at_most_half_scale_inside_range(c):
    bits, signed, symmetric, pow2, lo, hi, x = c
    qmin, qmax, s, z = _params(bits, signed, symmetric, pow2, lo, hi)
    rep_lo, rep_hi = float((qmin - z) * s), float((qmax - z) * s)
    inside = (x >= rep_lo) & (x <= rep_hi)
    err = (fake_quantize(x, s, z, qmin, qmax) - x).abs()[inside]
    assert bool((err <= s / 2 * (1 + 1e-5) + 1e-6).all())


@settings(max_examples=200, deadline=None)
@given(case())
def test_idempotent_and_zero_exact_and_clamped(c):
    bits, signed, symmetric, pow2, lo, hi, x = c
    qmin, qmax, s, z = _params(bits, signed, symmetric, pow2, lo, hi)
    once = fake_quantize(x, s, z, qmin, qmax)
    assert torch.equal(fake_quantize(once, s, z, qmin, qmax), once)
    assert float(fake_quantize(torch.zeros(1), s, z, qmin, qmax)) == 0.0
    q = quantize(x, s, z, qmin, qmax)
    assert bool((q >= qmin).all() and (q <= qmax).all())
    assert torch.equal(q, q.round())
    # values beyond the range clamp to the end codes
    big = torch.tensor([1e9, -1e9])
    qb = quantize(big, s, z, qmin, qmax)
    assert qb.tolist() == [qmax, qmin]


@settings(max_examples=100, deadline=None)
@given(bits_st, st.floats(0.0010000000474974513, 100, width=32))
def test_symmetric_zero_point_and_pow2(bits, amax):
    qmin, qmax = qrange(bits, True, narrow=True)
    s, z = choose_qparams(
        torch.tensor(-amax), torch.tensor(amax / 2), qmin, qmax, symmetric=True, pow2=True
    )
    assert int(z) == 0
    e = math.log2(float(s))
    assert e == round(e)  # a power of two
    assert float(s) * qmax >= amax * (1 - 1e-6)  # rounded up: nothing extra is clipped


def test_qrange_and_bad_bits():
    assert qrange(8, True) == (-128, 127)
    assert qrange(2, False) == (0, 3)
    with pytest.raises(Exception, match="bit width"):
        qrange(1, True)


def test_per_channel_matches_per_tensor_rows():
    w = torch.randn(4, 3, 3, 3)
    qmin, qmax = qrange(8, True, narrow=True)
    lo, hi = w.flatten(1).amin(1), w.flatten(1).amax(1)
    s, z = choose_qparams(lo, hi, qmin, qmax, symmetric=True)
    got = fake_quantize(w, s, z, qmin, qmax, axis=0)
    for c in range(4):
        ref = fake_quantize(w[c], s[c], z[c], qmin, qmax)
        assert torch.equal(got[c], ref)
    assert torch.equal(dequantize(quantize(w, s, z, qmin, qmax, 0), s, z, 0), got)


def test_per_channel_tensor_qrange_and_groups():
    w = torch.randn(2, 16)
    qmax = torch.tensor([1.0, 127.0])  # 2 bits and 8 bits per channel
    s, z = choose_qparams(w.amin(1), w.amax(1), -qmax, qmax, symmetric=True)
    q = quantize(w, s, z, -qmax, qmax, axis=0)
    assert set(q[0].unique().tolist()) <= {-1.0, 0.0, 1.0}
    g = fake_quantize_groups(w, 4, -7, 7, symmetric=True)
    assert g.shape == w.shape and sqnr_db(w, g) > 10
    assert sqnr_db(w, fake_quantize_groups(w, 4, -127, 127, symmetric=True)) > sqnr_db(w, g)


def test_matches_torch_fake_quantize():
    x = torch.randn(10_000) * 3
    s, z = choose_qparams(x.min(), x.max(), 0, 255, symmetric=False)
    ref = torch.fake_quantize_per_tensor_affine(x, float(s), int(z), 0, 255)
    ours = fake_quantize(x, s, z, 0, 255)
    assert float((ref - ours).abs().max()) <= float(s) * 1.0001
    assert float((ref != ours).float().mean()) < 1e-3  # only x/s vs x*(1/s) rounding ties
