"""One run per output folder, and a clear error for a folder that cannot be written (issue 17).

- a second ``edgeslim compress`` on a folder another run holds is refused at once,
  naming the holder's pid, and touches nothing;
- a run killed with SIGKILL leaves no stale lock;
- a read-only output folder and a full disk (small tmpfs mounts, skipped where mounting
  is not allowed) end in a one-line error, exit 2, and no file at the final path.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgeslim.cli.main import main
from edgeslim.core import EdgeslimError
from edgeslim.core.lock import LOCK_NAME, output_lock
from edgeslim.models.saved import WEIGHTS, save_model
from edgeslim.models.spec import load_model

RECIPE = "version: 1\nmodel: seg_tiny\nstages: [export]\n"

# another run, as the lock protocol sees it: flock on the file, its pid inside (plain
# Python, so the subprocess starts in milliseconds instead of importing torch)
HOLD = """
import fcntl, os, sys, time
os.makedirs(sys.argv[1], exist_ok=True)
fd = os.open(os.path.join(sys.argv[1], ".edgeslim.lock"), os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
os.write(fd, f"{os.getpid()}\\n".encode())
print("locked", flush=True)
time.sleep(60)
"""


@contextlib.contextmanager
def _holder(out: Path):
    p = subprocess.Popen(
        [sys.executable, "-S", "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert p.stdout.readline().strip() == "locked"
        yield p
    finally:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=30)


def test_second_run_on_the_same_folder_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    (tmp_path / "r.yaml").write_text(RECIPE)
    with _holder(out) as p:
        code = main(["compress", str(tmp_path / "r.yaml"), "-o", str(out), "--no-progress"])
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err
        assert f"output folder {out} is in use by another edgeslim run (pid {p.pid})" in err
        assert sorted(os.listdir(out)) == [LOCK_NAME]  # the refused run wrote nothing


def test_lock_within_one_process_is_exclusive(tmp_path):
    with output_lock(tmp_path / "o"):
        with pytest.raises(EdgeslimError, match="in use by another edgeslim run"):
            with output_lock(tmp_path / "o"):
                pass
    with output_lock(tmp_path / "o"):  # released: a later run takes it
        pass


def test_sigkill_leaves_no_stale_lock(tmp_path):
    out = tmp_path / "out"
    with _holder(out) as p:
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
        assert (out / LOCK_NAME).exists()  # the file stays; the kernel dropped the lock
        t0 = time.perf_counter()
        with output_lock(out):
            pass
        assert time.perf_counter() - t0 < 1.0


def test_failed_run_leaves_no_empty_folder(tmp_path):
    with pytest.raises(RuntimeError):
        with output_lock(tmp_path / "new"):
            raise RuntimeError("stage failed")
    assert not (tmp_path / "new").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder_chmod(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    with pytest.raises(EdgeslimError, match="cannot write to output folder"):
        with output_lock(ro):
            pass


@contextlib.contextmanager
def _tmpfs(path: Path, opts: str):
    path.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True
    )
    if r.returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_read_only_output_folder_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "r.yaml").write_text(RECIPE)
    with _tmpfs(tmp_path / "ro", "ro,size=64k") as ro:
        code = main(["compress", str(tmp_path / "r.yaml"), "-o", str(ro), "--no-progress"])
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err
        assert f"cannot write to output folder {ro}: Read-only file system" in err
        assert os.listdir(ro) == []


def test_full_disk_leaves_no_half_written_file(tmp_path):
    lm = load_model("resnet20_half")  # about 280 kB of weights
    with _tmpfs(tmp_path / "full", "size=128k") as full:
        with pytest.raises(EdgeslimError, match="cannot write .* No space left"):
            save_model(lm, full / "m")
        assert not (full / "m" / WEIGHTS).exists()
        assert [p for p in (full / "m").iterdir()] == []  # the temporary is gone too


def test_sweep_removes_what_killed_writers_left(tmp_path):
    import tempfile

    from edgeslim.core.atomic import atomic_path, sweep_temporaries

    (tmp_path / "stages" / "01-x").mkdir(parents=True)
    tempfile.mkdtemp(prefix="model.onnx.", dir=tmp_path)  # not ours: no leading dot
    tempfile.mkdtemp(prefix=".model.onnx.", dir=tmp_path / "stages" / "01-x")
    (tmp_path / ".model.old-4242").mkdir()  # a replaced directory beside its successor
    (tmp_path / "model").mkdir()
    (tmp_path / ".keep").mkdir()
    (tmp_path / ".config.settings").mkdir()  # looks like one, but holds other files
    (tmp_path / ".config.settings" / "user.ini").write_text("x")
    (tmp_path / ".notes.old-7").mkdir()  # no "notes" beside it: not ours
    with atomic_path(tmp_path / "report.json") as tmp:
        tmp.write_text("{}")
    assert sweep_temporaries(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.rglob(".*")) == [
        ".config.settings",
        ".keep",
        ".notes.old-7",
    ]
    assert (tmp_path / "report.json").read_text() == "{}"
