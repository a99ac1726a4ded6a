"""Where a process sits in a run launched by torchrun: rank, world size, its device, the plain model.

`torchrun --nproc_per_node=N ...` starts N processes and sets RANK / WORLD_SIZE / LOCAL_RANK;
`init_distributed` joins them into one process group (NCCL on CUDA, gloo on the CPU). A single
process (no WORLD_SIZE) is a world of one and needs no group.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class DistInfo:
    """Where this process sits in a (possibly single-process) distributed run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """True on the process that writes logs and checkpoints."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """True when more than one process trains together."""
        return self.world_size > 1


def launched_world_size() -> int:
    """How many processes torchrun started for this run (1 when it was not started by torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_distributed(device: torch.device) -> tuple[DistInfo, torch.device]:
    """Join the process group torchrun describes (NCCL on CUDA, gloo on CPU); a no-op when alone."""
    world = launched_world_size()
    if world <= 1:
        return DistInfo(), device
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not torch.distributed.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistInfo(rank, world, local), device


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module under torch.compile and DistributedDataParallel wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model
