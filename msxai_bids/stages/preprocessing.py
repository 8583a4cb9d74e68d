"""Participant level, first stage: run the preprocessing graph and report which inputs failed.

Every image is a sub-workflow of its own; Nipype's MultiProc runs them side by side, and a
failing image leaves a crash file in ``OUT/logs/`` while the others go on.
"""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bids.layout import BIDSFile, BIDSLayout
from nipype.pipeline import engine as pe

from msxai_bids import bids, completion, derivatives, inputs
from msxai_bids.errors import NoInputError
from msxai_bids.preprocessing import workers
from msxai_bids.preprocessing.qc import read_qc
from msxai_bids.workflows.base import flair_workflow_name, init_participant_wf

LOGGER = logging.getLogger("msxai.workflow")


#: How often MultiProc looks for finished nodes and submits the next ones, in seconds. A step
#: waits for the next look, and a participant's twenty steps run one after another: at 0.01
#: instead of 0.05 s one participant took 14.66 instead of 15.08 s (median of 7 alternating
#: runs), for 0.3 s more of this process's CPU over a three-participant run (of 14.6 s).
POLL_SECONDS = 0.01

#: Python's thread switch interval while ``alongside`` runs beside the workflow, in seconds.
#: At the default 5 ms, a thread importing libraries keeps the interpreter that long at a time,
#: and MultiProc's threads, which hand every step to a worker and read its result back, wait
#: for it at each handoff: 0.1-0.2 s between steps, 0.9 s of a participant run of 15 s.
SWITCH_SECONDS = 0.001


@dataclass(frozen=True)
class PreprocessingPlan:
    """What the preprocessing stage needs to know of the options.

    ``nprocs`` images run at once; ``omp_nthreads`` is the OpenMP thread count of each
    worker; ``mem_gb`` caps the memory MultiProc schedules (None: no cap). ``force``
    recomputes images whose completion record says they are done.
    """

    output_dir: Path
    work_dir: Path
    lesion_fill: bool = False
    seed: int = 0
    force: bool = False
    nprocs: int = 1
    omp_nthreads: int = 1
    mem_gb: float | None = None


def execute(
    workflow: pe.Workflow,
    plan: PreprocessingPlan,
    n_images: int,
    alongside: Sequence[Callable[[], object]] = (),
) -> list[Path]:
    """Run ``workflow`` (``n_images`` images) with MultiProc; return its crash files, if any.

    No more workers start than there are images: an image's steps run mostly one after
    another, and a second worker for one image saved 0.5 s of 18 s but held 0.6 GB more.
    ``alongside`` is called, one after another, in a thread meanwhile (this process only
    watches the workers); their errors are raised once the workflow has run.
    """
    crash_dir = plan.output_dir / derivatives.LOGS_DIR
    workflow.config["execution"].update(
        {
            "crashdump_dir": str(crash_dir),
            "crashfile_format": "txt",
            "stop_on_first_crash": False,
            "remove_unnecessary_outputs": False,
            # Nipype looks for finished nodes every 2 s by default: up to 2 s lost after each
            # of the dozen steps an image goes through one after another (≈ 15 s of 60).
            "poll_sleep_duration": POLL_SECONDS,
        }
    )
    before = set(crash_dir.glob("crash-*.txt"))
    n_workers = max(1, min(plan.nprocs, n_images))
    args = {"n_procs": n_workers, "raise_insufficient": False, "mp_context": "forkserver"}
    if plan.mem_gb:
        args["memory_gb"] = plan.mem_gb
    # MultiProc runs a full garbage collection at every poll that finds a processor free:
    # 0.4 s each over this process's heap (torch, pybids), a whole core at a 0.05 s poll.
    # Frozen, the objects made before the run, and those each of ``alongside`` makes (modules),
    # are left out of those collections: frozen only after all of them, torch and zennit half
    # imported made MultiProc's collections cost 0.06-0.16 s each (0.4 s of a participant).
    gc.freeze()
    switch = sys.getswitchinterval()
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="alongside") as thread:
            beside = None
            if alongside:
                sys.setswitchinterval(SWITCH_SECONDS)
                beside = thread.submit(frozen_after_each, alongside)
            try:
                workflow.run(plugin="MultiProc", plugin_args=args)
            except RuntimeError as err:
                LOGGER.debug("Nipype reported: %s", err)
    finally:
        gc.unfreeze()
        sys.setswitchinterval(switch)
    if beside is not None:
        beside.result()
    return sorted(set(crash_dir.glob("crash-*.txt")) - before)


def frozen_after_each(work: Sequence[Callable[[], object]]) -> None:
    """Call each of ``work`` and freeze what it made as soon as it returns (see :func:`execute`)."""
    for call in work:
        call()
        gc.freeze()


def failed_images(crash_files: list[Path], images: Sequence[BIDSFile]) -> set[str]:
    """Log which step of which of ``images`` failed and why; return the failed images' paths.

    Crash files of other images are not this run's: a concurrent job (an array task writing
    into the same OUT) reports its own.
    """
    names = {flair_workflow_name(flair): flair.path for flair in images}
    failed = set()
    for crash in crash_files:
        lines = [line for line in crash.read_text(errors="replace").splitlines() if line.strip()]
        node = lines[0].removeprefix("Node: ") if lines else ""
        owners = {path for name, path in names.items() if name in node.split(".")}
        if owners:
            reason = lines[-1].strip()
            LOGGER.error("failed: %s — %s (details: %s)", node.split(".", 1)[-1], reason, crash)
            failed |= owners
    if failed:
        LOGGER.error("%d image(s) failed; the other participants were processed", len(failed))
    return failed


def warn_flagged(output_dir: Path, images: Sequence[BIDSFile]) -> None:
    """A warning per image whose QC (registration and contrast) is flagged, with the reason."""
    for flair in images:
        record = read_qc(derivatives.find(output_dir, "qc", flair.entities))
        if record.get("plausible") is False:
            LOGGER.warning(
                "%s: flagged as implausible by its QC (%s); its report shows it, and "
                "group --train leaves it out unless --include-flagged",
                flair.relpath,
                record["reason"],
            )


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


def run(
    images: Sequence[tuple[BIDSFile, str | None]],
    plan: PreprocessingPlan,
    *,
    alongside: Sequence[Callable[[], object]] = (),
) -> int:
    """Preprocess every ``(image, lesion mask)`` pair not already complete; 1 if any failed.

    An image is complete when its record (:mod:`msxai_bids.completion`) matches; the others lose
    what an earlier run left of them, run, and get a record, or, when they fail, lose their
    outputs again: a failed image leaves only its crash file. When there is work,
    ``alongside`` is called in a thread of this process while the workflow runs (this process
    only watches the workers then): work the caller would do after preprocessing anyway.
    """
    # A record made with lesion filling also covers a run without: the other outputs are equal.
    fills = [plan.lesion_fill] if plan.lesion_fill else [False, True]
    accepted = {
        flair.path: completion.fingerprints(
            {flair.relpath: flair.path, **({"lesion_mask": mask} if mask else {})},
            *({"seed": plan.seed, "lesion_fill": fill} for fill in fills),
        )
        for flair, mask in images
    }
    output_dir = plan.output_dir
    pending = completion.pending(output_dir, accepted, force=plan.force, done="preprocessed")
    todo = [(flair, mask) for flair, mask in images if flair.path in pending]
    if not todo:
        return 0
    workers.start(plan.omp_nthreads)
    for flair, _ in todo:
        completion.clear(output_dir, flair.path)
    workflow = init_participant_wf(
        images=todo,
        output_dir=output_dir,
        work_dir=plan.work_dir,
        lesion_fill=plan.lesion_fill,
        seed=plan.seed,
    )
    try:
        crash_files = execute(workflow, plan, len(todo), alongside)
    finally:
        workers.stop()
    failed = failed_images(crash_files, [flair for flair, _ in todo])
    for flair, _ in todo:
        if flair.path in failed:
            completion.clear(output_dir, flair.path)
        else:
            completion.complete(output_dir, flair.path, accepted[flair.path][0])
    warn_flagged(output_dir, [flair for flair, _ in todo if flair.path not in failed])
    return 1 if failed else 0
