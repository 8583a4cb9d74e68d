"""Top-level orchestration: one Nipype graph per run, a sub-workflow per selected FLAIR.

This is the only module that reads :class:`~msxai_bids.config.Config`; the sub-workflows it
builds take explicit keyword arguments.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from bids.layout import BIDSFile, BIDSLayout
from nipype.pipeline import engine as pe

from msxai_bids import bids
from msxai_bids.config import Config
from msxai_bids.errors import MsxaiError
from msxai_bids.workflows.outputs import init_ds_preproc_wf
from msxai_bids.workflows.preprocessing import ITK_THREADS, init_preproc_wf

LOGGER = logging.getLogger("msxai.workflow")


def flair_workflow_name(flair: BIDSFile) -> str:
    """A Nipype-safe, unique name from the FLAIR's entities, e.g. ``sub_01_ses_a_run_1_wf``."""
    entities = bids.source_entities(flair)
    parts = [f"{key[:3]}_{value}" for key, value in entities.items()]
    return re.sub(r"\W", "_", "_".join(parts)) + "_wf"


def init_flair_wf(*, config: Config, flair: BIDSFile, lesion_mask: str | None) -> pe.Workflow:
    """Preprocess one FLAIR and store its derivatives."""
    workflow = pe.Workflow(name=flair_workflow_name(flair))
    has_mask = lesion_mask is not None
    fill = config.lesion_fill and has_mask
    preproc_wf = init_preproc_wf(
        lesion_fill=fill,
        has_lesion_mask=has_mask,
        seed=config.seed,
    )
    preproc_wf.inputs.inputnode.flair = flair.path
    if has_mask:
        preproc_wf.inputs.inputnode.lesion_mask = lesion_mask
    ds_wf = init_ds_preproc_wf(
        output_dir=config.output_dir,
        source_file=flair.path,
        contrast=flair.entities["suffix"],
        has_lesion_mask=has_mask,
        lesion_fill=fill,
    )
    fields = ds_wf.get_node("inputnode").inputs.copyable_trait_names()
    workflow.connect(
        [
            (preproc_wf, ds_wf, [(f"outputnode.{f}", f"inputnode.{f}") for f in fields]),
        ]
    )
    return workflow


def init_participant_wf(
    *, config: Config, layout: BIDSLayout, flairs: list[BIDSFile]
) -> pe.Workflow:
    """One sub-workflow per FLAIR, independent so that one failure does not stop the others."""
    workflow = pe.Workflow(name="msxai_participant_wf", base_dir=str(config.work_dir))
    for flair in flairs:
        mask = bids.find_lesion_mask(layout, flair)
        LOGGER.info("%s; lesion mask: %s", flair.relpath, mask or "none")
        if config.lesion_fill and mask is None:
            LOGGER.warning("--lesion-fill: no lesion mask for %s, not filled", flair.relpath)
        workflow.add_nodes([init_flair_wf(config=config, flair=flair, lesion_mask=mask)])
    return workflow


def execute(workflow: pe.Workflow, config: Config) -> list[Path]:
    """Run ``workflow`` with MultiProc; return the crash files it left (none: success)."""
    crash_dir = config.output_dir / "logs"
    workflow.config["execution"].update(
        {
            "crashdump_dir": str(crash_dir),
            "crashfile_format": "txt",
            "stop_on_first_crash": False,
            "remove_unnecessary_outputs": False,
        }
    )
    before = set(crash_dir.glob("crash-*.txt"))
    # Workers start from a fresh server process: forked workers can deadlock in OpenMP
    # thread pools (scikit-learn, torch) that the parent process had already started.
    args = {"n_procs": config.nprocs, "raise_insufficient": False, "mp_context": "forkserver"}
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(ITK_THREADS)
    os.environ["OMP_NUM_THREADS"] = str(config.omp_nthreads)
    if config.mem_gb:
        args["memory_gb"] = config.mem_gb
    try:
        workflow.run(plugin="MultiProc", plugin_args=args)
    except RuntimeError as err:
        LOGGER.debug("Nipype reported: %s", err)
    return sorted(set(crash_dir.glob("crash-*.txt")) - before)


def report_failures(crash_files: list[Path]) -> int:
    """Log which step of which input failed and why; 0 when none did, else 1."""
    for crash in crash_files:
        lines = [line for line in crash.read_text(errors="replace").splitlines() if line.strip()]
        node = lines[0].removeprefix("Node: ").split(".", 1)[-1] if lines else crash.name
        reason = lines[-1].strip() if lines else "unknown error"
        LOGGER.error("failed: %s — %s (details: %s)", node, reason, crash)
    if crash_files:
        LOGGER.error("%d step(s) failed; the other participants were processed", len(crash_files))
    return 1 if crash_files else 0


def prepare_layout(config: Config) -> BIDSLayout:
    """Validate (unless skipped) and index the input dataset."""
    if not config.skip_bids_validation:
        bids.validate_dataset(config.bids_dir)
    return bids.load_layout(config.bids_dir, config.output_dir)


def run_participant(config: Config) -> int:
    """Participant level: preprocess every selected FLAIR; exit code 1 if any failed."""
    layout = prepare_layout(config)
    flairs = bids.collect_images(
        layout, config.participant_label, config.session_label, config.bids_filters
    )
    LOGGER.info("%d %s image(s) selected", len(flairs), config.contrast)
    if config.model is not None:
        from msxai_bids.workflows.explanation import check_model

        check_model(config.model, "--model")
    bids.write_dataset_description(config.output_dir, config.bids_dir)
    workflow = init_participant_wf(config=config, layout=layout, flairs=flairs)
    status = report_failures(execute(workflow, config))
    if config.model is not None:
        from msxai_bids.workflows.explanation import run_explanation

        status = max(status, run_explanation(config, flairs, config.model))
    return status


def run_group(config: Config) -> int:
    """Group level: with ``--train``, train and evaluate the models on the labelled participants."""
    if not config.train:
        raise MsxaiError("group summaries are not available in msxai yet; use --train")
    from msxai_bids.workflows.group import run_training  # torch loads only when training

    return run_training(config, prepare_layout(config))
