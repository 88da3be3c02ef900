"""Model specs that point at broken code or odd paths end in a clear error (issue 17).

``file.py:factory`` runs the user's code by design; what edgeslim owes is a one-line
error naming the file and factory when that code is missing, raises, or returns
something that is not a module, and the same for paths with ``..`` and symlinks.
"""

from __future__ import annotations

import pytest

from edgeslim.cli.main import main
from edgeslim.core import EdgeslimError
from edgeslim.models.spec import load_model

CODE = """
from torch import nn

def good():
    return nn.Linear(4, 2)

def raises():
    raise ValueError("bad width")

def not_a_module():
    return 42

value = 3
"""


@pytest.fixture
def models(tmp_path):
    (tmp_path / "sub").mkdir()
    f = tmp_path / "sub" / "m.py"
    f.write_text(CODE)
    return f


@pytest.mark.parametrize(
    "factory, match",
    [
        ("missing", "has no callable 'missing'"),
        ("value", "has no callable 'value'"),
        ("raises", r"raises\(\) raised ValueError: bad width"),
        ("not_a_module", "returned int, not a torch.nn.Module"),
    ],
)
def test_broken_factories(models, factory, match):
    with pytest.raises(EdgeslimError, match=match):
        load_model(f"{models}:{factory}")


def test_import_error_names_the_file(tmp_path):
    (tmp_path / "broken.py").write_text("import not_a_real_module_xyz\n")
    with pytest.raises(EdgeslimError, match=r"importing .*broken.py failed: ModuleNotFoundError"):
        load_model(f"{tmp_path / 'broken.py'}:make")


def test_dotdot_and_symlink_paths(models, tmp_path):
    dotted = tmp_path / "sub" / ".." / "sub" / "m.py"
    assert load_model(f"{dotted}:good").source["path"] == str(models.resolve())
    link = tmp_path / "link.py"
    link.symlink_to(models)
    assert load_model(f"{link}:good").source["path"] == str(models.resolve())
    with pytest.raises(EdgeslimError, match="model file not found"):
        load_model(f"{tmp_path / '..' / 'nowhere' / 'm.py'}:good")


def test_cli_broken_factory(models, tmp_path, capsys):
    out = tmp_path / "out.onnx"
    code = main(["export", f"{models}:raises", "--input-shape", "1,4", "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and "bad width" in err
    assert not out.exists()
