"""The stage registry: every recipe stage is one entry (settings schema + run function).

A stage takes the pipeline state and returns the next one. Later techniques
(low-rank, fusion, QAT) are new files that call :func:`register_stage`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel

from edgeslim.core.registry import Registry
from edgeslim.recipe.schema import Recipe


@dataclass(frozen=True)
class StageDef:
    name: str
    settings: type[BaseModel]  # strict pydantic model of the stage's settings
    run: Callable  # run(state: PipelineState, settings, ctx: PipelineContext) -> PipelineState
    help: str = ""
    # what else in the recipe the result depends on (e.g. the targets); part of its checkpoint key
    depends: Callable[[Recipe], object] | None = None


STAGES: Registry[StageDef] = Registry("recipe stage")


def register_stage(
    name: str,
    settings: type[BaseModel],
    help: str = "",
    *,
    depends: Callable[[Recipe], object] | None = None,
) -> Callable[[Callable], Callable]:
    """Decorator: register ``run`` as recipe stage ``name`` with its settings schema.

    ``depends(recipe)`` returns the JSON-able parts of the recipe, beyond the stage's
    own settings, that its result depends on: a change there reruns the stage.
    """

    def deco(run: Callable) -> Callable:
        STAGES.register(name, StageDef(name, settings, run, help, depends))
        return run

    return deco
