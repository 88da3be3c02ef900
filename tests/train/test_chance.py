"""The chance guard looks after a third of the run (at least 3 epochs) and at the end."""

import pytest

from edgeslim.core.errors import EdgeslimError
from edgeslim.train.chance import ChanceGuard, chance_guard, chance_level


def _at(epoch, acc):
    return [{"epoch": epoch, "val_top1": acc, "train_top1": acc}]


@pytest.mark.parametrize(
    "epochs, checked",
    [(1, {1}), (3, {3}), (6, {3, 6}), (15, {5, 15}), (30, {10, 30})],
)
def test_guard_checks_after_a_third_of_the_run_and_at_the_end(epochs, checked):
    guard = ChanceGuard(num_classes=10, epochs=epochs, strict=True)
    for epoch in range(1, epochs + 1):
        if epoch in checked:
            with pytest.raises(EdgeslimError, match="chance level for 10 classes"):
                guard(_at(epoch, 0.11))
        else:
            guard(_at(epoch, 0.11))  # an early plateau is not an error


def test_guard_margin_and_train_fallback(capsys):
    guard = ChanceGuard(num_classes=4, epochs=3)
    guard(_at(3, chance_level(4) + 0.03))  # above chance + 2 points: silent
    assert not guard.warned and capsys.readouterr().err == ""
    guard([{"epoch": 3, "val_top1": None, "train_top1": 0.26}])
    assert guard.warned and "training top-1 is 26.0%" in capsys.readouterr().err


def test_guard_follows_the_task():
    assert chance_level(4, "sequence_classification") == 0.25
    assert chance_level(4, "segmentation") is None  # mIoU has no chance level: no guard
    assert chance_guard("segmentation", 4, epochs=3) is None
    with pytest.raises(EdgeslimError, match="no chance level"):
        ChanceGuard(num_classes=4, epochs=3, task="segmentation")
    guard = chance_guard("sequence_classification", 4, epochs=3, strict=True)
    with pytest.raises(EdgeslimError, match="validation top-1 is 25.0%"):
        guard(_at(3, 0.25))
