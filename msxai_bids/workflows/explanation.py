"""Prediction and relevance maps for preprocessed FLAIR images, batched over participants.

This stage runs after the Nipype preprocessing graph, in the main process, because the model
is loaded once and, on a GPU, several participants share a forward/backward pass. Each
participant's files are still written on their own: a participant whose outputs cannot be
made is reported by name and the others go on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd
import torch
from bids.layout import BIDSFile
from scipy.special import expit

from msxai_bids import bids
from msxai_bids.config import Config
from msxai_bids.errors import NoInputError
from msxai_bids.explain.atlases import Atlas, default_atlases, load_atlas
from msxai_bids.explain.attribution import explain
from msxai_bids.explain.lesions import lesion_coverage, lesion_relevance
from msxai_bids.explain.methods import METHODS
from msxai_bids.explain.regions import bilateral_table, region_table
from msxai_bids.grid import CNN_GRID
from msxai_bids.model.distributed import SINGLE_PROCESS, select_device
from msxai_bids.model.modelfile import ModelCard, ModelFileError, load_model, read_card
from msxai_bids.preprocessing.resampling import to_native
from msxai_bids.workflows.cohort import derivative_file
from msxai_bids.workflows.outputs import SPACE, output_entities

LOGGER = logging.getLogger("msxai.explain")

#: Volumes per forward/backward pass: one keeps CPU memory near 1 GB, a GPU takes many.
BATCH_SIZE = {"cpu": 1, "cuda": 8}


@dataclass(frozen=True)
class Scan:
    """A raw FLAIR and the participant-level derivatives the explanation reads."""

    flair: BIDSFile
    image: Path
    brain_mask: Path | None
    lesion_mask: Path | None
    xfm: Path


def check_model(path: Path, option: str) -> ModelCard:
    """Read a model's card before any work; an unusable file is a missing input (exit 66)."""
    try:
        return read_card(path)
    except ModelFileError as err:
        raise NoInputError(f"{option}: {err}") from err


def find_scan(output_dir: Path, flair: BIDSFile) -> Scan | None:
    """The preprocessed derivatives of ``flair`` in ``output_dir``; None if preprocessing failed."""
    image = derivative_file(output_dir, flair, "preproc")
    xfm = bids.derivative_path(output_dir, output_entities(flair, "xfm"))
    if image is None or not xfm.is_file():
        return None
    return Scan(
        flair=flair,
        image=image,
        brain_mask=derivative_file(output_dir, flair, "brain_mask"),
        lesion_mask=derivative_file(output_dir, flair, "lesion_mask"),
        xfm=xfm,
    )


def method_label(method: str) -> str:
    """The ``desc-`` value of a method: ``lrp-epsilon`` → ``lrpepsilon``."""
    return method.replace("-", "")


def prediction_row(scan: Scan, card: ModelCard, logit: float) -> dict:
    """One row of the predictions table: probability and label of the positive class."""
    probability = float(expit(logit))
    entities = scan.flair.entities
    return {
        "participant_id": f"sub-{entities['subject']}",
        "session_id": f"ses-{entities['session']}" if "session" in entities else "n/a",
        "source": scan.flair.relpath,
        "model_id": card.model_id,
        "model_sha256": card.weights_sha256,
        "logit": logit,
        "probability": probability,
        "predicted_label": card.positive_label if probability >= 0.5 else card.negative_label,
    }


def heatmap_metadata(
    output_dir: Path, scan: Scan, card: ModelCard, method: str, row: dict, lesions: dict
) -> dict:
    """Sidecar of a relevance map: model, method and rule, the decision it explains."""
    return {
        "Sources": [
            bids.raw_uri(scan.flair.path),
            f"bids::{scan.image.relative_to(output_dir).as_posix()}",
        ],
        "ModelID": card.model_id,
        "ModelSHA256": card.weights_sha256,
        "PositiveLabel": card.positive_label,
        **{
            key.title().replace("_", ""): value
            for key, value in METHODS[method].description.items()
        },
        "Logit": row["logit"],
        "Probability": row["probability"],
        "PredictedLabel": row["predicted_label"],
        **lesions,
    }


def lesion_summary(relevance: np.ndarray, scan: Scan) -> dict:
    """Paper Eq. 2: share of positive relevance in lesions, and the lesion coverage."""
    if scan.lesion_mask is None:
        return {}
    mask = np.asanyarray(nb.load(scan.lesion_mask).dataobj) > 0.5
    brain = np.asanyarray(nb.load(scan.brain_mask).dataobj) > 0.5 if scan.brain_mask else None
    return {
        "LesionRelevanceShare": lesion_relevance(relevance, mask),
        "LesionCoverageOfGrid": lesion_coverage(mask),
        "LesionCoverageOfBrain": lesion_coverage(mask, brain),
    }


def save_nifti(path: Path, image: nb.Nifti1Image, metadata: dict) -> Path:
    """Write a NIfTI image and its JSON sidecar (with the fields BIDS requires) atomically."""
    bids.atomic_write(path, lambda tmp: nb.save(image, tmp))
    bids.write_sidecar(path, metadata)
    return path


def write_scan(
    output_dir: Path,
    scan: Scan,
    card: ModelCard,
    relevance: dict[str, np.ndarray],
    logit: float,
    atlases: Sequence[Atlas],
) -> dict:
    """Write one participant's predictions, heatmaps (grid and native) and region tables."""
    source = bids.source_entities(scan.flair)
    row = prediction_row(scan, card, logit)
    name = {**source, "suffix": "predictions", "extension": ".tsv"}
    bids.write_tsv(bids.derivative_path(output_dir, name), pd.DataFrame([row]))
    native_ref = nb.load(scan.flair.path)
    for method, heatmap in relevance.items():
        stat = {**source, "stat": "relevance", "desc": method_label(method), "suffix": "statmap"}
        meta = heatmap_metadata(output_dir, scan, card, method, row, lesion_summary(heatmap, scan))
        on_grid = nb.Nifti1Image(heatmap.astype(np.float32), CNN_GRID.affine)
        on_grid.header.set_xyzt_units("mm")
        grid_path = bids.derivative_path(output_dir, {**stat, **SPACE, "extension": ".nii.gz"})
        save_nifti(grid_path, on_grid, meta)
        native = to_native(on_grid, native_ref, scan.xfm)
        save_nifti(
            bids.derivative_path(output_dir, {**stat, "extension": ".nii.gz"}),
            native,
            {**meta, "Interpolation": "trilinear from the grid map (display only)"},
        )
        for atlas in atlases:
            table = region_table(heatmap, atlas.data, atlas.labels)
            tsv = {**stat, **SPACE, "atlas": atlas.name, "extension": ".tsv"}
            bids.write_tsv(bids.derivative_path(output_dir, tsv), table)
            both = {**tsv, "desc": method_label(method) + "bilateral"}
            bids.write_tsv(bids.derivative_path(output_dir, both), bilateral_table(table))
    return row


def explain_scans(
    scans: Sequence[Scan],
    *,
    model_path: Path,
    output_dir: Path,
    methods: Sequence[str],
    atlases: Sequence[str],
    device: str = "auto",
) -> list[str]:
    """Predict and explain every scan; return the sources that failed (already logged).

    Parameters
    ----------
    scans : sequence of Scan
        Preprocessed images on the CNN grid, with their transforms.
    model_path : Path
        A model file (see :func:`msxai_bids.model.modelfile.load_model`).
    methods : sequence of str
        Keys of :data:`msxai_bids.explain.methods.METHODS`.
    atlases : sequence of str
        Built-in atlas names or ``atlas-<name>_dseg.nii.gz`` paths for the region tables.
    device : {"auto", "cpu", "cuda"}
    """
    device = select_device(device, SINGLE_PROCESS)
    model, card = load_model(model_path, device=device)
    loaded = [load_atlas(atlas) for atlas in atlases]
    LOGGER.info(
        "model %s on %s; methods %s; atlases %s",
        card.model_id,
        device,
        ", ".join(methods),
        ", ".join(a.name for a in loaded),
    )
    failed, batch = [], BATCH_SIZE[device.type]
    for start in range(0, len(scans), batch):
        chunk = scans[start : start + batch]
        volumes = np.stack([np.asanyarray(nb.load(s.image).dataobj, np.float32) for s in chunk])
        result = explain(model, volumes, methods, batch_size=batch)
        for i, scan in enumerate(chunk):
            maps = {method: result.relevance[method][i] for method in methods}
            try:
                row = write_scan(output_dir, scan, card, maps, float(result.logits[i]), loaded)
            except (OSError, ValueError, RuntimeError) as err:
                LOGGER.error("explanation failed for %s: %s", scan.flair.path, err)
                failed.append(scan.flair.relpath)
                continue
            LOGGER.info(
                "%s: p(%s) = %.3f", scan.flair.relpath, card.positive_label, row["probability"]
            )
    return failed


def run_explanation(config: Config, flairs: Sequence[BIDSFile], model_path: Path) -> int:
    """Predict and explain every FLAIR whose preprocessing succeeded; 1 if any could not be."""
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.nprocs)
    scans = [scan for flair in flairs if (scan := find_scan(config.output_dir, flair))]
    missing = len(flairs) - len(scans)
    if missing:
        LOGGER.error("%d FLAIR image(s) have no preprocessed image to explain", missing)
    failed = explain_scans(
        scans,
        model_path=model_path,
        output_dir=config.output_dir,
        methods=config.method,
        atlases=config.atlas or default_atlases(),
        device=config.device,
    )
    return 1 if failed or missing else 0
