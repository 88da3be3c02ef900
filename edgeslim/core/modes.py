"""Context helpers that change global or model state and always put it back.

Model modes are saved and restored per submodule (:class:`ModeSnapshot`), never as
one flag on the root: ``model.train(was_training)`` would switch on a BatchNorm the
user froze in eval mode.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ModeSnapshot:
    """Every submodule's train/eval mode, to put back later (never ``model.train(flag)``).

    Restoring a root flag would overwrite a submodule the user left in another mode (a
    frozen BatchNorm in eval inside a training model). A module that was swapped in
    meanwhile takes the mode of the module that held its name; a new one, its parent's.

    Example:
        >>> m = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
        >>> _ = m[1].eval()  # a frozen BN in a training model
        >>> snap = ModeSnapshot.of(m)
        >>> _ = m.train()
        >>> snap.restore(m)
        >>> m.training, m[1].training
        (True, False)
    """

    by_module: dict[nn.Module, bool]
    by_name: dict[str, bool]

    @classmethod
    def of(cls, model: nn.Module) -> ModeSnapshot:
        named = list(model.named_modules())
        return cls({m: m.training for _, m in named}, {n: m.training for n, m in named})

    def restore(self, model: nn.Module) -> None:
        for m, training in self.by_module.items():
            m.training = training
        modes: dict[str, bool] = {}
        for name, m in model.named_modules():  # parents come before their children
            if m not in self.by_module:
                parent = modes.get(name.rpartition(".")[0], model.training)
                m.training = self.by_name.get(name, parent)
            modes[name] = m.training


@contextlib.contextmanager
def keep_modes(model: nn.Module) -> Iterator[nn.Module]:
    """Let the body change modes freely; restore each submodule's mode after."""
    snap = ModeSnapshot.of(model)
    try:
        yield model
    finally:
        snap.restore(model)


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` (and every submodule) in eval mode; restore each one's own mode after.

    Example:
        >>> m = nn.Sequential(nn.Linear(2, 2), nn.Dropout()).train()
        >>> m[1].eval()
        Dropout(p=0.5, inplace=False)
        >>> with eval_mode(m):
        ...     m.training
        False
        >>> m.training, m[1].training
        (True, False)
    """
    with keep_modes(model):
        model.eval()
        yield model


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run with ``torch.set_num_threads(n)``; restore the previous count after."""
    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextlib.contextmanager
def quiet_exporter() -> Iterator[None]:
    """Silence the ONNX exporter's chatter (missing torchvision, deprecation notes)."""
    logger = logging.getLogger("torch.onnx")
    old = logger.level
    logger.setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            yield
        finally:
            logger.setLevel(old)
