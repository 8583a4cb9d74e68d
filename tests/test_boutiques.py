"""The Boutiques descriptor describes the real command line."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

from msxai_bids import __version__
from msxai_bids.cli.parser import build_parser

DESCRIPTOR = Path(__file__).parents[1] / "boutiques.json"


def _parser_flags() -> set[str]:
    return {flag for action in build_parser()._actions for flag in action.option_strings}


BOSH = Path(sys.executable).with_name("bosh")


def test_descriptor_is_a_valid_bids_app_descriptor():
    proc = subprocess.run([BOSH, "validate", "--bids", DESCRIPTOR], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "BIDS validation OK" in proc.stdout + proc.stderr


def test_the_descriptors_test_invocation_gives_a_command_line_msxai_accepts(tmp_path):
    descriptor = json.loads(DESCRIPTOR.read_text())
    (test,) = descriptor["tests"]
    invocation = tmp_path / "invocation.json"
    invocation.write_text(json.dumps(test["invocation"]))
    proc = subprocess.run(
        [BOSH, "exec", "simulate", DESCRIPTOR, "-i", invocation], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    command = proc.stdout.strip().splitlines()[-1]
    mkdir, msxai = command.split("; ")
    assert mkdir == "mkdir -p out"
    program, *arguments = shlex.split(msxai)
    assert program == "msxai"
    options = build_parser().parse_args(arguments)
    assert (options.bids_dir, options.output_dir, options.analysis_level) == (
        Path("bids"),
        Path("out"),
        "participant",
    )
    assert options.participant_label == ["01"] and options.method == ["lrp-epsilon"]


def test_descriptor_flags_exist_in_parser_and_version_matches():
    descriptor = json.loads(DESCRIPTOR.read_text())
    flags = {i["command-line-flag"] for i in descriptor["inputs"] if "command-line-flag" in i}
    assert flags <= _parser_flags()
    assert descriptor["tool-version"] == __version__


def test_every_parser_option_is_described():
    descriptor = json.loads(DESCRIPTOR.read_text())
    # participant_outputs is output_dir again, typed as the existing folder a group level reads
    described = {i["id"] for i in descriptor["inputs"]} - {"participant_outputs"}
    dests = {a.dest for a in build_parser()._actions if a.dest not in ("help", "version")}
    assert dests == described


def test_method_choices_are_the_explanation_methods():
    from msxai_bids.explain.methods import METHODS

    descriptor = json.loads(DESCRIPTOR.read_text())
    method = next(i for i in descriptor["inputs"] if i["id"] == "method")
    assert method["value-choices"] == list(METHODS)
