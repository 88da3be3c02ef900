"""FastBERT: branch self-distillation, the segmented ONNX export and its early-exit runner."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

pytest.importorskip("transformers")

from edgeslim.core.errors import EdgeslimError  # noqa: E402
from edgeslim.distill.distiller import Distiller  # noqa: E402
from edgeslim.distill.early_exit import early_exit  # noqa: E402
from edgeslim.distill.early_exit import normalized_entropy as torch_entropy  # noqa: E402
from edgeslim.distill.fastbert import branch_parity, export_fastbert, segments  # noqa: E402
from edgeslim.distill.losses import LOSSES, LossSpec  # noqa: E402
from edgeslim.distill.losses.fastbert import branch_kl  # noqa: E402
from edgeslim.export.early_exit import (  # noqa: E402
    MANIFEST,
    EarlyExitRunner,
    normalized_entropy,
    read_manifest,
)
from edgeslim.export.onnx import export_onnx  # noqa: E402
from edgeslim.export.ort import ort_run, ort_session  # noqa: E402
from edgeslim.models.hf import build_hf  # noqa: E402
from edgeslim.models.inputs import InputSpec  # noqa: E402
from edgeslim.train.config import TrainConfig  # noqa: E402
from edgeslim.train.trainer import Trainer  # noqa: E402

CONFIG = {
    "model_type": "bert",
    "vocab_size": 64,
    "hidden_size": 32,
    "num_hidden_layers": 3,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 32,
    "num_labels": 3,
}
SPEC = InputSpec((1, 16), "int64", 64)
TASK = "sequence_classification"


def tiny_bert(seed: int = 0):
    torch.manual_seed(seed)
    return build_hf(CONFIG).eval()


def tokens(n: int, seed: int = 1) -> torch.Tensor:
    return SPEC.example(batch=n, seed=seed)


def build_branches(model):
    return Distiller.build(model, [], "fastbert", LossSpec(temperature=1.0), tokens(4), TASK)


def mean_kl(model, branches, x: torch.Tensor) -> float:
    from edgeslim.distill.hooks import teacher_forward

    with torch.no_grad():
        out = teacher_forward(model, x, branches.student_layers)
        return float(branch_kl(branches.branch_logits(out.features), out.logits))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = tiny_bert()
    branches = build_branches(model).losses[0]
    for h in branches.heads:  # confident-ish branches, so that middle thresholds split samples
        torch.nn.init.normal_(h.fc.weight, std=1.0)
    d = tmp_path_factory.mktemp("fb") / "exits"
    # the TorchScript tracer: 20x faster to export than torch.export (the benchmark uses that)
    export_fastbert(
        model, branches, SPEC, d, threshold=0.4, thresholds=(0.0, 0.4, 1.0), dynamo=False
    )
    full = export_onnx(model, SPEC, d.parent / "full.onnx", dynamo=False).path
    return model, branches, d, full


def test_loss_is_registered_label_free_and_on_every_layer():
    model = tiny_bert()
    d = build_branches(model)
    fb = d.losses[0]
    assert "fastbert" in LOSSES
    assert fb.student_layers == tuple(f"hf.bert.encoder.layer.{i}" for i in range(3))
    assert len(fb.heads) == 2  # every layer but the last; the last has the model's classifier
    x = tokens(6)
    a, _ = d(model, x, torch.zeros(6, dtype=torch.long))
    b, _ = d(model, x, torch.full((6,), 2, dtype=torch.long))
    assert torch.equal(a, b)  # no label enters the loss


def test_branch_kl_oracle():
    z, t = torch.randn(5, 3), torch.randn(5, 3)
    p = torch.softmax(t, 1)
    ref = (p * (p.log() - torch.log_softmax(z, 1))).sum(1).mean()
    assert torch.allclose(branch_kl([z], t), ref, atol=1e-6)
    assert torch.allclose(branch_kl([z, z], t), 2 * ref, atol=1e-6)


def test_branch_training_reduces_kl_and_leaves_the_backbone():
    model = tiny_bert()
    d = build_branches(model)
    fb = d.losses[0]
    x = tokens(128, seed=3)
    before = mean_kl(model, fb, x)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for p in model.parameters():
        p.requires_grad_(False)
    cfg = TrainConfig(epochs=5, batch_size=32, lr=3e-3, optimizer="adamw", augment=False)
    data = TensorDataset(x, torch.zeros(len(x), dtype=torch.long))
    Trainer(model, cfg, loss_fn=d, extra=d, progress=False, task=TASK).fit(data)
    after = mean_kl(model, fb, x)
    assert after < 0.5 * before, (before, after)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())


def test_entropy_oracle():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(32, 5)).astype(np.float32) * 3
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    ref = -(p * np.log(p)).sum(1) / math.log(5)
    got = normalized_entropy(z)
    assert np.allclose(got, ref, atol=1e-6)
    assert np.allclose(got, torch_entropy(torch.from_numpy(z)).numpy(), atol=1e-5)
    assert ((got >= 0) & (got <= 1)).all()
    assert normalized_entropy(np.zeros((1, 4)))[0] == pytest.approx(1.0)
    assert normalized_entropy(np.array([[50.0, 0, 0, 0]]))[0] < 1e-15


def test_threshold_zero_is_the_full_model(exported):
    model, branches, d, full = exported
    runner = EarlyExitRunner(d, threads=1)
    x = tokens(9)
    out = runner(x.numpy(), 0.0)
    assert (out.exits == 2).all()
    with torch.no_grad():
        eager = model(x).numpy()
    whole = ort_run(ort_session(full, 1), x.numpy())
    assert np.abs(out.logits - whole).max() < 1e-4
    assert np.abs(out.logits - eager).max() < 1e-4
    diffs = branch_parity(model, branches, d, x)
    assert set(diffs) == {"branch_0", "branch_1", "final"}
    assert max(diffs.values()) < 1e-4


def test_threshold_one_always_exits_at_layer_zero(exported):
    model, branches, d, _ = exported
    x = tokens(7)
    out = EarlyExitRunner(d)(x.numpy(), 1.0)
    assert (out.exits == 0).all()
    from edgeslim.distill.hooks import teacher_forward

    feats = teacher_forward(model, x, branches.student_layers).features
    with torch.no_grad():
        branch0 = branches.heads[0](feats[branches.student_layers[0]])[1].numpy()
    assert np.abs(out.logits - branch0).max() < 1e-4


def test_runner_matches_eager_early_exit_per_sample(exported):
    model, branches, d, _ = exported
    runner = EarlyExitRunner(d)
    x = tokens(24, seed=5)
    first = normalized_entropy(runner(x.numpy(), 1.0).logits)
    # thresholds between the branch-0 entropies: some samples leave early, some go on
    for t in np.quantile(first, [0.25, 0.5, 0.75]) + 1e-4:
        ref = early_exit(model, branches, x, float(t))
        got = runner(x.numpy(), float(t))
        one = [runner(x[i : i + 1].numpy(), float(t)) for i in range(len(x))]
        assert np.array_equal(got.exits, ref.exits.numpy())
        assert np.array_equal(np.concatenate([o.exits for o in one]), got.exits)
        assert np.abs(got.logits - ref.logits.numpy()).max() < 1e-4
        assert 0 < (got.exits == 0).sum() < len(x)


def test_exported_directory_round_trips(exported):
    _, _, d, _ = exported
    assert sorted(p.name for p in d.iterdir()) == [
        MANIFEST, "segment_0.onnx", "segment_1.onnx", "segment_2.onnx"
    ]  # fmt: skip
    m = read_manifest(d)
    assert m["layers"] == 3 and m["num_classes"] == 3
    assert InputSpec.from_dict(m["input"]) == SPEC
    assert m["threshold"] == 0.4 and m["thresholds"] == [0.0, 0.4, 1.0]
    assert all(s["parity"] < 1e-4 for s in m["segments"])
    runner = EarlyExitRunner(d)
    assert runner.threshold == 0.4
    assert not [p for p in d.parent.iterdir() if p.name.startswith(".")]  # atomic: no leftovers


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_bad_directories_give_clear_errors(exported, tmp_path):
    _, _, d, _ = exported
    with pytest.raises(EdgeslimError, match="manifest.json: missing"):
        EarlyExitRunner(tmp_path)
    bad = _copy(d, tmp_path / "json")
    (bad / MANIFEST).write_text('{\n  "format": "edgeslim-early-exit/1",\n  "layers": 3,,\n}')
    with pytest.raises(EdgeslimError, match=r"manifest.json:3: not valid JSON"):
        EarlyExitRunner(bad)
    gone = _copy(d, tmp_path / "gone")
    (gone / "segment_1.onnx").unlink()
    with pytest.raises(EdgeslimError, match=r"segment_1.onnx: segment 1 is missing"):
        EarlyExitRunner(gone)
    short = _copy(d, tmp_path / "short")
    m = json.loads((short / MANIFEST).read_text())
    (short / MANIFEST).write_text(json.dumps({**m, "layers": 4}))
    with pytest.raises(EdgeslimError, match="3 segments for 4 layers"):
        EarlyExitRunner(short)
    (short / MANIFEST).write_text(json.dumps({k: v for k, v in m.items() if k != "input"}))
    with pytest.raises(EdgeslimError, match="missing input"):
        EarlyExitRunner(short)
    broken = _copy(d, tmp_path / "broken")
    (broken / "segment_2.onnx").write_bytes(b"not onnx")
    with pytest.raises(EdgeslimError, match="segment_2.onnx"):
        EarlyExitRunner(broken)


def test_segments_need_a_bert_and_matching_branches():
    from torch import nn

    with pytest.raises(EdgeslimError, match="BERT-style"):
        segments(nn.Linear(2, 2), build_branches(tiny_bert()).losses[0])
    other = dict(CONFIG, num_hidden_layers=4)
    torch.manual_seed(0)
    with pytest.raises(EdgeslimError, match="one per layer"):
        segments(build_hf(other), build_branches(tiny_bert()).losses[0])


def test_attention_branch_oracle_and_segment_parity(tmp_path):
    from edgeslim.distill.losses.attention_branch import AttentionBranch

    torch.manual_seed(0)
    b = AttentionBranch(32, 3, width=16, heads=2)
    x = torch.randn(5, 7, 32)
    with torch.no_grad():
        f, z = b(x)
        # reference: every token attends (scaled_dot_product_attention), [CLS] read after
        h = b.down(x)
        q = b.q(h).reshape(5, 7, 2, 8).transpose(1, 2)
        k, v = (t.reshape(5, 7, 2, 8).transpose(1, 2) for t in b.kv(h).chunk(2, dim=-1))
        att = torch.nn.functional.scaled_dot_product_attention(q, k, v)[:, :, 0].reshape(5, 16)
        ref = b.fc(att)
    assert torch.allclose(f, ref, atol=1e-5) and torch.allclose(z, b.out(ref), atol=1e-5)
    with pytest.raises(EdgeslimError, match="divisible"):
        AttentionBranch(32, 3, width=15, heads=2)
    with pytest.raises(EdgeslimError, match=r"\(N, T, C\)"):
        b(torch.randn(5, 32))

    model = tiny_bert()
    d = Distiller.build(model, [], "fastbert-attn", LossSpec(temperature=1.0), tokens(4), TASK)
    fb = d.losses[0]
    assert all(isinstance(h, AttentionBranch) for h in fb.heads) and len(fb.heads) == 2
    export_fastbert(model, fb, SPEC, tmp_path / "exits", thresholds=(0.0, 1.0), dynamo=False)
    diffs = branch_parity(model, fb, tmp_path / "exits", tokens(9))
    assert max(diffs.values()) < 1e-4, diffs
