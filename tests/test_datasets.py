"""Cached volumes and the paper's augmentation (msxai_bids.model.datasets)."""

from __future__ import annotations

import nibabel as nb
import numpy as np
import pytest
import torch

from msxai_bids.grid import CNN_GRID
from msxai_bids.model.datasets import MAX_SHIFT, augment, load_volumes, shift_zero_fill


def reference_shift(volume: np.ndarray, shift: int, axis: int) -> np.ndarray:
    """Translation with zero fill written with explicit slices."""
    out = np.zeros_like(volume)
    n = volume.shape[axis]
    src = [slice(None)] * volume.ndim
    dst = [slice(None)] * volume.ndim
    src[axis] = slice(max(0, -shift), n - max(0, shift))
    dst[axis] = slice(max(0, shift), n - max(0, -shift))
    out[tuple(dst)] = volume[tuple(src)]
    return out


@pytest.mark.parametrize("shift", [-2, -1, 0, 1, 2])
def test_shift_zero_fill_equals_sliced_translation(shift):
    volume = np.random.default_rng(0).random((1, 7, 6, 5)).astype(np.float32)
    got = shift_zero_fill(torch.from_numpy(volume), (shift, -shift), dims=(1, 2)).numpy()
    expected = reference_shift(reference_shift(volume, shift, 1), -shift, 2)
    np.testing.assert_array_equal(got, expected)


def test_augment_flips_sagittally_and_translates_in_the_axial_plane_only():
    rng = np.random.default_rng(1)
    batch = torch.from_numpy(rng.random((64, 1, 9, 8, 5)).astype(np.float32))
    out = augment(batch, torch.Generator().manual_seed(0))
    flipped = 0
    for before, after in zip(batch.numpy(), out.numpy(), strict=True):
        matches = [
            (flip, dx, dy)
            for flip in (False, True)
            for dx in range(-MAX_SHIFT, MAX_SHIFT + 1)
            for dy in range(-MAX_SHIFT, MAX_SHIFT + 1)
            if np.array_equal(
                after,
                reference_shift(reference_shift(before[:, ::-1] if flip else before, dx, 1), dy, 2),
            )
        ]
        assert len(matches) == 1  # z (axis 3) is never moved
        flipped += matches[0][0]
    assert 16 < flipped < 48  # p = 0.5


def test_augment_is_fixed_by_the_generator_and_leaves_input_alone():
    batch = torch.rand(4, 1, 6, 6, 4)
    copy = batch.clone()
    first = augment(batch, torch.Generator().manual_seed(5))
    second = augment(batch, torch.Generator().manual_seed(5))
    assert torch.equal(first, second) and torch.equal(batch, copy)


def test_load_volumes_stacks_grid_images_and_refuses_others(tmp_path):
    data = np.random.default_rng(2).random(CNN_GRID.shape).astype(np.float32)
    good = tmp_path / "good.nii.gz"
    nb.save(nb.Nifti1Image(data, CNN_GRID.affine), good)
    volumes = load_volumes([good, good])
    assert volumes.shape == (2, 1, *CNN_GRID.shape) and volumes.dtype == torch.float32
    np.testing.assert_array_equal(volumes[1, 0].numpy(), data)
    bad = tmp_path / "bad.nii.gz"
    nb.save(nb.Nifti1Image(data[:-1], CNN_GRID.affine), bad)
    with pytest.raises(ValueError, match="not the CNN grid"):
        load_volumes([bad])
