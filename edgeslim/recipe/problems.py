"""Turn a recipe's validation errors into one located line each, the real mistake first.

Pydantic reports an error as a location (``("stages", 0, "prune", "ratoi")``) and a
message. A :class:`Problem` adds the YAML line of that location and, for an unknown
key, the nearest allowed key (:func:`difflib.get_close_matches`), so a typo reads
``line 9: stages[0].prune.ratoi: unknown key; did you mean 'ratio'?``.

A typo of a required key causes two errors: the unknown key and the missing one.
:func:`problems_from` reports them as one problem at the typo, and puts unknown
keys before every other problem, because they are usually the cause of the rest.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import yaml
from pydantic import BaseModel, ValidationError

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One validation error, located in the recipe."""

    loc: Loc
    line: int | str  # 1-based YAML line, "?" when unknown
    message: str
    unknown_key: bool = False  # the key is not allowed here (a typo, most often)

    @property
    def key(self) -> str:
        """``stages[0].prune.ratio`` style path of the location."""
        return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in self.loc).lstrip(".")

    def format(self, origin: str) -> str:
        key = f" {self.key}:" if self.loc else ""
        return one_line(f"{origin} line {self.line}:{key} {self.message}")


def one_line(text: str) -> str:
    """``text`` with control and line-separator characters escaped (``\\x1e``): a key
    from the recipe can hold any of them, and the error stays one line per problem."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The one of ``choices`` nearest to ``word`` (a likely typo of it), or None.

    Example:
        >>> closest("stagez", ["version", "model", "stages"])
        'stages'
    """
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the nearest of ``choices``, else ``""``."""
    near = closest(word, choices)
    return f"; did you mean {near!r}?" if near else ""


def allowed_keys(schema: type[BaseModel], path: Sequence[str | int]) -> list[str] | None:
    """The keys a mapping at ``path`` inside ``schema`` accepts (aliases included)."""
    model: object = schema
    for part in path:
        if isinstance(part, int):
            model = _item_type(model)
        elif isinstance(model, type) and issubclass(model, BaseModel):
            field = model.model_fields.get(part)
            model = _model_in(field.annotation) if field is not None else None
        else:
            return None
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return None
    keys = []
    for name, field in model.model_fields.items():
        alias = field.validation_alias
        choices = getattr(alias, "choices", None)
        keys += [c for c in choices if isinstance(c, str)] if choices else [name]
    return keys


def _model_in(annotation: object) -> object:
    """The BaseModel (or list of one) inside ``X | None``; the annotation itself otherwise."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else None
    return annotation


def _item_type(annotation: object) -> object:
    if typing.get_origin(annotation) is list:
        (arg,) = typing.get_args(annotation)
        return _model_in(arg)
    return None


def problems_from(
    error: ValidationError,
    schema: type[BaseModel],
    root: yaml.Node | None,
    prefix: Loc = (),
) -> list[Problem]:
    """One :class:`Problem` per error of ``error`` (``schema`` validated the data at ``prefix``)."""
    errs = error.errors()
    unknown = {tuple(e["loc"]) for e in errs if e["type"] == "extra_forbidden"}
    out: list[Problem] = []
    for e in errs:
        loc = tuple(e["loc"])
        if e["type"] == "extra_forbidden":
            msg = "unknown key" + did_you_mean(str(loc[-1]), allowed_keys(schema, loc[:-1]) or [])
            missing = [m["loc"][-1] for m in errs if _is_missing_sibling(m, loc)]
            required = closest(str(loc[-1]), missing)
            if required is not None:
                msg += f" ({required!r} is required and missing)"
            out.append(Problem(prefix + loc, line_of(root, prefix + loc), msg, unknown_key=True))
        elif e["type"] == "missing" and _typo_of(loc, unknown):
            continue  # reported at the typo, above
        else:
            out.append(Problem(prefix + loc, line_of(root, prefix + loc), _message(e)))
    return out


def _is_missing_sibling(err: dict, loc: tuple) -> bool:
    return err["type"] == "missing" and tuple(err["loc"][:-1]) == loc[:-1]


def _typo_of(loc: tuple, unknown: set[tuple]) -> bool:
    """Whether missing key ``loc`` is explained by an unknown sibling key that resembles it
    (the same test, from the other side, as the unknown key's "is required" note)."""
    return any(
        u[:-1] == loc[:-1] and closest(str(u[-1]), [str(loc[-1])]) is not None for u in unknown
    )


def _message(err: dict) -> str:
    if err["type"] in ("value_error", "assertion_error"):
        return str(err["ctx"].get("error", err["msg"])) if "ctx" in err else err["msg"]
    return err["msg"]


def ordered(problems: Iterable[Problem]) -> list[Problem]:
    """Unknown keys first, then the rest; each group in recipe order (by line)."""

    def line(p: Problem) -> int:
        return p.line if isinstance(p.line, int) else 10**9

    return sorted(problems, key=lambda p: (not p.unknown_key, line(p)))


def line_of(node: yaml.Node | None, loc: Loc) -> int | str:
    """1-based line of the deepest YAML node on path ``loc`` ("?" if none)."""
    if node is None:
        return "?"
    line = node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            hit = next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if hit is None:
                break  # a missing key: the line of the mapping that lacks it
            line, node = hit[0].start_mark.line + 1, hit[1]  # the key's line, not its value's
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                break
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def duplicate_keys(node: yaml.Node | None, loc: Loc = ()) -> list[Problem]:
    """A problem for every key given twice in one mapping (YAML keeps only the last)."""
    out: list[Problem] = []
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for k, v in node.value:
            here = k.start_mark.line + 1
            if k.value in seen:
                msg = (
                    f"duplicate key (first given on line {seen[k.value]}); YAML keeps only the last"
                )
                out.append(Problem((*loc, k.value), here, msg))
            seen.setdefault(k.value, here)
            out += duplicate_keys(v, (*loc, k.value))
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            out += duplicate_keys(v, (*loc, i))
    return out
