"""DDP under torchrun: 2 gloo processes on CPU train exactly like 1 process with the same
global batch (DistributedSampler shards the same permutation; DDP averages gradients)."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

WORKER = Path(__file__).with_name("ddp_worker.py")


def _worker():
    spec = importlib.util.spec_from_file_location("ddp_worker", WORKER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not built")
def test_two_gloo_processes_match_one(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    # its own session, so that on a timeout the workers die with torchrun instead of leaking
    proc = subprocess.Popen(
        [*cmd, str(WORKER), str(tmp_path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _, err = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    assert proc.returncode == 0, err[-3000:]

    ref_model, ref_hist = _worker().train(tmp_path / "single")
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for k, ref in ref_model.state_dict().items():
        # both ranks hold the same weights, and they equal the 1-process run's
        torch.testing.assert_close(r0["state"][k], r1["state"][k], rtol=0, atol=0)
        torch.testing.assert_close(r0["state"][k], ref, rtol=1e-5, atol=1e-6, msg=k)

    def metrics(hist):
        return [{k: v for k, v in h.items() if k != "seconds"} for h in hist]

    assert metrics(r0["history"]) == metrics(r1["history"])  # all-reduced: every rank agrees
    for a, b in zip(r0["history"], ref_hist, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["train_top1"] == pytest.approx(b["train_top1"])
        assert a["val_top1"] == pytest.approx(b["val_top1"])
    assert (tmp_path / "ckpt" / "last.safetensors").is_file()  # written once, by rank 0

    # distillation: the student and its adapter (the trainer's ``extra``) stay in sync
    ref_student, ref_d = _worker().distill()
    for name, ref in [("student", ref_student), ("extra", ref_d)]:
        assert len(ref.state_dict()) > 0
        for k, v in ref.state_dict().items():
            torch.testing.assert_close(r0[name][k], r1[name][k], rtol=0, atol=0)
            torch.testing.assert_close(r0[name][k], v, rtol=1e-5, atol=1e-6, msg=f"{name}.{k}")
