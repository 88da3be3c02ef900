"""``benchmarks/lowrank_bert.py`` on a tiny BERT: the variants it compares are what it says.

FFN SVD at ratio 0.5 halves every FFN Linear (within one rank of rounding) and leaves
attention alone; ALBERT's embedding factorization and sharing cut the parameters;
the timed records and the markdown carry every row.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn


@pytest.fixture(scope="module")
def lb(bench_script):
    return bench_script("lowrank_bert")


@pytest.fixture(scope="module")
def tiny(lb):
    cfg = {**lb.SMALL, "hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64}
    cfg["num_hidden_layers"] = 2
    return lb.new_bert(cfg, 16, "tiny")


def _linears(model: nn.Module) -> dict[str, nn.Linear]:
    return {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear)}


def test_ffn_pattern_selects_the_ffn_and_not_attention_output(lb, tiny):
    names = [n for n in _linears(tiny.model) if lb.is_ffn(n)]
    assert len(names) == 4  # 2 layers x (intermediate, output)
    assert all("attention" not in n for n in names)
    assert not lb.is_ffn("hf.bert.encoder.layer.0.attention.output.dense")


def test_ffn_svd_halves_the_ffn_and_leaves_attention_untouched(lb, tiny):
    new, extra = lb.ffn_svd(tiny)
    assert extra["layers_factorized"] == 4
    before, after = lb.ffn_params(tiny.model), lb.ffn_params(new.model)
    # rank floor(0.5 * 32 * 64 / 96) = 10: one rank below half at most, biases kept
    one_rank = 32 + 64
    assert 0.5 * before - 2 * one_rank <= after <= 0.5 * before
    old, now = _linears(tiny.model), _linears(new.model)
    for name, lin in old.items():
        if "attention" in name or "pooler" in name or "classifier" in name:
            assert torch.equal(now[name].weight, lin.weight), name
    for name in (n for n in old if lb.is_ffn(n)):
        assert isinstance(new.model.get_submodule(name), nn.Sequential)
    nonffn = lb.count_params(tiny.model) - before
    assert lb.count_params(new.model) == nonffn + after  # nothing else changed size


def test_albert_rows_share_and_shrink(lb, tiny):
    rows = lb.variants(tiny, 8)
    assert list(rows) == ["dense", "FFN SVD 0.5", "ALBERT E=8 g=1", "ALBERT E=8 g=2"]
    dense = lb.count_params(tiny.model)
    g1, g2 = (lb.count_params(rows[k][0].model) for k in ("ALBERT E=8 g=1", "ALBERT E=8 g=2"))
    assert g1 < g2 < dense
    stack = rows["ALBERT E=8 g=1"][0].model.hf.bert.encoder.layer
    assert stack[0] is stack[1]
    x = tiny.input.example(batch=2)
    with torch.no_grad():  # the dense model itself is not changed by building the variants
        ref = tiny.model.eval()(x)
        ref = getattr(ref, "logits", ref)
        assert torch.isfinite(ref).all()


def test_timed_records_and_markdown_carry_every_row(lb, tiny):
    models = {k: v[0].model.eval() for k, v in lb.variants(tiny, 8).items()}
    recs = lb.time_models(models, tiny.input, [1], 2, 1, dynamo=False)
    assert [r["model"] for r in recs] == [*models, lb.NOISE]
    assert recs[0]["speedup"]["1"] == 1.0
    assert all(r["ms"]["1"] > 0 and r["parity"] < 1e-4 for r in recs)
    by = {r["model"]: r for r in recs}
    assert by["ALBERT E=8 g=1"]["onnx_bytes"] < by["dense"]["onnx_bytes"]
    assert by["FFN SVD 0.5"]["macs"] < by["dense"]["macs"]
    res = {
        "commands": {"speed": "python benchmarks/lowrank_bert.py --parts speed"},
        "machine": {"cpu": "X", "isa": "avx2", "int8": "exact", "python": "3"},
        "speed": {
            "small t1": {
                "desc": "tiny", "seq": 16, "threads": 1, "runs": 2,
                "uptime_before": "load 1", "uptime_after": "load 1", "rows": recs,
            }
        },
    }  # fmt: skip
    md = lb.markdown(res)
    for label in [*models, lb.NOISE]:
        assert f"| {label} |" in md
    assert "1.3x whole-model speedup" in md and "size only" in md.lower()


def test_accuracy_table_has_every_row_and_its_drop(lb, tiny):
    rows = {}
    teacher = {"test_top1": 1.0, "test_nll": 0.01, **lb.describe(tiny.model, tiny.input)}
    for k, (lm, _) in lb.variants(tiny, 8).items():
        row = {**lb.describe(lm.model, lm.input), "top1_before_ft": 0.5, "nll_before_ft": 1.0}
        row["seeds"] = {"0": {"top1": 0.99, "nll": 0.02}, "1": {"top1": 0.97, "nll": 0.04}}
        lb.summarize(row, teacher["test_top1"])
        rows[k] = row
    assert rows["dense"]["drop_points"] == pytest.approx(2.0)
    setting = {"teacher_epochs": 1, "teacher_lr": 1e-3, "epochs": 1, "lr": 5e-4}
    md = "\n".join(lb.accuracy_table({"teacher": teacher, "setting": setting, "rows": rows}))
    for k in rows:
        assert f"| {k} |" in md
    assert "98.00% ± 1.41" in md and "+2.00" in md
