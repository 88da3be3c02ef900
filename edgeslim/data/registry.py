"""The dataset registry and the data-spec parser.

A data spec is a string a user types on the command line:

- ``signs``                 built-in procedurally generated traffic signs (default)
- ``digits``                scikit-learn's digits, upsampled to 32x32 RGB
- ``cifar10:DIR`` / ``cifar100:DIR``   the binary (.bin) CIFAR releases on disk
- ``imagefolder:DIR``       DIR/<split>/<class>/*.png (or DIR/<class>/* for every split)
- ``npz:FILE``              arrays ``x_<split>`` (N,C,H,W or N,H,W,C) and ``y_<split>``
- ``random:C,H,W``          random inputs with label 0, for latency/calibration only
- ``synthtext[:LENGTH]``    generated token sequences (task ``sequence_classification``)
- ``shapes_seg``            generated shapes with per-pixel masks (task ``segmentation``)

Each dataset names its task (:attr:`DatasetInfo.task`), which says how its batches
are trained on and scored (see :mod:`edgeslim.tasks`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch.utils.data import Dataset

from edgeslim.core.errors import EdgeslimError
from edgeslim.core.registry import Registry

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about a dataset."""

    num_classes: int
    input_shape: tuple[int, ...]  # one sample, e.g. (3, 32, 32)
    class_names: tuple[str, ...] = ()
    version: str = ""  # generator/content version: keys caches of models trained on this data
    task: str = "classification"  # a name in edgeslim.tasks.TASKS: loss, metrics, batches


@dataclass(frozen=True)
class DataSource:
    """A registered dataset family.

    ``load(arg, split, augment)`` returns a torch ``Dataset`` of ``(inputs, targets)``
    samples in the form its task expects (for ``classification``: a normalized float
    tensor C,H,W and an int label); ``info(arg)`` its :class:`DatasetInfo`.
    ``arg`` is the text after the colon in the spec ("" when there is none).
    """

    load: Callable[[str, str, bool], Dataset]
    info: Callable[[str], DatasetInfo]
    needs_arg: bool = False


DATASETS: Registry[DataSource] = Registry("dataset")


def parse_data_spec(spec: str) -> tuple[str, str]:
    """Split ``"name:arg"`` into ``(name, arg)`` and check the name is registered."""
    name, _, arg = spec.partition(":")
    src = DATASETS.get(name)
    if src.needs_arg and not arg:
        raise EdgeslimError(f"dataset {name!r} needs a path: use '{name}:PATH'")
    return name, arg


def load_dataset(spec: str, split: str = "train", augment: bool = False) -> Dataset:
    """Load split ``split`` of the dataset named by ``spec``.

    Example:
        >>> ds = load_dataset("digits", "test")
        >>> x, y = ds[0]
    """
    if split not in SPLITS:
        raise EdgeslimError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    name, arg = parse_data_spec(spec)
    return DATASETS.get(name).load(arg, split, augment)


def dataset_info(spec: str) -> DatasetInfo:
    """Number of classes, per-sample input shape and task of the dataset named by ``spec``."""
    name, arg = parse_data_spec(spec)
    return DATASETS.get(name).info(arg)
