"""The two analysis levels, which run the stages: the orchestrators of a run.

With :mod:`msxai_bids.cli.plans` they are the only code that reads the
:class:`~msxai_bids.config.Config`; each stage below them gets a frozen plan.
"""

from __future__ import annotations

import logging

from bids.layout import BIDSFile, BIDSLayout

from msxai_bids import bids
from msxai_bids.cli import plans
from msxai_bids.config import Config
from msxai_bids.errors import MsxaiError

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


def run_participant(config: Config) -> int:
    """Participant level: preprocess every selected image, then, with ``--model``, explain it.

    Returns 1 if any image failed in either stage, else 0.
    """
    from msxai_bids.stages import preprocessing

    explaining = None
    if config.model is not None:
        plans.check_model(config.model, "--model")
        explaining = plans.explanation_plan(config)
    layout = prepare_layout(config)
    flairs = selected_images(config, layout)
    bids.write_dataset_description(config.output_dir, config.bids_dir)
    status = preprocessing.run(layout, flairs, plans.preprocessing_plan(config))
    if explaining is not None:
        from msxai_bids.stages import explanation

        status = max(status, explanation.run(flairs, config.model, explaining))
    return status


def run_group(config: Config) -> int:
    """Group level with ``--train``: train and evaluate, then explain the held-out images."""
    if not config.train:
        raise MsxaiError("group summaries are not available in msxai yet; use --train")
    from msxai_bids.stages import explanation, training  # torch loads only when training

    plan = plans.training_plan(config)
    explaining = plans.explanation_plan(config)
    layout = prepare_layout(config)
    outcome = training.run(selected_images(config, layout), plan)
    if outcome is None:  # another torchrun process: rank 0 writes and explains
        return 0
    holdout = [layout.get_file(config.bids_dir / source) for source in outcome.holdout]
    LOGGER.info("explaining %d held-out image(s) with %s", len(holdout), outcome.model)
    return explanation.run(holdout, outcome.model, explaining)
