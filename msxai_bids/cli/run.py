"""Entry point of ``msxai``: parse, check the BIDS-App rules, run the stages, map exit codes.

``run_participant`` and ``run_group`` are the orchestrators: with :mod:`msxai_bids.cli.plans`
they are the only code that reads the :class:`~msxai_bids.config.Config`. Below them, each
stage gets a frozen plan.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from bids.layout import BIDSFile, BIDSLayout

from msxai_bids import __version__, bids, derivatives
from msxai_bids.cli import plans
from msxai_bids.cli.parser import ANALYSIS_LEVELS, build_parser
from msxai_bids.config import Config
from msxai_bids.errors import MsxaiError, NoInputError, UnknownLevelError, UsageError

LOGGER = logging.getLogger("msxai")


def make_config(argv: Sequence[str] | None = None) -> Config:
    """Parse ``argv`` and check the rules a BIDS App enforces before touching any file.

    Raises the :mod:`msxai_bids.errors` matching each broken rule; argparse itself exits with 64
    on malformed options and 0 on ``--help``/``--version``.
    """
    args = build_parser().parse_args(argv)
    if args.analysis_level not in ANALYSIS_LEVELS:
        raise UnknownLevelError(
            f"unknown analysis level {args.analysis_level!r}; "
            f"choose one of {', '.join(ANALYSIS_LEVELS)}"
        )
    args.bids_dir = args.bids_dir.absolute()
    args.output_dir = args.output_dir.absolute()
    args.work_dir = (args.work_dir or Path("work")).absolute()
    args.omp_nthreads = args.omp_nthreads or min(args.nprocs, 8)
    for name in ("participant_label", "session_label", "method", "atlas"):
        setattr(args, name, tuple(getattr(args, name) or ()))
    if not args.bids_dir.is_dir():
        raise NoInputError(f"BIDS directory {args.bids_dir} does not exist")
    if args.output_dir.resolve() == args.bids_dir.resolve():
        raise UsageError("the output directory must differ from the BIDS directory")
    if args.work_dir.resolve().is_relative_to(args.bids_dir.resolve()):
        raise UsageError(
            f"the work directory {args.work_dir} must not lie inside the BIDS directory"
        )
    if args.model is not None:
        args.model = args.model.absolute()
    return Config.from_namespace(args)


def setup_logging(config: Config) -> Path:
    """Log to the console (INFO, DEBUG with -v) and to ``OUTPUT_DIR/logs/msxai-<run_id>.log``."""
    log_file = derivatives.log_file(config.output_dir, "msxai", config.run_id, ".log")
    log_file.parent.mkdir(parents=True, exist_ok=True)
    fmt = logging.Formatter("%(asctime)s | %(levelname)-7s | %(name)s | %(message)s", "%H:%M:%S")
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.DEBUG if config.verbose else logging.INFO)
    to_file = logging.FileHandler(log_file)
    to_file.setLevel(logging.DEBUG)
    root = logging.getLogger("msxai")
    root.setLevel(logging.DEBUG)
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    for handler in (console, to_file):
        handler.setFormatter(fmt)
        root.addHandler(handler)
    return log_file


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


def run(config: Config) -> int:
    """Run the selected analysis level; return the process exit code."""
    log_file = setup_logging(config)
    LOGGER.info("msxai %s, run %s; log at %s", __version__, config.run_id, log_file)
    config.save(derivatives.log_file(config.output_dir, "config", config.run_id, ".json"))
    if config.analysis_level == "participant":
        return run_participant(config)
    return run_group(config)


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point; returns the exit code instead of raising."""
    try:
        return run(make_config(argv))
    except MsxaiError as err:
        LOGGER.error("%s", err)
        if not LOGGER.handlers:
            print(f"msxai: error: {err}", file=sys.stderr)
        return err.exit_code


if __name__ == "__main__":
    sys.exit(main())
