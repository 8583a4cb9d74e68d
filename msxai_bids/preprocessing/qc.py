"""Registration quality: numbers, a pass/fail flag and a figure of template outlines over the FLAIR.

Two numbers are computed on the CNN grid: the normalised mutual information between the
registered FLAIR and the T1-weighted template inside the template's brain mask (contrast-blind,
so FLAIR against T1w is fine), and the Dice overlap of the FLAIR's brain mask with the
template's. The transform itself must keep handedness and a head's size: a left-right flip
leaves both numbers almost unchanged (the brain is nearly symmetric), its determinant does
not. Thresholds were set from real heads (Colin27, FLAIR-like and T1w, with and without scalp,
1 mm and 3 mm slices) and synthetic FLAIRs, registered correctly and then deliberately
misregistered; see ``NMI_MIN``, ``DICE_MIN`` and ``SCALE_RANGE``.

Mutual information is blind to contrast, so a T1w scan named FLAIR registers well; the order of
white and grey matter is not: the template's white matter is brighter than its grey matter in
T1w and darker in FLAIR and T2w (``white_grey_ratio``).
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nb
import numpy as np

BINS = 32
DICE_MIN = 0.90
"""Lowest brain-mask Dice of a plausible registration, a coarse second check beside NMI. On
five synthetic FLAIRs (1 and 2 mm, with and without skull) correct registrations scored
0.959–0.969, and 0.935 on a skull phantom of the workflow test; the same registrations
shifted by 12 mm scored ≤ 0.865, rotated by 12° ≤ 0.905, scaled by 8 % ≤ 0.874."""
NMI_MIN = 1.04
"""Lowest normalised mutual information (Studholme; 1 = independent) of a plausible
registration. Real heads registered correctly scored 1.047–1.067 (the earlier threshold of
1.07, set on synthetic heads, flagged every one of them); the same registrations shifted by
8 mm scored ≤ 1.025, by 15 mm ≤ 1.011, rotated by 10° ≤ 1.033, scaled by 10 % ≤ 1.031.
Synthetic FLAIRs score higher: correct 1.091–1.127. A flag asks for a look at the figure, it
does not stop the run."""

TISSUE_PERCENTILES = {"grey": (35.0, 55.0), "white": (80.0, 100.0)}
"""Grey and white matter as bands of the T1w template's intensity inside its brain mask
(percentiles): CSF is the darkest third, white matter the brightest fifth."""

WHITE_BRIGHTER = {"T1w": True, "FLAIR": False, "T2w": False}
"""Whether white matter is brighter than grey matter in a contrast. Measured medians of white
over grey matter: T1w template 1.23, Colin27 (T1w) 1.28; Colin27 mapped to FLAIR contrast 0.90,
86 synthetic FLAIRs (2 mm, 80 without and 6 with scalp, half with MS lesions) 0.82–1.00."""

CONTRAST_MARGIN = 1.1
"""How far past equal white and grey matter a ratio must be to contradict the suffix: a FLAIR
is flagged above 1.1, a T1w below 1/1.1. Synthetic FLAIRs come within 0.004 of 1."""

SCALE_RANGE = (0.67, 1.5)
"""Plausible per-axis scale of template → native (singular values of the linear part): adult
heads differ from the template by well under ±30 %."""


def normalised_mutual_information(a: np.ndarray, b: np.ndarray, *, bins: int = BINS) -> float:
    """(H(a) + H(b)) / H(a, b) of two equally long samples, from a ``bins``² histogram."""
    joint, _, _ = np.histogram2d(a.ravel(), b.ravel(), bins=bins)
    joint = joint / joint.sum()

    def entropy(p: np.ndarray) -> float:
        p = p[p > 0]
        return float(-(p * np.log(p)).sum())

    return (entropy(joint.sum(axis=0)) + entropy(joint.sum(axis=1))) / entropy(joint)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice coefficient 2|A∩B| / (|A| + |B|) of two masks (non-zero is inside)."""
    a, b = a > 0, b > 0
    total = a.sum() + b.sum()
    return float(2.0 * (a & b).sum() / total) if total else 0.0


def transform_problems(template_to_native: np.ndarray) -> list[str]:
    """Why a 4×4 affine (template → native world, RAS) cannot be a head's pose; [] if it can."""
    linear = np.asarray(template_to_native, dtype=float)[:3, :3]
    problems = []
    if np.linalg.det(linear) <= 0:
        problems.append("the transform mirrors the head (negative determinant)")
    scales = np.linalg.svd(linear, compute_uv=False)
    low, high = SCALE_RANGE
    if scales.min() < low or scales.max() > high:
        problems.append(f"the transform scales by {scales.min():.2f}–{scales.max():.2f}")
    return problems


def white_grey_ratio(image: np.ndarray, template: np.ndarray, template_mask: np.ndarray) -> float:
    """Median of ``image`` in the template's white matter over its median in grey matter.

    The tissues are intensity bands of the T1w ``template`` (``TISSUE_PERCENTILES``), all
    arrays on the same grid; after an affine registration they hold mostly that tissue.
    """
    inside = template_mask > 0
    medians = {}
    for tissue, (low, high) in TISSUE_PERCENTILES.items():
        lower, upper = np.percentile(template[inside], [low, high])
        band = inside & (template > lower) & (template <= upper)
        medians[tissue] = float(np.median(image[band]))
    return medians["white"] / medians["grey"] if medians["grey"] > 0 else float("inf")


def contrast_problems(ratio: float, contrast: str) -> list[str]:
    """Why a white/grey matter ``ratio`` contradicts ``contrast`` (empty when it does not)."""
    if contrast not in WHITE_BRIGHTER:
        return []
    if WHITE_BRIGHTER[contrast]:
        contradicts, order, expected = ratio < 1 / CONTRAST_MARGIN, "darker", "brighter"
    else:
        contradicts, order, expected = ratio > CONTRAST_MARGIN, "brighter", "darker"
    if not contradicts:
        return []
    return [
        f"white matter is {order} than grey matter (median ratio {ratio:.2f}); in {contrast} "
        f"it is {expected}: is the image of another contrast?"
    ]


def registration_metrics(
    flair: np.ndarray,
    brain: np.ndarray,
    template: np.ndarray,
    template_mask: np.ndarray,
    template_to_native: np.ndarray | None = None,
    *,
    contrast: str | None = None,
) -> dict:
    """Quality numbers of one registration, all arrays on the same grid (X, Y, Z).

    ``template_to_native`` (4×4, RAS), when given, is checked with ``transform_problems``;
    ``contrast`` (the image's BIDS suffix), when given, with ``contrast_problems``.

    Returns
    -------
    dict
        ``nmi`` (FLAIR vs template inside the template brain), ``dice`` (brain masks),
        ``white_grey_ratio``, and ``plausible`` (bool) with ``reason`` (empty when plausible).
    """
    inside = template_mask > 0
    metrics = {
        "nmi": normalised_mutual_information(flair[inside], template[inside]),
        "dice": dice(brain, template_mask),
        "white_grey_ratio": white_grey_ratio(flair, template, template_mask),
    }
    reasons = [] if template_to_native is None else transform_problems(template_to_native)
    if contrast is not None:
        reasons += contrast_problems(metrics["white_grey_ratio"], contrast)
    if metrics["dice"] < DICE_MIN:
        reasons.append(f"brain-mask Dice {metrics['dice']:.3f} < {DICE_MIN}")
    if metrics["nmi"] < NMI_MIN:
        reasons.append(f"normalised mutual information {metrics['nmi']:.3f} < {NMI_MIN}")
    return metrics | {"plausible": not reasons, "reason": "; ".join(reasons)}


def read_qc(path: Path | None) -> dict:
    """A QC file written from :func:`registration_metrics`; empty without one."""
    return json.loads(Path(path).read_text()) if path is not None else {}


def brain_cuts(template: nb.Nifti1Image, axis: int, count: int = 6) -> np.ndarray:
    """``count`` world coordinates (mm) along ``axis`` spread over the inner 80 % of the brain."""
    voxels = np.argwhere(np.asanyarray(template.dataobj) > 0)
    world = nb.affines.apply_affine(template.affine, voxels)[:, axis]
    low, high = np.percentile(world, [10, 90])
    return np.linspace(low, high, count)


def display_limit(
    data: np.ndarray, percentile: float = 99.5, within: np.ndarray | None = None
) -> float:
    """The grey value shown as white: a high percentile of the non-zero voxels (``within`` a
    mask, if given).

    The maximum would let a few bright voxels (vessels, scalp, resampling overshoot) darken the
    whole image. Where more than a few are bright, as at the edges of a field of view that
    bias correction extrapolates to 20–40 times the brain's intensity, only a mask keeps the
    brain visible.
    """
    shown = data > 0 if within is None else (data > 0) & within
    values = data[shown]
    return float(np.percentile(values, percentile)) if values.size else 1.0


def template_outlines(template: nb.Nifti1Image) -> tuple[nb.Nifti1Image, nb.Nifti1Image]:
    """The template's brain and its white matter (brightest of three Otsu classes), as masks.

    Their contours are drawn instead of nilearn's edge detection, which on slices with little
    or no brain divides by a zero maximum and draws noise beyond the brain.
    """
    import ants

    image = ants.from_nibabel_nifti(template)
    brain = ants.threshold_image(image, 1e-6, None)
    white = ants.otsu_segmentation(image, k=3, mask=brain) == 3
    return ants.to_nibabel_nifti(brain), ants.to_nibabel_nifti(white.astype("float32"))


def plot_edges(flair: nb.Nifti1Image, template: nb.Nifti1Image, out_file: Path) -> Path:
    """Save a three-row figure of the template's brain and white-matter outlines (red) over
    the registered FLAIR.

    Parameters
    ----------
    flair, template : nibabel.Nifti1Image
        Registered FLAIR and template brain (zero outside), in the same space.
    out_file : path
        Output image; the format follows the suffix (``.png`` or ``.svg``).
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from nilearn import plotting

    outlines = template_outlines(template)
    vmax = display_limit(np.asanyarray(flair.dataobj), within=np.asanyarray(template.dataobj) > 0)
    figure = plt.figure(figsize=(9, 6))
    for row, mode in enumerate("xyz"):
        axes = figure.add_axes((0, 1 - (row + 1) / 3, 1, 1 / 3))
        display = plotting.plot_anat(
            flair, display_mode=mode, cut_coords=brain_cuts(template, row), axes=axes,
            figure=figure, dim=0, annotate=False, colorbar=False, vmin=0, vmax=vmax,
        )  # fmt: skip
        for outline in outlines:
            display.add_contours(outline, levels=[0.5], colors="r", linewidths=0.7)
    figure.savefig(out_file, dpi=80, facecolor="black")
    plt.close(figure)
    return Path(out_file)
