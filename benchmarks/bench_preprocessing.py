"""Time, memory and accuracy of FLAIR preprocessing per participant, and antspyx vs elastix.

Usage::

    python benchmarks/bench_preprocessing.py [--participants 3] [--threads 2] [--skull]
                                             [--resolution 1.0] [--workflow]

A synthetic cohort (``msxai_bids.synth``, 1 mm by default) is written to a temporary folder.
Each participant is preprocessed in a fresh process with ITK limited to ``--threads``; for
every step the script prints wall time, CPU time and the peak resident memory of the process
during that step (kernel ``VmHWM``, reset before each step). ``import`` is the cost of loading
antspyx and msxai once per process, which Nipype's MultiProc workers pay once each.

The same 2 mm brain-masked, bias-corrected FLAIR is then registered to the same 2 mm template
with Debian's ``elastix`` (affine, Mattes MI, recursive pyramids, 4 levels × 250 iterations,
5000 random samples, ``-threads`` as given), and both tools' errors against the ground-truth
pose (mean and max displacement over the template brain, after composing the truth with the
measured 2009a → 2009c template difference) are printed side by side with their times and
peak memory. Lesion masks are moved to the grid both by nearest neighbour and by trilinear
interpolation with a 0.5 threshold, and their volumes compared with the native one.
``--workflow`` also runs the Nipype workflow (MultiProc, ``--threads`` processes) on the first
participant and prints its wall time. Timings on a shared machine include the other
processes' load; CPU time is much less affected.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ELASTIX_PARAMETERS = {
    "FixedInternalImagePixelType": '"float"',
    "MovingInternalImagePixelType": '"float"',
    "FixedImageDimension": "3",
    "MovingImageDimension": "3",
    "UseDirectionCosines": '"true"',
    "Registration": '"MultiResolutionRegistration"',
    "FixedImagePyramid": '"FixedRecursiveImagePyramid"',
    "MovingImagePyramid": '"MovingRecursiveImagePyramid"',
    "NumberOfResolutions": "4",
    "MaximumNumberOfIterations": "250",
    "Transform": '"AffineTransform"',
    "AutomaticScalesEstimation": '"true"',
    "AutomaticTransformInitialization": '"true"',
    "AutomaticTransformInitializationMethod": '"CenterOfGravity"',
    "HowToCombineTransforms": '"Compose"',
    "Metric": '"AdvancedMattesMutualInformation"',
    "NumberOfHistogramBins": "32",
    "Optimizer": '"AdaptiveStochasticGradientDescent"',
    "ImageSampler": '"RandomCoordinate"',
    "NumberOfSpatialSamples": "5000",
    "NewSamplesEveryIteration": '"true"',
    "Interpolator": '"BSplineInterpolator"',
    "BSplineInterpolationOrder": "1",
    "ResampleInterpolator": '"FinalBSplineInterpolator"',
    "FinalBSplineInterpolationOrder": "3",
    "Resampler": '"DefaultResampler"',
    "DefaultPixelValue": "0",
    "WriteResultImage": '"false"',
}
"""elastix parameter map: one ``(Name value)`` line each in the parameter file."""


def reset_peak_memory() -> None:
    """Reset the kernel's record of this process's peak resident memory (VmHWM)."""
    Path("/proc/self/clear_refs").write_text("5")


def peak_memory_gb() -> float:
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1e6


class Steps:
    """Records wall time, CPU time and peak memory of successive steps of one process."""

    def __init__(self):
        self.rows: list[dict] = []

    def run(self, name: str, task):
        reset_peak_memory()
        wall, cpu = time.perf_counter(), time.process_time()
        result = task()
        self.rows.append(
            {
                "step": name,
                "wall_s": time.perf_counter() - wall,
                "cpu_s": time.process_time() - cpu,
                "peak_gb": peak_memory_gb(),
            }
        )
        return result


def preprocess(flair: Path, lesion: Path, out: Path) -> dict:
    """Run every preprocessing step on one participant, timing each (worker process)."""
    steps = Steps()
    modules = steps.run("import", _import_modules)
    spaces, brain, bias, registration, resampling, intensity, qc, ants, nb = modules
    image = steps.run(
        "load + RAS", lambda: ants.from_nibabel_nifti(_float(spaces.to_ras(nb.load(flair))))
    )
    first_mask = steps.run("first brain mask", lambda: brain.brain_mask(image))
    first = steps.run(
        "first registration",
        lambda: registration.register_to_template(image, first_mask, schedule=registration.INITIAL),
    )
    first_xfm = registration.write_itk_affine(first, out / "first_xfm.txt")
    prior = steps.run("template-prior mask", lambda: brain.template_prior_mask(image, first_xfm))
    corrected = steps.run("N4", lambda: bias.n4_correct(image, prior))
    transform = steps.run(
        "registration",
        lambda: registration.register_to_template(corrected, prior, initial=first_xfm),
    )
    xfm = registration.write_itk_affine(transform, out / "xfm.txt")
    mask = steps.run("final brain mask", lambda: brain.template_prior_mask(image, xfm))

    def to_grid():
        grid_mask = resampling.mask_to_grid(mask, xfm).numpy()
        return resampling.to_grid(corrected, xfm).numpy(), grid_mask

    grid, grid_mask = steps.run("resample to grid", to_grid)
    steps.run("min-max scale", lambda: intensity.minmax_scale(grid, grid_mask))

    def quality():
        template, template_mask = spaces.template_brain().numpy(), spaces.template_mask().numpy()
        figure = nb.Nifti1Image(grid, spaces.CNN_GRID.affine)
        qc.plot_edges(figure, figure, out / "edges.png")
        return qc.registration_metrics(grid, grid_mask, template, template_mask)

    metrics = steps.run("QC", quality)
    moving = spaces.isotropic(corrected * mask, registration.WORKING_MM)
    ants.image_write(moving, str(out / "moving_2mm.nii.gz"))
    lesion_image = ants.image_read(str(lesion), pixeltype="float")
    volumes = {
        "native_ml": float(lesion_image.numpy().sum() * np.prod(lesion_image.spacing) / 1000),
        "linear_ml": float(resampling.mask_to_grid(lesion_image, xfm).numpy().sum() * 8 / 1000),
        "nearest_ml": float(
            resampling.to_grid(lesion_image, xfm, interpolation="nearestNeighbor").numpy().sum()
            * 8
            / 1000
        ),
    }
    return {"steps": steps.rows, "xfm": str(xfm), "qc": metrics, "lesion": volumes}


def _import_modules():
    import ants
    import nibabel as nb

    from msxai_bids.preprocessing import (
        bias,
        brain,
        intensity,
        qc,
        registration,
        resampling,
        spaces,
    )

    spaces.template_brain(), spaces.template_mask()
    return spaces, brain, bias, registration, resampling, intensity, qc, ants, nb


def _float(image):
    import nibabel as nb

    data = np.asarray(image.dataobj, dtype=np.float32)
    converted = nb.Nifti1Image(data, image.affine)
    converted.header.set_xyzt_units("mm")
    return converted


def run_elastix(fixed: Path, moving: Path, out: Path, threads: int) -> dict:
    """Register ``moving`` to ``fixed`` with elastix; time, peak memory and the 4×4 transform."""
    out.mkdir(parents=True, exist_ok=True)
    parameters = out / "affine.txt"
    parameters.write_text("".join(f"({k} {v})\n" for k, v in ELASTIX_PARAMETERS.items()))
    command = ["elastix", "-f", str(fixed), "-m", str(moving), "-p", str(parameters)]
    command += ["-out", str(out), "-threads", str(threads)]
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise RuntimeError(f"elastix failed, see {out / 'elastix.log'}")
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_gb": usage.ru_maxrss / 1e6,
        "template_to_native": elastix_affine(out / "TransformParameters.0.txt"),
    }


def elastix_affine(path: Path) -> np.ndarray:
    """4×4 RAS matrix (template → native world mm) of an elastix AffineTransform file."""
    from msxai_bids.preprocessing.registration import LPS

    text = path.read_text()

    def values(key: str) -> np.ndarray:
        return np.array(re.search(rf"\({key} ([^)]*)\)", text).group(1).split(), dtype=float)

    parameters, centre = values("TransformParameters"), values("CenterOfRotationPoint")
    matrix = parameters[:9].reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = matrix
    lps[:3, 3] = parameters[9:] + centre - matrix @ centre
    return LPS @ lps @ LPS


def run_workflow(flair: Path, lesion: Path, work: Path, threads: int) -> float:
    """Wall time (s) of the Nipype workflow on one participant with MultiProc."""
    from nipype import config, logging

    from msxai_bids.workflows.preprocessing import init_preproc_wf

    config.update_config({"logging": {"workflow_level": "WARNING"}})
    logging.update_logging(config)
    workflow = init_preproc_wf(lesion_fill=True, has_lesion_mask=True)
    workflow.base_dir = str(work)
    workflow.inputs.inputnode.flair, workflow.inputs.inputnode.lesion_mask = str(flair), str(lesion)
    start = time.perf_counter()
    workflow.run(plugin="MultiProc", plugin_args={"n_procs": threads})
    return time.perf_counter() - start


def participant(flair: Path, lesion: Path, out: Path, threads: int) -> dict:
    """Preprocess one participant in a fresh process with ``threads`` ITK threads."""
    env = dict(os.environ, ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=str(threads))
    command = [sys.executable, __file__, "--worker", str(flair), str(lesion), str(out)]
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    return json.loads((out / "result.json").read_text())


def print_participant(label: str, result: dict, elastix: dict, errors: dict) -> None:
    print(f"\n{label}: QC nmi {result['qc']['nmi']:.3f} dice {result['qc']['dice']:.3f}")
    print(f"  {'step':<18}{'wall s':>8}{'cpu s':>8}{'peak GB':>9}")
    for row in result["steps"]:
        print(f"  {row['step']:<18}{row['wall_s']:8.2f}{row['cpu_s']:8.2f}{row['peak_gb']:9.2f}")
    total = sum(r["wall_s"] for r in result["steps"])
    peak = max(r["peak_gb"] for r in result["steps"])
    print(f"  {'total':<18}{total:8.2f}{sum(r['cpu_s'] for r in result['steps']):8.2f}{peak:9.2f}")
    reg = next(r for r in result["steps"] if r["step"] == "registration")
    print(
        f"  {'registration':<14}{'mean mm':>9}{'max mm':>8}{'wall s':>8}{'cpu s':>8}{'peak GB':>9}"
    )
    for tool, timing in (("antspyx", reg), ("elastix", elastix)):
        mean, worst = errors[tool]
        print(f"  {tool:<14}{mean:9.2f}{worst:8.2f}{timing['wall_s']:8.2f}"
              f"{timing['cpu_s']:8.2f}{timing['peak_gb']:9.2f}")  # fmt: skip
    volumes = result["lesion"]
    print(f"  lesion volume ml: native {volumes['native_ml']:.2f}, grid trilinear+0.5 "
          f"{volumes['linear_ml']:.2f}, grid nearest {volumes['nearest_ml']:.2f} "
          f"(grid volumes × det(pose) = native-space equivalents)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--resolution", type=float, default=1.0)
    parser.add_argument("--skull", action="store_true")
    parser.add_argument("--workflow", action="store_true")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        flair, lesion, out = (Path(p) for p in args.worker)
        (out / "result.json").write_text(json.dumps(preprocess(flair, lesion, out)))
        return
    benchmark(args)


def lesion_mask(bids: Path, label: str) -> Path:
    """The synthetic cohort's native lesion mask of ``label`` (``sub-XX``)."""
    return next(bids.glob(f"derivatives/lesions/{label}/anat/{label}_*_mask.nii.gz"))


def benchmark(args: argparse.Namespace) -> None:
    import ants

    from msxai_bids.preprocessing.accuracy import displacement_mm, expected_template_to_native
    from msxai_bids.preprocessing.registration import template_to_native_ras
    from msxai_bids.preprocessing.spaces import template_brain
    from msxai_bids.synth import load_truth, make_cohort

    root = Path(tempfile.mkdtemp(prefix="msxai-bench-"))
    print(f"cohort: {args.participants} × {args.resolution} mm, skull={args.skull}, "
          f"{args.threads} threads, load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    bids = make_cohort(root / "bids", n_patients=args.participants, n_controls=0, seed=args.seed,
                       native_resolution=args.resolution, skull=args.skull)  # fmt: skip
    fixed = root / "template_2mm.nii.gz"
    ants.image_write(template_brain(), str(fixed))
    for flair in sorted(bids.glob("sub-*/anat/*_FLAIR.nii.gz")):
        label = flair.name.split("_")[0]
        lesion = lesion_mask(bids, label)
        out = root / label
        out.mkdir()
        result = participant(flair, lesion, out, args.threads)
        elastix = run_elastix(fixed, out / "moving_2mm.nii.gz", out / "elastix", args.threads)
        truth = expected_template_to_native(load_truth(bids, label[4:]).native_to_template)
        estimates = {"antspyx": template_to_native_ras(result["xfm"]),
                     "elastix": elastix["template_to_native"]}  # fmt: skip
        errors = {}
        for tool, estimate in estimates.items():
            distances = displacement_mm(estimate, truth)
            errors[tool] = (distances.mean(), distances.max())
        det = abs(np.linalg.det(estimates["antspyx"][:3, :3]))
        result["lesion"] = {
            k: v * (det if k != "native_ml" else 1.0) for k, v in result["lesion"].items()
        }
        print_participant(label, result, elastix, errors)
    if args.workflow:
        first = sorted(bids.glob("sub-*/anat/*_FLAIR.nii.gz"))[0]
        lesion = lesion_mask(bids, first.name.split("_")[0])
        wall = run_workflow(first, lesion, root / "work", args.threads)
        print(f"\nNipype workflow (MultiProc, {args.threads} processes, lesion fill): {wall:.1f} s")
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    shutil.rmtree(root)


if __name__ == "__main__":
    main()
