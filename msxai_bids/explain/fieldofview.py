"""The network's field of view: the block of input voxels that can reach its logit.

Valid convolutions and pooling that rounds down drop the remainder of each axis: a layer of
kernel k and stride s maps n voxels to ⌊(n − k) / s⌋ + 1 and its outputs read only the first
(outputs − 1)·s + k of them. Walking back from the last layer gives the block of the input
that the logit depends on; it starts at voxel 0 and every voxel outside it gets zero gradient
and zero relevance, whatever the image and the weights. On 96 × 114 × 96 voxels the paper's
CNN reads the first 71 × 98 × 71.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torch import nn

from msxai_bids.grid import CNN_GRID, Grid
from msxai_bids.model.network import SixtyFourNet

Window = tuple[tuple[int, int, int], tuple[int, int, int]]
"""Kernel size and stride of one sliding-window layer, each per axis (i, j, k)."""


def _triple(value: int | Sequence[int]) -> tuple[int, int, int]:
    return tuple(value) if isinstance(value, Sequence) else (value,) * 3


def network_windows(network: nn.Module | None = None) -> list[Window]:
    """Kernel and stride of every convolution and max pool of ``network``, in forward order.

    Parameters
    ----------
    network : nn.Module, optional
        A network whose layers run in the order they are registered, as in an
        ``nn.Sequential``; :class:`SixtyFourNet` by default (its fast twin registers the same
        windows in the same order).

    Raises
    ------
    ValueError
        For a layer with padding, dilation or ceil rounding, which this model does not cover.
    """
    network = SixtyFourNet() if network is None else network
    windows = []
    for layer in network.modules():
        if not isinstance(layer, nn.Conv3d | nn.MaxPool3d):
            continue
        if set(_triple(layer.padding)) != {0} or set(_triple(layer.dilation)) != {1}:
            raise ValueError(f"{layer} is not a valid (unpadded, undilated) window")
        if getattr(layer, "ceil_mode", False):
            raise ValueError(f"{layer} rounds up")
        windows.append((_triple(layer.kernel_size), _triple(layer.stride)))
    return windows


def seen_block(input_shape: Sequence[int], windows: Sequence[Window]) -> tuple[int, int, int]:
    """Number of leading voxels per axis that the last layer's outputs depend on.

    Parameters
    ----------
    input_shape : sequence of 3 int
        Input volume shape (X, Y, Z) in voxels.
    windows : sequence of Window
        Kernel and stride of each valid, floor-rounded layer, first layer first.

    Returns
    -------
    tuple of 3 int
        The block [0, n_i) × [0, n_j) × [0, n_k) of the input that reaches the output.

    Raises
    ------
    ValueError
        If the input is too small for a layer.
    """
    block = []
    for axis, size in enumerate(input_shape):
        sizes = [size]
        for kernel, stride in windows:
            sizes.append((sizes[-1] - kernel[axis]) // stride[axis] + 1)
            if sizes[-1] < 1:
                raise ValueError(f"input {tuple(input_shape)} is too small along axis {axis}")
        used = sizes[-1]
        for kernel, stride in reversed(windows):
            used = (used - 1) * stride[axis] + kernel[axis]
        block.append(used)
    return tuple(block)


def field_of_view_mask(
    grid: Grid = CNN_GRID, windows: Sequence[Window] | None = None
) -> np.ndarray:
    """Boolean mask of shape ``grid.shape``, True where the network can see the input.

    Parameters
    ----------
    grid : Grid
        The input grid; :data:`~msxai_bids.grid.CNN_GRID` by default.
    windows : sequence of Window, optional
        The layers (see :func:`network_windows`); the paper's CNN by default.
    """
    windows = network_windows() if windows is None else windows
    mask = np.zeros(grid.shape, dtype=bool)
    mask[tuple(slice(0, n) for n in seen_block(grid.shape, windows))] = True
    return mask
