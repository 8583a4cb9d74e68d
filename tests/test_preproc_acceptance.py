"""Acceptance: on synthetic cohorts the recovered pose is within 1 mm (mean) of the truth.

The synthetic anatomy is the ICBM 2009a symmetric template while msxai registers to
MNI152NLin2009cAsym; the truth is the synthetic pose composed with the measured
template-to-template affine (see ``msxai_bids.preprocessing.accuracy``).
"""

import ants
import numpy as np
import pytest

from msxai_bids.preprocessing.accuracy import (
    displacement_mm,
    expected_template_to_native,
    template_difference,
)
from msxai_bids.preprocessing.pipeline import register_native
from msxai_bids.preprocessing.registration import template_to_native_ras
from msxai_bids.synth import load_truth, make_cohort

pytestmark = pytest.mark.slow


def test_template_difference_is_small_but_not_negligible():
    shift = displacement_mm(template_difference(), np.eye(4))
    assert 0.2 < shift.mean() < 1.5 and shift.max() < 3.0


@pytest.mark.parametrize("voxel_mm", [1.0, 2.0])
@pytest.mark.parametrize("skull", [False, True])
def test_pose_is_recovered(tmp_path, voxel_mm, skull):
    bids = make_cohort(
        tmp_path / "bids", n_patients=1, n_controls=0, seed=int(10 * voxel_mm + skull),
        native_resolution=voxel_mm, skull=skull,
    )  # fmt: skip
    flair = next(bids.glob("sub-*/anat/*_FLAIR.nii.gz"))
    truth = load_truth(bids, flair.name.split("_")[0][4:])
    image = ants.image_read(str(flair), pixeltype="float")
    estimate = template_to_native_ras(register_native(image, tmp_path).xfm)
    error = displacement_mm(estimate, expected_template_to_native(truth.native_to_template))
    assert error.mean() <= 1.0, f"{truth.orientation}: mean {error.mean():.2f} mm"
    assert error.max() <= 2.0, f"{truth.orientation}: max {error.max():.2f} mm"
