"""From the audit's numbers per participant to one table: each test, its baselines, a verdict.

Each row holds one number of one method (a mean over the audited participants), the baselines it
is judged against, the threshold written out, and whether it passed. A method passes a test when
every row of that test passes.
"""

from __future__ import annotations

import pandas as pd
from scipy import stats

#: Largest mean similarity (Spearman ρ of |map|, SSIM) to the fully randomised model's map that
#: still counts as "the map changed".
MAX_RANDOMISED_SIMILARITY = 0.5
#: Significance level of the one-sided Wilcoxon test of MoRF against random order.
FAITHFULNESS_ALPHA = 0.05

#: Per-participant numbers the verdicts read, described for the participants table.
PARTICIPANT_COLUMNS = {
    "randomised_rank_correlation": "Spearman rho of |map| with the fully randomised model's "
    "|map| over the brain (audit; low is good).",
    "randomised_ssim": "SSIM of |map| with the fully randomised model's |map| (audit).",
    "relevance_mass_accuracy": "Share of positive relevance in lesions (Eq. 2), patients with "
    "lesions (audit).",
    "relevance_rank_accuracy": "Share of the map's top-K voxels in lesions, K the lesion size "
    "(audit).",
    "uniform_map_accuracy": "Lesion coverage of the brain: both accuracies of a uniform map.",
    "randomised_mass_accuracy": "Relevance mass accuracy of the fully randomised model's map.",
    "randomised_rank_accuracy": "Relevance rank accuracy of the fully randomised model's map.",
    "intensity_mass_accuracy": "Relevance mass accuracy of the FLAIR intensity used as a map.",
    "intensity_rank_accuracy": "Relevance rank accuracy of the FLAIR intensity used as a map.",
    "aopc_most_relevant_first": "Mean logit drop over the region-perturbation steps, most "
    "relevant regions first (audit).",
    "aopc_random_order": "The same in random order (regions drawn anew at each step).",
}

#: Columns of the audit table, described in its sidecar.
AUDIT_COLUMNS = {
    "method": "Explanation method.",
    "test": "randomisation, localisation or faithfulness.",
    "measure": "What value holds.",
    "n": "Participants the mean runs over.",
    "value": "Mean of the measure over those participants.",
    "uniform_map": "Baseline: a uniform map (the lesion coverage).",
    "randomised_model": "Baseline: the map of the same method on the fully randomised model.",
    "input_intensity": "Baseline: the FLAIR intensity used as a map.",
    "random_order": "Baseline: perturbation in random order.",
    "p_value": "One-sided Wilcoxon signed-rank p of value > random_order.",
    "threshold": "What value must satisfy to pass.",
    "passed": "Whether it does.",
}


def _mean(values: pd.Series) -> float:
    return float(values.mean()) if values.notna().any() else float("nan")


def randomisation_rows(results: pd.DataFrame) -> list[dict]:
    """Mean similarity to the fully randomised map must stay below the threshold."""
    rows = []
    for column, measure in (
        ("randomised_rank_correlation", "rank_correlation_with_randomised"),
        ("randomised_ssim", "ssim_with_randomised"),
    ):
        value = _mean(results[column])
        rows.append(
            {
                "test": "randomisation",
                "measure": measure,
                "n": int(results[column].notna().sum()),
                "value": value,
                "threshold": f"value < {MAX_RANDOMISED_SIMILARITY}",
                "passed": bool(value < MAX_RANDOMISED_SIMILARITY),
            }
        )
    return rows


def localisation_rows(results: pd.DataFrame) -> list[dict]:
    """Each accuracy must beat the largest of its three baselines (patients with lesions only)."""
    lesioned = results[(results["target"] == 1) & results["uniform_map_accuracy"].gt(0)]
    rows = []
    for kind in ("mass", "rank"):
        baselines = {
            "uniform_map": _mean(lesioned["uniform_map_accuracy"]),
            "randomised_model": _mean(lesioned[f"randomised_{kind}_accuracy"]),
            "input_intensity": _mean(lesioned[f"intensity_{kind}_accuracy"]),
        }
        value = _mean(lesioned[f"relevance_{kind}_accuracy"])
        best = max(baselines.values())
        rows.append(
            {
                "test": "localisation",
                "measure": f"relevance_{kind}_accuracy",
                "n": len(lesioned),
                "value": value,
                **baselines,
                "threshold": f"value > {best:.4g} (largest baseline)",
                "passed": bool(value > best),
            }
        )
    return rows


def faithfulness_rows(results: pd.DataFrame) -> list[dict]:
    """AOPC in most-relevant-first order must exceed random order's, one-sided Wilcoxon p < α."""
    paired = results[["aopc_most_relevant_first", "aopc_random_order"]].dropna()
    difference = paired["aopc_most_relevant_first"] - paired["aopc_random_order"]
    p = (
        float(stats.wilcoxon(difference, alternative="greater").pvalue)
        if (difference != 0).any()
        else float("nan")
    )
    value, baseline = _mean(paired["aopc_most_relevant_first"]), _mean(paired["aopc_random_order"])
    return [
        {
            "test": "faithfulness",
            "measure": "aopc_most_relevant_first",
            "n": len(paired),
            "value": value,
            "random_order": baseline,
            "p_value": p,
            "threshold": f"value > random_order and p < {FAITHFULNESS_ALPHA}",
            "passed": bool(value > baseline and p < FAITHFULNESS_ALPHA),
        }
    ]


def audit_table(results: pd.DataFrame) -> pd.DataFrame:
    """The audit table of every method in ``results`` (one row per participant and method).

    ``results`` has ``method``, ``target`` and the columns of :data:`PARTICIPANT_COLUMNS`;
    NaN marks what could not be measured for a participant (no lesion, a constant map).
    """
    rows = []
    for method, part in results.groupby("method", sort=False):
        for row in randomisation_rows(part) + localisation_rows(part) + faithfulness_rows(part):
            rows.append({"method": method, **row})
    return pd.DataFrame(rows).reindex(columns=list(AUDIT_COLUMNS))
