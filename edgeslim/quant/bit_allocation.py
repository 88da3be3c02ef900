"""Per-channel bit allocation under an average bit budget.

Banner, Nahshan, Soudry, NeurIPS 2019 (arXiv:1810.05723), Section 4: for
channels with ranges ``R_i`` sharing a budget of quantization bins, the MSE is
minimised by ``2^{M_i} = R_i^{2/3} / sum_j R_j^{2/3} * 2^B``: wide channels get
more bits. Bit widths are then rounded, clipped to ``[min_bits, max_bits]`` and
lowered greedily (widest-noise-first kept) until the mean meets the budget.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from edgeslim.core.errors import EdgeslimError


def allocate_bits(ranges: Tensor, avg_bits: float, min_bits: int = 2, max_bits: int = 8) -> Tensor:
    """Integer bits per channel whose mean is at most ``avg_bits``.

    Example:
        >>> b = allocate_bits(torch.tensor([0.1, 1.0, 1.0, 8.0]), 4)
        >>> b.tolist(), float(b.float().mean()) <= 4
        ([2, 4, 4, 6], True)
    """
    if not min_bits <= avg_bits <= max_bits:
        raise EdgeslimError(f"average bits {avg_bits} outside [{min_bits}, {max_bits}]")
    r = ranges.double().clamp(min=1e-12)
    n = r.numel()
    w = r ** (2.0 / 3.0)
    total_bins = n * 2.0**avg_bits
    m = torch.log2(w / w.sum() * total_bins)
    bits = m.round().clamp(min_bits, max_bits).long()
    budget = math.floor(avg_bits * n + 1e-9)
    # noise of channel i at b bits ~ R_i^2 4^-b: drop a bit where that costs least
    while int(bits.sum()) > budget:
        cost = torch.where(bits > min_bits, r**2 * 4.0 ** (-(bits - 1).double()), torch.inf)
        bits[int(cost.argmin())] -= 1
    while int(bits.sum()) < budget:
        gain = torch.where(bits < max_bits, r**2 * 4.0 ** (-bits.double()), -torch.inf)
        i = int(gain.argmax())
        if not math.isfinite(float(gain[i])):
            break
        bits[i] += 1
    return bits
