"""Cost of one participant, end to end and step by step, with the ratios measured in one run.

Usage (with tcmalloc, as the container and the demo run msxai)::

    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 \
        python benchmarks/bench_participant.py [--participants 3] [--threads 2] [--json FILE] \
        [--keep]

A benchmark cohort (synthetic patients at 1 mm with scalp, ``msxai_bids.synth``) is written to
a temporary folder, and on it, one after another:

1. ``msxai BIDS OUT participant --participant-label L --model demo`` per participant, as a user
   runs it (``--nprocs`` and ``--omp-nthreads`` = ``--threads``): its wall time, and in a
   second run into fresh folders the peak of the memory its processes hold together (summed
   PSS, sampled every 0.1 s; reading it costs enough CPU to slow a run by about 1 s);
2. the first commands again: the cached rerun of a finished participant; and all participants
   in one command (fresh folders), whose wall time per participant shows what a run's fixed
   costs (imports, indexing the dataset, starting the workers) add when shared;
3. every preprocessing step as a plain function call in a fresh process
   (``bench_preprocessing.py``), and the same registration with Debian's elastix, with both
   tools' errors against the known pose;
4. on each participant's preprocessed image and the demo model: a forward pass, a plain
   backward pass (the logit's gradient), LRP-ε, gradient×input, SmoothGrad, and a training
   step (batch of 4, per volume);
5. the explanation audit of LRP-ε on each participant (randomisation cascade, localisation,
   region perturbation), as the group level's ``--audit`` runs it.

It prints medians over participants and the ratios the speed goals are stated in: the end to
end run over the sum of its numerical steps (N4, both registrations, resampling, forward,
LRP-ε), LRP-ε and the training step over a forward pass, elastix over antspyx, the audit over
one LRP-ε; and the CPU's model and vector extensions, since the same code runs at different
speeds on different machines. ``--json`` also writes every figure to a file. The temporary
folder (about 2.4 GB for 3 participants) is removed at the end unless ``--keep`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import bench_preprocessing
from bench_explain import ALLOCATORS, loaded_allocator

#: Preprocessing steps that are numerical work, not bookkeeping (names of bench_preprocessing).
PREPROCESSING_STEPS = (
    "first brain mask",
    "first registration",
    "template-prior mask",
    "N4",
    "registration",
    "final brain mask",
    "resample to grid",
)


def cpu_description() -> str:
    """``lscpu``'s model name and the CPU's AVX-512 and AVX2 flags."""
    model = next(
        (line.split(":", 1)[1].strip() for line in subprocess.run(
            ["lscpu"], capture_output=True, text=True, check=True
        ).stdout.splitlines() if line.startswith("Model name")),
        "unknown",
    )  # fmt: skip
    flags = Path("/proc/cpuinfo").read_text().split("flags", 2)[1].splitlines()[0].split()
    vector = sorted(f for f in flags if f.startswith(("avx512", "avx2", "fma")))
    return f"{model}; {os.cpu_count()} CPUs; {' '.join(vector) or 'no AVX2/AVX-512'}"


def group_memory_gb(group: int) -> float:
    """Proportional set size (GB) summed over the processes of process group ``group``.

    PSS counts a page shared by n processes as 1/n in each, so the sum is the memory the
    group holds (forkserver workers share the parent's libraries); a sum of resident sizes
    would count those pages once per process.
    """
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[2]) != group:
                continue
            rollup = (stat.parent / "smaps_rollup").read_text()
        except OSError:  # the process ended meanwhile
            continue
        total += int(rollup.split("Pss:", 1)[1].split()[0]) * 1024
    return total / 1e9


def run_command(command: list[str], env: dict, *, sample_memory: bool = True) -> dict:
    """Wall time and (``sample_memory``) peak summed memory of ``command`` in its own process
    group; without sampling the peak is 0."""
    start = time.perf_counter()
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True, text=True,
    )  # fmt: skip
    peak, done = [0.0], threading.Event()

    def sample() -> None:
        while not done.wait(0.1):
            peak[0] = max(peak[0], group_memory_gb(process.pid))

    sampler = threading.Thread(target=sample)
    if sample_memory:
        sampler.start()
    _, errors = process.communicate()
    wall = time.perf_counter() - start
    done.set()
    if sample_memory:
        sampler.join()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {process.returncode}:\n{errors[-2000:]}")
    return {"wall_s": wall, "peak_gb": peak[0]}


def participant_command(bids: Path, out: Path, labels: list[str], threads: int) -> list[str]:
    """The participant level of ``labels`` with the demo model, as a user types it."""
    msxai = str(Path(sys.executable).with_name("msxai"))
    return [
        msxai, str(bids), str(out), "participant", "--participant-label", *labels,
        "--model", "demo", "-w", str(out.parent / "work"), "--nprocs", str(threads),
        "--omp-nthreads", str(threads), "--skip-bids-validation",
    ]  # fmt: skip


def timed(task, repeats: int = 3) -> float:
    """Median wall time (s) of ``task`` after one warm-up call."""
    task()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        task()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def network_steps(image: Path, threads: int) -> dict:
    """Forward, backward, explanations and a training step of the demo model on ``image``."""
    import nibabel as nb
    import torch

    from msxai_bids.data import SHIPPED_MODELS
    from msxai_bids.explain.attribution import attribute, frozen
    from msxai_bids.model.modelfile import load_model
    from msxai_bids.model.network import l2_penalty

    torch.set_num_threads(threads)
    model, _ = load_model(SHIPPED_MODELS["demo"])
    volume = torch.as_tensor(np.asanyarray(nb.load(image).dataobj, np.float32))[None, None]

    def forward() -> None:
        with torch.no_grad():
            model(volume)

    def forward_with_graph() -> torch.Tensor:
        inputs = volume.clone().requires_grad_(True)
        return model(inputs).sum()

    def backward() -> None:
        with frozen(model):
            forward_with_graph().backward()

    figures = {"forward": timed(forward), "forward + backward": timed(backward)}
    figures["backward"] = figures["forward + backward"] - figures["forward"]
    for method, repeats in (("lrp-epsilon", 5), ("gradient-input", 3), ("smoothgrad", 1)):
        figures[method] = timed(lambda m=method: attribute(model, volume, m), repeats=repeats)
    batch, targets = volume.repeat(4, 1, 1, 1, 1), torch.ones(4, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-5)

    def training_step() -> None:
        model.train()
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(batch), targets)
        (loss + l2_penalty(model)).backward()
        optimizer.step()

    figures["training step per volume"] = timed(training_step) / 4
    return figures


def audit_steps(out: Path, label: str, threads: int) -> dict:
    """Seconds of the LRP-ε audit of one participant: randomisation, localisation, faithfulness."""
    import nibabel as nb
    import torch

    from msxai_bids.data import SHIPPED_MODELS
    from msxai_bids.explain.fieldofview import field_of_view_mask
    from msxai_bids.model.modelfile import load_model
    from msxai_bids.stages.audit import (
        AuditPlan,
        Subject,
        faithfulness_test,
        localisation_test,
        randomisation_test,
    )

    torch.set_num_threads(threads)
    model, _ = load_model(SHIPPED_MODELS["demo"])
    anat = out / label / "anat"

    def image(pattern: str) -> np.ndarray:
        return np.asanyarray(nb.load(next(anat.glob(pattern))).dataobj, np.float32)

    within = (image("*_desc-brain_mask.nii.gz") > 0.5) & field_of_view_mask()
    subject = Subject(
        source=label,
        target=1,
        volume=image("*_desc-preproc_FLAIR.nii.gz"),
        within=within,
        lesions=image("*_desc-lesion_mask.nii.gz") > 0.5,
        maps={"lrp-epsilon": image("*_res-cnn2mm_*_desc-lrpepsilon_statmap.nii.gz")},
    )
    plan = AuditPlan(output_dir=out, threads=threads)
    figures = {}
    start = time.perf_counter()
    _, randomised = randomisation_test(model, [subject], ["lrp-epsilon"], plan)
    figures["audit: randomisation"] = time.perf_counter() - start
    start = time.perf_counter()
    localisation_test(subject, subject.maps["lrp-epsilon"], randomised["lrp-epsilon"][0])
    figures["audit: localisation"] = time.perf_counter() - start
    start = time.perf_counter()
    faithfulness_test(model, subject, ["lrp-epsilon"], np.random.default_rng(0))
    figures["audit: perturbation"] = time.perf_counter() - start
    figures["audit"] = sum(figures.values())
    return figures


def preprocessing_steps(bids: Path, label: str, root: Path) -> dict:
    """Each preprocessing step as a plain call, and elastix on the same image, with errors.

    Both tools run with the one thread per image that the workflow gives ITK (a seed must
    reproduce a registration), as in ``msxai``'s own run.
    """
    from msxai_bids.preprocessing.accuracy import displacement_mm, expected_template_to_native
    from msxai_bids.preprocessing.registration import template_to_native_ras
    from msxai_bids.preprocessing.workers import ITK_THREADS
    from msxai_bids.synth import load_truth

    flair = next(bids.glob(f"{label}/anat/*_FLAIR.nii.gz"))
    out = root / "steps" / label
    out.mkdir(parents=True)
    result = bench_preprocessing.participant(
        flair, bench_preprocessing.lesion_mask(bids, label), out, ITK_THREADS
    )
    figures = {row["step"]: row["wall_s"] for row in result["steps"]}
    figures["steps peak GB"] = max(row["peak_gb"] for row in result["steps"])
    elastix = bench_preprocessing.run_elastix(
        root / "template_2mm.nii.gz", out / "moving_2mm.nii.gz", out / "elastix", ITK_THREADS
    )
    figures["elastix registration"] = elastix["wall_s"]
    truth = expected_template_to_native(load_truth(bids, label[4:]).native_to_template)
    for tool, estimate in (
        ("antspyx", template_to_native_ras(result["xfm"])),
        ("elastix", elastix["template_to_native"]),
    ):
        figures[f"{tool} error mm"] = float(displacement_mm(estimate, truth).mean())
    return figures


def print_table(rows: dict[str, dict]) -> dict[str, float]:
    """One column per participant and the median; returns the medians."""
    labels = list(rows)
    names = list(dict.fromkeys(name for row in rows.values() for name in row))
    print(f"{'':34}" + "".join(f"{label:>10}" for label in labels) + f"{'median':>10}")
    medians = {}
    for name in names:
        values = [rows[label][name] for label in labels]
        medians[name] = statistics.median(values)
        print(f"{name:34}" + "".join(f"{v:10.3f}" for v in values) + f"{medians[name]:10.3f}")
    return medians


def numerical_sum(m: dict[str, float]) -> float:
    """Seconds of a participant's numerical steps as plain calls: preprocessing, forward, LRP-ε."""
    return sum(m[step] for step in PREPROCESSING_STEPS) + m["forward"] + m["lrp-epsilon"]


def print_ratios(m: dict[str, float]) -> dict[str, float]:
    """The goals' ratios from the medians (seconds, GB)."""
    numerical = numerical_sum(m)
    ratios = {
        "end to end / sum of numerical steps": m["end to end"] / numerical,
        "LRP-ε / forward": m["lrp-epsilon"] / m["forward"],
        "LRP-ε / backward": m["lrp-epsilon"] / m["backward"],
        "gradient×input / forward": m["gradient-input"] / m["forward"],
        "SmoothGrad / forward": m["smoothgrad"] / m["forward"],
        "training step per volume / forward": m["training step per volume"] / m["forward"],
        "elastix / antspyx registration": m["elastix registration"] / m["registration"],
        "audit / LRP-ε": m["audit"] / m["lrp-epsilon"],
    }
    print(f"\nsum of numerical steps: {numerical:.2f} s (median participant)")
    print(f"end to end: {m['end to end']:.2f} s, peak {m['end to end peak GB']:.2f} GB")
    print(f"cached rerun: {m['cached rerun']:.2f} s, peak {m['cached rerun peak GB']:.2f} GB")
    for name, value in ratios.items():
        print(f"{name:40}{value:8.2f}")
    return ratios


def print_cohort(cohort: dict, n: int, m: dict[str, float]) -> dict[str, float]:
    """The same participants in one run: its wall time per participant, over their steps."""
    numerical = numerical_sum(m)
    per_participant = cohort["wall_s"] / n
    print(f"all {n} in one run: {cohort['wall_s']:.2f} s, {per_participant:.2f} s per "
          f"participant, peak {cohort['peak_gb']:.2f} GB")  # fmt: skip
    name = "one run per participant / sum of numerical steps"
    print(f"{name:40}{per_participant / numerical:8.2f}")
    return {name: per_participant / numerical}


def benchmark(args: argparse.Namespace, env: dict[str, str], root: Path) -> None:
    """Write the benchmark cohort into ``root``, run and time everything, print the figures."""
    import ants

    from msxai_bids.preprocessing.spaces import template_brain
    from msxai_bids.synth import make_cohort

    cpu = cpu_description()
    print(f"CPU: {cpu}; allocator of the timed calls: {loaded_allocator()}")
    print(f"{args.participants} participants × 1 mm with scalp, {args.threads} threads, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
    bids = make_cohort(root / "bids", n_patients=args.participants, n_controls=0,
                       seed=args.seed, native_resolution=1.0, skull=True)  # fmt: skip
    ants.image_write(template_brain(), str(root / "template_2mm.nii.gz"))
    out = root / "out"
    labels = sorted(p.name for p in bids.glob("sub-*"))
    rows = {label: {} for label in labels}
    for key in ("end to end", "cached rerun"):
        for label in labels:
            command = participant_command(bids, out, [label[4:]], args.threads)
            rows[label][key] = run_command(command, env, sample_memory=False)["wall_s"]
    for key, folder in (("end to end", root / "sampled" / "out"), ("cached rerun", out)):
        for label in labels:
            command = participant_command(bids, folder, [label[4:]], args.threads)
            rows[label][f"{key} peak GB"] = run_command(command, env)["peak_gb"]
    for label in labels:
        rows[label] |= preprocessing_steps(bids, label, root)
        image = next((out / label / "anat").glob("*_desc-preproc_FLAIR.nii.gz"))
        rows[label] |= network_steps(image, args.threads)
        rows[label] |= audit_steps(out, label, args.threads)
    everyone = [label[4:] for label in labels]
    cohort = run_command(
        participant_command(bids, root / "cohort" / "out", everyone, args.threads), env
    )
    print("\nseconds (GB, mm where named)")
    medians = print_table(rows)
    ratios = print_ratios(medians)
    ratios |= print_cohort(cohort, len(labels), medians)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")
    if args.json:
        figures = {"cpu": cpu, "participants": rows, "cohort": cohort, "ratios": ratios}
        args.json.write_text(json.dumps(figures, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    parser.add_argument("--keep", action="store_true", help="keep the cohort and the outputs")
    args = parser.parse_args()

    env = dict(os.environ)
    tcmalloc = ALLOCATORS["tcmalloc"]
    if Path(tcmalloc["LD_PRELOAD"]).exists():  # as the container and the demo run msxai
        env |= tcmalloc
    root = Path(tempfile.mkdtemp(prefix="msxai-bench-"))
    try:
        benchmark(args, env, root)
    finally:
        if args.keep:
            print(f"files in {root}")
        else:
            shutil.rmtree(root)


if __name__ == "__main__":
    main()
