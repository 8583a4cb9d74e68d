"""Where training runs: one process on a CPU or GPU, or one process per GPU under ``torchrun``.

``torchrun`` sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; when ``WORLD_SIZE`` > 1 the model
is wrapped in :class:`~torch.nn.parallel.DistributedDataParallel`, each process trains on its
share of every epoch and only rank 0 writes files. Without these variables everything reduces to
a single process with no process group.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Processes:
    """This process's place among the training processes.

    Attributes
    ----------
    rank : int
        Global index of this process (0 writes outputs).
    local_rank : int
        Index on this machine, which picks the GPU.
    world_size : int
        Number of processes; 1 means no ``DistributedDataParallel``.
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @classmethod
    def from_environment(cls) -> Processes:
        """Read the variables ``torchrun`` sets; defaults describe a single process."""
        env = os.environ
        return cls(
            rank=int(env.get("RANK", 0)),
            local_rank=int(env.get("LOCAL_RANK", 0)),
            world_size=int(env.get("WORLD_SIZE", 1)),
        )

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Whether this process writes files and logs progress."""
        return self.rank == 0


#: The default: one process, no process group.
SINGLE_PROCESS = Processes()


def select_device(requested: str, processes: Processes) -> torch.device:
    """``cpu``, ``cuda`` or ``auto`` (CUDA when available) → the device of this process.

    Under ``torchrun`` each process takes the GPU of its local rank.
    """
    use_cuda = requested == "cuda" or (requested == "auto" and torch.cuda.is_available())
    if use_cuda and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was requested but no CUDA device is available")
    if use_cuda and processes.local_rank >= torch.cuda.device_count():
        raise RuntimeError(
            f"training process {processes.local_rank} of this machine has no GPU of its own: "
            f"{torch.cuda.device_count()} visible; start at most that many processes per machine "
            "(torchrun --nproc-per-node)"
        )
    return torch.device("cuda", processes.local_rank) if use_cuda else torch.device("cpu")


def start(processes: Processes, device: torch.device) -> None:
    """Join the process group (NCCL on GPUs, Gloo on CPUs) when running distributed."""
    if processes.distributed and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")


def stop(processes: Processes) -> None:
    """Leave the process group joined by :func:`start`."""
    if processes.distributed and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module, processes: Processes, device: torch.device) -> nn.Module:
    """The model to train: ``model`` itself, or its ``DistributedDataParallel`` wrapper."""
    if not processes.distributed:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain network inside a possible ``DistributedDataParallel`` wrapper."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def shard(order: torch.Tensor, processes: Processes) -> torch.Tensor:
    """This process's share of an epoch's sample order.

    The order is padded by repeating its start to a multiple of ``world_size`` (as
    ``DistributedSampler`` does), so every process runs the same number of steps and the
    gradient all-reduce never waits for a process that has finished.
    """
    if not processes.distributed:
        return order
    padding = (-len(order)) % processes.world_size
    padded = torch.cat([order, order[:padding]])
    return padded[processes.rank :: processes.world_size]
