"""Modes come back per submodule: a BN frozen in eval inside a training model stays frozen."""

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from edgeslim.core.modes import ModeSnapshot, eval_mode, keep_modes


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(8)
        self.drop = nn.Dropout(0.2)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn1(self.conv1(x)).relu()
        x = self.bn2(self.conv2(x)).relu()
        return self.fc(self.drop(x.mean((2, 3))))


def mixed() -> Net:
    """A training model with a frozen BN and a dropout switched off: what users do."""
    torch.manual_seed(0)
    m = Net().train()
    m.bn1.eval()
    m.drop.eval()
    return m


def modes(model: nn.Module) -> dict[str, bool]:
    return {n: m.training for n, m in model.named_modules()}


EXPECTED = {
    "": True,
    "conv1": True,
    "bn1": False,
    "conv2": True,
    "bn2": True,
    "drop": False,
    "fc": True,
}


def test_eval_mode_is_eval_inside_and_each_submodule_own_mode_after():
    m = mixed()
    assert modes(m) == EXPECTED
    with eval_mode(m):
        assert not any(modes(m).values())
    assert modes(m) == EXPECTED
    with pytest.raises(ValueError), eval_mode(m):  # restored on the way out of an error too
        raise ValueError
    assert modes(m) == EXPECTED


def test_root_flag_restore_would_have_unfrozen_the_bn():
    """The bug this module exists for: ``model.train(was_training)`` on the root."""
    m = mixed()
    was_training = m.training
    m.eval()
    m.train(was_training)
    assert m.bn1.training  # switched on behind the user's back
    m = mixed()
    with keep_modes(m):
        m.eval()
    assert modes(m) == EXPECTED


def test_swapped_in_module_takes_the_mode_of_the_one_it_replaced_and_new_ones_their_parent():
    m = mixed()
    snap = ModeSnapshot.of(m)
    m.train()
    m.bn1 = nn.BatchNorm2d(8)  # replaces the frozen BN (as a pruning swap would)
    m.extra = nn.Sequential(nn.Dropout())  # brand new, under the training root
    m.extra.eval()
    snap.restore(m)
    assert not m.bn1.training and not m.drop.training
    assert m.extra.training and m.extra[0].training and m.conv1.training


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 3, 8, 8, generator=g)
    return x, torch.randint(0, 4, (16,), generator=g)


def _evaluate(m, tmp_path):
    from edgeslim.bench.accuracy import evaluate_model

    x, y = _data()
    evaluate_model(m, DataLoader(TensorDataset(x, y), batch_size=8))


def _macs(m, tmp_path):
    from edgeslim.bench.macs import count_macs

    count_macs(m, _data()[0][:1])


def _recalibrate(m, tmp_path):
    from edgeslim.prune.recalibrate import recalibrate_bn

    before = m.bn2.running_mean.clone()
    assert recalibrate_bn(m, [_data()[0]]) == 1
    assert not torch.equal(before, m.bn2.running_mean)  # it did recalibrate


def _export(m, tmp_path):
    from edgeslim.export.onnx import export_onnx
    from edgeslim.models.inputs import InputSpec

    assert export_onnx(m, InputSpec((1, 3, 8, 8)), tmp_path / "m.onnx").max_abs_diff < 1e-4


def _gradient_stats(m, tmp_path):
    from edgeslim.prune.importance import gradient_stats

    gradient_stats(m, [_data()])


def _teacher(m, tmp_path):
    from edgeslim.distill.hooks import teacher_forward

    teacher_forward(m, _data()[0], ["bn2"])


def _prune(m, tmp_path):
    from edgeslim.prune.config import PruneConfig
    from edgeslim.prune.structured import prune_

    prune_(m, _data()[0][:1], PruneConfig(ratio=0.25))
    assert m.conv1.out_channels < 8  # it did prune


def _latency(m, tmp_path):
    from edgeslim.bench.latency import measure, torch_target
    from edgeslim.models.inputs import InputSpec

    measure([torch_target(m, InputSpec((1, 3, 8, 8)), "m")], (1,), runs=2, warmup=1, progress=False)


def _train(m, tmp_path):
    from edgeslim.train.config import TrainConfig
    from edgeslim.train.trainer import Trainer

    cfg = TrainConfig(epochs=1, batch_size=8, lr=0.01, augment=False)
    Trainer(m, cfg, progress=False).fit(TensorDataset(*_data()))


@pytest.mark.parametrize(
    "helper",
    [_evaluate, _macs, _recalibrate, _export, _gradient_stats, _teacher, _prune, _latency, _train],
    ids=lambda f: f.__name__.lstrip("_"),
)
def test_helpers_keep_every_submodule_mode(helper, tmp_path):
    m = mixed()
    helper(m, tmp_path)
    assert modes(m) == EXPECTED


def test_calibration_keeps_every_submodule_mode():
    from edgeslim.quant.config import PTQConfig
    from edgeslim.quant.ptq import calibrate_, prepare

    qm = prepare(mixed(), PTQConfig())
    qm.model.train()
    frozen = next(n for n, mod in qm.model.named_modules() if isinstance(mod, nn.Dropout))
    qm.model.get_submodule(frozen).eval()
    before = modes(qm.model)
    assert calibrate_(qm, [_data()[0]], 1, progress=False) == 1
    assert modes(qm.model) == before and before[frozen] is False and before[""] is True
