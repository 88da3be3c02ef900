"""One run per output folder: an advisory lock file that the kernel drops on any exit.

``edgeslim compress -o OUT`` holds ``OUT/.edgeslim.lock`` (``flock``) while it runs.
A second run on the same folder is refused at once with the first run's pid, instead
of two runs overwriting each other's checkpoints. A killed run (even ``kill -9``)
leaves no stale lock: the kernel releases it with the process. A folder that cannot
be written (read-only, no permission) is refused up front with a clear error.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

from edgeslim.core.errors import EdgeslimError

try:
    import fcntl
except ImportError:  # Windows: no flock; the run proceeds unlocked
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".edgeslim.lock"


@contextlib.contextmanager
def output_lock(out_dir: str | os.PathLike, what: str = "edgeslim") -> Iterator[Path]:
    """Hold the lock of ``out_dir`` (created if missing) for the ``with`` block.

    Example:
        >>> # with output_lock("out"): compress(...)
    """
    out = Path(out_dir)
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd = _acquire(out / LOCK_NAME, out)
    except OSError as e:
        raise EdgeslimError(f"cannot write to output folder {out}: {e.strerror or e}") from None
    try:
        yield out
    finally:
        with contextlib.suppress(OSError):
            os.unlink(out / LOCK_NAME)  # before unlocking: a waiter re-checks the inode
        os.close(fd)
        if created:
            with contextlib.suppress(OSError):
                out.rmdir()  # only if the run wrote nothing (e.g. it failed at once)


def _acquire(path: Path, out: Path) -> int:
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is None:
            return fd
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                os.close(fd)
                raise
            holder = _read(fd)
            os.close(fd)
            raise EdgeslimError(
                f"output folder {out} is in use by another edgeslim run{holder}; "
                "wait for it to finish or choose another output folder"
            ) from None
        try:  # the holder may have unlinked the file between our open and flock
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        os.close(fd)


def _read(fd: int) -> str:
    with contextlib.suppress(OSError, ValueError):
        pid = int(os.pread(fd, 32, 0).decode().strip() or "0")
        if pid:
            return f" (pid {pid})"
    return ""
