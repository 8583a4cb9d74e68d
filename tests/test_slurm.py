"""The SLURM scripts: concurrent array tasks into one OUTPUT_DIR equal a serial run, each task
reports only its own failure; submit.sh chains them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from broken_inputs import add_broken_participant
from output_compare import derivative_files, same_content

from msxai_bids.synth import make_cohort

SLURM = Path(__file__).resolve().parents[1] / "scripts" / "slurm"
MSXAI = str(Path(sys.executable).with_name("msxai"))
OPTIONS = ["--skip-bids-validation", "--seed", "5", "--model", "demo", "--atlas", "JuelichWM"]


@pytest.mark.slow
def test_array_tasks_into_one_output_folder_equal_a_serial_run(tmp_path):
    """Four tasks at once, the fourth of a participant whose scan is cut short: the three good
    tasks exit 0 and equal a serial run; the bad task alone fails, with its own message."""
    bids_dir = make_cohort(
        tmp_path / "bids", n_patients=2, n_controls=1, seed=8, native_resolution=2.0
    )
    broken = add_broken_participant(bids_dir, "01", "04", "truncated")
    parallel, serial = tmp_path / "parallel", tmp_path / "serial"
    env = {**os.environ, "MSXAI": MSXAI, "TMPDIR": str(tmp_path)}
    tasks = [
        subprocess.Popen(
            ["bash", SLURM / "msxai_participant.sbatch", bids_dir, parallel, *OPTIONS],
            env={**env, "SLURM_ARRAY_TASK_ID": str(task)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        for task in (1, 2, 3, 4)
    ]
    errors = [task.communicate(timeout=900)[1] for task in tasks]
    assert [task.returncode for task in tasks] == [0, 0, 0, 66], errors
    assert all("rejected" not in e and "failed" not in e for e in errors[:3]), errors
    assert f"rejected {broken}: compressed data ends or breaks early" in errors[3]
    run = [MSXAI, bids_dir, serial, "participant", "-w", tmp_path / "work", "--nprocs", "1"]
    labels = ["--participant-label", "01", "02", "03"]
    subprocess.run([*run, *labels, *OPTIONS], check=True, capture_output=True, timeout=900)

    files = derivative_files(serial)
    assert any(f.endswith("_desc-lrpepsilon_statmap.nii.gz") for f in files)
    assert derivative_files(parallel) == files
    differing = [f for f in sorted(files) if not same_content(parallel / f, serial / f)]
    assert differing == []
    for label in ("01", "02", "03"):
        assert (parallel / f"sub-{label}.html").is_file()
    assert not (parallel / "sub-04").exists()
    assert not list(tmp_path.glob("msxai-work-*")), "a task left its work folder"


def test_a_task_outside_the_array_is_refused(tmp_path):
    bids_dir = tmp_path / "bids"
    (bids_dir / "sub-01").mkdir(parents=True)
    completed = subprocess.run(
        ["bash", SLURM / "msxai_participant.sbatch", bids_dir, tmp_path / "out"],
        env={**os.environ, "SLURM_ARRAY_TASK_ID": "2", "MSXAI": "false"},
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 64
    assert "array task 2, but" in completed.stderr and "holds 1 participants" in completed.stderr


def test_submission_sizes_the_array_and_chains_the_group_level(tmp_path):
    bids_dir = tmp_path / "bids"
    for label in ("01", "02", "03"):
        (bids_dir / f"sub-{label}").mkdir(parents=True)
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    sbatch = bin_dir / "sbatch"  # records its arguments, answers with a job id as --parsable does
    sbatch.write_text(f'#!/bin/sh\necho "$*" >> {calls}\nwc -l < {calls} | tr -d " "\n')
    sbatch.chmod(0o755)
    completed = subprocess.run(
        [
            "bash",
            SLURM / "submit.sh",
            bids_dir,
            tmp_path / "out",
            "--model",
            "demo",
            "--",
            "--audit",
        ],
        env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 0, completed.stderr
    participant, group = calls.read_text().splitlines()
    assert participant.startswith("--parsable --array=1-3%50 ")
    assert participant.endswith(
        f"msxai_participant.sbatch {bids_dir} {tmp_path / 'out'} --model demo"
    )
    assert group.startswith("--parsable --dependency=afterany:1 ")
    assert group.endswith(f"msxai_group.sbatch {bids_dir} {tmp_path / 'out'} --audit")
    assert (tmp_path / "out").is_dir()
