"""ONNX Runtime, CPU execution provider: the default runtime.

Native precisions: FP32, and INT8 through its u8 x s8 kernels (QDQ files, and
its dynamic INT8 ops), and INT4 weights through ``com.microsoft::MatMulNBits``; on x86
without VNNI those kernels saturate 8-bit weight pairs, so edgeslim codes weights in 7
bits there (:mod:`edgeslim.core.cpu`). The CPU provider has no BF16 convolution or GEMM
kernels, so BF16 is not native here.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import metadata

import numpy as np

from edgeslim.export.ort import ort_session
from edgeslim.export.runtimes.base import Runtime, Session, file_precision, register_runtime


class OrtSession(Session):
    def __init__(self, path, threads: int | None, precision: str) -> None:
        self.sess = ort_session(path, threads)
        self.input_names = tuple(i.name for i in self.sess.get_inputs())
        self.precision = file_precision(path) or "fp32"

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        return self.sess.run(None, dict(zip(self.input_names, inputs, strict=True)))


class OnnxRuntime(Runtime):
    name = "onnxruntime"

    def available(self) -> bool:
        return True  # a core dependency

    def version(self) -> str | None:
        return metadata.version("onnxruntime")

    def native_precisions(self) -> tuple[str, ...]:
        return ("fp32", "int8", "int4")  # int4: MatMulNBits, weight-only

    def _load(self, model, threads, precision, batch) -> Session:
        return OrtSession(model, threads, precision)


register_runtime(OnnxRuntime())
