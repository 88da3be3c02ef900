"""Weight sharing by k-means clustering (the quantization stage of Deep Compression).

Han, Mao, Dally, "Deep Compression: Compressing Deep Neural Networks with
Pruning, Trained Quantization and Huffman Coding", ICLR 2016 (arXiv:1510.00149),
Section 3: each layer's weights are clustered into ``k = 2^bits`` shared values
(linear initialisation over ``[min, max]``, which the paper found best), and the
layer stores ``bits``-bit indices plus a ``k``-entry fp32 codebook.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from edgeslim.core.errors import EdgeslimError
from edgeslim.core.methods import Method, MethodConfig, apply, register_method
from edgeslim.quant.storage import StorageReport, account, codable


def kmeans_1d(x: Tensor, k: int, iters: int = 30) -> tuple[Tensor, Tensor]:
    """Lloyd's algorithm on scalars; returns ``(centroids, assignment)``.

    Example:
        >>> c, a = kmeans_1d(torch.tensor([0.0, 0.1, 5.0, 5.2]), 2)
        >>> [round(v, 2) for v in c.tolist()]
        [0.05, 5.1]
    """
    x = x.flatten().float()
    c = torch.linspace(float(x.min()), float(x.max()), k)
    for _ in range(iters):
        edges = (c[1:] + c[:-1]) / 2
        a = torch.bucketize(x, edges)
        sums = torch.zeros(k).index_add_(0, a, x)
        counts = torch.zeros(k).index_add_(0, a, torch.ones_like(x))
        new = torch.where(counts > 0, sums / counts.clamp(min=1), c)
        new, _ = torch.sort(new)
        if torch.allclose(new, c):
            break
        c = new
    a = torch.bucketize(x, (c[1:] + c[:-1]) / 2)
    return c, a


@dataclass(frozen=True)
class KMeansConfig(MethodConfig):
    """``2^bits`` shared values per conv/linear layer, ``iters`` Lloyd iterations at most."""

    bits: int = 4
    iters: int = 30

    def __post_init__(self) -> None:
        if not 1 <= self.bits <= 8:
            raise EdgeslimError(f"k-means bits must be in 1..8, got {self.bits}")


@register_method(KMeansConfig, "kmeans")
class KMeansSharing(Method):
    """Only values change: a saved model reloads without replaying anything."""

    def apply_(self, model, config, layers, calib):
        coded = {}
        for name, mod, cfg in layers.select(model, codable):
            c, a = kmeans_1d(mod.weight.detach(), 2**cfg.bits, cfg.iters)
            with torch.no_grad():
                mod.weight.copy_(c[a].reshape(mod.weight.shape))
            # codes + an fp32 codebook
            coded[f"{name}.weight" if name else "weight"] = (cfg.bits, 4 * 2**cfg.bits)
            layers.done(name, cfg)
        return model, {"storage": account(model, coded).to_dict()}


def kmeans_share_model(
    model: nn.Module, bits: int = 4, exclude: tuple[str, ...] = ()
) -> tuple[nn.Module, StorageReport]:
    """A copy of ``model`` whose conv/linear weights take ``2^bits`` shared values per layer.

    Same as ``apply(model, KMeansConfig(bits), overrides={p: None for p in exclude})``.

    Example:
        >>> m, rep = kmeans_share_model(nn.Sequential(nn.Linear(64, 64)), bits=4)
        >>> len(m[0].weight.unique()) <= 16
        True
    """
    out, rec = apply(model, KMeansConfig(bits), overrides=dict.fromkeys(exclude))
    s = rec.details["storage"]
    return out, StorageReport(s["float_bytes"], s["compressed_bytes"], s["layers"])
