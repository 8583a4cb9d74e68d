"""Every file a small participant + group run writes, compared with a recorded inventory.

``data/derivative_inventory.txt`` was recorded from the code before the derivative names moved
into one table (:mod:`msxai_bids.derivatives`) and re-recorded once, deliberately, when the group
analyses added their outputs, the ``model-`` entity (two models' heatmaps of one participant no
longer overwrite each other) and the field-of-view mask, and again when the HTML reports added
``sub-<L>.html``, ``group.html`` and their figures. A change that renames, drops or adds a
file fails here. Set ``MSXAI_RECORD_INVENTORY=1`` to rewrite the record after an intended change.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from msxai_bids.cli.run import main
from msxai_bids.synth import make_cohort

pytestmark = pytest.mark.usefixtures("restore_logging")

RECORD = Path(__file__).parent / "data" / "derivative_inventory.txt"


def inventory(out: Path) -> list[str]:
    """Relative paths of every file under ``out`` except the run-stamped logs."""
    return sorted(
        p.relative_to(out).as_posix()
        for p in out.rglob("*")
        if p.is_file() and p.relative_to(out).parts[0] != "logs"
    )


def run(*args: str) -> None:
    assert main([*args, "--skip-bids-validation"]) == 0


@pytest.mark.slow
def test_a_participant_and_group_run_writes_the_recorded_files(tmp_path):
    bids_dir = make_cohort(
        tmp_path / "bids", n_patients=4, n_controls=4, seed=5, native_resolution=2.0
    )
    out, work = str(tmp_path / "out"), ["-w", str(tmp_path / "work"), "--nprocs", "2"]
    raw = str(bids_dir)
    run(raw, out, "participant", *work, "--omp-nthreads", "1", "--lesion-fill")
    train = [raw, out, "group", "--train", "--trials", "2", "--epochs", "1", *work]
    run(*train, "--batch-size", "2")
    scratch = str(tmp_path / "out" / "models" / "cnn-scratch")
    run(*train, "--init-model", scratch, "--lesion-filled", "--trials", "1", "--skip-baselines")
    run(
        raw,
        out,
        "participant",
        *work,
        "--model",
        scratch,
        "--method",
        "lrp-epsilon",
        "gradient-input",
        "--atlas",
        "JuelichWM",
        "--participant-label",
        "02",
    )
    written = inventory(tmp_path / "out")
    if os.environ.get("MSXAI_RECORD_INVENTORY"):
        RECORD.parent.mkdir(exist_ok=True)
        RECORD.write_text("\n".join(written) + "\n")
    assert written == RECORD.read_text().split()
