"""The group level's result tables under ``OUT/group/``.

Tables are tab-separated with ``n/a`` for missing values (BIDS). Results accumulate over runs,
one set of rows per model (CNN from scratch, pre-trained, lesion-filled, SVM baselines) so that
``performance.tsv`` grows into the paper's Table 3; rows made on another split are dropped,
since results of different splits are not comparable.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from msxai_bids import bids, derivatives
from msxai_bids.model.evaluation import METRICS, binary_metrics, roc_points, summarise_trials

LOGGER = logging.getLogger("msxai.group")

#: Columns that describe a model in the result tables.
DESCRIPTION = ("model", "data", "pretrained", "classifier")

#: Columns of ``performance.tsv`` described in its JSON sidecar.
PERFORMANCE_COLUMNS = {
    "model": "Name of the model: classifier, initialisation and input data.",
    "data": "Input of the classifier.",
    "pretrained": "Whether the CNN started from a pre-trained model (--init-model).",
    "classifier": "CNN or SVM.",
    "n_trials": "Number of repeated trials on the same split.",
    "balanced_accuracy": "Mean over trials of the holdout balanced accuracy (fraction).",
    "sensitivity": "Mean holdout sensitivity (fraction of patients classified as patients).",
    "specificity": "Mean holdout specificity (fraction of controls classified as controls).",
    "auc": "Mean holdout area under the ROC curve.",
    **{
        f"{metric}_sd": f"Sample standard deviation of {metric} over trials (n/a for one trial)."
        for metric in METRICS
    },
    "split_id": "Identifier of the split the results belong to (see splits.tsv).",
}
#: Whole-number columns of ``trials.tsv`` (missing for some models, hence nullable).
INTEGER_COLUMNS = ("trial", "seed", "best_epoch", "epochs")
SPLITS_COLUMNS = {
    "source": "Raw FLAIR image, relative to the input dataset.",
    "participant_id": "Subject; all images of a subject share its split.",
    "session_id": "Session of the image (n/a when the dataset has no sessions).",
    "target": "1 for the positive label (patients), 0 for the negative label.",
    "split": "train, validation (early stopping, checkpoint) or holdout (final evaluation).",
}


def split_id(splits: pd.DataFrame) -> str:
    """A short fingerprint of which image is in which split."""
    lines = sorted(f"{s}\t{p}" for s, p in zip(splits["source"], splits["split"], strict=True))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:12]


def merge_results(path: Path, new: pd.DataFrame) -> pd.DataFrame:
    """Write ``new`` into the table at ``path``, replacing rows of the same models.

    Rows of other models are kept when they share ``new``'s ``split_id``, dropped otherwise.
    Returns the written table.
    """
    if path.is_file():
        old = bids.read_tsv(path)
        same_split = old["split_id"].isin(new["split_id"].unique())
        kept = old[same_split & ~old["model"].isin(new["model"].unique())]
        new = pd.concat([kept, new], ignore_index=True) if len(kept) else new
    new = new.astype({c: "Int64" for c in INTEGER_COLUMNS if c in new})
    bids.write_tsv(path, new)
    return new


class Results(NamedTuple):
    """One model's (one trial's) rows of ``trials.tsv``, ``predictions.tsv`` and ``roc.tsv``."""

    trial: dict
    predictions: pd.DataFrame
    roc: pd.DataFrame


def result_rows(
    description: dict, trial: int, holdout: pd.DataFrame, scores: np.ndarray, split: str, **extra
) -> Results:
    """Score one model's holdout predictions (``scores`` > 0: positive) into result rows.

    Parameters
    ----------
    description : dict
        The :data:`DESCRIPTION` columns of the model.
    trial : int
        Trial number (1 for deterministic models).
    holdout : DataFrame
        Holdout rows of the split table (``source``, ``participant_id``, ``target``).
    scores : ndarray of shape (n_holdout,)
        Logits or SVM decision values.
    split : str
        :func:`split_id` of the split.
    **extra
        Further columns of the ``trials.tsv`` row.
    """
    common = {**description, "trial": trial, "split_id": split}
    targets = holdout["target"].to_numpy()
    predictions = holdout[["source", "participant_id", "target"]].assign(score=scores)
    return Results(
        {**common, **extra, **binary_metrics(targets, scores)},
        predictions.assign(**common),
        roc_points(targets, scores).assign(**common),
    )


def write_results(output_dir: Path, results: list[Results]) -> pd.DataFrame:
    """Merge results into the group tables and rewrite ``performance.tsv``; return all trials."""
    trials = merge_results(
        derivatives.path(output_dir, "trials"), pd.DataFrame([r.trial for r in results])
    )
    merge_results(
        derivatives.path(output_dir, "group_predictions"),
        pd.concat([r.predictions for r in results]),
    )
    merge_results(derivatives.path(output_dir, "roc"), pd.concat([r.roc for r in results]))
    performance = summarise_trials(trials, by=[*DESCRIPTION, "split_id"])
    path = derivatives.path(output_dir, "performance")
    bids.write_tsv(path, performance, PERFORMANCE_COLUMNS)
    LOGGER.info("holdout performance (%s):\n%s", path, performance.to_string(index=False))
    return trials
