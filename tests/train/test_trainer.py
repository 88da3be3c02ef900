"""The trainer: it learns, a killed run resumes bit-identically, and divergence is reported."""

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from edgeslim.core import EdgeslimError
from edgeslim.train.config import TrainConfig
from edgeslim.train.schedule import lr_at
from edgeslim.train.trainer import Trainer, cross_entropy


def _data(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    return TensorDataset(x, y)


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 2)
    )


CFG = TrainConfig(epochs=4, batch_size=16, lr=0.05, augment=False)


def test_trainer_learns_and_logs():
    cfg = TrainConfig(epochs=6, batch_size=16, lr=0.1, augment=False)
    hist = Trainer(_model(), cfg, progress=False).fit(_data(192), _data(96, seed=1))
    assert len(hist) == 6 and hist[-1]["val_top1"] > 0.85
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]


class _Kill(Exception):
    pass


def test_resume_after_kill_is_identical(tmp_path):
    full = _model()
    Trainer(full, CFG, ckpt_dir=tmp_path / "a", progress=False).fit(_data())

    steps = {"n": 0}
    base = cross_entropy()

    def dies_mid_epoch_3(model, x, y):
        steps["n"] += 1
        if steps["n"] == 2 * 6 + 3:  # 6 steps/epoch: die in the middle of epoch 3
            raise _Kill
        return base(model, x, y)

    killed = _model()
    with pytest.raises(_Kill):
        Trainer(killed, CFG, loss_fn=dies_mid_epoch_3, ckpt_dir=tmp_path / "b", progress=False).fit(
            _data()
        )
    resumed = _model(seed=123)  # fresh weights: everything must come from the checkpoint
    hist = Trainer(resumed, CFG, ckpt_dir=tmp_path / "b", progress=False).fit(_data())
    assert [h["epoch"] for h in hist] == [1, 2, 3, 4]
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)


def test_checkpoint_from_other_settings_is_refused(tmp_path):
    Trainer(_model(), CFG, ckpt_dir=tmp_path, progress=False).fit(_data())
    other = TrainConfig(epochs=4, batch_size=16, lr=0.01, augment=False)
    with pytest.raises(EdgeslimError, match="other training settings"):
        Trainer(_model(), other, ckpt_dir=tmp_path, progress=False).fit(_data())


def test_divergence_is_reported():
    cfg = TrainConfig(epochs=1, batch_size=16, lr=1e30, augment=False)
    with pytest.raises(EdgeslimError, match="diverged"):
        Trainer(_model(), cfg, progress=False).fit(_data())


def test_training_restores_mode():
    m = _model().eval()
    Trainer(m, TrainConfig(epochs=1, batch_size=32, augment=False), progress=False).fit(_data())
    assert not m.training


@pytest.mark.parametrize("bad", [{"epochs": 0}, {"lr": -1.0}, {"optimizer": "lion"}])
def test_config_validation(bad):
    with pytest.raises(EdgeslimError):
        TrainConfig(**bad)


def test_lr_schedules():
    assert lr_at(0, 100, 0.1, "cosine") == pytest.approx(0.1)
    assert lr_at(100, 100, 0.1, "cosine") == pytest.approx(0.0)
    assert lr_at(60, 100, 0.1, "step") == pytest.approx(0.01)
    assert lr_at(0, 100, 0.1, "cosine", warmup_steps=10) == pytest.approx(0.01)


def _conv_data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 8, 8, generator=g)
    y = (x[:, 0].mean((1, 2)) > 0).long()
    return TensorDataset(x, y)


def _conv_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 2),
    )


@pytest.mark.parametrize("amp", [False, True])
def test_channels_last_and_bf16_train_checkpoint_and_hand_back_a_standard_model(tmp_path, amp):
    cfg = TrainConfig(epochs=2, batch_size=16, lr=0.05, augment=False, channels_last=True, amp=amp)
    m = _conv_model()
    hist = Trainer(m, cfg, ckpt_dir=tmp_path, progress=False).fit(_conv_data())
    assert all(p.is_contiguous() for p in m.parameters())  # NCHW again after training
    assert (tmp_path / "last.safetensors").is_file()  # saved despite NHWC weights
    # the same run in NCHW fp32 agrees (bf16 autocast only within its rounding)
    ref = _conv_model()
    plain = TrainConfig(epochs=2, batch_size=16, lr=0.05, augment=False)
    ref_hist = Trainer(ref, plain, progress=False).fit(_conv_data())
    tol = 5e-2 if amp else 1e-4
    assert hist[-1]["train_loss"] == pytest.approx(ref_hist[-1]["train_loss"], abs=tol)
    for (k, a), b in zip(ref.state_dict().items(), m.state_dict().values(), strict=True):
        torch.testing.assert_close(b.float(), a.float(), rtol=tol, atol=tol, msg=k)
    # a finished run "resumes" to the same weights from its NHWC-trained checkpoint
    again = _conv_model(seed=5)
    Trainer(again, cfg, ckpt_dir=tmp_path, progress=False).fit(_conv_data())
    for (k, a), b in zip(m.state_dict().items(), again.state_dict().values(), strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=0, msg=k)


def test_old_checkpoints_keep_their_identity():
    # channels_last and ema were added later; leaving them off must not change the fingerprint
    assert TrainConfig().fingerprint() != TrainConfig(channels_last=True).fingerprint()
    assert TrainConfig().fingerprint() != TrainConfig(ema=0.999).fingerprint()
    import hashlib
    import json
    from dataclasses import asdict

    d = {k: v for k, v in asdict(TrainConfig()).items() if k not in ("patience", "device")}
    del d["channels_last"], d["ema"]
    old = hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]
    assert TrainConfig().fingerprint() == old
