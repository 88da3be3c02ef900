"""Fuzz saved-model directories with Hypothesis (issue 17).

A saved model (``edgeslim_model.json`` + ``model.safetensors``) is damaged at random:
truncated or byte-flipped manifest, manifest fields replaced by random JSON, truncated
or scrambled safetensors, tensors of the wrong shape or dtype, extra or missing keys,
NaN weights. Loading must give the model back or raise :class:`EdgeslimError`, never
another exception; through the CLI a damaged model exits non-zero with no traceback
and writes nothing at the output path.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from edgeslim.cli.main import main
from edgeslim.core import EdgeslimError
from edgeslim.models.saved import MANIFEST, WEIGHTS, load_saved, save_model
from edgeslim.models.spec import load_model

FAST = settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
SLOW = settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))

json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**64), max_value=2**64),
        st.floats(allow_nan=False),
        st.text(max_size=12),
        st.sampled_from(["zoo", "file", "hf", "tv", "seg_tiny", "resnet20", "../x"]),
    ),
    lambda kids: st.one_of(
        st.lists(kids, max_size=3), st.dictionaries(st.text(max_size=8), kids, max_size=3)
    ),
    max_leaves=8,
)
FIELDS = ["format", "format_version", "name", "source", "input", "modules", "methods", "meta"]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return save_model(load_model("seg_tiny"), tmp_path_factory.mktemp("saved") / "m")


def _copy(pristine, tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz") / "m"
    shutil.copytree(pristine, d)
    return d


@st.composite
def damage(draw):
    kind = draw(
        st.sampled_from(
            ["truncate_json", "flip_json", "field", "source_field", "truncate_st", "flip_st"]
            + ["shape", "dtype", "extra", "missing", "nan"]
        )
    )
    return kind, draw(st.integers(min_value=0, max_value=10**9)), draw(json_values)


def _apply(d, kind, n, value):
    man, wts = d / MANIFEST, d / WEIGHTS
    if kind in ("truncate_json", "flip_json", "truncate_st", "flip_st"):
        f = man if kind.endswith("json") else wts
        raw = bytearray(f.read_bytes())
        i = n % len(raw)
        if kind.startswith("truncate"):
            raw = raw[:i]
        else:
            raw[i] ^= 1 << (n % 8)
        f.write_bytes(bytes(raw))
    elif kind in ("field", "source_field"):
        m = json.loads(man.read_text())
        if kind == "field":
            m[FIELDS[n % len(FIELDS)]] = value
        else:
            m["source"][["kind", "name", "num_classes"][n % 3]] = value
        man.write_text(json.dumps(m))
    else:
        sd = load_file(wts)
        key = sorted(sd)[n % len(sd)]
        t = sd[key]
        if kind == "shape":
            sd[key] = torch.zeros(tuple(s + 1 for s in t.shape) or (2,), dtype=t.dtype)
        elif kind == "dtype":
            sd[key] = t.to([torch.int32, torch.bool, torch.float16, torch.uint8][n % 4])
        elif kind == "extra":
            sd["not.a.layer"] = torch.zeros(3)
        elif kind == "missing":
            del sd[key]
        elif kind == "nan" and t.is_floating_point() and t.numel():
            sd[key] = t.clone().fill_(float("nan"))
        save_file(sd, wts)


def _loads_or_refuses(d) -> bool:
    """True when the damage was refused; an exception other than EdgeslimError fails."""
    try:
        load_saved(d)
    except EdgeslimError as e:
        assert str(e), "empty message"
        return True
    return False


def test_pristine_loads(pristine):
    assert load_saved(pristine).name == "seg_tiny"


@FAST
@given(damage())
def test_damaged_saved_model_is_loaded_or_clearly_refused(pristine, tmp_path_factory, dmg):
    d = _copy(pristine, tmp_path_factory)
    _apply(d, *dmg)
    _loads_or_refuses(d)


@pytest.mark.parametrize("kind", ["shape", "extra", "missing", "nan"])
def test_each_weight_mismatch_is_refused(pristine, tmp_path_factory, kind):
    d = _copy(pristine, tmp_path_factory)
    _apply(d, kind, 0, None)
    with pytest.raises(EdgeslimError, match=str(d)):
        load_saved(d)


def test_integer_weights_for_float_layers_are_refused(pristine, tmp_path_factory):
    d = _copy(pristine, tmp_path_factory)
    sd = load_file(d / WEIGHTS)
    key = next(k for k, t in sorted(sd.items()) if t.is_floating_point())
    sd[key] = sd[key].to(torch.int32)
    save_file(sd, d / WEIGHTS)
    with pytest.raises(EdgeslimError, match="dtype"):
        load_saved(d)


@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
@given(damage())
def test_cli_damaged_model_exits_cleanly(pristine, tmp_path_factory, capsys, dmg):
    d = _copy(pristine, tmp_path_factory)
    _apply(d, *dmg)
    assume(_loads_or_refuses(d))
    out = d.parent / "out.onnx"
    code = main(["export", str(d), "-o", str(out)])
    err = capsys.readouterr().err
    assert code != 0 and err.startswith("edgeslim: error:") and "Traceback" not in err
    assert not out.exists() and not list(d.parent.glob(".out.onnx*"))


@pytest.mark.slow
@SLOW
@given(damage())
def test_saved_model_fuzz_long(pristine, tmp_path_factory, dmg):
    d = _copy(pristine, tmp_path_factory)
    _apply(d, *dmg)
    _loads_or_refuses(d)
