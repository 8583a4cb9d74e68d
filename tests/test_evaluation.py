"""Holdout metrics and their summary over trials (msxai_bids.model.evaluation)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from msxai_bids.model.evaluation import METRICS, binary_metrics, roc_points, summarise_trials


def test_metrics_match_hand_counts():
    # 4 patients (3 found), 6 controls (4 rejected): sens 3/4, spec 4/6.
    targets = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    scores = np.array([2.0, 0.5, 0.1, -0.3, -1.0, -2.0, 0.2, 0.7, -0.1, -0.5])
    metrics = binary_metrics(targets, scores)
    assert metrics["sensitivity"] == pytest.approx(0.75)
    assert metrics["specificity"] == pytest.approx(4 / 6)
    assert metrics["balanced_accuracy"] == pytest.approx((0.75 + 4 / 6) / 2)
    # AUC = share of (patient, control) pairs ranked correctly
    pairs = [(p > c) for p in scores[:4] for c in scores[4:]]
    assert metrics["auc"] == pytest.approx(np.mean(pairs))


def test_score_zero_is_a_negative_decision_and_auc_undefined_for_one_class():
    metrics = binary_metrics(np.array([0, 0]), np.array([0.0, -1.0]))
    assert metrics["specificity"] == 1.0 and np.isnan(metrics["auc"])


def test_roc_points_run_from_origin_to_one():
    roc = roc_points(np.array([0, 1, 0, 1]), np.array([-1.0, 2.0, 0.5, 1.0]))
    assert list(roc.columns) == ["fpr", "tpr", "threshold"]
    assert (roc["fpr"].iloc[0], roc["tpr"].iloc[-1]) == (0.0, 1.0)
    assert roc["fpr"].is_monotonic_increasing and roc["tpr"].is_monotonic_increasing


def test_summary_gives_mean_and_sample_sd_per_model():
    trials = pd.DataFrame(
        {
            "model": ["cnn", "cnn", "cnn", "svm"],
            **{m: [0.6, 0.8, 1.0, 0.5] for m in METRICS},
        }
    )
    table = summarise_trials(trials).set_index("model")
    assert table.loc["cnn", "n_trials"] == 3 and table.loc["svm", "n_trials"] == 1
    assert table.loc["cnn", "auc"] == pytest.approx(0.8)
    assert table.loc["cnn", "auc_sd"] == pytest.approx(0.2)
    assert np.isnan(table.loc["svm", "auc_sd"])
