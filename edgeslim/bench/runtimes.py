"""Which (runtime, precision) pairs can deploy a model here, and the fastest of them.

``--runtime best`` times every pair that runs natively on this CPU, interleaved in one
loop, then picks the fastest one whose accuracy (evaluated on that same runtime and
precision) stays within the allowed drop. A QDQ file runs in INT8 on every ONNX
runtime; a float file runs in FP32 and, where the CPU has native kernels, BF16; a
torch runtime needs the module (a fake-quantized module has no INT8 path in eager
PyTorch, so it is offered only for float models).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgeslim.core.errors import EdgeslimError
from edgeslim.export.runtimes import available_runtimes, file_precision, get_runtime

FLOAT_PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class Candidate:
    runtime: str
    precision: str

    @property
    def label(self) -> str:
        return f"{self.runtime} {self.precision}"

    @property
    def hint(self) -> str:
        """The float precision to ask the runtime for: an INT8/INT4 file runs in its own."""
        return "fp32" if self.precision in ("int8", "int4") else self.precision


def candidates(
    onnx: str | Path | None,
    *,
    module_ok: bool = True,
    runtimes: list[str] | None = None,
) -> list[Candidate]:
    """Every native (runtime, precision) pair for ``onnx`` (and its module, if ``module_ok``)."""
    quant = file_precision(onnx) if onnx is not None else None
    out = []
    for name in runtimes or available_runtimes():
        rt = get_runtime(name)
        if not rt.available():
            raise EdgeslimError(f"runtime {name} is not installed")
        if rt.artifact == "onnx" and onnx is None:
            continue
        if rt.artifact == "module" and (quant or not module_ok):
            continue
        native = rt.native_precisions()
        if quant:
            if quant in native:
                out.append(Candidate(name, quant))
            continue
        out += [Candidate(name, p) for p in FLOAT_PRECISIONS if p in native]
    return out


@dataclass(frozen=True)
class Choice:
    candidate: Candidate
    why: str


def choose(
    rows: list[dict], batch: int, max_drop: float | None = None, reference: float | None = None
) -> Choice:
    """The fastest row at ``batch`` whose ``accuracy`` is within ``max_drop`` points.

    ``rows``: ``{runtime, precision, latency_ms: {batch: ms}, accuracy}``; ``reference``
    is the accuracy the drop is measured from (a fraction, as ``accuracy``).
    """
    key = str(batch)
    timed = [r for r in rows if r["latency_ms"].get(key) is not None]
    if not timed:
        raise EdgeslimError(f"no runtime was timed at batch {batch}")
    ok = [
        r
        for r in timed
        if max_drop is None
        or reference is None
        or r.get("accuracy") is None
        or 100 * (reference - r["accuracy"]) <= max_drop + 1e-9
    ]
    pool = ok or timed
    best = min(pool, key=lambda r: r["latency_ms"][key])
    base = next((r for r in timed if r["runtime"] == "onnxruntime"), timed[0])
    speed = base["latency_ms"][key] / best["latency_ms"][key]
    why = (
        f"fastest at batch {batch}: {best['latency_ms'][key]:.3g} ms, "
        f"{speed:.2f}x {base['runtime']} {base['precision']}"
    )
    if len(ok) < len(timed):
        dropped = ", ".join(f"{r['runtime']} {r['precision']}" for r in timed if r not in ok)
        why += f"; excluded for accuracy beyond the {max_drop} point limit: {dropped}"
    if not ok:
        why += " (none kept the accuracy: the fastest is shown, the target is missed)"
    return Choice(Candidate(best["runtime"], best["precision"]), why)
