"""End to end on a plain BIDS dataset of real anatomy, as users bring one.

Three Colin27 scans that ``msxai-synth`` did not make: a posed 1 mm FLAIR-like head with scalp,
a sagittally stored head of thick (1.2×1.2×3 mm) voxels in a session, and Colin27's own T1w
contrast in 3 mm slices named FLAIR, which the QC must flag. The dataset has no
``derivatives/`` and no participants files. The participant level (with a model, so that every
kind of output is written) runs once per module; the tests read its outputs.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from bids import BIDSLayout
from cnn_fixtures import seeded_network
from real_anatomy import Case, needs_colin27, write_plain_bids

from msxai_bids import bids
from msxai_bids.cli.run import main
from msxai_bids.model.modelfile import ModelCard, save_model
from msxai_bids.model.network import SixtyFourNet

pytestmark = [pytest.mark.slow, needs_colin27]

SPACE = "space-MNI152NLin2009cAsym_res-cnn2mm"
SEED = "7"

#: Each participant's folder and file-name prefix.
PARTICIPANTS = {
    "a": ("sub-a", "sub-a"),
    "b": ("sub-b/ses-1", "sub-b_ses-1"),
    "c": ("sub-c", "sub-c"),
}


def expected_outputs() -> set[str]:
    """Every file the participant level writes outside ``logs/`` (README, "Outputs")."""
    fov = f"models/{SPACE}_desc-fieldofview_mask"
    names = {"dataset_description.json", ".bidsignore", f"{fov}.nii.gz", f"{fov}.json"}
    for folder, prefix in PARTICIPANTS.values():
        anat, stat = f"{folder}/anat/{prefix}", "model-model_stat-relevance_desc-lrpepsilon"
        regions = "stat-relevance_desc-lrpepsilon"  # the model file is root/model
        names |= {
            f"{anat}_{SPACE}_desc-preproc_FLAIR.nii.gz",
            f"{anat}_{SPACE}_desc-preproc_FLAIR.json",
            f"{anat}_{SPACE}_desc-brain_mask.nii.gz",
            f"{anat}_{SPACE}_desc-brain_mask.json",
            f"{anat}_from-FLAIR_to-MNI152NLin2009cAsym_mode-image_xfm.txt",
            f"{anat}_{SPACE}_desc-registration_qc.json",
            f"{folder}/figures/{prefix}_{SPACE}_desc-registration_FLAIR.png",
            f"{anat}_{SPACE}_{stat}_statmap.nii.gz",
            f"{anat}_{SPACE}_{stat}_statmap.json",
            f"{anat}_{stat}_statmap.nii.gz",
            f"{anat}_{stat}_statmap.json",
            f"{anat}_{SPACE}_model-model_atlas-JuelichWM_{regions}_statmap.tsv",
            f"{anat}_{SPACE}_model-model_atlas-JuelichWM_{regions}bilateral_statmap.tsv",
            f"{anat}_model-model_predictions.tsv",
            f"{folder}/figures/{prefix}_{SPACE}_desc-mosaic_FLAIR.png",
            f"{folder}/figures/{prefix}_{SPACE}_{stat}_statmap.png",
            f"{folder}/figures/{prefix}_{SPACE}_{stat}_statmap.html",
        }
    return names | {"sub-a.html", "sub-b.html", "sub-c.html"}


def run_participant_level(bids_dir: Path, out: Path, work: Path, model: Path) -> int:
    """The participant level through the command line, validation of the input included."""
    return main(
        [
            str(bids_dir),
            str(out),
            "participant",
            "-w",
            str(work),
            "--nprocs",
            "2",
            "--omp-nthreads",
            "1",
            "--seed",
            SEED,
            "--model",
            str(model),
            "--atlas",
            "JuelichWM",
        ]
    )


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, Path]:
    """The plain dataset and a model file."""
    root = tmp_path_factory.mktemp("plain")
    scans = {
        "a": Case("a", rotation_deg=(5, -4, 3), translation_mm=(4, -6, 3)).image(),
        "b": Case(
            "b",
            rotation_deg=(-3, 2, -6),
            translation_mm=(-5, 3, -2),
            orientation="ASL",
            voxel_mm=(1.2, 1.2, 3.0),
        ).image(),
        "c": Case("c", translation_mm=(3, -2, 4), voxel_mm=(1.0, 1.0, 3.0), contrast="T1w").image(),
    }
    bids_dir = write_plain_bids(root / "bids", scans, sessions={"b": "1"})
    model = save_model(
        root / "model",
        seeded_network(SixtyFourNet),
        ModelCard(positive_label="MS", negative_label="HC"),
    )
    return bids_dir, model


@pytest.fixture(scope="module")
def first_run(inputs, tmp_path_factory) -> tuple[int, Path]:
    """Exit code and OUT of one participant-level run."""
    bids_dir, model = inputs
    root = tmp_path_factory.mktemp("first")
    code = run_participant_level(bids_dir, root / "out", root / "work", model)
    return code, root / "out"


def stored_files(out: Path) -> set[str]:
    """Paths of the files under ``out``, relative to it, leaving out ``logs/``."""
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    return {name for name in files if not name.startswith("logs/")}


def test_plain_dataset_gives_exactly_the_documented_outputs(first_run):
    code, out = first_run
    assert code == 0
    assert stored_files(out) == expected_outputs()
    assert list((out / "logs").glob("msxai-*.log")) and not list((out / "logs").glob("crash-*"))


def test_a_t1w_scan_named_flair_is_processed_and_flagged(first_run):
    _, out = first_run
    plausible = {}
    for label, (folder, prefix) in PARTICIPANTS.items():
        qc = json.loads(
            (out / f"{folder}/anat/{prefix}_{SPACE}_desc-registration_qc.json").read_text()
        )
        plausible[label] = qc["plausible"]
    assert plausible == {"a": True, "b": True, "c": False}
    (log,) = (out / "logs").glob("msxai-*.log")
    assert (
        "sub-c/anat/sub-c_FLAIR.nii.gz: flagged as implausible by its QC (white matter is "
        "brighter than grey matter (median ratio "
    ) in log.read_text()


def test_outputs_are_valid_bids_derivatives(first_run):
    _, out = first_run
    bids.validate_dataset(out)  # raises BidsInvalidError naming the errors


@pytest.mark.parametrize("indexed", ["alone", "beside_raw"])
def test_pybids_finds_outputs_by_entities(inputs, first_run, indexed):
    bids_dir, _ = inputs
    _, out = first_run
    if indexed == "alone":
        layout, scope = BIDSLayout(out, validate=False, is_derivative=True), "all"
    else:
        layout, scope = BIDSLayout(bids_dir, validate=False, derivatives=[out]), "derivatives"
    for label, session in (("a", None), ("b", "1")):
        query = {"scope": scope, "subject": label, "session": session, "return_type": "filename"}
        grid = {"space": "MNI152NLin2009cAsym", "res": "cnn2mm", "extension": ".nii.gz"}
        (flair,) = layout.get(**query, **grid, desc="preproc", suffix="FLAIR")
        (mask,) = layout.get(**query, **grid, desc="brain", suffix="mask")
        (xfm,) = layout.get(
            **query, suffix="xfm", extension=".txt", to="MNI152NLin2009cAsym", mode="image"
        )
        assert layout.get_metadata(mask)["Resolution"] == layout.get_metadata(flair)["Resolution"]
        assert Path(xfm).read_text().startswith("#Insight Transform File")


def sha256_of(out: Path) -> dict[str, str]:
    """SHA-256 of every file under ``out`` but ``logs/`` (run ids and times by design)."""
    return {
        name: hashlib.sha256((out / name).read_bytes()).hexdigest()
        for name in sorted(stored_files(out))
    }


def test_rerun_is_bit_identical(inputs, first_run, tmp_path):
    """The same input and ``--seed`` into a fresh OUT and work dir give the same bytes.

    No file carries a time (NIfTI gzip headers have mtime 0, the PNG figures no ``tIME``
    chunk, the sidecars and ``dataset_description.json`` no date). Only the reports
    (``sub-<L>.html``) differ, by design: they state the run id and the command, with its OUT.
    """
    bids_dir, model = inputs
    _, out = first_run
    code = run_participant_level(bids_dir, tmp_path / "out", tmp_path / "work", model)
    assert code == 0
    first, second = sha256_of(out), sha256_of(tmp_path / "out")
    assert first.keys() == second.keys()
    for report in ("sub-a.html", "sub-b.html", "sub-c.html"):
        del first[report], second[report]
    differing = sorted(name for name in first if first[name] != second[name])
    assert differing == [], "differ between two runs:\n" + "\n".join(differing)
