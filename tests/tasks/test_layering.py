"""edgeslim.tasks is a low layer: it imports only edgeslim.core (plus torch and numpy)."""

import ast
from pathlib import Path

import edgeslim.tasks

ALLOWED = ("edgeslim.core", "edgeslim.tasks")
THIRD_PARTY = {"torch", "numpy", "__future__", "abc", "collections", "dataclasses", "typing"}


def test_tasks_import_only_core_torch_and_numpy():
    for path in Path(edgeslim.tasks.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                if name.startswith("edgeslim"):
                    assert name.startswith(ALLOWED), f"{path.name} imports {name}"
                else:
                    assert name.split(".")[0] in THIRD_PARTY, f"{path.name} imports {name}"
