"""``type=`` callables shared by the argument parsers of ``msxai`` and ``msxai-synth``.

Each turns one command-line string into a value or raises ``argparse.ArgumentTypeError``,
which argparse reports as a usage error naming the option. A string that is not a number at
all raises ``ValueError``, reported by argparse as ``invalid <function name> value``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from msxai_bids.data import SHIPPED_MODELS


def positive_int(value: str) -> int:
    """An integer of at least 1 (counts of processes, epochs, sessions)."""
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} must be a positive integer")
    return number


def non_negative_int(value: str) -> int:
    """An integer of at least 0 (counts that may be empty)."""
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be a non-negative integer")
    return number


def model_file(value: str) -> Path:
    """A model's path, or a model shipped with msxai named by its key (``demo``).

    A file of that name in the working directory is reached as ``./demo``.
    """
    return SHIPPED_MODELS.get(value, Path(value))
