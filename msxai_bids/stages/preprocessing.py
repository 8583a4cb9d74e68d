"""Participant level, first stage: run the preprocessing graph and report which inputs failed.

Every image is a sub-workflow of its own; Nipype's MultiProc runs them side by side, and a
failing image leaves a crash file in ``OUT/logs/`` while the others go on.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bids.layout import BIDSFile, BIDSLayout
from nipype.pipeline import engine as pe

from msxai_bids import bids, derivatives, inputs
from msxai_bids.errors import NoInputError
from msxai_bids.workflows.base import init_participant_wf
from msxai_bids.workflows.preprocessing import ITK_THREADS

LOGGER = logging.getLogger("msxai.workflow")


@dataclass(frozen=True)
class PreprocessingPlan:
    """What the preprocessing stage needs to know of the options.

    ``nprocs`` images run at once; ``omp_nthreads`` is the OpenMP thread count of each
    worker; ``mem_gb`` caps the memory MultiProc schedules (None: no cap).
    """

    output_dir: Path
    work_dir: Path
    lesion_fill: bool = False
    seed: int = 0
    nprocs: int = 1
    omp_nthreads: int = 1
    mem_gb: float | None = None


def execute(workflow: pe.Workflow, plan: PreprocessingPlan) -> list[Path]:
    """Run ``workflow`` with MultiProc; return the crash files it left (none: success)."""
    crash_dir = plan.output_dir / derivatives.LOGS_DIR
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
    args = {"n_procs": plan.nprocs, "raise_insufficient": False, "mp_context": "forkserver"}
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(ITK_THREADS)
    os.environ["OMP_NUM_THREADS"] = str(plan.omp_nthreads)
    if plan.mem_gb:
        args["memory_gb"] = plan.mem_gb
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


def screen(
    layout: BIDSLayout, flairs: Sequence[BIDSFile], *, lesion_fill: bool
) -> list[tuple[BIDSFile, str | None]]:
    """Each image that passes the input checks, with its lesion mask (None without one).

    A rejected image is logged in one line naming the file and the problem; its participant
    gets no outputs. Raises :class:`NoInputError` when no image is usable.
    """
    masks = {}
    for flair in flairs:
        masks[flair.path] = bids.find_lesion_mask(layout, flair)
        LOGGER.info("%s; lesion mask: %s", flair.relpath, masks[flair.path] or "none")
        if lesion_fill and masks[flair.path] is None:
            LOGGER.warning("--lesion-fill: no lesion mask for %s, not filled", flair.relpath)
    usable, rejected = inputs.screen(list(masks.items()))
    for rejection in rejected:
        LOGGER.error("rejected %s", rejection)
    if not usable:
        raise NoInputError(f"none of the {len(flairs)} selected image(s) is usable")
    if rejected:
        LOGGER.error("%d image(s) rejected; the others go on", len(rejected))
    by_path = {flair.path: flair for flair in flairs}
    return [(by_path[path], mask) for path, mask in usable]


def run(images: Sequence[tuple[BIDSFile, str | None]], plan: PreprocessingPlan) -> int:
    """Preprocess every ``(image, lesion mask)`` pair; return 1 if any failed, else 0."""
    workflow = init_participant_wf(
        images=list(images),
        output_dir=plan.output_dir,
        work_dir=plan.work_dir,
        lesion_fill=plan.lesion_fill,
        seed=plan.seed,
    )
    return report_failures(execute(workflow, plan))
