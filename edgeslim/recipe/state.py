"""What flows between recipe stages, and what every stage may read."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from torch.utils.data import DataLoader, Dataset

from edgeslim.core.errors import EdgeslimError
from edgeslim.models.spec import LoadedModel
from edgeslim.recipe.schema import Recipe


@dataclass
class PipelineState:
    """The model after a stage.

    ``lm`` is the current PyTorch model, float or fake-quantized (a quantized
    model stays a PyTorch model: later stages may train it). ``onnx`` is the
    stage's deployable file when the stage wrote one (INT8 QDQ, FP32 export);
    otherwise the checkpoint exports it. ``layers`` collects per-layer facts for
    the report (``bits``, ``sensitivity``, ...); ``notes`` a stage summary.
    """

    lm: LoadedModel
    onnx: Path | None = None
    layers: dict[str, dict] = field(default_factory=dict)
    notes: dict = field(default_factory=dict)


@dataclass
class PipelineContext:
    """Read-only facts for stages: the recipe, data, the frozen input model, where to write."""

    recipe: Recipe
    teacher: LoadedModel  # the input model, frozen: the default distillation teacher
    work_dir: Path  # the running stage's own directory
    progress: bool = True
    _cache: dict = field(default_factory=dict)

    @property
    def seed(self) -> int:
        return self.recipe.seed

    @property
    def task(self) -> str:
        """The data's task (:mod:`edgeslim.tasks`); ``classification`` without data."""
        if not self.recipe.data:
            return "classification"
        from edgeslim.data import dataset_info

        return dataset_info(self.recipe.data).task

    def require_data(self, stage: str) -> str:
        if not self.recipe.data:
            raise EdgeslimError(f"stage {stage!r} needs data: set 'data:' in the recipe")
        return self.recipe.data

    def dataset(self, split: str, augment: bool = False) -> Dataset:
        from edgeslim.data import load_dataset

        key = (split, augment)
        if key not in self._cache:
            self._cache[key] = load_dataset(self.require_data("this"), split, augment=augment)
        return self._cache[key]

    def loader(self, split: str, batch_size: int = 256) -> DataLoader:
        from edgeslim.data import make_loader

        return make_loader(self.dataset(split), batch_size, shuffle=False)
