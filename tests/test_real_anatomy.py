"""Preprocessing on real anatomy (Colin27), posed, restored, resliced, with and without scalp.

Each case runs msxai's native-space steps in the workflow's order (``register_native``: first
mask, first registration, template-prior mask, N4, final registration, final mask). A case's
transform is compared with the unposed head's composed with the case's known pose, so the
test needs no ground truth beyond the pose itself.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import ants
import nibabel as nb
import numpy as np
import pytest
from real_anatomy import CASES, needs_colin27, rigid

from msxai_bids.preprocessing import registration
from msxai_bids.preprocessing.accuracy import displacement_mm
from msxai_bids.preprocessing.pipeline import register_native
from msxai_bids.preprocessing.qc import registration_metrics
from msxai_bids.preprocessing.resampling import mask_to_grid, to_grid
from msxai_bids.preprocessing.spaces import template_brain, template_mask

pytestmark = [pytest.mark.slow, needs_colin27]


@cache
def preprocess(name: str, folder: Path) -> dict:
    """Template → native affine (RAS), N4 image, brain mask and transform file of a case."""
    case_folder = folder / name
    case_folder.mkdir()
    nb.save(CASES[name].image(), case_folder / "scan.nii.gz")
    image = ants.image_read(str(case_folder / "scan.nii.gz"), pixeltype="float")
    result = register_native(image, case_folder, seed=3)
    return {
        "affine": registration.template_to_native_ras(result.xfm),
        "image": result.corrected,
        "mask": result.mask,
        "xfm": result.xfm,
    }


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("colin27")


def _consistency(folder: Path, name: str, reference: str) -> np.ndarray:
    """Distances (mm) between a case's transform and the reference's moved by its pose."""
    expected = CASES[name].pose() @ preprocess(reference, folder)["affine"]
    return displacement_mm(preprocess(name, folder)["affine"], expected)


@pytest.mark.parametrize(
    ("name", "reference"),
    [
        ("pose-a", "unposed"),
        ("pose-b-las", "unposed"),
        ("pose-a-sagittal", "unposed"),
        ("pose-a-thick", "unposed"),
        ("pose-b-sagittal-thick", "unposed"),
        ("pose-a-t1w", "unposed-t1w"),
    ],
)
def test_registration_is_consistent_across_poses_orientations_and_grids(folder, name, reference):
    error = _consistency(folder, name, reference)
    assert error.mean() <= 1.0, f"{name}: mean {error.mean():.2f} mm"
    assert error.max() <= 2.0, f"{name}: max {error.max():.2f} mm"


@pytest.mark.parametrize(
    ("with_scalp", "without"),
    [("pose-a", "pose-a-noscalp"), ("pose-a-thick", "pose-a-thick-noscalp")],
)
def test_scalp_on_and_off_register_alike(folder, with_scalp, without):
    a, b = preprocess(with_scalp, folder)["affine"], preprocess(without, folder)["affine"]
    assert displacement_mm(a, b).mean() <= 1.0


@pytest.mark.parametrize("name", ["pose-a-thick", "pose-b-sagittal-thick", "pose-a"])
def test_brain_mask_stays_inside_the_template_brain(folder, name):
    result = preprocess(name, folder)
    on_grid = mask_to_grid(result["mask"], result["xfm"]).numpy() > 0
    outside = (on_grid & (template_mask().numpy() == 0)).sum() / on_grid.sum()
    assert outside <= 0.10, f"{name}: {outside:.1%} of the brain mask outside the template brain"


def _qc(
    result: dict, template_to_native: np.ndarray, folder: Path, contrast: str | None = None
) -> dict:
    xfm = registration.write_itk_affine(
        registration.transform_from_ras(template_to_native), folder / "qc_xfm.txt"
    )
    return registration_metrics(
        to_grid(result["image"], xfm).numpy(),
        mask_to_grid(result["mask"], xfm).numpy(),
        template_brain().numpy(),
        template_mask().numpy(),
        template_to_native,
        contrast=contrast,
    )


@pytest.mark.parametrize("name", ["unposed", "pose-a-thick", "pose-a-noscalp", "pose-a-t1w"])
def test_qc_is_silent_on_correct_and_loud_on_wrong_registrations(folder, name):
    result = preprocess(name, folder)
    correct = result["affine"]
    assert _qc(result, correct, folder)["plausible"], _qc(result, correct, folder)["reason"]
    wrong = {
        "shifted 15 mm": correct @ rigid((0, 0, 0), (0, 15, 0)),
        "rotated 10°": correct @ rigid((10, 0, 0), (0, 0, 0)),
        "left-right flip": correct @ np.diag([-1.0, 1.0, 1.0, 1.0]),
    }
    for what, affine in wrong.items():
        assert not _qc(result, affine, folder)["plausible"], f"{name} {what} passed QC"


@pytest.mark.parametrize(
    ("name", "named", "plausible"),
    [("unposed", "FLAIR", True), ("pose-a-t1w", "T1w", True), ("pose-a-t1w", "FLAIR", False)],
)
def test_qc_catches_a_t1w_scan_named_flair(folder, name, named, plausible):
    result = preprocess(name, folder)
    qc = _qc(result, result["affine"], folder, contrast=named)
    assert qc["plausible"] == plausible, qc
    if not plausible:
        assert qc["reason"].startswith("white matter is brighter than grey matter"), qc["reason"]
