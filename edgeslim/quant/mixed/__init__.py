"""HAWQ-V3 mixed precision: Hessian traces, sensitivities, and the bit-width integer program.

The verb is :func:`hawq_bits`; it reads the model and returns a record (per-layer
trace with its 95% interval, Omega per bit-width, chosen bits, Pareto front).

Yao et al., "HAWQ-V3: Dyadic Neural Network Quantization", ICML 2021 (arXiv:2011.10680).
"""

from edgeslim.quant.mixed.hawq import HawqConfig, HawqRecord, LayerBits, hawq_bits
from edgeslim.quant.mixed.hessian import TraceEstimate, hutchinson_traces
from edgeslim.quant.mixed.ilp import (
    BitProblem,
    BitSolution,
    ParetoPoint,
    pareto_front,
    size_sweep,
    solve_bits,
)
from edgeslim.quant.mixed.sensitivity import FLOAT_BITS, omega, quantize_weight, sensitivities

__all__ = [
    "FLOAT_BITS",
    "BitProblem",
    "BitSolution",
    "HawqConfig",
    "HawqRecord",
    "LayerBits",
    "ParetoPoint",
    "TraceEstimate",
    "hawq_bits",
    "hutchinson_traces",
    "omega",
    "pareto_front",
    "quantize_weight",
    "sensitivities",
    "size_sweep",
    "solve_bits",
]
