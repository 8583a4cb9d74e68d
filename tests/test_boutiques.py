"""The Boutiques descriptor describes the real command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from msxai_bids import __version__
from msxai_bids.cli.parser import build_parser

DESCRIPTOR = Path(__file__).parents[1] / "boutiques.json"


def _parser_flags() -> set[str]:
    return {flag for action in build_parser()._actions for flag in action.option_strings}


def test_descriptor_is_valid_boutiques():
    bosh = Path(sys.executable).with_name("bosh")
    proc = subprocess.run([bosh, "validate", DESCRIPTOR], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_descriptor_flags_exist_in_parser_and_version_matches():
    descriptor = json.loads(DESCRIPTOR.read_text())
    flags = {i["command-line-flag"] for i in descriptor["inputs"] if "command-line-flag" in i}
    assert flags <= _parser_flags()
    assert descriptor["tool-version"] == __version__


def test_every_parser_option_is_described():
    descriptor = json.loads(DESCRIPTOR.read_text())
    described = {i["id"] for i in descriptor["inputs"]}
    dests = {a.dest for a in build_parser()._actions if a.dest not in ("help", "version")}
    assert dests == described


def test_method_choices_are_the_explanation_methods():
    from msxai_bids.explain.methods import METHODS

    descriptor = json.loads(DESCRIPTOR.read_text())
    method = next(i for i in descriptor["inputs"] if i["id"] == "method")
    assert method["value-choices"] == list(METHODS)
