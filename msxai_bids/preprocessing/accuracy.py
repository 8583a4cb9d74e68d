"""Registration accuracy against a known pose, for validation on synthetic cohorts.

Synthetic subjects (``msxai_bids.synth``) are built on the ICBM 2009a symmetric template that
nilearn ships, and their ground truth maps native space to *that* template, while msxai
registers to MNI152NLin2009cAsym. Both templates use MNI world coordinates, yet the best affine
between them is not the identity (it moves brain points by about 0.8 mm on average, up to
1.9 mm). ``template_difference`` measures it once with msxai's own registration, so that a
test can compare a registration with the pose composed with it, instead of charging the
templates' difference to the registration.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from tempfile import TemporaryDirectory

import ants
import nibabel as nb
import numpy as np

from msxai_bids.preprocessing.registration import (
    register_to_template,
    template_to_native_ras,
    write_itk_affine,
)
from msxai_bids.templates import template_path


@lru_cache(maxsize=1)
def brain_points(step: int = 20) -> np.ndarray:
    """RAS world coordinates (4, N), homogeneous, of every ``step``-th template brain voxel."""
    template = nb.load(template_path())
    index = np.argwhere(template.get_fdata() > 0)[::step]
    world = template.affine[:3, :3] @ index.T + template.affine[:3, 3:]
    return np.vstack([world, np.ones(len(index))])


def displacement_mm(estimate: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Distances (N,) in mm between where two 4×4 affines send the template's brain points."""
    points = brain_points()
    return np.linalg.norm((estimate @ points - truth @ points)[:3], axis=0)


@lru_cache(maxsize=1)
def template_difference() -> np.ndarray:
    """Affine (4, 4, RAS) from MNI152NLin2009cAsym world to ICBM 2009a (nilearn) world.

    Measured by registering nilearn's 2009a brain to the 2009c brain with
    ``register_to_template`` (about 5 s).
    """
    from nilearn import datasets

    image = ants.from_nibabel_nifti(datasets.load_mni152_template(resolution=1)).clone("float")
    transform = register_to_template(image, ants.threshold_image(image, 1e-6, None))
    with TemporaryDirectory() as folder:
        return template_to_native_ras(write_itk_affine(transform, Path(folder) / "t2t.txt"))


def expected_template_to_native(native_to_2009a: np.ndarray) -> np.ndarray:
    """The affine (4, 4, RAS) a perfect registration to 2009c finds for a synthetic scan."""
    return np.linalg.inv(native_to_2009a) @ template_difference()
