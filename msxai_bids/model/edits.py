"""The logit of a volume whose regions are replaced a few at a time, as region perturbation does.

A forward pass spends nine tenths of its arithmetic in conv1 and conv2, and each of their
outputs sees only a window of 23 voxels of the input. After an edit of a few small regions,
only the outputs whose windows hold an edited voxel change: :class:`EditedVolume` keeps those
layers' output of the volume as it stands, recomputes them in windows around each edit (one
batch of windows per edit) and runs the cheap rest of the network on the result. The logit is
that of a full forward pass up to float rounding (within 7.6e-6 on logits of 9–23, float32).

On a participant's most-relevant-first curve (20 steps of 23 cubes of 8 mm each) a step costs
a quarter of a forward pass: 0.50 instead of 1.58 s for the curve on 2 CPU cores.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from msxai_bids.model.network import FastSixtyFourNet, early_shape, early_windows

Box = tuple[slice, slice, slice]


class EditedVolume:
    """A volume (X, Y, Z) and its logit under ``model``, kept up to date as it is edited.

    Parameters
    ----------
    model : FastSixtyFourNet
        In evaluation mode; its parameters' dtype and device are used.
    volume : np.ndarray of shape (X, Y, Z)
        Copied: the caller's array is left as it is.
    """

    def __init__(self, model: FastSixtyFourNet, volume: np.ndarray) -> None:
        parameter = next(model.parameters())
        self.model = model
        self.volume = torch.tensor(volume, dtype=parameter.dtype)
        self._device = parameter.device
        self._early = self._early_layers(self.volume[None, None])

    def logit(self) -> float:
        """The network's logit of the volume as it stands."""
        with torch.no_grad():
            return float(self.model.late_layers(self._early)[0, 0])

    def replace(self, where: np.ndarray, value: float, boxes: Sequence[Box]) -> None:
        """Set the voxels ``where`` (bool, (X, Y, Z)) to ``value``; ``boxes`` enclose them all.

        The boxes (one per edited region, as from :func:`scipy.ndimage.find_objects`) decide
        where conv1 and conv2 are recomputed: windows of one size, one per box. When the
        windows would hold more voxels than the volume, the whole volume is recomputed.
        """
        self.volume[torch.as_tensor(where)] = value
        low = np.array([[axis.start for axis in box] for box in boxes])
        high = np.array([[axis.stop - 1 for axis in box] for box in boxes])
        starts, size, corners, edge = early_windows(low, high, self.volume.shape)
        larger_than_volume = len(boxes) * edge**3 >= self.volume.numel()
        if larger_than_volume or np.any(size > early_shape(self.volume.shape)):
            self._early = self._early_layers(self.volume[None, None])
            return
        windows = [self.volume[_cube(corner, edge)] for corner in corners]
        recomputed = self._early_layers(torch.stack(windows)[:, None])
        for start, values in zip(starts, recomputed, strict=True):
            self._early[0][(slice(None), *_cube(start, size))] = values

    def _early_layers(self, volumes: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.model.early_layers(volumes.to(self._device))


def _cube(corner: np.ndarray, edge: int) -> Box:
    return tuple(slice(int(c), int(c) + edge) for c in corner)
