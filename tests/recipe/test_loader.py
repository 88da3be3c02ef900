"""Recipe validation: every error names the key and its line."""

import pytest

from edgeslim.core import EdgeslimError
from edgeslim.recipe import parse_recipe

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
    assert r.stages[0].settings.epochs == 1 and r.recipe.targets.max_accuracy_drop == 1.0


@pytest.mark.parametrize(
    "text, match",
    [
        (
            GOOD.replace("  - finetune: {epochs: 1}", "  - finetune:\n      epoks: 1"),
            r"line 6: stages\[0\]\.finetune\.epoks: unknown key",
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
