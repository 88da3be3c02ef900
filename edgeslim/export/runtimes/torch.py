"""PyTorch itself: eager and ``torch.compile`` (Inductor), on the model, not a file.

Native precisions: FP32, and BF16 where the CPU multiplies it natively (AVX512-BF16,
AMX). A fake-quantized model runs its quantizers in float: eager PyTorch has no INT8
path here, so INT8 is never claimed for it.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from edgeslim.core.cpu import native_bf16
from edgeslim.core.errors import EdgeslimError
from edgeslim.core.modes import eval_mode, torch_threads
from edgeslim.core.outputs import flatten_outputs
from edgeslim.export.runtimes.base import Runtime, Session, register_runtime

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class TorchSession(Session):
    def __init__(
        self, model: nn.Module, threads: int | None, precision: str, compiled: bool
    ) -> None:
        model = copy.deepcopy(model).eval()
        self.dtype = _DTYPES[precision]
        if precision != "fp32":
            model = model.to(self.dtype)
        self.model = torch.compile(model) if compiled else model
        self.threads = threads
        self.precision = precision
        self.input_names = ("input",)

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        xs = [torch.from_numpy(np.asarray(x)) for x in inputs]
        xs = [x.to(self.dtype) if x.is_floating_point() else x for x in xs]
        # torch's thread count is process-wide: set it for this call only, so ``threads``
        # reaches the kernels without changing it for the caller's other work.
        with torch_threads(self.threads), torch.inference_mode(), eval_mode(self.model):
            out = self.model(*xs)
        return [
            o.float().numpy() if o.is_floating_point() else o.numpy()
            for o in flatten_outputs(out).values()
        ]


class TorchEager(Runtime):
    name = "torch"
    artifact = "module"
    compiled = False

    def available(self) -> bool:
        return True

    def version(self) -> str | None:
        return torch.__version__

    def native_precisions(self) -> tuple[str, ...]:
        return ("fp32", "bf16") if native_bf16() else ("fp32",)

    def _load(self, model, threads, precision, batch) -> Session:
        if precision not in self.native_precisions():
            raise EdgeslimError(f"{self.name}: no native {precision} on this CPU")
        return TorchSession(model, threads, precision, self.compiled)


class TorchCompile(TorchEager):
    name = "torch_compile"
    compiled = True


register_runtime(TorchEager())
register_runtime(TorchCompile())
