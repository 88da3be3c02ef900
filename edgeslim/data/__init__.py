"""Built-in datasets and loaders, addressed by a data spec such as ``signs`` or ``npz:FILE``.

Importing this package registers every family in :data:`DATASETS`.

Example:
    >>> from edgeslim.data import dataset_info, load_dataset, make_loader
    >>> dataset_info("digits").num_classes
    10
    >>> dl = make_loader(load_dataset("digits", "val"), batch_size=64, shuffle=False)
"""

from edgeslim.data import (  # noqa: F401 (registers)
    cifar,
    coco_format,
    digits,
    driving,
    glue,
    imagefolder,
    kitti,
    npz,
    random,
    shapes_seg,
    signs,
    text,
    textlogic,
    yolo_format,
)
from edgeslim.data.arrays import ArrayDataset
from edgeslim.data.loader import make_loader
from edgeslim.data.registry import (
    DATASETS,
    SPLITS,
    DatasetInfo,
    DataSource,
    dataset_files,
    dataset_info,
    dataset_normalization,
    load_dataset,
    parse_data_spec,
)
from edgeslim.data.signs import SIGN_CLASSES, generate_signs
from edgeslim.data.stats import Normalization, channel_stats

__all__ = [
    "DATASETS",
    "SIGN_CLASSES",
    "SPLITS",
    "ArrayDataset",
    "DataSource",
    "DatasetInfo",
    "Normalization",
    "channel_stats",
    "dataset_files",
    "dataset_info",
    "dataset_normalization",
    "generate_signs",
    "load_dataset",
    "make_loader",
    "parse_data_spec",
]
