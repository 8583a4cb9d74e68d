"""Declarative argument parser of the ``msxai`` BIDS App (BIDS-Apps conventions, fMRIPrep habits).

Destinations equal :class:`msxai_bids.config.Config` field names. Usage errors exit with 64,
not argparse's 2 (BIDS Apps 2.0 recommendation).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

from msxai_bids import __version__
from msxai_bids.cli.types import model_file, positive_int
from msxai_bids.config import CONTRASTS, filtered_contrast
from msxai_bids.errors import UsageError

ANALYSIS_LEVELS = ("participant", "group")


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors exit with 64."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(UsageError.exit_code, f"{self.prog}: error: {message}\n")


def _strip_prefix(prefix: str):
    """Return a ``type=`` callable that accepts labels with or without ``prefix``."""

    def parse(value: str) -> str:
        label = value.removeprefix(prefix)
        if not label or not label.isalnum():
            raise argparse.ArgumentTypeError(
                f"{value!r} is not a valid BIDS label (letters/digits)"
            )
        return label

    return parse


def _filter_file(value: str) -> dict[str, Any]:
    """Read a ``--bids-filter-file``: JSON mapping query names (``flair``) to pybids filters."""
    path = Path(value)
    try:
        filters = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise argparse.ArgumentTypeError(f"cannot read BIDS filter file {path}: {err}") from err
    if not isinstance(filters, dict) or not all(isinstance(v, dict) for v in filters.values()):
        raise argparse.ArgumentTypeError(
            f'{path}: expected a JSON object like {{"flair": {{"acquisition": "3D"}}}}'
        )
    suffix = filtered_contrast(filters)
    if suffix not in CONTRASTS:
        raise argparse.ArgumentTypeError(
            f"{path}: suffix {suffix!r} is not one contrast of {', '.join(CONTRASTS)}"
        )
    return filters


def _fraction(value: str) -> float:
    number = float(value)
    if not 0.0 < number < 1.0:
        raise argparse.ArgumentTypeError(f"{value!r} must lie strictly between 0 and 1")
    return number


def _positive_float(value: str) -> float:
    number = float(value)
    if not number > 0.0:
        raise argparse.ArgumentTypeError(f"{value!r} must be a positive number")
    return number


def _add_group_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``group --train``: labels, split, training and baselines."""
    group = parser.add_argument_group("group level: training and evaluation")
    group.add_argument(
        "--train",
        action="store_true",
        help="train and evaluate the CNN and SVM baselines and explain the holdout, before the "
        "analyses of the heatmaps that every group run makes",
    )
    group.add_argument(
        "--init-model",
        dest="init_model",
        type=model_file,
        metavar="MODEL",
        help="fine-tune from this pre-trained model (transfer learning; paper's settings)",
    )
    group.add_argument(
        "--label-column", dest="label_column", default="diagnosis", help="participants.tsv column"
    )
    group.add_argument("--positive-label", dest="positive_label", default="MS", help="patients")
    group.add_argument("--negative-label", dest="negative_label", default="HC", help="controls")
    group.add_argument(
        "--trials", type=positive_int, default=10, help="trainings on the same split"
    )
    group.add_argument(
        "--epochs", type=positive_int, help="maximum epochs (default: 45, fine-tuning 200)"
    )
    group.add_argument(
        "--batch-size", dest="batch_size", type=positive_int, help="default: 8, fine-tuning 4"
    )
    group.add_argument(
        "--lr", type=_positive_float, help="initial learning rate (default: 1e-3, fine-tuning 5e-4)"
    )
    group.add_argument(
        "--patience",
        type=positive_int,
        help="early-stopping patience (default: 10, fine-tuning 15)",
    )
    group.add_argument(
        "--holdout-fraction",
        dest="holdout_fraction",
        type=_fraction,
        default=0.15,
        help="share of subjects held out for the final evaluation",
    )
    group.add_argument(
        "--validation-fraction",
        dest="validation_fraction",
        type=_fraction,
        default=0.15,
        help="share of the other subjects used for early stopping",
    )
    group.add_argument(
        "--new-split",
        dest="new_split",
        action="store_true",
        help="draw a new split instead of reusing OUTPUT_DIR/group/splits.tsv",
    )
    group.add_argument(
        "--include-flagged",
        dest="include_flagged",
        action="store_true",
        help="also train on images whose QC (registration, contrast) the participant level "
        "flagged as implausible (left out by default)",
    )
    group.add_argument(
        "--lesion-filled",
        dest="lesion_filled",
        action="store_true",
        help="train on lesion-filled FLAIR (from --lesion-fill)",
    )
    group.add_argument(
        "--skip-baselines",
        dest="skip_baselines",
        action="store_true",
        help="do not fit the SVM baselines",
    )
    audit = parser.add_argument_group("group level: explanation audit")
    audit.add_argument(
        "--audit",
        action="store_true",
        help="audit every explained model's heatmaps: model randomisation, localisation on "
        "the lesion masks against three baselines, region perturbation (minutes per model; "
        "models are found in OUTPUT_DIR/models, among the shipped ones, or given with --model)",
    )
    audit.add_argument(
        "--audit-size",
        dest="audit_size",
        type=positive_int,
        default=10,
        metavar="N",
        help="participants audited per model, half patients and half controls (seeded)",
    )


def build_parser() -> argparse.ArgumentParser:
    """Return the full ``msxai`` parser."""
    parser = _Parser(
        prog="msxai",
        description="msxai: transparent MS diagnosis from FLAIR MRI (CNN + LRP) as a BIDS App.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("bids_dir", type=Path, help="root of the input BIDS dataset")
    parser.add_argument("output_dir", type=Path, help="where BIDS-Derivatives are written")
    parser.add_argument(
        "analysis_level",
        metavar="{participant,group}",
        help="participant: preprocess (and with --model explain); group: analyse the heatmaps "
        "in OUTPUT_DIR (and with --train first train)",
    )
    parser.add_argument("--version", action="version", version=f"msxai {__version__}")

    sel = parser.add_argument_group("selecting data")
    sel.add_argument(
        "--participant-label",
        "--participant_label",
        dest="participant_label",
        nargs="+",
        type=_strip_prefix("sub-"),
        metavar="LABEL",
        help="participants to process (sub- optional)",
    )
    sel.add_argument(
        "--session-label",
        "--session_label",
        dest="session_label",
        nargs="+",
        type=_strip_prefix("ses-"),
        metavar="LABEL",
        help="sessions to process (ses- optional)",
    )
    sel.add_argument(
        "--bids-filter-file",
        dest="bids_filters",
        type=_filter_file,
        metavar="FILE",
        help='JSON of pybids filters per query, e.g. {"flair": {"acquisition": "3D"}}; '
        '{"flair": {"suffix": "T1w"}} processes T1w images instead (a pre-training cohort)',
    )
    sel.add_argument(
        "--skip-bids-validation",
        "--skip_bids_validation",
        dest="skip_bids_validation",
        action="store_true",
        help="do not run bids-validator-deno on the input",
    )

    perf = parser.add_argument_group("performance and resources")
    perf.add_argument(
        "-w",
        "--work-dir",
        dest="work_dir",
        type=Path,
        metavar="DIR",
        help="intermediate results; reruns reuse finished steps (default: ./work)",
    )
    perf.add_argument(
        "--nprocs",
        "--n-cpus",
        dest="nprocs",
        type=positive_int,
        default=os.cpu_count() or 1,
        help="parallel processes",
    )
    perf.add_argument(
        "--omp-nthreads",
        dest="omp_nthreads",
        type=positive_int,
        default=None,
        help="OpenMP and torch threads per process; ITK steps always use one, for "
        "reproducible registrations (default: min(nprocs, 8))",
    )
    perf.add_argument("--mem-gb", dest="mem_gb", type=float, help="memory limit for scheduling")
    perf.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="where the CNN runs"
    )
    perf.add_argument("--seed", type=int, default=0, help="random seed; fixes results on CPU")

    pre = parser.add_argument_group("preprocessing")
    pre.add_argument(
        "--lesion-fill",
        dest="lesion_fill",
        action="store_true",
        help="also write lesion-filled FLAIR (needs lesion masks)",
    )

    expl = parser.add_argument_group("participant level: prediction and explanation")
    expl.add_argument(
        "--model",
        type=model_file,
        metavar="MODEL",
        help="model file (.safetensors + .json card), or 'demo' for the model shipped with msxai "
        "(trained on synthetic data, not for clinical use); predict and explain each FLAIR "
        "(participant level), or a model to audit (group --audit)",
    )
    expl.add_argument(
        "--method",
        nargs="+",
        default=["lrp-epsilon"],
        metavar="METHOD",
        help="lrp-epsilon (the paper's), gradient-input, lrp-epsilon-plus-flat, lrp-alpha1beta0, "
        "smoothgrad",
    )
    expl.add_argument(
        "--atlas",
        nargs="+",
        metavar="ATLAS",
        help="atlases for region tables: Neuromorphometrics, JHU, JuelichWM or an "
        "atlas-<name>_dseg.nii.gz with its .tsv (default: Neuromorphometrics and JHU)",
    )

    _add_group_arguments(parser)

    reports = parser.add_argument_group("reports")
    reports.add_argument(
        "--reports-only",
        "--reports_only",
        dest="reports_only",
        action="store_true",
        help="only rebuild the HTML reports of the level (sub-<label>.html, group.html) and "
        "their figures from OUTPUT_DIR, computing nothing else",
    )

    other = parser.add_argument_group("other")
    other.add_argument(
        "--force",
        action="store_true",
        help="preprocess and explain again the images whose completion records "
        "(OUTPUT_DIR/logs/completed) say they are done with these inputs, options and msxai "
        "version",
    )
    other.add_argument(
        "-v",
        "--verbose",
        dest="verbose",
        action="count",
        default=0,
        help="more log output (repeatable)",
    )
    return parser
