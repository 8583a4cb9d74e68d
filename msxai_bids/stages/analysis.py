"""Group level: the paper's analyses of the heatmaps that the participant level wrote into OUT.

Reads only derivatives (heatmaps and their sidecars, lesion and brain masks, QC), the labels in
``participants.tsv`` and, where a group run trained a model, ``group/splits.tsv``; so it runs
after participant jobs that ran in parallel on a cluster. For every model and method present:

- mean heatmaps of patients and controls and of those classified correctly (paper Fig. 3);
- per atlas, relevance per region by class, left and right merged, and the top regions (Fig. 5);
- lesion statistics: Eq. 2 by class and the correlation of lesion load with relevance sum,
  for all participants and per split (Fig. 4);
- per model, how well its decisions match the labels, for all participants and per split;

and one table of every explained participant (MRIQC's ``group_*.tsv`` habit), and, with several
models, their mean heatmaps side by side on one colour scale (Fig. 6). With ``--audit``, the
explanation audit (:mod:`msxai_bids.stages.audit`) runs after these analyses and adds its
per-participant numbers to that table.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import ants
import nibabel as nb
import numpy as np
import pandas as pd
from bids.layout import BIDSFile

from msxai_bids import bids, derivatives
from msxai_bids.errors import NoInputError
from msxai_bids.explain.atlases import load_atlas
from msxai_bids.explain.fieldofview import field_of_view_mask
from msxai_bids.explain.regions import OUTSIDE, bilateral_table, region_table
from msxai_bids.grid import CNN_GRID
from msxai_bids.group import summaries, tables
from msxai_bids.group.cohort import Labels, read_labels, registration_plausible
from msxai_bids.model.baselines import lesion_loads_ml
from msxai_bids.model.splits import SPLITS
from msxai_bids.preprocessing.spaces import template_brain
from msxai_bids.reports.figures import maps_on_one_scale

if TYPE_CHECKING:  # the audit loads torch, which only an audit needs
    from msxai_bids.stages.audit import AuditPlan

LOGGER = logging.getLogger("msxai.group")

#: Regions shown per atlas: the paper's 30 grey-matter and 22 white-matter regions.
TOP_REGIONS = {"Neuromorphometrics": 30, "JHU": 22, "JuelichWM": 22}

#: Columns of the participants table, described in its sidecar.
PARTICIPANT_COLUMNS = {
    "participant_id": "Subject.",
    "session_id": "Session of the image (n/a when the dataset has no sessions).",
    "source": "Raw image, relative to the input dataset.",
    "model": "Model whose decision the heatmap explains (the model file's name).",
    "model_id": "Architecture and the start of the weights' SHA-256.",
    "method": "Explanation method.",
    "split": "train, validation or holdout of the split the model was trained on, else n/a.",
    "target": "1 for the positive label (patients), 0 for the negative label.",
    "true_label": "Label in participants.tsv.",
    "predicted_label": "Label the model predicts.",
    "probability": "Probability of the positive label.",
    "lesion_load_ml": "Lesion volume on the CNN grid in ml (n/a without a lesion mask).",
    "lesion_relevance": "Share of positive relevance inside lesions (paper Eq. 2).",
    "lesion_coverage": "Share of the brain mask inside lesions: Eq. 2 of a uniform heatmap.",
    "relevance_sum": "Sum of the heatmap over the grid.",
    "registration_plausible": "The registration QC of the participant level passed.",
}


@dataclass(frozen=True)
class AnalysisPlan:
    """What the analysis stage needs to know of the options.

    ``atlases`` are checked built-in atlas names or atlas files; ``n_resamples`` permutations
    test each correlation, drawn with ``seed``; with ``audit``, the explanation audit runs too.
    """

    output_dir: Path
    bids_dir: Path
    labels: Labels
    atlases: tuple[str, ...]
    seed: int = 0
    n_resamples: int = 9999
    audit: AuditPlan | None = None


def explained_images(
    output_dir: Path, flairs: Sequence[BIDSFile], targets: pd.Series, labels: Labels
) -> pd.DataFrame:
    """One row per labelled image, model and method with a heatmap in ``output_dir``."""
    rows = []
    for flair in flairs:
        subject = f"sub-{flair.entities['subject']}"
        if subject not in targets.index:
            continue
        for heatmap, meta in bids.explained_heatmaps(output_dir, [flair]):
            session = flair.entities.get("session")
            rows.append(
                {
                    "participant_id": subject,
                    "session_id": f"ses-{session}" if session else "n/a",
                    "source": flair.relpath,
                    "model": meta["ModelName"],
                    "model_id": meta["ModelID"],
                    "split_id": meta.get("TrainingSplitID", "n/a"),
                    "method": meta["Method"],
                    "target": int(targets[subject]),
                    "true_label": labels.positive if targets[subject] else labels.negative,
                    "predicted_label": meta["PredictedLabel"],
                    "probability": meta["Probability"],
                    "lesion_relevance": meta.get("LesionRelevanceShare", np.nan),
                    "lesion_coverage": meta.get("LesionCoverageOfBrain", np.nan),
                    "heatmap": heatmap,
                    "image": derivatives.find(output_dir, "preproc", flair.entities),
                    "brain_mask": derivatives.find(output_dir, "brain_mask", flair.entities),
                    "lesion_mask": derivatives.find(output_dir, "lesion_mask", flair.entities),
                    "qc": derivatives.find(output_dir, "qc", flair.entities),
                }
            )
    if not rows:
        raise NoInputError(
            f"{output_dir} holds no heatmap of a labelled participant: run the participant "
            "level with --model first"
        )
    return pd.DataFrame(rows).sort_values(["model", "method", "source"], ignore_index=True)


def with_splits(output_dir: Path, images: pd.DataFrame) -> pd.DataFrame:
    """``images`` with the ``split`` of ``group/splits.tsv`` for the models trained on it.

    A model trained elsewhere (another cohort, a shipped model) has no split here: ``n/a``.
    """
    path = derivatives.path(output_dir, "splits")
    if not path.is_file():
        return images.assign(split="n/a")
    saved = bids.read_tsv(path)[["source", "split"]]
    merged = images.merge(saved, on="source", how="left").fillna({"split": "n/a"})
    other = merged["split_id"] != tables.split_id(saved)
    for model in sorted(set(merged.loc[other, "model"])):
        LOGGER.info("%s was not trained on %s: its rows have no split", model, path.name)
    return merged.assign(split=merged["split"].where(~other, "n/a"))


def write_mean_maps(
    plan: AnalysisPlan, group: pd.DataFrame, maps: np.ndarray, names: dict
) -> dict[str, np.ndarray]:
    """Mean heatmaps per cohort, each with a sidecar listing who entered it."""
    predicted = (group["predicted_label"] == plan.labels.positive).to_numpy()
    members = summaries.cohort_members(group["target"].to_numpy(), predicted)
    means = summaries.mean_maps(maps, members)
    for cohort, mean in means.items():
        image = nb.Nifti1Image(mean, CNN_GRID.affine)
        image.header.set_xyzt_units("mm")
        meta = {
            "ModelName": names["model"],
            "ModelID": group["model_id"].iloc[0],
            "Method": group["method"].iloc[0],
            "Cohort": cohort,
            "Participants": group.loc[members[cohort], "source"].tolist(),
        }
        path = derivatives.path(plan.output_dir, "mean_heatmap", cohort=cohort, **names)
        bids.write_nifti(path, image, meta)
    return means


def write_region_summaries(
    plan: AnalysisPlan, group: pd.DataFrame, maps: np.ndarray, names: dict
) -> None:
    """Per atlas: relevance per (bilateral) region by class, and the top regions."""
    targets = group["target"].to_numpy()
    for atlas_name in plan.atlases:
        atlas = load_atlas(atlas_name)
        seen = field_of_view_mask()
        per_image = [
            bilateral_table(region_table(m, atlas.data, atlas.labels, seen=seen)) for m in maps
        ]
        summary = summaries.region_summary(per_image, targets)
        atlas_names = {**names, "atlas": atlas.name}
        bids.write_tsv(derivatives.path(plan.output_dir, "region_summary", **atlas_names), summary)
        count = TOP_REGIONS.get(atlas.name, max(TOP_REGIONS.values()))
        top = summaries.top_regions(summary, count, leave_out=(OUTSIDE,))
        bids.write_tsv(derivatives.path(plan.output_dir, "top_regions", **atlas_names), top)


def split_subsets(group: pd.DataFrame) -> dict[str, np.ndarray]:
    """All participants, and each split present."""
    subsets = {"all": np.ones(len(group), bool)}
    for split in SPLITS:
        chosen = (group["split"] == split).to_numpy()
        if chosen.any():
            subsets[split] = chosen
    return subsets


def analyse(
    plan: AnalysisPlan, group: pd.DataFrame, names: dict
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Every analysis of one model and method: its participants' rows and cohort means."""
    maps = np.stack([np.asanyarray(nb.load(p).dataobj, np.float32) for p in group["heatmap"]])
    sums = maps.reshape(len(maps), -1).sum(axis=1, dtype=np.float64)
    group = group.assign(relevance_sum=sums)
    LOGGER.info("%s, %s: %d heatmaps", names["model"], group["method"].iloc[0], len(group))
    means = write_mean_maps(plan, group, maps, names)
    write_region_summaries(plan, group, maps, names)
    lesions = summaries.lesion_rows(
        group, subsets=split_subsets(group), n_resamples=plan.n_resamples, seed=plan.seed
    )
    bids.write_tsv(derivatives.path(plan.output_dir, "lesion_analysis", **names), lesions)
    return group, means


def with_lesion_loads(images: pd.DataFrame) -> pd.DataFrame:
    """``images`` with the lesion volume (ml) of each image that has a lesion mask."""
    masks = images["lesion_mask"].dropna()
    loads = pd.Series(lesion_loads_ml(masks.tolist()), index=masks.index, dtype=float)
    return images.assign(lesion_load_ml=loads.reindex(images.index))


def compare_models(plan: AnalysisPlan, means: dict[tuple[str, str], dict]) -> None:
    """With several models, their mean heatmaps per method and cohort on one colour scale."""
    background = ants.to_nibabel_nifti(template_brain())
    for method in sorted({method for _, method in means}):
        by_model = {model: maps for (model, m), maps in means.items() if m == method}
        if len(by_model) < 2:
            continue
        for cohort in summaries.COHORTS:
            shown = {model: maps[cohort] for model, maps in by_model.items() if cohort in maps}
            if len(shown) < 2:
                continue
            path = derivatives.path(
                plan.output_dir, "model_comparison", cohort=cohort, method=method
            )
            maps_on_one_scale(shown, background, path, f"mean relevance, {cohort}, {method}")


def run(flairs: Sequence[BIDSFile], plan: AnalysisPlan) -> int:
    """Analyse every model and method present in OUT; returns 0."""
    labels = plan.labels
    targets = read_labels(plan.bids_dir, labels.column, labels.positive, labels.negative)
    images = explained_images(plan.output_dir, flairs, targets, labels)
    images = with_lesion_loads(with_splits(plan.output_dir, images))
    images["registration_plausible"] = images["qc"].map(registration_plausible)
    if plan.audit is not None:
        from msxai_bids.stages import audit

        audited_models = audit.auditable(images, plan.audit)
    for model, group in images.groupby("model", sort=True):
        decisions = group.drop_duplicates("source")  # one decision per image, whatever the method
        scores = decisions["probability"].to_numpy() - 0.5
        table = summaries.classification_rows(decisions, scores, split_subsets(decisions))
        bids.write_tsv(derivatives.path(plan.output_dir, "classification", model=model), table)
    rows, means = [], {}
    for (model, method), group in images.groupby(["model", "method"], sort=True):
        names = {"model": model, "method": derivatives.method_label(method)}
        analysed, means[(model, names["method"])] = analyse(
            plan, group.reset_index(drop=True), names
        )
        rows.append(analysed)
    table, columns = pd.concat(rows, ignore_index=True), dict(PARTICIPANT_COLUMNS)
    if plan.audit is not None:
        from msxai_bids.audit.verdicts import PARTICIPANT_COLUMNS as AUDIT_COLUMNS

        audited = audit.run(table, audited_models, plan.audit)
        table = table.merge(audited, on=["source", "model", "method"], how="left")
        columns |= AUDIT_COLUMNS
    table = table[list(columns)]
    path = derivatives.path(plan.output_dir, "participants_table")
    bids.write_tsv(path, table, columns)
    compare_models(plan, means)
    LOGGER.info("group analyses of %d heatmap(s) written; participants table: %s", len(table), path)
    return 0
