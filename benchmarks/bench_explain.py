"""Time and memory of prediction and explanation per participant, literal versus fast network.

Usage::

    python benchmarks/bench_explain.py [--threads 2] [--repeats 3] [--allocators ...]

Each configuration runs in a fresh process, so peak memory is its own. Allocators are compared
as a launcher or the container would load them, with ``LD_PRELOAD``: the C library's, tcmalloc
(Debian ``libtcmalloc-minimal4``) and jemalloc (Debian ``libjemalloc2``, told by ``MALLOC_CONF``
to keep freed pages). The network allocates a few 250 MB tensors per pass; an allocator that
hands them back to the kernel pays for every page again on the next pass (system time).

Per participant (one 96 × 114 × 96 volume, float32, batch 1) it prints the median of
``--repeats`` runs after a warm-up of the forward pass, zennit LRP-ε and gradient×input, with
the CPU time of all threads, the resident memory of the idle process after imports, the peak
of each task and the LRP/forward ratio. With CUDA it also reports participants per second of
batched LRP-ε on the GPU. On a shared machine the wall times include the others' load; CPU
time over the thread count approximates the wall time of an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ALLOCATORS = {
    "glibc": {},
    "tcmalloc": {"LD_PRELOAD": "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"},
    "jemalloc": {
        "LD_PRELOAD": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
        "MALLOC_CONF": "dirty_decay_ms:-1,muzzy_decay_ms:-1",
    },
}
"""Environment that loads each allocator."""


def loaded_allocator() -> str:
    """Name of a preloaded allocator found in this process's memory map, else ``glibc``."""
    maps = Path("/proc/self/maps").read_text()
    return next((name for name in ("tcmalloc", "jemalloc") if name in maps), "glibc")


def reset_peak_memory() -> None:
    """Reset the kernel's record of peak resident memory (VmHWM) of this process."""
    Path("/proc/self/clear_refs").write_text("5")


def memory_gb(field: str = "VmHWM") -> float:
    """Peak (``VmHWM``, since the last reset) or current (``VmRSS``) resident memory in GB."""
    line = next(s for s in Path("/proc/self/status").read_text().splitlines() if field in s)
    return int(line.split()[1]) / 1e6


def measure(task, repeats: int) -> dict:
    """Median wall and CPU time (s) of ``task`` after a warm-up, and its peak memory (GB)."""
    reset_peak_memory()
    task()
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        task()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return {
        "seconds": statistics.median(wall),
        "cpu_seconds": statistics.median(cpu),
        "peak_gb": memory_gb(),
    }


def worker(implementation: str, threads: int, repeats: int) -> dict:
    """Measurements of one network implementation in this process."""
    import torch

    from msxai_bids.explain.attribution import attribute
    from msxai_bids.model.network import NETWORKS

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    network = NETWORKS[implementation]().eval()
    volume = torch.rand(1, 1, 96, 114, 96)

    def forward() -> None:
        with torch.no_grad():
            network(volume)

    return {
        "network": implementation,
        "allocator": loaded_allocator(),
        "baseline_gb": memory_gb("VmRSS"),
        "forward": measure(forward, repeats),
        "lrp-epsilon": measure(lambda: attribute(network, volume, "lrp-epsilon"), repeats),
        "gradient-input": measure(lambda: attribute(network, volume, "gradient-input"), repeats),
    }


def run_worker(implementation: str, allocator: str, args: argparse.Namespace) -> dict:
    """Run :func:`worker` in a fresh interpreter with the allocator's environment."""
    env = os.environ | ALLOCATORS[allocator]
    env |= {"OMP_NUM_THREADS": str(args.threads), "OMP_WAIT_POLICY": args.omp_wait_policy}
    command = [sys.executable, __file__, "--worker", implementation]
    command += ["--threads", str(args.threads), "--repeats", str(args.repeats)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.splitlines()[-1])


def print_header(args: argparse.Namespace) -> None:
    print(
        f"per participant, {args.threads} CPU threads, OMP_WAIT_POLICY={args.omp_wait_policy},"
        f" median of {args.repeats} runs; load average at start {os.getloadavg()[0]:.1f}"
    )
    print(
        "wall seconds (CPU seconds of all threads); GB resident: idle process after imports,"
        " then the peak of each task"
    )
    print(
        f"{'network':8} {'allocator':9} {'forward':>14} {'LRP-ε':>14} {'grad×input':>14}"
        f" {'LRP/fw':>6} {'idle':>6} {'fw':>6} {'LRP':>6} {'g×i':>6}"
    )


def print_row(row: dict) -> None:
    tasks = [row["forward"], row["lrp-epsilon"], row["gradient-input"]]
    times = " ".join(f"{t['seconds']:6.3f} ({t['cpu_seconds']:5.2f})" for t in tasks)
    peaks = " ".join(f"{t['peak_gb']:6.2f}" for t in tasks)
    ratio = tasks[1]["seconds"] / tasks[0]["seconds"]
    print(
        f"{row['network']:8} {row['allocator']:9} {times} {ratio:6.1f}"
        f" {row['baseline_gb']:6.2f} {peaks}",
        flush=True,
    )


def cuda_throughput(batch_size: int = 8, repeats: int = 3) -> None:
    """Participants per second of batched LRP-ε on the GPU, for both implementations."""
    import torch

    from msxai_bids.explain.attribution import attribute
    from msxai_bids.model.network import NETWORKS

    if not torch.cuda.is_available():
        print("CUDA: not available")
        return
    volumes = torch.rand(batch_size, 1, 96, 114, 96, device="cuda")
    for name, cls in NETWORKS.items():
        network = cls().cuda().eval()
        torch.cuda.reset_peak_memory_stats()
        attribute(network, volumes)
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(repeats):
            attribute(network, volumes)
        torch.cuda.synchronize()
        rate = repeats * batch_size / (time.perf_counter() - start)
        print(
            f"CUDA {torch.cuda.get_device_name()}: {name} LRP-ε, batch {batch_size}:"
            f" {rate:.1f} participants/s, peak {torch.cuda.max_memory_allocated() / 1e9:.1f} GB"
        )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs after a warm-up")
    parser.add_argument(
        "--allocators",
        nargs="+",
        choices=list(ALLOCATORS),
        default=list(ALLOCATORS),
        help="allocators to compare (default all; those not installed are skipped)",
    )
    parser.add_argument(
        "--omp-wait-policy",
        choices=["ACTIVE", "PASSIVE"],
        default="PASSIVE",
        help="OpenMP threads at a barrier spin (ACTIVE) or sleep (PASSIVE, default); on a busy"
        " machine spinning threads wait for descheduled peers, which can make the literal"
        " network's conv1 backward ten times slower",
    )
    parser.add_argument("--worker", choices=["literal", "fast"], help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.threads, args.repeats)))
        return
    print_header(args)
    for allocator in args.allocators:
        library = ALLOCATORS[allocator].get("LD_PRELOAD")
        if library and not Path(library).exists():
            print(f"{allocator}: {library} not installed, skipped")
            continue
        for implementation in ("literal", "fast"):
            print_row(run_worker(implementation, allocator, args))
    cuda_throughput()


if __name__ == "__main__":
    main()
