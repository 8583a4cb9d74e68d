"""Entry point of ``msxai``: parse, check the BIDS-App rules, run a level, map exit codes.

The levels themselves are in :mod:`msxai_bids.cli.levels`, imported only once the options are
valid, so that ``--help`` and usage errors answer at once.
"""

from __future__ import annotations

import gc
import logging
import os
import shlex
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from msxai_bids import __version__
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
    if args.bids_filters:
        from msxai_bids.bids import check_filters  # pybids loads only for a filter file

        check_filters(args.bids_filters)
    refuse_unusable_dir(args.output_dir, "output directory")
    refuse_unusable_dir(args.work_dir, "work directory")
    inside = args.output_dir.resolve()
    if inside.is_relative_to(args.bids_dir.resolve()) and not inside.is_relative_to(
        (args.bids_dir / "derivatives").resolve()
    ):
        raise UsageError(
            f"the output directory {args.output_dir} lies inside the BIDS directory; "
            "put it under derivatives/ or outside"
        )
    if args.model is not None:
        args.model = args.model.absolute()
    args.command = shlex.join(["msxai", *(sys.argv[1:] if argv is None else argv)])
    return Config.from_namespace(args)


def refuse_unusable_dir(path: Path, what: str) -> None:
    """Refuse a folder msxai would have to create or write into but cannot: a file in its place
    or on its way, or a nearest existing folder that this user cannot write."""
    existing = next(folder for folder in (path, *path.parents) if folder.exists())
    if not existing.is_dir():
        where = "is a file" if existing == path else f"cannot be created: {existing} is a file"
        raise UsageError(f"{what} {path} {where}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{what} {path} cannot be written: no write permission on {existing}")


@contextmanager
def logging_to(config: Config, log_file: Path) -> Iterator[None]:
    """Log to the console (INFO, DEBUG with -v) and to ``log_file`` for the length of one run.

    The handlers are removed and closed and the logger's level restored on the way out, so that
    a second run in the same process (tests, notebooks) writes to its own console and log file,
    not to the first one's, and code run after it logs as before.
    """
    fmt = logging.Formatter("%(asctime)s | %(levelname)-7s | %(name)s | %(message)s", "%H:%M:%S")
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.DEBUG if config.verbose else logging.INFO)
    to_file = logging.FileHandler(log_file)
    to_file.setLevel(logging.DEBUG)
    level = LOGGER.level
    LOGGER.setLevel(logging.DEBUG)
    for handler in (console, to_file):
        handler.setFormatter(fmt)
        LOGGER.addHandler(handler)
    try:
        yield
    finally:
        for handler in (console, to_file):
            LOGGER.removeHandler(handler)
            handler.close()
        LOGGER.setLevel(level)


def start_workers_early(config: Config) -> None:
    """Start the preprocessing workers' server first in a participant run with everything to
    do (no completion record of the selected participants: a folder listing).

    It loads Nipype, antspyx and the templates (2.3 s) on another core while this process
    imports pybids, the stages and the rest; started later, the first step waits for it.
    """
    from msxai_bids import completion
    from msxai_bids.preprocessing import workers

    if config.analysis_level != "participant" or config.reports_only:
        return
    if not completion.has_records(config.output_dir, config.participant_label):
        workers.start(config.omp_nthreads)


def run(config: Config) -> int:
    """Run the selected analysis level; return the process exit code.

    An :class:`MsxaiError` is logged as one line, to the console and to the run's log file.
    """
    start_workers_early(config)
    from msxai_bids import derivatives
    from msxai_bids.cli.levels import run_group, run_participant

    log_file = derivatives.log_file(config.output_dir, "msxai", config.run_id, ".log")
    try:
        log_file.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        print(f"msxai: error: cannot create the log folder: {err}", file=sys.stderr)
        return 1
    with logging_to(config, log_file):
        LOGGER.info("msxai %s, run %s; log at %s", __version__, config.run_id, log_file)
        try:
            config.save(derivatives.log_file(config.output_dir, "config", config.run_id, ".json"))
            level = run_participant if config.analysis_level == "participant" else run_group
            code = level(config)
        except MsxaiError as err:
            LOGGER.error("%s", err)
            code = err.exit_code
        except OSError as err:  # a full disk, a folder gone read-only: the system's own words
            LOGGER.debug("the system refused a file operation", exc_info=True)
            LOGGER.error("cannot go on: %s (details in %s)", err, log_file)
            code = 1
        LOGGER.info("msxai finished, exit code %d", code)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point; returns the exit code instead of raising."""
    try:
        config = make_config(argv)
    except MsxaiError as err:
        print(f"msxai: error: {err}", file=sys.stderr)
        return err.exit_code
    return run(config)


def console() -> None:
    """The ``msxai`` command: :func:`main`, then exit without a last garbage collection.

    At exit Python collects every object that torch, pybids and antspyx made, 2 s after a
    participant run; frozen, they are left to the operating system, which frees the memory
    at once. Exit handlers still run and files are still flushed and closed.
    """
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    console()
