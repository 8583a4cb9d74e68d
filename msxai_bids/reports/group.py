"""The group report ``OUT/group.html``: the paper's results of a cohort on one page, drawn from
the group tables in OUT.

Sections: Quality (flagged registrations, each linked to its participant report), Training (the
paper's Table 3, ROC curves and every trial, when ``group --train`` ran), then per model its
decisions and, per method, the class mean maps (Fig. 3), region bars (Fig. 5), the lesion
scatter (Fig. 4), the models side by side (Fig. 6) and the explanation audit.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd

from msxai_bids import bids, derivatives
from msxai_bids.group.summaries import COHORTS
from msxai_bids.reports import charts, figures
from msxai_bids.reports.html import Figure, draw, linked, software_versions, write_page


def table_or_none(path: Path) -> pd.DataFrame | None:
    """A group table, or None when the run that writes it did not happen."""
    return bids.read_tsv(path) if path.is_file() else None


def records(table: pd.DataFrame | None) -> list[dict]:
    """Rows of ``table`` for the templates (missing values as None)."""
    if table is None:
        return []
    return table.astype(object).where(table.notna(), None).to_dict("records")


def quality_section(output_dir: Path, participants: pd.DataFrame | None) -> dict:
    """Every explained image once, the flagged ones first, each with its report's link."""
    if participants is None:
        return {"images": [], "flagged": []}
    images = participants.drop_duplicates("source")[
        ["participant_id", "session_id", "source", "true_label", "registration_plausible"]
    ]
    rows = records(images)
    for row in rows:
        subject = {"subject": row["participant_id"].removeprefix("sub-")}
        report = derivatives.path(output_dir, "report", subject)
        row["report"] = report.name if report.is_file() else None
    flagged = [row for row in rows if row["registration_plausible"] is False]
    return {"images": rows, "flagged": flagged}


def training_section(output_dir: Path) -> dict | None:
    """Table 3, the ROC curves and the trial table, or None without ``group --train``."""
    performance = table_or_none(derivatives.path(output_dir, "performance"))
    if performance is None:
        return None
    roc = table_or_none(derivatives.path(output_dir, "roc"))
    roc_file = derivatives.path(output_dir, "roc_figure")
    return {
        "performance": records(performance),
        "trials": records(table_or_none(derivatives.path(output_dir, "trials"))),
        "roc": draw(lambda: charts.roc_curves(roc, roc_file), output_dir,
                    "Holdout ROC curve of every trial")
        if roc is not None else Figure("Holdout ROC curves", error="no roc.tsv"),
    }  # fmt: skip


def mean_maps_figure(output_dir: Path, names: dict) -> Figure:
    """The cohorts' mean heatmaps of one model and method, one colour scale (Fig. 3)."""
    means = {}
    for cohort in COHORTS:
        path = derivatives.find(output_dir, "mean_heatmap", {}, cohort=cohort, **names)
        if path is not None:
            means[cohort] = np.asanyarray(nb.load(path).dataobj, np.float32)
    out_file = derivatives.path(output_dir, "mean_figure", **names)

    def make() -> Path:
        import ants

        from msxai_bids.preprocessing.spaces import template_brain

        background = ants.to_nibabel_nifti(template_brain())
        title = f"mean relevance, {names['method']}"
        return figures.maps_on_one_scale(means, background, out_file, title)

    if not means:
        return Figure("Mean heatmaps by cohort", error="no mean heatmaps")
    caption = (
        "Mean heatmaps of patients, controls and of those classified correctly, on one colour "
        "scale (red: evidence for the positive label)"
    )
    return draw(make, output_dir, caption)


def method_section(
    output_dir: Path, model: str, method: str, rows: pd.DataFrame, audit: pd.DataFrame | None
) -> dict:
    """Everything the group level wrote for one model and method."""
    names = {"model": model, "method": derivatives.method_label(method)}
    regions = []
    for path in derivatives.KINDS["top_regions"].glob(output_dir, **names):
        atlas = derivatives.entity_value(path, "atlas")
        top = bids.read_tsv(path)
        out_file = derivatives.path(output_dir, "regions_figure", atlas=atlas, **names)
        regions.append({
            "atlas": atlas,
            "figure": draw(lambda top=top, out=out_file, atlas=atlas: charts.region_bars(
                top, out, f"{atlas}: {method}, {model}"), output_dir,
                f"Relevance of the top {len(top)} regions of {atlas}, patients and controls"),
        })  # fmt: skip
    lesions = table_or_none(derivatives.path(output_dir, "lesion_analysis", **names))
    lesion_file = derivatives.path(output_dir, "lesion_figure", **names)
    section = {
        "method": method,
        "means": mean_maps_figure(output_dir, names),
        "regions": regions,
        "lesions": records(lesions),
        "lesion_figure": draw(lambda: charts.lesion_scatter(rows, lesions, lesion_file),
                              output_dir, "Lesion load against relevance sum")
        if lesions is not None and rows["lesion_load_ml"].notna().any()
        else Figure("Lesion load against relevance sum", error="no lesion masks"),
        "audit": None,
    }  # fmt: skip
    if audit is not None and (audit["method"] == method).any():
        section["audit"] = {"rows": records(audit[audit["method"] == method]),
                            "figure": audit_figure(output_dir, names, method)}  # fmt: skip
    return section


def audit_figure(output_dir: Path, names: dict, method: str) -> Figure:
    """The randomisation and perturbation curves of one method."""
    randomisation = table_or_none(derivatives.path(output_dir, "randomisation_curves", **names))
    perturbation = table_or_none(derivatives.path(output_dir, "perturbation_curves", **names))
    if randomisation is None or perturbation is None:
        return Figure("Audit curves", error="no curves")
    out_file = derivatives.path(output_dir, "audit_figure", **names)
    return draw(
        lambda: charts.audit_curves(randomisation, perturbation, out_file, method),
        output_dir,
        "Similarity to the trained model's map as layers are randomised from the output down "
        "(left); drop of the logit as the most relevant voxels are perturbed first, against "
        "random order (right); means over the audited participants",
    )


def model_sections(output_dir: Path, participants: pd.DataFrame | None) -> list[dict]:
    """Per model: its decisions, and one section per method."""
    if participants is None:
        return []
    models = []
    for model, rows in participants.groupby("model", sort=True):
        audit = table_or_none(derivatives.path(output_dir, "audit", model=model))
        classification = derivatives.path(output_dir, "classification", model=model)
        methods = [
            method_section(output_dir, model, method, group, audit)
            for method, group in rows.groupby("method", sort=True)
        ]
        models.append({"name": model, "classification": records(table_or_none(classification)),
                       "methods": methods})  # fmt: skip
    return models


def comparisons(output_dir: Path) -> list[Figure]:
    """The models side by side, per cohort and method, as the group level drew them (Fig. 6)."""
    return [
        linked(path, output_dir, path.name)
        for path in derivatives.KINDS["model_comparison"].glob(output_dir)
    ]


def write_group_report(
    output_dir: Path, *, command: str, run_id: str, methods_text: Sequence[str]
) -> Path:
    """Write ``OUT/group.html`` from the group tables in OUT; return its path."""
    participants = table_or_none(derivatives.path(output_dir, "participants_table"))
    return write_page(
        derivatives.path(output_dir, "group_report"),
        "group.html",
        {
            "quality": quality_section(output_dir, participants),
            "training": training_section(output_dir),
            "models": model_sections(output_dir, participants),
            "comparisons": comparisons(output_dir),
            "versions": software_versions(),
            "command": command,
            "run_id": run_id,
            "methods_text": list(methods_text),
        },
    )
