"""Prediction and relevance maps for preprocessed FLAIR images, batched over participants.

This stage runs after preprocessing (participant level with ``--model``) or after training
(the held-out participants), in the main process, because the model is loaded once and, on a
GPU, several participants share a forward/backward pass. Each participant's files are still
written on their own: a participant whose outputs cannot be made is reported by name and the
others go on. A participant whose completion record for this model (:mod:`msxai_bids.completion`)
matches the model file, its preprocessed image and the options is not explained again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd
from bids.layout import BIDSFile
from scipy.special import expit

from msxai_bids import bids, completion, derivatives
from msxai_bids.errors import NoInputError
from msxai_bids.explain.atlases import Atlas, load_atlas
from msxai_bids.explain.lesions import lesion_coverage, lesion_relevance
from msxai_bids.explain.regions import bilateral_table, region_table
from msxai_bids.grid import CNN_GRID
from msxai_bids.model.modelfile import ModelCard, ModelFileError, load_model, model_paths

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


def find_scan(output_dir: Path, flair: BIDSFile) -> Scan | None:
    """The preprocessed derivatives of ``flair`` in ``output_dir``; None if preprocessing failed."""
    image = derivatives.find(output_dir, "preproc", flair.entities)
    xfm = derivatives.find(output_dir, "xfm", flair.entities)
    if image is None or xfm is None:
        return None
    return Scan(
        flair=flair,
        image=image,
        brain_mask=derivatives.find(output_dir, "brain_mask", flair.entities),
        lesion_mask=derivatives.find(output_dir, "lesion_mask", flair.entities),
        xfm=xfm,
    )


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


#: Entries of a model card's training record that a heatmap's sidecar repeats, so that a report
#: (and a reader) can tell what kind of model made the decision without the model file.
MODEL_PROVENANCE = ("data_kind", "dataset", "input", "init_model", "made_by", "intended_use")


def heatmap_metadata(
    output_dir: Path, scan: Scan, card: ModelCard, method: str, row: dict, lesions: dict
) -> dict:
    """Sidecar of a relevance map: model, method and rule, the decision it explains."""
    from msxai_bids.explain.methods import METHODS  # zennit: only when a map is written

    return {
        "Sources": [
            bids.raw_uri(scan.flair.path),
            f"bids::{scan.image.relative_to(output_dir).as_posix()}",
        ],
        "ModelID": card.model_id,
        "ModelSHA256": card.weights_sha256,
        "PositiveLabel": card.positive_label,
        "TrainingSplitID": card.training.get("split_id", "n/a"),
        "ModelDescription": card.description,
        "ModelProvenance": {
            key: card.training[key] for key in MODEL_PROVENANCE if key in card.training
        },
        **{
            key.title().replace("_", ""): value
            for key, value in METHODS[method].description.items()
        },
        "Logit": row["logit"],
        "Probability": row["probability"],
        "PredictedLabel": row["predicted_label"],
        **lesions,
    }


@lru_cache(maxsize=1)
def field_of_view() -> np.ndarray:
    """The CNN's field of view on ``CNN_GRID``: read-only bool of shape ``CNN_GRID.shape``."""
    from msxai_bids.explain.fieldofview import field_of_view_mask

    mask = field_of_view_mask()
    mask.flags.writeable = False
    return mask


def write_field_of_view(output_dir: Path) -> Path:
    """Write the field of view into ``OUT/models/`` (uint8 on the grid) unless it is there."""
    existing = derivatives.find(output_dir, "fov_mask", {})
    if existing is not None:
        return existing
    image = nb.Nifti1Image(field_of_view().astype(np.uint8), CNN_GRID.affine)
    image.header.set_xyzt_units("mm")
    meta = {
        "Type": "ROI",
        "Description": "1 where the CNN's output depends on the input voxel, 0 where it never "
        "does (valid convolutions and pooling that rounds down drop the last voxels of each "
        "axis): relevance is zero there.",
    }
    return bids.write_nifti(derivatives.path(output_dir, "fov_mask"), image, meta)


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


def write_scan(
    output_dir: Path,
    scan: Scan,
    card: ModelCard,
    relevance: dict[str, np.ndarray],
    logit: float,
    atlases: Sequence[Atlas],
    *,
    model: str,
) -> dict:
    """Write one participant's predictions, heatmaps (grid and native) and region tables.

    ``model`` is the ``model-`` label of the outputs (:func:`derivatives.model_label`), so that
    the explanations of several models lie side by side.
    """
    from msxai_bids.preprocessing.resampling import to_native  # antspyx: only to write maps

    source = scan.flair.entities
    row = prediction_row(scan, card, logit)
    predictions = derivatives.path(output_dir, "predictions", source, model=model)
    bids.write_tsv(predictions, pd.DataFrame([row]))
    native_ref = nb.load(scan.flair.path)
    for method, heatmap in relevance.items():
        names = {"model": model, "method": derivatives.method_label(method)}
        meta = {
            "ModelName": model,
            **heatmap_metadata(output_dir, scan, card, method, row, lesion_summary(heatmap, scan)),
        }
        on_grid = nb.Nifti1Image(heatmap.astype(np.float32), CNN_GRID.affine)
        on_grid.header.set_xyzt_units("mm")
        bids.write_nifti(derivatives.path(output_dir, "heatmap", source, **names), on_grid, meta)
        bids.write_nifti(
            derivatives.path(output_dir, "heatmap_native", source, **names),
            to_native(on_grid, native_ref, scan.xfm),
            {**meta, "Interpolation": "trilinear from the grid map (display only)"},
        )
        for atlas in atlases:
            table = region_table(heatmap, atlas.data, atlas.labels, seen=field_of_view())
            tsv = derivatives.path(output_dir, "regions", source, atlas=atlas.name, **names)
            bids.write_tsv(tsv, table)
            bilateral = derivatives.path(
                output_dir, "regions_bilateral", source, atlas=atlas.name, **names
            )
            bids.write_tsv(bilateral, bilateral_table(table))
    return row


#: What explaining a scan imports beyond this module, in order: torch, zennit (it imports
#: torchvision and torch's compiler), the methods, and antspyx to map heatmaps to native space;
#: 4 s together. The participant level imports them while the preprocessing workflow runs, when
#: the images being preprocessed are to be explained next; the stage itself imports them only
#: when it has work, so a rerun with nothing to explain never pays for them.
LIBRARIES = (
    "torch",
    "zennit",
    "msxai_bids.explain.attribution",
    "msxai_bids.preprocessing.resampling",
)


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

    The network's field of view is written into ``OUT/models/`` first, unless it is there.
    """
    from msxai_bids.explain.attribution import explain  # zennit: only when there is work
    from msxai_bids.model.distributed import SINGLE_PROCESS, select_device

    device = select_device(device, SINGLE_PROCESS)
    try:
        model, card = load_model(model_path, device=device)
    except ModelFileError as err:  # tensor names and shapes: what the check before the run,
        raise NoInputError(str(err)) from err  # without torch, cannot see
    loaded = [load_atlas(atlas) for atlas in atlases]
    write_field_of_view(output_dir)
    LOGGER.info(
        "model %s on %s; methods %s; atlases %s",
        card.model_id,
        device,
        ", ".join(methods),
        ", ".join(a.name for a in loaded),
    )
    failed, batch, label = [], BATCH_SIZE[device.type], derivatives.model_label(model_path)
    for start in range(0, len(scans), batch):
        chunk = scans[start : start + batch]
        volumes = np.stack([np.asanyarray(nb.load(s.image).dataobj, np.float32) for s in chunk])
        result = explain(model, volumes, methods, batch_size=batch)
        for i, scan in enumerate(chunk):
            maps = {method: result.relevance[method][i] for method in methods}
            try:
                logit = float(result.logits[i])
                row = write_scan(output_dir, scan, card, maps, logit, loaded, model=label)
            except (OSError, ValueError, RuntimeError) as err:
                LOGGER.error("explanation failed for %s: %s", scan.flair.path, err)
                failed.append(scan.flair.relpath)
                continue
            LOGGER.info(
                "%s: p(%s) = %.3f", scan.flair.relpath, card.positive_label, row["probability"]
            )
    return failed


@dataclass(frozen=True)
class ExplanationPlan:
    """What the explanation stage needs to know of the options.

    ``methods`` are keys of :data:`~msxai_bids.explain.methods.METHODS`; ``atlases`` built-in
    atlas names or atlas file paths, already checked; ``threads`` is torch's CPU thread count;
    ``force`` explains again the images whose completion record says they are done.
    """

    output_dir: Path
    methods: tuple[str, ...]
    atlases: tuple[str, ...]
    device: str = "auto"
    seed: int = 0
    threads: int = 1
    force: bool = False


def scan_fingerprint(scan: Scan, model: Path, plan: ExplanationPlan) -> dict:
    """What a scan's explanations by ``model`` depend on (see :func:`completion.fingerprint`)."""
    weights, card = model_paths(model)
    files = {"weights": weights, "card": card, "image": scan.image, "xfm": scan.xfm}
    files |= {name: path for name in ("brain_mask", "lesion_mask") if (path := getattr(scan, name))}
    files |= {atlas: atlas for atlas in plan.atlases if Path(atlas).is_file()}
    options = {"methods": list(plan.methods), "atlases": list(plan.atlases), "seed": plan.seed}
    return completion.fingerprint(files, options)


def run(flairs: Sequence[BIDSFile], model: Path, plan: ExplanationPlan) -> int:
    """Predict and explain every image whose preprocessing succeeded; 1 if any could not be.

    ``model`` is a model file: ``--model``, or the one a group run has just trained.
    """
    output_dir = plan.output_dir
    scans = [scan for flair in flairs if (scan := find_scan(output_dir, flair))]
    missing = len(flairs) - len(scans)
    if missing:
        LOGGER.error("%d FLAIR image(s) have no preprocessed image to explain", missing)
    step = f"model-{derivatives.model_label(model)}"
    accepted = {scan.flair.path: [scan_fingerprint(scan, model, plan)] for scan in scans}
    pending = completion.pending(
        output_dir, accepted, force=plan.force, done=f"explained by {step}", step=step
    )
    todo = [scan for scan in scans if scan.flair.path in pending]
    if not todo:
        return 1 if missing else 0
    import torch  # like zennit, only when there is work (see LIBRARIES)

    torch.manual_seed(plan.seed)
    torch.set_num_threads(plan.threads)
    for scan in todo:  # outputs are overwritten; other methods' maps of this model stay
        completion.clear_interrupted(output_dir, scan.flair.path, step)
    failed = explain_scans(
        todo,
        model_path=model,
        output_dir=output_dir,
        methods=plan.methods,
        atlases=plan.atlases,
        device=plan.device,
    )
    for scan in todo:
        if scan.flair.relpath in failed:
            completion.clear(output_dir, scan.flair.path, step)
        else:
            completion.complete(output_dir, scan.flair.path, accepted[scan.flair.path][0], step)
    return 1 if failed or missing else 0
