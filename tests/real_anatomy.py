"""Test inputs from real anatomy: Colin27 (Debian ``mricron-data``), never from ``msxai-synth``.

Colin27 is a real 1 mm T1-weighted head (``ch2.nii.gz``, with scalp) and its brain-extracted
copy (``ch2bet.nii.gz``), stored RAS on the same grid. From them this module builds the kinds
of scans users bring: a known rigid pose (the head moved in the scanner), another stored voxel
order (sagittal storage included), thick slices, and a FLAIR-like contrast; and it writes plain
BIDS datasets around them, without ``derivatives/`` or ``participants.json``.

A pose ``M`` (4×4, world mm, RAS) moves the head: the posed scan keeps its voxels and gets the
affine ``M @ A``. If a registration of the unposed head gives template → native ``T0``, a
registration of the posed head must give ``M @ T0``; tests compare the two.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import nibabel as nb
import numpy as np
import pytest
from nibabel import orientations
from scipy import ndimage
from scipy.spatial.transform import Rotation

TEMPLATES = Path("/usr/share/mricron/templates")
HEAD, BRAIN = TEMPLATES / "ch2.nii.gz", TEMPLATES / "ch2bet.nii.gz"

needs_colin27 = pytest.mark.skipif(
    not HEAD.is_file() or not BRAIN.is_file(),
    reason="needs Colin27 from Debian's mricron-data (apt-get install mricron-data; CI has it)",
)

FLAIR_KNOTS = (
    (0.0, 35.0, 80.0, 108.0, 160.0, 255.0),
    (0.0, 0.15, 1.0, 0.7, 1.1, 1.3),
)
"""Piecewise-linear map from Colin27's T1 intensities (uint8: CSF ≈ 35, grey matter ≈ 80,
white matter ≈ 108, fat ≥ 160) to a FLAIR-like contrast: suppressed CSF, grey matter brighter
than white matter, bright scalp fat."""


@dataclass(frozen=True)
class Case:
    """One real-anatomy scan: how the Colin27 head was posed, stored, sampled and contrasted."""

    name: str
    rotation_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)
    translation_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    orientation: str = "RAS"
    voxel_mm: tuple[float, float, float] = (1.0, 1.0, 1.0)
    scalp: bool = True
    contrast: str = "FLAIR"

    def pose(self) -> np.ndarray:
        """The 4×4 rigid motion of the head in world mm (RAS), rotation about the origin."""
        return rigid(self.rotation_deg, self.translation_mm)

    def image(self) -> nb.Nifti1Image:
        """The scan of this case, built from Colin27."""
        head = colin27(scalp=self.scalp)
        if self.contrast == "FLAIR":
            head = flair_like(head)
        return resliced(stored_as(posed(head, self.pose()), self.orientation), self.voxel_mm)


def rigid(rotation_deg, translation_mm) -> np.ndarray:
    """4×4 affine: rotations about x, y, z (degrees, extrinsic, in that order), then a shift."""
    affine = np.eye(4)
    affine[:3, :3] = Rotation.from_euler("xyz", rotation_deg, degrees=True).as_matrix()
    affine[:3, 3] = translation_mm
    return affine


def colin27(*, scalp: bool = True) -> nb.Nifti1Image:
    """Colin27 as float32: the whole head (``scalp=True``) or its extracted brain."""
    image = nb.load(HEAD if scalp else BRAIN)
    return nb.Nifti1Image(image.get_fdata(dtype=np.float32), image.affine)


def flair_like(image: nb.Nifti1Image) -> nb.Nifti1Image:
    """Remap Colin27's T1 contrast to a FLAIR-like one (``FLAIR_KNOTS``), scaled to ~1000."""
    data = 1000.0 * np.interp(image.get_fdata(dtype=np.float32), *FLAIR_KNOTS)
    return nb.Nifti1Image(data.astype(np.float32), image.affine)


def posed(image: nb.Nifti1Image, motion: np.ndarray) -> nb.Nifti1Image:
    """The same voxels with the head moved by ``motion`` in the world (affine ``motion @ A``)."""
    return nb.Nifti1Image(np.asanyarray(image.dataobj), motion @ image.affine)


def stored_as(image: nb.Nifti1Image, codes: str) -> nb.Nifti1Image:
    """The same scan with its voxel axes stored towards ``codes`` (e.g. ``"ASL"``: sagittal)."""
    current = orientations.io_orientation(image.affine)
    wanted = orientations.axcodes2ornt(tuple(codes))
    return image.as_reoriented(orientations.ornt_transform(current, wanted))


def resliced(image: nb.Nifti1Image, voxel_mm) -> nb.Nifti1Image:
    """Resample along the stored axes to ``voxel_mm``, blurring first like a thicker voxel.

    The blur is Gaussian with a FWHM that brings the old voxel width up to the new one, so a
    3 mm slice averages over about 3 mm of anatomy, as an acquired thick slice does.
    """
    old = np.asarray(nb.affines.voxel_sizes(image.affine))
    new = np.asarray(voxel_mm, dtype=float)
    if np.allclose(old, new):
        return image
    step = new / old
    fwhm = np.sqrt(np.maximum(new**2 - old**2, 0.0)) / old
    data = ndimage.gaussian_filter(image.get_fdata(dtype=np.float32), fwhm / 2.3548)
    shape = np.floor(np.asarray(image.shape) / step).astype(int)
    start = (step - 1.0) / 2.0
    voxel_to_old = np.eye(4)
    voxel_to_old[:3, :3] = np.diag(step)
    voxel_to_old[:3, 3] = start
    coordinates = np.meshgrid(*[start[i] + step[i] * np.arange(shape[i]) for i in range(3)],
                              indexing="ij")  # fmt: skip
    sampled = ndimage.map_coordinates(data, coordinates, order=1, mode="constant")
    return nb.Nifti1Image(sampled.astype(np.float32), image.affine @ voxel_to_old)


def write_plain_bids(
    root: Path,
    scans: Mapping[str, nb.Nifti1Image],
    *,
    suffix: str = "FLAIR",
    sessions: Mapping[str, str] | None = None,
    diagnoses: Mapping[str, str] | None = None,
) -> Path:
    """Write a plain BIDS dataset of one anatomical scan per participant.

    No ``derivatives/``, no ``participants.json``; ``participants.tsv`` only when
    ``diagnoses`` is given; ``sessions`` maps a label to its session, if any.
    """
    root.mkdir(parents=True, exist_ok=True)
    description = {"Name": "Colin27 scans", "BIDSVersion": "1.10.0", "Authors": ["msxai tests"]}
    (root / "dataset_description.json").write_text(json.dumps(description))
    (root / "README").write_text("Colin27 (mricron-data) under known poses, for msxai tests.\n")
    for label, image in scans.items():
        session = (sessions or {}).get(label)
        folder = root / f"sub-{label}" / (f"ses-{session}" if session else "") / "anat"
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"sub-{label}" + (f"_ses-{session}" if session else "") + f"_{suffix}"
        image.header.set_xyzt_units("mm")
        nb.save(image, folder / f"{stem}.nii.gz")
    if diagnoses:
        rows = ["participant_id\tdiagnosis", *(f"sub-{k}\t{v}" for k, v in diagnoses.items())]
        (root / "participants.tsv").write_text("\n".join(rows) + "\n")
    return root


POSE_A = {"rotation_deg": (8.0, -5.0, 6.0), "translation_mm": (6.0, -9.0, 4.0)}
POSE_B = {"rotation_deg": (-10.0, 7.0, -4.0), "translation_mm": (-8.0, 5.0, 10.0)}
THICK = {"voxel_mm": (1.2, 1.2, 3.0)}

#: The cases of the real-anatomy tests and benchmark, by name.
CASES = {
    case.name: case
    for case in (
        Case("unposed"),
        Case("pose-a", **POSE_A),
        Case("pose-b-las", **POSE_B, orientation="LAS"),
        Case("pose-a-sagittal", **POSE_A, orientation="ASL"),
        Case("pose-b-coronal", **POSE_B, orientation="LIP"),
        Case("pose-a-thick", **POSE_A, **THICK),
        Case("pose-b-sagittal-thick", **POSE_B, orientation="ASL", **THICK),
        Case("pose-a-noscalp", **POSE_A, scalp=False),
        Case("pose-a-thick-noscalp", **POSE_A, **THICK, scalp=False),
        Case("unposed-t1w", contrast="T1w"),
        Case("pose-a-t1w", **POSE_A, contrast="T1w"),
    )
}
