"""``synthtext``: a generated text-classification task over token ids, for transformers.

Each sequence is ``[CLS]`` followed by ``length - 1`` tokens. Every class owns a
small set of keyword tokens; a sequence of class ``c`` holds ``n_c`` (3-6) of
``c``'s keywords and, for every other class, fewer of its keywords (0 to
``n_c - 1``) as distractors, scattered among filler tokens. The label is the
class whose keywords occur most often, so the rule is learnable exactly, but a
model must count keyword occurrences across positions rather than spot one
token -- a small attention task in the spirit of the synthetic probes of
Tay et al., "Long Range Arena", ICLR 2021, without their scale.

Spec: ``synthtext`` or ``synthtext:LENGTH`` (default 32). Splits are generated
in memory from per-split seeds (train 4000, val 500, test 500); nothing is
downloaded or cached.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from edgeslim.core.errors import EdgeslimError
from edgeslim.data.registry import DATASETS, SPLITS, DatasetInfo, DataSource

VERSION = "synthtext-v1"
VOCAB = 128
CLS, PAD = 1, 0
NUM_CLASSES = 4
KEYWORDS_PER_CLASS = 6
SIZES = {"train": 4000, "val": 500, "test": 500}
_FIRST_KEYWORD = 2  # ids 2 .. 2 + 4*6 - 1 are keywords; the rest are filler


class TokenDataset(Dataset):
    """``(int64 token ids (length,), int label)`` samples from in-memory arrays."""

    def __init__(self, tokens: np.ndarray, labels: np.ndarray) -> None:
        self.tokens = torch.from_numpy(np.ascontiguousarray(tokens, dtype=np.int64))
        self.labels = labels.astype(np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.tokens[i], int(self.labels[i])


def keywords(c: int) -> np.ndarray:
    """Token ids that count for class ``c``."""
    start = _FIRST_KEYWORD + c * KEYWORDS_PER_CLASS
    return np.arange(start, start + KEYWORDS_PER_CLASS)


def generate(n: int, length: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` sequences of ``length`` token ids and their labels, deterministic by ``seed``.

    Example:
        >>> x, y = generate(4, 32, 0)
        >>> x.shape, int(x[0, 0]) == CLS
        ((4, 32), True)
    """
    if length < 24:
        raise EdgeslimError(f"synthtext needs sequences of at least 24 tokens, got {length}")
    rng = np.random.default_rng(seed)
    first_filler = _FIRST_KEYWORD + NUM_CLASSES * KEYWORDS_PER_CLASS
    x = rng.integers(first_filler, VOCAB, size=(n, length))
    x[:, 0] = CLS
    y = rng.integers(0, NUM_CLASSES, size=n)
    for i in range(n):
        n_major = int(rng.integers(3, 7))
        counts = [
            n_major if c == y[i] else int(rng.integers(0, n_major)) for c in range(NUM_CLASSES)
        ]
        toks = np.concatenate([rng.choice(keywords(c), size=k) for c, k in enumerate(counts)])
        pos = rng.choice(np.arange(1, length), size=len(toks), replace=False)
        x[i, pos] = toks
    return x, y


def label_of(tokens: np.ndarray) -> int:
    """The rule, applied to one sequence: the class with the most keyword occurrences."""
    counts = [int(np.isin(tokens, keywords(c)).sum()) for c in range(NUM_CLASSES)]
    return int(np.argmax(counts))


def _length(arg: str) -> int:
    if not arg:
        return 32
    if not arg.isdigit():
        raise EdgeslimError(f"bad synthtext length {arg!r}; use synthtext:32")
    return int(arg)


def _load(arg: str, split: str, augment: bool) -> TokenDataset:
    x, y = generate(SIZES[split], _length(arg), seed=1000 + SPLITS.index(split))
    return TokenDataset(x, y)


def _info(arg: str) -> DatasetInfo:
    return DatasetInfo(
        NUM_CLASSES,
        (_length(arg),),
        tuple(f"class_{c}" for c in range(NUM_CLASSES)),
        version=VERSION,
        task="sequence_classification",
    )


DATASETS.register("synthtext", DataSource(load=_load, info=_info))
