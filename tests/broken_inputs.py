"""Broken participants, one per way a real dataset goes wrong, written next to good ones.

Each case copies a good participant's FLAIR (and lesion mask) under a new label and breaks one
thing, the way users' data breaks: a localiser saved as the scan, a download cut short, a
DataLad dataset whose content was never fetched, a mask drawn on a cropped copy.
"""

from __future__ import annotations

import gzip
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import nibabel as nb
import numpy as np

LESIONS = Path("derivatives") / "lesions"


def flair_path(bids_dir: Path, label: str) -> Path:
    return bids_dir / f"sub-{label}" / "anat" / f"sub-{label}_FLAIR.nii.gz"


def mask_path(bids_dir: Path, label: str) -> Path:
    anat = bids_dir / LESIONS / f"sub-{label}" / "anat"
    return anat / f"sub-{label}_space-orig_label-lesion_mask.nii.gz"


def _save(image: nb.Nifti1Image, data: np.ndarray, target: Path, affine=None) -> None:
    header = image.header.copy()
    out = nb.Nifti1Image(data, image.affine if affine is None else affine, header)
    if affine is not None:
        out.set_sform(affine, code=1)
        out.set_qform(affine, code=0)
    nb.save(out, target)


def one_slice(image: nb.Nifti1Image, target: Path) -> None:
    _save(image, np.asanyarray(image.dataobj)[:, :, 40:41], target)


def voxels_8mm(image: nb.Nifti1Image, target: Path) -> None:
    data = np.asanyarray(image.dataobj)[::4, ::4, ::4]
    _save(image, data, target, affine=np.diag([8.0, 8.0, 8.0, 1.0]))


def voxels_02mm(image: nb.Nifti1Image, target: Path) -> None:
    _save(image, np.asanyarray(image.dataobj), target, affine=np.diag([0.2, 0.2, 0.2, 1.0]))


def small_field_of_view(image: nb.Nifti1Image, target: Path) -> None:
    """A slab of 25 slices of 2 mm: enough voxels, but 50 mm cannot hold a head."""
    _save(image, np.asanyarray(image.dataobj)[:, :, 30:55], target)


def non_finite_affine(image: nb.Nifti1Image, target: Path) -> None:
    affine = image.affine.copy()
    affine[0, 0] = np.nan
    _save_with_sform(image, affine, target)


def all_zero(image: nb.Nifti1Image, target: Path) -> None:
    _save(image, np.zeros(image.shape, np.float32), target)


def _save_with_sform(image: nb.Nifti1Image, sform: np.ndarray, target: Path) -> None:
    """Save with an sform that the header says to use, one nibabel refuses to build an image
    from."""
    header = image.header.copy()
    header.set_sform(sform, code=1)
    header.set_qform(None, code=0)
    nb.save(nb.Nifti1Image(np.asanyarray(image.dataobj), None, header), target)


def singular_affine(image: nb.Nifti1Image, target: Path) -> None:
    _save_with_sform(image, np.zeros((4, 4)), target)


def four_d(image: nb.Nifti1Image, target: Path) -> None:
    data = np.asanyarray(image.dataobj)
    _save(image, np.stack([data, data], axis=-1), target)


def truncated_gzip(image: nb.Nifti1Image, target: Path) -> None:
    nb.save(image, target)
    payload = target.read_bytes()
    target.write_bytes(payload[: len(payload) // 2])


def random_bytes(image: nb.Nifti1Image, target: Path) -> None:
    target.write_bytes(gzip.compress(np.random.default_rng(0).bytes(4096)))


def annexed_not_fetched(image: nb.Nifti1Image, target: Path) -> None:
    """What ``datalad clone`` leaves before ``datalad get``: a link into an absent annex."""
    os.symlink("../../.git/annex/objects/Xk/3q/MD5E-s1234--abc.nii.gz/MD5E-s1234--abc.nii.gz",
               target)  # fmt: skip


#: case → (how to break the FLAIR, words the one-line rejection must contain)
IMAGE_CASES: dict[str, tuple[Callable[[nb.Nifti1Image, Path], None], str]] = {
    "oneslice": (one_slice, "only 1 voxel(s) along one axis"),
    "vox8mm": (voxels_8mm, "voxel size 8×8×8 mm is outside"),
    "vox02mm": (voxels_02mm, "voxel size 0.2×0.2×0.2 mm is outside"),
    "smallfov": (small_field_of_view, "field of view"),
    "allzero": (all_zero, "every voxel has the same value (0)"),
    "nanaffine": (non_finite_affine, "singular or non-finite affine"),
    "singular": (singular_affine, "singular or non-finite affine"),
    "fourd": (four_d, "4-D image"),
    "truncated": (truncated_gzip, "compressed data ends or breaks early"),
    "randombytes": (random_bytes, "not a readable NIfTI image"),
    "annexed": (annexed_not_fetched, "broken symbolic link"),
}


def mask_on_cropped_grid(mask: nb.Nifti1Image, target: Path) -> None:
    _save(mask, np.asanyarray(mask.dataobj)[5:-5, 5:-5, :], target)


def mask_truncated(mask: nb.Nifti1Image, target: Path) -> None:
    truncated_gzip(mask, target)


#: case → (how to break the lesion mask of a good FLAIR, words the rejection must contain)
MASK_CASES: dict[str, tuple[Callable[[nb.Nifti1Image, Path], None], str]] = {
    "maskgrid": (mask_on_cropped_grid, "lesion mask on another voxel grid"),
    "maskcorrupt": (mask_truncated, "compressed data ends or breaks early"),
}


def add_broken_participant(bids_dir: Path, source: str, label: str, case: str) -> Path:
    """Copy participant ``source`` to ``label`` and break it as ``case`` says; return the
    broken file (the FLAIR, or the lesion mask for a mask case)."""
    flair, mask = flair_path(bids_dir, label), mask_path(bids_dir, label)
    flair.parent.mkdir(parents=True)
    shutil.copy(flair_path(bids_dir, source).with_suffix("").with_suffix(".json"),
                flair.with_suffix("").with_suffix(".json"))  # fmt: skip
    with (bids_dir / "participants.tsv").open("a") as table:
        table.write(f"sub-{label}\tMS\t40\tF\n")
    if case in IMAGE_CASES:
        IMAGE_CASES[case][0](nb.load(flair_path(bids_dir, source)), flair)
        return flair
    shutil.copy(flair_path(bids_dir, source), flair)
    mask.parent.mkdir(parents=True)
    shutil.copy(mask_path(bids_dir, source).with_suffix("").with_suffix(".json"),
                mask.with_suffix("").with_suffix(".json"))  # fmt: skip
    MASK_CASES[case][0](nb.load(mask_path(bids_dir, source)), mask)
    return mask
