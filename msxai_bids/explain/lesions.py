"""How much of a heatmap's positive relevance falls on the lesions (Eitel et al. 2019, Eq. 2).

The paper found 5.15 % of positive relevance inside lesions that cover 0.41 % of the voxels; the
ratio of :func:`lesion_relevance` to :func:`lesion_coverage` says how strongly the network's
evidence concentrates on lesions compared with spreading it evenly.
"""

from __future__ import annotations

import numpy as np


def lesion_relevance(relevance: np.ndarray, lesion_mask: np.ndarray) -> float:
    """Share of positive relevance inside the lesions: Σ(mask·R⁺) / ΣR⁺ (paper, Eq. 2).

    Parameters
    ----------
    relevance : np.ndarray of shape (X, Y, Z)
        Heatmap; only its positive part (evidence for the positive label) counts.
    lesion_mask : np.ndarray of shape (X, Y, Z)
        Lesion voxels, boolean or 0/1, on the heatmap's grid.

    Returns
    -------
    float
        In [0, 1]; NaN when the heatmap has no positive relevance.
    """
    if relevance.shape != lesion_mask.shape:
        raise ValueError(f"heatmap {relevance.shape} and mask {lesion_mask.shape} differ in shape")
    positive = np.clip(relevance.astype(np.float64), 0.0, None)
    total = positive.sum()
    return float(positive[lesion_mask.astype(bool)].sum() / total) if total > 0 else float("nan")


def lesion_coverage(lesion_mask: np.ndarray, brain_mask: np.ndarray | None = None) -> float:
    """Fraction of voxels that are lesion: lesion ∩ brain voxels / brain voxels.

    With ``brain_mask=None`` the denominator is every voxel of the grid, the reading that
    matches Eq. 2, whose denominator also runs over the whole heatmap. With a brain mask the
    number is the lesion share of brain tissue, which does not depend on the field of view.
    """
    lesions = lesion_mask.astype(bool)
    if brain_mask is None:
        return float(lesions.mean())
    brain = brain_mask.astype(bool)
    return float((lesions & brain).sum() / brain.sum()) if brain.any() else float("nan")
