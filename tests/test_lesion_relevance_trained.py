"""LRP of a trained network points at the lesions (paper: 9.71 % of relevance on 0.41 % of voxels).

A network is trained on synthetic grid volumes whose only difference between patients and
controls is bright white-matter-like lesions; for correctly classified patients the share of
positive LRP-ε relevance inside the lesions must exceed five times the lesion coverage.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from group_cohort import draw_volumes

from msxai_bids.explain.attribution import explain
from msxai_bids.explain.lesions import lesion_coverage, lesion_relevance
from msxai_bids.model.network import FastSixtyFourNet, l2_penalty
from msxai_bids.model.training import FROM_SCRATCH, LabelledVolumes, fit

CPU = torch.device("cpu")


def cohort(n: int, seed: int) -> tuple[LabelledVolumes, np.ndarray]:
    """``n`` volumes, every second one a patient; also their lesion masks."""
    rng = np.random.default_rng(seed)
    drawn = [draw_volumes(i % 2 == 1, rng) for i in range(n)]
    volumes = torch.from_numpy(np.stack([d["preproc"] for d in drawn]))[:, None]
    targets = torch.tensor([i % 2 for i in range(n)], dtype=torch.float32)
    return LabelledVolumes(volumes, targets), np.stack([d["lesion_mask"] for d in drawn])


@pytest.mark.slow
def test_relevance_concentrates_on_lesions_of_detected_patients():
    train, _ = cohort(12, seed=0)
    validation, _ = cohort(4, seed=1)
    holdout, masks = cohort(8, seed=2)
    torch.manual_seed(0)
    network = FastSixtyFourNet()
    settings = FROM_SCRATCH.overridden(batch_size=2, max_epochs=5)
    result = fit(network, train, validation, settings, penalty=l2_penalty, seed=0, device=CPU)
    network.load_state_dict(result.best_state)
    explanation = explain(network, holdout.volumes, ["lrp-epsilon"])
    relevance = explanation.relevance["lrp-epsilon"]
    detected = [i for i in range(1, 8, 2) if explanation.logits[i] > 0]
    assert detected, f"no holdout patient detected; logits {explanation.logits}"
    ratios = [
        lesion_relevance(relevance[i], masks[i]) / lesion_coverage(masks[i]) for i in detected
    ]
    print(f"lesion relevance / coverage of detected patients: {np.round(ratios, 1)}")
    assert min(ratios) >= 5.0
