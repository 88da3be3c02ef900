"""OpenVINO, CPU plugin (optional: ``pip install edgeslim[openvino]``).

It reads edgeslim's ONNX files unchanged, the INT8 QDQ ones included. Its native
precisions are what the CPU plugin reports in ``OPTIMIZATION_CAPABILITIES`` (BF16 on
AVX512-BF16 / AMX, INT8 everywhere it has integer kernels). Beware: with no hint the
plugin runs an FP32 file in BF16 on AMX machines; edgeslim always sets
``INFERENCE_PRECISION_HINT`` to the precision asked for, so what is timed is what is
evaluated. Compiled with ``PERFORMANCE_HINT=LATENCY`` and one reused infer request
(OpenVINO's own advice for single-stream latency).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from importlib import metadata, util

import numpy as np

from edgeslim.core.errors import EdgeslimError
from edgeslim.export.runtimes.base import Runtime, Session, file_precision, register_runtime

_HINT = {"fp32": "f32", "bf16": "bf16", "fp16": "f16", "int8": "f32"}
_CAPS = {"FP32": "fp32", "BF16": "bf16", "FP16": "fp16", "INT8": "int8"}


@functools.cache
def _core():
    import openvino as ov

    return ov.Core()


class OvSession(Session):
    def __init__(self, path, threads: int | None, precision: str, batch: int | None) -> None:
        core = _core()
        try:
            model = core.read_model(str(path))
            if batch is not None:
                shape = model.input(0).get_partial_shape()
                if shape.rank.is_static and shape[0].is_dynamic:
                    shape[0] = batch
                    model.reshape({model.input(0): shape})
            config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": _HINT[precision]}
            if threads:
                config["INFERENCE_NUM_THREADS"] = int(threads)
            self.compiled = core.compile_model(model, "CPU", config)
        except RuntimeError as e:
            raise EdgeslimError(f"OpenVINO cannot load {path}: {str(e).splitlines()[0]}") from None
        self.request = self.compiled.create_infer_request()
        self.input_names = tuple(i.get_any_name() for i in self.compiled.inputs)
        self.precision = file_precision(path) or precision

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        res = self.request.infer(list(inputs))
        return [np.array(res[o]) for o in self.compiled.outputs]


class OpenVino(Runtime):
    name = "openvino"
    extra = "openvino"

    def available(self) -> bool:
        return util.find_spec("openvino") is not None

    def version(self) -> str | None:
        try:
            return metadata.version("openvino")
        except metadata.PackageNotFoundError:
            return None

    def native_precisions(self) -> tuple[str, ...]:
        if not self.available():
            return ()
        caps = _core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        return tuple(p for c, p in _CAPS.items() if c in caps)

    def _load(self, model, threads, precision, batch) -> Session:
        if precision not in self.native_precisions() and precision != "int8":
            raise EdgeslimError(
                f"OpenVINO has no native {precision} on this CPU "
                f"(it offers {', '.join(self.native_precisions())})"
            )
        return OvSession(model, threads, precision, batch)


register_runtime(OpenVino())
