"""GLUE-format TSV files on disk: ``glue:DIR[,length=N][,vocab=N]``.

DIR is one GLUE task folder (Wang et al., "GLUE", ICLR 2019) holding ``train.tsv``
and ``dev.tsv``. The task is told from the header line:

========  ====================================  ==========  ===============================
format    text columns                          label col   labels (id order)
========  ====================================  ==========  ===============================
sst2      sentence                              label       0 negative, 1 positive
mrpc      #1 String, #2 String                  Quality     0 not_equivalent, 1 equivalent
rte       sentence1, sentence2                  label       entailment, not_entailment
qnli      question, sentence                    label       entailment, not_entailment
qqp       question1, question2                  is_duplicate  0 not_duplicate, 1 duplicate
========  ====================================  ==========  ===============================

Splits: ``train.tsv`` is ``train``; ``dev.tsv`` serves as both ``val`` and
``test``, because GLUE's own ``test.tsv`` has no labels (scores on it come only
from the GLUE server), so it is never read. Pairs are joined as
``[CLS] a [SEP] b [SEP]``. A WordPiece tokenizer is trained on the train split's
text (:mod:`edgeslim.data.wordpiece`; ``vocab`` entries, default 2000) and cached
by the file's content; samples are padded or cut to ``length`` tokens (default
128). A malformed row (wrong number of columns, unknown label, empty text) is an
:class:`EdgeslimError` naming the file and line.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgeslim.core.errors import EdgeslimError
from edgeslim.data.registry import DATASETS, SPLITS, DatasetInfo, DataSource
from edgeslim.data.text import TokenDataset
from edgeslim.data.wordpiece import cached_wordpiece, content_key, encode

if TYPE_CHECKING:
    from tokenizers import Tokenizer

DEFAULT_LENGTH = 128
DEFAULT_VOCAB = 2000
FILES = {"train": "train.tsv", "val": "dev.tsv", "test": "dev.tsv"}


@dataclass(frozen=True)
class GlueFormat:
    name: str
    text_columns: tuple[str, ...]
    label_column: str
    labels: tuple[str, ...]  # the raw label strings, in class-id order
    class_names: tuple[str, ...]


FORMATS = (
    GlueFormat("sst2", ("sentence",), "label", ("0", "1"), ("negative", "positive")),
    GlueFormat(
        "mrpc", ("#1 String", "#2 String"), "Quality", ("0", "1"),
        ("not_equivalent", "equivalent"),
    ),
    GlueFormat(
        "rte", ("sentence1", "sentence2"), "label", ("entailment", "not_entailment"),
        ("entailment", "not_entailment"),
    ),
    GlueFormat(
        "qnli", ("question", "sentence"), "label", ("entailment", "not_entailment"),
        ("entailment", "not_entailment"),
    ),
    GlueFormat(
        "qqp", ("question1", "question2"), "is_duplicate", ("0", "1"),
        ("not_duplicate", "duplicate"),
    ),
)  # fmt: skip


@dataclass(frozen=True)
class GlueSplit:
    """The parsed rows of one TSV file."""

    texts_a: list[str]
    texts_b: list[str] | None
    labels: np.ndarray  # int64 class ids


def detect_format(header: list[str], file: Path) -> GlueFormat:
    """The format whose text and label columns the header names."""
    cols = set(header)
    for f in FORMATS:
        if cols >= {*f.text_columns, f.label_column}:
            return f
    known = "; ".join(f"{f.name}: {', '.join((*f.text_columns, f.label_column))}" for f in FORMATS)
    raise EdgeslimError(
        f"{file}:1: cannot tell the GLUE task from the header {header!r} (known formats: {known})"
    )


def _lines(file: Path) -> list[str]:
    if not file.is_file():
        raise EdgeslimError(f"GLUE file not found: {file}")
    out = []
    for no, raw in enumerate(file.read_bytes().splitlines(), 1):
        try:
            out.append(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise EdgeslimError(f"{file}:{no}: not UTF-8 text ({e.reason})") from None
    if not out:
        raise EdgeslimError(f"{file} is empty: a GLUE TSV starts with a header line")
    out[0] = out[0].removeprefix("\ufeff")  # MRPC's files start with a byte-order mark
    return out


def read_tsv(file: str | Path) -> tuple[GlueFormat, GlueSplit]:
    """Parse one GLUE TSV with a label column; every bad row names ``file:line``.

    Example:
        >>> # fmt, split = read_tsv("glue/RTE/dev.tsv"); fmt.name, split.labels[:3]
    """
    file = Path(file)
    lines = _lines(file)
    header = lines[0].split("\t")
    fmt = detect_format(header, file)
    where = {c: header.index(c) for c in (*fmt.text_columns, fmt.label_column)}
    texts: list[list[str]] = [[] for _ in fmt.text_columns]
    labels = []
    for no, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue  # a blank line (often the last) is not a row
        row = line.split("\t")
        if len(row) != len(header):
            raise EdgeslimError(
                f"{file}:{no}: expected {len(header)} tab-separated columns as in the header, "
                f"found {len(row)}"
            )
        raw = row[where[fmt.label_column]].strip()
        if raw not in fmt.labels:
            raise EdgeslimError(
                f"{file}:{no}: unknown label {raw!r} in column {fmt.label_column!r}; "
                f"expected one of {', '.join(fmt.labels)}"
            )
        labels.append(fmt.labels.index(raw))
        for k, col in enumerate(fmt.text_columns):
            text = row[where[col]].strip()
            if not text:
                raise EdgeslimError(f"{file}:{no}: empty text in column {col!r}")
            texts[k].append(text)
    if not labels:
        raise EdgeslimError(f"{file} has a header but no rows")
    pair = texts[1] if len(texts) > 1 else None
    return fmt, GlueSplit(texts[0], pair, np.array(labels, dtype=np.int64))


def parse_arg(arg: str) -> tuple[Path, int, int]:
    """``DIR[,length=N][,vocab=N]`` -> (resolved DIR, length, vocab)."""
    parts = arg.split(",")
    opts = {"length": DEFAULT_LENGTH, "vocab": DEFAULT_VOCAB}
    while len(parts) > 1 and "=" in parts[-1]:
        key, _, value = parts.pop().partition("=")
        if key not in opts or not value.isdigit() or int(value) < 8:
            raise EdgeslimError(
                f"bad glue option {key}={value!r}; use glue:DIR,length=128,vocab=2000"
            )
        opts[key] = int(value)
    root = Path(",".join(parts)).expanduser().resolve()
    if not root.is_dir():
        raise EdgeslimError(f"GLUE task folder not found: {root}")
    return root, opts["length"], opts["vocab"]


def _split(root: Path, name: str) -> tuple[GlueFormat, GlueSplit, str]:
    """Parsed ``root/name`` and a digest of its bytes (cache keys follow the content)."""
    file = root / name
    st = file.stat() if file.is_file() else None
    return _parsed(file, st.st_mtime_ns if st else 0, st.st_size if st else 0)


@functools.lru_cache(maxsize=8)
def _parsed(file: Path, mtime_ns: int, size: int) -> tuple[GlueFormat, GlueSplit, str]:
    # keyed by modification time and size too: an edited file is parsed again
    fmt, split = read_tsv(file)
    return fmt, split, hashlib.sha256(file.read_bytes()).hexdigest()[:16]


def glue_tokenizer(root: Path, vocab: int = DEFAULT_VOCAB) -> Tokenizer:
    """The WordPiece tokenizer trained on ``root/train.tsv`` (cached by its content)."""
    _, train, digest = _split(root, FILES["train"])
    texts = [*train.texts_a, *(train.texts_b or [])]
    return cached_wordpiece(content_key("glue", digest), lambda: texts, vocab)


def _checked(root: Path) -> GlueFormat:
    fmt, _, _ = _split(root, FILES["train"])
    dev, _, _ = _split(root, FILES["val"])
    if dev != fmt:
        raise EdgeslimError(
            f"{root}: train.tsv is {fmt.name} but dev.tsv is {dev.name}; they must match"
        )
    return fmt


def _load(arg: str, split: str, augment: bool) -> TokenDataset:
    if split not in SPLITS:
        raise EdgeslimError(f"unknown split {split!r}")
    root, length, vocab = parse_arg(arg)
    _checked(root)
    _, rows, _ = _split(root, FILES[split])
    ids, _ = encode(glue_tokenizer(root, vocab), rows.texts_a, rows.texts_b, length)
    return TokenDataset(ids, rows.labels)


def _info(arg: str) -> DatasetInfo:
    root, length, vocab = parse_arg(arg)
    fmt = _checked(root)
    digests = [_split(root, FILES[s])[2] for s in ("train", "val")]
    return DatasetInfo(
        len(fmt.labels),
        (length,),
        fmt.class_names,
        version=f"glue-{fmt.name}-{'-'.join(digests)}",
        task="sequence_classification",
        vocab_size=glue_tokenizer(root, vocab).get_vocab_size(),
    )


def _tokenizer_json(arg: str) -> str:
    root, _, vocab = parse_arg(arg)
    return glue_tokenizer(root, vocab).to_str()


DATASETS.register(
    "glue", DataSource(load=_load, info=_info, needs_arg=True, tokenizer=_tokenizer_json)
)
