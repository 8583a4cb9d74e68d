"""Affine registration, ITK transform files and resampling between native space and the grid."""

import ants
import nibabel as nb
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from msxai_bids.grid import CNN_GRID
from msxai_bids.preprocessing.accuracy import displacement_mm
from msxai_bids.preprocessing.brain import brain_mask
from msxai_bids.preprocessing.registration import (
    native_to_template_ras,
    register_to_template,
    template_to_native_ras,
    transform_from_ras,
    write_itk_affine,
)
from msxai_bids.preprocessing.resampling import mask_to_grid, to_grid, to_native
from msxai_bids.templates import template_path


def _known_pose(seed: int) -> np.ndarray:
    """A template → native affine (4, 4): rotation ≤ 10°, shift ≤ 10 mm, scale ±5 %."""
    rng = np.random.default_rng(seed)
    pose = np.eye(4)
    rotation = Rotation.from_euler("xyz", rng.uniform(-10, 10, 3), degrees=True).as_matrix()
    pose[:3, :3] = rotation @ np.diag(rng.uniform(0.95, 1.05, 3))
    pose[:3, 3] = rng.uniform(-10, 10, 3)
    return pose


def _native_grid(voxel_mm: float, shape, axcodes: str) -> nb.Nifti1Image:
    """An empty native image in orientation ``axcodes``, centred on the world origin."""
    affine = np.diag([0.0, 0.0, 0.0, 1.0])
    for axis, (world_axis, flip) in enumerate(nb.orientations.axcodes2ornt(axcodes)):
        affine[int(world_axis), axis] = voxel_mm * flip
    affine[:3, 3] = -affine[:3, :3] @ ((np.asarray(shape) - 1) / 2)
    image = nb.Nifti1Image(np.zeros(shape, dtype=np.float32), affine)
    image.header.set_xyzt_units("mm")
    return image


@pytest.fixture(scope="module")
def warped_template(tmp_path_factory):
    """The template brain moved into an LPS-stored 2 mm native grid by a known affine."""
    pose = _known_pose(seed=4)
    xfm = write_itk_affine(transform_from_ras(pose), tmp_path_factory.mktemp("xfm") / "pose.txt")
    reference = ants.from_nibabel_nifti(_native_grid(2.0, (100, 120, 96), "LPS"))
    template = ants.image_read(str(template_path()), pixeltype="float")
    inverse = ants.read_transform(str(xfm)).invert()
    native = ants.apply_ants_transform_to_image(inverse, template, reference)
    return native, pose, xfm


def test_itk_text_file_round_trips_a_ras_matrix(tmp_path):
    pose = _known_pose(seed=1)
    path = write_itk_affine(transform_from_ras(pose), tmp_path / "x.txt")
    text = path.read_text()
    assert text.startswith("#Insight Transform File V1.0")
    assert "Transform: AffineTransform_double_3_3" in text
    np.testing.assert_allclose(template_to_native_ras(path), pose, atol=1e-6)
    np.testing.assert_allclose(native_to_template_ras(path) @ pose, np.eye(4), atol=1e-6)
    with pytest.raises(ValueError, match=r"\.txt"):
        write_itk_affine(transform_from_ras(pose), tmp_path / "x.mat")


def test_known_affine_is_recovered(warped_template, tmp_path):
    native, pose, _ = warped_template
    transform = register_to_template(native, brain_mask(native))
    estimate = template_to_native_ras(write_itk_affine(transform, tmp_path / "est.txt"))
    assert displacement_mm(estimate, pose).mean() < 0.5


def test_to_grid_puts_the_template_back_on_itself(warped_template):
    native, _, xfm = warped_template
    on_grid = to_grid(native, xfm).numpy()
    template = ants.resample_image_to_target(
        ants.image_read(str(template_path()), pixeltype="float"),
        ants.from_nibabel_nifti(
            nb.Nifti1Image(np.zeros(CNN_GRID.shape, np.float32), CNN_GRID.affine)
        ),
    ).numpy()
    assert on_grid.shape == CNN_GRID.shape
    inside = template > 10
    assert np.corrcoef(on_grid[inside], template[inside])[0, 1] > 0.95


def test_to_native_maps_template_coordinates_to_native_voxels(warped_template, capsys):
    """A grid image holding each voxel's template x coordinate, mapped to native space, must read
    (pose⁻¹ · p)_x at each native voxel p: linear values survive trilinear interpolation."""
    _, pose, xfm = warped_template
    x_mm = CNN_GRID.affine[0, 0] * np.arange(CNN_GRID.shape[0]) + CNN_GRID.affine[0, 3]
    grid_img = nb.Nifti1Image(np.broadcast_to(x_mm[:, None, None], CNN_GRID.shape), CNN_GRID.affine)
    native_ref = _native_grid(3.0, (50, 60, 48), "ASL")
    native = to_native(grid_img, native_ref, xfm)
    assert "Warning" not in capsys.readouterr().out  # antspyx's, for images without time units
    assert native.shape == native_ref.shape
    np.testing.assert_array_equal(native.affine, native_ref.affine)
    index = np.argwhere(np.ones(native.shape, bool))
    world = native_ref.affine[:3, :3] @ index.T + native_ref.affine[:3, 3:]
    template = np.linalg.inv(pose)[:3, :3] @ world + np.linalg.inv(pose)[:3, 3:]
    template_x = template[0]
    values = native.get_fdata()[tuple(index.T)]
    # between the grid's outer voxel centres, where trilinear interpolation is exact
    grid_index = (template - CNN_GRID.affine[:3, 3:]) / CNN_GRID.voxel_mm
    last = np.array(CNN_GRID.shape)[:, None] - 1
    inside_grid = ((grid_index >= 0) & (grid_index <= last)).all(axis=0)
    well_inside = (np.abs(template_x) < 80) & inside_grid
    assert well_inside.mean() > 0.3
    np.testing.assert_allclose(values[well_inside], template_x[well_inside], atol=0.05)


def test_mask_to_grid_keeps_the_volume_of_a_1mm_mask(tmp_path):
    reference = _native_grid(1.0, (120, 140, 110), "RAS")
    index = np.indices(reference.shape)
    centre = np.array([60, 70, 55])[:, None, None, None]
    sphere = (np.sqrt(((index - centre) ** 2).sum(axis=0)) <= 12).astype(np.float32)
    mask = ants.from_nibabel_nifti(nb.Nifti1Image(sphere, reference.affine))
    xfm = write_itk_affine(transform_from_ras(_known_pose(seed=2)), tmp_path / "p.txt")
    on_grid = mask_to_grid(mask, xfm).numpy()
    assert set(np.unique(on_grid)) == {0.0, 1.0}
    det = abs(np.linalg.det(_known_pose(seed=2)[:3, :3]))  # template mm³ per native mm³
    volume_template = on_grid.sum() * CNN_GRID.voxel_mm**3
    assert volume_template == pytest.approx(sphere.sum() / det, rel=0.06)
