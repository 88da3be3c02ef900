"""A 3×3 conv whose filter groups share one tap pattern, run as shifted GEMMs on views.

In a zero-padded NHWC buffer flattened to ``(rows, C)``, moving the 3×3 window by
``(dy, dx)`` is moving ``dy * W_pad + dx`` rows: the input of tap ``(dy, dx)`` is a
*view* (a row offset, no copy). So for each group ``g`` and tap ``t`` of its pattern::

    out[:, g] += view_at(t) @ W[g, :, t]      # (rows, C_in) @ (C_in, |g|): one sgemm

computed over every padded position. Adjacent groups that share a tap share its GEMM
(one GEMM per tap and run of adjacent groups using it: :func:`segments_of`), so the
order of the groups matters (:func:`edgeslim.sparsity.pattern_groups.order_groups`);
the output is computed (the few rows that fall outside the output are
dropped at the end). A stride ``s`` splits the padded input into its ``s × s``
phases first (one copy of the input in total), after which every tap is again a
row offset in one phase.

Row blocks (``block_rows``): every segment reads the whole input once, which on a
large feature map (56×56×64 at batch 8 is 7 MB) means one pass over memory per
segment. Running all segments on one block of output rows before the next keeps
the block's input rows (plus the two-row halo the taps reach) and its output rows
in cache across the segments; only the order of the GEMM calls changes (the result
agrees to float rounding). ``0`` runs each segment over all rows at once (fewest calls, best
on small maps); :class:`~edgeslim.sparsity.pattern_exec.PatternExec` times the
candidates per layer and keeps the fastest.

The output comes back as a view of the padded result in channels_last order (no copy;
elementwise ops that follow read it as it is), or, with ``relu`` (a ReLU that only this
conv feeds, fused by :class:`~edgeslim.sparsity.pattern_exec.PatternExec`), as the ReLU
of it written once, contiguous channels_last: the copy and the activation are one pass.

The runtime is PyTorch eager: each GEMM is one MKL/oneDNN sgemm on a strided view,
which neither ``torch.export`` + ONNX Runtime (every Slice copies; see
``/work/shared/FACTS.md``) nor a traced graph improves on.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgeslim.core.errors import EdgeslimError
from edgeslim.sparsity.pattern_groups import run_layout

Layout = list[tuple[int, tuple[int, ...]]]  # [(filters in the group, taps 0..8), ...]


def layout_of(weight: Tensor) -> Layout:
    """Groups of consecutive filters of a 3×3 ``weight`` sharing one tap support.

    A filter joins the running group when its nonzero taps are a subset of the
    group's; otherwise it starts a new group. Always exact: no nonzero is dropped.
    """
    rows = (weight.detach().reshape(weight.shape[0], weight.shape[1], 9) != 0).any(1).float()
    out: Layout = []
    for size, taps in run_layout(rows):
        if out and set(taps) <= set(out[-1][1]):
            out[-1] = (out[-1][0] + size, out[-1][1])
        else:
            out.append((size, taps if taps else (4,)))
    return out


def segments_of(layout: Layout) -> list[tuple[int, int, int]]:
    """``(tap, start, stop)``: for each tap, each run of adjacent groups using it.

    Example:
        >>> segments_of([(2, (0, 1)), (3, (1, 4))])
        [(0, 0, 2), (1, 0, 5), (4, 2, 5)]
    """
    bounds = [0]
    for size, _ in layout:
        bounds.append(bounds[-1] + size)
    segs = []
    for t in range(9):
        run = None
        for g, (_, taps) in enumerate(layout):
            if t in taps:
                run = (run[0] if run else bounds[g], bounds[g + 1])
            elif run:
                segs.append((t, *run))
                run = None
        if run:
            segs.append((t, *run))
    return segs


class PatternConv2d(nn.Module):
    """``Conv2d(C_in, sum(sizes), 3, stride, padding)`` whose filter groups share tap patterns.

    ``weights[i]`` is ``(C_in, stop - start)``: the GEMM right-hand side of segment
    ``segments[i] = (tap, start, stop)`` (:func:`segments_of`).

    Example:
        >>> conv = nn.Conv2d(4, 6, 3, padding=1)
        >>> with torch.no_grad():
        ...     conv.weight[:, :, 0] = 0  # top row of every kernel pruned
        >>> pc = PatternConv2d.from_conv(conv)
        >>> x = torch.randn(2, 4, 5, 5)
        >>> bool(torch.allclose(pc(x), conv(x), atol=1e-5)), pc.layout[0][0]
        (True, 6)
    """

    def __init__(
        self,
        in_channels: int,
        layout: Layout,
        stride: tuple[int, int] = (1, 1),
        padding: tuple[int, int] = (1, 1),
        bias: bool = True,
        block_rows: int = 0,
        relu: bool = False,
    ) -> None:
        super().__init__()
        self.relu = bool(relu)
        if block_rows < 0:
            raise EdgeslimError(f"block_rows must be >= 0 (0: no blocking), got {block_rows}")
        self.block_rows = int(block_rows)
        self.in_channels = in_channels
        self.layout = [(int(s), tuple(int(t) for t in taps)) for s, taps in layout]
        if not self.layout or any(s < 1 or not t for s, t in self.layout):
            raise EdgeslimError(f"PatternConv2d needs non-empty groups, got {layout}")
        if any(not 0 <= t < 9 for _, taps in self.layout for t in taps):
            raise EdgeslimError(f"3x3 taps are 0..8, got {layout}")
        self.out_channels = sum(s for s, _ in self.layout)
        self.stride, self.padding = tuple(stride), tuple(padding)
        self.segments = segments_of(self.layout)
        self.weights = nn.ParameterList(
            nn.Parameter(torch.zeros(in_channels, b - a)) for _, a, b in self.segments
        )
        self.bias = nn.Parameter(torch.zeros(self.out_channels)) if bias else None

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, layout: Layout | None = None) -> PatternConv2d:
        """The same conv from a pattern-sparse 3×3 ``conv`` (its masked weight)."""
        w = conv.weight.detach()
        layout = layout_of(w) if layout is None else layout
        new = cls(w.shape[1], layout, conv.stride, conv.padding, conv.bias is not None)
        new.load_dense_(w, None if conv.bias is None else conv.bias.detach())
        return new.to(w.dtype)

    @torch.no_grad()
    def load_dense_(self, weight: Tensor, bias: Tensor | None) -> None:
        """Fill the segment GEMM weights from a dense ``(out, in, 3, 3)`` weight."""
        flat = weight.reshape(weight.shape[0], weight.shape[1], 9)
        for p, (t, a, b) in zip(self.weights, self.segments, strict=True):
            p.copy_(flat[a:b, :, t].T)
        if bias is not None:
            self.bias.copy_(bias)

    def to_dense(self, parts: list[Tensor]) -> Tensor:
        """``(out, in, 3, 3)`` from one ``(C_in, stop - start)`` tensor per segment."""
        w = parts[0].new_zeros(self.out_channels, self.in_channels, 9)
        for p, (t, a, b) in zip(parts, self.segments, strict=True):
            w[a:b, :, t] = p.T
        return w.reshape(self.out_channels, self.in_channels, 3, 3)

    def dense_weight(self) -> Tensor:
        """The equivalent ``(out, in, 3, 3)`` weight (zeros off the patterns); differentiable."""
        return self.to_dense(list(self.weights))

    def forward(self, x: Tensor) -> Tensor:
        if torch.is_grad_enabled() and any(p.requires_grad for p in self.parameters()):
            # the GEMMs write into views, which autograd refuses: train through
            # the equivalent dense conv (same values, same gradients on the kept taps)
            y = F.conv2d(x, self.dense_weight(), self.bias, self.stride, self.padding)
            return F.relu(y) if self.relu else y
        n, c, h, w = x.shape
        (sy, sx), (py, px) = self.stride, self.padding
        ho, wo = (h + 2 * py - 3) // sy + 1, (w + 2 * px - 3) // sx + 1
        ey, ex = 2 // sy, 2 // sx  # extra phase rows / columns the taps reach
        hq, wq = ho + ey, wo + ex
        xp = F.pad(x.permute(0, 2, 3, 1), (0, 0, px, sx * wq - w - px, py, sy * hq - h - py))
        phases: dict[tuple[int, int], Tensor] = {}
        if (sy, sx) == (1, 1):
            phases[(0, 0)] = xp.reshape(-1, c)  # contiguous: a view
        rows = n * hq * wq
        span = rows - (ey * wq + ex)
        if self.bias is not None:
            out = self.bias.expand(rows, self.out_channels).contiguous()
        else:
            out = x.new_zeros(rows, self.out_channels)
        plan = []  # (input rows, weight, first output column, last + 1) per segment
        for wseg, (t, a, b) in zip(self.weights, self.segments, strict=True):
            dy, dx = divmod(t, 3)
            key = (dy % sy, dx % sx)
            if key not in phases:  # one copy per phase, shared by its taps
                phases[key] = xp[:, key[0] :: sy, key[1] :: sx][:, :hq, :wq].reshape(-1, c)
            off = (dy // sy) * wq + dx // sx
            plan.append((phases[key][off : off + span], wseg, a, b))
        step = self.block_rows or span
        for r0 in range(0, span, step):
            r1 = min(span, r0 + step)
            o = out[r0:r1]
            for src, wseg, a, b in plan:
                o[:, a:b].addmm_(src[r0:r1], wseg)
        y = out.view(n, hq, wq, self.out_channels)[:, :ho, :wo]
        if self.relu:
            y = torch.clamp_min(y, 0)  # the one pass that also drops the padding rows
        return y.permute(0, 3, 1, 2)

    def extra_repr(self) -> str:
        groups = ", ".join(f"{s}x{list(t)}" for s, t in self.layout)
        blk = f", block_rows={self.block_rows}" if self.block_rows else ""
        blk += ", relu" if self.relu else ""
        return (
            f"{self.in_channels}, {self.out_channels}, stride={self.stride}{blk}, groups=[{groups}]"
        )
