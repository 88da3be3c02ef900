"""The method registry: one verb, a config, a handler; overrides; records that round-trip."""

from dataclasses import dataclass

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import edgeslim.quant  # noqa: F401  (registers the quantization methods)
from edgeslim.core.configs import from_json, to_json
from edgeslim.core.errors import EdgeslimError
from edgeslim.core.methods import (
    METHODS,
    Method,
    MethodConfig,
    Record,
    apply,
    apply_,
    register_method,
)
from edgeslim.quant import HalfConfig, KMeansConfig, PowerOfTwoConfig, PTQConfig, weight_spec
from edgeslim.quant.kmeans import kmeans_1d
from edgeslim.quant.log2 import pow2_fit, pow2_quantize


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4)
    )


@dataclass(frozen=True)
class _Scale(MethodConfig):
    factor: float = 2.0


@register_method(_Scale, "test_scale")
class _ScaleMethod(Method):
    def apply_(self, model, config, layers, calib):
        for name, mod, cfg in layers.select(model, (nn.Linear,)):
            with torch.no_grad():
                mod.weight.mul_(cfg.factor)
            layers.done(name, cfg)
        return model, {"calib": calib}


def test_every_quantization_method_is_registered():
    assert {"ptq", "power_of_two", "kmeans", "half"} <= set(METHODS.names())


def test_registering_a_config_type_or_a_name_twice_raises():
    with pytest.raises(ValueError, match="already"):
        register_method(_Scale, "another_name")(type("M", (Method,), {}))

    @dataclass(frozen=True)
    class Other(MethodConfig):
        pass

    with pytest.raises(ValueError, match="already"):
        register_method(Other, "test_scale")(type("M", (Method,), {}))


def test_unknown_config_type_is_a_clear_error():
    @dataclass(frozen=True)
    class Unregistered(MethodConfig):
        pass

    with pytest.raises(EdgeslimError, match="no compression method is registered"):
        apply_(mlp(), Unregistered())


def test_overrides_first_match_wins_none_skips_then_filter_fn():
    m = mlp()
    ref = [m[i].weight.clone() for i in (0, 2, 4)]
    out, rec = apply_(
        m,
        _Scale(2.0),
        overrides={"4": _Scale(3.0), r"[0-9]": None, "0": _Scale(5.0)},  # "0" is never reached
        filter_fn=lambda mod, name: True,
        calib="data",
    )
    assert out is m and rec.details == {"calib": "data"}
    assert rec.layers == {"4": _Scale(3.0)}
    torch.testing.assert_close(m[4].weight, 3 * ref[2])
    torch.testing.assert_close(m[0].weight, ref[0])
    _, rec = apply_(mlp(), _Scale(), filter_fn=lambda mod, name: mod.out_features == 16)
    assert list(rec.layers) == ["0", "2"]


def test_override_of_another_method_or_a_bad_regex_is_refused():
    with pytest.raises(EdgeslimError, match="own call"):
        apply_(mlp(), _Scale(), overrides={"0": KMeansConfig()})
    with pytest.raises(EdgeslimError, match="bad layer pattern"):
        apply_(mlp(), _Scale(), overrides={"(": None})


def test_apply_copies_apply_underscore_mutates():
    m = mlp()
    before = m[0].weight.clone()
    new, _ = apply(m, _Scale(2.0))
    assert torch.equal(m[0].weight, before) and torch.equal(new[0].weight, 2 * before)
    apply_(m, _Scale(2.0))
    assert torch.equal(m[0].weight, 2 * before)


def test_weight_codings_match_their_math():
    m = mlp()
    p2, rec = apply(m, PowerOfTwoConfig(bits=4), overrides={"4": None})
    q, s = pow2_fit(m[0].weight, 4)
    torch.testing.assert_close(p2[0].weight, s * q)
    plain, _ = apply(m, PowerOfTwoConfig(bits=4, scale=False))
    torch.testing.assert_close(plain[0].weight, pow2_quantize(m[0].weight, 4))
    assert torch.equal(p2[4].weight, m[4].weight) and set(rec.layers) == {"0", "2"}
    assert rec.details["storage"]["ratio"] > 1
    km, rec = apply(m, KMeansConfig(bits=2))
    c, a = kmeans_1d(m[2].weight.detach(), 4)
    torch.testing.assert_close(km[2].weight, c[a].reshape(m[2].weight.shape))
    assert set(rec.layers) == {"0", "2", "4"}


def test_half_refuses_per_layer_choices():
    h, rec = apply(mlp(), HalfConfig("fp16"))
    assert h.model[0].weight.dtype == torch.float16 and rec.details["wrapped_as"] == "model"
    with pytest.raises(EdgeslimError, match="whole model"):
        apply(mlp(), HalfConfig(), overrides={"0": None})


def test_record_round_trips_through_json():
    cfg = PTQConfig(weight=weight_spec(4), exclude=("fc",), overrides=(("a", None),))
    rec = Record("ptq", cfg, {"x": cfg, "y": PTQConfig()}, {"graph_mode": "export"})
    d = rec.to_dict()
    assert len(d["layer_configs"]) == 2
    back = Record.from_dict(d)
    assert back.config == cfg and back.layers == rec.layers and back.details == rec.details


@settings(max_examples=30, deadline=None)
@given(
    bits=st.integers(2, 8),
    exclude=st.lists(st.text("abc.", min_size=1, max_size=4), max_size=3),
    calib=st.integers(1, 64),
    bc=st.booleans(),
)
def test_ptq_config_json_round_trip(bits, exclude, calib, bc):
    cfg = PTQConfig(
        weight=weight_spec(bits),
        activation=None,
        calib_batches=calib,
        bias_correction=bc,
        exclude=tuple(exclude),
        overrides=((r"layer\d", weight_spec(8)), ("fc", None)),
    )
    assert from_json(PTQConfig, to_json(cfg)) == cfg


def test_from_json_rejects_unknown_keys():
    with pytest.raises(EdgeslimError, match="unknown keys"):
        from_json(PowerOfTwoConfig, {"bits": 4, "bitz": 5})
