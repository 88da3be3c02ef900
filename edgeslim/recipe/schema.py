"""The recipe schema: what a ``compress`` run states, validated strictly.

A recipe is data (YAML, no tags, nothing imported or executed). Unknown keys and
wrong types are errors. Each stage entry is a one-key mapping ``{stage: settings}``
whose settings are validated by the schema that stage registered (see
:mod:`edgeslim.recipe.registry`), so a new technique is a new registry entry.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

RECIPE_VERSION = 1


class Strict(BaseModel):
    """Base for every recipe section: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TrainSettings(Strict):
    """What every training stage shares; ``train_config`` turns it into a TrainConfig."""

    epochs: int = Field(8, ge=1)
    lr: float = Field(0.1, gt=0)
    batch_size: int = Field(128, ge=1)
    weight_decay: float = Field(5e-4, ge=0)
    warmup_epochs: float | None = Field(
        None, ge=0, description="linear LR warm-up; default 15% of the run, at most 3 epochs"
    )
    amp: bool = Field(False, description="bf16 autocast (CPUs with AVX512-BF16/AMX, CUDA)")
    channels_last: bool = Field(False, description="NHWC training (faster convs on CPU)")

    def train_config(self, seed: int):
        from edgeslim.train.config import TrainConfig

        return TrainConfig(
            epochs=self.epochs,
            lr=self.lr,
            batch_size=self.batch_size,
            weight_decay=self.weight_decay,
            warmup_epochs=self.warmup_epochs,
            amp=self.amp,
            channels_last=self.channels_last,
            seed=seed,
        )


class PretrainSpec(TrainSettings):
    """Train the input model first (zoo models only; cached, deterministic by seed)."""


class Targets(Strict):
    """What the user wants; the report says whether each was met."""

    max_accuracy_drop: float | None = Field(None, ge=0, description="points of top-1")
    latency_ms: float | None = Field(None, gt=0, description="budget on `runtime` at `batch`")
    batch: int = Field(8, ge=1)
    runtime: Literal["onnxruntime"] = "onnxruntime"
    size_bytes: int | None = Field(None, gt=0)
    macs: int | None = Field(None, gt=0)


class Measure(Strict):
    """How the final report measures every stage."""

    batches: list[int] = Field(default_factory=lambda: [1, 8])
    runs: int = Field(30, ge=1)
    threads: int | None = Field(None, ge=1)
    eval_split: Literal["val", "test"] = "test"


class Recipe(Strict):
    """A whole compression run."""

    version: int
    model: str
    data: str | None = None
    input_shape: list[int] | None = None
    num_classes: int | None = None
    pretrain: PretrainSpec | None = None
    seed: int = 0
    stages: list[dict[str, dict]] = Field(min_length=1)
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

    @field_validator("stages", mode="before")
    @classmethod
    def _one_key_each(cls, v: object) -> object:
        if isinstance(v, list):
            for i, item in enumerate(v):
                if isinstance(item, str):
                    v[i] = {item: {}}
                elif isinstance(item, dict) and len(item) == 1:
                    k = next(iter(item))
                    v[i] = {k: item[k] or {}}
                else:
                    raise ValueError(
                        f"stage {i} must be a name or a one-key mapping {{stage: settings}}"
                    )
        return v
