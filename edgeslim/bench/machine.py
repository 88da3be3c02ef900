"""Which machine and which software produced a report's numbers.

Latency, INT8 speedups and even INT8 accuracy depend on the CPU's vector
extensions (see :mod:`edgeslim.core.cpu`) and on the runtime versions, so every
report carries them.

Example:
    >>> m = machine_info(threads=2)
    >>> sorted(m)[:3], "torch" in m["versions"]
    (['cpu', 'int8', 'isa'], True)
"""

from __future__ import annotations

import platform
from importlib import metadata

from edgeslim.core.cpu import cpu_isa, cpu_model, int8_pairs_saturate
from edgeslim.export.runtimes import runtimes_summary

PACKAGES = ("torch", "onnxruntime", "onnx", "openvino")


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def machine_info(threads: int | None = None) -> dict:
    """CPU model, vector extensions, INT8 path, threads, Python and runtime versions."""
    versions = {p: v for p in PACKAGES if (v := _version(p)) is not None}
    return {
        "cpu": cpu_model(),
        "isa": cpu_isa(),
        "int8": "8-bit pairs saturate (no VNNI): weights coded in 7 bits"
        if int8_pairs_saturate()
        else "exact INT8 dot products",
        "threads": threads,
        "python": platform.python_version(),
        "versions": versions,
        "native": {d["name"]: d["native"] for d in runtimes_summary()},
    }


def machine_line(m: dict) -> str:
    """One sentence for the top of a report.

    Example:
        >>> machine_line({"cpu": "X", "isa": "avx2", "int8": "exact", "threads": 2,
        ...               "python": "3.11", "versions": {"torch": "2.13.0"}})
        'Measured on X (avx2; INT8: exact), 2 threads; Python 3.11, torch 2.13.0.'
    """
    vs = ", ".join(f"{k} {v}" for k, v in m.get("versions", {}).items())
    threads = f", {m['threads']} threads" if m.get("threads") else ""
    native = "; ".join(f"{k} {'/'.join(v)}" for k, v in m.get("native", {}).items())
    return (
        f"Measured on {m['cpu']} ({m['isa']}; INT8: {m['int8']}){threads}; "
        f"Python {m['python']}, {vs}." + (f" Native precisions: {native}." if native else "")
    )
