"""Outputs complete or absent: completion records, stale files of killed runs, resuming."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from output_compare import derivative_files, same_content

from msxai_bids import completion
from msxai_bids.cli.run import make_config, start_workers_early
from msxai_bids.preprocessing import workers
from msxai_bids.synth import make_cohort

MSXAI = str(Path(sys.executable).with_name("msxai"))
OPTIONS = ["--skip-bids-validation", "--seed", "5", "--model", "demo", "--atlas", "JuelichWM"]


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x")
    return path


def test_has_records_looks_at_the_named_participants_only(tmp_path):
    assert not completion.has_records(tmp_path / "out")  # no folder yet
    source = "sub-011/ses-a/anat/sub-011_ses-a_FLAIR.nii.gz"
    completion.complete(tmp_path / "out", source, {"inputs": {}})
    assert completion.has_records(tmp_path / "out")
    assert completion.has_records(tmp_path / "out", ["02", "011"])
    assert not completion.has_records(tmp_path / "out", ["01", "02"])


def test_the_workers_server_starts_first_only_in_a_participant_run_with_all_to_do(
    tiny_bids, tmp_path, monkeypatch
):
    started = []
    monkeypatch.setattr(workers, "start", lambda threads: started.append(threads))
    out = tmp_path / "out"

    def starts(*options: str) -> bool:
        started.clear()
        start_workers_early(make_config([str(tiny_bids), str(out), *options, "--nprocs", "2"]))
        return started == [2]

    assert starts("participant")
    assert not starts("participant", "--reports-only") and not starts("group")
    completion.complete(out, "sub-01/anat/sub-01_FLAIR.nii.gz", {"inputs": {}})
    assert not starts("participant")  # a rerun may have nothing to preprocess
    assert starts("participant", "--participant-label", "02")


def test_the_records_check_imports_no_pybids():
    # The workers' server starts before pybids loads (0.3 s): the check must not load it.
    code = "import sys, msxai_bids.completion; print('bids' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "False"


def test_an_images_outputs_are_its_own_files_and_its_interrupted_writes(tmp_path):
    source = "/bids/sub-01/ses-1/anat/sub-01_ses-1_run-1_FLAIR.nii.gz"
    folder = tmp_path / "sub-01" / "ses-1"
    own = [
        _touch(folder / "anat" / "sub-01_ses-1_run-1_space-X_desc-preproc_FLAIR.nii.gz"),
        _touch(folder / "anat" / ".tmp-k2x9_a-sub-01_ses-1_run-1_desc-brain_mask.nii.gz"),
        _touch(folder / "figures" / "sub-01_ses-1_run-1_desc-mosaic_FLAIR.png"),
    ]
    _touch(folder / "anat" / "sub-01_ses-1_run-2_space-X_desc-preproc_FLAIR.nii.gz")
    _touch(folder / "anat" / "sub-01_ses-1_acq-3D_run-1_space-X_desc-preproc_FLAIR.nii.gz")
    _touch(tmp_path / "sub-01" / "ses-2" / "anat" / "sub-01_ses-2_run-1_FLAIR.nii.gz")
    assert completion.image_outputs(tmp_path, source) == sorted(own)


def test_a_record_holds_while_inputs_options_version_and_outputs_do(tmp_path):
    bids_dir, out = tmp_path / "bids", tmp_path / "out"
    source = _touch(bids_dir / "sub-01" / "anat" / "sub-01_FLAIR.nii.gz")
    output = _touch(out / "sub-01" / "anat" / "sub-01_desc-preproc_FLAIR.nii.gz")
    expected = completion.fingerprint({"raw": source}, {"seed": 1})
    assert not completion.is_complete(out, str(source), [expected])
    record = completion.complete(out, str(source), expected)
    assert record == out / "logs" / "completed" / "sub-01_FLAIR.json"
    assert completion.is_complete(out, str(source), [expected])
    other_seed = completion.fingerprint({"raw": source}, {"seed": 2})
    assert not completion.is_complete(out, str(source), [other_seed])
    assert completion.is_complete(out, str(source), [other_seed, expected])  # either will do
    source.write_text("new scan")
    assert not completion.is_complete(
        out, str(source), [completion.fingerprint({"raw": source}, {"seed": 1})]
    )
    source.write_text("x")
    output.unlink()
    assert not completion.is_complete(out, str(source), [expected])
    _touch(output)
    assert completion.clear(out, str(source)) == [record, output]
    assert not record.exists() and not output.exists()


def test_an_images_records_are_its_own_and_its_steps(tmp_path):
    source = "/bids/sub-01/anat/sub-01_FLAIR.nii.gz"
    folder = completion.record_path(tmp_path, source).parent
    folder.mkdir(parents=True)
    names = [
        "sub-01_FLAIR.json", "sub-01_FLAIR_model-b.json", "sub-01_FLAIR_model-a.json",
        "sub-01_ses-2_FLAIR.json", "sub-01_acq-ax_FLAIR_model-a.json", "sub-01_report.json",
    ]  # fmt: skip
    for name in names:
        (folder / name).write_text("{}")
    found = [path.name for path in completion.records(tmp_path, source)]
    assert found == ["sub-01_FLAIR.json", "sub-01_FLAIR_model-a.json", "sub-01_FLAIR_model-b.json"]
    (folder / "sub-01_FLAIR.json").unlink()
    assert [path.name for path in completion.records(tmp_path, source)] == found[1:]


def _participant(bids_dir: Path, out: Path, work: Path, **popen) -> subprocess.Popen:
    """The participant level as a user starts it, in a process group of its own."""
    command = [MSXAI, bids_dir, out, "participant", "-w", work, "--nprocs", "2", *OPTIONS]
    return subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True, **popen,
    )  # fmt: skip


@pytest.mark.slow
def test_a_rerun_after_sigkill_ends_with_the_outputs_of_an_uninterrupted_run(tmp_path):
    bids_dir = make_cohort(
        tmp_path / "bids", n_patients=1, n_controls=1, seed=8, native_resolution=2.0
    )
    reference = tmp_path / "reference"
    plain = _participant(bids_dir, reference, tmp_path / "work-reference")
    assert plain.wait(timeout=900) == 0, plain.stderr.read()

    out, work = tmp_path / "out", tmp_path / "work"
    killed = _participant(bids_dir, out, work)
    first_output = out / "sub-01" / "anat"
    deadline = time.monotonic() + 900
    while not (first_output.is_dir() and any(first_output.iterdir())):
        assert killed.poll() is None and time.monotonic() < deadline, "no output appeared"
        time.sleep(0.05)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    # what a kill inside a write leaves: a temporary file beside the outputs
    stale = _touch(first_output / ".tmp-3vq8_p-sub-01_space-X_desc-brain_mask.nii.gz")
    assert not list((out / "logs" / "completed").glob("*.json"))

    rerun = _participant(bids_dir, out, work)
    assert rerun.wait(timeout=900) == 0, rerun.stderr.read()
    assert not stale.exists() and not list(out.rglob(".tmp-*"))
    files = derivative_files(reference)
    assert derivative_files(out) == files
    assert [f for f in sorted(files) if not same_content(out / f, reference / f)] == []
    records = sorted(path.name for path in (out / "logs" / "completed").glob("*.json"))
    assert records == [  # preprocessing, the demo model's explanations, then the report
        "sub-01_FLAIR.json", "sub-01_FLAIR_model-demomodel.json", "sub-01_report.json",
        "sub-02_FLAIR.json", "sub-02_FLAIR_model-demomodel.json", "sub-02_report.json",
    ]  # fmt: skip

    cached = _participant(bids_dir, out, work)
    err = cached.communicate(timeout=900)[1]
    assert cached.returncode == 0
    assert "2 image(s) already preprocessed with these inputs and options, skipped" in err
    assert "2 image(s) already explained by model-demomodel with these inputs" in err
    assert "msxai_participant_wf" not in err  # no workflow ran
    assert "2 report(s) kept: nothing they show changed" in err
