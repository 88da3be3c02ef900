"""What a deploy runtime is: an entry that loads a model and runs it with N threads.

Every runtime states which precisions it executes *natively on this CPU* (not what
it accepts: ONNX Runtime accepts a BF16 graph and emulates it) and its version; the
reports print both, so a speedup is always tied to the kernels that produced it.

Precisions are ``"fp32"``, ``"bf16"``, ``"fp16"``, ``"int8"`` and ``"int4"``. A file that
computes in integers (:func:`file_precision`: INT8 QDQ, ORT dynamic INT8, INT4
``MatMulNBits``) runs in its own precision whatever is asked; a float file runs in the
asked precision.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeslim.core.errors import EdgeslimError
from edgeslim.core.registry import Registry

PRECISIONS = ("fp32", "bf16", "fp16", "int8", "int4")
# ops whose presence means a file computes in integers: QDQ, ORT's dynamic INT8 (before
# and after its graph fusions), and the integer kernels ORT fuses QDQ into
_INT8_OPS = frozenset(
    {
        "QuantizeLinear",
        "DequantizeLinear",
        "DynamicQuantizeLinear",
        "MatMulInteger",
        "ConvInteger",
        "DynamicQuantizeMatMul",
        "MatMulIntegerToFloat",
        "QLinearMatMul",
        "QLinearConv",
        "QGemm",
    }
)
_INT4_OPS = frozenset({"MatMulNBits"})  # com.microsoft: ORT's 4-bit weight kernel


class Session(ABC):
    """A loaded model: ``run(inputs)`` returns every output, in graph order, as numpy."""

    input_names: tuple[str, ...]
    precision: str  # what it actually executes in ("int8" for a QDQ file)

    @abstractmethod
    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Outputs for positional ``inputs``."""


class Runtime(ABC):
    """One deploy runtime. ``artifact`` is what it loads: an ONNX file or a torch module."""

    name: str = ""
    artifact: str = "onnx"  # "onnx" (a path) or "module" (an nn.Module)
    extra: str = ""  # the pip extra that installs it

    @abstractmethod
    def available(self) -> bool:
        """True when its package imports."""

    @abstractmethod
    def version(self) -> str | None:
        """The package version, None when not installed."""

    @abstractmethod
    def native_precisions(self) -> tuple[str, ...]:
        """Precisions with native kernels on this CPU, e.g. ``("fp32", "int8")``."""

    @abstractmethod
    def _load(
        self, model: Any, threads: int | None, precision: str, batch: int | None
    ) -> Session: ...

    def load(
        self,
        model: Any,
        *,
        threads: int | None = None,
        precision: str = "fp32",
        batch: int | None = None,
    ) -> Session:
        """Load ``model`` (a path for ONNX runtimes, a module for torch).

        ``batch`` fixes the batch size when the runtime compiles faster for a static
        shape (OpenVINO); None keeps the file's own dims.
        """
        if not self.available():
            hint = f" (pip install edgeslim[{self.extra}])" if self.extra else ""
            raise EdgeslimError(f"runtime {self.name} is not installed{hint}")
        if precision not in PRECISIONS:
            raise EdgeslimError(f"precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
        if self.artifact == "onnx":
            path = Path(model)
            if not path.is_file():
                raise EdgeslimError(f"ONNX model not found: {path}")
        return self._load(model, threads, precision, batch)

    def describe(self) -> dict:
        """``{name, version, native}`` for reports."""
        return {
            "name": self.name,
            "version": self.version(),
            "native": list(self.native_precisions()) if self.available() else [],
        }


RUNTIMES: Registry[Runtime] = Registry("runtime")


def register_runtime(rt: Runtime) -> Runtime:
    RUNTIMES.register(rt.name, rt)
    return rt


def is_qdq(path: str | Path) -> bool:
    """True when the ONNX file at ``path`` holds QuantizeLinear/DequantizeLinear nodes."""
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in m.graph.node)


def file_precision(path: str | Path) -> str | None:
    """``"int4"`` (``MatMulNBits``) or ``"int8"`` for a file that computes in integers, else None.

    Example:
        >>> # file_precision("model.int4.onnx")  -> "int4"; an FP32 export -> None
    """
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    ops = {n.op_type for n in m.graph.node}
    if ops & _INT4_OPS:
        return "int4"
    return "int8" if ops & _INT8_OPS else None
