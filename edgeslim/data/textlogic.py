"""``textlogic`` and ``textpair``: generated English-like tasks that need order, negation,
scope and counting (see :mod:`edgeslim.data.textlogic_grammar` for the rules).

- ``textlogic[:LENGTH]``: one sentence, a review of several vehicles; label 1 if it is
  favourable on balance ("true"), 0 if not ("false"). Kinds: tally, negation,
  contrast, doubt (counting, negation, order against "but", long-range scope).
- ``textverdict[:LENGTH]``: premise ``[SEP]`` hypothesis, like GLUE's RTE: a textlogic
  review, then a one-clause verdict on it ("it is not bad ."); label 1 "entailment" if
  the verdict is the review's, 0 "contradiction". Kinds: textlogic's. The pair task
  whose difficulty is calibrated (``benchmarks/results/textlogic.md``).
- ``textpair[:LENGTH]``: premise ``[SEP]`` hypothesis, like GLUE's RTE; label 1
  "entailment", 0 "contradiction" (the premise describes the whole scene, so a
  hypothesis it does not entail is false). Kinds: lexical, presence, order, chain, count
  (the v5 claims: no model this machine trained got off the class prior on them).

Samples are WordPiece token ids (``[CLS] ... [SEP] [PAD]...``, ``[PAD]`` = 0) from a
tokenizer trained on generated text (:func:`textlogic_tokenizer`, shared by the
tasks, so one vocabulary serves all; :attr:`DatasetInfo.vocab_size` gives its size
for a ``hf:`` config). LENGTH defaults to 64 and must be at least 64 (no sample is
cut); 128 gives the same samples with more padding. Splits come from one seeded
stream without repeats, test first, then val, then train (test 1000, val 1000,
train 12000: one test sample is 0.1 point). Nothing is downloaded; the tokenizer is
cached under ``cache_dir("tokenizers")``.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np

from edgeslim.core.errors import EdgeslimError
from edgeslim.data.registry import DATASETS, SPLITS, DatasetInfo, DataSource
from edgeslim.data.text import TokenDataset
from edgeslim.data.textlogic_grammar import SINGLE_KINDS, Sample, generate_samples
from edgeslim.data.wordpiece import cached_wordpiece, content_key, encode

if TYPE_CHECKING:
    from tokenizers import Tokenizer

VERSION = "textlogic-v6"  # bump whenever the grammar or the splits change
# textverdict's own version: it is not in the tokenizer's or the corpus's text, so it can
# change without touching textlogic's caches (its reviews are textlogic's grammar: a
# change there bumps VERSION, which every task's key includes)
VERDICT_VERSION = "textverdict-v1"
SIZES = {"test": 1000, "val": 1000, "train": 12000}
MIN_LENGTH = 64
VOCAB_SIZE = 1000  # the ceiling; the grammar's words need far fewer (see info().vocab_size)
CLASS_NAMES = {
    "textlogic": ("false", "true"),
    "textpair": ("contradiction", "entailment"),
    "textverdict": ("contradiction", "entailment"),
}
PAIRED = {"textlogic": False, "textpair": True, "textverdict": True}
_SEEDS = {
    "textlogic": 16_001, "textpair": 16_002, "tokenizer": 16_003, "corpus": 16_004,
    "textverdict": 16_005,
}  # fmt: skip


def textlogic_tokenizer() -> Tokenizer:
    """The WordPiece tokenizer of both tasks, trained on generated text (cached)."""

    def texts() -> list[str]:
        single = generate_samples(4000, _SEEDS["tokenizer"])
        pair = generate_samples(4000, _SEEDS["tokenizer"] + 1, pair=True)
        return _texts(single + pair)

    return cached_wordpiece(content_key(VERSION), texts, VOCAB_SIZE)


def _texts(samples: list[Sample]) -> list[str]:
    return [t for s in samples for t in (s.text_a, s.text_b) if t is not None]


@functools.cache
def split_samples(task: str) -> dict[str, list[Sample]]:
    """The samples of every split of ``task`` (a key of :data:`CLASS_NAMES`), by split name."""
    n = sum(SIZES.values())
    kinds = SINGLE_KINDS if task == "textverdict" else None
    samples = generate_samples(n, _SEEDS[task], pair=PAIRED[task], kinds=kinds)
    out, start = {}, 0
    for split in ("test", "val", "train"):
        out[split] = samples[start : start + SIZES[split]]
        start += SIZES[split]
    return out


@functools.cache
def _arrays(task: str, split: str, length: int) -> tuple[np.ndarray, np.ndarray]:
    samples = split_samples(task)[split]
    b = [s.text_b or "" for s in samples] if PAIRED[task] else None
    ids, cut = encode(textlogic_tokenizer(), [s.text_a for s in samples], b, length)
    if cut:  # the grammar's longest sample fits MIN_LENGTH; a change that breaks this is a bug
        raise EdgeslimError(f"{task}: {cut} {split} samples do not fit {length} tokens")
    return ids, np.array([s.label for s in samples], dtype=np.int64)


def unlabeled_corpus(n: int = 50_000, seed: int = _SEEDS["corpus"]) -> list[str]:
    """``n`` generated sentences of textlogic and textpair, none from their val or test splits.

    Unlabeled text for TinyBERT's general distillation (encode it with
    :func:`textlogic_tokenizer`, or use :func:`unlabeled_ids`). textverdict's premises
    are textlogic reviews from another seed; the corpus does not screen them (it stays
    what it was before textverdict existed), so use it for textlogic, not textverdict.
    """
    held_out = {t for task in ("textlogic", "textpair") for sp in ("val", "test")
                for t in _texts(split_samples(task)[sp])}  # fmt: skip
    out: list[str] = []
    k = 0
    while len(out) < n:
        batch = generate_samples(2000, seed + k, pair=k % 2 == 1)
        out += [t for t in _texts(batch) if t not in held_out]
        k += 1
    return out[:n]


def unlabeled_ids(n: int = 50_000, length: int = MIN_LENGTH, seed: int = _SEEDS["corpus"]):
    """:func:`unlabeled_corpus` as token ids ``(n, length)``, one sentence per row."""
    ids, _ = encode(textlogic_tokenizer(), unlabeled_corpus(n, seed), None, length)
    return ids


def _length(name: str, arg: str) -> int:
    if not arg:
        return MIN_LENGTH
    if not arg.isdigit() or int(arg) < MIN_LENGTH:
        raise EdgeslimError(f"bad {name} length {arg!r}; use {name}:64 (at least {MIN_LENGTH})")
    return int(arg)


def _source(task: str) -> DataSource:
    def load(arg: str, split: str, augment: bool) -> TokenDataset:
        if split not in SPLITS:
            raise EdgeslimError(f"unknown split {split!r}")
        return TokenDataset(*_arrays(task, split, _length(task, arg)))

    def info(arg: str) -> DatasetInfo:
        return DatasetInfo(
            2,
            (_length(task, arg),),
            CLASS_NAMES[task],
            version=f"{VERSION}+{VERDICT_VERSION}" if task == "textverdict" else VERSION,
            task="sequence_classification",
            vocab_size=textlogic_tokenizer().get_vocab_size(),
        )

    return DataSource(load=load, info=info, tokenizer=lambda arg: textlogic_tokenizer().to_str())


DATASETS.register("textlogic", _source("textlogic"))
DATASETS.register("textpair", _source("textpair"))
DATASETS.register("textverdict", _source("textverdict"))
