"""Charts of the group report, drawn with matplotlib from the group tables.

Each takes the table as the group level wrote it (column names of ``OUT/group/*.tsv``), draws
one figure and writes it atomically; the numbers shown are the table's, never recomputed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from msxai_bids.reports.figures import pyplot, save

#: One colour per class, the same in every chart.
CLASS_COLOURS = {"patients": "tab:red", "controls": "tab:blue"}


def roc_curves(roc: pd.DataFrame, out_file: Path) -> Path:
    """Holdout ROC curve of every trial, one panel per model (``roc.tsv``: fpr, tpr, trial)."""
    plt = pyplot()
    models = sorted(roc["model"].unique())
    figure, axes = plt.subplots(1, len(models), figsize=(3.2 * len(models), 3.4), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        for _, trial in roc[roc["model"] == model].groupby("trial"):
            ax.plot(trial["fpr"], trial["tpr"], color="tab:purple", alpha=0.5, lw=1)
        ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1)
        ax.set(title=model, xlabel="1 − specificity", xlim=(0, 1), ylim=(0, 1.02), aspect="equal")
        ax.title.set_fontsize(8)
    axes[0][0].set_ylabel("sensitivity")
    figure.tight_layout()
    return save(figure, out_file)


def region_bars(top: pd.DataFrame, out_file: Path, title: str) -> Path:
    """Mean relevance of the top regions for patients and controls with their SD (paper Fig. 5).

    ``top`` is a ``topregions.tsv``: name, patients_mean/sd, controls_mean/sd, in shown order.
    """
    plt = pyplot()
    figure, ax = plt.subplots(figsize=(10, 0.25 * len(top) + 1.2))
    rows = np.arange(len(top))
    for offset, cohort in ((-0.2, "patients"), (0.2, "controls")):
        ax.barh(
            rows + offset, top[f"{cohort}_mean"], xerr=top[f"{cohort}_sd"], height=0.4,
            color=CLASS_COLOURS[cohort], label=cohort, error_kw={"lw": 0.6},
        )  # fmt: skip
    names = [name if len(name) <= 48 else name[:47] + "…" for name in top["name"]]
    ax.set_yticks(rows, names, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(0, color="black", lw=0.6)
    ax.set(xlabel="summed relevance in the region (mean ± SD over participants)", title=title)
    ax.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    return save(figure, out_file)


def lesion_scatter(participants: pd.DataFrame, lesions: pd.DataFrame, out_file: Path) -> Path:
    """Lesion load against relevance sum by class, with the r and p of ``lesions.tsv`` (Fig. 4).

    ``participants`` holds one method's rows of ``participants.tsv`` (``target``,
    ``lesion_load_ml``, ``relevance_sum``); ``lesions`` that method's ``lesions.tsv``.
    """
    plt = pyplot()
    figure, ax = plt.subplots(figsize=(5, 4))
    stats = lesions[lesions["subset"] == "all"].set_index("cohort")
    for target, cohort in ((1, "patients"), (0, "controls")):
        rows = participants[participants["target"] == target]
        label = cohort
        if cohort in stats.index:
            r, p = stats.loc[cohort, ["r_lesion_load_relevance_sum", "p_permutation"]]
            label = f"{cohort}: r = {r:.2f}, p = {p:.3g}"
        ax.scatter(rows["lesion_load_ml"], rows["relevance_sum"], s=14, label=label,
                   color=CLASS_COLOURS[cohort])  # fmt: skip
    ax.set(xlabel="lesion load (ml)", ylabel="relevance sum")
    ax.legend(fontsize=8)
    figure.tight_layout()
    return save(figure, out_file)


def audit_curves(
    randomisation: pd.DataFrame, perturbation: pd.DataFrame, out_file: Path, title: str
) -> Path:
    """The audit's curves of one method: similarity along the randomisation cascade, and the
    logit's drop under perturbation, most relevant first against random order (means over
    participants, from ``randomisation.tsv`` and ``perturbation.tsv``)."""
    plt = pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    cascade = randomisation.groupby(["step", "randomised_down_to"], sort=True)
    means = cascade[["rank_correlation", "ssim"]].mean().reset_index()
    for column, label in (("rank_correlation", "Spearman"), ("ssim", "SSIM")):
        left.plot(means["step"], means[column], marker="o", label=label)
    left.set_xticks(means["step"], means["randomised_down_to"])
    left.axhline(0.5, color="grey", ls=":", lw=1)
    left.set(xlabel="randomised down to", ylabel="similarity to the trained map",
             ylim=(-0.1, 1.05), title="model randomisation")  # fmt: skip
    left.legend(fontsize=8)
    curves = perturbation.groupby(["order", "step"], sort=True)[["perturbed_share", "logit_drop"]]
    for order, curve in curves.mean().reset_index().groupby("order"):
        right.plot(100 * curve["perturbed_share"], curve["logit_drop"], label=order)
    right.set(xlabel="share of the brain perturbed (%)", ylabel="drop of the logit",
              title="region perturbation")  # fmt: skip
    right.legend(fontsize=8)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return save(figure, out_file)
