"""Teacher and hooks stay clean; the distiller trains through the unchanged Trainer and
its adapters are checkpointed so a killed distillation resumes bit-identically."""

from __future__ import annotations

import pytest
import torch
from distill_tiny import TinyNet, tiny_data
from torch import nn

from edgeslim.core.errors import EdgeslimError
from edgeslim.distill.distiller import Distiller, parse_loss_names
from edgeslim.distill.early_exit import early_exit, normalized_entropy
from edgeslim.distill.hooks import capture, teacher_forward
from edgeslim.distill.layers import default_layer_pairs, parse_layer_map
from edgeslim.distill.losses import LossSpec
from edgeslim.distill.losses.kd import kd_loss
from edgeslim.train.config import TrainConfig
from edgeslim.train.trainer import Trainer

X = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(1))
Y = torch.tensor([0, 1, 2, 0])


def _hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


def test_capture_removes_hooks_even_on_error():
    m = TinyNet()
    with pytest.raises(RuntimeError), capture(m, ["layer1", "layer2"]) as feats:
        m(X)
        assert set(feats) == {"layer1", "layer2"}
        raise RuntimeError("boom")
    assert _hook_count(m) == 0
    with pytest.raises(EdgeslimError, match="no module"):
        with capture(m, ["layer9"]):
            pass
    assert _hook_count(m) == 0


def test_teacher_forward_is_frozen_and_restores_modes():
    t = TinyNet().train()
    t.layer1.eval()  # a mixed state must come back exactly
    out = teacher_forward(t, X, ["layer2"])
    assert t.training and not t.layer1.training and t.layer2.training
    assert not out.logits.requires_grad and out.features["layer2"].shape == (4, 16, 4, 4)
    assert _hook_count(t) == 0


def test_distiller_kd_matches_loss_and_leaves_teacher_untouched():
    s, t = TinyNet(width=4, seed=1), TinyNet(width=8, seed=2).train()
    before = {k: v.clone() for k, v in t.state_dict().items()}
    d = Distiller.build(s, [t], "kd", LossSpec(temperature=2.0, alpha=0.5), X)
    loss, logits = d(s, X, Y)
    with torch.no_grad():
        t_logits = t.eval()(X)
    t.train()
    torch.testing.assert_close(loss, kd_loss(s(X), t_logits, Y, 2.0, 0.5))
    loss.backward()
    assert all(p.grad is None for p in t.parameters())
    assert t.training and _hook_count(t) == 0 and _hook_count(s) == 0
    for k, v in t.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    assert len(list(d.parameters())) == 0  # the teacher is not a submodule: never trained/saved
    assert "teacher" not in " ".join(d.state_dict())


def test_distiller_feature_default_mapping_builds_adapters():
    s, t = TinyNet(width=4), TinyNet(width=8)
    assert default_layer_pairs(s, t) == (("layer1", "layer1"), ("layer2", "layer2"))
    d = Distiller.build(s, [t], "kd+feature", LossSpec(), X)
    assert d.student_layers == ("layer1", "layer2") and not d.add_ce
    adapters = d.losses[1].adapters
    assert [a.weight.shape[:2] for a in adapters] == [(8, 4), (16, 8)]
    assert parse_loss_names("feature") == ("feature",)
    assert Distiller.build(s, [t], "feature", LossSpec(), X).add_ce  # CE added once
    with pytest.raises(EdgeslimError, match="needs a teacher"):
        Distiller.build(s, [], "kd", LossSpec(), X)
    with pytest.raises(EdgeslimError, match="unknown distillation loss"):
        parse_loss_names("kd+nope")
    assert parse_layer_map("layer1=layer2,fc") == (("layer1", "layer2"), ("fc", "fc"))


def test_identical_student_and_teacher_give_zero_distillation():
    t = TinyNet(width=8)
    s = TinyNet(width=8)
    s.load_state_dict(t.state_dict())
    for loss in ("kd", "mse", "at", "cosine"):
        d = Distiller.build(s, [t], loss, LossSpec(alpha=1.0, layers=(("layer2", "layer2"),)), X)
        value = d(s, X, Y)[0] - (torch.nn.functional.cross_entropy(s(X), Y) if d.add_ce else 0)
        assert abs(value.item()) < 1e-5, loss


CFG = TrainConfig(epochs=3, batch_size=16, lr=0.05, augment=False)


_TEACHER: dict = {}


def _trained_teacher() -> TinyNet:
    """Trained once per session; every run gets a fresh copy of the same weights."""
    if not _TEACHER:
        t = TinyNet(width=8, seed=5)
        cfg = TrainConfig(epochs=4, batch_size=16, lr=0.05, augment=False)
        Trainer(t, cfg, progress=False).fit(tiny_data())
        _TEACHER.update(t.state_dict())
    teacher = TinyNet(width=8, seed=5)
    teacher.load_state_dict(_TEACHER)
    return teacher


def _distill_run(ckpt, loss_fn_wrap=None, seed=0):
    teacher = _trained_teacher()
    student = TinyNet(width=4, seed=seed)
    d = Distiller.build(student, [teacher], "kd+feature", LossSpec(beta=1.0), X)
    loss_fn = loss_fn_wrap(d) if loss_fn_wrap else d
    hist = Trainer(student, CFG, loss_fn=loss_fn, extra=d, ckpt_dir=ckpt, progress=False).fit(
        tiny_data(), tiny_data(48, seed=3)
    )
    return student, d, hist


class _Kill(Exception):
    pass


def test_distillation_resumes_bit_identically_with_adapters(tmp_path):
    full_s, full_d, full_h = _distill_run(tmp_path / "a")
    assert full_h[-1]["train_loss"] < full_h[0]["train_loss"]
    state = torch.load(tmp_path / "a" / "last_state.pt", weights_only=True)
    assert any("adapters" in k for k in state["extra"])  # adapters are in the checkpoint

    def dies(d):
        calls = {"n": 0}

        def fn(model, x, y):
            calls["n"] += 1
            if calls["n"] == 6 + 3:  # 6 steps/epoch: die mid epoch 2
                raise _Kill
            return d(model, x, y)

        return fn

    with pytest.raises(_Kill):
        _distill_run(tmp_path / "b", dies)
    res_s, res_d, res_h = _distill_run(tmp_path / "b", seed=99)  # fresh weights
    assert [h["epoch"] for h in res_h] == [1, 2, 3]
    for a, b in zip(full_s.state_dict().values(), res_s.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for a, b in zip(full_d.state_dict().values(), res_d.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_self_distillation_and_early_exit():
    s = TinyNet(width=8)
    d = Distiller.build(s, [], "self", LossSpec(layers=(("layer1", ""), ("layer2", ""))), X)
    assert len(d.losses[0].heads) == 1
    Trainer(s, CFG, loss_fn=d, extra=d, progress=False).fit(tiny_data())
    heads = d.losses[0]
    calls = {"n": 0}
    s.layer2.register_forward_pre_hook(lambda *_: calls.__setitem__("n", calls["n"] + 1))
    never = early_exit(s, heads, X, threshold=0.0)  # nothing is that certain: full depth
    torch.testing.assert_close(never.logits, s.eval()(X))
    assert never.exits.tolist() == [1, 1, 1, 1]
    calls["n"] = 0
    always = early_exit(s, heads, X, threshold=1.01)  # everything exits at the first head
    assert always.exits.tolist() == [0, 0, 0, 0] and calls["n"] == 0  # layer2 never ran
    with torch.no_grad():
        torch.testing.assert_close(always.logits, heads.eval().heads[0](s.layer1(X))[1])
    assert sum(len(m._forward_hooks) for m in s.modules()) == 0
    assert normalized_entropy(torch.tensor([[100.0, 0.0, 0.0]])).item() < 1e-6
