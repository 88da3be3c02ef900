"""BERT: DistilBERT init (every other layer) of a 2-layer student from a 4-layer config-built
teacher, distilled on the generated ``synthtext`` task, then exported to ONNX."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import Subset

pytest.importorskip("transformers")

from edgeslim.data import dataset_info, load_dataset  # noqa: E402
from edgeslim.distill.bert_init import distilbert_init, distilbert_student, every_other  # noqa: E402
from edgeslim.distill.distiller import Distiller  # noqa: E402
from edgeslim.distill.layers import transformer_pairs  # noqa: E402
from edgeslim.distill.losses import LossSpec  # noqa: E402
from edgeslim.export.onnx import export_onnx  # noqa: E402
from edgeslim.models.inputs import InputSpec  # noqa: E402
from edgeslim.models.saved import load_saved  # noqa: E402
from edgeslim.models.spec import LoadedModel, build_source  # noqa: E402
from edgeslim.train.config import TrainConfig  # noqa: E402
from edgeslim.train.trainer import Trainer  # noqa: E402
from edgeslim.workflows.distill import distill_model  # noqa: E402

CONFIG = {
    "model_type": "bert",
    "vocab_size": 128,
    "hidden_size": 32,
    "num_hidden_layers": 4,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 64,
    "num_labels": 4,
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
    "attn_implementation": "eager",  # attention maps for TinyBERT's attention loss
}
SEQ = InputSpec((1, 32), "int64", 128)


def _train_split(n: int | None):
    ds = load_dataset("synthtext", "train")
    return ds if n is None else Subset(ds, range(n))


def _teacher(epochs: int, n: int | None) -> LoadedModel:
    torch.manual_seed(0)
    source = {"kind": "hf", "config": dict(CONFIG)}
    lm = LoadedModel(build_source(source), source, SEQ, "bert4")
    cfg = TrainConfig(epochs=epochs, batch_size=64, lr=2e-3, optimizer="adamw", augment=False)
    hist = Trainer(lm.model, cfg, progress=False).fit(_train_split(n))
    lm.meta["train_loss"] = hist[-1]["train_loss"]
    return lm


def _distil_and_export(tmp_path, epochs: int, n: int | None):
    teacher = _teacher(epochs, n)
    student = distilbert_student(teacher)
    pairs = transformer_pairs(student.model, teacher.model, attention=True)
    assert ("hf.bert.encoder.layer.1", "hf.bert.encoder.layer.3") in pairs
    assert ("hf.bert.embeddings", "hf.bert.embeddings") in pairs
    assert (
        "hf.bert.encoder.layer.0.attention.self#1",
        "hf.bert.encoder.layer.1.attention.self#1",
    ) in pairs
    spec = LossSpec(temperature=2.0, alpha=0.5, layers=pairs)
    cfg = TrainConfig(epochs=epochs, batch_size=64, lr=1e-3, optimizer="adamw", augment=False)
    res = distill_model(
        student, [teacher], "synthtext", "kd+tinybert", spec, cfg, tmp_path / "s",
        train_data=_train_split(n), progress=False,
    )  # fmt: skip
    reloaded = load_saved(tmp_path / "s")
    assert reloaded.model.hf.config.num_hidden_layers == 2
    exp = export_onnx(reloaded.model, SEQ, tmp_path / "student.onnx")
    assert exp.max_abs_diff < 1e-4 and exp.size_bytes > 0
    return res


def test_synthtext_is_registered():
    info = dataset_info("synthtext")
    assert info.num_classes == 4 and info.input_shape == (32,)
    x, y = load_dataset("synthtext", "test")[0]
    assert x.dtype == torch.int64 and x[0] == 1 and 0 <= y < 4


def test_distilbert_init_keeps_every_other_layer():
    torch.manual_seed(0)
    teacher = build_source({"kind": "hf", "config": dict(CONFIG)}).eval()
    student = distilbert_init(teacher)
    assert every_other(4) == [0, 2] and student.hf.config.num_hidden_layers == 2
    t_sd, s_sd = teacher.hf.state_dict(), student.hf.state_dict()
    for name, w in s_sd.items():
        src = name.replace("encoder.layer.1.", "encoder.layer.2.")
        torch.testing.assert_close(w, t_sd[src], rtol=0, atol=0, msg=name)
    assert teacher.hf.config.num_hidden_layers == 4  # the teacher is not modified
    x = SEQ.example(batch=3)
    with torch.no_grad():  # same embeddings and first layer: layer-0 outputs agree exactly
        h_t = teacher.hf.bert.encoder.layer[0](teacher.hf.bert.embeddings(x))
        h_s = student.hf.bert.encoder.layer[0](student.hf.bert.embeddings(x))
    torch.testing.assert_close(h_s, h_t)


def test_bert_student_distilled_and_exported(tmp_path):
    res = _distil_and_export(tmp_path, epochs=1, n=256)  # small: the pipeline, not accuracy
    assert all(torch.isfinite(torch.tensor(h["train_loss"])) for h in res.history)
    assert 0.0 <= res.test_top1 <= 1.0


@pytest.mark.slow
def test_bert_student_learns_the_task(tmp_path):
    res = _distil_and_export(tmp_path, epochs=4, n=None)
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    assert res.test_top1 > 0.5  # 4 balanced classes: chance is 0.25


def test_cosine_distillation_of_identical_bert_is_zero():
    torch.manual_seed(0)
    t = build_source({"kind": "hf", "config": dict(CONFIG)}).eval()
    s = build_source({"kind": "hf", "config": dict(CONFIG)}).eval()
    s.load_state_dict(t.state_dict())
    pairs = transformer_pairs(s, t)
    d = Distiller.build(s, [t], "cosine", LossSpec(layers=pairs), SEQ.example(batch=2))
    x, y = SEQ.example(batch=4), torch.tensor([0, 1, 2, 3])
    loss, logits = d(s, x, y)
    ce = torch.nn.functional.cross_entropy(logits, y)
    assert abs((loss - ce).item()) < 1e-5
