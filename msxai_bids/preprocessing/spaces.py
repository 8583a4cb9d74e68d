"""Images and spaces: RAS reorientation, the CNN grid as an ANTs image, the template on it.

ANTs works in physical (LPS) coordinates and nibabel in RAS world coordinates; both read the
same NIfTI affine, so an image converted between them keeps its place in the world. Every
function here returns images whose world coordinates are unchanged; only voxel order or
sampling differ.
"""

from __future__ import annotations

import atexit
from functools import lru_cache

import ants
import nibabel as nb
import numpy as np

from msxai_bids.grid import CNN_GRID, Grid
from msxai_bids.templates import template_path


def to_ras(image: nb.Nifti1Image) -> nb.Nifti1Image:
    """Reorder voxel axes so that they increase towards Right, Anterior, Superior.

    The world position of every voxel is unchanged (no resampling), so the result is the same
    scan stored in the orientation the rest of the pipeline assumes.

    Parameters
    ----------
    image : nibabel.Nifti1Image
        A 3-D image in any stored orientation; a trailing singleton 4th axis is dropped.
    """
    if image.ndim == 4 and image.shape[3] == 1:
        image = image.slicer[..., 0]
    if image.ndim != 3:
        raise ValueError(f"expected a 3-D image, got shape {image.shape}")
    return nb.as_closest_canonical(image)


def for_ants(data: np.ndarray, affine: np.ndarray) -> nb.Nifti1Image:
    """``data`` as a NIfTI image that ``ants.from_nibabel_nifti`` converts as it is: spatial
    units in mm, and time units too, without which antspyx prints a warning for each image."""
    image = nb.Nifti1Image(data, affine)
    image.header.set_xyzt_units("mm", "sec")
    return image


def grid_reference(grid: Grid = CNN_GRID) -> ants.ANTsImage:
    """An all-zero ANTs image on ``grid`` (shape ``grid.shape``, ``grid.voxel_mm`` spacing)."""
    return ants.from_nibabel_nifti(for_ants(np.zeros(grid.shape, np.float32), grid.affine))


@lru_cache(maxsize=2)
def _template_on_grid(grid: Grid, suffix: str) -> ants.ANTsImage:
    template = ants.image_read(str(template_path(resolution=1, desc="brain", suffix=suffix)))
    interpolation = "nearestNeighbor" if suffix == "mask" else "linear"
    return ants.resample_image_to_target(template, grid_reference(grid), interp_type=interpolation)


# Emptied before the interpreter's teardown: the msxai command freezes its heap before exiting,
# and antspyx's bindings report every image still alive then as leaked.
atexit.register(_template_on_grid.cache_clear)


def template_brain(grid: Grid = CNN_GRID) -> ants.ANTsImage:
    """The MNI152NLin2009cAsym brain (T1w contrast) resampled onto ``grid``, trilinearly."""
    return _template_on_grid(grid, "T1w").clone()


def template_mask(grid: Grid = CNN_GRID) -> ants.ANTsImage:
    """The MNI152NLin2009cAsym brain mask on ``grid`` (nearest neighbour), values 0 or 1."""
    return _template_on_grid(grid, "mask").clone()


def isotropic(image: ants.ANTsImage, voxel_mm: float) -> ants.ANTsImage:
    """Resample ``image`` to isotropic voxels of ``voxel_mm`` over the same field of view,
    trilinearly.

    The grid is the one ANTs' ``ResampleImage`` makes (same first voxel centre and axes,
    ⌊(n − 1)·spacing / ``voxel_mm``⌋ + 1 voxels along an axis of n), with the same values; it
    is filled by ``resample_image_to_target``, which is 7× faster than ``resample_image``
    (0.07 s instead of 0.49 s for a 1 mm head, 258×214×229 voxels, to 2 mm).
    """
    shape = tuple(
        int((n - 1) * spacing / voxel_mm + 1e-6) + 1
        for n, spacing in zip(image.shape, image.spacing, strict=True)
    )
    reference = ants.make_image(
        shape,
        spacing=(voxel_mm,) * 3,
        origin=image.origin,
        direction=image.direction,
        pixeltype="float",
    )
    return ants.resample_image_to_target(image, reference, interp_type="linear")
