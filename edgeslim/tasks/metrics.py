"""Metric accumulators: update per batch, compute once, bounded memory.

Each accumulator keeps only sufficient statistics (counts, a confusion matrix),
never the predictions, so evaluating a large split costs constant memory. The
statistics are a flat list of numbers (:meth:`Accumulator.state`) that sum over
data-parallel processes: summing every process's state and computing once gives
exactly the single-process value.

- :class:`TopK`: fraction of samples whose target is among the ``k`` highest scores.
- :class:`MeanIoU`: mean over classes of ``TP / (TP + FP + FN)`` (the Jaccard index;
  Everingham et al., "The PASCAL Visual Object Classes Challenge", IJCV 2010),
  classes absent from both targets and predictions excluded.
- :class:`PixelAccuracy`: fraction of labelled pixels predicted right.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from edgeslim.core.errors import EdgeslimError

IGNORE_INDEX = 255  # per-pixel targets with this value (or any value outside [0, C)) are unlabelled


class Accumulator(ABC):
    """Running statistics of one metric over batches."""

    @abstractmethod
    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        """Add one batch: raw model outputs (logits) and targets."""

    @abstractmethod
    def compute(self) -> float:
        """The metric over everything added so far."""

    @abstractmethod
    def state(self) -> list[float]:
        """Sufficient statistics as numbers that add up over processes."""

    @abstractmethod
    def load_state(self, state: list[float]) -> None:
        """Replace the statistics (e.g. with the sum over processes)."""

    @property
    @abstractmethod
    def count(self) -> int:
        """Samples (or pixels) scored so far."""


class TopK(Accumulator):
    """Top-k accuracy of ``(N, C)`` logits against ``(N,)`` class ids.

    Example:
        >>> m = TopK(1)
        >>> m.update(torch.tensor([[2.0, 1.0], [0.0, 3.0]]), torch.tensor([0, 0]))
        >>> m.compute()
        0.5
    """

    def __init__(self, k: int = 1) -> None:
        self.k = k
        self.correct = 0
        self.n = 0

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        if outputs.dim() != 2 or outputs.shape[0] != targets.shape[0]:
            raise EdgeslimError(
                f"model output shape {tuple(outputs.shape)} is not (batch, classes) "
                f"for {targets.shape[0]} targets"
            )
        k = min(self.k, outputs.shape[1])
        top = outputs.detach().topk(k, dim=1).indices.cpu()
        self.correct += int((top == targets.detach().cpu().view(-1, 1)).any(1).sum())
        self.n += int(targets.shape[0])

    def compute(self) -> float:
        if self.n == 0:
            raise EdgeslimError("no samples were scored")
        return self.correct / self.n

    def state(self) -> list[float]:
        return [float(self.correct), float(self.n)]

    def load_state(self, state: list[float]) -> None:
        self.correct, self.n = int(state[0]), int(state[1])

    @property
    def count(self) -> int:
        return self.n


class ConfusionMatrix(Accumulator):
    """A ``C x C`` confusion matrix (rows: target, columns: prediction) of per-pixel labels.

    ``C`` is taken from the outputs' class dimension (``(N, C, ...)`` logits) at the first
    update, so every process of a data-parallel run has the same shape. Targets outside
    ``[0, C)`` (e.g. ``255``) are unlabelled and skipped.
    """

    def __init__(self) -> None:
        self.matrix: torch.Tensor | None = None

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        if outputs.dim() != targets.dim() + 1 or outputs.shape[0] != targets.shape[0]:
            raise EdgeslimError(
                f"model output shape {tuple(outputs.shape)} does not fit per-pixel targets "
                f"of shape {tuple(targets.shape)}: expected (batch, classes, *target dims)"
            )
        c = int(outputs.shape[1])
        if self.matrix is None:
            self.matrix = torch.zeros(c, c, dtype=torch.int64)
        elif self.matrix.shape[0] != c:
            raise EdgeslimError(f"outputs changed from {self.matrix.shape[0]} to {c} classes")
        pred = outputs.detach().argmax(1).cpu().reshape(-1)
        true = targets.detach().cpu().reshape(-1).long()
        keep = (true >= 0) & (true < c)
        idx = true[keep] * c + pred[keep]
        self.matrix += torch.bincount(idx, minlength=c * c).view(c, c)

    def _m(self) -> torch.Tensor:
        if self.matrix is None or int(self.matrix.sum()) == 0:
            raise EdgeslimError("no labelled pixels were scored")
        return self.matrix.double()

    def state(self) -> list[float]:
        if self.matrix is None:
            return []
        return [float(v) for v in self.matrix.reshape(-1).tolist()]

    def load_state(self, state: list[float]) -> None:
        c = round(len(state) ** 0.5)
        self.matrix = torch.tensor(state, dtype=torch.float64).round().long().view(c, c)

    @property
    def count(self) -> int:
        return 0 if self.matrix is None else int(self.matrix.sum())


class MeanIoU(ConfusionMatrix):
    """Mean intersection over union across classes present in targets or predictions.

    Example:
        >>> m = MeanIoU()
        >>> logits = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]]]])  # (1, 2 classes, 1, 2)
        >>> m.update(logits, torch.tensor([[[0, 0]]]))
        >>> m.compute()  # class 0: 1/2, class 1: 0/1
        0.25
    """

    def compute(self) -> float:
        m = self._m()
        tp = m.diag()
        union = m.sum(0) + m.sum(1) - tp
        present = union > 0
        return float((tp[present] / union[present]).mean())


class PixelAccuracy(ConfusionMatrix):
    """Fraction of labelled pixels whose predicted class is the target."""

    def compute(self) -> float:
        m = self._m()
        return float(m.diag().sum() / m.sum())
