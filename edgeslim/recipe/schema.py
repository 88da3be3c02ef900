"""The recipe schema: what a ``compress`` run states, validated strictly.

A recipe is data (YAML, no tags, nothing imported or executed). Unknown keys and
wrong types are errors. Each stage entry is a one-key mapping ``{stage: settings}``
whose settings are validated by the schema that stage registered (see
:mod:`edgeslim.recipe.registry`), so a new technique is a new registry entry.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from edgeslim.recipe.problems import did_you_mean
from edgeslim.tasks import TASKS

RECIPE_VERSION = 1
# every metric name some registered task reports; which task applies is known only once
# the data is (recipe.measure.check_targets checks the name against it)
METRICS: list[str] = sorted({m.name for _, t in TASKS.items() for m in t.metrics})


class Strict(BaseModel):
    """Base for every recipe section: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TrainSettings(Strict):
    """What every training stage shares; ``train_config`` turns it into a TrainConfig."""

    epochs: int = Field(8, ge=1)
    lr: float = Field(0.1, gt=0)
    batch_size: int = Field(128, ge=1)
    weight_decay: float = Field(5e-4, ge=0)
    optimizer: Literal["sgd", "adamw"] = Field("sgd", description="adamw for transformers")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum (YOLOv5: 0.937)")
    warmup_epochs: float | None = Field(
        None, ge=0, description="linear LR warm-up; default 15% of the run, at most 3 epochs"
    )
    amp: bool = Field(False, description="bf16 autocast (CPUs with AVX512-BF16/AMX, CUDA)")
    channels_last: bool = Field(False, description="NHWC training (faster convs on CPU)")
    ema: float | None = Field(
        None, gt=0, lt=1, description="moving average of the weights (YOLOv5: 0.9999), kept"
    )
    grad_clip: float | None = Field(None, gt=0, description="max global gradient norm")

    def train_config(self, seed: int):
        from edgeslim.train.config import TrainConfig

        return TrainConfig(
            epochs=self.epochs,
            lr=self.lr,
            batch_size=self.batch_size,
            weight_decay=self.weight_decay,
            optimizer=self.optimizer,
            momentum=self.momentum,
            warmup_epochs=self.warmup_epochs,
            amp=self.amp,
            channels_last=self.channels_last,
            ema=self.ema,
            grad_clip=self.grad_clip,
            seed=seed,
        )


class PretrainSpec(TrainSettings):
    """Train the input model first (zoo or ``hf:`` models; cached, deterministic by seed)."""


class Targets(Strict):
    """What the user wants; the report says whether each was met.

    ``max_metric_drop`` is in points of ``metric`` (a fraction metric such as top-1 counts
    percentage points); ``max_accuracy_drop`` is its older name and still accepted.
    """

    max_metric_drop: float | None = Field(
        None,
        ge=0,
        validation_alias=AliasChoices("max_metric_drop", "max_accuracy_drop"),
        description="points of `metric` the last stage may lose against the input",
    )
    metric: str | None = Field(None, description="metric name; default: the task's primary")
    latency_ms: float | None = Field(None, gt=0, description="budget on `runtime` at `batch`")
    batch: int = Field(8, ge=1)
    runtime: Literal["onnxruntime", "openvino", "torch", "torch_compile", "best"] = Field(
        "onnxruntime",
        description="deploy runtime; best: every installed one, the fastest within "
        "max_metric_drop (timed and evaluated on that runtime and precision)",
    )
    size_bytes: int | None = Field(None, gt=0)
    macs: int | None = Field(None, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _one_name(cls, v: object) -> object:
        if isinstance(v, dict) and "max_metric_drop" in v and "max_accuracy_drop" in v:
            raise ValueError("give max_metric_drop or its alias max_accuracy_drop, not both")
        return v

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, v: str | None) -> str | None:
        if v is not None and v not in METRICS:
            raise ValueError(
                f"unknown metric {v!r}{did_you_mean(v, METRICS)}; choose one of: "
                + ", ".join(METRICS)
            )
        return v


class Measure(Strict):
    """How the final report measures every stage."""

    batches: list[int] = Field(default_factory=lambda: [1, 8])
    runs: int = Field(30, ge=1)
    threads: int | None = Field(None, ge=1)
    eval_split: Literal["val", "test"] = "test"


def one_key_stage(item: object) -> object:
    """A stage entry as ``{name: settings}``: ``"export"`` and ``{export: null}`` both work."""
    if isinstance(item, str):
        return {item: {}}
    if isinstance(item, dict) and len(item) == 1:
        k = next(iter(item))
        return {k: item[k] if item[k] is not None else {}}
    raise ValueError("a stage must be a name or a one-key mapping {stage: settings}")


# validated per entry, so that every bad entry is reported with its own index and line
StageEntry = Annotated[dict[str, dict], BeforeValidator(one_key_stage)]


class Recipe(Strict):
    """A whole compression run."""

    version: int
    model: str
    data: str | None = None
    input_shape: list[int] | None = None
    num_classes: int | None = None
    pretrain: PretrainSpec | None = None
    seed: int = 0
    stages: list[StageEntry] = Field(min_length=1)
    targets: Targets = Field(default_factory=Targets)
    measure: Measure = Field(default_factory=Measure)

    @field_validator("version")
    @classmethod
    def _known_version(cls, v: int) -> int:
        if v != RECIPE_VERSION:
            raise ValueError(
                f"unsupported recipe version {v}; this edgeslim reads version {RECIPE_VERSION}"
            )
        return v
