"""Weight sharing by k-means clustering (the quantization stage of Deep Compression).

Han, Mao, Dally, "Deep Compression: Compressing Deep Neural Networks with
Pruning, Trained Quantization and Huffman Coding", ICLR 2016 (arXiv:1510.00149),
Section 3: each layer's weights are clustered into ``k = 2^bits`` shared values
(linear initialisation over ``[min, max]``, which the paper found best), and the
layer stores ``bits``-bit indices plus a ``k``-entry fp32 codebook.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from edgeslim.quant.storage import StorageReport, account, coded_layers


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


def kmeans_share_model(
    model: nn.Module, bits: int = 4, exclude: tuple[str, ...] = ()
) -> tuple[nn.Module, StorageReport]:
    """A copy of ``model`` whose conv/linear weights take ``2^bits`` shared values per layer.

    Example:
        >>> m, rep = kmeans_share_model(nn.Sequential(nn.Linear(64, 64)), bits=4)
        >>> len(m[0].weight.unique()) <= 16
        True
    """
    out = copy.deepcopy(model)
    coded = {}
    for name, mod in coded_layers(out, exclude):
        c, a = kmeans_1d(mod.weight.detach(), 2**bits)
        with torch.no_grad():
            mod.weight.copy_(c[a].reshape(mod.weight.shape))
        coded[f"{name}.weight" if name else "weight"] = (bits, 4 * 2**bits)
    return out, account(out, coded)
