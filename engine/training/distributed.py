"""The processes of one training run: one (plain `python -m engine train`) or several
(`torchrun --nproc_per_node N -m engine train`, one per GPU, or CPU processes over gloo).

torchrun sets RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT in every process;
`join` reads them, joins the process group (NCCL between GPUs, gloo on CPUs) and gives each
process its device: GPU number LOCAL_RANK on a machine with GPUs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
from torch import distributed as dist

from engine.model.device import pick_device

# Process 0 trains the tokenizer and tokenizes the corpus while the others wait at a barrier:
# on hundreds of thousands of files that is hours, not collective-timeout minutes.
SETUP_TIMEOUT = timedelta(hours=12)


@dataclass(frozen=True)
class Processes:
    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def main(self) -> bool:
        """The process that prepares data, evaluates and writes the checkpoint."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def join(requested_device: str | None = None) -> Processes:
    """This process's place in the run (joining the process group under torchrun)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Processes(0, 0, 1, pick_device(requested_device))
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(requested_device)
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    dist.init_process_group(
        "nccl" if device.type == "cuda" else "gloo",
        rank=rank,
        world_size=world,
        timeout=SETUP_TIMEOUT,
    )
    return Processes(rank, local, world, device)


def leave(processes: Processes) -> None:
    if processes.distributed and dist.is_initialized():
        dist.destroy_process_group()


def threads_per_process(processes: Processes) -> int:
    """CPU threads for torch: the machine's cores shared by the processes on it."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", str(processes.world_size)))
    return max(1, (os.cpu_count() or 1) // max(1, local))
