"""BIDS queries, derivative names and metadata."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd
import pytest
from bids.layout import parse_file_entities
from conftest import write_minimal_bids

from msxai_bids import bids, completion, derivatives
from msxai_bids.errors import NoInputError, NothingSelectedError
from msxai_bids.files import atomic_write
from msxai_bids.grid import CNN_GRID
from msxai_bids.group.cohort import image_table, label_description, read_labels, without_flagged
from msxai_bids.interfaces.bids import DerivativesDataSink
from msxai_bids.stages.preprocessing import failed_images, warn_flagged
from msxai_bids.workflows.base import flair_workflow_name


def test_collect_images_handles_sessions_and_labels(tiny_bids, tmp_path):
    layout = bids.load_layout(tiny_bids, tmp_path / "out")
    assert len(bids.collect_images(layout)) == 3
    only_02 = bids.collect_images(layout, participant_label=["02"], session_label=["b"])
    assert [Path(f.path).name for f in only_02] == ["sub-02_ses-b_FLAIR.nii.gz"]
    with pytest.raises(NothingSelectedError):
        bids.collect_images(layout, participant_label=["01"], session_label=["b"])


def test_filters_can_select_t1w_images_instead(tmp_path):
    t1w = write_minimal_bids(tmp_path / "t1w", {"01": [None], "02": [None]}, "T1w")
    layout = bids.load_layout(t1w, tmp_path / "out")
    with pytest.raises(NoInputError, match="no anatomical FLAIR images"):
        bids.collect_images(layout)
    images = bids.collect_images(layout, bids_filters={"flair": {"suffix": "T1w"}})
    assert [Path(f.path).name for f in images] == ["sub-01_T1w.nii.gz", "sub-02_T1w.nii.gz"]
    with pytest.raises(NoInputError, match="no anatomical T2w images"):
        bids.collect_images(layout, bids_filters={"flair": {"suffix": "T2w"}})


def test_lesion_mask_found_in_derivative_dataset(tiny_bids, tmp_path):
    deriv = tiny_bids / "derivatives" / "lesions"
    anat = deriv / "sub-01" / "anat"
    anat.mkdir(parents=True)
    (deriv / "dataset_description.json").write_text(
        json.dumps(
            {
                "Name": "lesions",
                "BIDSVersion": "1.10.0",
                "DatasetType": "derivative",
                "GeneratedBy": [{"Name": "manual"}],
            }
        )
    )
    nb.save(
        nb.Nifti1Image(np.zeros((12, 14, 10), np.uint8), np.eye(4)),
        anat / "sub-01_label-lesion_mask.nii.gz",
    )
    layout = bids.load_layout(tiny_bids, tmp_path / "out")
    flair_01, flair_02a, _ = bids.collect_images(layout)
    assert bids.find_lesion_mask(layout, flair_01).endswith("sub-01_label-lesion_mask.nii.gz")
    assert bids.find_lesion_mask(layout, flair_02a) is None


def write_plain_bids(root: Path, subjects: dict[str, list[str | None]]) -> Path:
    """A dataset as users bring it: no ``derivatives/``, no participants files."""
    write_minimal_bids(root, subjects)
    (root / "participants.tsv").unlink()
    (root / "participants.json").unlink()
    return root


@pytest.mark.parametrize(
    "subjects",
    [
        {"01": [None], "02": [None]},
        {"01": ["a"], "02": ["a", "b"]},
        {"01": [None], "02": ["a"]},
    ],
    ids=["no-sessions", "sessions", "mixed"],
)
def test_plain_dataset_is_valid_input_without_optional_files(tmp_path, subjects, caplog):
    plain = write_plain_bids(tmp_path / "plain", subjects)
    bids.validate_dataset(plain)
    layout = bids.load_layout(plain, tmp_path / "out")
    flairs = bids.collect_images(layout)
    assert len(flairs) == sum(len(sessions) for sessions in subjects.values())
    with caplog.at_level(logging.DEBUG, logger="msxai.bids"):
        assert [bids.find_lesion_mask(layout, flair) for flair in flairs] == [None] * len(flairs)
    assert "no derivative datasets: no lesion masks" in caplog.text


def test_derivatives_without_lesion_masks_give_none(tmp_path):
    plain = write_plain_bids(tmp_path / "plain", {"01": [None]})
    (plain / "derivatives" / "empty").mkdir(parents=True)
    other = plain / "derivatives" / "other"
    (other / "sub-01" / "anat").mkdir(parents=True)
    (other / "dataset_description.json").write_text(
        json.dumps(
            {
                "Name": "other",
                "BIDSVersion": "1.10.0",
                "DatasetType": "derivative",
                "GeneratedBy": [{"Name": "x"}],
            }
        )
    )
    layout = bids.load_layout(plain, tmp_path / "out")
    assert bids.find_lesion_mask(layout, bids.collect_images(layout)[0]) is None


def test_participants_files_are_optional_until_labels_are_needed(tmp_path, caplog):
    plain = write_plain_bids(tmp_path / "plain", {"01": [None]})
    with caplog.at_level(logging.INFO, logger="msxai.group"):
        assert label_description(plain, "diagnosis") == {}
    assert "participants.json" in caplog.text
    with pytest.raises(NoInputError, match="needs diagnostic labels"):
        read_labels(plain, "diagnosis", "MS", "HC")


@pytest.mark.parametrize(
    ("entities", "expected"),
    [
        (
            {
                "subject": "01",
                "space": "MNI152NLin2009cAsym",
                "res": "cnn2mm",
                "desc": "preproc",
                "suffix": "FLAIR",
                "extension": ".nii.gz",
            },
            "sub-01/anat/sub-01_space-MNI152NLin2009cAsym_res-cnn2mm_desc-preproc_FLAIR.nii.gz",
        ),
        (
            {
                "subject": "01",
                "session": "a",
                "run": 2,
                "from": "FLAIR",
                "to": "MNI152NLin2009cAsym",
                "mode": "image",
                "suffix": "xfm",
                "extension": ".txt",
            },
            "sub-01/ses-a/anat/sub-01_ses-a_run-2_from-FLAIR_to-MNI152NLin2009cAsym_mode-image_xfm.txt",
        ),
        (
            {
                "subject": "01",
                "space": "MNI152NLin2009cAsym",
                "atlas": "JHU",
                "stat": "relevance",
                "desc": "lrpepsilon",
                "suffix": "statmap",
                "extension": ".tsv",
            },
            "sub-01/anat/sub-01_space-MNI152NLin2009cAsym_atlas-JHU_stat-relevance_desc-lrpepsilon"
            "_statmap.tsv",
        ),
        (
            {
                "subject": "01",
                "datatype": "figures",
                "desc": "registration",
                "suffix": "FLAIR",
                "extension": ".png",
            },
            "sub-01/figures/sub-01_desc-registration_FLAIR.png",
        ),
    ],
)
def test_derivative_names(entities, expected, tmp_path):
    assert derivatives.named(tmp_path, entities) == tmp_path / expected


def test_dataset_description_is_a_derivative(tmp_path, tiny_bids):
    bids.write_dataset_description(tmp_path, tiny_bids)
    description = json.loads((tmp_path / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert description["GeneratedBy"][0]["Name"] == "msxai"
    assert description["SourceDatasets"][0]["URL"] == tiny_bids.resolve().as_uri()
    assert {"logs", "figures"} <= set((tmp_path / ".bidsignore").read_text().split())


def test_sink_names_file_from_source_and_writes_sidecar(tiny_bids, tmp_path):
    source = tiny_bids / "sub-02" / "ses-a" / "anat" / "sub-02_ses-a_FLAIR.nii.gz"
    sink = DerivativesDataSink(
        base_directory=str(tmp_path / "out"),
        source_file=str(source),
        in_file=str(source),
        kind="preproc",
        meta_dict={"SkullStripped": True},
    )
    result = sink.run(cwd=str(tmp_path))
    out = Path(result.outputs.out_file)
    assert out.relative_to(tmp_path / "out").as_posix() == (
        f"sub-02/ses-a/anat/sub-02_ses-a_space-MNI152NLin2009cAsym_res-{CNN_GRID.label}"
        "_desc-preproc_FLAIR.nii.gz"
    )
    assert np.array_equal(nb.load(out).get_fdata(), nb.load(source).get_fdata())
    meta = json.loads(Path(result.outputs.out_meta).read_text())
    assert meta == {
        "Sources": ["bids:raw:sub-02/ses-a/anat/sub-02_ses-a_FLAIR.nii.gz"],
        "SkullStripped": True,
        "Resolution": CNN_GRID.description,
    }
    assert not list(out.parent.glob(".tmp-*"))


def data_without_sidecar(folder: Path) -> list[str]:
    """Data files in ``folder`` whose JSON sidecar is missing."""
    data = [p for p in folder.glob("*") if p.suffix != ".json" and not p.name.startswith(".tmp-")]
    return [p.name for p in data if not bids.sidecar_path(p).is_file()]


@pytest.fixture
def watched(monkeypatch) -> list[str]:
    """After every rename and deletion of a file: the data files of its folder then found
    without their sidecar, as another array task reading the shared OUT would meet them."""
    met: list[str] = []
    replace, unlink = os.replace, Path.unlink

    def watched_replace(source, target) -> None:
        replace(source, target)
        met.extend(data_without_sidecar(Path(target).parent))

    def watched_unlink(path: Path, missing_ok: bool = False) -> None:
        unlink(path, missing_ok)
        met.extend(data_without_sidecar(path.parent))

    monkeypatch.setattr(os, "replace", watched_replace)
    monkeypatch.setattr(Path, "unlink", watched_unlink)
    return met


def test_no_writer_shows_data_before_its_sidecar_nor_clearing_after(tiny_bids, tmp_path, watched):
    source = tiny_bids / "sub-01" / "anat" / "sub-01_FLAIR.nii.gz"
    out, entities = tmp_path / "out", parse_file_entities(str(source))
    image = out / "sub-01" / "anat" / "sub-01_desc-preproc_FLAIR.nii.gz"
    bids.write_nifti(image, nb.load(source), {"SkullStripped": False})
    table = bids.write_tsv(
        derivatives.path(out, "regions", entities, atlas="JHU", model="demo", method="lrpepsilon"),
        pd.DataFrame({"region": ["a"]}),
        columns={"region": "Atlas region"},
    )
    sink = DerivativesDataSink(
        base_directory=str(out), source_file=str(source), in_file=str(source), kind="preproc",
        meta_dict={"SkullStripped": True},
    )  # fmt: skip
    sunk = Path(sink.run(cwd=str(tmp_path)).outputs.out_file)
    written = [image, table, sunk]
    assert all(p.is_file() and bids.sidecar_path(p).is_file() for p in written)
    removed = completion.clear(out, str(source))
    assert set(removed) >= {*written, *map(bids.sidecar_path, written)}
    assert watched == []


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "x.json"

    def fail(tmp: Path) -> None:
        tmp.write_text("partial")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(target, fail)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_write_gives_the_mode_of_a_plain_open(tmp_path, umask):
    previous = os.umask(umask)
    try:
        written = atomic_write(tmp_path / "x.json", lambda tmp: tmp.write_text("{}"))
        plain = tmp_path / "plain.json"
        plain.write_text("{}")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(written.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
    assert stat.S_IMODE(written.stat().st_mode) == 0o666 & ~umask


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (f"sub-01_space-MNI_res-{CNN_GRID.label}_desc-brain_mask.nii.gz", True),
        (f"sub-01_space-MNI_res-{CNN_GRID.label}_desc-preproc_FLAIR.nii", True),
        (f"sub-01_space-MNI_res-{CNN_GRID.label}_desc-registration_qc.json", False),
        (f"sub-01_space-MNI_res-{CNN_GRID.label}_desc-registration_FLAIR.png", False),
        ("sub-01_stat-relevance_desc-lrpepsilon_statmap.nii.gz", False),
    ],
)
def test_resolution_is_required_of_every_res_image(tmp_path, name, expected):
    path = tmp_path / "sub-01" / "anat" / name
    required = {"Resolution": CNN_GRID.description} if expected else {}
    assert bids.required_metadata(path) == required


def test_unknown_resolution_is_refused(tmp_path):
    with pytest.raises(ValueError, match="res-7mm"):
        bids.required_metadata(tmp_path / "sub-01_space-MNI_res-7mm_desc-brain_mask.nii.gz")


def test_sink_writes_required_sidecar_without_metadata(tiny_bids, tmp_path):
    source = tiny_bids / "sub-01" / "anat" / "sub-01_FLAIR.nii.gz"
    sink = DerivativesDataSink(
        base_directory=str(tmp_path / "out"),
        source_file=str(source),
        in_file=str(source),
        kind="brain_mask",
    )
    meta = json.loads(Path(sink.run(cwd=str(tmp_path)).outputs.out_meta).read_text())
    assert meta == {
        "Sources": ["bids:raw:sub-01/anat/sub-01_FLAIR.nii.gz"],
        "Resolution": CNN_GRID.description,
    }


def test_unknown_label_values_are_a_warning_that_lists_them(tmp_path, caplog):
    (tmp_path / "participants.tsv").write_text(
        "participant_id\tdiagnosis\nsub-1\tMS\nsub-2\tHC\nsub-3\tms\nsub-4\tRRMS\nsub-5\t\n"
        "sub-6\tRRMS\n"
    )
    with caplog.at_level(logging.INFO, logger="msxai.group"):
        targets = read_labels(tmp_path, "diagnosis", "MS", "HC")
    assert targets.to_dict() == {"sub-1": 1, "sub-2": 0}
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.getMessage() == (
        "4 participant(s) left out: diagnosis is neither 'MS' nor 'HC' but '(empty)' × 1, "
        "'RRMS' × 2, 'ms' × 1 (sub-3, sub-4, sub-5, sub-6); "
        "set --positive-label/--negative-label to use them"
    )


def _plant_registration_qc(tmp_path: Path) -> tuple[Path, list]:
    """Three labelled images with preprocessed FLAIRs: sub-02's registration is flagged,
    sub-03 has no QC file."""
    bids_dir = write_minimal_bids(tmp_path / "bids", {"01": [None], "02": [None], "03": [None]})
    out = tmp_path / "out"
    flairs = bids.collect_images(bids.load_layout(bids_dir, out))
    for flair in flairs:
        entities = flair.entities
        preproc = derivatives.path(out, "preproc", entities)
        preproc.parent.mkdir(parents=True, exist_ok=True)
        preproc.write_bytes(b"")
        if entities["subject"] != "03":
            plausible = entities["subject"] == "01"
            qc = {
                "plausible": plausible,
                "reason": "" if plausible else "brain-mask Dice 0.412 < 0.7",
            }
            derivatives.path(out, "qc", entities).write_text(json.dumps(qc))
    return out, flairs


def test_training_leaves_out_flagged_registrations_and_names_them(tmp_path, caplog):
    out, flairs = _plant_registration_qc(tmp_path)
    targets = read_labels(tmp_path / "bids", "diagnosis", "MS", "HC")
    table = image_table(out, flairs, targets, lesion_filled=False)
    assert len(table) == 3
    with caplog.at_level(logging.WARNING, logger="msxai.group"):
        kept = without_flagged(table)
    assert kept["source"].tolist() == [
        "sub-01/anat/sub-01_FLAIR.nii.gz",
        "sub-03/anat/sub-03_FLAIR.nii.gz",
    ]
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.getMessage() == (
        "1 image(s) left out: the participant level's QC flagged them as implausible: "
        "sub-02/anat/sub-02_FLAIR.nii.gz (brain-mask Dice 0.412 < 0.7); --include-flagged uses them"
    )


def test_the_participant_level_warns_of_each_flagged_registration(tmp_path, caplog):
    out, flairs = _plant_registration_qc(tmp_path)
    with caplog.at_level(logging.WARNING, logger="msxai.workflow"):
        warn_flagged(out, flairs)
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        "sub-02/anat/sub-02_FLAIR.nii.gz: flagged as implausible by its QC (brain-mask Dice "
        "0.412 < 0.7); its report shows it, and group --train leaves it out unless "
        "--include-flagged"
    ]


def test_a_run_reports_the_crashes_of_its_own_images_only(tiny_bids, tmp_path, caplog):
    flairs = bids.collect_images(bids.load_layout(tiny_bids, tmp_path / "out"))
    mine = flairs[:1]  # the other two are another job's
    crashes = []
    for flair in flairs:
        crash = tmp_path / f"crash-{flair_workflow_name(flair)}.txt"
        node = f"msxai_participant_wf.{flair_workflow_name(flair)}.preproc_wf.n4"
        crash.write_text(f"Node: {node}\n\nTraceback …\nValueError: planted failure\n")
        crashes.append(crash)
    with caplog.at_level(logging.ERROR, logger="msxai.workflow"):
        failed = failed_images(crashes, mine)
    assert failed == {mine[0].path}
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert messages[0].startswith(
        f"failed: {flair_workflow_name(mine[0])}.preproc_wf.n4 — ValueError: planted failure"
    )
    assert messages[1:] == ["1 image(s) failed; the other participants were processed"]
    assert failed_images(crashes[1:], mine) == set()
