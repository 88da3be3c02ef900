"""A factorized zoo model is a plain model: it saves, reloads, exports, quantizes and prunes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from edgeslim.core.methods import apply
from edgeslim.core.select import matches
from edgeslim.export.onnx import export_onnx
from edgeslim.export.ort import ort_run, ort_session
from edgeslim.lowrank import (
    CPConfig,
    CPNotConvergedWarning,
    DWSConfig,
    RankRule,
    SpatialSVDConfig,
    SVDConfig,
    Tucker2Config,
)
from edgeslim.models.saved import load_saved, save_model
from edgeslim.models.spec import LoadedModel, load_model


def _in_stage3(module, name: str) -> bool:
    return matches(name, r"layer3\..*")  # the 64-channel stage: the MACs worth factorizing


CONFIGS = {
    "svd": (SVDConfig(RankRule(rank=4)), {}),
    "tucker2": (Tucker2Config(RankRule(ratio=0.4)), {"filter_fn": _in_stage3}),
    "spatial": (SpatialSVDConfig(RankRule(energy=0.8)), {"filter_fn": _in_stage3}),
    "dws": (DWSConfig(RankRule(rank=2)), {"filter_fn": _in_stage3}),
    # CP (ALS) is the slow one: two layers, few sweeps
    "cp": (
        CPConfig(RankRule(ratio=0.3), n_iter_max=20),
        {"filter_fn": lambda m, n: n in ("layer3.0.conv1", "layer3.2.conv2")},
    ),
}


@pytest.fixture(scope="module")
def resnet20() -> LoadedModel:
    torch.manual_seed(0)
    return load_model("resnet20")


def _factorized(lm: LoadedModel, method: str) -> LoadedModel:
    config, kwargs = CONFIGS[method]
    model, rec = apply(lm.model, config, **kwargs)
    assert rec.layers, rec.details["skipped"]
    assert rec.details["params_after"] < rec.details["params_before"]
    return dataclasses.replace(lm, model=model.eval(), methods=[rec.to_dict()])


def _every_method(lm: LoadedModel) -> LoadedModel:
    """Each method on its own layers of one model, applied one after the other."""
    layers = {
        "svd": None,
        "tucker2": r"layer1\..*",
        "spatial": r"layer2\..*",
        "dws": "layer3.0.conv1",
        "cp": "layer3.2.conv2",
    }
    model, methods = lm.model, []
    for method, pattern in layers.items():
        config, _ = CONFIGS[method]
        only = {} if pattern is None else {"filter_fn": lambda m, n, p=pattern: matches(n, p)}
        model, rec = apply(model, config, **only)
        assert rec.layers, method
        methods.append(rec.to_dict())
    return dataclasses.replace(lm, model=model.eval(), methods=methods)


@pytest.fixture(scope="module")
def mixed(resnet20) -> LoadedModel:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CPNotConvergedWarning)
        return _every_method(resnet20)


def test_every_method_in_one_model_reloads_and_matches_onnx_runtime(mixed, tmp_path):
    """Five records replayed in order on reload give bit-identical outputs; ORT agrees."""
    x = mixed.input.example(batch=3, seed=1)
    with torch.no_grad():
        want = mixed.model(x)
    back = load_saved(save_model(mixed, tmp_path / "m"))
    assert [m["method"] for m in back.methods] == [
        "lowrank_svd",
        "lowrank_tucker2",
        "lowrank_spatial",
        "lowrank_dws",
        "lowrank_cp",
    ]
    with torch.no_grad():
        assert torch.equal(back.model(x), want)
    res = export_onnx(back.model, mixed.input, tmp_path / "m.onnx")  # checks parity itself
    assert res.max_abs_diff < 1e-4
    got = ort_run(ort_session(res.path), x.numpy())
    np.testing.assert_allclose(got, want.numpy(), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(
    "full",
    [False, pytest.param(True, marks=pytest.mark.slow)],
    ids=["weights", "weights+activations"],
)
def test_a_factorized_model_quantizes_and_reloads(resnet20, tmp_path, full):
    """The factor convs get fake-quant twins; the reload replays lowrank, then PTQ."""
    from edgeslim.quant import PTQConfig

    lm = _factorized(resnet20, "tucker2")
    calib = [lm.input.example(batch=8, seed=s) for s in range(2)]
    cfg = PTQConfig(calib_batches=2) if full else PTQConfig(activation=None, fold_bn=False)
    qmodel, qrec = apply(lm.model, cfg, calib=calib)
    assert {"layer3.0.conv1.0", "layer3.0.conv1.1", "layer3.0.conv1.2"} <= set(qrec.layers)
    assert type(qmodel.get_submodule("layer3.0.conv1.1")).__name__ == "QuantConv2d"
    q = dataclasses.replace(lm, model=qmodel, methods=[*lm.methods, qrec.to_dict()])
    x = lm.input.example(batch=2, seed=3)
    with torch.no_grad():
        want = qmodel(x)
    back = load_saved(save_model(q, tmp_path / "q"))
    with torch.no_grad():
        assert torch.equal(back.model(x), want)


def test_a_factorized_model_prunes_and_reloads(resnet20, tmp_path):
    """Pruning after the factorization changes plain layers only: the reload resizes them."""
    from edgeslim.prune.config import PruneConfig
    from edgeslim.prune.structured import prune

    lm = _factorized(resnet20, "spatial")
    res = prune(lm.model, lm.input.example(), PruneConfig(ratio=0.25))
    assert res.max_abs_diff < 1e-4  # equals the masked dense model
    inner = res.model.get_submodule("layer3.0.conv1.0")  # the k x 1 factor lost channels
    assert inner.out_channels < lm.model.get_submodule("layer3.0.conv1.0").out_channels
    pruned = dataclasses.replace(lm, model=res.model.eval())
    back = load_saved(save_model(pruned, tmp_path / "p"))
    x = lm.input.example(batch=2, seed=4)
    with torch.no_grad():
        assert torch.equal(back.model(x), pruned.model(x))


@pytest.mark.slow
def test_bert_ffn_svd_at_half_its_parameters(tmp_path):
    """The issue's transformer case: SVD of BERT's FFN layers saves, reloads and exports."""
    lm = load_model("hf:recipes/bert_tiny.json")

    def ffn(module, name: str) -> bool:
        return matches(name, r".*\.(intermediate|output)\.dense") and ".attention." not in name

    model, rec = apply(lm.model, SVDConfig(RankRule(ratio=0.5)), filter_fn=ffn)
    assert len(rec.layers) == 8
    # the ratio bounds the weights; the biases (kept) add 0.1%
    assert rec.details["params_after"] < 0.501 * rec.details["params_before"]
    new = dataclasses.replace(lm, model=model.eval(), methods=[rec.to_dict()])
    x = lm.input.example(batch=2, seed=0)
    back = load_saved(save_model(new, tmp_path / "bert"))
    with torch.no_grad():
        want = new.model(x)
        assert torch.equal(back.model(x), want)
    res = export_onnx(back.model, lm.input, tmp_path / "bert.onnx")
    got = ort_run(ort_session(res.path), x.numpy())
    np.testing.assert_allclose(got, want.numpy(), atol=1e-4, rtol=1e-4)
