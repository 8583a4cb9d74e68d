"""Preprocessed volumes held in memory, and the paper's training-time augmentation.

A cohort is read once into one float32 tensor of shape (n_images, 1, 96, 114, 96) (≈ 4 MB per
image), shared by every trial and baseline of a run, so no epoch re-reads a file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import nibabel as nb
import numpy as np
import torch
from tqdm import tqdm

from msxai_bids.grid import CNN_GRID

#: Largest translation, in voxels, within the axial plane (paper: between −2 and 2 pixels).
MAX_SHIFT = 2


def load_volumes(paths: Sequence[Path], *, progress: bool = False) -> torch.Tensor:
    """Read NIfTI images on the CNN grid into one tensor.

    Parameters
    ----------
    paths : sequence of Path
        Images of shape :attr:`CNN_GRID.shape` (96, 114, 96).
    progress : bool
        Show a progress bar while reading.

    Returns
    -------
    Tensor of shape (n_images, 1, 96, 114, 96), float32
        Filled in place, so peak memory is the cohort plus one image.
    """
    volumes = torch.empty((len(paths), 1, *CNN_GRID.shape), dtype=torch.float32)
    for i, path in enumerate(tqdm(paths, desc="reading", unit="image", disable=not progress)):
        image = nb.load(path)
        if tuple(image.shape) != CNN_GRID.shape:
            raise ValueError(f"{path} has shape {image.shape}, not the CNN grid {CNN_GRID.shape}")
        volumes[i, 0] = torch.from_numpy(np.asarray(image.dataobj, dtype=np.float32))
    return volumes


def shift_zero_fill(
    volume: torch.Tensor, shifts: Sequence[int], dims: Sequence[int]
) -> torch.Tensor:
    """Translate ``volume`` by whole voxels along ``dims``; voxels moved in are zero.

    ``torch.roll`` wraps around; the wrapped slabs are blanked, which equals a translation with
    zero fill (as Keras' ``ImageDataGenerator`` with ``fill_mode="constant"``, ``cval=0``).
    """
    out = torch.roll(volume, shifts=tuple(shifts), dims=tuple(dims))
    for shift, dim in zip(shifts, dims, strict=True):
        if shift > 0:
            out.narrow(dim, 0, shift).zero_()
        elif shift < 0:
            out.narrow(dim, out.shape[dim] + shift, -shift).zero_()
    return out


def augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random sagittal flip (p = 0.5) and axial-plane translation (±2 voxels) per image.

    Parameters
    ----------
    batch : Tensor of shape (n, 1, x, y, z)
        Images in RAS voxel order: x runs left→right, so flipping x mirrors the hemispheres
        (the sagittal flip), and (x, y) spans the axial plane.
    generator : torch.Generator
        Source of randomness, so a seed fixes the augmentation.

    Returns
    -------
    Tensor of the same shape
        A new tensor; ``batch`` is left unchanged.
    """
    flips = torch.rand(len(batch), generator=generator) < 0.5
    shifts = torch.randint(-MAX_SHIFT, MAX_SHIFT + 1, (len(batch), 2), generator=generator)
    images = []
    for image, flip, (dx, dy) in zip(batch, flips, shifts.tolist(), strict=True):
        if flip:
            image = torch.flip(image, dims=(1,))
        images.append(shift_zero_fill(image, (dx, dy), dims=(1, 2)))
    return torch.stack(images)
