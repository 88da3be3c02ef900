"""Storage accounting for weight-compressed models: bits actually needed on disk."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from torch import nn

from edgeslim.core.layer_types import layer_type_of
from edgeslim.core.select import matches


def codable(module: nn.Module) -> bool:
    """True when a weight coding (power-of-two, k-means) rewrites ``module``'s weight.

    The layer-type table says which (its ``coding`` part); subclasses count.
    """
    entry = layer_type_of(type(module), inherit=True)
    return entry is not None and entry.coding is not None


def coded_layers(model: nn.Module, exclude: Sequence[str] = ()) -> Iterator[tuple[str, nn.Module]]:
    """``(name, layer)`` for every conv/linear whose weights a weight coding rewrites.

    ``exclude`` holds exact names or whole-name regexes, as everywhere in ``quant``.
    """
    for name, mod in model.named_modules():
        if codable(mod) and not any(matches(name, p) for p in exclude):
            yield name, mod


@dataclass
class StorageReport:
    """Bytes of a model whose selected layers are stored with ``bits`` per weight."""

    float_bytes: int  # every parameter as fp32
    compressed_bytes: int  # codes + per-layer side data + untouched parameters as fp32
    layers: dict[str, dict] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.float_bytes / max(self.compressed_bytes, 1)

    def to_dict(self) -> dict:
        return {
            "float_bytes": self.float_bytes,
            "compressed_bytes": self.compressed_bytes,
            "ratio": self.ratio,
            "layers": self.layers,
        }

    @classmethod
    def from_dict(cls, d: dict) -> StorageReport:
        """The report :meth:`to_dict` wrote (a method record's ``details["storage"]``)."""
        return cls(int(d["float_bytes"]), int(d["compressed_bytes"]), dict(d.get("layers", {})))


def account(model: nn.Module, coded: dict[str, tuple[int, int]]) -> StorageReport:
    """``coded`` maps a parameter name to ``(code bits, side bytes)`` for compressed weights."""
    total_float = total = 0
    layers = {}
    for name, p in model.named_parameters():
        nbytes = p.numel() * 4
        total_float += nbytes
        if name in coded:
            bits, side = coded[name]
            b = (p.numel() * bits + 7) // 8 + side
            layers[name] = {"bits": bits, "bytes": b, "float_bytes": nbytes}
            total += b
        else:
            total += nbytes
    return StorageReport(total_float, total, layers)
