"""The layers contract in pyproject.toml holds, and a back-import breaks it.

``lint-imports`` (import-linter) reads the ``[tool.importlinter]`` layers: cli >
recipe > workflows > search > algorithms > infrastructure > core. The second test
copies the package, adds one import that points upwards (an algorithm importing the
workflows layer) and checks that the same contract then fails, naming that import.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")

pytestmark = pytest.mark.skipif(not Path(LINT).exists(), reason="import-linter not installed")


def _lint(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [LINT, "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_contract_is_kept():
    res = _lint(ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "1 kept, 0 broken" in res.stdout


def test_a_back_import_breaks_the_contract(tmp_path):
    shutil.copytree(
        ROOT / "edgeslim", tmp_path / "edgeslim", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "edgeslim" / "prune" / "back_import.py").write_text(
        "from edgeslim.workflows.measure import measure_stages  # noqa: F401\n"
    )
    res = _lint(tmp_path)
    assert res.returncode != 0
    assert "BROKEN" in res.stdout
    assert "edgeslim.prune.back_import -> edgeslim.workflows.measure" in res.stdout
