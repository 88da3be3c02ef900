"""The dataset registry and the data-spec parser.

A data spec is a string a user types on the command line:

- ``signs``                 built-in procedurally generated traffic signs (default)
- ``digits``                scikit-learn's digits, upsampled to 32x32 RGB
- ``cifar10:DIR`` / ``cifar100:DIR``   the binary (.bin) CIFAR releases on disk
- ``imagefolder:DIR``       DIR/<split>/<class>/*.png (or DIR/<class>/* for every split)
- ``npz:FILE``              arrays ``x_<split>`` (N,C,H,W or N,H,W,C) and ``y_<split>``
- ``random:C,H,W``          random inputs with label 0, for latency/calibration only
- ``synthtext[:LENGTH]``    generated token sequences (task ``sequence_classification``)
- ``textlogic[:LENGTH]`` / ``textverdict[:LENGTH]`` / ``textpair[:LENGTH]``  generated
  English-like sentences (sentence pairs) whose label needs order, negation, scope and
  counting; WordPiece ids
- ``glue:DIR[,length=N]``    a GLUE task folder of TSV files (SST-2, MRPC, RTE, ...)
- ``shapes_seg``            generated shapes with per-pixel masks (task ``segmentation``)
- ``driving[:seed=N,n=N,size=S]``  generated road scenes with boxes (task ``detection``)
- ``kitti:DIR[,size=N]``     KITTI image_2/ + label_2/ (task ``detection``)
- ``yolo:FILE.yaml[,size=N]`` a YOLO data YAML, images/ + labels/ txt (task ``detection``)
- ``coco:FILE.json[,size=N]`` a COCO instances JSON and its images (task ``detection``)

Each dataset names its task (:attr:`DatasetInfo.task`), which says how its batches
are trained on and scored (see :mod:`edgeslim.tasks`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch.utils.data import Dataset

from edgeslim.core.errors import EdgeslimError
from edgeslim.core.registry import Registry
from edgeslim.data.stats import Normalization

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about a dataset."""

    num_classes: int
    input_shape: tuple[int, ...]  # one sample, e.g. (3, 32, 32)
    class_names: tuple[str, ...] = ()
    version: str = ""  # generator/content version: keys caches of models trained on this data
    task: str = "classification"  # a name in edgeslim.tasks.TASKS: loss, metrics, batches
    vocab_size: int | None = None  # token datasets: ids lie in [0, vocab_size)


@dataclass(frozen=True)
class DataSource:
    """A registered dataset family.

    ``load(arg, split, augment)`` returns a torch ``Dataset`` of ``(inputs, targets)``
    samples in the form its task expects (for ``classification``: a normalized float
    tensor C,H,W and an int label); ``info(arg)`` its :class:`DatasetInfo`.
    ``arg`` is the text after the colon in the spec ("" when there is none).
    ``tokenizer(arg)``, for token data, returns its tokenizer as ``tokenizer.json`` text.
    ``normalization(arg)``, for user data, returns the statistics computed from the train
    split that ``load`` applies to every split (None: fixed statistics, as built-ins use).
    """

    load: Callable[[str, str, bool], Dataset]
    info: Callable[[str], DatasetInfo]
    needs_arg: bool = False
    normalization: Callable[[str], Normalization | None] | None = None
    # text data: the ``tokenizer.json`` text of the tokenizer that made the token ids,
    # written beside every model trained on it (see :func:`dataset_files`)
    tokenizer: Callable[[str], str] | None = None


DATASETS: Registry[DataSource] = Registry("dataset")


def parse_data_spec(spec: str) -> tuple[str, str]:
    """Split ``"name:arg"`` into ``(name, arg)`` and check the name is registered."""
    name, _, arg = spec.partition(":")
    src = DATASETS.get(name)
    if src.needs_arg and not arg:
        raise EdgeslimError(f"dataset {name!r} needs a path: use '{name}:PATH'")
    return name, arg


def load_dataset(
    spec: str,
    split: str = "train",
    augment: bool | str = False,
    normalization: Normalization | None = None,
) -> Dataset:
    """Load split ``split`` of the dataset named by ``spec``.

    ``normalization`` replaces the dataset's own statistics, e.g. with those a saved
    model was trained with (``Normalization.from_meta(lm.meta)``).

    Example:
        >>> ds = load_dataset("digits", "test")
        >>> x, y = ds[0]
    """
    if split not in SPLITS:
        raise EdgeslimError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    name, arg = parse_data_spec(spec)
    ds = DATASETS.get(name).load(arg, split, augment)
    if normalization is None:
        return ds
    renorm = getattr(ds, "with_normalization", None)
    if renorm is None:
        raise EdgeslimError(f"dataset {name!r} does not take image normalization statistics")
    return renorm(normalization)


def dataset_normalization(spec: str) -> Normalization | None:
    """The statistics computed from the train split of ``spec`` (None for built-in data).

    Example:
        >>> dataset_normalization("digits") is None
        True
    """
    name, arg = parse_data_spec(spec)
    stats = DATASETS.get(name).normalization
    return stats(arg) if stats is not None else None


def dataset_info(spec: str) -> DatasetInfo:
    """Number of classes, per-sample input shape and task of the dataset named by ``spec``."""
    name, arg = parse_data_spec(spec)
    return DATASETS.get(name).info(arg)


def dataset_files(spec: str) -> dict[str, str]:
    """Files a model trained on ``spec`` must carry: ``{"tokenizer.json": ...}`` for text data.

    Pass it as ``save_model(lm, out, extra_files=dataset_files(spec))``; read the
    tokenizer back with :func:`edgeslim.data.wordpiece.load_tokenizer`.

    Example:
        >>> dataset_files("digits")
        {}
    """
    name, arg = parse_data_spec(spec)
    tok = DATASETS.get(name).tokenizer
    return {"tokenizer.json": tok(arg)} if tok is not None else {}
