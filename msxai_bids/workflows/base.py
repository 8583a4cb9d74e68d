"""The participant-level Nipype graph: one sub-workflow per image, each storing its outputs."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from bids.layout import BIDSFile
from nipype.pipeline import engine as pe

from msxai_bids import bids
from msxai_bids.workflows.outputs import init_ds_preproc_wf
from msxai_bids.workflows.preprocessing import init_preproc_wf


def flair_workflow_name(flair: BIDSFile) -> str:
    """A Nipype-safe, unique name from the FLAIR's entities, e.g. ``sub_01_ses_a_run_1_wf``."""
    entities = bids.source_entities(flair)
    parts = [f"{key[:3]}_{value}" for key, value in entities.items()]
    return re.sub(r"\W", "_", "_".join(parts)) + "_wf"


def init_flair_wf(
    *, flair: BIDSFile, lesion_mask: str | None, output_dir: Path, lesion_fill: bool, seed: int
) -> pe.Workflow:
    """Preprocess one FLAIR and store its derivatives.

    ``lesion_fill`` takes effect only when ``lesion_mask`` is given.
    """
    workflow = pe.Workflow(name=flair_workflow_name(flair))
    has_mask = lesion_mask is not None
    fill = lesion_fill and has_mask
    preproc_wf = init_preproc_wf(
        lesion_fill=fill, has_lesion_mask=has_mask, seed=seed, contrast=flair.entities["suffix"]
    )
    preproc_wf.inputs.inputnode.flair = flair.path
    if has_mask:
        preproc_wf.inputs.inputnode.lesion_mask = lesion_mask
    ds_wf = init_ds_preproc_wf(
        output_dir=output_dir, source_file=flair.path, has_lesion_mask=has_mask, lesion_fill=fill
    )
    fields = ds_wf.get_node("inputnode").inputs.copyable_trait_names()
    workflow.connect(
        [
            (preproc_wf, ds_wf, [(f"outputnode.{f}", f"inputnode.{f}") for f in fields]),
        ]
    )
    return workflow


def init_participant_wf(
    *,
    images: Sequence[tuple[BIDSFile, str | None]],
    output_dir: Path,
    work_dir: Path,
    lesion_fill: bool,
    seed: int,
) -> pe.Workflow:
    """One sub-workflow per (FLAIR, lesion mask or None), independent so one failure stops none."""
    workflow = pe.Workflow(name="msxai_participant_wf", base_dir=str(work_dir))
    for flair, mask in images:
        sub_wf = init_flair_wf(
            flair=flair, lesion_mask=mask, output_dir=output_dir, lesion_fill=lesion_fill, seed=seed
        )
        workflow.add_nodes([sub_wf])
    return workflow
