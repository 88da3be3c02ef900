"""Load a YAML recipe and validate it; every error names the key and its line.

YAML is parsed with the safe loader (no tags that construct objects), then
validated against :mod:`edgeslim.recipe.schema` and each stage's own settings
schema. Pydantic's error locations are mapped back onto the YAML node tree, so
``ratoi: 0.5`` in stage 2 reports ``line 9: stages[1].prune.ratoi: unknown key``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

from edgeslim.core.errors import EdgeslimError
from edgeslim.recipe.registry import STAGES
from edgeslim.recipe.schema import Recipe


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
    loaded = parse_recipe(path.read_text(), str(path))
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
    """Validate recipe ``text``; ``origin`` names it in errors."""
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise EdgeslimError(f"{origin}{where}: invalid YAML: {getattr(e, 'problem', e)}") from None
    if not isinstance(data, dict):
        raise EdgeslimError(f"{origin}: a recipe must be a mapping with version, model and stages")
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as e:
        raise _error(origin, root, e, ()) from None
    stages = []
    for i, entry in enumerate(recipe.stages):
        name, settings = next(iter(entry.items()))
        if name not in STAGES:
            line = _line(root, ("stages", i, name))
            raise EdgeslimError(
                f"{origin} line {line}: stages[{i}]: unknown stage {name!r}; "
                f"choose one of: {', '.join(STAGES.names())}"
            )
        try:
            stages.append(Stage(name, STAGES.get(name).settings.model_validate(settings)))
        except ValidationError as e:
            raise _error(origin, root, e, ("stages", i, name)) from None
    return LoadedRecipe(recipe, tuple(stages), origin)


def _error(origin: str, root: yaml.Node | None, e: ValidationError, prefix: tuple) -> EdgeslimError:
    err = e.errors()[0]
    loc = prefix + tuple(err["loc"])
    key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
    more = f" (and {len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
    return EdgeslimError(f"{origin} line {_line(root, loc)}: {key}: {msg}{more}")


def _line(node: yaml.Node | None, loc: tuple) -> int | str:
    """1-based line of the deepest YAML node on path ``loc`` ("?" if none)."""
    line: int | str = "?"
    for part in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            nxt = None
            for k, v in node.value:
                if k.value == str(part):
                    line, nxt = k.start_mark.line + 1, v
                    break
            node = nxt
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            node = node.value[part]
        else:
            node = None
    if node is not None:
        line = node.start_mark.line + 1
    return line
