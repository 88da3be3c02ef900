"""Fuzz the recipe loader with Hypothesis (issue 17).

Whatever the YAML holds (random trees, wrong types, huge and negative numbers,
unicode, duplicate keys, anchors and aliases, deep nesting, raw garbage), loading a
recipe either succeeds or raises :class:`EdgeslimError` whose every line names the
file; never another exception. Through the CLI a bad recipe exits non-zero with no
traceback and writes nothing at the output path.

The default run tries a few dozen cases per property; ``-m slow`` tries thousands.
"""

from __future__ import annotations

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from edgeslim.cli.main import main
from edgeslim.core import EdgeslimError
from edgeslim.recipe.loader import load_recipe, parse_recipe

ORIGIN = "fuzz.yaml"
FAST = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
SLOW = settings(max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck))

VALID = {
    "version": 1,
    "model": "resnet20",
    "data": "digits",
    "seed": 0,
    "stages": [
        {"prune": {"ratio": 0.5, "criterion": "l1"}},
        {"finetune": {"epochs": 1, "lr": 0.1}},
        {"quantize": {"calib_batches": 2}},
        "export",
    ],
    "targets": {"max_metric_drop": 1.0},
    "measure": {"batches": [1], "runs": 2},
}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 2**31, 2**63, -(2**63), 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["ＲＥＳＮＥＴ", "résnet20", "\u202e", "🙂", "\x00", "", " ", "~", "null"]),
)
trees = st.recursive(
    scalars,
    lambda kids: st.one_of(
        st.lists(kids, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=10), st.integers()), kids, max_size=4),
    ),
    max_leaves=20,
)


def _paths(tree, prefix=()):
    yield prefix
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from _paths(v, (*prefix, i))


def _replace(tree, path, value):
    if not path:
        return value
    out = dict(tree) if isinstance(tree, dict) else list(tree)
    out[path[0]] = _replace(tree[path[0]], path[1:], value)
    return out


@st.composite
def mutated_recipes(draw):
    """A valid recipe with one value (or key set) replaced by a random tree."""
    paths = list(_paths(VALID))
    path = draw(st.sampled_from(paths))
    return _replace(VALID, path, draw(trees))


def _dump(tree) -> str:
    return yaml.safe_dump(tree, allow_unicode=True, sort_keys=False)


@st.composite
def raw_texts(draw):
    """YAML text that a dumper would never write: aliases, duplicates, nesting, junk."""
    kind = draw(st.sampled_from(["junk", "alias", "dup", "deep", "bomb", "tag", "splice"]))
    base = _dump(VALID)
    if kind == "junk":
        return draw(st.text(max_size=200))
    if kind == "alias":
        return (
            "version: 1\nmodel: &m resnet20\ndata: *m\n"
            "stages:\n  - prune: &p {ratio: 0.5}\n  - prune: *p\n  - *p\n"
            + draw(st.sampled_from(["", "x: *undefined\n", "<<: *p\n", "targets: *p\n"]))
        )
    if kind == "dup":
        key = draw(st.sampled_from(["version", "model", "stages", "seed", "measure"]))
        return base + f"{key}: {draw(st.sampled_from(['2', 'x', '[]', '{}', '-1']))}\n"
    if kind == "deep":
        n = draw(st.integers(min_value=10, max_value=3000))
        opener = draw(st.sampled_from(["[", "{a: "]))
        closer = "]" if opener == "[" else "}"
        return f"version: 1\nmodel: resnet20\nstages: {opener * n}1{closer * n}\n"
    if kind == "bomb":  # billion laughs, small enough to be cheap if it were expanded
        lines = ["a0: &a0 [x, x, x, x]"]
        lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 8)]
        return "\n".join(lines) + "\nversion: 1\nmodel: resnet20\nstages: *a7\n"
    if kind == "tag":
        tag = draw(st.sampled_from(["!!python/object:os.system", "!custom", "!!binary", "!!set"]))
        return base + f"extra: {tag} x\n"
    cut = draw(st.integers(min_value=0, max_value=len(base)))  # splice random text in
    return base[:cut] + draw(st.text(max_size=30)) + base[cut:]


def _check(text: str) -> None:
    try:
        parse_recipe(text, ORIGIN)
    except EdgeslimError as e:
        msg = str(e)
        assert msg, "empty error message"
        for line in msg.splitlines():
            assert ORIGIN in line, f"error line does not name the file: {line!r}"
        assert "Traceback" not in msg


def test_valid_base_recipe_loads():
    assert [s.name for s in parse_recipe(_dump(VALID), ORIGIN).stages][0] == "prune"


@FAST
@given(mutated_recipes())
def test_mutated_recipe_is_loaded_or_clearly_refused(tree):
    _check(_dump(tree))


@FAST
@given(trees)
def test_random_tree_is_refused_clearly(tree):
    _check(_dump(tree))


@FAST
@given(raw_texts())
def test_raw_yaml_text_is_refused_clearly(text):
    _check(text)


@pytest.mark.slow
@SLOW
@given(st.one_of(mutated_recipes().map(_dump), trees.map(_dump), raw_texts()))
def test_recipe_fuzz_long(text):
    _check(text)


def _refused(text: str) -> bool:
    try:
        parse_recipe(text, ORIGIN)
    except EdgeslimError:
        return True
    return False


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.one_of(mutated_recipes().map(_dump), raw_texts()))
def test_cli_bad_recipe_exits_cleanly(tmp_path_factory, capsys, text):
    assume(_refused(text))  # a valid recipe would start a real run
    d = tmp_path_factory.mktemp("cli")
    f = d / ORIGIN
    f.write_text(text, encoding="utf-8", errors="surrogatepass")
    out = d / "out"
    code = main(["compress", str(f), "-o", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code != 0
    assert "Traceback" not in err and err.startswith("edgeslim: error:")
    assert not out.exists()


def test_recipe_file_that_is_not_text(tmp_path):
    f = tmp_path / "r.yaml"
    f.write_bytes(b"\xff\xfe\x00version: 1\x80\x81")
    with pytest.raises(EdgeslimError, match="r.yaml"):
        load_recipe(f)


def test_recipe_path_that_is_a_directory(tmp_path):
    with pytest.raises(EdgeslimError, match="recipe not found"):
        load_recipe(tmp_path)


def test_nan_number_is_not_a_crash():
    _check(_dump({**VALID, "seed": float("nan"), "measure": {"runs": float("inf")}}))


def test_deep_nesting_is_refused_with_its_line():
    text = "version: 1\nmodel: resnet20\nstages:\n  - " + "[" * 5000 + "]" * 5000 + "\n"
    with pytest.raises(EdgeslimError, match=r"fuzz.yaml line 4: nested more than"):
        parse_recipe(text, ORIGIN)


def test_alias_bomb_is_refused_before_it_expands():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 12)]
    text = "\n".join(lines) + "\nversion: 1\nmodel: resnet20\nstages: *a11\n"
    with pytest.raises(EdgeslimError, match="alias bomb"):
        parse_recipe(text, ORIGIN)
