"""Holdout metrics of a binary classifier, per trial and summarised over trials (paper Table 3).

Every classifier here hands over one real-valued *score* per image whose sign is its decision:
the CNN's logit (sigmoid(logit) > 0.5 ⇔ logit > 0) and an SVM's decision function. Metrics
therefore take scores and threshold them at 0; the AUC uses the scores as they are.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix, roc_auc_score, roc_curve

#: Metric columns, in the order of the paper's Table 3.
METRICS = ("balanced_accuracy", "sensitivity", "specificity", "auc")


def binary_metrics(targets: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """Balanced accuracy, sensitivity, specificity and AUC of one set of predictions.

    Parameters
    ----------
    targets : array-like of shape (n_images,)
        1 for the positive class (patients), 0 for the negative class (controls).
    scores : array-like of shape (n_images,)
        Decision scores; ``score > 0`` predicts the positive class.

    Returns
    -------
    dict
        The :data:`METRICS`, as fractions in [0, 1]. With one class only, the metric of the
        missing class and the AUC are NaN (undefined) and the balanced accuracy is the other.
    """
    targets = np.asarray(targets, dtype=int)
    scores = np.asarray(scores, dtype=float)
    (tn, fp), (fn, tp) = confusion_matrix(targets, (scores > 0).astype(int), labels=[0, 1])
    sensitivity = tp / (tp + fn) if tp + fn else np.nan
    specificity = tn / (tn + fp) if tn + fp else np.nan
    both = tp + fn > 0 and tn + fp > 0
    return {
        "balanced_accuracy": float(np.nanmean([sensitivity, specificity])),
        "sensitivity": float(sensitivity),
        "specificity": float(specificity),
        "auc": float(roc_auc_score(targets, scores)) if both else float("nan"),
    }


def roc_points(targets: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
    """The ROC curve as a table with columns ``fpr``, ``tpr`` and ``threshold`` (score units)."""
    fpr, tpr, thresholds = roc_curve(np.asarray(targets, dtype=int), np.asarray(scores, float))
    return pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": thresholds})


def summarise_trials(trials: pd.DataFrame, by: str | list[str] = "model") -> pd.DataFrame:
    """Mean and standard deviation of the :data:`METRICS` over the trials of each model.

    Parameters
    ----------
    trials : DataFrame
        One row per (model, trial) with a column per metric.
    by : str or list of str
        Column(s) naming the model.

    Returns
    -------
    DataFrame
        One row per model, in first-appearance order, with ``n_trials``, ``<metric>`` (mean)
        and ``<metric>_sd`` (sample standard deviation, NaN for a single trial).
    """
    grouped = trials.groupby(by, sort=False, dropna=False)[list(METRICS)]
    means, sds = grouped.mean(), grouped.std(ddof=1).add_suffix("_sd")
    columns = [c for metric in METRICS for c in (metric, f"{metric}_sd")]
    table = pd.concat([means, sds], axis=1)[columns]
    table.insert(0, "n_trials", grouped.size())
    return table.reset_index()
