"""The CUDA paths of msxai, timed: LRP on GPU against the CPU, batched LRP, training, DDP.

Four checks, each printing one line per measurement (``key=value`` pairs, easy to grep):

``agreement``
    LRP-ε and gradient×input of the same network and volumes in float64 on the CPU and on the
    device: the largest difference relative to the largest |relevance|.
``explain``
    :func:`msxai_bids.explain.attribution.explain` (the participant level's batched call) on
    ``--volumes`` volumes at several batch sizes: participants/s and peak device memory.
``train``
    :func:`msxai_bids.model.training.fit` with the paper's fine-tuning settings (batch 4, Adam
    with Keras decay, augmentation, L2) on ``--train-volumes`` training and a sixth as many
    validation volumes: seconds per epoch and what the paper's 10 trials cost at that rate.
``ddp``
    The same ``fit`` under ``torchrun`` with two processes through msxai's own
    :mod:`~msxai_bids.model.distributed` (NCCL, one GPU each, when two GPUs are there; Gloo on
    the CPU otherwise): seconds per epoch, and whether both processes end with equal weights.

Without a GPU every check runs on the CPU (``--quick`` shrinks the sizes so that the whole
script takes seconds there), which is how the tests keep it working. Volumes are random values
in [0, 1] on the CNN grid: the work per volume does not depend on the image::

    bash benchmarks/gpu_check.sh                 # everything, on CUDA when present
    bash benchmarks/gpu_check.sh --quick --only explain train
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable

import torch
import torch.distributed as dist

from msxai_bids.explain.attribution import explain
from msxai_bids.grid import CNN_GRID
from msxai_bids.model import distributed
from msxai_bids.model.network import NETWORKS, l2_penalty
from msxai_bids.model.training import FINE_TUNING, LabelledVolumes, fit

CHECKS = ("agreement", "explain", "train", "ddp")
#: The paper's fine-tuning: 10 repeated trials of at most 200 epochs.
PAPER_TRIALS, PAPER_MAX_EPOCHS = 10, 200


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=CHECKS, default=list(CHECKS))
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a CPU")
    parser.add_argument("--volumes", type=int, help="volumes explained per batch size")
    parser.add_argument("--batch-sizes", type=int, nargs="+", help="explanation batch sizes")
    parser.add_argument("--train-volumes", type=int, help="training volumes per epoch")
    parser.add_argument("--epochs", type=int, help="timed training epochs")
    parser.add_argument("--ddp-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = (2, [1, 2], 2, 1) if args.quick else (512, [1, 8, 32, 64], 124, 3)
    names = ("volumes", "batch_sizes", "train_volumes", "epochs")
    for name, default in zip(names, sizes, strict=True):
        if getattr(args, name) is None:
            setattr(args, name, default)
    return args


def report(check: str, **values: object) -> None:
    """One result line: the check's name, then ``key=value`` pairs."""
    fields = (f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
    print(f"{check}: {' '.join(fields)}", flush=True)


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, work: Callable[[], object]) -> float:
    """Wall seconds of ``work()``, the device's queue drained before and after."""
    synchronise(device)
    start = time.perf_counter()
    work()
    synchronise(device)
    return time.perf_counter() - start


def peak_gib(device: torch.device) -> float:
    """Peak allocated device memory since the last reset, GiB (0 on the CPU)."""
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def random_volumes(n: int, seed: int) -> torch.Tensor:
    """``n`` volumes of shape (1, 96, 114, 96), uniform in [0, 1], float32, on the CPU."""
    return torch.rand(n, 1, *CNN_GRID.shape, generator=torch.Generator().manual_seed(seed))


def seeded_network(name: str, device: torch.device) -> torch.nn.Module:
    """A freshly initialised network, the same for the same name."""
    torch.manual_seed(0)
    return NETWORKS[name]().to(device)


def parameters_of(network: torch.nn.Module) -> torch.Tensor:
    """All parameters, flattened into one vector."""
    return torch.cat([p.detach().reshape(-1) for p in network.parameters()])


def check_agreement(device: torch.device, n: int) -> None:
    """The device's heatmaps of ``n`` volumes equal the CPU's in float64, for both networks."""
    if device.type == "cpu":
        report("agreement", skipped="no-cuda-device")
        return
    volumes = random_volumes(n, seed=1).double()
    for network_name, network_class in sorted(NETWORKS.items()):
        torch.manual_seed(0)
        network = network_class().double().eval()
        methods = ["lrp-epsilon", "gradient-input"]
        on_cpu = explain(network, volumes, methods, batch_size=n)
        on_device = explain(network.to(device), volumes, methods, batch_size=n)
        for method in methods:
            scale = abs(on_cpu.relevance[method]).max()
            difference = abs(on_cpu.relevance[method] - on_device.relevance[method]).max()
            report(
                "agreement",
                network=network_name,
                method=method,
                device=device.type,
                max_relative_difference=float(difference / scale),
            )


def check_explain(device: torch.device, volumes: int, batch_sizes: list[int]) -> None:
    """Participants per second of batched LRP-ε, gradient×input and SmoothGrad.

    LRP-ε is timed a second time with cuDNN's autotuner on (``cudnn.benchmark``), which the
    participant level does not set.
    """
    network = seeded_network("fast", device).eval()
    data = random_volumes(volumes, seed=2)
    explain(network, data[:1], ["lrp-epsilon"])  # warm-up: kernels chosen, memory reserved
    runs = [("lrp-epsilon", False), ("gradient-input", False), ("smoothgrad", False)]
    runs += [("lrp-epsilon", True)] if device.type == "cuda" else []
    for method, autotuned in runs:
        torch.backends.cudnn.benchmark = autotuned
        # SmoothGrad explains 20 noisy copies per volume: one batch size, fewer volumes.
        sizes = batch_sizes if method != "smoothgrad" else [max(batch_sizes)]
        subset = data if method != "smoothgrad" else data[: max(1, volumes // 8)]
        for batch in sizes:
            reset_peak(device)
            try:
                seconds = timed(
                    device,
                    lambda b=batch, s=subset, m=method: explain(network, s, [m], batch_size=b),
                )
            except torch.OutOfMemoryError:
                report("explain", method=method, batch=batch, result="out of device memory")
                continue
            report(
                "explain",
                method=method,
                cudnn_benchmark=autotuned,
                batch=batch,
                volumes=len(subset),
                participants_per_s=len(subset) / seconds,
                seconds=seconds,
                peak_gib=peak_gib(device),
            )
    torch.backends.cudnn.benchmark = False


def training_data(n_train: int, seed: int) -> tuple[LabelledVolumes, LabelledVolumes]:
    """Random training and validation volumes, half of each labelled positive."""
    n_validation = max(2, n_train // 6)
    volumes = random_volumes(n_train + n_validation, seed)
    targets = (torch.arange(n_train + n_validation) % 2).float()
    return (
        LabelledVolumes(volumes[:n_train], targets[:n_train]),
        LabelledVolumes(volumes[n_train:], targets[n_train:]),
    )


def timed_fit(
    network: torch.nn.Module,
    data: tuple[LabelledVolumes, LabelledVolumes],
    epochs: int,
    device: torch.device,
    processes: distributed.Processes = distributed.SINGLE_PROCESS,
) -> float:
    """Median seconds per epoch (training + validation) of ``fit`` with the fine-tuning settings."""
    settings = FINE_TUNING.overridden(max_epochs=epochs + 1, patience=epochs + 1)
    result = fit(
        network, *data, settings, penalty=l2_penalty, seed=0, device=device, processes=processes
    )
    return float(result.history["seconds"].iloc[1:].median())  # the first epoch warms up


def check_train(device: torch.device, n_train: int, epochs: int) -> None:
    """Seconds per fine-tuning epoch, the paper's 10 trials at that rate, and a repeat.

    Deterministic algorithms are on, as in the training stage; the fast network (the one it
    uses) is trained again from the same seed, which tells whether training on this device is
    reproducible, and once more without deterministic algorithms, which tells what they cost.
    """
    data = training_data(n_train, seed=3)
    runs = [("fast", True), ("fast", True), ("literal", True), ("fast", False)]
    trained = []
    for network_name, deterministic in runs:
        torch.use_deterministic_algorithms(deterministic, warn_only=True)
        reset_peak(device)
        network = seeded_network(network_name, device)
        seconds = timed_fit(network, data, epochs, device)
        trained.append(parameters_of(network))
        report(
            "train",
            network=network_name,
            deterministic=deterministic,
            device=device.type,
            train_volumes=n_train,
            batch=FINE_TUNING.batch_size,
            seconds_per_epoch=seconds,
            train_volumes_per_s=n_train / seconds,
            peak_gib=peak_gib(device),
            paper_10_trials_200_epochs_min=PAPER_TRIALS * PAPER_MAX_EPOCHS * seconds / 60,
        )
    torch.use_deterministic_algorithms(False)
    difference = float((trained[1] - trained[0]).abs().max())
    report("train", network="fast", repeat_weights_differ_by=difference)


def check_ddp(args: argparse.Namespace) -> None:
    """Run this script's DDP worker in two processes under ``torchrun``.

    Two GPUs train one each over NCCL; with fewer the processes train on the CPU over Gloo, on
    a few volumes only (a CPU epoch of the full set takes minutes).
    """
    on_gpus = torch.cuda.device_count() >= 2 and args.device != "cpu"
    volumes, epochs = (
        (args.train_volumes, args.epochs) if on_gpus else (min(args.train_volumes, 8), 1)
    )
    worker = ["--ddp-worker", "--device", "cuda" if on_gpus else "cpu"]
    worker += ["--train-volumes", str(volumes), "--epochs", str(epochs)]
    run = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    started = time.perf_counter()
    completed = subprocess.run([*run, __file__, *worker], start_new_session=True, check=False)
    report(
        "ddp",
        processes=2,
        exit_code=completed.returncode,
        wall_seconds=time.perf_counter() - started,
    )
    if completed.returncode:
        sys.exit(completed.returncode)


def ddp_worker(args: argparse.Namespace) -> None:
    """One ``torchrun`` process: msxai's distributed training, then its weights compared."""
    processes = distributed.Processes.from_environment()
    device = distributed.select_device(args.device, processes)
    distributed.start(processes, device)
    network = seeded_network("fast", device)
    data = training_data(args.train_volumes, seed=3)
    seconds = timed_fit(
        distributed.wrap(network, processes, device), data, args.epochs, device, processes
    )
    weights = parameters_of(network)
    gathered = [torch.empty_like(weights) for _ in range(processes.world_size)]
    dist.all_gather(gathered, weights)
    if processes.is_main:
        spread = max(float((g - gathered[0]).abs().max()) for g in gathered)
        report(
            "ddp",
            backend=dist.get_backend(),
            device=device.type,
            processes=processes.world_size,
            train_volumes=args.train_volumes,
            seconds_per_epoch=seconds,
            weights_differ_by=spread,
        )
    distributed.stop(processes)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.ddp_worker:
        ddp_worker(args)
        return
    device = distributed.select_device(args.device, distributed.SINGLE_PROCESS)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    report(
        "environment",
        device=name.replace(" ", "_"),
        torch=torch.__version__,
        cuda=torch.version.cuda,
        gpus=torch.cuda.device_count(),
        cpu_threads=torch.get_num_threads(),
        quick=args.quick,
    )
    checks = {
        "agreement": lambda: check_agreement(device, 1 if args.quick else 2),
        "explain": lambda: check_explain(device, args.volumes, args.batch_sizes),
        "train": lambda: check_train(device, args.train_volumes, args.epochs),
        "ddp": lambda: check_ddp(args),
    }
    for check in args.only:
        started = time.perf_counter()
        checks[check]()
        report("done", part=check, seconds=time.perf_counter() - started)


if __name__ == "__main__":
    main()
