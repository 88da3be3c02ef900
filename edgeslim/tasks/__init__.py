"""Tasks: what a model is trained and judged on, as registry entries.

Importing this package registers the built-in tasks: ``classification``,
``sequence_classification``, ``segmentation`` and ``detection``. A dataset names its task
(:class:`edgeslim.data.DatasetInfo` ``.task``); consumers call :func:`get_task`.

Example:
    >>> import torch
    >>> from edgeslim.tasks import get_task
    >>> task = get_task("segmentation")
    >>> m = task.new_metrics()
    >>> m.update(torch.randn(2, 4, 8, 8), torch.randint(0, 4, (2, 8, 8)))
    >>> sorted(m.compute())
    ['miou', 'pixel_acc']
"""

from edgeslim.tasks import classification, detection, segmentation  # noqa: F401 (registers)
from edgeslim.tasks.base import TASKS, MetricSet, MetricSpec, Task, get_task, register_task
from edgeslim.tasks.batch import batch_len, call_model, move
from edgeslim.tasks.compare import ParityMeter, ParitySpec, logits_kd
from edgeslim.tasks.metrics import Accumulator, MeanIoU, PixelAccuracy, TopK

__all__ = [
    "TASKS",
    "Accumulator",
    "MeanIoU",
    "MetricSet",
    "MetricSpec",
    "ParityMeter",
    "ParitySpec",
    "PixelAccuracy",
    "Task",
    "TopK",
    "batch_len",
    "call_model",
    "get_task",
    "logits_kd",
    "move",
    "register_task",
]
