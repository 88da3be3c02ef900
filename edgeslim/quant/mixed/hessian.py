"""Per-layer Hessian trace by Hutchinson's estimator.

Hutchinson, "A stochastic estimator of the trace of the influence matrix for
Laplacian smoothing splines", 1990: for a Rademacher vector ``v`` (entries
``±1`` with equal probability), ``E[v^T H v] = tr(H)``. HAWQ-V2/V3 (Dong et al.,
NeurIPS 2020, arXiv:1911.03852; Yao et al., ICML 2021, arXiv:2011.10680) use the
trace of each layer's Hessian block as its sensitivity to quantization.

``H v`` is a Hessian-vector product by double backward (Pearlmutter 1994): the
gradient of ``g . v`` where ``g`` is the gradient built with ``create_graph``.
One product per probe serves every layer: with independent probes ``v_l`` per
layer, ``v_l^T (H v)_l = v_l^T H_ll v_l + sum_{k != l} v_l^T H_lk v_k`` and the
cross terms have zero mean, so each layer's sample is an unbiased estimate of its
own block trace (as in HAWQ's PyHessian). The estimate is the mean over probes,
with a Student-t 95% confidence interval over the probe samples.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import torch
from scipy.stats import t as student_t
from torch import Tensor, nn

from edgeslim.core.errors import EdgeslimError
from edgeslim.core.modes import eval_mode

LossFn = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class TraceEstimate:
    """Hutchinson estimate of one layer's Hessian block trace."""

    layer: str
    mean: float  # mean of v^T H v over probes
    ci95: tuple[float, float]  # Student-t 95% interval of the mean
    numel: int  # parameters in the block (the weight tensor)
    probes: int

    @property
    def half_width(self) -> float:
        return (self.ci95[1] - self.ci95[0]) / 2


def default_layers(model: nn.Module) -> list[str]:
    """Names of every ``nn.Conv2d`` and ``nn.Linear`` (the layers HAWQ quantizes)."""
    return [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)]


@contextlib.contextmanager
def _grad_enabled(params: Sequence[nn.Parameter]) -> Iterator[None]:
    """Make ``params`` require grad for the duration; restore their flags after."""
    old = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(True)
        yield
    finally:
        for p, flag in zip(params, old, strict=True):
            p.requires_grad_(flag)


def _weights(model: nn.Module, layers: Sequence[str]) -> list[nn.Parameter]:
    modules = dict(model.named_modules())
    out = []
    for name in layers:
        w = getattr(modules.get(name), "weight", None)
        if not isinstance(w, nn.Parameter):
            raise EdgeslimError(f"layer {name!r} not found or has no weight parameter")
        out.append(w)
    return out


def hutchinson_traces(
    model: nn.Module,
    loss_fn: LossFn,
    batches: Iterable,
    layers: Sequence[str] | None = None,
    probes: int = 32,
    seed: int = 0,
) -> dict[str, TraceEstimate]:
    """Hessian trace of the loss with respect to each layer's weight.

    The Hessian is the one of the loss averaged over ``batches`` (pairs
    ``(inputs, targets)``); the model runs in eval mode (BatchNorm uses running
    statistics) and its mode and ``requires_grad`` flags are restored after.

    Args:
        model: the float model.
        loss_fn: ``loss_fn(model(x), y)``, a scalar, twice differentiable.
        batches: ``(x, y)`` pairs; read once and kept, so pass a few.
        layers: module names whose ``weight`` is studied; default every Conv2d/Linear.
        probes: Rademacher probes (at least 2, for the interval).
        seed: seed of the probes.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> lin = nn.Linear(3, 2)
        >>> x, y = torch.randn(8, 3), torch.randn(8, 2)
        >>> est = hutchinson_traces(lin, nn.functional.mse_loss, [(x, y)], [""], probes=8)
        >>> est[""].numel, est[""].probes
        (6, 8)
    """
    if probes < 2:
        raise EdgeslimError(f"need at least 2 probes for a confidence interval, got {probes}")
    names = list(layers) if layers is not None else default_layers(model)
    if not names:
        raise EdgeslimError("no layers to estimate Hessian traces for")
    params = _weights(model, names)
    data = [b for b in batches]
    if not data:
        raise EdgeslimError("no batches to estimate Hessian traces on")
    gen = torch.Generator().manual_seed(seed)
    # probes drawn once: the same v is applied to every batch, so the samples are
    # v^T (mean_b H_b) v, i.e. Hutchinson on the Hessian of the averaged loss
    vs = [
        [(torch.randint(0, 2, p.shape, generator=gen) * 2 - 1).to(p) for p in params]
        for _ in range(probes)
    ]
    samples = torch.zeros(probes, len(params), dtype=torch.float64)
    with eval_mode(model), _grad_enabled(params), torch.enable_grad():
        for x, y in data:
            loss = loss_fn(model(x), y) / len(data)
            grads = torch.autograd.grad(loss, params, create_graph=True)
            for i, v in enumerate(vs):
                hv = torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=True)
                for j, (vj, hj) in enumerate(zip(v, hv, strict=True)):
                    samples[i, j] += float((vj.double() * hj.double()).sum())
            del grads, loss
    tq = float(student_t.ppf(0.975, probes - 1))
    out = {}
    for j, (name, p) in enumerate(zip(names, params, strict=True)):
        col = samples[:, j]
        mean = float(col.mean())
        half = tq * float(col.std(unbiased=True)) / math.sqrt(probes)
        out[name] = TraceEstimate(name, mean, (mean - half, mean + half), p.numel(), probes)
    return out
