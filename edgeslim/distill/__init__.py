"""Knowledge distillation: losses (one family per file), feature hooks, trainer integration.

- :mod:`edgeslim.distill.losses`: Hinton KD, logits MSE, FitNets hints, attention
  transfer, DistilBERT cosine, TinyBERT, multi-teacher and self-distillation,
  registered in :data:`~edgeslim.distill.losses.LOSSES`.
- :class:`Distiller`: the objective the one :class:`~edgeslim.train.trainer.Trainer`
  trains with (``loss_fn`` and ``extra``), frozen teachers and hooks included.
- ``edgeslim.workflows.distill.distill_model``: the job behind ``edgeslim distill``.
- :func:`early_exit`: FastBERT-style inference with self-distilled heads;
  :mod:`edgeslim.distill.fastbert` exports them as one ONNX graph per exit point.
- :func:`distilbert_init`: a BERT student from every other teacher layer.

Example:
    >>> from edgeslim.distill import LOSSES
    >>> "kd" in LOSSES
    True
"""

from edgeslim.distill.bert_init import distilbert_init, distilbert_student
from edgeslim.distill.distiller import Distiller
from edgeslim.distill.early_exit import early_exit
from edgeslim.distill.hooks import Outputs, capture, teacher_forward
from edgeslim.distill.losses import LOSSES, DistillLoss, LossSpec
from edgeslim.distill.memo import MemoTeacher

__all__ = [
    "LOSSES",
    "DistillLoss",
    "Distiller",
    "LossSpec",
    "MemoTeacher",
    "Outputs",
    "capture",
    "distilbert_init",
    "distilbert_student",
    "early_exit",
    "teacher_forward",
]
