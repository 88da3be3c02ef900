"""Recipe validation: every error names the key and its line."""

import pytest

from edgeslim.core import EdgeslimError
from edgeslim.recipe import parse_recipe
from edgeslim.recipe.registry import STAGES
from edgeslim.recipe.schema import METRICS

GOOD = """\
version: 1
model: resnet20
data: digits
stages:
  - finetune: {epochs: 1}
  - export
targets:
  max_accuracy_drop: 1.0
"""


def test_good_recipe_parses():
    r = parse_recipe(GOOD)
    assert [s.name for s in r.stages] == ["finetune", "export"]
    assert r.stages[0].settings.epochs == 1 and r.recipe.targets.max_metric_drop == 1.0


@pytest.mark.parametrize(
    "text, match",
    [
        (
            GOOD.replace("  - finetune: {epochs: 1}", "  - finetune:\n      epoks: 1"),
            r"line 6: stages\[0\]\.finetune\.epoks: unknown key; did you mean 'epochs'\?",
        ),
        (
            GOOD.replace("{epochs: 1}", "{epochs: many}"),
            r"line 5: stages\[0\]\.finetune\.epochs: .*integer",
        ),
        (GOOD.replace("data: digits", "data: digits\nbogus: 3"), r"line 4: bogus: unknown key"),
        (
            GOOD.replace("version: 1", "version: 7"),
            r"line 1: version: .*unsupported recipe version 7",
        ),
        (
            GOOD.replace("  - export", "  - sharpen: {}"),
            r"line 6: stages\[1\]: unknown stage 'sharpen'",
        ),
        (
            GOOD.replace("  - export", "  - exprot"),
            r"line 6: stages\[1\]: unknown stage 'exprot'; did you mean 'export'\?",
        ),
        (
            GOOD.replace("max_accuracy_drop: 1.0", "max_accuracy_drop: -1"),
            r"line 8: targets\.max_accuracy_drop: .*greater than or equal",
        ),
        ("version: 1\nmodel: [unclosed\n", r"invalid YAML"),
        ("- just\n- a list\n", r"must be a mapping"),
        (GOOD.replace("model: resnet20\n", ""), r"model: Field required"),
        ("version: 1\nmodel: !!python/object:os.system x\nstages: [export]\n", r"invalid YAML"),
    ],
)
def test_bad_recipes_name_key_and_line(text, match):
    with pytest.raises(EdgeslimError, match=match):
        parse_recipe(text, "r.yaml")


def _errors(text: str) -> list[str]:
    """The error lines of a recipe that must fail (the count header dropped)."""
    with pytest.raises(EdgeslimError) as info:
        parse_recipe(text, "r.yaml")
    return [ln for ln in str(info.value).splitlines() if " problems in " not in ln]


def test_typo_of_a_required_key_is_reported_at_the_typo_not_as_missing():
    text = GOOD.replace("stages:", "stagez:")
    assert _errors(text) == [
        "r.yaml line 4: stagez: unknown key; did you mean 'stages'? "
        "('stages' is required and missing)"
    ]


def test_every_error_is_listed_with_line_unknown_keys_first():
    text = """\
version: 1
model: resnet20
stages:
  - prune: {ratio: 2.0}
  - finetune:
      lr: -1
      epoks: 2
  - 5
  - qantize
dta: digits
measure: {runs: 0}
"""
    with pytest.raises(EdgeslimError) as info:
        parse_recipe(text, "r.yaml")
    lines = str(info.value).splitlines()
    assert lines[0] == "7 problems in r.yaml (unknown keys first):"
    assert lines[1:] == [
        "r.yaml line 7: stages[1].finetune.epoks: unknown key; did you mean 'epochs'?",
        "r.yaml line 9: stages[3]: unknown stage 'qantize'; did you mean 'quantize'? "
        f"(stages: {', '.join(sorted(STAGES.names()))})",
        "r.yaml line 10: dta: unknown key; did you mean 'data'?",
        "r.yaml line 4: stages[0].prune.ratio: Input should be less than 1",
        "r.yaml line 6: stages[1].finetune.lr: Input should be greater than 0",
        "r.yaml line 8: stages[2]: a stage must be a name or a one-key mapping {stage: settings}",
        "r.yaml line 11: measure.runs: Input should be greater than or equal to 1",
    ]


def test_unknown_key_far_from_every_choice_gets_no_suggestion():
    (line,) = _errors(GOOD.replace("data: digits", "data: digits\nzzz: 1"))
    assert line == "r.yaml line 4: zzz: unknown key"


def test_duplicate_key_is_an_error_not_a_silent_overwrite():
    (line,) = _errors(GOOD.replace("model: resnet20", "model: resnet20\nmodel: vgg11"))
    assert (
        line
        == "r.yaml line 3: model: duplicate key (first given on line 2); YAML keeps only the last"
    )


def test_max_accuracy_drop_is_an_alias_of_max_metric_drop():
    new = parse_recipe(GOOD.replace("max_accuracy_drop", "max_metric_drop"))
    old = parse_recipe(GOOD)
    assert new.recipe.targets == old.recipe.targets
    assert old.recipe.targets.max_metric_drop == 1.0
    assert old.recipe.targets.metric is None  # the task's primary metric (top1)
    named = parse_recipe(
        GOOD.replace("max_accuracy_drop: 1.0", "max_metric_drop: 2\n  metric: top1")
    )
    assert named.recipe.targets.metric == "top1" and named.recipe.targets.max_metric_drop == 2


@pytest.mark.parametrize(
    "targets, expected",
    [
        (
            "  max_accuracy_drop: 1.0\n  max_metric_drop: 2.0",
            "r.yaml line 7: targets: give max_metric_drop or its alias max_accuracy_drop, not both",
        ),
        (
            "  max_metric_drop: 1.0\n  metric: top_1",
            "r.yaml line 9: targets.metric: unknown metric 'top_1'; did you mean 'top1'?; "
            f"choose one of: {', '.join(METRICS)}",
        ),
        (
            "  max_acuracy_drop: 1.0",
            "r.yaml line 8: targets.max_acuracy_drop: unknown key; "
            "did you mean 'max_accuracy_drop'?",
        ),
    ],
)
def test_bad_targets(targets, expected):
    assert _errors(GOOD.replace("  max_accuracy_drop: 1.0", targets)) == [expected]


def test_bad_recipe_is_one_line_per_error_on_the_cli_with_no_traceback(tmp_path, capsys):
    from edgeslim.cli.main import main

    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("stages:", "stagez:").replace("data: digits", "dat: digits"))
    assert main(["compress", str(bad), "-o", str(tmp_path / "out")]) != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.splitlines() == [
        f"edgeslim: error: 2 problems in {bad} (unknown keys first):",
        f"{bad} line 3: dat: unknown key; did you mean 'data'?",
        f"{bad} line 4: stagez: unknown key; did you mean 'stages'? "
        "('stages' is required and missing)",
    ]
