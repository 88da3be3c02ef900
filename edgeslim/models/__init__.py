"""The model zoo: small, standard architectures used by demos, tests and benchmarks.

Importing this package registers every architecture in :data:`ZOO`.

Example:
    >>> from edgeslim.models import ZOO, build_zoo_model
    >>> "resnet20" in ZOO
    True
    >>> model = build_zoo_model("resnet20", num_classes=100)
"""

from edgeslim.models import (  # noqa: F401  (registers)
    cifar_resnet,
    mobilenetv2,
    resnet,
    retinanet,
    segnet,
    vgg,
    yolo,
)
from edgeslim.models.zoo import ZOO, ZooEntry, build_zoo_model, register_model

__all__ = ["ZOO", "ZooEntry", "build_zoo_model", "register_model"]
