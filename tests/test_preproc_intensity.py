"""Min-max scaling, white-matter classes and lesion filling on small synthetic volumes."""

import numpy as np
import pytest

from msxai_bids.preprocessing.intensity import minmax_scale
from msxai_bids.preprocessing.lesion_fill import fill_lesions, kmeans_1d, white_matter


def test_minmax_maps_brain_to_unit_interval_and_zeroes_background():
    rng = np.random.default_rng(0)
    image = rng.normal(500.0, 80.0, (12, 10, 8))
    mask = np.zeros(image.shape, dtype=np.uint8)
    mask[2:10, 2:8, 2:6] = 1
    image[0, 0, 0] = 5000.0  # skull brighter than any brain voxel must not set the scale
    scaled = minmax_scale(image, mask)
    inside = scaled[mask > 0]
    assert scaled.dtype == np.float32
    assert inside.min() == 0.0 and inside.max() == pytest.approx(1.0)
    assert np.all(scaled[mask == 0] == 0.0)
    expected = (image[mask > 0] - image[mask > 0].min()) / np.ptp(image[mask > 0])
    np.testing.assert_allclose(inside, expected, rtol=1e-5)


def test_minmax_refuses_empty_or_constant_brain():
    with pytest.raises(ValueError, match="empty"):
        minmax_scale(np.ones((4, 4, 4)), np.zeros((4, 4, 4)))
    with pytest.raises(ValueError, match="constant"):
        minmax_scale(np.ones((4, 4, 4)), np.ones((4, 4, 4)))


def test_kmeans_1d_separates_three_intensity_classes():
    rng = np.random.default_rng(4)
    truth = rng.integers(0, 3, 3000)
    values = np.array([0.1, 0.5, 0.62])[truth] + rng.normal(0, 0.02, truth.size)
    labels = kmeans_1d(values, 3)
    assert np.mean(labels == truth) > 0.97  # centres start at quantiles: classes come out ordered


def _layered_brain(rng):
    """3-tissue FLAIR-like volume (CSF 0.1, WM 0.5, GM 0.62) and a T1w-like one (WM brightest)."""
    shape = (30, 30, 20)
    tissue = np.zeros(shape, dtype=int)
    tissue[5:25, 5:25, :] = 1  # CSF
    tissue[7:23, 7:23, :] = 3  # GM
    tissue[10:20, 10:20, :] = 2  # WM
    flair = np.choose(tissue, [0.0, 0.1, 0.5, 0.62]) + rng.normal(0, 0.02, shape)
    flair = flair.astype(np.float32)
    t1 = np.choose(tissue, [0.0, 0.12, 0.85, 0.55])
    return flair, t1, tissue


def test_white_matter_class_is_named_by_template_not_by_flair_order():
    flair, t1, tissue = _layered_brain(np.random.default_rng(1))
    wm = white_matter(flair, tissue > 0, t1)
    truth = tissue == 2
    assert (wm & truth).sum() / truth.sum() > 0.95
    assert (wm & ~truth).sum() / wm.sum() < 0.05


def test_fill_lesions_draws_from_slice_nawm_with_half_the_spread():
    rng = np.random.default_rng(2)
    flair, _, tissue = _layered_brain(rng)
    lesion = np.zeros(flair.shape, dtype=np.uint8)
    lesion[13:17, 13:17, 8:12] = 1
    flair[lesion > 0] = 1.0  # hyperintense lesion
    wm = tissue == 2
    filled = fill_lesions(flair, lesion, wm, tissue > 0, np.random.default_rng(3))
    changed = filled != flair
    assert changed.any() and not changed[tissue == 0].any()
    assert not changed[:, :, :7].any() and not changed[:, :, 13:].any()
    values = filled[lesion > 0]
    assert abs(values.mean() - 0.5) < 0.01
    assert values.std() == pytest.approx(0.01, rel=0.35)  # NAWM std 0.02, halved
    unchanged_slice = filled[..., 3] == flair[..., 3]
    assert unchanged_slice.all()


def test_fill_lesions_needs_white_matter():
    flair = np.ones((6, 6, 6))
    lesion = np.zeros((6, 6, 6))
    lesion[3, 3, 3] = 1
    with pytest.raises(ValueError, match="white matter"):
        fill_lesions(
            flair, lesion, np.zeros_like(lesion), np.ones_like(lesion), np.random.default_rng()
        )
