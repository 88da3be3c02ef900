"""Data-parallel training under ``torchrun``: detection, process group, sampler, reductions.

Nothing here re-implements distribution: gradients are averaged by PyTorch's
``DistributedDataParallel`` and data is sharded by its ``DistributedSampler``
(Li et al., "PyTorch Distributed: Experiences on Accelerating Data Parallel
Training", VLDB 2020). This module only decides *whether* to use them, from the
environment ``torchrun`` sets (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``), and picks
the backend: NCCL for CUDA, gloo for CPU.

Example:
    >>> ctx = DistContext.from_env("cpu")  # WORLD_SIZE unset: a single process
    >>> (ctx.world_size, ctx.rank, ctx.is_main)
    (1, 0, True)
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from edgeslim.core.errors import EdgeslimError


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in a data-parallel job (world size 1 when not distributed)."""

    world_size: int
    rank: int
    local_rank: int
    device: torch.device
    owns_group: bool = False  # True when this context created the process group (kept)

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, device: str) -> DistContext:
        """Read ``torchrun``'s environment; join (or create) the process group when > 1 process.

        Args:
            device: the configured device; ``"cuda"`` becomes ``cuda:LOCAL_RANK`` under torchrun.
        """
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls(1, 0, 0, torch.device(device))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        dev = torch.device(device)
        if dev.type == "cuda":
            dev = torch.device("cuda", local)
            torch.cuda.set_device(dev)
        owns = False
        if not dist.is_initialized():
            # Joined once per process and kept: a second fit() in the same torchrun job (a
            # teacher, then its student) reuses the group; re-joining after a destroy hangs.
            backend = "nccl" if dev.type == "cuda" else "gloo"
            dist.init_process_group(backend=backend)
            atexit.register(_destroy)
            owns = True
        if dist.get_world_size() != world:
            raise EdgeslimError(
                f"WORLD_SIZE={world} but the process group has {dist.get_world_size()}"
            )
        return cls(world, dist.get_rank(), local, dev, owns)

    def local_batch(self, global_batch: int) -> int:
        """Per-process batch for a global batch; refuses sizes that do not split evenly."""
        if global_batch % self.world_size:
            raise EdgeslimError(
                f"batch size {global_batch} does not split over {self.world_size} processes"
            )
        return global_batch // self.world_size

    def train_loader(
        self, ds: Dataset, global_batch: int, seed: int, epoch: int, collate_fn=None
    ) -> DataLoader:
        """The epoch's shuffled shard of ``ds``.

        One ``DistributedSampler`` serves every world size, so rank ``r`` of ``W`` gets
        positions ``r, r+W, ...`` of the same seeded permutation: the union of the
        ranks' ``k``-th local batches is exactly the single-process ``k``-th batch, and
        a 2-process run sees the same global batches as a 1-process run.
        """
        sampler = DistributedSampler(
            ds, num_replicas=self.world_size, rank=self.rank, shuffle=True, seed=seed
        )
        sampler.set_epoch(epoch)
        return DataLoader(
            ds, batch_size=self.local_batch(global_batch), sampler=sampler, collate_fn=collate_fn
        )

    def shard(self, n: int) -> range:
        """Indices ``rank, rank + W, ...`` of ``n`` items: an exact, non-padded evaluation shard."""
        return range(self.rank, n, self.world_size)

    def all_sum(self, values: list[float]) -> list[float]:
        """Sum ``values`` over all processes (a no-op for one process)."""
        if not self.distributed:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self._comm_device())
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.tolist()

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def _comm_device(self) -> torch.device:
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")


def _destroy() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def shutdown() -> None:
    """Leave the process group together: every rank waits for the others, then destroys it.

    Without the barrier a rank that finishes first tears down its gloo pairs while a
    slower rank still holds them, and the slower one can abort at exit ("terminate
    called without an active exception"). Call it once, at the very end of a job that
    ran under ``torchrun``; it is a no-op otherwise.
    """
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def is_main_process() -> bool:
    """True unless this is a non-zero rank of an initialised process group (or of torchrun)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0
