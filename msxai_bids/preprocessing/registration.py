"""Affine registration of a brain-masked FLAIR to MNI152NLin2009cAsym, and its ITK transform file.

The FLAIR (brain only) and the template brain are both used at 2 mm: the CNN grid is 2 mm, and
at that size an affine registration takes seconds instead of half a minute for nearly the
same accuracy (0.21 mm vs 0.18 mm mean error on FLAIR-like images). The metric is Mattes
mutual information, because FLAIR and the T1-weighted template have different contrasts.
``antsRegistration`` is called through antspyx with explicit arguments, because
``ants.registration`` fixes the convergence settings and passes no fixed-image mask or seed
of its own; the stages are described by :class:`Schedule`.

The transform is stored the way ANTs and ITK use it to resample the FLAIR onto the template
(fMRIPrep's ``from-FLAIR_to-MNI152NLin2009cAsym_mode-image_xfm``): it maps template points to
FLAIR points in LPS millimetres, as ``AffineTransform_double_3_3`` text.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory

import ants
import numpy as np

from msxai_bids.preprocessing.spaces import isotropic, template_brain, template_mask

WORKING_MM = 2.0
"""Voxel size (mm) of the FLAIR copy that is registered."""

SAMPLING_RATE = 0.25
"""Fraction of template voxels on which mutual information is evaluated, on a regular grid
jittered by ``--random-seed``. Because the points lie on the template, one seed samples every
scan at the same template points: on Colin27 posed two ways, 0.25 put the two transforms
0.16–0.18 mm apart (mean), 0.1 put them 0.38–0.76 mm apart, at 13.8 and 5.8 s of CPU for a
full three-level run on 2 mm voxels."""

BINS = 32
"""Histogram bins of Mattes mutual information (ANTs' usual value)."""

STEP = 0.1
"""Gradient step of both stages (ANTs' rigid/affine default in antsRegistrationSyN)."""

CONVERGENCE = 1e-6
"""A level ends when the metric's slope over its last 10 iterations falls below this."""

LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
"""Flips between RAS (nibabel) and LPS (ITK) world coordinates; its own inverse."""


@dataclass(frozen=True)
class Schedule:
    """Stages and resolution levels of one ``antsRegistration`` run on the 2 mm images.

    Attributes
    ----------
    stages : tuple of str
        ITK transform types run one after the other (``Rigid``, ``Affine``).
    iterations, shrink, smoothing : str
        Per level, ``antsRegistration`` style: most iterations, shrink factor (1 = 2 mm
        voxels), Gaussian sigma in voxels.
    """

    stages: tuple[str, ...]
    iterations: str
    shrink: str
    smoothing: str
    inner_brain: bool = False


INITIAL = Schedule(("Rigid", "Affine"), "200", "4", "2vox")
"""A first estimate at 8 mm, from the centres of mass: enough to place the template's brain
mask on the scan, from which ``FINAL`` starts again at 8 mm. A second level at 4 mm took
2.5–3 s more on one thread and moved the final transform of three 1 mm heads with scalp by
0.04–0.08 mm on average (0.23 mm at most)."""

FINAL = Schedule(("Affine",), "200x100x15", "4x2x1", "2x1x0vox", inner_brain=True)
"""The estimate that is kept, from ``INITIAL``'s: levels of 8, 4 and 2 mm, the metric taken
inside ``inner_template_brain`` only."""

INNER_ERODE_MM = 8.0
"""How far inside the template brain's edge the final metric looks. The edge is where a scan
with its skull and the same scan brain-extracted differ (dura, sinuses, the extraction's own
cut), so leaving it out makes both register alike. Colin27 with and without its scalp, same
pose: 1.17 mm apart (mean) with the whole brain, 0.74 mm eroding by 6 mm, 0.50 mm by 8 mm; it
also halves the final stage's time (about 2 s instead of 5.7 s of CPU)."""


def inner_template_brain() -> ants.ANTsImage:
    """The template's brain mask on the 2 mm grid, eroded by ``INNER_ERODE_MM``."""
    return ants.iMath(template_mask(), "ME", round(INNER_ERODE_MM / WORKING_MM))


def ants_seed(seed: int) -> int:
    """The ``--random-seed`` for msxai's ``--seed``: ANTs reads 0 as "seed from the clock",
    which made every run differ, so seeds are shifted into 1 … 2³¹ − 1."""
    return seed % (2**31 - 1) + 1


def _write(image: ants.ANTsImage, path: str) -> str:
    ants.image_write(image, path)
    return path


def _stage(transform: str, fixed: str, moving: str, schedule: Schedule) -> list[str]:
    """``antsRegistration`` arguments of one stage: Mattes MI on a regular, seeded sample."""
    return [
        "--metric", f"Mattes[{fixed},{moving},1,{BINS},Regular,{SAMPLING_RATE}]",
        "--transform", f"{transform}[{STEP}]",
        "--convergence", f"[{schedule.iterations},{CONVERGENCE},10]",
        "--smoothing-sigmas", schedule.smoothing,
        "--shrink-factors", schedule.shrink,
    ]  # fmt: skip


def register_to_template(
    image: ants.ANTsImage,
    mask: ants.ANTsImage,
    *,
    schedule: Schedule = FINAL,
    initial: Path | None = None,
    seed: int = 0,
) -> ants.ANTsTransform:
    """Affine transform that resamples ``image`` onto the template (template → FLAIR points).

    The sample points of the metric lie on the template and are jittered by ``seed``, so
    the same seed draws the same points for every scan whatever its pose; with one ITK
    thread the result is bit-reproducible (two threads sum the metric in varying order).

    Parameters
    ----------
    image : ants.ANTsImage
        Bias-corrected native FLAIR.
    mask : ants.ANTsImage
        Its brain mask (0/1, same grid); voxels outside are zeroed before registering.
    schedule : Schedule
        ``INITIAL`` or ``FINAL`` (stages, levels, metric mask).
    initial : path, optional
        ITK affine (template → FLAIR points) to start from; default: align the centres of
        mass.
    seed : int
        Random seed of the metric's sample points (``--seed``).

    Returns
    -------
    ants.ANTsTransform
        12-parameter affine, centre of rotation included, ITK convention.
    """
    with TemporaryDirectory(prefix="msxai-reg-") as folder:
        fixed, moving = f"{folder}/template.nii.gz", f"{folder}/flair.nii.gz"
        _write(template_brain(), fixed)
        _write(isotropic(image * mask, WORKING_MM), moving)
        start = str(initial) if initial is not None else f"[{fixed},{moving},1]"
        arguments = [
            "--dimensionality", "3", "--float", "1", "--random-seed", str(ants_seed(seed)),
            "--output", f"{folder}/out_", "--initial-moving-transform", start,
        ]  # fmt: skip
        if schedule.inner_brain:
            arguments += ["--masks", _write(inner_template_brain(), f"{folder}/inner.nii.gz")]
        for stage in schedule.stages:
            arguments += _stage(stage, fixed, moving, schedule)
        ants.registration(fixed=arguments, moving=None)
        return ants.read_transform(f"{folder}/out_0GenericAffine.mat")


def write_itk_affine(transform: ants.ANTsTransform, path: Path) -> Path:
    """Write ``transform`` as ITK text (``AffineTransform_double_3_3``); ``path`` ends in .txt."""
    path = Path(path)
    if path.suffix != ".txt":
        raise ValueError(f"ITK text transforms need a .txt name, got {path.name}")
    ants.write_transform(transform, str(path))
    return path


def template_to_native_ras(path: Path) -> np.ndarray:
    """The 4×4 matrix (RAS mm) of an ITK affine file: template world → FLAIR world.

    ITK stores a matrix ``M``, translation ``t`` and centre ``c`` and maps a point ``x`` (LPS)
    to ``M (x − c) + c + t``.
    """
    transform = ants.read_transform(str(path))
    parameters = np.asarray(transform.parameters, dtype=float)
    centre = np.asarray(transform.fixed_parameters, dtype=float)
    matrix = parameters[:9].reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = matrix
    lps[:3, 3] = parameters[9:] + centre - matrix @ centre
    return LPS @ lps @ LPS


def transform_from_ras(template_to_native: np.ndarray) -> ants.ANTsTransform:
    """ITK affine (double precision) from a 4×4 RAS matrix mapping template → FLAIR world mm."""
    lps = LPS @ np.asarray(template_to_native, dtype=float) @ LPS
    return ants.create_ants_transform(
        transform_type="AffineTransform",
        precision="double",
        dimension=3,
        matrix=lps[:3, :3],
        translation=lps[:3, 3],
    )


def native_to_template_ras(path: Path) -> np.ndarray:
    """The 4×4 matrix (RAS mm) mapping FLAIR world points to template world points."""
    return np.linalg.inv(template_to_native_ras(path))
