"""Checks of the input images at the boundary, before any workflow runs.

A BIDS App runs unattended over hundreds of scans: an image that cannot be a head scan must be
turned away here, named with its problem in one line, and not half-processed into outputs that
look valid (a one-slice image registered "successfully", a mask moved with the wrong grid).
Every check reads the header and the voxels once; nothing is written.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nb
import numpy as np

#: Voxel edges (mm) outside this range are not a brain MRI msxai can resample to its 2 mm grid;
#: 7 mm admits clinical 2-D FLAIR (5 mm slices with a 1.5–2 mm gap).
VOXEL_MM = (0.3, 7.0)
#: Every axis must span at least this much (mm): less cannot hold a head.
MIN_FIELD_OF_VIEW_MM = 80.0
#: Every axis needs this many voxels: fewer is a slice, a localiser or a thumbnail.
MIN_VOXELS = 10


class InputImageError(ValueError):
    """An input image that msxai cannot use; ``str`` names the file and the problem."""

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path, self.problem = str(path), problem


@dataclass(frozen=True)
class Rejection:
    """One image turned away, with the reason."""

    path: str
    problem: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


def _shape_text(shape: tuple[int, ...]) -> str:
    return "×".join(str(n) for n in shape)


def read_volume(path: str | os.PathLike) -> tuple[nb.Nifti1Image, np.ndarray]:
    """Load a NIfTI file and all its voxels; a missing, unfetched or damaged file is named.

    Returns the image and its data as float32 with trailing singleton axes (a 4-D file of one
    volume) dropped.
    """
    path = Path(path)
    if not path.exists():
        if path.is_symlink():
            raise InputImageError(
                path,
                f"broken symbolic link to {os.readlink(path)} (file content not retrieved? "
                "in a DataLad dataset, run `datalad get` on it)",
            )
        raise InputImageError(path, "file does not exist")
    try:
        image = nb.load(path)
        data = np.asanyarray(image.dataobj, dtype=np.float32)
    except (EOFError, zlib.error) as err:
        raise InputImageError(path, f"compressed data ends or breaks early ({err})") from err
    except (nb.filebasedimages.ImageFileError, OSError, ValueError) as err:
        raise InputImageError(path, f"not a readable NIfTI image ({err})") from err
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    return image, data


def check_geometry(path: str | os.PathLike, image: nb.Nifti1Image, data: np.ndarray) -> None:
    """Refuse what cannot be a head volume: wrong dimensionality, too few voxels or too small a
    field of view, voxel sizes out of :data:`VOXEL_MM`, a singular or non-finite affine."""
    if data.ndim != 3:
        raise InputImageError(
            path, f"{data.ndim}-D image ({_shape_text(data.shape)}); msxai needs one 3-D volume"
        )
    if min(data.shape) < MIN_VOXELS:
        raise InputImageError(
            path,
            f"only {min(data.shape)} voxel(s) along one axis ({_shape_text(data.shape)}); "
            f"a head volume needs at least {MIN_VOXELS}",
        )
    affine = image.affine
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-6:
        raise InputImageError(
            path, "singular or non-finite affine in the header: voxel positions are unknown"
        )
    voxel = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    low, high = VOXEL_MM
    if voxel.min() < low or voxel.max() > high:
        sizes = "×".join(f"{v:.3g}" for v in voxel)
        raise InputImageError(path, f"voxel size {sizes} mm is outside {low}–{high} mm")
    extent = voxel * np.asarray(data.shape)
    if extent.min() < MIN_FIELD_OF_VIEW_MM:
        spans = "×".join(f"{e:.0f}" for e in extent)
        raise InputImageError(
            path, f"field of view {spans} mm cannot hold a head (< {MIN_FIELD_OF_VIEW_MM:.0f} mm)"
        )


def check_intensities(path: str | os.PathLike, data: np.ndarray) -> None:
    """Refuse images without contrast: all zero, constant, or without finite values."""
    finite = data[np.isfinite(data)]
    if finite.size == 0:
        raise InputImageError(path, "no finite voxel values (all NaN or infinite)")
    if finite.min() == finite.max():
        raise InputImageError(path, f"every voxel has the same value ({finite.min():g})")


def check_image(path: str | os.PathLike) -> nb.Nifti1Image:
    """Run every check on one anatomical image; return it loaded."""
    image, data = read_volume(path)
    check_geometry(path, image, data)
    check_intensities(path, data)
    return image


def check_lesion_mask(path: str | os.PathLike, image: nb.Nifti1Image) -> None:
    """A lesion mask must be readable and lie on its image's voxel grid (same shape and affine):
    it is moved with the image's transform, so a mask on another grid would land elsewhere."""
    mask, data = read_volume(path)
    if data.shape != image.shape[:3] or not np.allclose(mask.affine, image.affine, atol=1e-3):
        raise InputImageError(
            path,
            f"lesion mask on another voxel grid ({_shape_text(data.shape)}) than its image "
            f"({_shape_text(image.shape[:3])}); resample it onto the image first",
        )
    if not np.all(np.isfinite(data)):
        raise InputImageError(path, "lesion mask holds non-finite values")


def screen(
    images: list[tuple[str, str | None]],
) -> tuple[list[tuple[str, str | None]], list[Rejection]]:
    """Split ``(image, lesion mask or None)`` pairs into the usable ones and the rejections."""
    usable, rejected = [], []
    for image_path, mask_path in images:
        try:
            image = check_image(image_path)
            if mask_path is not None:
                check_lesion_mask(mask_path, image)
        except InputImageError as err:
            rejected.append(Rejection(err.path, err.problem))
        else:
            usable.append((image_path, mask_path))
    return usable, rejected
