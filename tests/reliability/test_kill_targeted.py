"""``kill -9`` at chosen writes (issue 17): each file kind, killed between its temporary
and its final path, then rerun: the same result as an uninterrupted run, nothing torn.

``EDGESLIM_KILL_AT=NAME[:K]`` (:mod:`edgeslim.core.atomic`) makes the process SIGKILL
itself in the K-th atomic write of a file named ``NAME``, after the temporary is whole
and before the move (``NAME@swap`` kills a folder's replacement half way). The points
cover the trainer's checkpoint (weights and state), a stage's saved model and state, the
ONNX export and the final report. Each point is two fresh processes: ``slow``.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from test_kill_resume import (
    ROOT,
    _check_final_paths,
    _result,
    _run,
    _same,
    work,  # noqa: F401  (the fixture: the uninterrupted reference run)
)

pytestmark = pytest.mark.slow

POINTS = [
    "last.safetensors",  # a training checkpoint's weights
    "last_state.pt:2",  # its optimizer state, second epoch's
    "edgeslim_model.json",  # a saved model's manifest (written after its weights)
    "state.json:2",  # the second stage's state
    "model.onnx",  # an ONNX export
    "report.json",  # the final report
]


def _killed_at(work_dir, out, point: str) -> int:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
           "EDGESLIM_KILL_AT": point}  # fmt: skip
    cmd = [sys.executable, "-m", "edgeslim.cli.main", "compress", "r.yaml", "-o", str(out),
           "--no-progress"]  # fmt: skip
    p = subprocess.run(cmd, cwd=work_dir, env=env, capture_output=True, text=True, timeout=900)
    return p.returncode


@pytest.mark.parametrize("point", POINTS)
def test_kill_at_a_chosen_write_then_resume(work, point):  # noqa: F811
    d, _, reference = work
    out = d / f"at-{point.replace(':', '-').replace('@', '-')}"
    rc = _killed_at(d, out, point)
    assert rc == -9, f"the run did not reach the write {point!r} (exit {rc})"
    _check_final_paths(out)  # every file at a final path is whole
    assert _run(d, out)  # the rerun resumes and finishes
    _same(_result(out), reference)
