"""Errors that end a run with a specific exit code (BIDS Apps 2.0 recommendation).

Every error carries the one-line reason printed to the user and the process exit code, so the
command line maps failures to codes in one place instead of at every ``raise``.
"""

from __future__ import annotations


class MsxaiError(Exception):
    """Base class: a failure the user can act on, with its exit code."""

    exit_code = 1


class UsageError(MsxaiError):
    """Options that cannot work together or paths that break the BIDS-App rules."""

    exit_code = 64


class BidsInvalidError(MsxaiError):
    """The input dataset fails BIDS validation."""

    exit_code = 16


class UnknownLevelError(MsxaiError):
    """The analysis level is neither ``participant`` nor ``group``."""

    exit_code = 17


class NothingSelectedError(MsxaiError):
    """The participant/session labels or BIDS filters selected no data."""

    exit_code = 18


class NoInputError(MsxaiError):
    """The input dataset is missing or holds nothing this app can use."""

    exit_code = 66
