"""Resolve teachers and students for distillation from specs.

A student is any model spec (zoo name, ``file.py:factory``, a saved -- e.g.
pruned -- edgeslim model directory, ``hf:config.json``) or one derived from the
first teacher:

- ``prune:R``: the teacher with a fraction ``R`` of its channels removed by
  :func:`edgeslim.prune.prune` (weights inherited, so distillation starts warm);
- ``distilbert``: for a transformers teacher, DistilBERT's init -- every other
  layer of the teacher (:mod:`edgeslim.distill.bert_init`).

A teacher named by a zoo name is trained (and cached) on the data first.
"""

from __future__ import annotations

import copy

from edgeslim.core.errors import EdgeslimError
from edgeslim.data import dataset_info
from edgeslim.models.inputs import InputSpec
from edgeslim.models.spec import LoadedModel, load_model
from edgeslim.models.zoo import ZOO
from edgeslim.train.config import TrainConfig


def fit_input(lm: LoadedModel, data: str) -> LoadedModel:
    """Make ``lm``'s example input match one sample of ``data`` (image size, token length)."""
    shape = (1, *dataset_info(data).input_shape)
    if lm.input is not None and lm.input.dtype == "int64":
        lm.input = InputSpec(shape, "int64", lm.input.vocab_size)
    else:
        lm.input = InputSpec(shape)
    return lm


def load_teacher(spec: str, data: str, epochs: int, progress: bool = True) -> LoadedModel:
    """A trained teacher: a saved model as is, or a zoo model trained (cached) for ``epochs``."""
    if spec in ZOO:
        from edgeslim.workflows.train import pretrained

        lm = pretrained(spec, data, TrainConfig(epochs=epochs), progress=progress)
    else:
        lm = load_model(spec, num_classes=dataset_info(data).num_classes)
        if lm.source.get("kind") != "zoo" and not lm.meta.get("trained_on"):
            print(f"note: teacher {spec} carries no training record; it is used as given")
    return fit_input(lm, data)


def load_student(spec: str, teacher: LoadedModel | None, data: str) -> LoadedModel:
    """The student named by ``spec`` (see the module docstring for the forms)."""
    classes = dataset_info(data).num_classes
    if spec.startswith("prune:"):
        return fit_input(_pruned(teacher, spec.partition(":")[2]), data)
    if spec == "distilbert":
        if teacher is None:
            raise EdgeslimError("--student distilbert needs a transformers teacher")
        from edgeslim.distill.bert_init import distilbert_student

        return fit_input(distilbert_student(teacher), data)
    return fit_input(load_model(spec, num_classes=classes), data)


def _pruned(teacher: LoadedModel | None, ratio_text: str) -> LoadedModel:
    if teacher is None:
        raise EdgeslimError("--student prune:R prunes the teacher; give --teacher")
    try:
        ratio = float(ratio_text)
    except ValueError:
        raise EdgeslimError(f"bad prune ratio {ratio_text!r}: use prune:0.5") from None
    if not 0 < ratio < 1:
        raise EdgeslimError(f"prune ratio must be in (0, 1), got {ratio}")
    try:
        from edgeslim.prune import PruneConfig, prune
    except ImportError as e:
        raise EdgeslimError(
            f"--student prune:R needs edgeslim.prune, which failed to load: {e}"
        ) from None
    res = prune(teacher.model, teacher.require_input().example(batch=2), PruneConfig(ratio=ratio))
    meta = {"pruned_from": teacher.name, "prune_ratio": res.ratio}
    return LoadedModel(
        res.model, copy.deepcopy(teacher.source), teacher.input, f"{teacher.name}-p{ratio}", meta
    )
