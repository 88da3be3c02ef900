import pytest

from edgeslim.core import EdgeslimError, Registry
from edgeslim.core.atomic import atomic_path, write_text_atomic


def test_registry_refuses_duplicates_and_lists_choices():
    reg = Registry("thing")
    reg.register("a", 1)

    @reg.register("b")
    def b():
        return 2

    assert reg.get("a") == 1 and reg.get("b") is b
    assert reg.names() == ["a", "b"] and "a" in reg
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a", 3)
    with pytest.raises(EdgeslimError, match="unknown thing 'c'; choose one of: a, b"):
        reg.get("c")


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    dest = tmp_path / "out.txt"
    write_text_atomic(dest, "old")
    with pytest.raises(RuntimeError), atomic_path(dest) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert dest.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]  # no temp debris


def test_atomic_directory_replace(tmp_path):
    dest = tmp_path / "d"
    for content in ("one", "two"):
        with atomic_path(dest) as tmp:
            tmp.mkdir()
            (tmp / "f").write_text(content)
    assert (dest / "f").read_text() == "two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]
