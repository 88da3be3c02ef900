"""Oracle tests: every loss against a hand-written formula, plus its defining identities."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from edgeslim.core.errors import EdgeslimError
from edgeslim.distill.hooks import Outputs
from edgeslim.distill.losses import LOSSES, LossSpec, Probe
from edgeslim.distill.losses.attention import at_loss, attention_map
from edgeslim.distill.losses.fitnets import hint_loss
from edgeslim.distill.losses.hidden_cosine import cosine_loss
from edgeslim.distill.losses.kd import kd_loss
from edgeslim.distill.losses.logits_mse import logits_mse
from edgeslim.distill.losses.multi_teacher import ensemble_soft_targets
from edgeslim.distill.losses.self_distill import AuxHead, self_distill_loss
from edgeslim.distill.losses.tinybert import attention_mse, uniform_layer_map

g = torch.Generator().manual_seed(0)
ZS, ZT = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
Y = torch.tensor([0, 1, 2, 3, 4, 0])


def _kl_by_hand(zs, zt, t):
    p = [[math.exp(v / t) for v in row] for row in zt.tolist()]
    q = [[math.exp(v / t) for v in row] for row in zs.tolist()]
    total = 0.0
    for pr, qr in zip(p, q, strict=True):
        sp, sq = sum(pr), sum(qr)
        total += sum((a / sp) * math.log((a / sp) / (b / sq)) for a, b in zip(pr, qr, strict=True))
    return total / len(p)


@pytest.mark.parametrize("t", [1.0, 4.0])
@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_kd_equals_hand_written_kl_times_t_squared(t, alpha):
    expected = (1 - alpha) * F.cross_entropy(ZS, Y).item() + alpha * t * t * _kl_by_hand(ZS, ZT, t)
    assert kd_loss(ZS, ZT, Y, t, alpha).item() == pytest.approx(expected, rel=1e-5)


def test_kd_identities():
    assert torch.allclose(kd_loss(ZS, ZT, Y, 4.0, alpha=0.0), F.cross_entropy(ZS, Y))
    assert kd_loss(ZS, ZS.clone(), Y, 4.0, alpha=1.0).abs().item() < 1e-6
    assert kd_loss(ZS, ZT, Y, 4.0, alpha=1.0).item() > 0


def test_kd_t_squared_keeps_gradient_scale():
    # Hinton et al.: soft-target gradients scale as 1/T^2, which the T^2 factor undoes.
    grads = []
    for t in (5.0, 20.0):
        zs = ZS.clone().requires_grad_()
        kd_loss(zs, ZS * 0.9, Y, t, alpha=1.0).backward()
        grads.append(zs.grad.norm().item())  # high-T: T^2 * (zs - zt) / (N * C * T^2)
    assert grads[0] == pytest.approx(grads[1], rel=0.05)


def test_logits_mse():
    assert logits_mse(ZS, ZT, Y, alpha=1.0).item() == pytest.approx(((ZS - ZT) ** 2).mean().item())
    assert torch.allclose(logits_mse(ZS, ZT, Y, alpha=0.0), F.cross_entropy(ZS, Y))


def test_multi_teacher_soft_targets():
    t2 = torch.randn(6, 5, generator=g)
    avg = ensemble_soft_targets([ZT, t2], 2.0, None)
    by_hand = (torch.softmax(ZT / 2, 1) + torch.softmax(t2 / 2, 1)) / 2
    torch.testing.assert_close(avg, by_hand)
    weighted = ensemble_soft_targets([ZT, t2], 2.0, [3.0, 1.0])
    torch.testing.assert_close(
        weighted, 0.75 * torch.softmax(ZT / 2, 1) + 0.25 * torch.softmax(t2 / 2, 1)
    )
    with pytest.raises(EdgeslimError):
        ensemble_soft_targets([ZT, t2], 2.0, [1.0])


def test_multi_teacher_with_one_weight_is_kd():
    t2 = torch.randn(6, 5, generator=g)
    probe = Probe(Outputs(ZS, {}), (Outputs(ZT, {}), Outputs(t2, {})))
    multi = LOSSES.get("multi").build(
        LossSpec(temperature=3, alpha=0.7, teacher_weights=(1, 0)), probe
    )
    got = multi(Outputs(ZS, {}), [Outputs(ZT, {}), Outputs(t2, {})], Y)
    torch.testing.assert_close(got, kd_loss(ZS, ZT, Y, 3.0, 0.7))


def test_hint_and_adapters():
    s = torch.randn(2, 4, 8, 8, generator=g)
    t = torch.randn(2, 6, 4, 4, generator=g)
    assert hint_loss(t, t).item() == 0.0
    spec = LossSpec(layers=(("a", "b"),), beta=2.0)
    loss = LOSSES.get("feature").build(spec, Probe(Outputs(ZS, {"a": s}), (Outputs(ZT, {"b": t}),)))
    conv = loss.adapters[0]
    assert isinstance(conv, torch.nn.Conv2d) and (conv.in_channels, conv.out_channels) == (4, 6)
    value = loss(Outputs(ZS, {"a": s}), [Outputs(ZT, {"b": t})], Y)
    expected = 2.0 * F.mse_loss(F.adaptive_avg_pool2d(conv(s), (4, 4)), t)
    torch.testing.assert_close(value, expected)
    value.backward()
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0


def test_attention_transfer_matches_paper_formula():
    s = torch.randn(2, 4, 6, 6, generator=g)
    t = torch.randn(2, 9, 6, 6, generator=g)
    q = lambda f: F.normalize(f.pow(2).mean(1).flatten(1), dim=1)  # noqa: E731
    assert at_loss(s, t).item() == pytest.approx((q(s) - q(t)).pow(2).mean().item(), rel=1e-6)
    torch.testing.assert_close(attention_map(3 * s), attention_map(s))  # scale-free
    assert at_loss(s, s).item() == 0.0
    loss = LOSSES.get("at").build(LossSpec(layers=(("a", "b"),)), Probe(Outputs(ZS, {}), ()))
    value = loss(Outputs(ZS, {"a": s}), [Outputs(ZT, {"b": t})], Y)
    assert value.item() == pytest.approx(1000 / 2 * at_loss(s, t).item(), rel=1e-6)


def test_cosine_hidden_state():
    h = torch.randn(2, 5, 8, generator=g)
    assert cosine_loss(h, 2 * h).item() == pytest.approx(0.0, abs=1e-6)
    ref = F.cosine_embedding_loss(h.flatten(0, 1), (-h).flatten(0, 1), torch.ones(10))
    assert cosine_loss(h, -h).item() == pytest.approx(ref.item()) == pytest.approx(2.0)


def test_tinybert_mapping_and_attention():
    assert uniform_layer_map(2, 4) == [(0, 0), (1, 2), (2, 4)]
    assert uniform_layer_map(3, 6)[-1] == (3, 6)
    with pytest.raises(EdgeslimError):
        uniform_layer_map(3, 4)
    a = torch.softmax(torch.randn(2, 4, 5, 5, generator=g), -1)
    assert attention_mse(a, a).item() == 0.0
    grouped = attention_mse(a[:, :2], a)  # 4 teacher heads averaged pairwise onto 2
    assert grouped.item() == pytest.approx(
        F.mse_loss(a[:, :2], a.unflatten(1, (2, 2)).mean(2)).item()
    )


def test_tinybert_loss_hidden_and_attention():
    hs, ht = torch.randn(2, 5, 8, generator=g), torch.randn(2, 5, 12, generator=g)
    a = torch.softmax(torch.randn(2, 2, 5, 5, generator=g), -1)
    spec = LossSpec(layers=(("h", "H"), ("att#1", "ATT#1")))
    feats_s, feats_t = {"h": hs, "att#1": a}, {"H": ht, "ATT#1": a}
    loss = LOSSES.get("tinybert").build(spec, Probe(Outputs(ZS, feats_s), (Outputs(ZT, feats_t),)))
    w = loss.adapters[0]
    assert isinstance(w, torch.nn.Linear) and w.weight.shape == (12, 8)
    expected = F.mse_loss(w(hs), ht)  # the attention pair is identical: contributes 0
    torch.testing.assert_close(loss(Outputs(ZS, feats_s), [Outputs(ZT, feats_t)], Y), expected)


def test_self_distillation_formula():
    head = AuxHead((6, 4, 3, 3), deep_dim=7, num_classes=5)
    f_shallow = torch.randn(6, 4, 3, 3, generator=g)
    deep = torch.randn(6, 7, generator=g)
    feat, z = head(f_shallow)
    got = self_distill_loss([(feat, z)], deep, ZS, Y, temperature=3.0, alpha=0.4, beta=0.5)
    expected = (
        F.cross_entropy(ZS, Y)
        + 0.6 * F.cross_entropy(z, Y)
        + 0.4 * 9 * F.kl_div(F.log_softmax(z / 3, 1), F.softmax(ZS / 3, 1), reduction="batchmean")
        + 0.5 * F.mse_loss(feat, deep)
    )
    torch.testing.assert_close(got, expected)


def test_registry_names_and_duplicates():
    assert set(LOSSES.names()) >= {
        "kd",
        "mse",
        "feature",
        "at",
        "cosine",
        "tinybert",
        "multi",
        "self",
    }
    with pytest.raises(ValueError):
        LOSSES.register("kd", LOSSES.get("kd"))


@pytest.mark.parametrize("bad", [{"temperature": 0.0}, {"alpha": 1.5}, {"beta": -1.0}])
def test_spec_validation(bad):
    with pytest.raises(EdgeslimError):
        LossSpec(**bad)
