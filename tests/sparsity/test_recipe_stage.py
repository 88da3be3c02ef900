"""The recipe ``sparsify`` stage masks the model, keeps the record, archives, and validates."""

import pytest
import torch

from edgeslim.bench.macs import zero_fraction
from edgeslim.core.errors import EdgeslimError
from edgeslim.models.saved import load_saved, save_model
from edgeslim.models.spec import load_model
from edgeslim.recipe import STAGES, parse_recipe
from edgeslim.recipe.deploy import export_deployable
from edgeslim.recipe.state import PipelineContext, PipelineState
from edgeslim.sparsity import masked_layers, squashed

NET = """
from torch import nn

def make():
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 8, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
"""


def _recipe(tmp_path, stage: str):
    f = tmp_path / "net.py"
    f.write_text(NET)
    text = f"version: 1\nmodel: {f}:make\ninput_shape: [1, 3, 16, 16]\nstages:\n  - {stage}\n"
    return f, parse_recipe(text)


def _run_stage(tmp_path, stage: str):
    """The one-stage recipe ``stage`` run on NET (seed 0): ``(model, state after)``."""
    f, loaded = _recipe(tmp_path, stage)
    torch.manual_seed(0)
    lm = load_model(f"{f}:make", input_shape=(1, 3, 16, 16))
    ctx = PipelineContext(loaded.recipe, lm, tmp_path / "work", progress=False)
    return lm, STAGES.get("sparsify").run(PipelineState(lm), loaded.stages[0].settings, ctx)


def test_recipe_sparsify_stage_masks_archives_and_reloads(tmp_path):
    _, st = _run_stage(tmp_path, "sparsify: {method: rtoss-2ep, ignore: ['0']}")
    assert list(masked_layers(st.lm.model)) == ["2", "4"]  # "0" ignored, Linear not R-TOSS
    assert st.lm.methods[-1]["method"] == "rtoss_sparsity"
    note = st.notes["sparsify"]
    assert note["archive_bytes"] == (tmp_path / "work" / "weights.esz").stat().st_size
    assert note["speedup_claimed"] is False
    assert st.layers["2"]["sparsity"] == pytest.approx(7 / 9)
    assert note["masked_sparsity"] == pytest.approx(7 / 9, abs=1e-3)
    assert zero_fraction(st.lm.model) == zero_fraction(squashed(st.lm.model)) > 0.5  # masks count
    # the checkpoint: the saved model replays the masks; the deployable holds the zeros
    save_model(st.lm, tmp_path / "m")
    back = load_saved(tmp_path / "m")
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(back.model(x), st.lm.model.eval()(x))
    export_deployable(st.lm.model, st.lm.input, tmp_path / "m.onnx")
    assert masked_layers(st.lm.model)  # exported from a squashed copy


def test_recipe_rtoss_without_parent_child_chooses_patterns_per_layer(tmp_path):
    _, st = _run_stage(tmp_path, "sparsify: {method: rtoss-2ep, parent_child: false}")
    rec = st.lm.methods[-1]
    assert rec["config"]["parent_child"] is False
    assert not rec["details"].get("parent_child")  # no groups: every layer its own patterns
    assert st.notes["sparsify"]["masked_sparsity"] == pytest.approx(7 / 9, abs=1e-3)


@pytest.mark.parametrize(
    ("stage", "message"),
    [
        ("sparsify: {method: magnitude}", "needs --sparsity"),
        ("sparsify: {method: nm, sparsity: 0.7}", "fixed sparsity"),
        ("sparsify: {method: agp, sparsity: 0.5}", "epochs >= 1"),
        ("sparsify: {method: magnitude, sparsity: 1.5}", "less than 1"),
    ],
)
def test_recipe_sparsify_settings_are_validated(tmp_path, stage, message):
    with pytest.raises(EdgeslimError, match=message):
        _recipe(tmp_path, stage)


def test_quantize_after_sparsify_keeps_the_zeros_in_int8(tmp_path):
    import numpy as np

    from edgeslim.quant.fake_quant import _QuantWeight

    rng = np.random.default_rng(0)
    arrays = {}
    for split in ("train", "val", "test"):
        arrays[f"x_{split}"] = rng.normal(size=(16, 3, 16, 16)).astype(np.float32)
        arrays[f"y_{split}"] = rng.integers(0, 10, 16)
    np.savez(tmp_path / "d.npz", **arrays)
    f = tmp_path / "net.py"
    f.write_text(NET)
    loaded = parse_recipe(
        f"version: 1\nmodel: {f}:make\ninput_shape: [1, 3, 16, 16]\n"
        f"data: npz:{tmp_path / 'd.npz'}\n"
        "stages:\n  - sparsify: {method: nm}\n  - quantize: {calib_batches: 1}\n"
    )
    torch.manual_seed(0)
    lm = load_model(f"{f}:make", input_shape=(1, 3, 16, 16))
    ctx = PipelineContext(loaded.recipe, lm, tmp_path / "work", progress=False)
    st = PipelineState(lm)
    for stage in loaded.stages:
        st = STAGES.get(stage.name).run(st, stage.settings, ctx)
    quant = {n: m for n, m in st.lm.model.named_modules() if isinstance(m, _QuantWeight)}
    assert {"2", "4", "7"} <= set(quant)  # the masked layers were quantized too
    for name in ("2", "4", "7"):
        q = quant[name].weight_fq(quant[name].weight).detach()
        assert float((q == 0).float().mean()) >= 0.5  # 2:4: INT8 keeps every zero
    assert not any(r["method"] == "nm_sparsity" for r in st.lm.methods)
    save_model(st.lm, tmp_path / "q")
    back = load_saved(tmp_path / "q")
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(back.model(x), st.lm.model.eval()(x), atol=1e-6)


def test_recipe_archive_is_the_last_float_model_and_claims_no_speed(tmp_path):
    from edgeslim.bench.report.markdown import archive_lines
    from edgeslim.recipe.archive import FILE, final_archive
    from edgeslim.sparsity.archive import load_archive

    lm0 = load_model("resnet20")  # any dense model: a history without sparsify has no archive
    dense = PipelineState(lm0, export_deployable(lm0.model, lm0.input, tmp_path / "0.onnx"))
    assert final_archive([("input", dense)], tmp_path) is None
    lm, st = _run_stage(tmp_path, "sparsify: {method: rtoss-2ep, values: float}")
    with torch.no_grad():  # a later stage (distill, finetune) moves the kept weights
        for p in st.lm.model.parameters():
            p.add_(0.5)
    later = PipelineState(st.lm, export_deployable(st.lm.model, lm.input, tmp_path / "2.onnx"),
                          st.layers, st.notes)  # fmt: skip
    a = final_archive([("input", dense), ("sparsify", st), ("distill", later)], tmp_path)
    assert a["stage"] == "distill" and a["bytes"] == (tmp_path / FILE).stat().st_size
    assert a["onnx_bytes"] == (tmp_path / "2.onnx").stat().st_size
    assert a["onnx_over_archive"] == pytest.approx(a["onnx_bytes"] / a["bytes"], rel=1e-2)
    assert a["speedup_claimed"] is False
    back = load_archive(tmp_path / FILE)  # float values: exactly the final weights, zeros kept
    plain = squashed(st.lm.model).state_dict()
    assert torch.equal(back["2.weight"], plain["2.weight"])
    assert float((back["2.weight"] == 0).float().mean()) == pytest.approx(7 / 9, abs=1e-3)
    text = "\n".join(archive_lines(a))
    assert "## Compressed archive" in text and "not speed" in text
