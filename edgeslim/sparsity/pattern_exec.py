"""Deploy shared-pattern convs as :class:`PatternConv2d` where, and only where, that is faster.

``apply_(model, PatternExecConfig(), calib=[example])`` finds every 3×3 conv whose
(masked or squashed) weight has filter groups sharing a tap pattern (at most
``max_groups`` runs, see :func:`edgeslim.sparsity.pattern_conv.layout_of`), feeds
the example through the model to get each conv's real input, and times the dense
conv (channels_last, as the best PyTorch dense deployment runs) against the
pattern form on it, interleaved, on the current thread count: the pattern form once
per row-block size in ``blocks`` that is smaller than the layer's output (see
:class:`PatternConv2d`; ``0`` is unblocked), the fastest block counting. A layer is
swapped only when the pattern form is faster (``keep_faster``), so the result is
never slower than dense layer by layer. The times, the block and the choice go into
the record; a reload swaps the same layers back in before the weights load.

Run it on the model as deployed: BN folded (:mod:`edgeslim.fuse`), channels_last,
at the deploy batch size and thread count.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from edgeslim.core.errors import EdgeslimError
from edgeslim.core.methods import Method, MethodConfig, register_method
from edgeslim.core.modes import eval_mode
from edgeslim.core.select import swap_module_
from edgeslim.graph.calls import ModelGraph
from edgeslim.sparsity.mask import base_type
from edgeslim.sparsity.pattern_conv import PatternConv2d, layout_of
from edgeslim.sparsity.shared import example_of, is_pattern_conv


@dataclass(frozen=True)
class PatternExecConfig(MethodConfig):
    """Swap pattern-sparse 3×3 convs for :class:`PatternConv2d` where measured faster.

    Args:
        keep_faster: time both forms and keep the faster (False: swap every candidate).
        fuse_relu: fuse a ReLU that only a swapped conv feeds into it.
        runs: timed runs per form and layer (fastest counts; 3 warm-up runs first).
        max_groups: a weight with more filter runs than this stays dense untimed.
        blocks: row-block sizes to time for the pattern form (0: unblocked); with
            ``keep_faster=False`` the first is used untimed.

    Example:
        >>> from edgeslim.core.methods import apply
        >>> conv = nn.Conv2d(4, 4, 3, padding=1)
        >>> _ = conv.weight.data[:, :, 0].zero_()
        >>> m, rec = apply(nn.Sequential(conv), PatternExecConfig(keep_faster=False),
        ...                calib=[torch.randn(1, 4, 6, 6)])
        >>> type(m[0]).__name__, rec.details["layers"]["0"]["kept"]
        ('PatternConv2d', 'pattern')
    """

    keep_faster: bool = True
    runs: int = 20
    max_groups: int = 16
    blocks: tuple[int, ...] = (0, 2048, 4096, 8192, 16384)
    fuse_relu: bool = True

    def __post_init__(self) -> None:
        if not self.blocks or any(int(b) < 0 for b in self.blocks):
            raise EdgeslimError(f"blocks must be row counts >= 0 (0: unblocked), got {self.blocks}")


def _inputs(model: nn.Module, names: list[str], x: torch.Tensor) -> dict[str, torch.Tensor]:
    seen: dict[str, torch.Tensor] = {}
    handles = [
        model.get_submodule(n).register_forward_pre_hook(
            lambda _m, args, n=n: seen.setdefault(n, args[0].detach())
        )
        for n in names
    ]
    try:
        with eval_mode(model), torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return seen


def time_many(fns: list, x: torch.Tensor, runs: int) -> list[float]:
    """Fastest ms of each ``f(x)`` of ``fns``, interleaved run by run (3 warm-ups each).

    The fastest run, not the median: other processes only ever add time, so on a
    shared CPU the least-disturbed run is the best estimate of a layer's own cost
    (on a quiet machine the two agree).
    """
    times: list[list[float]] = [[] for _ in fns]
    with torch.no_grad():
        for i in range(runs + 3):
            for f, acc in zip(fns, times, strict=True):
                t0 = time.perf_counter()
                f(x)
                if i >= 3:
                    acc.append((time.perf_counter() - t0) * 1e3)
    return [min(t) for t in times]


def _blocked(pc: PatternConv2d, rows: int):
    def run(x: torch.Tensor) -> torch.Tensor:
        pc.block_rows = rows
        return pc(x)

    return run


def _candidates(blocks: tuple[int, ...], x: torch.Tensor, stride) -> list[int]:
    """The blocks smaller than the layer's output rows (``0`` always; no duplicates)."""
    n, _, h, w = x.shape
    rows = n * (h // stride[0] + 2) * (w // stride[1] + 2)
    return sorted({0, *(int(b) for b in blocks if 0 < int(b) < rows)})


def relu_after(model: nn.Module, x: torch.Tensor, names: list[str]) -> dict[str, str]:
    """``{conv: relu}``: a ``nn.ReLU`` called once that reads only the conv's output.

    Raises :class:`EdgeslimError` when the model cannot be captured.
    """
    with eval_mode(model), torch.no_grad():
        g = ModelGraph.of(model, x)
    mods = dict(model.named_modules())
    out = {}
    for node in g.ops():
        conv = g.scope(node).path
        if conv not in names or g.name(node) != "conv2d" or g.calls[conv] != 1:
            continue
        users = list(node.users)
        if len(users) != 1 or g.name(users[0]) not in ("relu", "relu_"):
            continue
        relu = g.scope(users[0]).path
        if isinstance(mods.get(relu), nn.ReLU) and g.calls[relu] == 1:
            out[conv] = relu
    return out


def _dense_twin(conv: nn.Module) -> nn.Conv2d:
    twin = nn.Conv2d(conv.in_channels, conv.out_channels, 3, conv.stride, conv.padding)
    twin.weight = nn.Parameter(conv.weight.detach().clone())
    twin.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach().clone())
    return twin.to(memory_format=torch.channels_last).eval()


@register_method(PatternExecConfig, "pattern_exec")
class PatternExec(Method):
    def apply_(self, model, config, layers, calib):
        x = example_of(calib)
        picked = {n: (m, c) for n, m, c in layers.select(model, is_pattern_conv)}
        plans = {}
        for n, (mod, _) in picked.items():
            lay = layout_of(mod.weight)
            if len(lay) <= config.max_groups and sum(len(t) for _, t in lay) < 9 * len(lay):
                plans[n] = lay
        ins = _inputs(model, list(plans), x.contiguous(memory_format=torch.channels_last))
        relus, why = {}, None
        if config.fuse_relu and plans:
            try:
                relus = relu_after(model, x, list(plans))
            except EdgeslimError as e:
                why = f"no ReLU fused: {e}"
        out = {}
        for n, lay in plans.items():
            mod, cfg = picked[n]
            pc = PatternConv2d.from_conv(mod, lay).eval()
            pc.block_rows = int(config.blocks[0])
            info = {"layout": [[s, list(t)] for s, t in lay], "stride": list(mod.stride)}
            info.update(padding=list(mod.padding), bias=mod.bias is not None)
            info["in_channels"] = mod.in_channels
            if n in ins and config.keep_faster:
                xin = ins[n].contiguous(memory_format=torch.channels_last)
                blocks = _candidates(config.blocks, xin, mod.stride)
                fns = [_dense_twin(mod)] + [_blocked(pc, b) for b in blocks]
                dense_ms, *pat = time_many(fns, xin, config.runs)
                best = min(range(len(blocks)), key=pat.__getitem__)
                pc.block_rows = blocks[best]
                info.update(dense_ms=round(dense_ms, 4), pattern_ms=round(pat[best], 4))
                info["block_ms"] = {str(b): round(t, 4) for b, t in zip(blocks, pat, strict=True)}
                faster = pat[best] < dense_ms
            else:
                faster = False  # not timed (or never called on the example)
            info["block_rows"] = pc.block_rows
            info["kept"] = "pattern" if (faster or not config.keep_faster) else "dense"
            if info["kept"] == "pattern":
                swap_module_(model, n, pc)
                layers.done(n, cfg)
                if n in relus:
                    pc.relu = True
                    swap_module_(model, relus[n], nn.Identity())
                    info["relu"] = relus[n]
            out[n] = info
        details = {"layers": out, "threads": torch.get_num_threads(), "batch": x.shape[0]}
        if why:
            details["relu_note"] = why
        return model, details

    def restore_(self, model, config, layers, details):
        for n, info in details.get("layers", {}).items():
            if info.get("kept") != "pattern":
                continue
            old = model.get_submodule(n)
            if base_type(old) is not nn.Conv2d:
                continue
            lay = [(int(s), tuple(t)) for s, t in info["layout"]]
            new = PatternConv2d(
                info["in_channels"],
                lay,
                info["stride"],
                info["padding"],
                bool(info["bias"]),
                int(info.get("block_rows", 0)),
                relu=bool(info.get("relu")),
            )
            swap_module_(model, n, new)
            if info.get("relu"):
                swap_module_(model, info["relu"], nn.Identity())
        return model
