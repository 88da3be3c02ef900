"""``textlogic`` / ``textverdict`` / ``textpair``: determinism, splits, tokenizer, and the
label rule re-derived by an independent parser of the sentence text (never the generator's
label)."""

from __future__ import annotations

import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("tokenizers")

from edgeslim.core.errors import EdgeslimError  # noqa: E402
from edgeslim.data import dataset_files, dataset_info, load_dataset  # noqa: E402
from edgeslim.data.textlogic import (  # noqa: E402
    split_samples,
    textlogic_tokenizer,
    unlabeled_corpus,
)
from edgeslim.data.textlogic_grammar import (  # noqa: E402
    NOUNS,
    SINGLE_KINDS,
    Rng,
    _draw,
    generate_samples,
)
from edgeslim.data.wordpiece import (  # noqa: E402
    decode,
    load_tokenizer,
    save_tokenizer,
    train_wordpiece,
)
from edgeslim.models.saved import save_model  # noqa: E402
from edgeslim.models.spec import LoadedModel  # noqa: E402


def test_same_seed_same_samples_other_seed_other_samples():
    assert generate_samples(40, seed=3) == generate_samples(40, seed=3)
    assert generate_samples(40, seed=3) != generate_samples(40, seed=4)


@pytest.mark.parametrize("task", ["textlogic", "textpair", "textverdict"])
def test_splits_are_disjoint_balanced_and_sized(task):
    splits = split_samples(task)
    texts = {k: {(s.text_a, s.text_b) for s in v} for k, v in splits.items()}
    assert {k: len(v) for k, v in texts.items()} == {"test": 1000, "val": 1000, "train": 12000}
    assert not texts["train"] & texts["val"]
    assert not texts["train"] & texts["test"]
    assert not texts["val"] & texts["test"]
    labels = [s.label for s in splits["train"]]
    assert abs(sum(labels) - len(labels) / 2) <= 2


@pytest.mark.parametrize("spec", ["textlogic", "textpair:128", "textverdict"])
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


# -- an independent oracle: the label re-derived by parsing the sentence text --------

PLURAL_OF = dict(NOUNS)  # the vocabulary only; the rules below are written afresh
SINGULAR_OF = {p: s for s, p in NOUNS.items()}
ENTITY = r"the (\w+) (\w+)"


def _order(claim: str, before: set[tuple[tuple[str, str], tuple[str, str]]]) -> bool:
    m = re.fullmatch(rf"{ENTITY} is (not )?(before|after) {ENTITY}", claim)
    assert m, claim
    a, b = (m[1], m[2]), (m[5], m[6])
    holds = (a, b) in before if m[4] == "before" else (b, a) in before
    return holds != bool(m[3])


def _closure(pairs: set) -> set:
    out = set(pairs)
    while True:
        more = {(a, d) for a, b in out for c, d in out if b == c} - out
        if not more:
            return out
        out |= more


def _count(claim: str, items: list[tuple[str, str]]) -> bool:
    m = re.fullmatch(r"there are (not )?(more|fewer) (\w+)( things)? than (\w+)( things)?", claim)
    assert m, claim
    if m[4]:  # colours
        na, nb = (sum(c == v for c, _ in items) for v in (m[3], m[5]))
    else:
        na, nb = (sum(n == SINGULAR_OF[v] for _, n in items) for v in (m[3], m[5]))
    return (na > nb if m[2] == "more" else na < nb) != bool(m[1])


def _quantifier(claim: str, items: list[tuple[str, str]]) -> bool:
    m = re.fullmatch(r"(not )?(every|no|some) (\w+) is (\w+)", claim)
    assert m, claim
    colours = [c for c, n in items if n == m[3]]
    assert colours, "a quantifier claim must be about a noun in the scene"
    if m[2] == "every":
        holds = all(c == m[4] for c in colours)
    elif m[2] == "no":
        holds = not any(c == m[4] for c in colours)
    else:
        holds = any(c == m[4] for c in colours)
    return holds != bool(m[1])


def _lexical(claim: str) -> bool:
    m = re.fullmatch(r"(a )?(\w+) is (not )?a (colour|vehicle)", claim)
    assert m, claim
    is_vehicle = m[2] in PLURAL_OF  # keys: the singular nouns
    return (is_vehicle == (m[4] == "vehicle")) != bool(m[3])


def _presence(claim: str, items: list[tuple[str, str]]) -> bool:
    m = re.fullmatch(r"there is (a|no) (\w+)", claim)
    assert m, claim
    return any(n == m[2] for _, n in items) == (m[1] == "a")


def _agreement(text: str) -> bool:
    words = text.split()
    head = next(w for w in words if w in PLURAL_OF or w in SINGULAR_OF)
    verb = [w for w in words if w in ("is", "are")][-1]
    return (head in SINGULAR_OF) == (verb == "are")


POSITIVE = {"fast", "new", "clean", "quiet", "safe", "cheap"}
NEGATIVE = {"slow", "old", "dirty", "loud", "unsafe", "costly"}


def _review_score(text: str) -> int | None:
    """+-1 per clause ("not" flips it), x3 from "but" on; None if ``text`` is not a review."""
    score, weight = 0, 1
    for clause in text.removesuffix(" .").removeprefix("i doubt that ").split(" , "):
        if clause.startswith("but "):
            weight, clause = 3, clause.removeprefix("but ")
        m = re.fullmatch(r"the (\w+ )?(\w+) (is|are) (not )?(\w+)", clause)
        if not m or m[5] not in POSITIVE | NEGATIVE:
            return None
        assert (m[2] in PLURAL_OF) == (m[3] == "is"), clause  # subject and verb agree
        score += weight * (1 if (m[5] in POSITIVE) != bool(m[4]) else -1)
    return score


def _review(text: str) -> bool | None:
    """Favourable on balance, and "i doubt that" flips the verdict. None if not a review."""
    score = _review_score(text)
    if score is None:
        return None
    assert score != 0, text
    return (score > 0) != text.startswith("i doubt that ")


def _hypothesis(text: str) -> bool:
    """ "it is [not] good|bad ." read as favourable or not."""
    m = re.fullmatch(r"it is (not )?(good|bad) \.", text)
    assert m, text
    return (m[2] == "good") != bool(m[1])


def oracle(text_a: str, text_b: str | None) -> int:
    """The label of a sample, from its words alone."""
    if text_b is None and " , so " not in text_a:
        verdict = _review(text_a)
        return int(_agreement(text_a) if verdict is None else verdict)
    if text_b is not None and _review_score(text_a) is not None:  # textverdict
        return int(_review(text_a) == _hypothesis(text_b))
    scene, claim = (text_a, text_b) if text_b is not None else text_a.rsplit(" , so ", 1)
    scene, claim = scene.removesuffix(" ."), claim.removesuffix(" .")
    if scene.startswith("in the row stand "):
        row = re.findall(ENTITY, scene)
        before = {(a, b) for i, a in enumerate(row) for b in row[i + 1 :]}
        return int(_order(claim, before))
    if scene.startswith("the lot holds "):
        items = re.findall(r"a (\w+) (\w+)", scene.removeprefix("the lot holds "))
        if claim.endswith((" a colour", " a vehicle")):
            return int(_lexical(claim))
        if claim.startswith("there is "):
            return int(_presence(claim, items))
        return int((_count if claim.startswith("there are") else _quantifier)(claim, items))
    links = set()
    for part in scene.split(" , and "):
        m = re.fullmatch(rf"{ENTITY} is (before|after) {ENTITY}", part)
        assert m, part
        a, b = (m[1], m[2]), (m[4], m[5])
        links.add((a, b) if m[3] == "before" else (b, a))
    return int(_order(claim, _closure(links)))


@pytest.mark.parametrize("task", ["textlogic", "textpair", "textverdict"])
def test_every_test_label_matches_the_oracle(task):
    for s in split_samples(task)["test"]:
        assert oracle(s.text_a, s.text_b) == s.label, s


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), pair=st.booleans(), reviews=st.booleans())
def test_labels_match_the_oracle_for_any_seed(seed, pair, reviews):
    kinds = SINGLE_KINDS if reviews else None  # pairs of reviews: textverdict
    for s in generate_samples(12, seed, pair=pair, kinds=kinds):
        assert oracle(s.text_a, s.text_b) == s.label, s


@pytest.mark.parametrize("pair", [False, True])
def test_quantifier_kind_outside_the_mixes_still_matches_the_oracle(pair):
    rng = Rng(0)
    for _ in range(200):
        s = _draw(rng, "quantifier", pair)
        assert oracle(s.text_a, s.text_b) == s.label, s


def test_each_kind_has_both_labels_so_no_template_gives_the_answer():
    for task in ("textlogic", "textpair", "textverdict"):
        by_kind = {}
        for s in split_samples(task)["train"]:
            by_kind.setdefault(s.kind, []).append(s.label)
        for labels in by_kind.values():
            assert abs(sum(labels) / len(labels) - 0.5) < 0.01


def test_unlabeled_corpus_holds_no_val_or_test_sentence():
    corpus = unlabeled_corpus(3000)
    assert len(corpus) == 3000 and corpus == unlabeled_corpus(3000)
    for task in ("textlogic", "textpair"):
        held = {t for sp in ("val", "test") for s in split_samples(task)[sp]
                for t in (s.text_a, s.text_b) if t}  # fmt: skip
        assert not held & set(corpus)


def test_tokenizer_is_deterministic_and_round_trips_through_a_saved_model(tmp_path):
    texts = unlabeled_corpus(2000)
    tok = train_wordpiece(texts, 500)
    assert tok.to_str() == train_wordpiece(texts, 500).to_str()
    save_model(LoadedModel(torch.nn.Linear(2, 2), {"kind": "zoo"}, None, "m"), tmp_path / "m")
    save_tokenizer(tok, tmp_path / "m")
    again = load_tokenizer(tmp_path / "m")
    assert again.to_str() == tok.to_str()
    assert again.encode("the red car is not slow").ids == tok.encode("the red car is not slow").ids
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(EdgeslimError, match="not a valid tokenizer.json"):
        load_tokenizer(tmp_path / "bad.json")
    with pytest.raises(EdgeslimError, match="no tokenizer at"):
        load_tokenizer(tmp_path)


def test_lengths_below_the_longest_sample_are_refused():
    with pytest.raises(EdgeslimError, match="at least 64"):
        dataset_info("textlogic:32")


def test_dataset_files_carry_the_tokenizer_that_made_the_ids(tmp_path):
    files = dataset_files("textpair")
    assert set(files) == {"tokenizer.json"}
    (tmp_path / "tokenizer.json").write_text(files["tokenizer.json"])
    assert load_tokenizer(tmp_path).to_str() == textlogic_tokenizer().to_str()


# textlogic (v6): tally is the on-ramp a bag of words solves; negation needs bigrams
# ("not fast"); contrast needs each clause's place against "but"; doubt flips the verdict
# from the sentence's first words. textpair: no kind falls to word and bigram counts.
# textverdict: the hypothesis turns the verdict around in a quarter of the pairs, so even
# tally falls short of what counts give on textlogic (measured 57% overall, doubt 41%).
BAG_OF_BIGRAMS_CEILING = {
    "textlogic": {"contrast": 0.9, "doubt": 0.6},
    "textverdict": {"tally": 0.8, "contrast": 0.75, "doubt": 0.6},
    "textpair": {k: 0.6 for k in ("lexical", "presence", "order", "chain", "count")},
}


@pytest.mark.parametrize("task", ["textlogic", "textpair", "textverdict"])
def test_no_bag_of_words_shortcut(task):
    """Word and bigram counts do not solve the kinds that need structure (order, scope,
    binding), and score about chance on those that need it most."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    splits = split_samples(task)
    texts = {k: [f"{s.text_a} || {s.text_b}" for s in v] for k, v in splits.items()}
    vec = CountVectorizer(ngram_range=(1, 2), token_pattern=r"[^ ]+")  # noqa: S106
    n = 4000  # enough for a linear model over ~2000 features; keeps the test quick
    model = LogisticRegression(solver="liblinear").fit(
        vec.fit_transform(texts["train"][:n]), [s.label for s in splits["train"][:n]]
    )
    pred = model.predict(vec.transform(texts["test"]))
    for kind, ceiling in BAG_OF_BIGRAMS_CEILING[task].items():
        hits = [p == s.label for p, s in zip(pred, splits["test"], strict=True) if s.kind == kind]
        assert hits and sum(hits) / len(hits) < ceiling, kind


def test_review_kinds_each_add_one_rule():
    """Each textlogic kind adds one rule to the last, and the rule matters: read with it
    ignored, a kind's samples get the wrong label often."""
    ss = split_samples("textlogic")["train"]
    kinds = ("tally", "negation", "contrast", "doubt")
    by_kind = {k: [s for s in ss if s.kind == k] for k in kinds}
    assert all(len(v) == 3000 for v in by_kind.values())
    assert not any(" not " in s.text_a or " but " in s.text_a for s in by_kind["tally"])
    assert all(" but " in s.text_a for s in by_kind["contrast"] + by_kind["doubt"])
    assert all(s.text_a.startswith("i doubt that ") for s in by_kind["doubt"])

    def ignoring(s, rule: str) -> int:
        text = s.text_a
        if rule == "not":
            text = text.replace(" not ", " ")
        elif rule == "but":
            text = text.replace(" , but ", " , ")
        elif rule == "doubt":
            text = text.removeprefix("i doubt that ")
        return oracle(text, None) if _review_score(text) else 1 - s.label  # a tie: wrong

    for kind, rule in (("negation", "not"), ("contrast", "but"), ("doubt", "doubt")):
        wrong = sum(ignoring(s, rule) != s.label for s in by_kind[kind]) / len(by_kind[kind])
        assert wrong > (0.9 if rule == "doubt" else 0.2), (kind, wrong)


def test_negation_flips_a_minority_of_claims_so_each_base_rule_correlates_with_the_label():
    """v5: "not"/"no"/"after"/"fewer" in at most about FLIP (25%) of a kind's claims, not half (a
    half makes the label a parity of the base rule and the flip word, which gradient
    descent did not find: benchmarks/results/textlogic.md). Kept by textpair's claims."""
    from edgeslim.data.textlogic_grammar import FLIP, template

    by_kind: dict[str, list] = {}
    for s in split_samples("textpair")["train"]:
        by_kind.setdefault(s.kind, []).append(s)
    flip_words = {"presence": {"no"}, "order": {"not"}, "count": {"not"}}
    for kind, words in flip_words.items():
        ss = by_kind[kind]
        share = sum(bool(words & set(template(s))) for s in ss) / len(ss)
        # a minority: labels balanced per template by rejection move it off FLIP a little
        assert 0.1 < share < FLIP + 0.1, (kind, share)
        # the base rule alone (the flip word ignored) now agrees with the label in most samples
        base = [oracle_base(s) == s.label for s in ss]
        assert sum(base) / len(base) > 0.65, kind


def oracle_base(s) -> int:
    """The label with the claim's "not"/"no" read as absent (the base rule alone)."""
    claim = s.text_b.replace(" is not ", " is ").replace(" are not ", " are ")
    return oracle(s.text_a, claim.replace("there is no ", "there is a "))


def test_kinds_argument_and_distinct_presence_lists():
    ss = generate_samples(40, seed=5, kinds=("presence",))
    assert {s.kind for s in ss} == {"presence"} and sorted({s.label for s in ss}) == [0, 1]
    for s in ss:
        scene = s.text_a.rsplit(" , so ", 1)[0].removeprefix("the lot holds ")
        nouns = [n for _, n in re.findall(r"a (\w+) (\w+)", scene)]
        assert len(nouns) == len(set(nouns)) and 2 <= len(nouns) <= 6, s


def test_verdict_pairs_need_both_sentences():
    """textverdict: the review's verdict alone gives about 75% of the labels (the slope a
    model starts from), the hypothesis alone about chance; only both give the label."""
    ss = split_samples("textverdict")["train"]
    assert {s.kind for s in ss} == set(SINGLE_KINDS)
    review = sum(int(_review(s.text_a)) == s.label for s in ss) / len(ss)
    hypothesis = sum(int(_hypothesis(s.text_b)) == s.label for s in ss) / len(ss)
    assert 0.7 < review < 0.8 and abs(hypothesis - 0.5) < 0.03, (review, hypothesis)
    # its premises are textlogic's grammar, not textlogic's samples
    assert not {s.text_a for s in ss[:2000]} & {
        s.text_a for s in split_samples("textlogic")["test"]
    }
