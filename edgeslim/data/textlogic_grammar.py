"""The small English-like grammar behind ``textlogic``, ``textverdict`` and ``textpair``.

``textlogic`` (since v6) is a review of 3-6 vehicles, one clause each ("the red car is
not fast , the buses are clean , but the van is loud ."), labelled 1 if it is
favourable on balance. A clause scores +1 (good adjective) or -1 (bad), flipped by
"not"; clauses from "but" on count three times; "i doubt that" flips the verdict. Four
kinds, each adding one rule to the last, labels balanced in each:

- ``tally``: no "not", no "but": counting, which word counts alone solve (the on-ramp);
- ``negation``: 40% of clauses negated: the adjective read with its "not" (bigrams);
- ``contrast``: a "but" before one of clauses 2..n: each clause weighed by where it
  stands against "but" (order), 25% negated;
- ``doubt``: a contrast review after "i doubt that": the first words flip a verdict
  formed over the whole sentence (long-range scope).

A linear model over word and bigram counts solves tally and negation, not contrast or
doubt (the tests); a 2-layer BERT trained alone learns part of contrast and doubt, a
6-layer one more (``benchmarks/results/textlogic.md``). Subjects and verbs agree in
number in every clause; the label never turns on agreement, because the ``agreement``
kind below stayed at chance for every model this machine could train (v4, v5).

``textverdict`` pairs such a review (premise) with a one-clause verdict on it
(hypothesis: "it is [not] good|bad ."), labelled 1 if the verdict is the review's, as
GLUE's RTE labels entailment. The hypothesis is favourable in :data:`HYP_POSITIVE`
(75%) of pairs, so the review's verdict alone predicts 75% of the labels (a slope to
start from, the lesson of v5 below) and the hypothesis alone nothing.

v1-v5 (kept for ``textpair`` and callers) describe a scene of coloured vehicles and
make a claim about it; the label is whether the claim holds. Kinds of claim, chosen so
that a model must read the whole sentence and not spot one word:

- ``lexical``: a list of vehicles, then "a bus|red is [not] a vehicle|colour": the
  on-ramp, an exclusive-or of three words at the end (word class, claimed class,
  "not") that a linear bag of words cannot fit but one attention layer can; without
  it the first calibration runs sat at chance for epochs (no kind gave a gradient).
- ``presence``: a list of 2-6 vehicles (each noun once), then "there is a|no bus":
  the one-hop kind (noun matching); "no" flips the label.
- ``order``: a row of 3-6 vehicles (each noun once, colours shared), then "the red
  car is [not] before|after the blue truck": both positions found and compared;
  "not" flips the label.
- ``count``: 4-9 vehicles listed one by one, then "there are [not] more|fewer
  cars than trucks" (or colours): two counts across the sentence, compared.
- ``quantifier`` (kept for callers, in neither task's mix since v3): the same
  lists, then "[not] every|no|some car is red"; colour bound to noun.
- ``agreement`` (single sentences only): a subject, 1-3 modifiers with attractor
  nouns of the other number ("the car near the blue trucks that the buses
  follow"), then the main verb; the label is whether "is"/"are" agrees with the
  subject -- long-range agreement as in Linzen et al., "Assessing the ability of
  LSTMs to learn syntax-sensitive dependencies", TACL 2016.
- ``chain`` (pairs only): the premise orders 3-4 vehicles by 2-3 before/after
  statements in random order; the hypothesis needs their transitive closure.

Labels are balanced within each kind and within each claim template (the claim's
function words: "not", "before", "more", "no", ...), so that no template word
predicts the label: a bag-of-words-and-bigrams model scores about chance on every
kind (see the tests). Samples are drawn for a target label by rejection.

Since v5 the flipping words ("not", "no", "after", "fewer") appear in a minority
(:data:`FLIP`, 25%) of claims, not half: with half, the label was the exclusive-or of
the base rule and the flip, so no single feature correlated with it and gradient
descent sat on the class prior (``benchmarks/results/textlogic.md``).
Everything comes from one seeded generator (:class:`Rng`), so a seed fixes it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

COLOURS = ("red", "blue", "green", "yellow", "black", "white", "grey", "brown")
NOUNS = {
    "car": "cars",
    "truck": "trucks",
    "bus": "buses",
    "bike": "bikes",
    "boat": "boats",
    "van": "vans",
    "box": "boxes",
    "lorry": "lorries",
    "tractor": "tractors",
    "taxi": "taxis",
}
NUMBERS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
VERBS = {"follow": "follows", "pass": "passes", "watch": "watches", "chase": "chases"}
PREFIXES = ("", "today ,", "in the city ,", "near the old station ,", "after the rain ,")
ADJECTIVES = ("fast", "slow", "new", "old", "clean", "dirty")
SINGLE_KINDS = ("tally", "negation", "contrast", "doubt")
PAIR_KINDS = ("lexical", "presence", "order", "chain", "count")
FLIP = 0.25  # share of claims with "not"/"no" (and of "after"/"fewer"): a minority, so
# the base rule correlates with the label and gives gradient descent a first slope
ITEMS = (4, 10)  # a lot's list holds ITEMS[0] to ITEMS[1] - 1 vehicles (short lists: an on-ramp)
CLAIM_FIRST = False  # a probe knob: "claim , as scene ." (the oracle reads only the default)
DISTINCT_PRESENCE = True  # presence lists name each noun once: noun matching, learnt first

Entity = tuple[str, str]  # (colour, noun)


class Rng:
    """The few draws the grammar needs, built on ``random.Random(seed).random()`` alone:
    the one stream Python promises to keep the same across versions, and ~5x faster
    than numpy's per-call overhead for single draws."""

    def __init__(self, seed: int) -> None:
        self._r = random.Random(seed)  # noqa: S311 -- data generation, not cryptography

    def random(self) -> float:
        return self._r.random()

    def integers(self, low: int, high: int, size: int | None = None):
        """One int in ``[low, high)``, or a list of ``size`` of them."""
        if size is None:
            return low + int(self._r.random() * (high - low))
        return [low + int(self._r.random() * (high - low)) for _ in range(size)]

    def choice(self, n: int, k: int, replace: bool = False) -> list[int]:
        """``k`` distinct ints of ``range(n)`` in random order (a partial Fisher-Yates)."""
        if replace:
            raise ValueError("only sampling without replacement is needed")
        pool = list(range(n))
        for i in range(k):
            j = i + int(self._r.random() * (n - i))
            pool[i], pool[j] = pool[j], pool[i]
        return pool[:k]

    def permutation(self, n: int) -> list[int]:
        return self.choice(n, n)


@dataclass(frozen=True)
class Sample:
    """One generated example: ``text_b`` is None for single sentences."""

    text_a: str
    text_b: str | None
    label: int  # 1: the claim holds (true / entailment), 0: it does not
    kind: str


def _pool(rng: Rng, n_colours: int, n_nouns: int) -> list[Entity]:
    colours = rng.choice(len(COLOURS), n_colours, replace=False)
    nouns = rng.choice(len(NOUNS), n_nouns, replace=False)
    names = list(NOUNS)
    return [(COLOURS[c], names[n]) for c in colours for n in nouns]


def _join(items: list[str]) -> str:
    return " , ".join(items[:-1]) + " and " + items[-1]


def _the(e: Entity) -> str:
    return f"the {e[0]} {e[1]}"


def _row(rng: Rng, low: int = 4, high: int = 7) -> list[Entity]:
    """``low`` to ``high - 1`` vehicles, each noun once, colours drawn from three."""
    n = int(rng.integers(low, high))
    nouns = rng.choice(len(NOUNS), n, replace=False)
    colours = rng.choice(len(COLOURS), 3, replace=False)
    names = list(NOUNS)
    return [(COLOURS[colours[int(rng.integers(0, 3))]], names[k]) for k in nouns]


def _order_claim(rng: Rng, row: list[Entity]) -> tuple[str, int]:
    i, j = (int(k) for k in rng.choice(len(row), 2, replace=False))
    rel = "after" if rng.random() < FLIP else "before"
    neg = rng.random() < FLIP
    holds = (i < j) == (rel == "before")
    claim = f"{_the(row[i])} is {'not ' if neg else ''}{rel} {_the(row[j])}"
    return claim, int(holds != neg)


def _items(rng: Rng) -> list[Entity]:
    pool = _pool(rng, 2 + int(rng.integers(0, 2)), 2 + int(rng.integers(0, 2)))
    n = int(rng.integers(*ITEMS))
    return [pool[i] for i in rng.integers(0, len(pool), n)]


def _count_claim(rng: Rng, items: list[Entity]) -> tuple[str, int]:
    by_noun = rng.random() < 0.5
    field = 1 if by_noun else 0
    values = sorted({e[field] for e in items})
    if len(values) < 2:  # one noun (colour) only: compare it with an absent one
        universe = list(NOUNS) if by_noun else list(COLOURS)
        values.append(next(v for v in universe if v not in values))
    a, b = (values[k] for k in rng.choice(len(values), 2, replace=False))
    na, nb = (sum(e[field] == v for e in items) for v in (a, b))
    more = rng.random() >= FLIP
    neg = rng.random() < FLIP
    holds = na > nb if more else na < nb
    word = "more" if more else "fewer"
    if by_noun:
        what = f"{NOUNS[a]} than {NOUNS[b]}"
    else:
        what = f"{a} things than {b} things"
    return f"there are {'not ' if neg else ''}{word} {what}", int(holds != neg)


def _quantifier_claim(rng: Rng, items: list[Entity]) -> tuple[str, int]:
    noun = items[int(rng.integers(0, len(items)))][1]
    colour = COLOURS[int(rng.integers(0, len(COLOURS)))]
    if rng.random() < 0.75:  # mostly a colour the list uses, else the claim is too easy
        colour = items[int(rng.integers(0, len(items)))][0]
    q = ("every", "no", "some")[int(rng.integers(0, 3))]
    neg = q == "every" and rng.random() < 0.5  # "not every"; "not no/some" is not English
    of_noun = [e[0] for e in items if e[1] == noun]
    hits = sum(c == colour for c in of_noun)
    holds = {"every": hits == len(of_noun), "no": hits == 0, "some": hits > 0}[q]
    return f"{'not ' if neg else ''}{q} {noun} is {colour}", int(holds != neg)


def _lexical_claim(rng: Rng, items: list[Entity]) -> tuple[str, int]:
    is_colour = rng.random() < 0.5
    pool = COLOURS if is_colour else tuple(NOUNS)
    word = pool[int(rng.integers(0, len(pool)))]
    claims_colour = rng.random() < 0.5
    neg = rng.random() < 0.5
    subject = word if is_colour else f"a {word}"
    claim = f"{subject} is {'not ' if neg else ''}a {'colour' if claims_colour else 'vehicle'}"
    return claim, int((is_colour == claims_colour) != neg)


def _presence_claim(rng: Rng, items: list[Entity]) -> tuple[str, int]:
    noun = list(NOUNS)[int(rng.integers(0, len(NOUNS)))]
    if rng.random() < 0.5:
        noun = items[int(rng.integers(0, len(items)))][1]
    neg = rng.random() < FLIP
    holds = any(n == noun for _, n in items)
    return f"there is {'no' if neg else 'a'} {noun}", int(holds != neg)


def _noun_phrase(rng: Rng, plural: bool, colour: bool = True) -> str:
    noun = list(NOUNS)[int(rng.integers(0, len(NOUNS)))]
    word = NOUNS[noun] if plural else noun
    if colour and rng.random() < 0.5:
        word = f"{COLOURS[int(rng.integers(0, len(COLOURS)))]} {word}"
    return f"the {word}"


def _modifier(rng: Rng, head_plural: bool) -> str:
    # an attractor's number is a coin flip: the noun nearest the verb tells nothing
    other = bool(rng.random() < 0.5)
    kind = int(rng.integers(0, 3))
    if kind == 0:
        return f"near {_noun_phrase(rng, other)}"
    if kind == 1:
        verb = list(VERBS)[int(rng.integers(0, len(VERBS)))]
        return f"that {_noun_phrase(rng, other, False)} {verb if other else VERBS[verb]}"
    adj = ADJECTIVES[int(rng.integers(0, len(ADJECTIVES)))]
    return f"that {'are' if head_plural else 'is'} {adj}"


def _agreement(rng: Rng) -> tuple[str, int]:
    plural = rng.random() < 0.5
    prefix = PREFIXES[int(rng.integers(0, len(PREFIXES)))]
    mods = " ".join(_modifier(rng, plural) for _ in range(int(rng.integers(1, 4))))
    agrees = rng.random() < 0.5
    verb = "are" if plural == agrees else "is"
    neg = "not " if rng.random() < 0.3 else ""
    adj = ADJECTIVES[int(rng.integers(0, len(ADJECTIVES)))]
    text = f"{prefix} {_noun_phrase(rng, plural)} {mods} {verb} {neg}{adj} ."
    return text.strip(), int(agrees)


GOOD = ("fast", "new", "clean", "quiet", "safe", "cheap")
BAD = ("slow", "old", "dirty", "loud", "unsafe", "costly")
CLAUSES = (3, 7)  # a review has CLAUSES[0] to CLAUSES[1] - 1 clauses
BUT_WEIGHT = 3  # a clause after "but" counts this many times
REVIEW_KINDS = {  # kind: (share of clauses with "not", has a "but", starts "i doubt that")
    "tally": (0.0, False, False),
    "negation": (0.4, False, False),
    "contrast": (0.25, True, False),
    "doubt": (0.25, True, True),
}


def _review(rng: Rng, kind: str) -> tuple[str, int]:
    """A review of 3-6 vehicles; 1 if it is favourable on balance (-1: a tie, redrawn).

    Each clause scores +1 for a good adjective and -1 for a bad one, flipped by "not";
    clauses from "but" on count :data:`BUT_WEIGHT` times; "i doubt that" flips the verdict.
    """
    p_not, has_but, doubt = REVIEW_KINDS[kind]
    n = int(rng.integers(*CLAUSES))
    but = int(rng.integers(1, n)) if has_but else n
    clauses, score = [], 0
    for i in range(n):
        plural = rng.random() < 0.5
        good = rng.random() < 0.5
        adj = (GOOD if good else BAD)[int(rng.integers(0, len(GOOD)))]
        neg = rng.random() < p_not
        score += (1 if good != neg else -1) * (BUT_WEIGHT if i >= but else 1)
        verb = "are" if plural else "is"
        clause = f"{_noun_phrase(rng, plural)} {verb} {'not ' if neg else ''}{adj}"
        clauses.append(("but " if i == but else "") + clause)
    text = ("i doubt that " if doubt else "") + " , ".join(clauses) + " ."
    return text, (-1 if score == 0 else int((score > 0) != doubt))


HYP_POSITIVE = 0.75  # share of favourable hypotheses: the verdict alone then scores 75%, so
# learning it gives the first slope, and the hypothesis turns it into the label (no plateau)
HYP_NOT = 0.25  # share of hypotheses said with "not" ("it is not bad": favourable)


def _verdict_pair(rng: Rng, kind: str) -> tuple[str, str, int]:
    """A review and a one-clause verdict on it; 1 if the verdict is the review's.

    The hypothesis is "it is [not] good|bad ."; its polarity alone says nothing of the
    label (the reviews are favourable half the time), the review's alone 75% of it.
    """
    review, verdict = _review(rng, kind)
    positive = rng.random() < HYP_POSITIVE
    neg = rng.random() < HYP_NOT
    hypothesis = f"it is {'not ' if neg else ''}{'good' if positive != neg else 'bad'} ."
    return review, hypothesis, (-1 if verdict < 0 else int(verdict == positive))


def _chain(rng: Rng) -> tuple[str, str, int]:
    row = _row(rng, 3, 5)
    links = []
    for k in range(len(row) - 1):
        a, b = row[k], row[k + 1]
        links.append(f"{_the(a)} is before {_the(b)}" if rng.random() < 0.5 else
                     f"{_the(b)} is after {_the(a)}")  # fmt: skip
    order = rng.permutation(len(links))
    premise = " , and ".join(links[k] for k in order) + " ."
    claim, label = _order_claim(rng, row)
    return premise, claim + " .", label


def _draw(rng: Rng, kind: str, pair: bool) -> Sample:
    if kind in REVIEW_KINDS and pair:
        premise, hypothesis, label = _verdict_pair(rng, kind)
        return Sample(premise, hypothesis, label, kind)
    if kind in REVIEW_KINDS:
        text, label = _review(rng, kind)
        return Sample(text, None, label, kind)
    if kind == "agreement":
        text, label = _agreement(rng)
        return Sample(text, None, label, kind)
    if kind == "chain":
        premise, claim, label = _chain(rng)
        return Sample(premise, claim, label, kind)
    if kind == "order":
        row = _row(rng, 3, 7)
        scene = f"in the row stand {_join([_the(e) for e in row])}"
        claim, label = _order_claim(rng, row)
    elif kind == "presence" and DISTINCT_PRESENCE:
        items = _row(rng, 2, 7)
        scene = f"the lot holds {_join([f'a {c} {n}' for c, n in items])}"
        claim, label = _presence_claim(rng, items)
    else:
        items = _items(rng)
        scene = f"the lot holds {_join([f'a {c} {n}' for c, n in items])}"
        make = {
            "count": _count_claim,
            "quantifier": _quantifier_claim,
            "lexical": _lexical_claim,
        }.get(kind, _presence_claim)
        claim, label = make(rng, items)
    if pair:
        return Sample(scene + " .", claim + " .", label, kind)
    if CLAIM_FIRST:
        return Sample(f"{claim} , as {scene} .", None, label, kind)
    return Sample(f"{scene} , so {claim} .", None, label, kind)


def generate_samples(
    n: int, seed: int, pair: bool = False, kinds: tuple[str, ...] | None = None
) -> list[Sample]:
    """``n`` distinct samples, kinds in turn, labels balanced, deterministic by ``seed``.

    Example:
        >>> s = generate_samples(10, seed=0)
        >>> [x.kind for x in s[:5]], [x.label for x in s]
        (['tally', 'negation', 'contrast', 'doubt', 'tally'], [0, 0, 0, 0, 1, 1, 1, 1, 0, 0])
    """
    rng = Rng(seed)
    kinds = kinds or (PAIR_KINDS if pair else SINGLE_KINDS)
    out: list[Sample] = []
    seen: set[tuple[str, str | None]] = set()
    excess: dict[tuple, int] = {}  # per (kind, template): how many more 1-labels than 0-labels
    while len(out) < n:
        kind = kinds[len(out) % len(kinds)]
        target = (len(out) // len(kinds)) % 2  # each kind alternates 0, 1, 0, ...
        while True:
            s = _draw(rng, kind, pair)
            key = (kind, template(s))
            lean = excess.get(key, 0)
            if (
                s.label == target
                and (lean <= 0 if target else lean >= 0)
                and (s.text_a, s.text_b) not in seen
            ):
                break
        excess[key] = lean + (1 if target else -1)
        seen.add((s.text_a, s.text_b))
        out.append(s)
    return out


def template(s: Sample) -> tuple[str, ...]:
    """The function words of a sample's claim (empty for agreement sentences)."""
    claim = s.text_b if s.text_b is not None else s.text_a.rpartition(" , so ")[2]
    if s.kind == "agreement":
        return ()
    return tuple(w for w in claim.split() if w in _FUNCTION_WORDS)


_FUNCTION_WORDS = {
    "not", "before", "after", "more", "fewer", "things", "every", "no", "some", "colour", "vehicle",
}  # fmt: skip
