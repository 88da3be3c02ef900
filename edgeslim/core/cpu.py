"""What this CPU is and which integer dot products it runs exactly.

x86 CPUs without VNNI multiply u8 activations by s8 weights with ``vpmaddubsw``,
which adds two adjacent u8 x s8 products into an int16 with saturation; with full
8-bit weights a pair can reach ``255 * 127 * 2 = 64770 > 32767`` and the result
clips. ONNX Runtime's MLAS uses that instruction for its u8s8 kernels on AVX2
and AVX-512 without VNNI, so an INT8 model whose weights use the full range
computes wrong outputs there (onnxruntime's quantization docs: "reduce_range ...
may improve the accuracy for some models running on non-VNNI machine"). With
7-bit weights a pair stays below ``255 * 63 * 2 = 32130`` and cannot clip.
VNNI (``vpdpbusd``, AVX512_VNNI or AVX_VNNI) and AMX accumulate in int32; ARM's
``sdot``/``udot`` likewise.

Example:
    >>> int8_pairs_saturate({"avx2", "avx512_vnni"}, "x86_64")
    False
    >>> int8_pairs_saturate({"avx2"}, "x86_64")
    True
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

_EXACT_INT8 = {"avx512_vnni", "avx_vnni", "amx_int8", "avx512vnni"}


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The feature flags of this CPU (from ``/proc/cpuinfo``; empty where unreadable)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


@functools.cache
def cpu_model() -> str:
    """The CPU's model name, as ``lscpu`` shows it (``platform.processor()`` otherwise)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_isa(flags: set[str] | frozenset[str] | None = None) -> str:
    """The vector extensions that decide kernel speed, e.g. ``"avx2"`` or ``"avx512+vnni+amx"``.

    Two CPUs with one model name ("AMD EPYC") can differ here, so caches of measured
    latency are keyed by it too.

    Example:
        >>> cpu_isa({"avx2", "avx512f", "avx512_vnni"})
        'avx512+vnni'
    """
    flags = cpu_flags() if flags is None else flags
    base = (("avx512", "avx512f"), ("avx2", "avx2"), ("neon", "asimd"))
    extra = (
        ("vnni", {"avx512_vnni", "avx_vnni"}),
        ("bf16", {"avx512_bf16"}),
        ("amx", {"amx_int8", "amx_bf16"}),
    )
    parts = [next((isa for isa, f in base if f in flags), "scalar")]
    parts += [name for name, fs in extra if fs & set(flags)]
    return "+".join(parts)


def int8_pairs_saturate(flags: set[str] | frozenset[str] | None = None, machine: str = "") -> bool:
    """True when u8 x s8 integer kernels clip 8-bit weights on this CPU (x86 without VNNI)."""
    flags = cpu_flags() if flags is None else flags
    machine = (machine or platform.machine()).lower()
    if machine not in ("x86_64", "amd64", "i386", "i686"):
        return False
    return not (set(flags) & _EXACT_INT8)


def native_bf16(flags: set[str] | frozenset[str] | None = None) -> bool:
    """True when the CPU multiplies bf16 natively (AVX512_BF16 or AMX-BF16; ARM's BF16).

    Example:
        >>> native_bf16({"avx2", "avx512_bf16"}), native_bf16({"avx2"})
        (True, False)
    """
    flags = cpu_flags() if flags is None else flags
    return bool(set(flags) & {"avx512_bf16", "amx_bf16", "bf16"})


def cpu_summary() -> str:
    """One line for reports: the model and its integer dot-product path."""
    path = "8-bit pairs saturate (no VNNI)" if int8_pairs_saturate() else "exact INT8 dot products"
    return f"{cpu_model()} ({cpu_isa()}), {path}"
