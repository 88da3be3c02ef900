"""WordPiece tokenizers trained offline with the ``tokenizers`` library (the ``hf`` extra).

A text dataset trains its tokenizer on its own training text (BERT's recipe: Wu et
al., "Google's Neural Machine Translation System", 2016, section 4.1, as used by
Devlin et al., "BERT", NAACL 2019): lower-cased, split on whitespace and
punctuation, ``[PAD]`` = 0, ``[UNK]`` = 1, ``[CLS]`` = 2, ``[SEP]`` = 3,
``[MASK]`` = 4, and ``[CLS] a [SEP]`` / ``[CLS] a [SEP] b [SEP]`` around each
sample. Training is deterministic for a given text and vocabulary size; the
result is cached under ``cache_dir("tokenizers")`` by a key of its content, and
written as ``tokenizer.json`` beside a saved model (:func:`save_tokenizer`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgeslim.core.atomic import write_text_atomic
from edgeslim.core.errors import EdgeslimError
from edgeslim.core.paths import cache_dir

if TYPE_CHECKING:
    from tokenizers import Tokenizer

TOKENIZER_FILE = "tokenizer.json"
SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = range(len(SPECIALS))
_RECIPE = "wordpiece-v1"  # bump when the training settings below change: keys the cache


def is_tokenizers_available() -> bool:
    return importlib.util.find_spec("tokenizers") is not None


def _require() -> None:
    if not is_tokenizers_available():
        raise EdgeslimError("text datasets need the 'hf' extra: pip install 'edgeslim[hf]'")


def train_wordpiece(texts: Iterable[str], vocab_size: int = 1000) -> Tokenizer:
    """A BERT-style WordPiece tokenizer whose vocabulary is learned from ``texts``.

    The ``tokenizers`` library normalizes, pre-tokenizes, encodes and stores it; the
    vocabulary is chosen here, because tokenizers' own ``WordPieceTrainer`` breaks ties
    between equally frequent merges in hash-map order, which changes from one run to
    the next (tokenizers 0.23). The choice: the specials, every character (word-initial
    and ``##`` continuing), then whole words by frequency (ties alphabetical) while
    they occur at least twice, then the ``##`` suffixes of the remaining words that
    save the most tokens. Greedy longest-match-first encoding (WordPiece's) then
    splits any word outside the vocabulary into those pieces, never into ``[UNK]``
    unless a character was never seen.

    Example:
        >>> tok = train_wordpiece(["the red car", "a red truck", "the truck"], vocab_size=100)
        >>> tok.encode("the red truck").tokens
        ['[CLS]', 'the', 'red', 'truck', '[SEP]']
    """
    _require()
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre = pre_tokenizers.BertPreTokenizer()
    words: Counter[str] = Counter()
    for text in texts:
        words.update(w for w, _ in pre.pre_tokenize_str(normalizer.normalize_str(text)))
    vocab = _choose_vocab(words, vocab_size)
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token=SPECIALS[UNK_ID]))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre
    tok.decoder = decoders.WordPiece(cleanup=False)  # keep " ," as the text had it
    tok.add_special_tokens(list(SPECIALS))  # same ids; marks them for skip_special_tokens
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", CLS_ID), ("[SEP]", SEP_ID)],
    )
    return tok


def _choose_vocab(words: Counter[str], vocab_size: int) -> dict[str, int]:
    chars = sorted({c for w in words for c in w})
    pieces = [*SPECIALS, *chars, *(f"##{c}" for c in chars)]
    if len(pieces) > vocab_size:
        raise EdgeslimError(
            f"a vocabulary of {vocab_size} cannot hold the {len(chars)} characters of the text"
        )
    ranked = sorted(words.items(), key=lambda wc: (-wc[1], wc[0]))
    taken = set(pieces)
    rest: Counter[str] = Counter()
    for w, n in ranked:
        if len(w) > 1 and w not in taken:
            if n >= 2 and len(pieces) < vocab_size:
                pieces.append(w)
                taken.add(w)
            else:
                rest[w] += n
    suffixes: Counter[str] = Counter()  # tokens saved by a "##" piece, summed over words
    for w, n in rest.items():
        for i in range(1, len(w) - 1):
            for j in range(i + 2, min(len(w), i + 6) + 1):
                suffixes[f"##{w[i:j]}"] += n * (j - i - 1)
    for piece, _ in sorted(suffixes.items(), key=lambda sc: (-sc[1], sc[0])):
        if len(pieces) >= vocab_size:
            break
        if piece not in taken:
            pieces.append(piece)
            taken.add(piece)
    return {p: i for i, p in enumerate(pieces)}


def content_key(*parts: str | bytes) -> str:
    """A short hex digest of ``parts``: names the cached tokenizer of that content."""
    h = hashlib.sha256(_RECIPE.encode())
    for p in parts:
        h.update(p if isinstance(p, bytes) else p.encode())
        h.update(b"\0")
    return h.hexdigest()[:20]


def cached_wordpiece(
    key: str, texts: Callable[[], Iterable[str]], vocab_size: int = 1000
) -> Tokenizer:
    """The tokenizer cached under ``key`` (see :func:`content_key`), trained on first use."""
    _require()
    from tokenizers import Tokenizer

    path = cache_dir("tokenizers") / f"{key}-{vocab_size}.json"
    if path.is_file():
        try:
            return Tokenizer.from_str(path.read_text())
        except Exception:  # noqa: BLE001 -- a damaged cache entry is retrained, not fatal
            path.unlink(missing_ok=True)
    tok = train_wordpiece(texts(), vocab_size)
    write_text_atomic(path, tok.to_str())
    return tok


def save_tokenizer(tok: Tokenizer, out_dir: str | Path) -> Path:
    """Write ``tok`` as ``out_dir/tokenizer.json`` (atomically) and return the path."""
    return write_text_atomic(Path(out_dir) / TOKENIZER_FILE, tok.to_str())


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Read a ``tokenizer.json``, or the one inside a saved-model directory."""
    _require()
    from tokenizers import Tokenizer

    path = Path(path)
    file = path / TOKENIZER_FILE if path.is_dir() else path
    if not file.is_file():
        raise EdgeslimError(f"no tokenizer at {file}")
    try:
        json.loads(file.read_text())
        return Tokenizer.from_file(str(file))
    except Exception as e:  # noqa: BLE001 -- tokenizers raises a bare Exception on bad JSON
        raise EdgeslimError(f"{file} is not a valid tokenizer.json: {e}") from None


def encode(
    tok: Tokenizer, texts_a: Sequence[str], texts_b: Sequence[str] | None, length: int
) -> tuple[np.ndarray, int]:
    """Token ids ``(n, length)`` int64 padded with ``[PAD]``, and how many samples were cut.

    Pairs are cut longest-first (the longer text loses tokens first), as BERT's GLUE runs do.
    """
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(tok.to_str())  # a copy: the caller's settings stay as they are
    tok.enable_truncation(max_length=length, strategy="longest_first")
    tok.enable_padding(length=length, pad_id=PAD_ID, pad_token=SPECIALS[PAD_ID])
    batch = list(zip(texts_a, texts_b, strict=True)) if texts_b is not None else list(texts_a)
    encs = tok.encode_batch(batch)
    ids = np.array([e.ids for e in encs], dtype=np.int64).reshape(len(encs), length)
    return ids, sum(bool(e.overflowing) for e in encs)


def decode(tok: Tokenizer, ids: np.ndarray) -> str:
    """The text of one row of ids, specials and padding dropped."""
    return tok.decode([int(i) for i in ids if i != PAD_ID], skip_special_tokens=True)
