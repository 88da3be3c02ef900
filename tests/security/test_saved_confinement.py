"""A saved-model directory cannot make edgeslim read outside itself or run code (issue 17).

The manifest names no files (the two file names are fixed), so the ways out are
symlinks and a ``file`` source: a symlinked manifest or weights file that leads out of
the directory is refused, and so is a ``file`` source that is relative (it would resolve
against the working directory) or lies inside the directory (code shipped with the
weights). A recipe cannot run code either: YAML tags are refused.
"""

from __future__ import annotations

import json
import os

import pytest

from edgeslim.core import EdgeslimError
from edgeslim.models.saved import MANIFEST, WEIGHTS, load_saved, save_model
from edgeslim.models.spec import load_model
from edgeslim.recipe.loader import parse_recipe

EVIL = "import pathlib\npathlib.Path(__file__).with_name('RAN').write_text('x')\n"


@pytest.fixture
def saved(tmp_path):
    return save_model(load_model("seg_tiny"), tmp_path / "m")


def _edit_manifest(d, **changes):
    m = json.loads((d / MANIFEST).read_text())
    m.update(changes)
    (d / MANIFEST).write_text(json.dumps(m))


def test_roundtrip_still_loads(saved):
    assert load_saved(saved).name == "seg_tiny"


@pytest.mark.parametrize("fname", [WEIGHTS, MANIFEST])
def test_symlink_out_of_the_directory_is_refused(saved, tmp_path, fname):
    outside = tmp_path / f"outside-{fname}"
    os.replace(saved / fname, outside)
    (saved / fname).symlink_to(outside)
    with pytest.raises(EdgeslimError, match="symlink .* outside the saved model"):
        load_saved(saved)


def test_symlink_inside_the_directory_is_allowed(saved):
    os.replace(saved / WEIGHTS, saved / "real.safetensors")
    (saved / WEIGHTS).symlink_to("real.safetensors")
    assert load_saved(saved).name == "seg_tiny"


def test_relative_file_source_is_refused(saved, tmp_path, monkeypatch):
    (tmp_path / "evil.py").write_text(EVIL + "def make():\n    return None\n")
    monkeypatch.chdir(tmp_path)
    _edit_manifest(saved, source={"kind": "file", "path": "evil.py", "factory": "make"})
    with pytest.raises(EdgeslimError, match="relative"):
        load_saved(saved)
    assert not (tmp_path / "RAN").exists()


@pytest.mark.parametrize("where", ["evil.py", "../m/sub/evil.py"])
def test_code_shipped_inside_the_directory_is_not_imported(saved, where):
    target = saved / where.replace("../m/", "")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(EVIL + "def make():\n    return None\n")
    path = str(saved / where)  # absolute, possibly with '..' that leads back in
    _edit_manifest(saved, source={"kind": "file", "path": path, "factory": "make"})
    with pytest.raises(EdgeslimError, match="inside the saved model"):
        load_saved(saved)
    assert not (target.parent / "RAN").exists()


def test_recipe_tags_cannot_run_code(tmp_path):
    for tag in ("!!python/object/apply:os.system ['touch RAN']", "!!python/name:os.system"):
        with pytest.raises(EdgeslimError, match="invalid YAML"):
            parse_recipe(f"version: 1\nmodel: {tag}\nstages: [export]\n")
    assert not (tmp_path / "RAN").exists()
