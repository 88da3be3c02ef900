"""Atomic file and directory writes: a crash never leaves a half-written output.

Fault injection for the kill tests (issue 17): with ``EDGESLIM_KILL_AT=NAME`` (or
``NAME:K``) in the environment, the process sends itself SIGKILL in the K-th (default
first) :func:`atomic_path` whose destination is named ``NAME``, after the temporary is
fully written and before it is moved into place: the worst instant for a writer
(``NAME@swap``: a folder replacing an older one, between moving the old one aside and
moving the new one in).
Unset (always, outside ``tests/reliability``), it costs one dictionary lookup.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; move it onto ``dest`` only on success.

    Works for a file or a directory written at the yielded path.

    Example:
        >>> with atomic_path("/tmp/x.json") as tmp:
        ...     _ = tmp.write_text("{}")
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent)) / dest.name
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"nothing was written to {tmp}")
        if "EDGESLIM_KILL_AT" in os.environ:
            _maybe_kill(dest.name)
        if dest.is_dir() and tmp.is_dir():
            old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
            os.replace(dest, old)
            if "EDGESLIM_KILL_AT" in os.environ:
                _maybe_kill(f"{dest.name}@swap")  # the old folder moved away, the new not in
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)


_KILL_SEEN: dict[str, int] = {}


def _maybe_kill(name: str) -> None:
    """SIGKILL this process at the write ``EDGESLIM_KILL_AT`` names (see the module docstring)."""
    import signal

    target, _, nth = os.environ["EDGESLIM_KILL_AT"].partition(":")
    if name != target:
        return
    _KILL_SEEN[name] = _KILL_SEEN.get(name, 0) + 1
    if _KILL_SEEN[name] == (int(nth) if nth.isdigit() else 1):
        os.kill(os.getpid(), signal.SIGKILL)


def write_text_atomic(dest: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``dest`` atomically and return the path."""
    with atomic_path(dest) as tmp:
        tmp.write_text(text)
    return Path(dest)


def write_bytes_atomic(dest: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``dest`` atomically and return the path."""
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
    return Path(dest)


# what atomic_path leaves behind when its process is killed: ".NAME.xxxxxxxx" (mkdtemp,
# holding nothing or NAME) and ".NAME.old-PID" (a replaced directory, beside NAME)
_TEMPORARY = re.compile(r"^\.(.+)\.(old-\d+|[a-z0-9_]{8})$")


def sweep_temporaries(root: str | os.PathLike, recursive: bool = True) -> int:
    """Remove the temporaries killed writers left under ``root``; return how many.

    Only folders shaped exactly like :func:`atomic_path`'s are touched. Only safe
    while no other writer works under ``root`` (compress holds its output folder's
    lock when it calls this).
    """
    root = Path(root)
    if not root.is_dir():
        return 0
    found = root.rglob(".*") if recursive else root.glob(".*")
    stale = [p for p in found if p.is_dir() and _is_temporary(p)]
    for p in stale:
        shutil.rmtree(p, ignore_errors=True)
    return len(stale)


def _is_temporary(p: Path) -> bool:
    m = _TEMPORARY.match(p.name)
    if m is None:
        return False
    name, tail = m.groups()
    if tail.startswith("old-"):
        return (p.parent / name).exists()
    return {c.name for c in p.iterdir()} <= {name}
