"""TinyBERT: the embedding loss against a hand-computed oracle, the uniform layer map,
label-free stages (shuffled labels give identical losses), soft cross-entropy, and the
two-stage schedule end to end (workflow and CLI) on ``synthtext``."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch.utils.data import Subset

from edgeslim.core.errors import EdgeslimError
from edgeslim.distill.distiller import Distiller
from edgeslim.distill.hooks import Outputs
from edgeslim.distill.losses import LOSSES, LossSpec, Probe
from edgeslim.distill.losses.soft_ce import soft_cross_entropy
from edgeslim.distill.losses.tinybert import projected_mse, uniform_layer_map

g = torch.Generator().manual_seed(0)

CONFIG = {
    "model_type": "bert",
    "vocab_size": 128,
    "hidden_size": 32,
    "num_hidden_layers": 6,
    "num_attention_heads": 4,
    "intermediate_size": 64,
    "max_position_embeddings": 64,
    "num_labels": 4,
}


def test_embedding_loss_matches_hand_computed_mse():
    e_s = torch.randn(2, 3, 4, generator=g)  # student embeddings: width 4
    e_t = torch.randn(2, 3, 6, generator=g)  # teacher embeddings: width 6
    spec = LossSpec(layers=(("emb", "EMB"),))
    probe = Probe(
        Outputs(torch.zeros(2, 4), {"emb": e_s}), (Outputs(torch.zeros(2, 4), {"EMB": e_t}),)
    )
    loss = LOSSES.get("tinybert").build(spec, probe)
    w = loss.adapters[0].weight  # W_e: (6, 4), learned
    assert w.shape == (6, 4)
    total, n = 0.0, 0
    for b in range(2):
        for tok in range(3):
            for j in range(6):
                proj = sum(e_s[b, tok, i].item() * w[j, i].item() for i in range(4))
                total += (proj - e_t[b, tok, j].item()) ** 2
                n += 1
    y = torch.tensor([0, 1])
    value = loss(
        Outputs(torch.zeros(2, 4), {"emb": e_s}), [Outputs(torch.zeros(2, 4), {"EMB": e_t})], y
    )
    assert value.item() == pytest.approx(total / n, rel=1e-5)
    # same width: no projection, plain MSE
    assert projected_mse(e_t, e_t + 1, torch.nn.Identity()).item() == pytest.approx(1.0)


def test_soft_cross_entropy_by_hand():
    zs, zt = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)
    for t in (1.0, 2.0):
        total = 0.0
        for s_row, t_row in zip(zs.tolist(), zt.tolist(), strict=True):
            p = [math.exp(v / t) for v in t_row]
            q = [math.exp(v / t) for v in s_row]
            total -= sum(pi / sum(p) * math.log(qi / sum(q)) for pi, qi in zip(p, q, strict=True))
        assert soft_cross_entropy(zs, zt, t).item() == pytest.approx(total / 3, rel=1e-5)


def test_uniform_layer_map_six_to_two():
    pytest.importorskip("transformers")
    from edgeslim.distill.layers import transformer_pairs
    from edgeslim.models.spec import build_source

    assert uniform_layer_map(2, 6) == [(0, 0), (1, 3), (2, 6)]
    assert uniform_layer_map(3, 6) == [(0, 0), (1, 2), (2, 4), (3, 6)]
    teacher = build_source({"kind": "hf", "config": dict(CONFIG)})
    student = build_source({"kind": "hf", "config": {**CONFIG, "num_hidden_layers": 2}})
    pairs = transformer_pairs(student, teacher, attention=True)
    enc = "hf.bert.encoder.layer"
    assert pairs == (
        ("hf.bert.embeddings", "hf.bert.embeddings"),
        (f"{enc}.0", f"{enc}.2"),
        (f"{enc}.0.attention.self#1", f"{enc}.2.attention.self#1"),
        (f"{enc}.1", f"{enc}.5"),
        (f"{enc}.1.attention.self#1", f"{enc}.5.attention.self#1"),
    )


def _bert_pair():
    pytest.importorskip("transformers")
    from edgeslim.models.spec import build_source

    torch.manual_seed(0)
    no_drop = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    teacher = build_source({"kind": "hf", "config": {**CONFIG, **no_drop}}).eval()
    student = build_source(
        {"kind": "hf", "config": {**CONFIG, **no_drop, "num_hidden_layers": 2, "hidden_size": 16}}
    ).eval()
    return student, teacher


@pytest.mark.parametrize("losses", ["tinybert", "soft_ce", "tinybert+soft_ce"])
def test_label_free_stages_ignore_labels(losses):
    student, teacher = _bert_pair()
    x = torch.randint(2, 128, (8, 16), generator=g)
    d = Distiller.build(student, [teacher], losses, LossSpec(alpha=1.0), x[:2], hard_labels=False)
    if "tinybert" in losses:  # the default map pairs the attention maps as well
        assert any("#1" in s for s in d.student_layers)
    y = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    a, _ = d(student, x, y)
    b, _ = d(student, x, y[torch.randperm(8, generator=g)])
    c, _ = d(student, x, torch.zeros(8, dtype=torch.long))
    assert a.item() == b.item() == c.item()
    with_ce = Distiller.build(student, [teacher], losses, LossSpec(alpha=1.0), x[:2])
    if losses == "tinybert":  # with labels allowed, the CE is added and labels matter
        assert with_ce(student, x, y)[0].item() != with_ce(student, x, y.roll(1))[0].item()


def test_label_free_refuses_a_loss_that_reads_labels():
    student, teacher = _bert_pair()
    x = torch.randint(2, 128, (2, 16), generator=g)
    with pytest.raises(EdgeslimError, match="reads the labels"):
        Distiller.build(student, [teacher], "kd", LossSpec(alpha=0.5), x, hard_labels=False)
    Distiller.build(student, [teacher], "kd", LossSpec(alpha=1.0), x, hard_labels=False)


def test_plan_for_stage():
    from edgeslim.workflows.tinybert import TinyBERTPlan

    assert [p for p, _, _ in TinyBERTPlan.for_stage("general", 2).phases()] == ["general"]
    task = TinyBERTPlan.for_stage("task", 2, prediction_epochs=1).phases()
    assert task == [("intermediate", "tinybert", 2), ("prediction", "soft_ce", 1)]
    assert len(TinyBERTPlan.for_stage("both", 1).phases()) == 3
    with pytest.raises(EdgeslimError, match="stage"):
        TinyBERTPlan.for_stage("all", 1)
    with pytest.raises(EdgeslimError):
        TinyBERTPlan(0, 0, 0)


def test_two_stages_end_to_end(tmp_path):
    pytest.importorskip("transformers")
    from edgeslim.data import load_dataset
    from edgeslim.distill.bert_init import distilbert_student
    from edgeslim.models.inputs import InputSpec
    from edgeslim.models.saved import load_saved
    from edgeslim.models.spec import LoadedModel, build_source
    from edgeslim.train.config import TrainConfig
    from edgeslim.workflows.tinybert import TinyBERTPlan, tinybert_distill

    torch.manual_seed(0)
    source = {"kind": "hf", "config": {**CONFIG, "num_hidden_layers": 4}}
    teacher = LoadedModel(build_source(source), source, InputSpec((1, 32), "int64", 128), "t")
    student = distilbert_student(teacher)
    data = Subset(load_dataset("synthtext", "train"), range(128))
    cfg = TrainConfig(epochs=1, batch_size=64, lr=1e-3, optimizer="adamw", augment=False)
    plan = TinyBERTPlan.for_stage("both", 1)
    res = tinybert_distill(
        student, teacher, "synthtext", plan, cfg, tmp_path / "s",
        corpus=data, train_data=data, progress=False,
    )  # fmt: skip
    assert [h["phase"] for h in res.history] == ["general", "intermediate", "prediction"]
    assert all(math.isfinite(h["train_loss"]) for h in res.history)
    assert 0.0 <= res.test_top1 <= 1.0
    assert (tmp_path / "s" / "phases" / "prediction").is_dir()
    again = load_saved(tmp_path / "s")
    assert again.meta["tinybert"]["general_epochs"] == 1
    x = torch.randint(2, 128, (2, 32), generator=g)
    with torch.no_grad():
        torch.testing.assert_close(again.model.eval()(x), student.model.eval()(x))


@pytest.mark.slow  # trains two phases on 4000 samples, then ONNX export and latency
def test_cli_tinybert_task_stage(tmp_path, capsys):
    pytest.importorskip("transformers")
    from edgeslim.cli.main import main

    cfg = tmp_path / "bert.json"
    cfg.write_text(json.dumps({**CONFIG, "num_hidden_layers": 2}))
    out = tmp_path / "out"
    argv = [
        "distill", "--teacher", f"hf:{cfg}", "--student", "distilbert", "--data", "synthtext:24",
        "--loss", "tinybert", "--stage", "task", "--epochs", "1", "--pred-epochs", "1",
        "--temperature", "1", "--batch-size", "256", "--optimizer", "adamw", "--lr", "1e-3",
        "--no-augment", "--runs", "2", "-o", str(out),
    ]  # fmt: skip
    assert main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["loss"] == "tinybert task stage"
    assert [h["phase"] for h in report["history"]] == ["intermediate", "prediction"]
    assert main([*argv[:-1], str(tmp_path / "o2"), "--stage", "general", "--loss", "kd"]) != 0
    assert "--loss tinybert" in capsys.readouterr().err
