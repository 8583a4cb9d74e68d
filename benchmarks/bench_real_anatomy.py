"""Preprocessing on real anatomy: Colin27 posed, restored, resliced, with and without scalp.

Usage::

    python benchmarks/bench_real_anatomy.py [--seed 0] [--participant-level]

Needs Debian's ``mricron-data``. Every case of ``tests/test_real_anatomy.py`` (and a few more)
goes through ``register_native`` with one ITK thread, as the workflow runs it. For each case the
script prints: the pose, stored orientation, voxel size, scalp and contrast; the transform's
distance from the unposed head's composed with the known pose (mean/max mm over the template
brain); the share of the brain mask (on the CNN grid) outside the template brain; the QC
numbers and flag; and the CPU seconds of the native steps. It then prints the same head with
and without scalp side by side, and the same case twice (bit-identical or not).
``--participant-level`` also times ``msxai BIDS OUT participant`` on one 1 mm scan (wall s).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = "1"
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import ants
import nibabel as nb
from real_anatomy import CASES, Case, write_plain_bids

from msxai_bids.preprocessing.accuracy import displacement_mm
from msxai_bids.preprocessing.pipeline import register_native
from msxai_bids.preprocessing.qc import registration_metrics
from msxai_bids.preprocessing.registration import template_to_native_ras
from msxai_bids.preprocessing.resampling import mask_to_grid, to_grid
from msxai_bids.preprocessing.spaces import template_brain, template_mask


def run_case(case: Case, folder: Path, seed: int) -> dict:
    """Native steps of one case; the numbers of one table row."""
    folder.mkdir(parents=True)
    nb.save(case.image(), folder / "scan.nii.gz")
    image = ants.image_read(str(folder / "scan.nii.gz"), pixeltype="float")
    start = time.process_time()
    result = register_native(image, folder, seed=seed)
    seconds = time.process_time() - start
    affine = template_to_native_ras(result.xfm)
    grid_mask = mask_to_grid(result.mask, result.xfm).numpy() > 0
    inside = template_mask().numpy() > 0
    qc = registration_metrics(
        to_grid(result.corrected, result.xfm).numpy(), grid_mask,
        template_brain().numpy(), inside, affine,
    )  # fmt: skip
    outside = (grid_mask & ~inside).sum() / grid_mask.sum()
    return {"affine": affine, "outside": outside, "qc": qc, "cpu_s": seconds, "xfm": result.xfm}


def participant_level_seconds(folder: Path) -> float:
    """Wall time of the participant level on one 1 mm FLAIR-like scan with scalp."""
    bids = write_plain_bids(folder / "bids", {"01": CASES["pose-a"].image()})
    command = [str(Path(sys.executable).with_name("msxai")), str(bids), str(folder / "out"),
               "participant", "-w", str(folder / "work"), "--skip-bids-validation"]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--participant-level", action="store_true")
    args = parser.parse_args()
    print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        cases = list(CASES.values())
        rows = {case.name: run_case(case, Path(tmp) / case.name, args.seed) for case in cases}
        print("| case | rotation ° | shift mm | stored | voxel mm | scalp | contrast | mean/max mm "
              "| mask outside | NMI | Dice | QC | CPU s |")  # fmt: skip
        print("|" + "---|" * 13)
        for case in cases:
            row = rows[case.name]
            reference = rows["unposed-t1w" if case.contrast == "T1w" else "unposed"]["affine"]
            error = displacement_mm(row["affine"], case.pose() @ reference)
            qc = row["qc"]
            print(
                f"| {case.name} | {case.rotation_deg} | {case.translation_mm} | "
                f"{case.orientation} | {case.voxel_mm} | {case.scalp} | {case.contrast} | "
                f"{error.mean():.2f}/{error.max():.2f} | {row['outside']:.1%} | "
                f"{qc['nmi']:.3f} | {qc['dice']:.3f} | "
                f"{'ok' if qc['plausible'] else 'FLAG ' + qc['reason']} | {row['cpu_s']:.1f} |"
            )
        for a, b in [("pose-a", "pose-a-noscalp"), ("pose-a-thick", "pose-a-thick-noscalp")]:
            gap = displacement_mm(rows[a]["affine"], rows[b]["affine"])
            print(f"scalp on vs off, {a}: mean {gap.mean():.2f} mm, max {gap.max():.2f} mm")
        again = run_case(CASES["pose-a"], Path(tmp) / "again", args.seed)
        same = again["xfm"].read_bytes() == rows["pose-a"]["xfm"].read_bytes()
        print(f"same case twice, same seed: transform files {'identical' if same else 'DIFFER'}")
        if args.participant_level:
            seconds = participant_level_seconds(Path(tmp) / "participant")
            print(f"participant level, one 1 mm scan: {seconds:.1f} s wall")


if __name__ == "__main__":
    main()
