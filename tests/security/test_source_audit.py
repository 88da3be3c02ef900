"""Audit edgeslim's own sources for calls that run code or unpickle data (issue 17).

Walks every ``edgeslim/**/*.py`` with :mod:`ast` (not grep, so strings, comments and
``model.eval()`` do not count) and fails on:

- importing ``pickle`` (or ``cPickle``, ``dill``, ``shelve``, ``marshal``, ``joblib``);
- ``torch.load`` without ``weights_only=True``; ``np.load`` with ``allow_pickle=True``;
- calling the builtins ``eval``, ``exec`` or ``compile``;
- ``yaml.load``/``load_all`` without ``SafeLoader``/``CSafeLoader``, and
  ``yaml.unsafe_load``/``full_load``/``Loader``/``UnsafeLoader``/``FullLoader``.

The second half checks the auditor itself: each rule catches a snippet that breaks it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "edgeslim"
PICKLERS = {"pickle", "cPickle", "_pickle", "dill", "shelve", "marshal", "joblib", "cloudpickle"}
CODE_BUILTINS = {"eval", "exec", "compile", "__import__"}
SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader"}
UNSAFE_YAML = {"unsafe_load", "unsafe_load_all", "full_load", "full_load_all"}
UNSAFE_YAML_LOADERS = {"Loader", "UnsafeLoader", "FullLoader", "CLoader", "CUnsafeLoader"}


def _dotted(node: ast.AST, aliases: dict[str, str]) -> str:
    """``torch.load`` for ``torch.load`` / ``import torch as t; t.load`` /
    ``from torch import load``; '' for anything else."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return ""
    parts.append(aliases.get(node.id, node.id))
    return ".".join(reversed(parts))


def _kw(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_true(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def audit_source(text: str, filename: str = "<src>") -> list[str]:
    """Every finding in ``text`` as ``FILE:LINE: message``."""
    tree = ast.parse(text, filename)
    aliases: dict[str, str] = {}  # local name -> dotted origin
    found: list[str] = []

    def bad(node: ast.AST, msg: str) -> None:
        found.append(f"{filename}:{getattr(node, 'lineno', 0)}: {msg}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                top = a.name.split(".")[0]
                aliases[a.asname or top] = a.name if a.asname else top
                if a.name.split(".")[0] in PICKLERS:
                    bad(node, f"imports {a.name}")
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] in PICKLERS:
                bad(node, f"imports from {node.module}")
            for a in node.names:
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
                if node.module == "yaml" and a.name in UNSAFE_YAML | UNSAFE_YAML_LOADERS:
                    bad(node, f"imports yaml.{a.name}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute | ast.Name):
            name = _dotted(node, aliases)
            if name in {f"yaml.{n}" for n in UNSAFE_YAML | UNSAFE_YAML_LOADERS}:
                bad(node, f"uses {name}")
        if not isinstance(node, ast.Call):
            continue
        if isinstance(node.func, ast.Name) and node.func.id in CODE_BUILTINS:
            if node.func.id not in aliases:  # a local function of that name is fine
                bad(node, f"calls {node.func.id}()")
        name = _dotted(node.func, aliases)
        if name == "torch.load" and not _is_true(_kw(node, "weights_only")):
            bad(node, "torch.load without weights_only=True")
        if name in {"numpy.load", "np.load"} and _is_true(_kw(node, "allow_pickle")):
            bad(node, "np.load with allow_pickle=True")
        if name in {"yaml.load", "yaml.load_all"}:
            loader = _kw(node, "Loader") or (node.args[1] if len(node.args) > 1 else None)
            if loader is None or _dotted(loader, aliases).split(".")[-1] not in SAFE_YAML_LOADERS:
                bad(node, f"{name} without SafeLoader")
    return sorted(set(found))


def test_edgeslim_sources_are_clean():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 100  # the walk really saw the package
    found = [f for p in files for f in audit_source(p.read_text(), str(p.relative_to(PACKAGE)))]
    assert not found, "\n".join(found)


@pytest.mark.parametrize(
    "snippet",
    [
        "import pickle",
        "import pickle as p",
        "from pickle import loads",
        "import dill",
        "import torch\ntorch.load('x')",
        "import torch\ntorch.load('x', weights_only=False)",
        "import torch as t\nt.load('x', map_location='cpu')",
        "from torch import load\nload('x')",
        "import numpy as np\nnp.load('x', allow_pickle=True)",
        "eval('1')",
        "exec('x = 1')",
        "compile('1', 'f', 'eval')",
        "import yaml\nyaml.load(s)",
        "import yaml\nyaml.load(s, Loader=yaml.Loader)",
        "import yaml\nyaml.load(s, yaml.FullLoader)",
        "import yaml\nyaml.unsafe_load(s)",
        "import yaml\nyaml.full_load(s)",
        "from yaml import load\nload(s)",
        "from yaml import UnsafeLoader",
    ],
)
def test_auditor_catches(snippet):
    assert audit_source(snippet), snippet


@pytest.mark.parametrize(
    "snippet",
    [
        "model.eval()",
        "import torch\ntorch.load('x', weights_only=True, map_location='cpu')",
        "import numpy as np\nnp.load('x', allow_pickle=False)",
        "import yaml\nyaml.safe_load(s)",
        "import yaml\nyaml.load(s, Loader=yaml.SafeLoader)",
        "import yaml\nyaml.compose(s, Loader=yaml.SafeLoader)",
        "import torch\ntorch.compile(m)",
        "s = 'import pickle; eval(x)'",
    ],
)
def test_auditor_allows(snippet):
    assert audit_source(snippet) == [], snippet
