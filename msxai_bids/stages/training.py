"""Group level with ``--train``: train and evaluate the CNN and the SVM baselines, as the paper did.

1. The labelled images (``participants.tsv``) with a preprocessed FLAIR in OUT.
2. A subject-disjoint, stratified, seeded split (``OUT/group/splits.tsv``), reused by later runs.
3. The CNN trials on that split (:mod:`msxai_bids.group.trials`); the best trial becomes
   ``OUT/models/<model>``.
4. The SVM baselines on the same split.
5. The paper's Table 3 (``OUT/group/performance.tsv``) and per-trial, per-image and ROC tables.

Under ``torchrun`` every process trains its share; only rank 0 evaluates and writes. Explaining
the held-out images is a separate stage (:mod:`msxai_bids.stages.explanation`), which the
command line runs with the model and the holdout this stage returns.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from bids.layout import BIDSFile

from msxai_bids import bids, derivatives
from msxai_bids.errors import NoInputError, UsageError
from msxai_bids.group import tables
from msxai_bids.group.cohort import (
    Labels,
    image_table,
    label_description,
    read_labels,
    without_flagged,
)
from msxai_bids.group.trials import CnnPlan, cnn_results, run_trial, save_best_model, split_volumes
from msxai_bids.model import baselines, distributed
from msxai_bids.model.datasets import load_volumes
from msxai_bids.model.modelfile import ModelCard
from msxai_bids.model.splits import SPLITS, check_disjoint, make_splits

LOGGER = logging.getLogger("msxai.group")


@dataclass(frozen=True)
class TrainingPlan:
    """What the training stage needs to know of the options.

    ``cnn`` describes the CNN trials; ``init_model_id`` is the identifier on the card of
    ``cnn.init_model`` (None from scratch); ``threads`` is torch's CPU thread count;
    ``include_flagged`` keeps images whose registration QC is flagged.
    """

    bids_dir: Path
    cnn: CnnPlan
    labels: Labels
    contrast: str = "FLAIR"
    lesion_filled: bool = False
    init_model_id: str | None = None
    holdout_fraction: float = 0.15
    validation_fraction: float = 0.15
    new_split: bool = False
    include_flagged: bool = False
    skip_baselines: bool = False
    device: str = "auto"
    threads: int = 1

    @property
    def output_dir(self) -> Path:
        """Root of the derivative dataset that holds the inputs and receives the results."""
        return self.cnn.output_dir

    @property
    def seed(self) -> int:
        """Seed of the split, the baselines and (plus the trial number) the CNN trials."""
        return self.cnn.seed


@dataclass(frozen=True)
class TrainingOutcome:
    """The saved best model and the held-out images (relative paths) it was scored on."""

    model: Path
    holdout: tuple[str, ...]


def labelled_images(plan: TrainingPlan, flairs: Sequence[BIDSFile]) -> pd.DataFrame:
    """The labelled ones of ``flairs`` with their derivatives (see :func:`cohort.image_table`),
    less those of flagged registrations unless ``--include-flagged``."""
    labels = plan.labels
    targets = read_labels(plan.bids_dir, labels.column, labels.positive, labels.negative)
    table = image_table(plan.output_dir, list(flairs), targets, lesion_filled=plan.lesion_filled)
    return table if plan.include_flagged else without_flagged(table)


def reuse_splits(path: Path, images: pd.DataFrame) -> pd.DataFrame:
    """The images with the split stored at ``path``, which must cover exactly these images."""
    saved = bids.read_tsv(path)
    if set(saved["source"]) != set(images["source"]):
        raise UsageError(
            f"{path} was made for other images ({len(saved)} there, {len(images)} now); "
            "pass --new-split to draw a new split"
        )
    merged = images.merge(saved[["source", "split"]], on="source", validate="one_to_one")
    try:
        check_disjoint(merged)
    except ValueError as err:
        raise UsageError(f"{path}: {err}") from err
    return merged


def prepare_splits(plan: TrainingPlan, images: pd.DataFrame, *, write: bool) -> pd.DataFrame:
    """Reuse ``OUT/group/splits.tsv`` unless ``--new-split`` (or none exists); rows by split."""
    path = derivatives.path(plan.output_dir, "splits")
    if path.is_file() and not plan.new_split:
        splits = reuse_splits(path, images)
        LOGGER.info("reusing the split in %s", path)
    else:
        try:
            splits = make_splits(
                images,
                holdout=plan.holdout_fraction,
                validation=plan.validation_fraction,
                seed=plan.seed,
            )
        except ValueError as err:
            raise NoInputError(f"cannot split the labelled images: {err}") from err
        if write:
            bids.write_tsv(path, splits[list(tables.SPLITS_COLUMNS)], tables.SPLITS_COLUMNS)
    order = splits["split"].map({name: i for i, name in enumerate(SPLITS)})
    splits = splits.assign(order=order).sort_values(["order", "source"], ignore_index=True)
    counts = splits.groupby(["split", "target"]).size().unstack(fill_value=0)
    LOGGER.info("images per split and target:\n%s", counts.to_string())
    return splits.drop(columns="order")


def baseline_features(
    plan: TrainingPlan, splits: pd.DataFrame, volumes: torch.Tensor
) -> dict[tuple[str, str, bool], np.ndarray]:
    """Inputs of the SVM baselines that can run: (name, data, PCA option) → (n_images, n_features).

    Lesion load needs a lesion mask for every image, FLAIR voxels a brain mask for every
    training image (to build the common mask); a baseline without them is skipped, with a
    warning.
    """
    fitting = splits["split"] != "holdout"
    features = {}
    if splits["lesion_mask"].notna().all():
        loads = baselines.lesion_loads_ml(splits["lesion_mask"].tolist())
        features[("svm-lesionload", "FLAIR lesion load", False)] = loads[:, None]
    else:
        missing = int(splits["lesion_mask"].isna().sum())
        LOGGER.warning("SVM on lesion load skipped: %d image(s) lack a lesion mask", missing)
    if splits.loc[fitting, "brain_mask"].notna().all():
        mask = baselines.common_mask(splits.loc[fitting, "brain_mask"].tolist())
        name = f"svm-{plan.contrast.lower()}" + ("-lesionfilled" if plan.lesion_filled else "")
        features[(name, plan.cnn.description["data"], True)] = baselines.voxel_features(
            volumes, mask
        )
    else:
        LOGGER.warning("SVM on image voxels skipped: training images lack brain masks")
    return features


def baseline_results(
    plan: TrainingPlan, splits: pd.DataFrame, volumes: torch.Tensor, split: str
) -> list[tables.Results]:
    """Fit each SVM baseline on the train and validation images, score it on the holdout."""
    fitting = (splits["split"] != "holdout").to_numpy()
    groups, targets = splits["participant_id"].to_numpy(), splits["target"].to_numpy()
    results = []
    for (name, data, pca), x in baseline_features(plan, splits, volumes).items():
        LOGGER.info("baseline %s: %d feature(s), nested grid search", name, x.shape[1])
        result = baselines.evaluate_baseline(
            (x[fitting], targets[fitting], groups[fitting]),
            (x[~fitting], targets[~fitting]),
            pca=pca,
            seed=plan.seed,
        )
        description = {"model": name, "data": data, "pretrained": "n/a", "classifier": "SVM"}
        extra = {
            "seed": plan.seed,
            "cv_balanced_accuracy": result.cv_balanced_accuracy,
            "parameters": json.dumps(result.parameters),
        }
        results.append(
            tables.result_rows(description, 1, splits[~fitting], result.scores, split, **extra)
        )
    return results


def data_card(plan: TrainingPlan, splits: pd.DataFrame) -> ModelCard:
    """The model card's labels and account of the data; the trials add the rest."""
    counts = splits.groupby(["split", "target"]).size()
    what = "lesion-filled" if plan.lesion_filled else "preprocessed"
    training = {
        "dataset": str(plan.bids_dir),
        "label_column": plan.labels.column,
        "label_description": label_description(plan.bids_dir, plan.labels.column),
        "images": {
            f"{s}_{'positive' if t else 'negative'}": int(n) for (s, t), n in counts.items()
        },
        "subjects": int(splits["participant_id"].nunique()),
        "input": f"{what} {plan.contrast}",
        "split_file": derivatives.path(Path(), "splits").as_posix(),
        "split_id": tables.split_id(splits),
        "init_model": plan.init_model_id,
    }
    return ModelCard(
        positive_label=plan.labels.positive, negative_label=plan.labels.negative, training=training
    )


def start_torch(plan: TrainingPlan) -> tuple[distributed.Processes, torch.device]:
    """Join the ``torchrun`` processes (if any) and make training reproducible."""
    processes = distributed.Processes.from_environment()
    device = distributed.select_device(plan.device, processes)
    distributed.start(processes, device)
    torch.set_num_threads(plan.threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = False  # NaN-filling costs ~25 % on CPU
    return processes, device


def run(flairs: Sequence[BIDSFile], plan: TrainingPlan) -> TrainingOutcome | None:
    """Train and evaluate on the labelled ``flairs``; None in the processes other than rank 0."""
    processes, device = start_torch(plan)
    splits = prepare_splits(plan, labelled_images(plan, flairs), write=processes.is_main)
    volumes = load_volumes(splits["image"].tolist(), progress=processes.is_main)
    by_split = split_volumes(volumes, splits)
    LOGGER.info("training %s with %s on %s", plan.cnn.model, plan.cnn.settings, device)
    trials = [
        run_trial(n, plan=plan.cnn, by_split=by_split, device=device, processes=processes)
        for n in range(1, plan.cnn.trials + 1)
    ]
    distributed.stop(processes)
    if not processes.is_main:
        return None
    split = tables.split_id(splits)
    holdout = splits[splits["split"] == "holdout"]
    rows = cnn_results(plan.cnn, trials, holdout, split)
    if not plan.skip_baselines:
        rows += baseline_results(plan, splits, volumes, split)
    trial_table = tables.write_results(plan.output_dir, rows)
    model = save_best_model(plan.cnn, trials, trial_table, data_card(plan, splits))
    return TrainingOutcome(model=model, holdout=tuple(holdout["source"]))
