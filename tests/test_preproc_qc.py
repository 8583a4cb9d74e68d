"""Registration QC: NMI and Dice behave as measures, misregistration is flagged, figure is drawn."""

import nibabel as nb
import numpy as np
import pytest

from msxai_bids.grid import CNN_GRID
from msxai_bids.preprocessing.qc import (
    dice,
    normalised_mutual_information,
    plot_edges,
    registration_metrics,
    transform_problems,
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


def test_transform_problems_name_a_mirror_and_an_implausible_scale():
    assert transform_problems(np.diag([1.05, 0.95, 1.0, 1.0])) == []
    assert "mirrors" in transform_problems(np.diag([-1.0, 1.0, 1.0, 1.0]))[0]
    assert "scales" in transform_problems(np.diag([2.0, 1.0, 1.0, 1.0]))[0]
