"""FastBERT's student classifier: a small self-attention over all tokens, read at [CLS].

Liu et al. (ACL 2020, section 3.1) give every branch "a fully-connected layer to
128 dimensions, a self-attention of 2 heads, a fully-connected layer of 128 and the
classifier". Unlike a head on the [CLS] vector alone, the branch can look at every
token of a shallow layer, where [CLS] has not yet gathered what the task needs.
Only the [CLS] query is computed (the one output the classifier reads), so a branch
costs ``O(T · width)``, next to nothing beside an encoder layer.

The sequence is attended without a padding mask, as the segments of
:mod:`edgeslim.distill.fastbert` run the encoder layers.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from edgeslim.core.errors import EdgeslimError


class AttentionBranch(nn.Module):
    """``(N, T, hidden) -> (feature (N, width), logits (N, classes))``.

    Example:
        >>> b = AttentionBranch(32, 3, width=16, heads=2)
        >>> f, z = b(torch.randn(4, 10, 32))
        >>> tuple(f.shape), tuple(z.shape)
        ((4, 16), (4, 3))
    """

    def __init__(self, hidden: int, num_classes: int, width: int = 128, heads: int = 2) -> None:
        super().__init__()
        if width % heads:
            raise EdgeslimError(f"branch width {width} is not divisible by {heads} heads")
        self.heads, self.width = heads, width
        self.down = nn.Linear(hidden, width)
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(width, 2 * width)
        self.fc = nn.Sequential(nn.Linear(width, width), nn.Tanh())
        self.out = nn.Linear(width, num_classes)

    def forward(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if feat.dim() != 3:
            raise EdgeslimError(f"an attention branch reads (N, T, C) tokens, got {feat.shape}")
        n, t, _ = feat.shape
        d = self.width // self.heads
        x = self.down(feat)
        q = self.q(x[:, :1]).reshape(n, 1, self.heads, d).transpose(1, 2)  # (N, h, 1, d)
        k, v = self.kv(x).reshape(n, t, 2, self.heads, d).permute(2, 0, 3, 1, 4)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1)  # (N, h, 1, T)
        f = self.fc((att @ v).reshape(n, self.width))
        return f, self.out(f)
