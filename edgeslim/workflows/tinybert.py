"""TinyBERT's two-stage distillation as a schedule of label-free distillation phases.

Jiao et al., "TinyBERT: Distilling BERT for Natural Language Understanding",
Findings of EMNLP 2020, Section 3.2:

1. **general** distillation on an unlabeled corpus: embedding, hidden-state and
   attention losses (``tinybert``) over the uniform layer map, no labels;
2. **task-specific** distillation on the task's data, in two steps:
   **intermediate** (the same layer losses) then **prediction** (soft cross-entropy at
   temperature ``t``, ``soft_ce``).

Every phase runs :func:`~edgeslim.workflows.distill.distill_model` with
``hard_labels=False``, so no phase reads a label: the task stage learns the task from
the teacher alone, as in the paper. Each phase checkpoints in its own directory
(``OUT/phases/<phase>``), so a killed run resumes where it stopped. Fresh projections
``W`` are learned per phase (the paper's stages are separate runs too).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

from torch.utils.data import Dataset

from edgeslim.core.errors import EdgeslimError
from edgeslim.distill.losses import LossSpec
from edgeslim.models.saved import save_model
from edgeslim.models.spec import LoadedModel
from edgeslim.train.config import TrainConfig
from edgeslim.train.distributed import is_main_process
from edgeslim.workflows.distill import DistillResult, distill_model

STAGES = ("general", "task", "both")


@dataclass(frozen=True)
class TinyBERTPlan:
    """Epochs of each phase (0 skips it) and the prediction phase's temperature.

    Example:
        >>> TinyBERTPlan.for_stage("both", epochs=2, prediction_epochs=1)
        TinyBERTPlan(general_epochs=2, intermediate_epochs=2, prediction_epochs=1, temperature=1.0)
    """

    general_epochs: int = 0
    intermediate_epochs: int = 0
    prediction_epochs: int = 0
    temperature: float = 1.0  # the paper's t = 1

    def __post_init__(self) -> None:
        epochs = (self.general_epochs, self.intermediate_epochs, self.prediction_epochs)
        if min(epochs) < 0 or not any(epochs):
            raise EdgeslimError(f"TinyBERT phase epochs must be >= 0, not all 0: {epochs}")
        if not self.temperature > 0:
            raise EdgeslimError(f"temperature must be > 0, got {self.temperature}")

    @classmethod
    def for_stage(
        cls,
        stage: str,
        epochs: int,
        prediction_epochs: int | None = None,
        temperature: float = 1.0,
    ) -> TinyBERTPlan:
        """``general``: the general stage only; ``task``: intermediate + prediction;
        ``both``: all three. ``epochs`` per layer-loss phase, ``prediction_epochs``
        (default ``epochs``) for the prediction phase."""
        if stage not in STAGES:
            raise EdgeslimError(f"unknown TinyBERT stage {stage!r}; choose {', '.join(STAGES)}")
        pred = epochs if prediction_epochs is None else prediction_epochs
        return cls(
            general_epochs=epochs if stage in ("general", "both") else 0,
            intermediate_epochs=epochs if stage in ("task", "both") else 0,
            prediction_epochs=pred if stage in ("task", "both") else 0,
            temperature=temperature,
        )

    def phases(self) -> list[tuple[str, str, int]]:
        """``(phase, loss, epochs)`` in order, skipping phases with 0 epochs."""
        all_ = [
            ("general", "tinybert", self.general_epochs),
            ("intermediate", "tinybert", self.intermediate_epochs),
            ("prediction", "soft_ce", self.prediction_epochs),
        ]
        return [p for p in all_ if p[2] > 0]


def tinybert_distill(
    student: LoadedModel,
    teacher: LoadedModel,
    data: str,
    plan: TinyBERTPlan,
    config: TrainConfig,
    out_dir: str | Path | None = None,
    *,
    spec: LossSpec | None = None,
    corpus: Dataset | None = None,
    train_data: Dataset | None = None,
    progress: bool = True,
) -> DistillResult:
    """Run ``plan``'s phases on ``student`` (in place) from the frozen ``teacher``.

    Args:
        student: a transformers student (random, DistilBERT-initialised or pruned).
        teacher: the fine-tuned transformers teacher.
        data: the task's dataset spec (task data, evaluation).
        plan: epochs per phase and the prediction temperature.
        config: the training run of every phase (its ``epochs`` is replaced per phase).
        out_dir: the final student, and ``phases/<phase>/`` checkpoints; None: memory only.
        spec: layer map and ``beta`` of the layer losses (default: uniform map, beta 1).
        corpus: the general stage's unlabeled corpus (default ``data``'s train split);
            labels it may carry are never read.
        train_data: the task stage's data (default ``data``'s train split).

    Example:
        >>> # r = tinybert_distill(student, teacher, "textlogic",
        >>> #                      TinyBERTPlan.for_stage("both", 3), TrainConfig(lr=1e-3))
    """
    spec = spec or LossSpec()
    history: list[dict] = []
    res = None
    for phase, loss, epochs in plan.phases():
        phase_spec = replace(spec, temperature=plan.temperature, alpha=1.0)
        res = distill_model(
            student,
            [teacher],
            data,
            loss,
            phase_spec,
            replace(config, epochs=epochs),
            Path(out_dir) / "phases" / phase if out_dir is not None else None,
            train_data=corpus if phase == "general" else train_data,
            progress=progress,
            hard_labels=False,
        )
        history += [{**h, "phase": phase} for h in res.history]
        if progress and is_main_process() and res.test_top1 is not None:
            print(f"tinybert {phase}: test {100 * res.test_top1:.2f}%", flush=True)
    if res is None:  # unreachable: TinyBERTPlan refuses a plan without phases
        raise EdgeslimError("TinyBERT plan has no phase to run")
    student.meta["tinybert"] = asdict(plan)
    student.meta["history"] = history
    if out_dir is not None and is_main_process():
        save_model(student, out_dir)
    return DistillResult(student, res.distiller, history, res.test_top1)
