"""Lesion relevance (paper, Eq. 2) and lesion coverage."""

from __future__ import annotations

import numpy as np
import pytest

from msxai_bids.explain.lesions import lesion_coverage, lesion_relevance


def test_lesion_relevance_counts_positive_relevance_only():
    relevance = np.array([3.0, 1.0, -5.0, 4.0, 0.0]).reshape(5, 1, 1)
    mask = np.array([1, 0, 1, 0, 1]).reshape(5, 1, 1)
    assert lesion_relevance(relevance, mask) == pytest.approx(3.0 / 8.0)
    assert lesion_relevance(relevance, np.ones_like(mask)) == pytest.approx(1.0)
    assert lesion_relevance(relevance, np.zeros_like(mask)) == 0.0


def test_lesion_relevance_without_positive_relevance_is_nan():
    assert np.isnan(lesion_relevance(-np.ones((2, 2, 2)), np.ones((2, 2, 2), dtype=bool)))


def test_evenly_spread_relevance_matches_coverage():
    rng = np.random.default_rng(1)
    mask = rng.random((20, 20, 20)) < 0.05
    assert lesion_relevance(np.ones(mask.shape), mask) == pytest.approx(lesion_coverage(mask))


def test_coverage_over_grid_or_brain():
    lesions = np.zeros((10, 10, 10), dtype=bool)
    lesions[:2, :2, :2] = True  # 8 voxels, 4 of them inside the brain
    brain = np.zeros_like(lesions)
    brain[1:9] = True  # 800 voxels
    assert lesion_coverage(lesions) == pytest.approx(8 / 1000)
    assert lesion_coverage(lesions, brain) == pytest.approx(4 / 800)


def test_mask_must_match_the_heatmap():
    with pytest.raises(ValueError, match="differ in shape"):
        lesion_relevance(np.ones((2, 2, 2)), np.ones((2, 2, 3)))
