"""An in-memory image dataset that normalizes (and optionally augments) on access.

Every built-in family decodes its images once into an ``N,H,W,C`` array and wraps it in
:class:`ArrayDataset`, so normalization and augmentation live in exactly one place.

Augmentation is the standard CIFAR recipe (He et al., 2016, "Deep Residual Learning for
Image Recognition", sec. 4.2): zero-pad 4 px, take a random crop of the original size and,
where the data allows it, a random horizontal flip.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from edgeslim.core.errors import EdgeslimError
from edgeslim.data.stats import Normalization

PAD = 4  # px of zero padding before the random crop


class ArrayDataset(Dataset):
    """``(float32 C,H,W normalized, int label)`` samples from an ``N,H,W,C`` array.

    Args:
        images: ``N,H,W,C`` array. ``uint8`` is scaled by 1/255 first; floats are used as-is.
        labels: ``N`` integer class labels.
        mean: per-channel mean subtracted after scaling (length C).
        std: per-channel standard deviation divided by after scaling (length C).
        augment: random 4 px-padded crop on every access.
        flip: with ``augment``, also flip left-right with probability 1/2.

    Augmentation draws from torch's global RNG, so ``torch.manual_seed`` makes it repeatable.

    Example:
        >>> ds = ArrayDataset(np.zeros((2, 8, 8, 3), np.uint8), [0, 1], (0.5,) * 3, (0.5,) * 3)
        >>> x, y = ds[1]
        >>> tuple(x.shape), y
        ((3, 8, 8), 1)
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: Sequence[int] | np.ndarray,
        mean: Sequence[float],
        std: Sequence[float],
        augment: bool = False,
        flip: bool = False,
    ) -> None:
        if images.ndim != 4:
            raise EdgeslimError(f"expected images of shape N,H,W,C, got {images.shape}")
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        if len(labels) != len(images):
            raise EdgeslimError(f"{len(images)} images but {len(labels)} labels")
        channels = images.shape[-1]
        if len(mean) != channels or len(std) != channels:
            raise EdgeslimError(f"mean/std need {channels} values, got {len(mean)}/{len(std)}")
        scale = 1.0 / 255.0 if images.dtype == np.uint8 else 1.0
        # Channels-first so one sample is contiguous; uint8 stays uint8 (4x less RAM).
        self.images = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
        self.labels = labels
        self._scale = scale
        self._set_normalization(Normalization(tuple(map(float, mean)), tuple(map(float, std))))
        self.augment = augment
        self.flip = flip

    def _set_normalization(self, norm: Normalization) -> None:
        self.normalization = norm  # the per-channel statistics this dataset normalizes with
        self._mean = torch.tensor(norm.mean, dtype=torch.float32).view(-1, 1, 1)
        self._std = torch.tensor(norm.std, dtype=torch.float32).view(-1, 1, 1)

    def with_normalization(self, norm: Normalization) -> ArrayDataset:
        """A view of the same images normalized with ``norm`` (``self`` is unchanged)."""
        if len(norm.mean) != self.images.shape[1]:
            raise EdgeslimError(
                f"normalization has {len(norm.mean)} channels, the images {self.images.shape[1]}"
            )
        other = copy.copy(self)
        other._set_normalization(norm)
        return other

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        x = self.images[index].to(torch.float32) * self._scale
        if self.augment:
            x = _random_crop(x, PAD)
            if self.flip and torch.rand(()) < 0.5:
                x = x.flip(-1)
        return (x - self._mean) / self._std, int(self.labels[index])


def _random_crop(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Zero-pad ``x`` (C,H,W) by ``pad`` px and crop a random window of the original size."""
    _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    top, left = torch.randint(0, 2 * pad + 1, (2,)).tolist()
    return padded[:, top : top + h, left : left + w]
