"""torchvision models (``tv:NAME`` specs), and the repair of torchvision's CUDA-only wheel.

torchvision 0.28 (the release that pairs with torch 2.13) ships only a CUDA build.
On CPU torch its compiled ops fail to load and ``import torchvision`` dies with
``operator torchvision::nms does not exist``, because its meta registrations
refer to ops the missing library would have defined. :func:`repair_torchvision`
recovers: it defines the ``nms``/``qnms`` schemas with ``torch.library``, gives
``nms`` a pure-PyTorch CPU kernel, re-imports, and sets
``torchvision.extension._has_ops`` to say its ops are there. Models, ``ops.nms``
and the transforms then work; the JPEG codecs do not (use PIL).

The repair changes global state, so it is never silent and never implicit:

- it runs only when the import really fails with that error; a torchvision that
  imports (any working install) is returned untouched;
- it runs only for a ``tv:`` model, when you call :func:`repair_torchvision`
  yourself (before importing timm, say), or when transformers fails to import
  because of this broken torchvision (see :mod:`edgeslim.models.hf`);
- it warns once, with :class:`TorchvisionRepairWarning`, naming what it defined.
"""

from __future__ import annotations

import sys
import warnings
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


class TorchvisionRepairWarning(UserWarning):
    """edgeslim defined torchvision ops so that a broken torchvision install imports."""


def _define_missing_ops() -> None:
    global _LIB
    if _LIB is not None:
        return
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.impl("nms", nms_reference, "CPU")
    _LIB = lib


def is_broken_torchvision(error: BaseException) -> bool:
    """Whether ``error`` (or an error that caused it) is the CUDA-only wheel's import failure.

    transformers wraps it (``ModuleNotFoundError: Could not import module ...``), so the
    whole ``__cause__`` / ``__context__`` chain is searched.
    """
    seen: set[int] = set()
    e: BaseException | None = error
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, RuntimeError) and "torchvision::" in str(e):
            return True
        e = e.__cause__ or e.__context__
    return False


def repair_torchvision(reason: str = "") -> ModuleType | None:
    """``import torchvision``, repairing the CUDA-only wheel on CPU torch; None if absent.

    A torchvision that imports is returned untouched and nothing is defined. Only the
    known failure (``operator torchvision::... does not exist``) is repaired, once per
    process, with a :class:`TorchvisionRepairWarning` that says what was defined.
    ``reason`` says in that warning why the repair was needed.

    Example:
        >>> from edgeslim.models.tv import repair_torchvision
        >>> tv = repair_torchvision()  # before `import timm`; None without torchvision
    """
    if "torchvision" in sys.modules and hasattr(sys.modules["torchvision"], "models"):
        return sys.modules["torchvision"]
    try:
        import torchvision

        return torchvision
    except ModuleNotFoundError as e:
        if e.name != "torchvision":
            raise
        return None
    except RuntimeError as e:
        if not is_broken_torchvision(e):
            raise
        failure = str(e).splitlines()[0]
    for k in [k for k in sys.modules if k == "torchvision" or k.startswith("torchvision.")]:
        del sys.modules[k]  # the half-imported package
    _define_missing_ops()
    import torchvision
    import torchvision.extension

    torchvision.extension._has_ops = lambda: True
    warnings.warn(
        f"torchvision {getattr(torchvision, '__version__', '?')} failed to import on this "
        f"torch {torch.__version__} ({failure}){reason}. edgeslim repaired it for this "
        "process: it defined torchvision::nms (a pure-PyTorch CPU kernel) and "
        "torchvision::qnms (schema only) with torch.library, and set "
        "torchvision.extension._has_ops to return True. Models, ops.nms and transforms "
        "work; JPEG decoding does not. Install a torchvision build that matches torch "
        "to avoid this.",
        TorchvisionRepairWarning,
        stacklevel=2,
    )
    return torchvision


def import_torchvision() -> ModuleType:
    """:func:`repair_torchvision`, with a clear error when torchvision is not installed."""
    tv = repair_torchvision()
    if tv is None:
        raise EdgeslimError("torchvision is not installed: pip install 'edgeslim[vision]'")
    return tv


def build_tv(name: str, num_classes: int | None = None) -> nn.Module:
    """``torchvision.models.get_model(name)`` with random weights (nothing is downloaded)."""
    tv = import_torchvision()
    try:
        kwargs = {"num_classes": num_classes} if num_classes else {}
        return tv.models.get_model(name, weights=None, **kwargs)
    except ValueError as e:
        raise EdgeslimError(f"tv:{name}: {e}") from None
