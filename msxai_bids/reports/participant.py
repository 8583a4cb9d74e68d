"""The participant report ``OUT/sub-<L>.html``: what was found, how well it registered, what the
model decided and which voxels drove the decision, drawn from the derivatives in OUT.

One report per subject, one block per image (sessions, runs), in fMRIPrep's sections:
Summary, Registration, Prediction, Explanation, Errors, About. Figures go to
``OUT/sub-<L>/figures/``, named by the entities of the image they show.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nb
import numpy as np
from bids.layout import BIDSFile

from msxai_bids import bids, derivatives
from msxai_bids.explain.regions import OUTSIDE
from msxai_bids.reports import figures
from msxai_bids.reports.html import Figure, draw, linked, software_versions, write_page

#: Regions listed per atlas in a participant's report.
TOP_REGIONS = 10


@dataclass(frozen=True)
class ReportContext:
    """What every report shows besides the participant's own files.

    ``scales`` maps (model, method) to the symmetric colour limit shared by all participants;
    ``methods_text`` holds the paragraphs of :mod:`msxai_bids.reports.citation`; ``crashes``
    maps a raw image (relative path) to its crash files: name, failed node and last line.
    """

    output_dir: Path
    command: str
    run_id: str
    scales: Mapping[tuple[str, str], float]
    methods_text: tuple[str, ...] = ()
    crashes: Mapping[str, list[dict]] = field(default_factory=dict)


def heatmap_scale(heatmaps: Sequence[Path]) -> float:
    """Colour limit shared by maps of one model and method: the median of their 99.9th
    percentiles of |relevance|, so that one participant's extreme map does not wash out the rest.
    """
    limits = []
    for path in heatmaps:
        try:
            values = np.abs(np.asanyarray(nb.load(path).dataobj, np.float32))
        except FileNotFoundError:  # deleted since listed: see bids.explained_heatmaps
            continue
        values = values[values > 0]
        if values.size:
            limits.append(np.percentile(values, 99.9))
    return float(np.median(limits)) if limits else 1.0


def heatmap_scales(output_dir: Path, flairs: Sequence[BIDSFile]) -> dict[tuple[str, str], float]:
    """:func:`heatmap_scale` of every model and method, over all ``flairs`` explained in OUT."""
    grouped: dict[tuple[str, str], list[Path]] = {}
    for path, meta in bids.explained_heatmaps(output_dir, flairs):
        grouped.setdefault((meta["ModelName"], meta["Method"]), []).append(path)
    return {key: heatmap_scale(paths) for key, paths in sorted(grouped.items())}


def registration_section(output_dir: Path, flair: BIDSFile) -> dict:
    """QC numbers, the template's outlines over the registered image, and a mosaic."""
    entities, root = flair.entities, output_dir
    qc_file = derivatives.find(output_dir, "qc", entities)
    image = derivatives.find(output_dir, "preproc", entities)
    mosaic = derivatives.path(output_dir, "mosaic_figure", entities)
    return {
        "qc": json.loads(qc_file.read_text()) if qc_file else None,
        "figures": [
            linked(derivatives.find(output_dir, "qc_figure", entities), root,
                   "Template brain and white-matter outlines over the registered image"),
            draw(lambda: figures.anatomy_mosaic(nb.load(image), mosaic, flair.filename), root,
                 "The registered image on the CNN grid")
            if image else Figure("The registered image on the CNN grid", error="no image"),
        ],
    }  # fmt: skip


def region_tops(output_dir: Path, flair: BIDSFile, model: str, method: str) -> list[dict]:
    """Per atlas, the regions of largest absolute relevance (left and right summed)."""
    tables = []
    label = derivatives.method_label(method)
    kind = derivatives.KINDS["regions_bilateral"]
    for path in kind.glob(output_dir, flair.entities, model=model, method=label):
        table = bids.read_tsv(path)
        table = table[table["name"] != OUTSIDE]
        top = table.reindex(table["relevance_sum"].abs().sort_values(ascending=False).index)
        tables.append(
            {
                "atlas": derivatives.entity_value(path, "atlas"),
                "rows": top.head(TOP_REGIONS).to_dict("records"),
            }
        )
    return tables


def explanation_section(context: ReportContext, flair: BIDSFile, heatmap: Path, meta: dict) -> dict:
    """One method's maps of one model: the figures, the viewer, lesion relevance, regions."""
    output_dir, entities = context.output_dir, flair.entities
    names = {"model": meta["ModelName"], "method": derivatives.method_label(meta["Method"])}
    scale = context.scales.get((meta["ModelName"], meta["Method"]), 1.0)
    background = nb.load(derivatives.find(output_dir, "preproc", entities))
    lesion_file = derivatives.find(output_dir, "lesion_mask", entities)
    lesion = nb.load(lesion_file) if lesion_file else None
    if lesion is not None and not np.asanyarray(lesion.dataobj).any():
        lesion = None  # a control's empty mask: nothing to outline
    views = derivatives.path(output_dir, "heatmap_figure", entities, **names)
    viewer = derivatives.path(output_dir, "heatmap_viewer", entities, **names)
    title = f"{flair.filename}: {meta['Method']}, {meta['ModelName']}"
    return {
        "method": meta["Method"],
        "meta": meta,
        "scale": scale,
        "views": draw(
            lambda: figures.relevance_views(
                nb.load(heatmap), background, views, vmax=scale, title=title, lesion_mask=lesion
            ),
            output_dir,
            "Relevance over the registered image (red: evidence for "
            f"{meta['PositiveLabel']}; blue: against)"
            + ("; lesions outlined in green" if lesion else ""),
        ),
        "viewer": draw(
            lambda: figures.slice_viewer(nb.load(heatmap), background, viewer, vmax=scale),
            output_dir,
            "Interactive slice viewer",
        ),
        "regions": region_tops(output_dir, flair, names["model"], meta["Method"]),
    }


def prediction_sections(context: ReportContext, flair: BIDSFile) -> list[dict]:
    """Per model that explained this image: its decision and one section per method."""
    output_dir = context.output_dir
    by_model: dict[str, list] = {}
    for heatmap, meta in bids.explained_heatmaps(output_dir, [flair]):
        by_model.setdefault(meta["ModelName"], []).append((heatmap, meta))
    models = []
    for model, maps in sorted(by_model.items()):
        table = derivatives.find(output_dir, "predictions", flair.entities, model=model)
        models.append(
            {
                "name": model,
                "prediction": bids.read_tsv(table).iloc[0].to_dict() if table else None,
                "card": maps[0][1],
                "methods": [explanation_section(context, flair, h, m) for h, m in maps],
            }
        )
    return models


def image_block(context: ReportContext, flair: BIDSFile) -> dict:
    """Everything the report shows about one raw image."""
    output_dir, entities = context.output_dir, flair.entities
    lesion = derivatives.find(output_dir, "lesion_mask", entities)
    return {
        "source": flair.relpath,
        "session": entities.get("session"),
        "lesion_mask": lesion.relative_to(output_dir).as_posix() if lesion else None,
        "lesion_filled": derivatives.find(output_dir, "lesionfilled", entities) is not None,
        "preprocessed": derivatives.find(output_dir, "preproc", entities) is not None,
        "registration": registration_section(output_dir, flair),
        "models": prediction_sections(context, flair)
        if derivatives.find(output_dir, "preproc", entities)
        else [],
        "errors": context.crashes.get(flair.relpath, []),
    }


def write_participant_report(
    context: ReportContext, subject: str, flairs: Sequence[BIDSFile]
) -> Path:
    """Write ``OUT/sub-<subject>.html`` for the subject's ``flairs``; return its path."""
    path = derivatives.path(context.output_dir, "report", {"subject": subject})
    return write_page(
        path,
        "participant.html",
        {
            "subject": subject,
            "images": [image_block(context, flair) for flair in flairs],
            "versions": software_versions(),
            "command": context.command,
            "run_id": context.run_id,
            "methods_text": context.methods_text,
        },
    )
