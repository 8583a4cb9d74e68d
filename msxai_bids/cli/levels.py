"""The two analysis levels, which run the stages: the orchestrators of a run.

With :mod:`msxai_bids.cli.plans` they are the only code that reads the
:class:`~msxai_bids.config.Config`; each stage below them gets a frozen plan.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from bids.layout import BIDSFile, BIDSLayout

from msxai_bids import bids
from msxai_bids.cli import plans
from msxai_bids.config import Config

if TYPE_CHECKING:
    from msxai_bids.stages.explanation import ExplanationPlan
    from msxai_bids.stages.training import TrainingPlan

LOGGER = logging.getLogger("msxai")


def prepare_layout(config: Config) -> BIDSLayout:
    """Validate (unless skipped) and index the input dataset."""
    if not config.skip_bids_validation:
        bids.validate_dataset(config.bids_dir)
    return bids.load_layout(config.bids_dir, config.output_dir)


def selected_images(config: Config, layout: BIDSLayout) -> list[BIDSFile]:
    """The raw images the labels and filters select."""
    flairs = bids.collect_images(
        layout, config.participant_label, config.session_label, config.bids_filters
    )
    LOGGER.info("%d %s image(s) selected", len(flairs), config.contrast)
    return flairs


def later_imports(explaining: bool) -> list[Callable[[], object]]:
    """The imports of the stages after preprocessing, one per library: torch, zennit and
    antspyx when ``explaining``, matplotlib and nilearn's plotting for the reports (3.5 s
    together), for the preprocessing workflow to run beside (see ``alongside``)."""
    from msxai_bids.stages import explanation, report

    modules = [*(explanation.LIBRARIES if explaining else ()), *report.LIBRARIES]
    return [partial(importlib.import_module, module) for module in modules]


def run_participant(config: Config) -> int:
    """Participant level: check the selected images, preprocess those that pass, then, with
    ``--model``, explain them, then write each subject's report (``--reports-only``: the
    reports alone).

    Returns 1 if any image was rejected or failed in any stage, else 0.
    """
    from msxai_bids.stages import preprocessing, report

    explaining = None
    if config.model is not None and not config.reports_only:
        plans.check_model(config.model, "--model")
        explaining = plans.explanation_plan(config)
    layout = prepare_layout(config)
    flairs = selected_images(config, layout)
    bids.write_dataset_description(config.output_dir, config.bids_dir)
    status = 0
    if not config.reports_only:
        images = preprocessing.screen(layout, flairs, lesion_fill=config.lesion_fill)
        status = int(len(images) < len(flairs))
        flairs = [flair for flair, _ in images]
        status = max(
            status,
            preprocessing.run(
                images,
                plans.preprocessing_plan(config),
                alongside=later_imports(explaining is not None),
            ),
        )
    if explaining is not None:
        from msxai_bids.stages import explanation

        status = max(status, explanation.run(flairs, config.model, explaining))
    everyone = bids.collect_images(layout, (), (), config.bids_filters)
    return max(status, report.run_participant_reports(flairs, everyone, plans.report_plan(config)))


def run_group(config: Config) -> int:
    """Group level: with ``--train``, train, evaluate and explain the holdout; then analyse and
    write the group report (``--reports-only``: the report alone).

    The analyses read the heatmaps in OUT, of every model and method present. Under
    ``torchrun`` only rank 0 goes on after training.
    """
    from msxai_bids.stages import analysis, report

    if config.reports_only:
        layout = prepare_layout(config)
        return report.run_group_report(selected_images(config, layout), plans.report_plan(config))
    training = (
        (plans.training_plan(config), plans.explanation_plan(config)) if config.train else None
    )
    analysing = plans.analysis_plan(config)
    layout = prepare_layout(config)
    flairs = selected_images(config, layout)
    status, explained, reporting = 0, [], plans.report_plan(config)
    if training is not None:
        trained = train(layout, flairs, *training)
        if trained is None:
            return 0
        status, explained = trained
    status = max(status, analysis.run(flairs, analysing))
    if explained:  # the held-out participants' reports show the new model's heatmaps too
        status = max(status, report.run_participant_reports(explained, flairs, reporting))
    return max(status, report.run_group_report(flairs, reporting))


def train(
    layout: BIDSLayout, flairs: list[BIDSFile], plan: TrainingPlan, explaining: ExplanationPlan
) -> tuple[int, list[BIDSFile]] | None:
    """Train and evaluate the models, then explain the held-out images with the best one.

    Returns the explanation's status and the images it explained, or None in the ``torchrun``
    processes other than rank 0.
    """
    from msxai_bids.stages import explanation, training  # torch loads only when training

    outcome = training.run(flairs, plan)
    if outcome is None:
        return None
    holdout = [layout.get_file(Path(layout.root) / source) for source in outcome.holdout]
    LOGGER.info("explaining %d held-out image(s) with %s", len(holdout), outcome.model)
    return explanation.run(holdout, outcome.model, explaining), holdout
