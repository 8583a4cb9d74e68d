"""Group level with ``--train``: train and evaluate the CNN and the SVM baselines, as the paper did.

1. The labelled images (``participants.tsv``) with a preprocessed FLAIR in OUT.
2. A subject-disjoint, stratified, seeded split (``OUT/group/splits.tsv``), reused by later runs.
3. ``--trials`` trainings of the CNN on that split (:mod:`.group_cnn`); the best trial becomes
   ``OUT/models/<model>``.
4. The SVM baselines on the same split.
5. The paper's Table 3 (``OUT/group/performance.tsv``) and per-trial, per-image and ROC tables.

Under ``torchrun`` every process trains its share; only rank 0 evaluates and writes.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from bids.layout import BIDSLayout

from msxai_bids import bids
from msxai_bids.config import Config
from msxai_bids.errors import NoInputError, UsageError
from msxai_bids.model import baselines, distributed
from msxai_bids.model.datasets import load_volumes
from msxai_bids.model.splits import SPLITS, check_disjoint, make_splits
from msxai_bids.workflows import group_tables as tables
from msxai_bids.workflows.cohort import image_table, read_labels
from msxai_bids.workflows.explanation import check_model, run_explanation
from msxai_bids.workflows.group_cnn import (
    cnn_description,
    cnn_results,
    run_trial,
    save_best_model,
    split_volumes,
    training_settings,
)

LOGGER = logging.getLogger("msxai.group")


def labelled_images(config: Config, layout: BIDSLayout) -> pd.DataFrame:
    """The selected, labelled images with their derivatives (see :func:`cohort.image_table`)."""
    targets = read_labels(
        config.bids_dir, config.label_column, config.positive_label, config.negative_label
    )
    flairs = bids.collect_images(
        layout, config.participant_label, config.session_label, config.bids_filters
    )
    return image_table(config.output_dir, flairs, targets, lesion_filled=config.lesion_filled)


def reuse_splits(path, images: pd.DataFrame) -> pd.DataFrame:
    """The images with the split stored at ``path``, which must cover exactly these images."""
    saved = tables.read_tsv(path)
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


def prepare_splits(config: Config, images: pd.DataFrame, *, write: bool) -> pd.DataFrame:
    """Reuse ``OUT/group/splits.tsv`` unless ``--new-split`` (or none exists); rows by split."""
    path = tables.group_file(config.output_dir, "splits.tsv")
    if path.is_file() and not config.new_split:
        splits = reuse_splits(path, images)
        LOGGER.info("reusing the split in %s", path)
    else:
        try:
            splits = make_splits(
                images,
                holdout=config.holdout_fraction,
                validation=config.validation_fraction,
                seed=config.seed,
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
    config: Config, splits: pd.DataFrame, volumes: torch.Tensor
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
        name = f"svm-{config.contrast.lower()}" + ("-lesionfilled" if config.lesion_filled else "")
        data = cnn_description(config)["data"]
        features[(name, data, True)] = baselines.voxel_features(volumes, mask)
    else:
        LOGGER.warning("SVM on image voxels skipped: training images lack brain masks")
    return features


def baseline_results(
    config: Config, splits: pd.DataFrame, volumes: torch.Tensor, split: str
) -> list[tables.Results]:
    """Fit each SVM baseline on the train and validation images, score it on the holdout."""
    fitting = (splits["split"] != "holdout").to_numpy()
    groups, targets = splits["participant_id"].to_numpy(), splits["target"].to_numpy()
    results = []
    for (name, data, pca), x in baseline_features(config, splits, volumes).items():
        LOGGER.info("baseline %s: %d feature(s), nested grid search", name, x.shape[1])
        result = baselines.evaluate_baseline(
            (x[fitting], targets[fitting], groups[fitting]),
            (x[~fitting], targets[~fitting]),
            pca=pca,
            seed=config.seed,
        )
        description = {"model": name, "data": data, "pretrained": "n/a", "classifier": "SVM"}
        extra = {
            "seed": config.seed,
            "cv_balanced_accuracy": result.cv_balanced_accuracy,
            "parameters": json.dumps(result.parameters),
        }
        results.append(
            tables.result_rows(description, 1, splits[~fitting], result.scores, split, **extra)
        )
    return results


def explain_holdout(
    config: Config, layout: BIDSLayout, holdout: pd.DataFrame, model_path: Path
) -> int:
    """Heatmaps and region tables of the held-out participants with the saved best model."""
    flairs = [layout.get_file(config.bids_dir / source) for source in holdout["source"]]
    LOGGER.info("explaining %d held-out image(s) with %s", len(flairs), model_path)
    return run_explanation(config, flairs, model_path)


def run_training(config: Config, layout: BIDSLayout) -> int:
    """``group --train``: trials of the CNN, baselines, tables and the best model; returns 0."""
    processes = distributed.Processes.from_environment()
    device = distributed.select_device(config.device, processes)
    distributed.start(processes, device)
    torch.set_num_threads(config.omp_nthreads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = False  # NaN-filling costs ~25 % on CPU
    if config.init_model is not None:
        check_model(config.init_model, "--init-model")
    images = labelled_images(config, layout)
    splits = prepare_splits(config, images, write=processes.is_main)
    volumes = load_volumes(splits["image"].tolist(), progress=processes.is_main)
    by_split = split_volumes(volumes, splits)
    settings = training_settings(config)
    LOGGER.info("training %s with %s on %s", cnn_description(config)["model"], settings, device)
    trials = [
        run_trial(
            n,
            config=config,
            by_split=by_split,
            settings=settings,
            device=device,
            processes=processes,
        )
        for n in range(1, config.trials + 1)
    ]
    distributed.stop(processes)
    if not processes.is_main:
        return 0
    split = tables.split_id(splits)
    holdout = splits[splits["split"] == "holdout"]
    rows = cnn_results(config, trials, holdout, split)
    if not config.skip_baselines:
        rows += baseline_results(config, splits, volumes, split)
    trial_table = tables.write_results(config.output_dir, rows)
    model_path = save_best_model(config, trials, trial_table, splits)
    return explain_holdout(config, layout, holdout, model_path)
