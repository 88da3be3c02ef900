"""Run a recipe: input model -> stages (each checkpointed) -> measurement -> reports.

Rerunning the same command after a crash or Ctrl-C loads every finished stage
from its checkpoint and continues with the first unfinished one, so the final
result is the same as an uninterrupted run.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import torch
from tqdm import tqdm

from edgeslim.core.errors import EdgeslimError
from edgeslim.models.spec import LoadedModel, load_model
from edgeslim.recipe.checkpoint import fingerprint, load_stage, save_stage
from edgeslim.recipe.loader import LoadedRecipe
from edgeslim.recipe.registry import STAGES
from edgeslim.recipe.state import PipelineContext, PipelineState


def input_model(recipe, progress: bool = True) -> LoadedModel:
    """The recipe's input model, trained first (cached) when ``pretrain`` asks for it.

    A model built with random weights (a zoo name, a user's factory) draws them from
    the recipe's ``seed``, inside a forked RNG so that the caller's global state is
    left as it was: two runs of one recipe start from the same weights.
    """
    shape = tuple(recipe.input_shape) if recipe.input_shape else None
    classes = recipe.num_classes
    if classes is None and recipe.data and str(recipe.model).startswith("hf:"):
        from edgeslim.data import dataset_info

        classes = dataset_info(recipe.data).num_classes  # a config's num_labels follows the data
    if recipe.pretrain is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(recipe.seed)
            return load_model(recipe.model, num_classes=classes, input_shape=shape)
    from edgeslim.workflows.train import pretrained

    if not recipe.data:
        raise EdgeslimError("'pretrain' needs 'data:' in the recipe")
    cfg = recipe.pretrain.train_config(recipe.seed)
    with torch.random.fork_rng(devices=[]):  # the initial weights too are the seed's
        torch.manual_seed(recipe.seed)
        return pretrained(recipe.model, recipe.data, cfg, progress=progress)


def run_stages(
    loaded: LoadedRecipe, out_dir: Path, *, progress: bool = True
) -> list[tuple[str, PipelineState]]:
    """Run (or resume) every stage; return ``[(name, state)]`` starting with the input."""
    r = loaded.recipe
    head = r.model_dump(exclude={"stages", "targets", "measure"})
    stages_dir = out_dir / "stages"
    fp = fingerprint(head, [])
    resumed = load_stage(stages_dir / "00-input", fp)
    if resumed is None:
        tqdm.write("stage 0: input model")
        state = save_stage(stages_dir / "00-input", PipelineState(input_model(r, progress)), fp)
    else:
        tqdm.write("stage 0: input model (from checkpoint)")
        state = resumed
    teacher = state.lm
    history = [("input", state)]
    done: list[dict] = []
    for i, stage in enumerate(loaded.stages, start=1):
        entry: dict = {stage.name: stage.settings.model_dump()}
        depends = STAGES.get(stage.name).depends
        if depends is not None:
            entry["depends"] = depends(r)
        done.append(entry)
        fp = fingerprint(head, done)
        sdir = stages_dir / f"{i:02d}-{stage.name}"
        resumed = load_stage(sdir, fp)
        if resumed is not None:
            tqdm.write(f"stage {i}: {stage.name} (from checkpoint)")
            state = resumed
            history.append((stage.name, state))
            continue
        _clear_from(stages_dir, i)
        tqdm.write(f"stage {i}: {stage.name}")
        ctx = PipelineContext(r, teacher, sdir, progress)
        sdir.mkdir(parents=True, exist_ok=True)
        # each stage works on its own copy: in-place stages must not alter earlier stages
        # (or the teacher), and the previous ONNX must not be passed on as its result
        given = PipelineState(copy.deepcopy(state.lm), None, dict(state.layers), dict(state.notes))
        new = STAGES.get(stage.name).run(given, stage.settings, ctx)
        state = save_stage(sdir, new, fp)
        history.append((stage.name, state))
    return history


def _clear_from(stages_dir: Path, index: int) -> None:
    """Remove stale checkpoints of stage ``index`` and later (their inputs changed)."""
    if not stages_dir.is_dir():
        return
    for d in stages_dir.iterdir():
        head = d.name.split("-", 1)[0]
        if head.isdigit() and int(head) >= index:
            shutil.rmtree(d, ignore_errors=True)
