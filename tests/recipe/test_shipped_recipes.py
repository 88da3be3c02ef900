"""Every recipe shipped in ``recipes/`` parses: a typo in an example is caught here."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeslim.recipe import parse_recipe

RECIPES = sorted((Path(__file__).parents[2] / "recipes").glob("*.yaml"))


def test_there_are_recipes():
    assert len(RECIPES) >= 5


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_shipped_recipe_parses(path):
    recipe = parse_recipe(path.read_text())
    assert recipe.stages
