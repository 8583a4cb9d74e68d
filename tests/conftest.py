"""Shared fixtures: small BIDS datasets written on the fly."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import nibabel as nb
import numpy as np
import pytest

from msxai_bids.preprocessing.workers import ITK_THREADS

# ITK steps that tests call in this process use the preprocessing stage's thread count. With two
# threads Mattes mutual information sums its samples in a varying order, so a registration
# depends on the machine's load: a posed Colin27 scan moved by 2.3 mm at its worst voxel on a
# busy machine, where one thread gives the same result every time.
os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(ITK_THREADS)


def write_minimal_bids(
    root: Path, subjects: dict[str, list[str | None]], contrast: str = "FLAIR"
) -> Path:
    """Write a tiny but valid BIDS dataset: ``subjects`` maps labels to session labels (or None).

    Each session holds one anatomical image of ``contrast`` (its suffix).
    """
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text(
        json.dumps({"Name": "tiny", "BIDSVersion": "1.10.0", "Authors": ["A", "B"]})
    )
    (root / "README").write_text("A tiny dataset written by the msxai tests.\n")
    rows = ["participant_id\tdiagnosis"]
    rng = np.random.default_rng(0)
    for i, (label, sessions) in enumerate(subjects.items()):
        rows.append(f"sub-{label}\t{'MS' if i % 2 else 'HC'}")
        for session in sessions:
            ses = f"_ses-{session}" if session else ""
            anat = root / f"sub-{label}" / (f"ses-{session}" if session else "") / "anat"
            anat.mkdir(parents=True, exist_ok=True)
            data = rng.random((12, 14, 10)).astype(np.float32)
            nb.save(
                nb.Nifti1Image(data, np.diag([2.0, 2.0, 2.0, 1.0])),
                anat / f"sub-{label}{ses}_{contrast}.nii.gz",
            )
            (anat / f"sub-{label}{ses}_{contrast}.json").write_text('{"EchoTime": 0.1}')
    (root / "participants.tsv").write_text("\n".join(rows) + "\n")
    (root / "participants.json").write_text(
        json.dumps(
            {
                "diagnosis": {
                    "Description": "diagnosis",
                    "Levels": {"MS": "patient", "HC": "control"},
                }
            }
        )
    )
    return root


@pytest.fixture
def tiny_bids(tmp_path: Path) -> Path:
    """Two subjects, one of them with two sessions."""
    return write_minimal_bids(tmp_path / "bids", {"01": [None], "02": ["a", "b"]})


@pytest.fixture
def restore_logging():
    """``main`` attaches log handlers to the ``msxai`` logger; later tests expect none."""
    logger = logging.getLogger("msxai")
    before = list(logger.handlers)
    yield
    for handler in set(logger.handlers) - set(before):
        logger.removeHandler(handler)
        handler.close()
