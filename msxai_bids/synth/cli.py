"""``msxai-synth OUTPUT_DIR``: write a synthetic BIDS cohort and print its lesion statistics.

Exit codes follow the BIDS-Apps habit of msxai: 0 on success, 64 on a usage error (bad
option, or an OUTPUT_DIR that is not empty).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from msxai_bids import __version__
from msxai_bids.cli.types import non_negative_int, positive_int
from msxai_bids.synth.cohort import make_cohort
from msxai_bids.synth.contrast import CONTRASTS
from msxai_bids.synth.groups import TASKS
from msxai_bids.synth.truth import lesion_volume_summary, load_all_truths

EXIT_OK = 0
EXIT_USAGE = 64


class _UsageError(Exception):
    """Raised instead of argparse's exit with status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        self.print_usage(sys.stderr)
        raise _UsageError(f"{self.prog}: error: {message}")


def _resolution(text: str) -> float:
    value = float(text)
    if not 0.5 <= value <= 4.0:
        raise argparse.ArgumentTypeError(f"must be within 0.5-4 mm, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The declarative command-line interface of ``msxai-synth``."""
    parser = _Parser(
        prog="msxai-synth",
        description="Write a synthetic BIDS cohort with lesion masks and ground truth, "
        "then print its lesion-volume statistics.",
    )
    parser.add_argument("output_dir", type=Path, metavar="OUTPUT_DIR", help="new, empty folder")
    parser.add_argument("--version", action="version", version=f"msxai-synth {__version__}")
    group = parser.add_argument_group("cohort")
    group.add_argument(
        "--task",
        choices=sorted(TASKS),
        default="ms",
        help="ms: MS vs healthy controls; ad: Alzheimer's vs normal (pre-training cohort)",
    )
    group.add_argument(
        "--n-patients", type=non_negative_int, default=10, metavar="N", help="default: 10"
    )
    group.add_argument(
        "--n-controls", type=non_negative_int, default=10, metavar="N", help="default: 10"
    )
    group.add_argument(
        "--sessions",
        type=positive_int,
        default=1,
        metavar="N",
        help="scans per subject; default: 1",
    )
    group.add_argument("--seed", type=int, default=0, help="default: %(default)s")
    images = parser.add_argument_group("images")
    images.add_argument(
        "--contrast", choices=sorted(CONTRASTS), default="FLAIR", help="default: FLAIR"
    )
    images.add_argument(
        "--native-resolution",
        type=_resolution,
        default=1.0,
        metavar="MM",
        help="isotropic voxel size in mm; default: %(default)s",
    )
    images.add_argument("--skull", action="store_true", help="add meninges, skull and scalp")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress messages")
    return parser


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.n_patients + args.n_controls == 0:
        parser.error("the cohort needs at least one subject")
    if args.output_dir.exists() and any(args.output_dir.iterdir()):
        parser.error(f"OUTPUT_DIR {args.output_dir} exists and is not empty")
    return args


def format_summary(summary: dict[str, dict[str, float]]) -> str:
    """Lines of per-group lesion-volume statistics, as printed at the end of a run."""
    lines = ["Lesion volume per subject (native mask, first session), ml:"]
    for diagnosis, stats in summary.items():
        lines.append(
            f"  {diagnosis:<3} n={stats['n']:<3d} median {stats['median_ml']:7.3f}  "
            f"range {stats['min_ml']:.3f}-{stats['max_ml']:.3f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run ``msxai-synth``; return the exit code (0 ok, 64 usage error)."""
    try:
        args = _parse(argv)
    except _UsageError as error:
        print(error, file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as done:  # --help and --version
        return int(done.code or 0)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    out = make_cohort(
        args.output_dir,
        n_patients=args.n_patients,
        n_controls=args.n_controls,
        seed=args.seed,
        contrast=args.contrast,
        task=args.task,
        native_resolution=args.native_resolution,
        skull=args.skull,
        sessions=args.sessions,
    )
    print(f"Wrote a synthetic {args.task.upper()} cohort to {out}")
    print(format_summary(lesion_volume_summary(load_all_truths(out))))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
