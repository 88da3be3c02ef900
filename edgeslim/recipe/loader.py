"""Load a YAML recipe and validate it; every error is listed with its key and line.

YAML is parsed with the safe loader (no tags that construct objects), then
validated against :mod:`edgeslim.recipe.schema` and each stage's own settings
schema. Pydantic's error locations are mapped back onto the YAML node tree
(:mod:`edgeslim.recipe.problems`), so ``ratoi: 0.5`` in stage 2 reports
``line 9: stages[1].prune.ratoi: unknown key; did you mean 'ratio'?``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

from edgeslim.core.errors import EdgeslimError
from edgeslim.recipe.problems import (
    Problem,
    did_you_mean,
    duplicate_keys,
    line_of,
    one_line,
    ordered,
    problems_from,
)
from edgeslim.recipe.registry import STAGES
from edgeslim.recipe.schema import Recipe, one_key_stage
from edgeslim.recipe.yaml_limits import check_depth, check_size


@dataclass(frozen=True)
class Stage:
    name: str
    settings: BaseModel


@dataclass(frozen=True)
class LoadedRecipe:
    recipe: Recipe
    stages: tuple[Stage, ...]
    origin: str  # file path or "<builtin>"


def load_recipe(path: str | Path) -> LoadedRecipe:
    """Read and validate the recipe file at ``path``.

    Example:
        >>> # lr = load_recipe("recipes/resnet20_signs.yaml"); lr.stages[0].name
    """
    path = Path(path)
    if not path.is_file():
        raise EdgeslimError(f"recipe not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise EdgeslimError(f"{path}: not UTF-8 text (byte {e.start}); a recipe is YAML") from None
    except OSError as e:
        raise EdgeslimError(f"{path}: cannot read the recipe: {e.strerror or e}") from None
    loaded = parse_recipe(text, str(path))
    model = _relative_to(loaded.recipe.model, path.parent)
    if model != loaded.recipe.model:
        loaded = LoadedRecipe(
            loaded.recipe.model_copy(update={"model": model}), loaded.stages, loaded.origin
        )
    return loaded


def _relative_to(spec: str, base: Path) -> str:
    """Resolve a relative file in ``hf:FILE`` / ``FILE.py:fn`` / a directory against ``base``."""
    prefix, rest = ("hf:", spec[3:]) if spec.startswith("hf:") else ("", spec)
    file = (
        rest.rsplit(":", 1)[0]
        if rest.count(":") and rest.rsplit(":", 1)[0].endswith(".py")
        else rest
    )
    cand = base / file
    if not Path(file).is_absolute() and not Path(file).exists() and cand.exists():
        return prefix + str(cand) + rest[len(file) :]
    return spec


def parse_recipe(text: str, origin: str = "<recipe>") -> LoadedRecipe:
    """Validate recipe ``text``; ``origin`` names it in errors.

    Every problem is reported, one line each (``ORIGIN line N: KEY: MESSAGE``), unknown
    keys first with the nearest allowed key as a suggestion.

    Example:
        >>> parse_recipe("version: 1\nmodel: resnet20\nstages: [export]").stages[0].name
        'export'
    """
    data, root = _parse_yaml(text, origin)
    problems = duplicate_keys(root)
    recipe = None
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as e:
        problems += problems_from(e, Recipe, root)
    stages, stage_problems = _validate_stages(data.get("stages"), root)
    problems += stage_problems
    if problems or recipe is None:
        lines = [p.format(origin) for p in ordered(problems)]
        head = (
            [f"{len(lines)} problems in {origin} (unknown keys first):"] if len(lines) > 1 else []
        )
        raise EdgeslimError("\n".join(head + lines))
    return LoadedRecipe(recipe, tuple(stages), origin)


def _parse_yaml(text: str, origin: str) -> tuple[dict, yaml.Node]:
    try:
        check_depth(text, origin)  # before composing: PyYAML's composer recurses
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        check_size(root, origin)  # before constructing: aliases expand
        data = yaml.safe_load(text)
    except yaml.reader.ReaderError as e:  # a character YAML forbids; it has no mark
        line = text.count("\n", 0, e.position) + 1
        raise EdgeslimError(
            one_line(f"{origin} line {line}: invalid YAML: character {e.character!r} ({e.reason})")
        ) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None) or (str(e).splitlines() or [type(e).__name__])[0]
        raise EdgeslimError(one_line(f"{origin}{where}: invalid YAML: {problem}")) from None
    if not isinstance(data, dict):
        raise EdgeslimError(f"{origin}: a recipe must be a mapping with version, model and stages")
    return data, root


def _validate_stages(raw: object, root: yaml.Node) -> tuple[list[Stage], list[Problem]]:
    """Each stage's settings against its own schema; malformed entries are left to
    :class:`Recipe`, which reports them."""
    stages: list[Stage] = []
    problems: list[Problem] = []
    for i, item in enumerate(raw if isinstance(raw, list) else []):
        try:
            entry = one_key_stage(item)
        except ValueError:
            continue
        name, settings = next(iter(entry.items()))
        if not isinstance(name, str) or not isinstance(settings, dict):
            continue
        loc = ("stages", i)
        if name not in STAGES:
            msg = (
                f"unknown stage {name!r}{did_you_mean(name, STAGES.names())} "
                f"(stages: {', '.join(STAGES.names())})"
            )
            problems.append(Problem(loc, line_of(root, loc), msg, unknown_key=True))
            continue
        schema = STAGES.get(name).settings
        try:
            stages.append(Stage(name, schema.model_validate(settings)))
        except ValidationError as e:
            problems += problems_from(e, schema, root, (*loc, name))
    return stages, problems
