"""torchvision models (``tv:NAME`` specs), importable with this machine's CUDA-only wheel.

torchvision 0.28 (the release that pairs with torch 2.13) ships only a CUDA build.
On CPU torch its compiled ops fail to load and ``import torchvision`` dies with
``operator torchvision::nms does not exist``, because its meta registrations
refer to ops the missing library would have defined. :func:`import_torchvision`
recovers: it defines the ``nms``/``qnms`` schemas with ``torch.library``, gives
``nms`` a pure-PyTorch CPU kernel, re-imports, and tells torchvision its ops are
there. Models, ``ops.nms`` and the transforms then work; the JPEG codecs do not
(use PIL). A working CPU torchvision is imported untouched.
"""

from __future__ import annotations

import sys
from types import ModuleType

import torch
from torch import nn

from edgeslim.core.errors import EdgeslimError

_LIB: torch.library.Library | None = None  # kept alive: dropping it unregisters the ops


def nms_reference(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Indices kept by greedy non-maximum suppression, highest score first (torchvision's
    semantics: a box is dropped when its IoU with a kept, higher-scoring box is > threshold)."""
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    order = scores.argsort(descending=True, stable=True)
    b = boxes[order].float()
    area = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    lt = torch.maximum(b[:, None, :2], b[None, :, :2])
    rb = torch.minimum(b[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    iou = inter / (area[:, None] + area[None, :] - inter).clamp(min=1e-12)
    suppressed = torch.zeros(len(b), dtype=torch.bool)
    keep = []
    for i in range(len(b)):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= iou[i] > iou_threshold
    return order[torch.tensor(keep, dtype=torch.long)]


def _define_missing_ops() -> None:
    global _LIB
    if _LIB is not None:
        return
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.impl("nms", nms_reference, "CPU")
    _LIB = lib


def import_torchvision() -> ModuleType:
    """``import torchvision``, repairing the CUDA-only wheel on CPU torch (see module doc)."""
    if "torchvision" in sys.modules and hasattr(sys.modules["torchvision"], "models"):
        return sys.modules["torchvision"]
    try:
        import torchvision

        return torchvision
    except ImportError:
        raise EdgeslimError(
            "torchvision is not installed: pip install 'edgeslim[vision]'"
        ) from None
    except RuntimeError as e:
        if "torchvision::" not in str(e):
            raise
    for k in [k for k in sys.modules if k == "torchvision" or k.startswith("torchvision.")]:
        del sys.modules[k]  # the half-imported package
    _define_missing_ops()
    import torchvision
    import torchvision.extension

    torchvision.extension._has_ops = lambda: True
    return torchvision


def repair_installed_torchvision() -> None:
    """Import (and repair) torchvision if it is installed; a no-op otherwise. Call it before
    importing a package that imports torchvision itself (transformers, timm)."""
    import importlib.util

    if importlib.util.find_spec("torchvision") is not None:
        import_torchvision()


def build_tv(name: str, num_classes: int | None = None) -> nn.Module:
    """``torchvision.models.get_model(name)`` with random weights (nothing is downloaded)."""
    tv = import_torchvision()
    try:
        kwargs = {"num_classes": num_classes} if num_classes else {}
        return tv.models.get_model(name, weights=None, **kwargs)
    except ValueError as e:
        raise EdgeslimError(f"tv:{name}: {e}") from None
