"""The one table of layer types: every entry is complete and round-trips.

For every registered type: each part exists (or says why not), the twin is a
drop-in subclass, the codec rebuilds the layer, and a small model made of it goes
prune -> save -> reload -> quantize -> save -> reload -> export with ONNX Runtime
parity.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from layer_models import MODELS

import edgeslim.quant  # noqa: F401  (registers the PTQ method)
from edgeslim.core.layer_types import PARTS, layer_types
from edgeslim.core.methods import apply
from edgeslim.export.ort import ort_run, ort_session
from edgeslim.models.inputs import InputSpec
from edgeslim.models.saved import load_saved, save_model
from edgeslim.models.spec import LoadedModel, build_source
from edgeslim.prune.config import PruneConfig
from edgeslim.prune.structured import prune_
from edgeslim.quant import PTQConfig
from edgeslim.quant.qdq import export_qdq

FILE = Path(__file__).with_name("layer_models.py")
BUILTIN = [e for e in layer_types() if e.key.startswith(("torch.", "edgeslim."))]


def _source(name: str) -> dict:
    return {"kind": "file", "path": str(FILE), "factory": MODELS[name][0]}


def _spec(name: str) -> InputSpec:
    _, shape, dtype = MODELS[name]
    return InputSpec(shape, dtype, 50 if dtype == "int64" else None)


def _randomize_(model: torch.nn.Module) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            for attr in ("weight", "running_var"):
                t = getattr(m, attr, None)
                if isinstance(t, torch.Tensor) and t.dim() == 1:
                    t.copy_(0.5 + torch.rand(t.shape, generator=gen))
    return model.eval()


def test_every_builtin_type_has_a_test_model():
    assert {e.name for e in BUILTIN} == set(MODELS)


@pytest.mark.parametrize("entry", BUILTIN, ids=lambda e: e.name)
def test_every_part_exists_or_says_why_not(entry):
    why = dict(entry.why_not)
    for part in PARTS:
        assert getattr(entry, part) is not None or why.get(part), (entry.name, part)
    cls = entry.resolve()
    model = build_source(_source(entry.name))
    layer = next(m for m in model.modules() if type(m) is cls)
    assert entry.codec.build(entry.codec.describe(layer)).__class__ is cls
    assert entry.codec.describe(entry.codec.build(entry.codec.describe(layer))) == (
        entry.codec.describe(layer)
    )
    if entry.twin is not None:
        twin = entry.twin_class()
        assert issubclass(twin, cls) and hasattr(twin, "from_float")
    if entry.coding is not None:
        assert isinstance(getattr(layer, entry.coding.param), torch.nn.Parameter)
    if entry.layout is not None:
        for attr, axis in entry.layout.out + entry.layout.inp:
            t = getattr(layer, attr, None)
            assert t is None or axis < t.dim()


def _parity(model, spec, path) -> float:
    x = spec.example(batch=2)
    sess = ort_session(path)
    got = np.asarray(ort_run(sess, x.numpy()))
    with torch.no_grad():
        want = model(x).numpy()
    return float(np.abs(got - want).max() / (np.abs(want).max() + 1e-6))


@pytest.mark.parametrize("entry", BUILTIN, ids=lambda e: e.name)
def test_model_round_trips_prune_save_reload_quantize_export(entry, tmp_path):
    spec = _spec(entry.name)
    model = _randomize_(build_source(_source(entry.name)))
    prune_(model, spec.example(batch=2), PruneConfig(ratio=0.5))
    x = spec.example(batch=2)
    lm = LoadedModel(model, _source(entry.name), spec, entry.name)
    save_model(lm, tmp_path / "pruned")
    back = load_saved(tmp_path / "pruned")
    with torch.no_grad():
        torch.testing.assert_close(back.model(x), model(x), rtol=0, atol=0)
    calib = [spec.example(batch=4) for _ in range(2)]
    qmodel, rec = apply(back.model, PTQConfig(calib_batches=2), calib=calib)
    save_model(
        LoadedModel(qmodel, back.source, spec, entry.name, {}, [rec.to_dict()]), tmp_path / "q"
    )
    qback = load_saved(tmp_path / "q").model
    with torch.no_grad():
        torch.testing.assert_close(qback(x), qmodel(x), rtol=0, atol=0)
    res = export_qdq(qback, spec, tmp_path / "int8.onnx")
    assert _parity(qback, spec, res.path) < 0.05  # relative to the largest output
