"""The stage registry: every recipe stage is one entry (settings schema + run function).

A stage takes the pipeline state and returns the next one. Later techniques
(low-rank, fusion, QAT) are new files that call :func:`register_stage`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel

from edgeslim.core.registry import Registry


@dataclass(frozen=True)
class StageDef:
    name: str
    settings: type[BaseModel]  # strict pydantic model of the stage's settings
    run: Callable  # run(state: PipelineState, settings, ctx: PipelineContext) -> PipelineState
    help: str = ""


STAGES: Registry[StageDef] = Registry("recipe stage")


def register_stage(
    name: str, settings: type[BaseModel], help: str = ""
) -> Callable[[Callable], Callable]:
    """Decorator: register ``run`` as recipe stage ``name`` with its settings schema."""

    def deco(run: Callable) -> Callable:
        STAGES.register(name, StageDef(name, settings, run, help))
        return run

    return deco
