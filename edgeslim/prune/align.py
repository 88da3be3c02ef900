"""Channel alignment derived from a measured latency staircase.

Pruned widths like 23, 17, 68 or 101 make mobile networks *slower* on ONNX Runtime:
its convolution kernels work in blocks of channels (NCHWc, 8 or 16 wide on AVX2 /
AVX-512), so an unaligned width pays for the whole block, or loses the blocked
kernel. Which alignment pays is a property of the runtime and the CPU, so it is
measured, not assumed (HALP, Shen et al. 2022, prunes on latency lookup tables;
here the table is measured on the user's own runtime and CPU):

1. the model's layer shapes (``conv3x3``, ``dw3x3``, ``conv1x1``, ``linear``, ...) and
   their share of its MACs;
2. for each shape, its latency staircase over widths 32..96
   (:func:`edgeslim.bench.staircase.staircase`, cached per runtime, CPU, threads);
3. for each candidate alignment ``a``, the *gain*: the geometric mean over every
   width ``c`` of ``cost_per_mac(c) / cost_per_mac(round(c, a))``, i.e. how much less
   time per MAC a width costs once rounded to the nearest multiple of ``a``;
4. the gains averaged over shapes, weighted by each shape's estimated share of the
   model's *time* (its MACs times its median measured time per MAC: a depthwise conv
   holds 7% of MobileNetV2's MACs but half its time); the smallest alignment whose
   gain is within
   ``tolerance`` (3%) of the best wins (coarser alignments move widths further from the
   requested ratio for nothing), or 1 when no alignment gains ``min_gain``.

Example:
    >>> from edgeslim.bench.staircase import Staircase
    >>> ws = tuple(range(32, 97))
    >>> ms = tuple(0.01 * (-(-w // 16) * 16) ** 2 for w in ws)  # padded to blocks of 16
    >>> s = Staircase("conv3x3", "ort", "cpu", 2, ws, ms, tuple(w * w for w in ws))
    >>> choose_alignment({"conv3x3": s}).round_to
    16
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from edgeslim.bench.staircase import Staircase, staircase
from edgeslim.core.errors import EdgeslimError

CANDIDATES = (1, 2, 4, 8, 16, 32)
RoundTo = int | Literal["auto"]


@dataclass(frozen=True)
class Alignment:
    """The alignment pruning uses, where it came from and the measured evidence."""

    round_to: int
    source: str  # "user" (given), "measured" (staircases measured or cached), "injected"
    reason: str
    evidence: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "round_to": self.round_to,
            "source": self.source,
            "reason": self.reason,
            **self.evidence,
        }

    def line(self) -> str:
        """One console line: the alignment and why."""
        return f"alignment: kept channels are multiples of {self.round_to} ({self.reason})"


def round_width(c: int, a: int) -> int:
    """``c`` rounded to the nearest multiple of ``a`` (ties up), at least ``a``."""
    return max(a, ((2 * c + a) // (2 * a)) * a)


def gains(s: Staircase, candidates: tuple[int, ...] = CANDIDATES) -> dict[int, float]:
    """Per alignment: geometric mean of cost-per-MAC(exact) / cost-per-MAC(rounded).

    Widths whose rounding leaves the measured range are skipped.

    Example:
        >>> ws = (4, 5, 6, 7, 8)
        >>> s = Staircase("conv1x1", "ort", "cpu", 1, ws, (1.0, 2.0, 2.0, 2.0, 1.0), ws)
        >>> round(gains(s, (1, 4))[4], 3)  # geomean(1, 0.4/0.25, (2/6)/0.125, (2/7)/0.125, 1)
        1.577
    """
    cpm = {w: ms / max(m, 1) for w, ms, m in zip(s.widths, s.ms, s.macs, strict=True)}
    out = {}
    for a in candidates:
        logs = [
            math.log(cpm[c] / cpm[r])
            for c in s.widths
            if (r := round_width(c, a)) in cpm and cpm[c] > 0 and cpm[r] > 0
        ]
        out[a] = math.exp(sum(logs) / len(logs)) if logs else 1.0
    return out


def choose_alignment(
    stairs: Mapping[str, Staircase],
    weights: Mapping[str, float] | None = None,
    *,
    candidates: tuple[int, ...] = CANDIDATES,
    tolerance: float = 0.03,
    min_gain: float = 1.03,
    source: str = "measured",
) -> Alignment:
    """The alignment the staircases favour (see the module docstring), with its evidence.

    ``weights`` are each shape's MACs in the model (default: equal); they are turned into
    time shares with the staircase's median time per MAC.
    """
    if not stairs:
        return Alignment(1, source, "no convolution or linear layer to measure")
    macs = {k: float((weights or {}).get(k, 1.0)) for k in stairs}
    weights = {k: macs[k] * _median_cost_per_mac(s) for k, s in stairs.items()}
    total = sum(weights.values()) or 1.0
    per = {k: gains(s, candidates) for k, s in stairs.items()}
    log_gain = {
        a: sum(weights[k] * math.log(per[k][a]) for k in stairs) / total for a in candidates
    }
    best = max(candidates, key=lambda a: log_gain[a])
    if log_gain[best] < math.log(min_gain):
        chosen = 1
    else:
        floor = log_gain[best] - math.log1p(tolerance)  # within noise of the best
        chosen = min(a for a in candidates if log_gain[a] >= floor)
    first = next(iter(stairs.values()))
    where = f"{first.runtime}, {first.cpu}, {first.threads} threads"
    shares = ", ".join(f"{k} {weights[k] / total:.0%}" for k in stairs)
    if chosen == 1:
        reason = (
            f"measured: no alignment costs less than {1 / min_gain:.2f}x the time per MAC of "
            f"exact widths ({where}; time share by layer shape: {shares})"
        )
    else:
        reason = (
            f"measured: widths rounded to multiples of {chosen} cost "
            f"{1 / math.exp(log_gain[chosen]):.2f}x the time per MAC of exact widths "
            f"({where}; time share by layer shape: {shares})"
        )
    evidence = {
        "gain": {str(a): round(math.exp(log_gain[a]), 4) for a in candidates},
        "staircases": {
            k: {
                "time_share": round(weights[k] / total, 4),
                "macs": int(macs[k]),
                "gain": {str(a): round(g, 4) for a, g in per[k].items()},
                "source": s.source,
                "runtime": s.runtime,
                "cpu": s.cpu,
                "threads": s.threads,
                "widths": [min(s.widths), max(s.widths)],
                "ms": [round(v, 5) for v in s.ms],
            }
            for k, s in stairs.items()
        },
    }
    return Alignment(chosen, source, reason, evidence)


def _median_cost_per_mac(s: Staircase) -> float:
    cpm = sorted(ms / max(m, 1) for ms, m in zip(s.ms, s.macs, strict=True))
    return cpm[len(cpm) // 2] if cpm else 1.0


def layer_kind(module: nn.Module) -> str | None:
    """The staircase shape of a layer: ``convKxK``, ``dwKxK``, ``linear``, or None."""
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        dw = module.groups > 1 and module.groups == module.in_channels
        return f"{'dw' if dw else 'conv'}{kh}x{kw}"
    if isinstance(module, nn.Linear):
        return "linear"
    return None


def layer_shapes(
    model: nn.Module, example: torch.Tensor, max_kinds: int = 3, min_share: float = 0.05
) -> dict[str, float]:
    """The model's layer shapes holding at least ``min_share`` of its MACs (at most ``max_kinds``).

    Example:
        >>> layer_shapes(nn.Sequential(nn.Conv2d(8, 8, 3), nn.Flatten(), nn.Linear(8, 2)),
        ...              torch.zeros(1, 8, 3, 3))
        {'conv3x3': 576.0}
    """
    from edgeslim.bench.macs import count_macs

    per = count_macs(model, example)[1]
    macs: dict[str, float] = {}
    for name, mod in model.named_modules():
        kind = layer_kind(mod)
        if kind is not None and per.get(name, 0) > 0:
            macs[kind] = macs.get(kind, 0.0) + per[name]
    total = sum(macs.values())
    ranked = sorted(macs.items(), key=lambda kv: -kv[1])[:max_kinds]
    return {k: v for k, v in ranked if v >= min_share * total}


def resolve_alignment(
    model: nn.Module,
    example: torch.Tensor,
    round_to: RoundTo = "auto",
    *,
    threads: int | None = None,
    stairs: Mapping[str, Staircase] | None = None,
) -> Alignment:
    """The alignment to prune ``model`` with: ``round_to`` itself, or measured when ``"auto"``.

    ``stairs`` injects staircases (tests, or a staircase measured elsewhere) instead of
    reading the cache or measuring; shapes missing from it are still measured.

    Example:
        >>> resolve_alignment(nn.Linear(4, 4), torch.zeros(1, 4), 8).reason
        'given (--round-to 8)'
    """
    if round_to != "auto":
        if not isinstance(round_to, int) or round_to < 1:
            raise EdgeslimError(f"round_to must be 'auto' or an integer >= 1, got {round_to!r}")
        how = "exact ratios" if round_to == 1 else f"--round-to {round_to}"
        return Alignment(round_to, "user", f"given ({how})")
    shapes = layer_shapes(model, example)
    got = {}
    for kind in shapes:
        if stairs is not None and kind in stairs:
            got[kind] = stairs[kind]
        else:
            got[kind] = staircase(kind, threads)
    src = "injected" if stairs is not None and all(k in stairs for k in shapes) else "measured"
    return choose_alignment(got, shapes, source=src)


def coarser(a: int, steps: int = 2) -> list[int]:
    """The next coarser alignments to try when an aligned model still measures slower."""
    return [c for c in (8, 16, 32) if c > a][:steps]
