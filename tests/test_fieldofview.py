"""The block of input voxels the CNN reads, checked against its gradients and the template brain."""

from __future__ import annotations

import nibabel as nb
import numpy as np
import pytest
import torch
from cnn_fixtures import seeded_network
from torch import nn

from msxai_bids.explain.fieldofview import field_of_view_mask, network_windows, seen_block
from msxai_bids.grid import CNN_GRID
from msxai_bids.model.network import FastSixtyFourNet, SixtyFourNet
from msxai_bids.templates import template_path

CONV, POOL = ((3, 3, 3), (1, 1, 1)), ((3, 3, 3), (3, 3, 3))


def test_windows_are_the_papers_three_blocks():
    assert network_windows() == [CONV, POOL, CONV, POOL, CONV, CONV, POOL]
    assert network_windows(FastSixtyFourNet()) == network_windows(SixtyFourNet())


def test_seen_block_drops_each_layers_remainder():
    # 10 → conv 8 → pool 2, which reads 6 of the 8, so conv reads 8 of 10; 12 → 10 → 3 reads 9
    assert seen_block((10, 11, 12), [CONV, POOL]) == (8, 11, 11)
    assert seen_block((9, 9, 9), [CONV]) == (9, 9, 9)
    with pytest.raises(ValueError, match="too small along axis 2"):
        seen_block((8, 8, 4), [CONV, POOL])


def test_padded_or_ceil_layers_are_refused():
    with pytest.raises(ValueError, match="unpadded"):
        network_windows(nn.Sequential(nn.Conv3d(1, 1, 3, padding=1)))
    with pytest.raises(ValueError, match="rounds up"):
        network_windows(nn.Sequential(nn.MaxPool3d(3, ceil_mode=True)))


def test_mask_is_the_leading_block_of_the_grid():
    block = seen_block(CNN_GRID.shape, network_windows())
    mask = field_of_view_mask()
    assert mask.shape == CNN_GRID.shape and mask.dtype == bool
    assert mask.sum() == np.prod(block) and mask[tuple(n - 1 for n in block)]
    assert (
        not mask[block[0]].any() and not mask[:, block[1]].any() and not mask[..., block[2]].any()
    )


def input_gradients(network: nn.Module, n_inputs: int, seed: int = 3) -> torch.Tensor:
    """|d(logit)/d(input)| of ``n_inputs`` uniform random volumes, shape (n, *CNN_GRID.shape)."""
    network.requires_grad_(False)  # only the input's gradient is needed
    generator = torch.Generator().manual_seed(seed)
    grads = []
    for _ in range(n_inputs):  # one at a time: a batch of two takes twice the memory
        volume = torch.rand((1, 1, *CNN_GRID.shape), generator=generator).requires_grad_(True)
        network(volume).sum().backward()
        grads.append(volume.grad[0, 0].abs())
    return torch.stack(grads)


@pytest.mark.parametrize(("cls", "n_inputs"), [(SixtyFourNet, 1), (FastSixtyFourNet, 3)])
def test_gradient_vanishes_exactly_outside_the_block(cls, n_inputs):
    """Random networks and inputs: zero gradient beyond the block, non-zero on its last voxels."""
    grad = input_gradients(seeded_network(cls, seed=3), n_inputs)
    nx, ny, nz = seen_block(CNN_GRID.shape, network_windows())
    assert grad[:, nx:].max() == 0 and grad[:, :, ny:].max() == 0 and grad[..., nz:].max() == 0
    for sample in grad:
        assert sample[nx - 1].max() > 0 and sample[:, ny - 1].max() > 0
        assert sample[..., nz - 1].max() > 0


def test_field_of_view_covers_the_template_brain():
    """At most 2 % of the brain mask (1 mm) is unseen, and none of it above the block."""
    image = nb.load(template_path(desc="brain", suffix="mask"))
    world = nb.affines.apply_affine(image.affine, np.argwhere(np.asanyarray(image.dataobj) > 0))
    voxels = np.rint(nb.affines.apply_affine(np.linalg.inv(CNN_GRID.affine), world)).astype(int)
    block = np.array(seen_block(CNN_GRID.shape, network_windows()))
    seen = ((voxels >= 0) & (voxels < block)).all(axis=1)
    assert 1.0 - seen.mean() <= 0.02
    assert not (voxels[:, 2] >= block[2]).any()  # only the lowest slices are given up
