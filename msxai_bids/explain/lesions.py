"""How much of a heatmap's positive relevance falls on the lesions (Eitel et al. 2019, Eq. 2).

The paper found 5.15 % of positive relevance inside lesions that cover 0.41 % of the voxels; the
ratio of :func:`lesion_relevance` to :func:`lesion_coverage` says how strongly the network's
evidence concentrates on lesions compared with spreading it evenly. Across participants,
:func:`lesion_relevance_correlation` relates lesion load to total relevance with a permutation
test, as the paper's Fig. 4 does.
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


def lesion_relevance_correlation(
    lesion_sums: np.ndarray,
    relevance_sums: np.ndarray,
    *,
    n_permutations: int = 10_000,
    seed: int = 0,
) -> tuple[float, float]:
    """Pearson correlation of lesion load and relevance sum across participants.

    Parameters
    ----------
    lesion_sums : np.ndarray of shape (n_participants,)
        Lesion voxels (or volume) per participant.
    relevance_sums : np.ndarray of shape (n_participants,)
        Total relevance of each participant's heatmap.
    n_permutations : int
        Random relabellings for the null distribution.
    seed : int
        Seed of the permutations, for reproducible p-values.

    Returns
    -------
    r : float
        Pearson correlation coefficient.
    p : float
        Two-sided permutation p-value, (1 + #{|r_perm| ≥ |r|}) / (1 + n_permutations).
    """
    x = np.asarray(lesion_sums, dtype=np.float64)
    y = np.asarray(relevance_sums, dtype=np.float64)
    r = float(np.corrcoef(x, y)[0, 1])
    rng = np.random.default_rng(seed)
    shuffled = rng.permuted(np.broadcast_to(y, (n_permutations, y.size)), axis=1)
    y_centred = shuffled - shuffled.mean(axis=1, keepdims=True)
    x_centred = x - x.mean()
    null = y_centred @ x_centred / (np.linalg.norm(y_centred, axis=1) * np.linalg.norm(x_centred))
    exceed = np.count_nonzero(np.abs(null) >= abs(r) - 1e-12)
    return r, (1 + exceed) / (1 + n_permutations)
