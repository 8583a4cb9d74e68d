"""Bad inputs are turned away at the boundary, each named in one line; the others go on."""

from __future__ import annotations

import shutil

import pytest
from broken_inputs import (
    IMAGE_CASES,
    MASK_CASES,
    add_broken_participant,
    flair_path,
    mask_path,
)

from msxai_bids import inputs
from msxai_bids.cli.run import main
from msxai_bids.synth import make_cohort

SPACE = "space-MNI152NLin2009cAsym_res-cnn2mm"


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """One patient (sub-01, with a lesion mask) and one control, 2 mm, with scalp."""
    root = tmp_path_factory.mktemp("inputs") / "bids"
    return make_cohort(root, n_patients=1, n_controls=1, seed=3, native_resolution=2.0)


def test_good_images_and_masks_pass(cohort):
    image = inputs.check_image(flair_path(cohort, "01"))
    inputs.check_lesion_mask(mask_path(cohort, "01"), image)
    usable, rejected = inputs.screen([(str(flair_path(cohort, "02")), None)])
    assert rejected == [] and usable == [(str(flair_path(cohort, "02")), None)]


@pytest.mark.parametrize("case", sorted(IMAGE_CASES))
def test_each_broken_image_is_named_with_its_problem(cohort, tmp_path, case):
    bids_dir = tmp_path / "bids"
    bids_dir.mkdir()
    for name in ("participants.tsv",):
        (bids_dir / name).write_text((cohort / name).read_text())
    (bids_dir / "sub-01" / "anat").mkdir(parents=True)
    for path in flair_path(cohort, "01").parent.iterdir():
        (bids_dir / "sub-01" / "anat" / path.name).write_bytes(path.read_bytes())
    broken = add_broken_participant(bids_dir, "01", "bad", case)
    with pytest.raises(inputs.InputImageError) as caught:
        inputs.check_image(broken)
    assert caught.value.path == str(broken)
    assert IMAGE_CASES[case][1] in caught.value.problem
    assert str(caught.value).startswith(f"{broken}: ")


@pytest.mark.parametrize("case", sorted(MASK_CASES))
def test_each_broken_lesion_mask_rejects_its_image(cohort, tmp_path, case):
    bids_dir = tmp_path / "bids"
    for source in (flair_path(cohort, "01"), mask_path(cohort, "01")):
        target = bids_dir / source.relative_to(cohort)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
        json = source.with_suffix("").with_suffix(".json")
        target.with_suffix("").with_suffix(".json").write_bytes(json.read_bytes())
    (bids_dir / "participants.tsv").write_text("participant_id\n")
    mask = add_broken_participant(bids_dir, "01", "bad", case)
    usable, rejected = inputs.screen([(str(flair_path(bids_dir, "bad")), str(mask))])
    assert usable == []
    assert rejected[0].path == str(mask)
    assert MASK_CASES[case][1] in rejected[0].problem


def test_a_single_volume_stored_as_4d_is_accepted(cohort, tmp_path):
    import nibabel as nb

    image = nb.load(flair_path(cohort, "02"))
    data = image.get_fdata(dtype="float32")[..., None]
    target = tmp_path / "sub-02_FLAIR.nii.gz"
    nb.save(nb.Nifti1Image(data, image.affine), target)
    assert inputs.check_image(target).shape[:3] == image.shape


@pytest.mark.slow
def test_participant_level_rejects_each_bad_participant_and_processes_the_good(
    cohort, tmp_path, capsys
):
    bids_dir = tmp_path / "bids"
    shutil.copytree(cohort, bids_dir)
    cases = {**IMAGE_CASES, **MASK_CASES}
    broken = {case: add_broken_participant(bids_dir, "01", case, case) for case in cases}
    out = tmp_path / "out"
    code = main(
        [str(bids_dir), str(out), "participant", "--skip-bids-validation",
         "-w", str(tmp_path / "work"), "--nprocs", "2"]
    )  # fmt: skip
    console = capsys.readouterr().err
    assert code == 1
    for case, path in broken.items():
        lines = [line for line in console.splitlines() if f"rejected {path}: " in line]
        assert len(lines) == 1, (case, console)
        assert cases[case][1] in lines[0]
        assert not (out / f"sub-{case}").exists()
    assert f"{len(cases)} image(s) rejected; the others go on" in console
    assert "Traceback" not in console
    for label in ("01", "02"):
        assert (out / f"sub-{label}" / "anat" / f"sub-{label}_{SPACE}_desc-preproc_FLAIR.nii.gz"
                ).is_file()  # fmt: skip
    assert not list((out / "logs").glob("crash-*"))


def test_only_bad_participants_exit_66(cohort, tmp_path, capsys):
    bids_dir = tmp_path / "bids"
    shutil.copytree(cohort, bids_dir)
    add_broken_participant(bids_dir, "01", "cut", "truncated")
    code = main(
        [str(bids_dir), str(tmp_path / "out"), "participant", "--skip-bids-validation",
         "--participant-label", "cut", "-w", str(tmp_path / "work")]
    )  # fmt: skip
    assert code == 66
    err = capsys.readouterr().err
    assert "rejected" in err and "none of the 1 selected image(s) is usable" in err
    assert not (tmp_path / "out" / "sub-cut").exists()
