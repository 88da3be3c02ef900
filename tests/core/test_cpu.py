"""CPU facts: which integer kernels clip 8-bit weights, and what a PTQ config does about it."""

from hypothesis import given
from hypothesis import strategies as st

from edgeslim.core.configs import from_json, to_json
from edgeslim.core.cpu import cpu_model, cpu_summary, int8_pairs_saturate
from edgeslim.quant.config import PTQConfig, weight_spec

FLAGS = ["sse4_2", "avx", "avx2", "avx512f", "avx512bw", "fma", "f16c"]


@given(st.sets(st.sampled_from(FLAGS)))
def test_x86_without_vnni_saturates_and_any_vnni_or_amx_does_not(flags):
    assert int8_pairs_saturate(flags, "x86_64")
    for exact in ("avx512_vnni", "avx_vnni", "amx_int8"):
        assert not int8_pairs_saturate(flags | {exact}, "x86_64")
    assert not int8_pairs_saturate(flags, "aarch64")  # sdot/udot accumulate in int32


def test_the_pair_bound_that_7_bit_weights_keep():
    int16_max = 2**15 - 1
    assert 255 * 127 * 2 > int16_max >= 255 * 63 * 2  # u8 x s8 pairs: 8-bit clips, 7-bit not


def test_cpu_is_named_for_reports():
    assert cpu_model() and cpu_model() in cpu_summary()


def test_reduce_range_caps_only_8_bit_weights_and_is_stored():
    on = PTQConfig(reduce_range=True, overrides=(("low", weight_spec(4)),))
    assert on.weight_spec_for("conv").bits == 7 and on.weight_spec_for("low").bits == 4
    assert on.weight_spec_for("conv").qrange() == (-63, 63)
    off = PTQConfig(reduce_range=False)
    assert off.weight_spec_for("conv").bits == 8
    auto = PTQConfig()
    assert auto.reduce_range is int8_pairs_saturate()  # decided once, from this CPU
    assert from_json(PTQConfig, to_json(auto)) == auto  # a reload replays the decision
