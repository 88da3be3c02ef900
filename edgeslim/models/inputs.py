"""Example inputs: the shape and dtype a model is fed with.

Vision models take float images; transformers take integer token ids, so an
:class:`InputSpec` carries a dtype and, for token inputs, the vocabulary size.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import torch

from edgeslim.core.errors import EdgeslimError


@dataclass(frozen=True)
class InputSpec:
    """Shape (batch first) and dtype of one model input.

    Example:
        >>> InputSpec((1, 3, 32, 32)).example(batch=4).shape
        torch.Size([4, 3, 32, 32])
    """

    shape: tuple[int, ...]
    dtype: str = "float32"  # "float32" or "int64" (token ids)
    vocab_size: int | None = None  # upper bound for int64 token ids

    def with_batch(self, batch: int) -> InputSpec:
        return InputSpec((batch, *self.shape[1:]), self.dtype, self.vocab_size)

    def example(self, batch: int | None = None, seed: int = 0) -> torch.Tensor:
        """A deterministic random input of this spec (``batch`` overrides dim 0)."""
        shape = (batch if batch is not None else self.shape[0], *self.shape[1:])
        gen = torch.Generator().manual_seed(seed)
        if self.dtype == "int64":
            return torch.randint(0, self.vocab_size or 2, shape, generator=gen, dtype=torch.long)
        return torch.randn(shape, generator=gen)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> InputSpec:
        return cls(tuple(d["shape"]), d.get("dtype", "float32"), d.get("vocab_size"))


def parse_shape(text: str) -> tuple[int, ...]:
    """Parse ``"1,3,224,224"`` (also ``1x3x224x224``) into a tuple of positive ints."""
    parts = re.split(r"[,x]", text.strip())
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise EdgeslimError(
            f"bad input shape {text!r}: expected integers like 1,3,224,224"
        ) from None
    if not shape or any(d <= 0 for d in shape):
        raise EdgeslimError(f"bad input shape {text!r}: every dimension must be a positive integer")
    return shape
