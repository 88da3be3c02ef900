"""QAT models export as INT8 QDQ when they are on the 8-bit grid; the rest is refused clearly."""

import pytest
import torch

from edgeslim.core.cpu import int8_pairs_saturate
from edgeslim.core.errors import EdgeslimError
from edgeslim.core.methods import apply
from edgeslim.export.onnx import ort_outputs, ort_session
from edgeslim.models.inputs import InputSpec
from edgeslim.quant.qat import CONFIGS, check_exportable, export_qat_qdq, harden_
from edgeslim.quant.qdq import QDQ_ATOL

SPEC = InputSpec((1, 3, 8, 8))
# x86 CPUs without VNNI saturate u8 x s8 pairs of full-range 8-bit weights (edgeslim.core.cpu)
W8 = 7 if int8_pairs_saturate() else 8
FIRST = ("stem.0",)  # PACT/DSQ quantize the signed network input on a narrow grid: keep it float

EXPORTABLE = {  # method: (config, hardened first)
    "ste_w8a8": (CONFIGS["ste"](w_bits=W8, a_bits=8), False),
    "lsq_w8a8": (CONFIGS["lsq"](w_bits=W8, a_bits=8), False),
    "pact_w8a8": (CONFIGS["pact"](w_bits=W8, a_bits=8, exclude=FIRST), False),
    "binary_a8": (CONFIGS["binary"](a_bits=8), True),
    "dsq_w4a8": (CONFIGS["dsq"](w_bits=4, a_bits=8, exclude=FIRST), True),
}


def _calib(loader, n=2):
    return [x for (x, _), _ in zip(loader, range(n), strict=False)]


@pytest.mark.parametrize("case", sorted(EXPORTABLE))
def test_int8_qat_model_exports_and_ort_agrees(case, trained, digits, tmp_path):
    cfg, harden = EXPORTABLE[case]
    model, _ = apply(trained("resnet_tiny"), cfg, calib=_calib(digits[0]))
    if harden:
        with pytest.raises(EdgeslimError, match=r"harden_\(\) first"):
            check_exportable(model)
        harden_(model)
    res = export_qat_qdq(model, SPEC, tmp_path / "m.onnx")  # checks ORT vs the conversion
    assert res.quantized_weights == 4 - (1 if cfg.exclude else 0)
    assert res.activation_qdq >= 3
    # and ORT against the QAT model itself (the conversion adds the int32 bias rounding)
    x = next(iter(digits[2]))[0][:32]
    with torch.no_grad():
        ref = model.eval()(x)
    got = torch.from_numpy(next(iter(ort_outputs(ort_session(res.path), x.numpy()).values())))
    assert float((got - ref).abs().max()) <= QDQ_ATOL * max(1.0, float(ref.abs().max()))
    assert float((got.argmax(1) == ref.argmax(1)).float().mean()) >= 0.95


@pytest.mark.parametrize(
    "method, kw, match",
    [
        ("lsq", {"w_bits": 4, "a_bits": 4}, "4-bit activations .* simulated only"),
        ("dorefa", {"w_bits": 4, "a_bits": 8}, r"DoReFaWeightQuantizer .*harden_\(\) first"),
        ("ternary", {}, r"TernaryQuantizer .*harden_\(\) first"),
        ("lsq_plus", {"w_bits": 8, "a_bits": 8}, r"LSQPlusActQuantizer .*harden_\(\) first"),
        ("dorefa", {"w_bits": 8, "a_bits": 8, "exclude": FIRST}, "do not fit int8"),
    ],
)
def test_off_grid_or_low_bit_models_are_refused(method, kw, match, trained, digits):
    model, _ = apply(trained("resnet_tiny"), CONFIGS[method](**kw), calib=_calib(digits[0]))
    if "fit int8" in match:  # hardened, but 8-bit DoReFa weights are 9-bit odd codes
        with pytest.raises(EdgeslimError, match=match):
            harden_(model)
            check_exportable(model)
        return
    with pytest.raises(EdgeslimError, match=match):
        check_exportable(model)


@pytest.mark.parametrize("method", ["binary", "ternary", "dorefa", "dsq"])
def test_hardening_keeps_the_outputs(method, trained, digits):
    kw = {} if method in ("binary", "ternary") else {"w_bits": 3, "a_bits": 4, "exclude": FIRST}
    model, _ = apply(trained("resnet_tiny"), CONFIGS[method](**kw), calib=_calib(digits[0]))
    x = next(iter(digits[2]))[0][:32]
    with torch.no_grad():
        before = model.eval()(x)
        info = harden_(model)
        after = model(x)
    assert info["layers"] >= 3  # every quantized weight (DoReFa activations are affine already)
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)


def test_signed_dsq_input_cannot_be_hardened(trained, digits):
    cfg = CONFIGS["dsq"](w_bits=4, a_bits=8)  # the network's input is signed
    model, _ = apply(trained("resnet_tiny"), cfg, calib=_calib(digits[0]))
    with pytest.raises(EdgeslimError, match="'stem.0': its input quantizer .* no integer grid"):
        harden_(model)
