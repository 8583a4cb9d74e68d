"""Training throughput of the CNN: volumes per second of forward + backward + optimiser step.

Runs the production training step (:func:`msxai_bids.model.training.train_epoch`: batch copy,
augmentation, BCE + L2 penalty, Adam with the Keras decay) on random 96×114×96 volumes and
prints volumes/s and peak memory. Defaults: batch 4 (fine-tuning), 2 CPU threads, the fast
network; ``--device cuda`` measures a GPU. Run it with tcmalloc preloaded, as the container and
the demo do; ``--allocator jemalloc`` re-runs it with jemalloc instead, which is slower here.
Random volumes are the default; ``--images`` times preprocessed images instead (a brain in
[0, 1] on a zero background), on which steps are faster: half of the random values are
negative after conv1, and ELU costs an exponential for each of them::

    python benchmarks/bench_training.py
    python benchmarks/bench_training.py --images OUT/sub-*/anat/*_desc-preproc_FLAIR.nii.gz
    python benchmarks/bench_training.py --network literal --allocator jemalloc
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import torch

from msxai_bids.grid import CNN_GRID
from msxai_bids.model.datasets import load_volumes
from msxai_bids.model.network import NETWORKS, l2_penalty
from msxai_bids.model.training import FINE_TUNING, LabelledVolumes, make_optimizer, train_epoch

JEMALLOC = Path("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", choices=sorted(NETWORKS), default="fast")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5, help="timed optimiser steps")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--allocator", choices=("default", "jemalloc"), default="default")
    parser.add_argument(
        "--images", nargs="+", type=Path, help="preprocessed images to train on (default: random)"
    )
    return parser.parse_args()


def preload_jemalloc() -> None:
    """Re-execute this script with jemalloc preloaded (the allocator must be there at start)."""
    if str(JEMALLOC) in os.environ.get("LD_PRELOAD", ""):
        return
    if not JEMALLOC.exists():
        sys.exit(f"{JEMALLOC} not found (Debian package libjemalloc2)")
    env = {**os.environ, "LD_PRELOAD": f"{JEMALLOC} {os.environ.get('LD_PRELOAD', '')}".strip()}
    os.execve(sys.executable, [sys.executable, *sys.argv], env)


def time_steps(args: argparse.Namespace, device: torch.device) -> tuple[float, float]:
    """Wall-clock and process CPU seconds per optimiser step, after ``args.warmup`` steps.

    CPU time is what the step costs regardless of other processes on the machine; divided by
    the thread count it estimates the wall time on an otherwise idle machine.
    """
    torch.manual_seed(0)
    network = NETWORKS[args.network]().to(device)
    if args.images:
        volumes = load_volumes(args.images[: args.batch_size])
    else:
        volumes = torch.rand(args.batch_size, 1, *CNN_GRID.shape)
    data = LabelledVolumes(volumes, (torch.arange(args.batch_size) % 2).float())
    batch = [torch.arange(args.batch_size)]
    optimizer, scheduler = make_optimizer(network, FINE_TUNING)
    augmentation = torch.Generator().manual_seed(0)

    def step() -> None:
        train_epoch(network, data, batch, optimizer=optimizer, scheduler=scheduler,
                    penalty=l2_penalty, augmentation=augmentation, device=device)  # fmt: skip
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(args.warmup):
        step()
    start, start_cpu = time.perf_counter(), time.process_time()
    for _ in range(args.steps):
        step()
    return (
        (time.perf_counter() - start) / args.steps,
        (time.process_time() - start_cpu) / args.steps,
    )


def peak_memory_mb(device: torch.device) -> float:
    """Peak resident memory of this process (CPU) or peak allocated GPU memory, in MB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    args = parse_args()
    if args.allocator == "jemalloc":
        preload_jemalloc()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    seconds, cpu_seconds = time_steps(args, device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    per_volume = cpu_seconds / args.batch_size
    print(
        f"network={args.network} device={where} threads={args.threads} "
        f"data={'images' if args.images else 'random'} "
        f"allocator={args.allocator} batch={args.batch_size} steps={args.steps}: "
        f"{args.batch_size / seconds:.2f} volumes/s ({seconds / args.batch_size:.3f} s/volume), "
        f"CPU {per_volume:.3f} s/volume (idle-machine estimate "
        f"{args.threads / per_volume:.2f} volumes/s), peak memory {peak_memory_mb(device):.0f} MB"
    )


if __name__ == "__main__":
    main()
