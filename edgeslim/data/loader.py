"""A deterministic ``DataLoader`` factory: same seed, same batch order, every run."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset


def make_loader(
    dataset: Dataset, batch_size: int, shuffle: bool, seed: int = 0, drop_last: bool = False
) -> DataLoader:
    """Wrap ``dataset`` in a single-process ``DataLoader`` with a seeded shuffle.

    Workers are off (``num_workers=0``): the built-in datasets live in memory, and worker
    processes would cost more than they save on small CPU boxes.

    Example:
        >>> from edgeslim.data import load_dataset
        >>> dl = make_loader(load_dataset("digits", "val"), batch_size=32, shuffle=True)
        >>> x, y = next(iter(dl))
    """
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        num_workers=0,
        generator=generator,
    )
