"""What heatmaps reveal across people: class means, region differences, lesion statistics.

The paper's analyses (Eitel et al. 2019, Figs. 3–5) as pure functions on arrays and tables, so
that each can be checked on planted data: mean heatmaps of patients and controls and of those
classified correctly, relevance per region by class with the patient − control difference, and
the relation of lesion load to relevance (Eq. 2 by class, a permutation-tested correlation).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import stats

from msxai_bids.model.evaluation import binary_metrics

#: Subsets of participants whose heatmaps are averaged (paper Fig. 3): by true class, and the
#: correctly classified ones of each class.
COHORTS = ("patients", "controls", "truepatients", "truecontrols")


def cohort_members(targets: np.ndarray, predicted: np.ndarray) -> dict[str, np.ndarray]:
    """Boolean membership of each participant in each of :data:`COHORTS`.

    Parameters
    ----------
    targets, predicted : np.ndarray of shape (n,)
        True and predicted class, 1 for patients (the positive label), 0 for controls.
    """
    targets, predicted = np.asarray(targets, bool), np.asarray(predicted, bool)
    return {
        "patients": targets,
        "controls": ~targets,
        "truepatients": targets & predicted,
        "truecontrols": ~targets & ~predicted,
    }


def mean_maps(maps: np.ndarray, members: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Voxel-wise mean heatmap of each non-empty cohort.

    Parameters
    ----------
    maps : np.ndarray of shape (n, X, Y, Z)
        One heatmap per participant.
    members : mapping of str to bool array of shape (n,)
        Cohort name → who belongs to it (see :func:`cohort_members`).

    Returns
    -------
    dict of str to np.ndarray of shape (X, Y, Z), float32
        Cohorts without members are left out.
    """
    return {
        name: maps[chosen].mean(axis=0, dtype=np.float64).astype(np.float32)
        for name, chosen in members.items()
        if chosen.any()
    }


def region_summary(tables: list[pd.DataFrame], targets: np.ndarray) -> pd.DataFrame:
    """Relevance per region by class: mean ± sd over participants and the difference of means.

    Parameters
    ----------
    tables : list of DataFrame
        One region table per participant, all of the same atlas (columns ``name``,
        ``relevance_sum`` and ``seen_share``, as :func:`msxai_bids.explain.regions.bilateral_table`
        gives).
    targets : np.ndarray of shape (n,)
        1 for patients, 0 for controls, in the order of ``tables``.

    Returns
    -------
    DataFrame
        One row per region: ``name``, ``patients_mean``, ``patients_sd``, ``controls_mean``,
        ``controls_sd`` (sums of relevance in the region), ``difference`` (patients − controls)
        ``abs_mean_sum`` (|patients_mean| + |controls_mean|, the paper's ranking) and
        ``seen_share`` (the share of the region the network can see), sorted by
        ``abs_mean_sum``, largest first. An sd of one participant is NaN.
    """
    sums = pd.concat(
        [table.set_index("name")["relevance_sum"] for table in tables], axis=1, ignore_index=True
    )
    targets = np.asarray(targets, bool)
    summary = pd.DataFrame(
        {
            "patients_mean": sums.loc[:, targets].mean(axis=1),
            "patients_sd": sums.loc[:, targets].std(axis=1, ddof=1),
            "controls_mean": sums.loc[:, ~targets].mean(axis=1),
            "controls_sd": sums.loc[:, ~targets].std(axis=1, ddof=1),
        }
    )
    summary["difference"] = summary["patients_mean"] - summary["controls_mean"]
    summary["abs_mean_sum"] = summary["patients_mean"].abs() + summary["controls_mean"].abs()
    summary["seen_share"] = tables[0].set_index("name")["seen_share"]
    summary = summary.sort_values("abs_mean_sum", ascending=False, kind="stable")
    return summary.rename_axis("name").reset_index()


def top_regions(summary: pd.DataFrame, n: int, *, leave_out: tuple[str, ...] = ()) -> pd.DataFrame:
    """The ``n`` regions with the largest summed absolute mean (``leave_out``: names skipped)."""
    return summary[~summary["name"].isin(leave_out)].head(n).reset_index(drop=True)


def correlation(
    x: np.ndarray, y: np.ndarray, *, n_resamples: int, seed: int
) -> tuple[float, float]:
    """Pearson r of ``x`` and ``y`` and its two-sided permutation p-value.

    The null distribution pairs ``y`` with ``x`` at random (``scipy.stats.permutation_test``,
    ``permutation_type="pairings"``); fewer than three pairs or a constant variable give NaN.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan"), float("nan")
    # scipy counts the exact permutations in floating point; for large cohorts the count
    # overflows to inf, which only means "draw n_resamples at random"
    with np.errstate(over="ignore"):
        result = stats.permutation_test(
            (x, y),
            lambda a, b: stats.pearsonr(a, b).statistic,
            permutation_type="pairings",
            n_resamples=n_resamples,
            alternative="two-sided",
            rng=np.random.default_rng(seed),
        )
    return float(result.statistic), float(result.pvalue)


def enrichment(table: pd.DataFrame) -> pd.Series:
    """Lesion relevance over lesion coverage per row; NaN where lesions cover nothing."""
    coverage = table["lesion_coverage"].where(table["lesion_coverage"] > 0)
    return table["lesion_relevance"] / coverage


def lesion_rows(
    table: pd.DataFrame, *, subsets: Mapping[str, np.ndarray], n_resamples: int, seed: int
) -> pd.DataFrame:
    """Lesion statistics per subset of participants (all, train, holdout…) and class.

    Parameters
    ----------
    table : DataFrame
        One row per participant with ``target``, ``lesion_load_ml``, ``lesion_relevance``
        (paper Eq. 2) and ``relevance_sum``.
    subsets : mapping of str to bool array
        Name → rows it holds, e.g. ``{"all": …, "holdout": …}``.

    Returns
    -------
    DataFrame
        Per subset and class (``patients``, ``controls``, ``all``): ``n``, the mean and sd of
        ``lesion_relevance``, the mean ``lesion_coverage`` and the mean of their ratio per
        participant (``lesion_enrichment``: how many times more relevance lesions receive than
        their share of the brain), and over the subset's participants with a lesion mask the
        Pearson ``r`` of lesion load with relevance sum and its permutation ``p``.
    """
    rows = []
    for subset, chosen in subsets.items():
        for cohort, in_class in (("patients", 1), ("controls", 0), ("all", None)):
            part = table[chosen & (True if in_class is None else table["target"] == in_class)]
            part = part[part["lesion_load_ml"].notna()]
            r, p = correlation(
                part["lesion_load_ml"], part["relevance_sum"], n_resamples=n_resamples, seed=seed
            )
            rows.append(
                {
                    "subset": subset,
                    "cohort": cohort,
                    "n": len(part),
                    "lesion_relevance_mean": part["lesion_relevance"].mean(),
                    "lesion_relevance_sd": part["lesion_relevance"].std(ddof=1),
                    "lesion_coverage_mean": part["lesion_coverage"].mean(),
                    "lesion_enrichment_mean": enrichment(part).mean(),
                    "r_lesion_load_relevance_sum": r,
                    "p_permutation": p,
                }
            )
    return pd.DataFrame(rows)


def classification_rows(
    table: pd.DataFrame, scores: np.ndarray, subsets: Mapping[str, np.ndarray]
) -> pd.DataFrame:
    """How well one model's decisions match the labels, per subset of images.

    Parameters
    ----------
    table : DataFrame
        One row per image with ``target`` (1 patients, 0 controls).
    scores : array of shape (n_images,)
        Decision scores of the model; ``score > 0`` is a patient.
    subsets : mapping of str to bool array
        Name → rows it holds, e.g. ``{"all": …, "holdout": …}``.

    Returns
    -------
    DataFrame
        Per subset: ``n``, ``n_patients``, ``n_controls`` and :func:`binary_metrics`.
    """
    targets = table["target"].to_numpy()
    rows = []
    for subset, chosen in subsets.items():
        rows.append(
            {
                "subset": subset,
                "n": int(chosen.sum()),
                "n_patients": int(targets[chosen].sum()),
                "n_controls": int((1 - targets[chosen]).sum()),
                **binary_metrics(targets[chosen], scores[chosen]),
            }
        )
    return pd.DataFrame(rows)
