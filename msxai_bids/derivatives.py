"""Every kind of file msxai writes, described once: the table that names, finds and hides outputs.

A :class:`Kind` holds the BIDS entities, suffix and extension of one kind of derivative. Values in
braces are filled per file: ``{contrast}`` (the source image's suffix, ``FLAIR`` or ``T1w``),
``{method}`` (an explanation method's ``desc-`` label), ``{atlas}``, ``{model}`` (a model's
name, see :func:`model_label`), ``{trial}`` and ``{cohort}``. Participant files add the
entities of their raw image (subject, session, run…); group files and models live in
``group/`` and ``models/`` at the dataset root, and the CNN's field of view on its grid lies
beside the models. ``model-`` is not a BIDS entity yet: the files that carry it (relevance
maps, region tables, predictions) are hidden from validators.

Writers, the group level's lookups and the checks of ``.bidsignore`` all take their names from
:data:`KINDS`; no other module spells a derivative's name.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from msxai_bids.grid import CNN_GRID

#: One pattern for the files of a participant; entity order follows the BIDS specification
#: (``from``/``to``/``mode`` for transforms, ``atlas``/``stat`` as in BEP038/BEP041).
PARTICIPANT_PATTERN = (
    "sub-{subject}[/ses-{session}]/{datatype<anat|figures>|anat}/sub-{subject}[_ses-{session}]"
    "[_acq-{acquisition}][_ce-{ceagent}][_rec-{reconstruction}][_run-{run}]"
    "[_from-{from}][_to-{to}][_mode-{mode}][_space-{space}][_res-{res}][_model-{model}]"
    "[_atlas-{atlas}]"
    "[_label-{label}][_stat-{stat}][_desc-{desc}]_{suffix}{extension}"
)
GROUP_PATTERN = "group/[{model}_][trial-{trial}_]{suffix}{extension}"
ANALYSIS_PATTERN = (
    "group/[space-{space}_][res-{res}_][model-{model}_][atlas-{atlas}_][cohort-{cohort}_]"
    "[desc-{desc}_]{suffix}{extension}"
)
#: Figures of the group report, named like the tables they draw.
GROUP_FIGURE_PATTERN = (
    "group/figures/[model-{model}_][atlas-{atlas}_][cohort-{cohort}_][desc-{desc}_]"
    "{suffix}{extension}"
)
#: HTML reports at the dataset root, as fMRIPrep places them (``sub-01.html``, ``group.html``).
REPORT_PATTERN = "sub-{subject}{extension}"
GROUP_REPORT_PATTERN = "group{extension}"
#: The methods text and its references, beside the logs as fMRIPrep writes them.
CITATION_PATTERN = "logs/CITATION{extension}"
MODEL_PATTERN = "models/{model}{extension}"
#: Files that describe the models' input grid rather than one model, beside the models.
MODEL_GRID_PATTERN = "models/[space-{space}_][res-{res}_][desc-{desc}_]{suffix}{extension}"
LOGS_DIR = "logs"

#: Entities of a raw image that carry over to the derivatives made from it.
SOURCE_ENTITIES = ("subject", "session", "acquisition", "ceagent", "reconstruction", "run")

#: The template space and grid of every image the CNN sees.
GRID = {"space": CNN_GRID.template, "res": CNN_GRID.label}
RELEVANCE = {"model": "{model}", "stat": "relevance", "desc": "{method}", "suffix": "statmap"}

NIFTI = ".nii.gz"


@dataclass(frozen=True)
class Kind:
    """One kind of derivative file.

    Attributes
    ----------
    name : str
        Key in :data:`KINDS`.
    entities : mapping
        BIDS entities and ``suffix``; values may hold ``{placeholders}``.
    extension : str
        File ending, e.g. ``.nii.gz``.
    pattern : str
        pybids path pattern that places the file.
    in_bids : bool
        Whether BIDS defines the file; the others are listed in ``.bidsignore``.
    sidecar : bool
        Whether a JSON sidecar accompanies the file.
    """

    name: str
    entities: Mapping[str, str]
    extension: str
    pattern: str = PARTICIPANT_PATTERN
    in_bids: bool = True
    sidecar: bool = False
    description: str = field(default="", compare=False)

    def filled(self, **values: Any) -> dict[str, str]:
        """The entities (``extension`` included) with the placeholders filled from ``values``."""
        entities = {key: value.format(**values) for key, value in self.entities.items()}
        return {**entities, "extension": self.extension}

    def path(self, output_dir: Path, source: Mapping[str, Any] | None = None, **values) -> Path:
        """Path of the file of this kind made from the raw image with entities ``source``.

        ``source`` (a ``BIDSFile``'s entities, or parsed from its name) gives the subject,
        session, run… and, through its suffix, ``{contrast}``; ``values`` fill the rest.
        """
        source = source or {}
        if "suffix" in source:
            values.setdefault("contrast", source["suffix"])
        carried = {key: value for key, value in source.items() if key in SOURCE_ENTITIES}
        return named(output_dir, {**carried, **self.filled(**values)}, self.pattern)

    def glob(self, output_dir: Path, source: Mapping[str, Any] | None = None, **values) -> list:
        """Existing files of this kind, any value standing for each placeholder not given."""
        wildcards = {name: "*" for name in self.placeholders() if name not in values}
        if source and "suffix" in source:
            wildcards.pop("contrast", None)
        pattern = self.path(output_dir, source, **wildcards, **values)
        return sorted(pattern.parent.glob(pattern.name))

    def placeholders(self) -> set[str]:
        """Names of the values this kind's entities need, e.g. ``{"method", "model"}``."""
        return {
            name
            for value in self.entities.values()
            for _, name, _, _ in string.Formatter().parse(value)
            if name
        }

    def find(self, output_dir: Path, source: Mapping[str, Any], **values) -> Path | None:
        """The existing file of this kind, or None; NIfTI images may also be uncompressed."""
        path = self.path(output_dir, source, **values)
        candidates = [path, path.with_name(path.name.removesuffix(".gz"))]
        return next((p for p in candidates if p.is_file()), None)


def named(
    output_dir: Path, entities: Mapping[str, Any], pattern: str = PARTICIPANT_PATTERN
) -> Path:
    """Path of a file named by BIDS entities (``suffix`` and ``extension`` required)."""
    from bids.layout.writing import build_path  # pybids: not before the workers' server starts

    relative = build_path(dict(entities), [pattern], strict=False)
    if relative is None:
        raise ValueError(f"cannot name a derivative from entities {dict(entities)}")
    return output_dir / relative


def _kinds(*kinds: Kind) -> dict[str, Kind]:
    return {kind.name: kind for kind in kinds}


KINDS = _kinds(
    # participant level: preprocessing
    Kind("preproc", {**GRID, "desc": "preproc", "suffix": "{contrast}"}, NIFTI, sidecar=True,
         description="FLAIR on the CNN grid, brain only, intensities in [0, 1]"),
    Kind("brain_mask", {**GRID, "desc": "brain", "suffix": "mask"}, NIFTI, sidecar=True,
         description="brain mask on the grid"),
    Kind("lesion_mask", {**GRID, "desc": "lesion", "suffix": "mask"}, NIFTI, sidecar=True,
         description="the input lesion mask moved to the grid"),
    Kind("lesionfilled", {**GRID, "desc": "lesionfilled", "suffix": "{contrast}"}, NIFTI,
         sidecar=True, description="lesion-filled FLAIR on the grid (--lesion-fill)"),
    Kind("xfm", {"from": "{contrast}", "to": CNN_GRID.template, "mode": "image",
                 "suffix": "xfm"}, ".txt", in_bids=False,
         description="ITK affine from the native image to the template"),
    Kind("qc", {**GRID, "desc": "registration", "suffix": "qc"}, ".json", in_bids=False,
         description="registration quality numbers and flags"),
    Kind("qc_figure", {**GRID, "datatype": "figures", "desc": "registration",
                       "suffix": "{contrast}"}, ".png", in_bids=False,
         description="template outlines over the registered image"),
    Kind("mosaic_figure", {**GRID, "datatype": "figures", "desc": "mosaic",
                           "suffix": "{contrast}"}, ".png", in_bids=False,
         description="the registered image in slices of all three orientations"),
    # participant level: prediction and explanation
    Kind("predictions", {"model": "{model}", "suffix": "predictions"}, ".tsv", in_bids=False,
         description="logit, probability and label of the model"),
    Kind("heatmap", {**GRID, **RELEVANCE}, NIFTI, in_bids=False, sidecar=True,
         description="relevance map on the CNN grid"),
    Kind("heatmap_native", dict(RELEVANCE), NIFTI, in_bids=False, sidecar=True,
         description="relevance map on the native image grid (display)"),
    Kind("regions", {**GRID, "atlas": "{atlas}", **RELEVANCE}, ".tsv", in_bids=False,
         description="relevance per atlas region"),
    Kind("regions_bilateral", {**GRID, "atlas": "{atlas}", **RELEVANCE,
                               "desc": "{method}bilateral"}, ".tsv", in_bids=False,
         description="relevance per atlas region, left and right summed"),
    Kind("heatmap_figure", {**GRID, "datatype": "figures", **RELEVANCE}, ".png",
         in_bids=False, description="relevance over the registered image: three orientations "
         "and a mosaic"),
    Kind("heatmap_viewer", {**GRID, "datatype": "figures", **RELEVANCE}, ".html",
         in_bids=False, description="interactive slice viewer of the relevance map"),
    Kind("report", {}, ".html", REPORT_PATTERN, in_bids=False,
         description="the participant's HTML report"),
    Kind("fov_mask", {**GRID, "desc": "fieldofview", "suffix": "mask"}, NIFTI,
         MODEL_GRID_PATTERN, in_bids=False, sidecar=True,
         description="the grid voxels the CNN's output depends on (its field of view)"),
    # group level
    Kind("splits", {"suffix": "splits"}, ".tsv", GROUP_PATTERN, in_bids=False, sidecar=True,
         description="the split of images into train, validation and holdout"),
    Kind("epochs", {"model": "{model}", "trial": "{trial}", "suffix": "epochs"}, ".tsv",
         GROUP_PATTERN, in_bids=False, description="one training trial, epoch by epoch"),
    Kind("trials", {"suffix": "trials"}, ".tsv", GROUP_PATTERN, in_bids=False,
         description="holdout scores of every trial of every model"),
    Kind("group_predictions", {"suffix": "predictions"}, ".tsv", GROUP_PATTERN, in_bids=False,
         description="holdout predictions of every trial"),
    Kind("roc", {"suffix": "roc"}, ".tsv", GROUP_PATTERN, in_bids=False,
         description="ROC curve points of every trial"),
    Kind("performance", {"suffix": "performance"}, ".tsv", GROUP_PATTERN, in_bids=False,
         sidecar=True, description="the paper's Table 3: mean and SD over trials"),
    Kind("model", {"model": "{model}"}, ".safetensors", MODEL_PATTERN, in_bids=False,
         sidecar=True, description="CNN weights; the JSON sidecar is the model card"),
    # group level: analyses of the heatmaps
    Kind("participants_table", {"suffix": "participants"}, ".tsv", ANALYSIS_PATTERN,
         in_bids=False, sidecar=True, description="every explained participant, one row each"),
    Kind("mean_heatmap", {**GRID, "model": "{model}", "cohort": "{cohort}",
                          "desc": "{method}", "suffix": "meanrelevance"}, NIFTI,
         ANALYSIS_PATTERN, in_bids=False, sidecar=True,
         description="mean heatmap of a cohort, on the CNN grid"),
    Kind("region_summary", {"model": "{model}", "atlas": "{atlas}", "desc": "{method}",
                            "suffix": "regions"}, ".tsv", ANALYSIS_PATTERN, in_bids=False,
         description="relevance per region by class"),
    Kind("top_regions", {"model": "{model}", "atlas": "{atlas}", "desc": "{method}",
                         "suffix": "topregions"}, ".tsv", ANALYSIS_PATTERN, in_bids=False,
         description="the regions of largest relevance by class"),
    Kind("lesion_analysis", {"model": "{model}", "desc": "{method}", "suffix": "lesions"},
         ".tsv", ANALYSIS_PATTERN, in_bids=False,
         description="lesion relevance by class, lesion load against relevance sum"),
    Kind("classification", {"model": "{model}", "suffix": "classification"}, ".tsv",
         ANALYSIS_PATTERN, in_bids=False,
         description="balanced accuracy, sensitivity, specificity and AUC of a model's decisions"),
    Kind("model_comparison", {"cohort": "{cohort}", "desc": "{method}", "suffix": "models"},
         ".png", ANALYSIS_PATTERN, in_bids=False,
         description="mean heatmaps of several models on one colour scale"),
    # group level with --audit: the explanation audit
    Kind("audit", {"model": "{model}", "suffix": "audit"}, ".tsv", ANALYSIS_PATTERN,
         in_bids=False, sidecar=True,
         description="per method: each audit test's number, its baselines, threshold, verdict"),
    Kind("audit_figure", {"model": "{model}", "desc": "{method}", "suffix": "audit"}, ".png",
         GROUP_FIGURE_PATTERN, in_bids=False,
         description="randomisation cascade and perturbation curves of one method"),
    Kind("randomisation_curves", {"model": "{model}", "desc": "{method}",
                                  "suffix": "randomisation"}, ".tsv", ANALYSIS_PATTERN,
         in_bids=False, description="similarity to the trained map along the randomisation "
         "cascade, per participant"),
    Kind("perturbation_curves", {"model": "{model}", "desc": "{method}",
                                 "suffix": "perturbation"}, ".tsv", ANALYSIS_PATTERN,
         in_bids=False, description="logit after each region-perturbation step, most relevant "
         "first and random order, per participant"),
    # group level: the report and its figures
    Kind("group_report", {}, ".html", GROUP_REPORT_PATTERN, in_bids=False,
         description="the group's HTML report"),
    Kind("roc_figure", {"suffix": "roc"}, ".png", GROUP_FIGURE_PATTERN, in_bids=False,
         description="holdout ROC curves of every trial of every model"),
    Kind("mean_figure", {"model": "{model}", "desc": "{method}", "suffix": "meanrelevance"},
         ".png", GROUP_FIGURE_PATTERN, in_bids=False,
         description="mean heatmaps of every cohort on one colour scale"),
    Kind("regions_figure", {"model": "{model}", "atlas": "{atlas}", "desc": "{method}",
                            "suffix": "topregions"}, ".png", GROUP_FIGURE_PATTERN,
         in_bids=False, description="relevance of the top regions by class"),
    Kind("lesion_figure", {"model": "{model}", "desc": "{method}", "suffix": "lesions"},
         ".png", GROUP_FIGURE_PATTERN, in_bids=False,
         description="lesion load against relevance sum, by class"),
    Kind("citation", {}, ".md", CITATION_PATTERN, in_bids=False,
         description="methods text to paste into a paper"),
    Kind("citation_bib", {}, ".bib", CITATION_PATTERN, in_bids=False,
         description="the references of the methods text"),
)  # fmt: skip


def path(output_dir: Path, name: str, source: Mapping[str, Any] | None = None, **values) -> Path:
    """Path of the derivative of kind ``name`` (see :meth:`Kind.path`)."""
    return KINDS[name].path(output_dir, source, **values)


def find(output_dir: Path, name: str, source: Mapping[str, Any], **values) -> Path | None:
    """The existing derivative of kind ``name``, or None (see :meth:`Kind.find`)."""
    return KINDS[name].find(output_dir, source, **values)


def method_label(method: str) -> str:
    """The ``desc-`` value of an explanation method: ``lrp-epsilon`` → ``lrpepsilon``."""
    return method.replace("-", "")


def model_label(model: Path) -> str:
    """The ``model-`` value naming what a model file explains: its name, letters and digits.

    ``OUT/models/cnn-scratch.safetensors`` (or ``…/cnn-scratch``) → ``cnnscratch``.
    """
    return re.sub(r"[^A-Za-z0-9]", "", Path(model).name.split(".")[0])


def log_file(output_dir: Path, stem: str, run_id: str, extension: str) -> Path:
    """A run-stamped file in ``OUT/logs/``: ``msxai-<run>.log``, ``config-<run>.json``."""
    return output_dir / LOGS_DIR / f"{stem}-{run_id}{extension}"


def bidsignore() -> list[str]:
    """Lines of ``.bidsignore``: the logs, and every kind BIDS does not define yet.

    Folders are named without a trailing slash (bids-validator-deno tests a folder's path
    without one); files by ``*_<suffix>.*``, which hides their sidecars too.
    """
    lines = [LOGS_DIR]
    for item in KINDS.values():
        if item.in_bids:
            continue
        folder = item.pattern.split("/", 1)[0]
        if "/" not in item.pattern:  # a file at the root: the reports
            line = f"*{item.extension}"
        elif item.pattern != PARTICIPANT_PATTERN:
            line = folder
        elif "datatype" in item.entities:
            line = item.entities["datatype"]
        else:
            line = f"*_{item.entities['suffix']}.*"
        lines += [line] if line not in lines else []
    return lines


def entity_value(path: Path, entity: str) -> str | None:
    """The value of an entity in a derivative's name: ``…_atlas-JHU_…`` → ``JHU`` for ``atlas``."""
    match = re.search(rf"(?:^|_){entity}-([A-Za-z0-9]+)", Path(path).name)
    return match.group(1) if match else None
