"""Faithfulness by region perturbation (Samek et al. 2017): do the top regions carry the logit?

The grid is cut into cubes; the cubes inside the brain are replaced, a few more per step, by the
brain's mean intensity, in the order of the heatmap (most relevant first, MoRF) or at random,
and the network's logit is read after every step. The area over the perturbation curve (AOPC),
the mean drop of the logit over the steps, is larger for a map whose top regions are the ones the
decision rests on; the area between the MoRF and the random curve says by how much.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

#: Edge of the cubes, in voxels (4 voxels of 2 mm: 8 mm).
REGION_SIZE = 4
#: Perturbation steps, and the share of the brain's cubes each step adds.
STEPS = 20
STEP_SHARE = 0.005


def cube_regions(within: np.ndarray, size: int = REGION_SIZE) -> np.ndarray:
    """Label each voxel of ``within`` with its cube of ``size``³ voxels (0, 1, …); −1 elsewhere."""
    index = np.indices(within.shape).reshape(3, -1) // size
    cube = np.ravel_multi_index(tuple(index), tuple(-(-n // size) for n in within.shape))
    labels = np.full(within.size, -1, np.int64)
    inside = within.reshape(-1).astype(bool)
    labels[inside] = np.unique(cube[inside], return_inverse=True)[1]
    return labels.reshape(within.shape)


def most_relevant_first(relevance: np.ndarray, regions: np.ndarray) -> np.ndarray:
    """Region labels by summed relevance, largest first (ties by label)."""
    inside = regions >= 0
    sums = np.bincount(regions[inside], weights=relevance[inside].astype(np.float64))
    return np.argsort(-sums, kind="stable")


def steps_of(n_regions: int, steps: int = STEPS, share: float = STEP_SHARE) -> list[int]:
    """Regions perturbed after step 0, 1, …, ``steps``: multiples of ⌈share · n_regions⌉."""
    per_step = max(1, int(np.ceil(share * n_regions)))
    return [min(k * per_step, n_regions) for k in range(steps + 1)]


def perturbation_logits(
    model: nn.Module,
    volume: np.ndarray,
    regions: np.ndarray,
    order: np.ndarray,
    counts: Sequence[int],
    *,
    fill: float,
    batch_size: int = 4,
) -> np.ndarray:
    """The logit after replacing the first ``counts[k]`` regions of ``order`` by ``fill``.

    Parameters
    ----------
    model : nn.Module
        Network mapping (N, 1, X, Y, Z) to logits (N, 1), in eval mode.
    volume : np.ndarray of shape (X, Y, Z)
    regions : np.ndarray of int, shape (X, Y, Z)
        :func:`cube_regions` labels.
    order : np.ndarray of region labels
    counts : sequence of int
        Regions perturbed at each step (0 first: the unperturbed logit).

    Returns
    -------
    np.ndarray of shape (len(counts),), float64
    """
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    voxel_rank = np.where(regions >= 0, rank[np.maximum(regions, 0)], len(order))
    parameter = next(model.parameters())
    logits = []
    for start in range(0, len(counts), batch_size):
        batch = np.stack(
            [np.where(voxel_rank < n, fill, volume) for n in counts[start : start + batch_size]]
        )
        inputs = torch.as_tensor(batch[:, None], dtype=parameter.dtype, device=parameter.device)
        with torch.no_grad():
            logits.append(model(inputs)[:, 0].double().cpu().numpy())
    return np.concatenate(logits)


def area_over_curve(logits: np.ndarray) -> float:
    """AOPC: the mean drop of the logit from the unperturbed one over the steps, step 0 included."""
    return float(np.mean(logits[0] - logits))
