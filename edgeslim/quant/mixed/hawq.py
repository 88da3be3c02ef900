"""HAWQ-V3 bit-width selection, the public verb: traces -> Omega -> integer program.

Yao et al., "HAWQ-V3: Dyadic Neural Network Quantization", ICML 2021
(arXiv:2011.10680). :func:`hawq_bits` estimates every layer's Hessian trace
(:mod:`~edgeslim.quant.mixed.hessian`), scores each bit-width choice
(:mod:`~edgeslim.quant.mixed.sensitivity`) and picks one per layer under a size
and an optional BOPs budget (:mod:`~edgeslim.quant.mixed.ilp`). It only reads the
model; applying the bits (PTQ overrides, or QAT of the chosen configuration) is
the caller's next step.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from torch import nn

from edgeslim.bench.macs import count_macs
from edgeslim.core.errors import EdgeslimError
from edgeslim.quant.config import QuantSpec, weight_spec
from edgeslim.quant.mixed.hessian import LossFn, default_layers, hutchinson_traces
from edgeslim.quant.mixed.ilp import (
    BitProblem,
    LatencyImpossible,
    ParetoPoint,
    pareto_front,
    size_sweep,
    solve_bits,
)
from edgeslim.quant.mixed.sensitivity import FLOAT_BITS, sensitivities


@dataclass(frozen=True)
class HawqConfig:
    """How :func:`hawq_bits` searches.

    Args:
        choices: candidate weight bit-widths; :data:`FLOAT_BITS` (32) keeps a layer in float.
        act_bits: activation bits for BOPs; ``None``: the same as the weight's (W4A4, W8A8).
        probes: Hutchinson probes per trace.
        seed: seed of the probes.
        layers: module names to assign bits to; ``None``: every Conv2d and Linear.
        pareto_points: size budgets in the Pareto sweep.
    """

    choices: tuple[int, ...] = (4, 8, FLOAT_BITS)
    act_bits: int | None = None
    probes: int = 32
    seed: int = 0
    layers: tuple[str, ...] | None = None
    pareto_points: int = 9


@dataclass(frozen=True)
class LayerBits:
    layer: str
    numel: int  # weight parameters
    macs: int  # multiply-accumulates per sample
    trace: float  # Hutchinson mean of tr(H)
    trace_ci95: tuple[float, float]
    omega: dict[int, float]  # Omega per bit-width choice
    bits: int  # chosen


@dataclass(frozen=True)
class HawqRecord:
    """What :func:`hawq_bits` found; sizes count the studied layers' weights only."""

    layers: tuple[LayerBits, ...]
    size_budget: float  # bytes
    bops_budget: float | None
    size: float  # bytes of the chosen weights
    bops: float  # per sample
    omega: float  # total predicted damage of the choice
    float_size: float  # bytes with every studied weight in fp32
    pareto: tuple[ParetoPoint, ...]  # (size, Omega) optimum per size budget
    config: HawqConfig
    latency_budget: float | None = None  # ms, summed over the studied layers
    latency: float | None = None  # ms of the chosen bits (layers measured alone)
    impossible: str | None = None  # why the latency budget cannot be met (closest kept)

    @property
    def bits(self) -> dict[str, int]:
        return {lb.layer: lb.bits for lb in self.layers}

    def ptq_overrides(self) -> tuple[tuple[str, QuantSpec | None], ...]:
        """The chosen bits as ``PTQConfig(overrides=...)`` weight specs; float layers get None.

        Example:
            >>> # PTQConfig(weight=weight_spec(8), overrides=record.ptq_overrides())
        """
        return tuple(
            (lb.layer, None if lb.bits == FLOAT_BITS else weight_spec(lb.bits))
            for lb in self.layers
        )

    def as_dict(self) -> dict:
        """JSON-ready (bit-width keys as strings)."""
        d = asdict(self)
        for lb in d["layers"]:
            lb["omega"] = {str(b): v for b, v in lb["omega"].items()}
        return d


def _first_input(batch):
    if not isinstance(batch, list | tuple) or len(batch) != 2:
        raise EdgeslimError("hawq_bits needs batches of (inputs, targets) pairs")
    return batch[0]


def bit_problem(
    layers: Sequence[str],
    numel: Sequence[int],
    macs: Sequence[int],
    omega: dict[str, dict[int, float]],
    choices: Sequence[int],
    act_bits: int | None = None,
    latency: Mapping[str, Mapping[int, float]] | None = None,
) -> BitProblem:
    """Size (bytes), BOPs (``bits_w * bits_a * MACs``) and measured ms of every (layer, choice)."""
    bits = np.asarray(choices, dtype=float)
    a_bits = bits if act_bits is None else np.where(bits == FLOAT_BITS, FLOAT_BITS, act_bits)
    n = np.asarray(numel, dtype=float)[:, None]
    m = np.asarray(macs, dtype=float)[:, None]
    om = np.array([[omega[name][b] for b in choices] for name in layers])
    lat = None
    if latency is not None:
        missing = [name for name in layers if name not in latency]
        if missing:
            raise EdgeslimError(f"no measured latency for layers {missing[:3]}")
        lat = np.array([[float(latency[name][b]) for b in choices] for name in layers])
    return BitProblem(tuple(layers), tuple(choices), om, n * bits / 8, m * bits * a_bits, lat)


def hawq_bits(
    model: nn.Module,
    loss_fn: LossFn,
    batches: Iterable,
    size_budget: float,
    bops_budget: float | None = None,
    config: HawqConfig | None = None,
    *,
    latency: Mapping[str, Mapping[int, float]] | None = None,
    latency_budget: float | None = None,
) -> HawqRecord:
    """Choose a weight bit-width per layer by HAWQ-V3's integer program.

    Args:
        model: the float model (read only; its mode is restored).
        loss_fn: ``loss_fn(model(x), y)``.
        batches: a few ``(x, y)`` pairs for the Hessian (and MACs, from one sample).
        size_budget: bytes of the studied layers' weights, e.g. ``avg_bits * params / 8``.
        bops_budget: per-sample bit operations, ``sum bits_w * bits_a * MACs``.
        config: search settings (:class:`HawqConfig`).
        latency: ``{layer: {bits: ms}}`` measured on the deploy runtime
            (:func:`edgeslim.workflows.layer_latency.bit_latencies`).
        latency_budget: ms the studied layers may take together. When no choice
            meets it, the record keeps the fastest choice within the other budgets
            and says why in ``impossible``.

    Example:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
        >>> data = [(torch.randn(16, 8), torch.randint(0, 4, (16,)))]
        >>> rec = hawq_bits(net, nn.functional.cross_entropy, data, size_budget=(128 + 64) * 6 / 8)
        >>> sorted(rec.bits), rec.size <= rec.size_budget
        (['0', '2'], True)
    """
    cfg = config or HawqConfig()
    if any(b != FLOAT_BITS and not 2 <= b <= 8 for b in cfg.choices) or not cfg.choices:
        raise EdgeslimError(f"bit-width choices must be in 2..8 or {FLOAT_BITS}: {cfg.choices}")
    data = list(batches)
    if not data:
        raise EdgeslimError("hawq_bits needs at least one batch")
    names = list(cfg.layers) if cfg.layers is not None else default_layers(model)
    modules = dict(model.named_modules())
    weights = {n: getattr(modules.get(n), "weight", None) for n in names}
    missing = [n for n, w in weights.items() if not isinstance(w, nn.Parameter)]
    if missing:
        raise EdgeslimError(f"layers {missing} not found or have no weight parameter")
    smallest = sum(w.numel() for w in weights.values()) * min(cfg.choices) / 8
    if size_budget < smallest:  # fail before the (slow) Hessian, with solve_bits's message
        raise EdgeslimError(
            f"size budget {size_budget:,.0f} bytes is below the smallest choice, "
            f"{smallest:,.0f} bytes (every layer at its fewest bits)"
        )
    traces = hutchinson_traces(model, loss_fn, data, names, cfg.probes, cfg.seed)
    omega = sensitivities(weights, {n: t.mean for n, t in traces.items()}, cfg.choices)
    _, per_module = count_macs(model, _first_input(data[0])[:1])
    macs = [per_module.get(n, 0) for n in names]
    numel = [w.numel() for w in weights.values()]
    problem = bit_problem(names, numel, macs, omega, cfg.choices, cfg.act_bits, latency)
    impossible = None
    try:
        sol = solve_bits(problem, size_budget, bops_budget, latency_budget)
    except LatencyImpossible as e:
        sol, impossible = e.closest, str(e)
    front = pareto_front(
        problem, [*size_sweep(problem, cfg.pareto_points), size_budget], bops_budget
    )
    layers = tuple(
        LayerBits(n, numel[i], macs[i], traces[n].mean, traces[n].ci95, omega[n], sol.bits[n])
        for i, n in enumerate(names)
    )
    return HawqRecord(
        layers,
        float(size_budget),
        bops_budget,
        sol.size,
        sol.bops,
        sol.omega,
        float(sum(numel) * FLOAT_BITS / 8),
        tuple(front),
        cfg,
        latency_budget,
        sol.latency,
        impossible,
    )
