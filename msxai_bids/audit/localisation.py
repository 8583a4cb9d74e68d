"""Localisation against known truth: how much of a heatmap falls on the lesions.

Relevance mass accuracy is the paper's Eq. 2 (the share of positive relevance inside the
lesions); relevance rank accuracy (Arras et al. 2022) is the share of the map's K most positive
voxels that are lesion, K being the lesion's size. Neither means anything alone: a uniform map
scores the lesion coverage on both, and the FLAIR intensity itself, used as a map, finds bright
lesions without any model. The baselines here put those numbers beside each method's.
"""

from __future__ import annotations

import numpy as np

from msxai_bids.explain.lesions import lesion_coverage, lesion_relevance


def mass_accuracy(relevance: np.ndarray, truth: np.ndarray) -> float:
    """Share of positive relevance inside ``truth`` (paper Eq. 2); NaN if none is positive."""
    return lesion_relevance(relevance, truth)


def rank_accuracy(relevance: np.ndarray, truth: np.ndarray, within: np.ndarray) -> float:
    """Share of the K highest voxels of ``relevance`` within ``within`` that are in ``truth``.

    Parameters
    ----------
    relevance : np.ndarray of shape (X, Y, Z)
    truth, within : bool arrays of shape (X, Y, Z)
        The known relevant voxels (lesions) and where the ranking runs (the brain);
        K = |truth ∩ within|. Ties at the K-th value are broken by position.

    Returns
    -------
    float
        In [0, 1]; NaN when ``truth`` has no voxel ``within``.
    """
    truth, within = truth.astype(bool), within.astype(bool)
    inside = truth[within]
    k = int(inside.sum())
    if k == 0:
        return float("nan")
    top = np.argpartition(-relevance[within].astype(np.float64), k - 1)[:k]
    return float(inside[top].mean())


def uniform_map_accuracy(truth: np.ndarray, within: np.ndarray) -> float:
    """Mass and (expected) rank accuracy of a uniform map: the lesion coverage of ``within``."""
    return lesion_coverage(truth, within)


def intensity_map(volume: np.ndarray, within: np.ndarray) -> np.ndarray:
    """The input image used as a heatmap: its intensities inside ``within``, zero elsewhere."""
    return np.where(within, volume, 0.0).astype(np.float32)
