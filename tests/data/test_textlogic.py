"""``textlogic`` / ``textpair``: determinism, splits, tokenizer, and the label rule
re-derived by an independent parser of the sentence text (never the generator's label)."""

from __future__ import annotations

import pytest

pytest.importorskip("tokenizers")

from edgeslim.data import dataset_info, load_dataset  # noqa: E402
from edgeslim.data.textlogic import split_samples, textlogic_tokenizer  # noqa: E402
from edgeslim.data.textlogic_grammar import generate_samples  # noqa: E402
from edgeslim.data.wordpiece import decode  # noqa: E402


def test_same_seed_same_samples_other_seed_other_samples():
    assert generate_samples(40, seed=3) == generate_samples(40, seed=3)
    assert generate_samples(40, seed=3) != generate_samples(40, seed=4)


@pytest.mark.parametrize("task", ["textlogic", "textpair"])
def test_splits_are_disjoint_balanced_and_sized(task):
    splits = split_samples(task)
    texts = {k: {(s.text_a, s.text_b) for s in v} for k, v in splits.items()}
    assert {k: len(v) for k, v in texts.items()} == {"test": 1000, "val": 1000, "train": 12000}
    assert not texts["train"] & texts["val"]
    assert not texts["train"] & texts["test"]
    assert not texts["val"] & texts["test"]
    labels = [s.label for s in splits["train"]]
    assert abs(sum(labels) - len(labels) / 2) <= 2


@pytest.mark.parametrize("spec", ["textlogic", "textpair:128"])
def test_registered_spec_gives_token_ids_that_decode_to_the_sample(spec):
    info = dataset_info(spec)
    ds = load_dataset(spec, "val")
    x, y = ds[5]
    assert info.task == "sequence_classification" and info.num_classes == 2
    assert x.shape == info.input_shape and int(x.max()) < info.vocab_size
    s = split_samples(spec.split(":")[0])["val"][5]
    assert y == s.label
    want = s.text_a if s.text_b is None else f"{s.text_a} {s.text_b}"
    assert decode(textlogic_tokenizer(), x.numpy()) == want
