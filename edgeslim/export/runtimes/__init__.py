"""Deploy runtimes as registry entries: ONNX Runtime, OpenVINO, PyTorch (eager, compiled).

Example:
    >>> from edgeslim.export.runtimes import get_runtime, available_runtimes
    >>> "onnxruntime" in available_runtimes()
    True
    >>> "fp32" in get_runtime("onnxruntime").native_precisions()
    True
"""

from edgeslim.export.runtimes import onnxruntime, openvino, torch  # noqa: F401  (registers)
from edgeslim.export.runtimes.base import (
    PRECISIONS,
    RUNTIMES,
    Runtime,
    Session,
    file_precision,
    is_qdq,
    register_runtime,
)


def get_runtime(name: str) -> Runtime:
    """The runtime called ``name`` (clear error naming the known ones)."""
    return RUNTIMES.get(name)


def available_runtimes(artifact: str | None = None) -> list[str]:
    """Installed runtimes, ONNX Runtime first; ``artifact`` keeps those that load it."""
    names = [n for n, rt in RUNTIMES.items() if rt.available()]
    names.sort(key=lambda n: (n != "onnxruntime", n))
    if artifact is not None:
        names = [n for n in names if RUNTIMES.get(n).artifact == artifact]
    return names


def runtimes_summary() -> list[dict]:
    """Name, version and native precisions of every installed runtime, for reports."""
    return [RUNTIMES.get(n).describe() for n in available_runtimes()]


__all__ = [
    "PRECISIONS",
    "RUNTIMES",
    "Runtime",
    "Session",
    "available_runtimes",
    "file_precision",
    "get_runtime",
    "is_qdq",
    "register_runtime",
    "runtimes_summary",
]
