"""Tests of the synthetic cohort generator (msxai_bids.synth).

Most checks run on one small 2 mm cohort written once per module; the command-line run at the
default 1 mm resolution is marked slow. The anatomy references (ICBM 2009a template and its
GM/WM maps) are read straight from nilearn, not through the generator's own code.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd
import pytest
from bids import BIDSLayout
from nilearn import datasets
from scipy import ndimage

from msxai_bids.synth import acquisition, anatomy, lesions, load_all_truths, load_truth, make_cohort
from msxai_bids.synth.cli import main
from msxai_bids.synth.groups import GROUPS

MASK_QUERY = {"suffix": "mask", "label": "lesion", "extension": ".nii.gz"}


# ---------------------------------------------------------------- helpers


def _template():
    """Independent reference anatomy: nilearn's ICBM 2009a T1 brain, GM and WM maps."""
    t1 = datasets.load_mni152_template(resolution=1)
    gm = datasets.load_mni152_gm_template(resolution=1).get_fdata(dtype=np.float32)
    wm = datasets.load_mni152_wm_template(resolution=1).get_fdata(dtype=np.float32)
    return t1.affine, t1.get_fdata(dtype=np.float32) > 0, gm, wm


def _native_to_template_voxels(image: nb.Nifti1Image, affine4: np.ndarray, template_affine):
    """Template voxel coordinates (3, n) of every native voxel centre, via a native→template map."""
    index = np.indices(image.shape).reshape(3, -1).astype(np.float64)
    full = np.linalg.inv(template_affine) @ affine4 @ image.affine
    return full[:3, :3] @ index + full[:3, 3:]


def _raw_image(bids_dir: Path, subject: str, suffix: str = "FLAIR") -> nb.Nifti1Image:
    """The subject's first raw image."""
    return nb.load(sorted((bids_dir / f"sub-{subject}").rglob(f"*_{suffix}.nii.gz"))[0])


def _first_session(bids_dir: Path, subject: str) -> str | None:
    sessions = sorted(p.name[4:] for p in (bids_dir / f"sub-{subject}").glob("ses-*"))
    return sessions[0] if sessions else None


def _derivative(bids_dir: Path, name: str, subject: str) -> nb.Nifti1Image:
    """The subject's first NIfTI file in the derivative ``name``."""
    return nb.load(sorted((bids_dir / "derivatives" / name).rglob(f"sub-{subject}_*.nii.gz"))[0])


def _tissue_means(bids_dir: Path, subject: str, suffix: str) -> dict[str, float]:
    """Mean native intensity over voxels the truth maps into pure GM, WM and ventricular CSF."""
    affine, brain, gm, wm = _template()
    image = _raw_image(bids_dir, subject, suffix=suffix)
    truth = load_truth(bids_dir, subject, _first_session(bids_dir, subject))
    coords = _native_to_template_voxels(image, truth.native_to_template, affine)
    values = np.asarray(image.dataobj, dtype=np.float32).reshape(-1)
    g = ndimage.map_coordinates(gm, coords, order=0)
    w = ndimage.map_coordinates(wm, coords, order=0)
    inside = ndimage.map_coordinates(brain.astype(np.float32), coords, order=0) > 0
    csf = inside & (g < 0.02) & (w < 0.02)
    return {"gm": values[g > 0.95].mean(), "wm": values[w > 0.95].mean(), "csf": values[csf].mean()}


def _gm_correlation(image: nb.Nifti1Image, native_to_template: np.ndarray) -> float:
    """Correlation, inside the template brain, of the image resampled to 2 mm with the GM map."""
    affine, brain, gm, _ = _template()
    step = np.diag([2.0, 2.0, 2.0, 1.0])
    voxel_map = np.linalg.inv(image.affine) @ np.linalg.inv(native_to_template) @ affine @ step
    shape = tuple(n // 2 for n in gm.shape)
    data = np.asarray(image.dataobj, dtype=np.float32)
    moved = ndimage.affine_transform(data, voxel_map[:3, :3], voxel_map[:3, 3], shape, order=1)
    inside = brain[::2, ::2, ::2][: shape[0], : shape[1], : shape[2]]
    reference = gm[::2, ::2, ::2][: shape[0], : shape[1], : shape[2]]
    return float(np.corrcoef(moved[inside], reference[inside])[0, 1])


def _validator() -> str:
    found = shutil.which("bids-validator-deno")
    candidate = Path(sys.executable).with_name("bids-validator-deno")
    if found is None and not candidate.exists():
        pytest.skip("bids-validator-deno is not installed")
    return found or str(candidate)


def _assert_bids_valid(bids_dir: Path) -> None:
    result = subprocess.run(
        [_validator(), "--recursive", "--ignoreWarnings", str(bids_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("compatible") == 3  # raw, lesions, synth-truth


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    """4 MS + 4 HC FLAIR subjects at 2 mm, seed 1."""
    out = tmp_path_factory.mktemp("synth") / "bids"
    return make_cohort(out, n_patients=4, n_controls=4, seed=1, native_resolution=2.0)


@pytest.fixture(scope="module")
def ad_cohort(tmp_path_factory) -> Path:
    """1 AD + 1 CN T1w subject with two sessions each, at 2 mm."""
    out = tmp_path_factory.mktemp("synth") / "ad"
    options = {"contrast": "T1w", "task": "ad", "native_resolution": 2.0, "sessions": 2}
    return make_cohort(out, n_patients=1, n_controls=1, seed=5, **options)


# ---------------------------------------------------------------- dataset


def test_cohort_is_bids_valid_with_derivatives(cohort):
    _assert_bids_valid(cohort)
    description = json.loads((cohort / "derivatives/lesions/dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"


def test_participants_files_describe_the_groups(cohort):
    table = pd.read_csv(cohort / "participants.tsv", sep="\t")
    assert list(table.columns) == ["participant_id", "diagnosis", "age", "sex"]
    assert sorted(table.diagnosis) == ["HC"] * 4 + ["MS"] * 4
    assert table.age.between(18, 69).all() and set(table.sex) <= {"F", "M"}
    sidecar = json.loads((cohort / "participants.json").read_text())
    assert set(sidecar["diagnosis"]["Levels"]) == {"MS", "HC"}
    assert set(sidecar) == set(table.columns)


def test_pybids_finds_one_lesion_mask_per_subject_on_the_image_grid(cohort):
    layout = BIDSLayout(cohort, derivatives=True)
    assert len(layout.get_subjects()) == 8
    for subject in layout.get_subjects():
        masks = layout.get(subject=subject, **MASK_QUERY)
        images = layout.get(subject=subject, suffix="FLAIR", extension=".nii.gz")
        assert len(masks) == 1 and len(images) == 1
        mask, image = nb.load(masks[0].path), nb.load(images[0].path)
        assert mask.shape == image.shape
        np.testing.assert_allclose(mask.affine, image.affine)
        assert set(np.unique(np.asarray(mask.dataobj))) <= {0, 1}


def test_lesion_volumes_follow_the_groups(cohort):
    truths = {t.subject: t for t in load_all_truths(cohort)}
    table = pd.read_csv(cohort / "participants.tsv", sep="\t")
    volume = {
        diagnosis: [truths[p[4:]].lesion_volume_ml for p in group.participant_id]
        for diagnosis, group in table.groupby("diagnosis")
    }
    assert np.ptp(volume["MS"]) > 1.0 and max(volume["MS"]) > 2 * min(volume["MS"])
    assert np.median(volume["MS"]) > 5 * max(np.median(volume["HC"]), 0.05)
    assert np.median(volume["HC"]) < 0.5


def test_truth_volume_matches_the_written_mask(cohort):
    for truth in load_all_truths(cohort):
        mask = _derivative(cohort, "lesions", truth.subject)
        voxel_ml = abs(np.linalg.det(mask.affine[:3, :3])) / 1000.0
        assert truth.lesion_volume_ml == pytest.approx(np.asarray(mask.dataobj).sum() * voxel_ml)
        if truth.lesion_volume_template_ml > 1.0:  # head scaling ±5 % per axis, 2 mm voxels
            ratio = truth.lesion_volume_ml / truth.lesion_volume_template_ml
            assert 0.7 < ratio < 1.4


def test_poses_grids_and_orientations_vary(cohort):
    truths = load_all_truths(cohort)
    for truth in truths:
        image = _raw_image(cohort, truth.subject)
        assert "".join(nb.aff2axcodes(image.affine)) == truth.orientation
        assert image.shape == truth.shape
        assert np.all(np.abs(truth.pose["rotation_deg"]) <= 10)
        assert np.all(np.abs(truth.pose["translation_mm"]) <= 10)
        assert np.all(np.abs(np.asarray(truth.pose["scale"]) - 1) <= 0.05)
    assert len({t.orientation for t in truths}) >= 3
    assert len({t.shape for t in truths}) == len(truths)
    rotations = np.array([t.pose["rotation_deg"] for t in truths])
    assert np.abs(rotations).max() > 5 and rotations.std(axis=0).min() > 1


def test_truth_maps_native_lesions_onto_template_lesions(cohort):
    """Native mask voxels land in the template-space lesion map; with the inverse pose not."""
    for truth in load_all_truths(cohort):
        if truth.lesion_volume_ml < 0.1:
            continue
        mask = _derivative(cohort, "lesions", truth.subject)
        probseg = _derivative(cohort, "synth-truth", truth.subject)
        fraction = probseg.get_fdata(dtype=np.float32)
        inside = np.asarray(mask.dataobj).reshape(-1) > 0
        inverse = np.linalg.inv(truth.native_to_template)
        for affine4, expected in ((truth.native_to_template, True), (inverse, False)):
            coords = _native_to_template_voxels(mask, affine4, probseg.affine)[:, inside]
            hit = ndimage.map_coordinates(fraction, coords, order=1) >= 0.2
            assert (hit.mean() > 0.95) == expected, (truth.subject, hit.mean())
        centres = truth.lesion_centers_mm.T
        centre_voxels = np.linalg.inv(probseg.affine)[:3, :3] @ centres
        centre_voxels += np.linalg.inv(probseg.affine)[:3, 3:]
        assert np.mean(ndimage.map_coordinates(fraction, centre_voxels, order=1) >= 0.5) > 0.9


def test_truth_pose_registers_the_image_to_the_template(cohort):
    """The truth is the best of its ±2 mm shifts at matching the template's GM map."""
    truth = load_truth(cohort, "01")
    image = _raw_image(cohort, "01")
    best = _gm_correlation(image, truth.native_to_template)
    assert best > 0.2
    assert _gm_correlation(image, np.eye(4)) < best - 0.1
    for axis in range(3):
        for shift in (-2.0, 2.0):
            moved = np.eye(4)
            moved[axis, 3] = shift
            assert _gm_correlation(image, moved @ truth.native_to_template) < best - 0.03


def test_flair_contrast(cohort):
    means = _tissue_means(cohort, "01", "FLAIR")
    assert means["gm"] > means["wm"] > 2 * means["csf"]
    assert means["gm"] < 1.5 * means["wm"]


def test_load_truth_accepts_prefixed_labels(cohort):
    truth = load_truth(cohort, "sub-02")
    assert truth.subject == "02" and truth.session is None
    assert truth.native_to_template.shape == (4, 4) and truth.template == "MNI152NLin2009aSym"
    assert truth.diagnosis in {"MS", "HC"}
    with pytest.raises(FileNotFoundError):
        load_truth(cohort, "99")


# ---------------------------------------------------------------- options


def test_same_seed_same_bytes_other_seed_other_images(tmp_path):
    def files(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}

    options = {"n_patients": 1, "n_controls": 0, "native_resolution": 2.0}
    first = files(make_cohort(tmp_path / "a", seed=7, **options))
    assert first == files(make_cohort(tmp_path / "b", seed=7, **options))
    other = files(make_cohort(tmp_path / "c", seed=8, **options))
    images = [name for name in first if name.endswith("_FLAIR.nii.gz")]
    assert images and all(first[name] != other.get(name) for name in images)


def test_skull_adds_bright_voxels_outside_the_brain(tmp_path):
    """6–16 mm outside the template brain: noise only without a skull, bright scalp with one."""
    affine, brain, _, _ = _template()
    distance = ndimage.distance_transform_edt(~brain[::2, ::2, ::2], sampling=2.0)
    shell = ((distance > 6) & (distance < 16)).astype(np.float32)
    fractions = {}
    for skull in (False, True):
        options = {"native_resolution": 2.0, "skull": skull}
        out = make_cohort(tmp_path / str(skull), n_patients=1, n_controls=0, seed=3, **options)
        image, truth = _raw_image(out, "01"), load_truth(out, "01")
        coords = _native_to_template_voxels(image, truth.native_to_template, affine)
        in_shell = ndimage.map_coordinates(shell, coords / 2.0, order=0) > 0
        in_brain = ndimage.map_coordinates(brain.astype(np.float32), coords, order=0) > 0
        values = np.asarray(image.dataobj, dtype=np.float32).reshape(-1)
        fractions[skull] = np.mean(values[in_shell] > 0.5 * np.median(values[in_brain]))
    assert fractions[False] < 0.01
    assert fractions[True] > 0.3


def test_ad_task_t1w_contrast_and_sessions(ad_cohort):
    table = pd.read_csv(ad_cohort / "participants.tsv", sep="\t")
    assert sorted(table.diagnosis) == ["AD", "CN"]
    assert table.age.min() >= 55
    layout = BIDSLayout(ad_cohort, derivatives=True)
    assert layout.get_sessions() == ["01", "02"]
    for subject in ("01", "02"):
        assert len(layout.get(subject=subject, suffix="T1w", extension=".nii.gz")) == 2
        assert len(layout.get(subject=subject, session="02", **MASK_QUERY)) == 1
        first, second = (load_truth(ad_cohort, subject, s) for s in ("01", "ses-02"))
        assert first.lesions == second.lesions and first.diagnosis == second.diagnosis
        assert not np.allclose(first.native_to_template, second.native_to_template)
    means = _tissue_means(ad_cohort, "01", "T1w")
    assert means["wm"] > means["gm"] > 2 * means["csf"]


def test_ad_cohort_is_bids_valid(ad_cohort):
    _assert_bids_valid(ad_cohort)


@pytest.mark.parametrize(
    "arguments",
    [
        {"n_patients": 0, "n_controls": 0},
        {"n_patients": -1, "n_controls": 2},
        {"n_patients": 1, "n_controls": 1, "contrast": "T2w"},
        {"n_patients": 1, "n_controls": 1, "task": "pd"},
        {"n_patients": 1, "n_controls": 1, "sessions": 0},
        {"n_patients": 1, "n_controls": 1, "native_resolution": 8.0},
    ],
)
def test_make_cohort_rejects_bad_arguments(tmp_path, arguments):
    with pytest.raises(ValueError):
        make_cohort(tmp_path / "x", seed=0, **arguments)
    assert not (tmp_path / "x").exists()


def test_make_cohort_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "keep.txt").write_text("data")
    with pytest.raises(FileExistsError):
        make_cohort(tmp_path, n_patients=1, n_controls=0, seed=0)


# ---------------------------------------------------------------- command line


@pytest.mark.parametrize(
    "argv",
    [
        ["--bogus"],
        [],
        ["--n-patients", "-1"],
        ["--n-patients", "0", "--n-controls", "0"],
        ["--native-resolution", "9"],
        ["--contrast", "T2w"],
        ["--task", "pd"],
        ["--sessions", "0"],
    ],
)
def test_cli_usage_errors_exit_64(tmp_path, argv, capsys):
    output = [str(tmp_path / "out")] if argv else []
    assert main(output + argv) == 64
    assert "error" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cli_refuses_a_non_empty_output_dir(tmp_path):
    (tmp_path / "file").write_text("x")
    assert main([str(tmp_path), "--n-patients", "1", "--n-controls", "0"]) == 64


def test_cli_help_exits_0(capsys):
    assert main(["--help"]) == 0
    assert "--native-resolution" in capsys.readouterr().out


@pytest.mark.slow
def test_cli_default_resolution_cohort(tmp_path, capsys):
    """The documented call at 1 mm: valid BIDS, 1 mm voxels, statistics printed."""
    out = tmp_path / "x"
    assert main([str(out), "--n-patients", "4", "--n-controls", "4", "--seed", "1", "-q"]) == 0
    printed = capsys.readouterr().out
    assert "MS" in printed and "HC" in printed and "median" in printed
    _assert_bids_valid(out)
    truths = load_all_truths(out)
    assert len(truths) == 8 and {t.voxel_size_mm for t in truths} == {1.0}
    assert np.allclose(np.abs(nb.load(next(out.rglob("*_FLAIR.nii.gz"))).header.get_zooms()), 1)


# ---------------------------------------------------------------- parts


def test_lesion_load_matches_table_1():
    rng = np.random.default_rng(0)
    ms = [GROUPS["MS"].load.draw_total_ml(rng) for _ in range(4000)]
    hc = [GROUPS["HC"].load.draw_total_ml(rng) for _ in range(4000)]
    assert np.median(ms) == pytest.approx(5.1, rel=0.1)
    assert min(ms) >= 0.1 and np.mean(np.asarray(ms) > 50) > 0.01
    assert np.median(hc) == pytest.approx(0.09, abs=0.03)
    assert 0.1 < np.mean(np.asarray(hc) == 0) < 0.3


def test_periventricular_candidates_prefer_posterior_white_matter():
    tissues = anatomy.template_tissues()
    index, weight = lesions.site_candidates(tissues)["periventricular"]
    assert np.all(tissues.wm[tuple(index.T)] > 0.6)
    y_mm = index[:, 1] * tissues.affine[1, 1] + tissues.affine[1, 3]
    assert np.sum(weight * y_mm) < np.mean(y_mm) - 5
    assert np.all(anatomy.ventricle_distance_mm()[tuple(index.T)] <= 10)


def test_ventricular_enlargement_takes_thalamus_and_keeps_brain():
    tissues = anatomy.template_tissues()
    atrophied = anatomy.atrophy(tissues, ventricle_dilation_mm=2.0)
    np.testing.assert_allclose(atrophied.brain, tissues.brain, atol=1e-5)
    added_csf_ml = (atrophied.csf.sum() - tissues.csf.sum()) / 1000.0
    ventricles_ml = anatomy.ventricles().sum() / 1000.0
    assert 0.5 * ventricles_ml < added_csf_ml < 3 * ventricles_ml
    thalamus = anatomy.box_slices(tissues.affine, tissues.gm.shape, (-18, -30, -2), (-2, -6, 16))
    assert atrophied.gm[thalamus].sum() < 0.95 * tissues.gm[thalamus].sum()
    assert not tissues.gm.flags.writeable


def test_grid_covers_the_box_in_the_requested_orientation():
    rng = np.random.default_rng(0)
    box = np.array([[-70.0, -100.0, -60.0], [70.0, 80.0, 90.0]])
    for orientation in acquisition.ORIENTATIONS:
        grid = acquisition.draw_grid(rng, box, 1.5, orientation)
        assert "".join(nb.aff2axcodes(grid.affine)) == orientation
        corners = np.array([grid.affine @ [*c, 1] for c in ((0, 0, 0), np.subtract(grid.shape, 1))])
        assert np.all(corners[:, :3].min(0) <= box[0]) and np.all(corners[:, :3].max(0) >= box[1])


def test_pose_is_rotation_times_scale():
    pose = acquisition.Pose(np.array([10.0, -5.0, 3.0]), np.array([1.0, 2.0, 3.0]), np.ones(3))
    matrix = pose.native_to_template()
    np.testing.assert_allclose(matrix[:3, :3] @ matrix[:3, :3].T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(matrix[:3, 3], [1, 2, 3])
    zero = acquisition.Pose(np.zeros(3), np.zeros(3), np.array([1.05, 1.0, 0.95]))
    np.testing.assert_allclose(zero.native_to_template(), np.diag([1.05, 1.0, 0.95, 1.0]))


def test_rician_background_and_bias_field():
    rng = np.random.default_rng(0)
    noise = acquisition.add_rician_noise(rng, np.zeros((40, 40, 40), np.float32), 10.0)
    assert noise.mean() == pytest.approx(10.0 * np.sqrt(np.pi / 2), rel=0.02)
    grid = acquisition.NativeGrid((60, 70, 50), np.diag([2.0, 2.0, 2.0, 1.0]), "RAS")
    field = acquisition.bias_field(rng, grid)
    assert field.min() > 0.5 and field.max() < 2.0 and field.std() > 0.01
    assert np.abs(np.diff(field, axis=0)).max() < 0.05
