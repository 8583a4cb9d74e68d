"""Registration QC: NMI and Dice behave as measures, misregistration and a foreign contrast are
flagged, the figure is drawn."""

import nibabel as nb
import numpy as np
import pytest

from msxai_bids.grid import CNN_GRID
from msxai_bids.preprocessing.qc import (
    contrast_problems,
    dice,
    normalised_mutual_information,
    plot_edges,
    registration_metrics,
    transform_problems,
    white_grey_ratio,
)
from msxai_bids.preprocessing.spaces import template_brain, template_mask


def test_nmi_ranges_from_independent_to_identical():
    rng = np.random.default_rng(0)
    a, b = rng.random(20_000), rng.random(20_000)
    assert normalised_mutual_information(a, a) == pytest.approx(2.0)
    assert normalised_mutual_information(a, b) == pytest.approx(1.0, abs=0.02)
    assert normalised_mutual_information(a, 5 - 3 * a) == pytest.approx(2.0)  # contrast-blind


def test_dice_of_half_overlapping_masks():
    a = np.zeros((10, 10, 10), bool)
    b = np.zeros_like(a)
    a[:6], b[3:9] = True, True
    assert dice(a, b) == pytest.approx(0.5)
    assert dice(a, a) == 1.0 and dice(a * 0, b * 0) == 0.0


@pytest.fixture(scope="module")
def template_pair():
    return template_brain().numpy(), template_mask().numpy()


def test_template_on_itself_is_plausible(template_pair):
    template, mask = template_pair
    flair_like = np.where(mask > 0, template.max() - template, 0)  # inverted contrast
    metrics = registration_metrics(flair_like, mask, template, mask)
    assert metrics["plausible"] and metrics["reason"] == ""
    assert metrics["dice"] == 1.0


def test_shifted_image_is_flagged_with_reasons(template_pair):
    template, mask = template_pair
    shift = 6  # voxels = 12 mm
    metrics = registration_metrics(
        np.roll(template, shift, axis=1), np.roll(mask, shift, axis=1), template, mask
    )
    assert not metrics["plausible"]
    assert "Dice" in metrics["reason"] and "mutual information" in metrics["reason"]


def test_edge_figure_is_written(tmp_path, template_pair):
    template, _ = template_pair
    image = nb.Nifti1Image(template, CNN_GRID.affine)
    out = plot_edges(image, image, tmp_path / "edges.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_a_bright_rim_outside_the_brain_does_not_darken_the_edge_figure(tmp_path, template_pair):
    """Bias correction can leave the edges of the field of view 20-40 times brighter than the
    brain; the brain must still be drawn in the same greys."""
    from matplotlib.image import imread

    template, _ = template_pair
    brain = nb.Nifti1Image(template, CNN_GRID.affine)
    rimmed = template.copy()
    rimmed[-4:] = rimmed[:, -4:] = 40 * template.max()
    greys = [
        imread(plot_edges(nb.Nifti1Image(image, CNN_GRID.affine), brain, tmp_path / name))
        for image, name in ((template, "plain.png"), (rimmed, "rimmed.png"))
    ]
    plain, with_rim = (grey[..., :3].mean() for grey in greys)
    assert with_rim == pytest.approx(plain, rel=0.25)


def test_transform_problems_name_a_mirror_and_an_implausible_scale():
    assert transform_problems(np.diag([1.05, 0.95, 1.0, 1.0])) == []
    assert "mirrors" in transform_problems(np.diag([-1.0, 1.0, 1.0, 1.0]))[0]
    assert "scales" in transform_problems(np.diag([2.0, 1.0, 1.0, 1.0]))[0]


def test_white_and_grey_matter_order_tells_t1w_from_flair(template_pair):
    template, mask = template_pair
    inverted = np.where(mask > 0, template.max() - template, 0)
    assert white_grey_ratio(template, template, mask) > 1.1
    assert white_grey_ratio(inverted, template, mask) < 0.9
    assert contrast_problems(1.23, "T1w") == contrast_problems(0.9, "FLAIR") == []
    assert contrast_problems(0.9, "T2w") == contrast_problems(1.23, "unknownsuffix") == []
    assert contrast_problems(1.05, "FLAIR") == contrast_problems(0.95, "T1w") == []  # margin
    (problem,) = contrast_problems(1.23, "FLAIR")
    assert problem == (
        "white matter is brighter than grey matter (median ratio 1.23); in FLAIR it is darker: "
        "is the image of another contrast?"
    )
    assert "darker than grey matter" in contrast_problems(0.85, "T1w")[0]
    t1w_named_flair = registration_metrics(template, mask, template, mask, contrast="FLAIR")
    assert not t1w_named_flair["plausible"]
    assert t1w_named_flair["white_grey_ratio"] > 1.1
