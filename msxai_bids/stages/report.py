"""Reports: the participants' ``sub-<L>.html`` after the participant level, ``group.html`` after
the group level, and the methods text beside the logs; ``--reports-only`` runs this stage alone.

Reports read only OUT. A figure that fails is logged and shown as missing; a report that cannot
be written is logged as an error and sets the exit code, and the other reports go on. A
participant's report is drawn again only when what it shows changed (its record in
``logs/completed/sub-<L>_report.json``), so that a rerun of finished participants costs no
drawing; ``--reports-only`` and ``--force`` draw every report.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

from bids.layout import BIDSFile

from msxai_bids import bids, completion, derivatives
from msxai_bids.reports.citation import Methods, methods_text, write_citation
from msxai_bids.reports.group import write_group_report
from msxai_bids.reports.participant import ReportContext, heatmap_scales, write_participant_report

LOGGER = logging.getLogger("msxai.reports")


@dataclass(frozen=True)
class ReportPlan:
    """What the reports need to know of the run: where OUT is, the command that made them, and
    whether to draw unchanged participant reports again (``redraw``)."""

    output_dir: Path
    command: str = ""
    run_id: str = ""
    redraw: bool = False


#: ``step`` of a participant report's completion record.
REPORT_STEP = "report"


#: What the figures import on first use (0.4 s): the participant level imports them while the
#: preprocessing workflow runs. :func:`msxai_bids.reports.figures.pyplot` still chooses the
#: file-only backend, which importing pyplot leaves undecided.
LIBRARIES = ("matplotlib.pyplot", "nilearn.plotting")


def write_methods_text(output_dir: Path, flairs: Sequence[BIDSFile]) -> Methods:
    """Write ``logs/CITATION.*``, the methods text of what OUT holds for ``flairs``; return it."""
    methods, models, atlases, lesion_fill = {}, set(), set(), False
    for flair in flairs:
        lesion_fill |= derivatives.find(output_dir, "lesionfilled", flair.entities) is not None
        for _, meta in bids.explained_heatmaps(output_dir, [flair]):
            methods.setdefault(meta["Method"], meta)
            models.add(meta["ModelName"])
        for table in derivatives.KINDS["regions"].glob(output_dir, flair.entities):
            atlases.add(derivatives.entity_value(table, "atlas"))
    text = methods_text(
        methods=[methods[name] for name in sorted(methods)],
        models=sorted(models),
        atlases=sorted(atlases),
        lesion_fill=lesion_fill,
        audit=bool(derivatives.KINDS["audit"].glob(output_dir)),
    )
    write_citation(output_dir, text)
    return text


def crash_files(output_dir: Path, flairs: Sequence[BIDSFile]) -> dict[str, list[dict]]:
    """The Nipype crash files in ``OUT/logs`` of each image's workflow, by the image's path."""
    from msxai_bids.workflows.base import flair_workflow_name

    crashes = [
        [line for line in crash.read_text(errors="replace").splitlines() if line.strip()]
        + [crash.name]
        for crash in sorted((output_dir / derivatives.LOGS_DIR).glob("crash-*.txt"))
    ]
    found: dict[str, list[dict]] = {}
    for flair in flairs:
        node = f".{flair_workflow_name(flair)}."
        found[flair.relpath] = [
            {"file": lines[-1], "node": lines[0], "reason": lines[-2]}
            for lines in crashes
            if len(lines) > 2 and node in lines[0]
        ]
    return found


def report_fingerprint(context: ReportContext, images: Sequence[BIDSFile]) -> dict:
    """What a subject's report shows, in short: the completion records of its images (their
    inputs, options and outputs), the cohort's colour scales, the methods text and the images'
    crash files, with msxai's version.

    The command and run named in the report are left out: a report that is kept names the run
    that drew it.
    """
    records = {
        path.name: path
        for flair in images
        for path in completion.records(context.output_dir, flair.path)
    }
    options = {
        "scales": [[*key, scale] for key, scale in sorted(context.scales.items())],
        "methods_text": list(context.methods_text),
        "crashes": {flair.relpath: context.crashes.get(flair.relpath, []) for flair in images},
    }
    return completion.fingerprint(records, options)


def subject_figures(output_dir: Path, subject: str) -> list[Path]:
    """The figure files of a subject's folders (sessions included)."""
    folder = output_dir / f"sub-{subject}"
    return sorted(p for p in folder.glob("**/figures/*") if not p.name.startswith(".tmp-"))


def run_participant_reports(
    flairs: Sequence[BIDSFile], everyone: Sequence[BIDSFile], plan: ReportPlan
) -> int:
    """One report per subject of ``flairs``; heatmap colour scales over ``everyone`` in OUT.

    A report whose record matches what it would show now is kept, unless ``plan.redraw``.
    Returns 1 if any report could not be written, else 0.
    """
    start = time.perf_counter()
    text = write_methods_text(plan.output_dir, everyone)
    context = ReportContext(
        plan.output_dir,
        plan.command,
        plan.run_id,
        heatmap_scales(plan.output_dir, everyone),
        tuple(text.with_citations()),
        crash_files(plan.output_dir, flairs),
    )
    failed, kept = 0, 0
    by_subject = sorted(flairs, key=lambda f: (f.entities["subject"], f.relpath))
    for subject, grouped in groupby(by_subject, key=lambda f: f.entities["subject"]):
        images, source = list(grouped), f"sub-{subject}"
        expected = report_fingerprint(context, images)
        if not plan.redraw and completion.is_complete(
            plan.output_dir, source, [expected], REPORT_STEP
        ):
            kept += 1
            continue
        try:
            path = write_participant_report(context, subject, images)
        except (OSError, ValueError, KeyError) as err:
            LOGGER.error("report of sub-%s not written: %s: %s", subject, type(err).__name__, err)
            failed += 1
            continue
        outputs = [path, *subject_figures(plan.output_dir, subject)]
        completion.record(plan.output_dir, source, expected, outputs, REPORT_STEP)
        LOGGER.info("report: %s", path)
    if kept:
        LOGGER.info(
            "%d report(s) kept: nothing they show changed (--reports-only redraws them)", kept
        )
    LOGGER.info("participant reports written in %.1f s", time.perf_counter() - start)
    return 1 if failed else 0


def run_group_report(flairs: Sequence[BIDSFile], plan: ReportPlan) -> int:
    """``OUT/group.html``; returns 1 if it could not be written, else 0."""
    start = time.perf_counter()
    text = write_methods_text(plan.output_dir, flairs)
    try:
        path = write_group_report(
            plan.output_dir,
            command=plan.command,
            run_id=plan.run_id,
            methods_text=text.with_citations(),
        )
    except (OSError, ValueError, KeyError) as err:
        LOGGER.error("group report not written: %s: %s", type(err).__name__, err)
        return 1
    LOGGER.info("group report: %s (%.1f s)", path, time.perf_counter() - start)
    return 0
