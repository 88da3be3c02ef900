"""Early-exit inference with self-distilled auxiliary heads and an entropy threshold.

FastBERT (Liu, Zhou, Wang, Zhao, Deng, Ju, "FastBERT: a Self-distilling BERT with
Adaptive Inference Time", ACL 2020) attaches a classifier after each layer and
stops as soon as one is confident enough. Confidence is the normalised entropy::

    uncertainty(p) = -sum_c p_c log p_c / log(C)   in [0, 1]

A sample exits at the first head whose uncertainty is below ``threshold`` (0
never exits early, 1 always exits at the first head). The forward pass really
stops: a forward hook on each head's block raises once every sample of the
batch has exited, so the deeper blocks are never computed (at batch 1, the
edge case, that is exactly per-sample early exit). Hooks are removed in
``finally`` and the model's mode is restored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from edgeslim.core.modes import eval_mode
from edgeslim.distill.hooks import resolve
from edgeslim.distill.losses.fastbert import FastBERTDistillation
from edgeslim.distill.losses.self_distill import SelfDistillation


def normalized_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Per-sample entropy of ``softmax(logits)`` divided by ``log(C)``.

    Example:
        >>> normalized_entropy(torch.zeros(1, 4))
        tensor([1.])
    """
    logp = torch.log_softmax(logits.float(), dim=1)
    return -(logp.exp() * logp).sum(1) / math.log(logits.shape[1])


@dataclass(frozen=True)
class ExitResult:
    """Logits per sample and the exit used: ``i < len(heads)`` an auxiliary head, else the
    model's own classifier."""

    logits: torch.Tensor
    exits: torch.Tensor  # (N,) int64


class _AllExited(Exception):
    pass


def early_exit(
    model: nn.Module,
    heads: SelfDistillation | FastBERTDistillation,
    x: torch.Tensor,
    threshold: float,
) -> ExitResult:
    """Classify ``x``, leaving at the first head confident below ``threshold``.

    ``heads`` is a trained ``self`` or ``fastbert`` loss (its ``heads`` on its
    ``student_layers``). The ONNX Runtime twin is
    :class:`edgeslim.export.early_exit.EarlyExitRunner`.

    Example:
        >>> # r = early_exit(student, distiller.losses[0], x, threshold=0.3)
        >>> # r.exits.float().mean()  # average exit depth
    """
    n = x.shape[0]
    out: torch.Tensor | None = None
    exits = torch.full((n,), len(heads.heads), dtype=torch.long)
    done = torch.zeros(n, dtype=torch.bool)
    handles = []

    def make_hook(i: int, head: nn.Module):
        def hook(_mod, _inp, feat):
            nonlocal out
            feat = feat[0] if isinstance(feat, (tuple, list)) else feat
            logits = head(feat)[1]
            if out is None:
                out = torch.zeros(n, logits.shape[1], dtype=logits.dtype, device=logits.device)
            take = (normalized_entropy(logits).cpu() < threshold) & ~done
            out[take.to(logits.device)] = logits[take.to(logits.device)]
            exits[take] = i
            done.logical_or_(take)
            if bool(done.all()):
                raise _AllExited

        return hook

    with eval_mode(model), eval_mode(heads), torch.no_grad():
        try:
            for i, (block, head) in enumerate(zip(heads.student_layers, heads.heads, strict=False)):
                handles.append(resolve(model, block).register_forward_hook(make_hook(i, head)))
            final = model(x)
            if out is None:
                out = torch.zeros_like(final)
            out[~done.to(final.device)] = final[~done.to(final.device)]
        except _AllExited:
            pass
        finally:
            for h in handles:
                h.remove()
    assert out is not None  # noqa: S101 - the forward above always sets it
    return ExitResult(out, exits)
