"""A labelled BIDS dataset plus synthetic participant-level derivatives on the CNN grid.

The group level reads only derivatives, so instead of running preprocessing the volumes are
drawn directly: an ellipsoidal "brain" of noisy intensity 0.4, and for patients bright 1.0
lesions whose masks are stored too (controls get empty masks, like a lesion segmentation
would give).
"""

from __future__ import annotations

from pathlib import Path

import ants
import nibabel as nb
import numpy as np
import pandas as pd
from bids.layout import parse_file_entities
from conftest import write_minimal_bids

from msxai_bids import bids, derivatives
from msxai_bids.grid import CNN_GRID


def brain_mask() -> np.ndarray:
    grid = np.indices(CNN_GRID.shape).astype(np.float32)
    centre = (np.array(CNN_GRID.shape, dtype=np.float32) - 1) / 2
    radii = np.array([34.0, 44.0, 34.0])
    return (((grid - centre[:, None, None, None]) / radii[:, None, None, None]) ** 2).sum(0) <= 1


def draw_volumes(patient: bool, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Preprocessed FLAIR, lesion mask and brain mask of one image."""
    mask = brain_mask()
    flair = np.where(mask, 0.4 + 0.05 * rng.standard_normal(CNN_GRID.shape), 0.0)
    lesions = np.zeros(CNN_GRID.shape, dtype=bool)
    if patient:
        for _ in range(8):
            x, y, z = (rng.integers(30, 66), rng.integers(35, 79), rng.integers(30, 66))
            lesions[x - 3 : x + 3, y - 3 : y + 3, z - 3 : z + 3] = True
    flair[lesions] = 1.0
    return {
        "preproc": flair.astype(np.float32),
        "lesion_mask": lesions.astype(np.uint8),
        "brain_mask": mask.astype(np.uint8),
    }


def write_group_cohort(
    root: Path, n_subjects: int, *, seed: int = 0, contrast: str = "FLAIR"
) -> tuple[Path, Path]:
    """Raw dataset (subject 01 with two sessions) and derivatives; returns (bids, out).

    The FLAIR-to-template transforms are identities, so heatmaps map back to the raw grid.
    """
    subjects = {f"{i:02d}": [None] for i in range(1, n_subjects + 1)}
    subjects["01"] = ["a", "b"]
    raw = write_minimal_bids(root / "bids", subjects, contrast)
    out = root / "out"
    rng = np.random.default_rng(seed)
    for i, (label, sessions) in enumerate(subjects.items()):
        for session in sessions:
            entities = {"subject": label, "suffix": contrast}
            entities.update({"session": session} if session else {})
            for kind, data in draw_volumes(patient=bool(i % 2), rng=rng).items():
                path = derivatives.path(out, kind, entities)
                path.parent.mkdir(parents=True, exist_ok=True)
                nb.save(nb.Nifti1Image(data, CNN_GRID.affine), path)
            xfm = derivatives.path(out, "xfm", entities)
            ants.write_transform(ants.create_ants_transform(dimension=3), str(xfm))
    return raw, out


def plant_heatmaps(out: Path, bids_dir: Path, model: str, scale: float) -> None:
    """Heatmaps of every image in OUT: patients +scale in box A and on their lesions, controls
    −scale in box B; predictions right except for sub-02."""
    targets = pd.read_csv(bids_dir / "participants.tsv", sep="\t").set_index("participant_id")
    for preproc in sorted(out.glob("sub-*/**/*_desc-preproc_FLAIR.nii.gz")):
        entities = {**parse_file_entities(str(preproc)), "suffix": "FLAIR"}
        subject = f"sub-{entities['subject']}"
        patient = targets.loc[subject, "diagnosis"] == "MS"
        lesions = np.asanyarray(nb.load(derivatives.find(out, "lesion_mask", entities)).dataobj)
        heatmap = np.zeros(CNN_GRID.shape, np.float32)
        if patient:
            heatmap[10:20, 10:20, 10:20] = scale
            heatmap += (lesions > 0.5).astype(np.float32) * scale
        else:
            heatmap[72:82, 84:94, 72:82] = -scale
        right = subject != "sub-02"
        meta = {
            "ModelName": model,
            "ModelID": f"SixtyFourNet-{model}",
            "Method": "lrp-epsilon",
            "PositiveLabel": "MS",
            "PredictedLabel": "MS" if patient == right else "HC",
            "Probability": 0.9 if patient == right else 0.1,
            **({"LesionRelevanceShare": 0.5, "LesionCoverageOfBrain": 0.05} if patient else {}),
        }
        path = derivatives.path(out, "heatmap", entities, model=model, method="lrpepsilon")
        bids.write_nifti(path, nb.Nifti1Image(heatmap, CNN_GRID.affine), meta)
