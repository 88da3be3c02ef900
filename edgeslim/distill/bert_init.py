"""DistilBERT-style student initialisation: keep every other layer of a BERT teacher.

Sanh, Debut, Chaumond, Wolf, "DistilBERT, a distilled version of BERT", 2019,
Section 3: "we initialize the student from the teacher by taking one layer out
of two". The student keeps the teacher's width, embeddings, pooler and
classifier; its ``j``-th encoder layer is a copy of teacher layer ``keep[j]``
(default ``0, 2, 4, ...``). Works for any transformers encoder whose layers sit
in ``<base>.encoder.layer`` (BERT, RoBERTa, ELECTRA, ...), wrapped as
:class:`~edgeslim.models.hf.HFClassifier`.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

from edgeslim.core.errors import EdgeslimError
from edgeslim.models.hf import HFClassifier, build_hf
from edgeslim.models.spec import LoadedModel


def every_other(num_layers: int) -> list[int]:
    """``[0, 2, 4, ...]``: the teacher layers DistilBERT keeps.

    Example:
        >>> every_other(4)
        [0, 2]
    """
    return list(range(0, num_layers, 2))


def distilbert_init(teacher: HFClassifier, keep: Sequence[int] | None = None) -> HFClassifier:
    """A new, shallower :class:`HFClassifier` whose weights are copied from ``teacher``.

    Args:
        teacher: the wrapped transformers classifier (not modified).
        keep: teacher layer indices the student keeps, in order; default every other one.

    Example:
        >>> # student = distilbert_init(teacher_lm.model)   # 4 layers -> 2 (teacher's 0 and 2)
    """
    hf = teacher.hf
    n = hf.config.num_hidden_layers
    keep = list(keep) if keep is not None else every_other(n)
    if not keep or any(not 0 <= k < n for k in keep):
        raise EdgeslimError(f"layers to keep {keep} are not within the teacher's {n} layers")
    config = copy.deepcopy(hf.config)
    config.num_hidden_layers = len(keep)
    student_hf = type(hf)(config)
    prefix = f"{hf.base_model_prefix}.encoder.layer."
    source = hf.state_dict()
    state = {}
    for name in student_hf.state_dict():
        if name.startswith(prefix):
            j, rest = name[len(prefix) :].split(".", 1)
            name_t = f"{prefix}{keep[int(j)]}.{rest}"
        else:
            name_t = name
        if name_t not in source:
            raise EdgeslimError(f"teacher has no weight {name_t!r} for student {name!r}")
        state[name] = source[name_t].clone()
    student_hf.load_state_dict(state, strict=True)
    return HFClassifier(student_hf.train(teacher.training))


def distilbert_student(teacher: LoadedModel, keep: Sequence[int] | None = None) -> LoadedModel:
    """:func:`distilbert_init` on a loaded ``hf:`` teacher, with a source that saves and reloads."""
    if teacher.source.get("kind") != "hf" or not isinstance(teacher.model, HFClassifier):
        raise EdgeslimError(f"{teacher.name} is not a transformers (hf:) model")
    model = distilbert_init(teacher.model, keep)
    config = dict(teacher.source["config"])
    config["num_hidden_layers"] = model.hf.config.num_hidden_layers
    build_hf(config)  # the saved source must rebuild this architecture
    source = {"kind": "hf", "config": config}
    name = f"{teacher.name}-distil{config['num_hidden_layers']}"
    return LoadedModel(model, source, teacher.input, name, {"init_from": teacher.name})
