"""The 3D CNN of Eitel et al. (2019), written literally and in a faster, equivalent form.

Both classes hold the same parameters under the same names (``conv1`` … ``conv4``, ``fc``) with
the same shapes, so one state dict (and one model file) serves both:

* :class:`SixtyFourNet` is the paper's network layer by layer, the reference for training code
  and for tests.
* :class:`FastSixtyFourNet` computes the same function with less work on a CPU: ELU runs after
  max pooling (ELU is strictly increasing, so the pool picks the same winner and the result is
  bit-identical) and the first convolution, which has a single input channel, runs as a 2-D
  convolution over stacks of three consecutive slices in channels-last layout, whose output
  is pooled as a channels-last 3-D volume. Every weighted layer is still a convolution or
  linear module, so zennit's rules attach to it unchanged.

The output of both is the logit of the positive label, shape (N, 1); the sigmoid belongs to the
loss and to the reported probability, never to the network, because LRP starts from the logit.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from functools import partial
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

CHANNELS = 64
DROPOUT = 0.3
L2_LAMBDA = 0.01
L2_KERNELS = ("conv3.weight", "conv4.weight")


def _conv(in_channels: int) -> nn.Conv3d:
    return nn.Conv3d(in_channels, CHANNELS, kernel_size=3)


def glorot_init(model: nn.Module) -> nn.Module:
    """Glorot-uniform weights and zero biases for every convolution and linear layer, as Keras does.

    PyTorch's fan-in/fan-out for a Conv3d kernel (channels × 27) equals Keras' receptive-field
    rule, so ``xavier_uniform_`` draws from the same distribution. Returns ``model``.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv3d | nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)
    return model


class UniformDropout(nn.Dropout):
    """Inverted dropout whose mask compares one uniform draw per element with ``p``.

    The same distribution and scaling as :class:`torch.nn.Dropout`, but on CPUs its forward
    and backward take 40 % less time than the ``bernoulli_`` kernel behind ``nn.Dropout``, and
    after conv1 the masked tensor has 9 M elements per batch of four.
    """

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Zero each element with probability ``p`` and scale the others by 1 / (1 − p)."""
        if not self.training or self.p == 0.0:
            return hidden
        scale = (torch.rand_like(hidden) >= self.p).to(hidden.dtype).mul_(1.0 / (1.0 - self.p))
        return hidden * scale


class SixtyFourNet(nn.Sequential):
    """The paper's CNN, one module per layer; input (N, 1, 96, 114, 96), output logits (N, 1).

    Three blocks of 3×3×3 valid convolutions with ELU, 3×3×3 max pooling and dropout reduce the
    volume to 64 × 1 × 2 × 1 = 128 features for a single output unit. 333,889 parameters.

    Parameters
    ----------
    dropout : float
        Drop probability after each pooling layer (active in training mode only).
    """

    def __init__(self, dropout: float = DROPOUT) -> None:
        drop = UniformDropout
        layers = OrderedDict(
            conv1=_conv(1), elu1=nn.ELU(), pool1=nn.MaxPool3d(3), drop1=drop(dropout),
            conv2=_conv(CHANNELS), elu2=nn.ELU(), pool2=nn.MaxPool3d(3), drop2=drop(dropout),
            conv3=_conv(CHANNELS), elu3=nn.ELU(),
            conv4=_conv(CHANNELS), elu4=nn.ELU(), pool3=nn.MaxPool3d(3), drop3=drop(dropout),
            flatten=nn.Flatten(), fc=nn.Linear(2 * CHANNELS, 1),
        )  # fmt: skip
        super().__init__(layers)
        glorot_init(self)


class DepthFoldedConv3d(nn.Conv3d):
    """A one-channel 3×3×3 convolution evaluated as a 2-D convolution over depth-folded slices.

    The kernel keeps the Conv3d shape (C, 1, 3, 3, 3) so state dicts stay interchangeable; its
    depth taps become the three input channels of a Conv2d. The input is a batch of stacks of
    three consecutive slices, shape (B, 3, H, W), and the output (B, C, H − 2, W − 2) is the
    Conv3d output at the first slice of each stack, bias included.
    """

    def __init__(self, out_channels: int = CHANNELS) -> None:
        super().__init__(1, out_channels, kernel_size=3)

    def forward(self, slices: torch.Tensor) -> torch.Tensor:
        """Convolve stacks of slices (B, 3, H, W) into (B, C, H − 2, W − 2)."""
        return F.conv2d(slices, self.weight.squeeze(1), self.bias)


def fold_depth(volumes: torch.Tensor, depth: int) -> torch.Tensor:
    """Stack each slice with its two successors: (N, 1, D, H, W) → (N·depth, 3, H, W).

    Only the first ``depth`` output slices are built; the pooling after conv1 discards the
    others. The result is channels-last, the layout in which the 2-D convolution is fastest.
    """
    stacks = torch.stack([volumes[:, 0, tap : tap + depth] for tap in range(3)], dim=2)
    return stacks.flatten(0, 1).contiguous(memory_format=torch.channels_last)


def _with_strides(grad: torch.Tensor, strides: tuple[int, ...]) -> torch.Tensor:
    """``grad`` laid out with ``strides`` (those of a channels-last-3d tensor).

    The CPU max-pool backward copies its whole input when the gradient's strides differ, even
    where they differ only along a dimension of size one, as in zennit's gradients for a batch
    of one: that copy made LRP 50 % slower.
    """
    return grad if grad.stride() == strides else grad.clone(memory_format=torch.channels_last_3d)


class FastSixtyFourNet(nn.Module):
    """:class:`SixtyFourNet` computed with less work; same parameters, same outputs.

    Equal to the literal network up to float32 rounding, except where two max-pool candidates
    differ by less than rounding, and such near-ties are rare (a few per million windows). Exact
    ties, such as the constant background outside the brain, pick the same winner in both.

    Parameters
    ----------
    dropout : float
        Drop probability after each pooling layer (active in training mode only).
    """

    #: Layers whose output goes straight into a max pool (ELU comes after): LRP divides their
    #: relevance at the pool, on 27 times fewer elements (:mod:`msxai_bids.explain.rules`).
    pooled_layers: ClassVar[dict[str, str]] = {"conv1": "pool1", "conv2": "pool2", "conv4": "pool3"}

    def __init__(self, dropout: float = DROPOUT) -> None:
        super().__init__()
        self.conv1 = DepthFoldedConv3d()
        self.pool1 = nn.MaxPool3d(3)
        self.elu1, self.drop1 = nn.ELU(), UniformDropout(dropout)
        self.conv2, self.pool2 = _conv(CHANNELS), nn.MaxPool3d(3)
        self.elu2, self.drop2 = nn.ELU(), UniformDropout(dropout)
        self.conv3, self.elu3 = _conv(CHANNELS), nn.ELU()
        self.conv4, self.pool3 = _conv(CHANNELS), nn.MaxPool3d(3)
        self.elu4, self.drop3 = nn.ELU(), UniformDropout(dropout)
        self.flatten, self.fc = nn.Flatten(), nn.Linear(2 * CHANNELS, 1)
        glorot_init(self)

    def _block1(self, volumes: torch.Tensor) -> torch.Tensor:
        """conv1 over depth-folded slices → 3×3×3 max pool → ELU.

        The Conv2d output (N·depth, C, H, W) in channels-last storage is, without a copy, the
        (N, C, depth, H, W) volume in channels-last-3d storage, where 3-D pooling runs over
        contiguous channel vectors. The pooled volume stays channels-last, and the gradient
        that returns to it gets its exact strides, which keeps the pool's backward fast.
        """
        n, depth = volumes.shape[0], (volumes.shape[2] - 2) // 3 * 3
        planes = self.conv1(fold_depth(volumes, depth))
        pooled = self.pool1(planes.unflatten(0, (n, depth)).transpose(1, 2))
        if pooled.requires_grad:
            pooled.register_hook(partial(_with_strides, strides=pooled.stride()))
        return self.drop1(self.elu1(pooled))

    def early_layers(self, volumes: torch.Tensor) -> torch.Tensor:
        """conv1 to conv2, before the second pooling: (N, 64, 29, 35, 29) of volumes
        (N, 1, 96, 114, 96), nine tenths of a forward pass's arithmetic.

        Each output depends only on a window of the input (:func:`early_reach`), so an input
        edited in a few places needs these layers only around the edits
        (:class:`msxai_bids.model.edits.EditedVolume`).
        """
        return self.conv2(self._block1(volumes))

    def late_layers(self, early: torch.Tensor) -> torch.Tensor:
        """The rest of the network: logits (N, 1) of :meth:`early_layers`' output."""
        hidden = self.drop2(self.elu2(self.pool2(early)))
        hidden = self.elu3(self.conv3(hidden))
        hidden = self.drop3(self.elu4(self.pool3(self.conv4(hidden))))
        return self.fc(self.flatten(hidden))

    def forward(self, volumes: torch.Tensor) -> torch.Tensor:
        """Logits (N, 1) of volumes (N, 1, 96, 114, 96)."""
        return self.late_layers(self.early_layers(volumes))


def early_shape(shape: Sequence[int]) -> np.ndarray:
    """Spatial shape of :meth:`FastSixtyFourNet.early_layers`' output for inputs of ``shape``:
    a valid 3×3×3 convolution, a 3×3×3 pooling that drops what does not fill a window, and a
    second valid convolution."""
    return (np.asarray(shape) - 2) // 3 - 2


def early_reach(low: np.ndarray, high: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """The outputs of :meth:`FastSixtyFourNet.early_layers` that input voxels ``low`` to
    ``high`` (inclusive, per axis) feed: first and last, inclusive, shape (2, …, 3).

    Voxel v feeds conv1 outputs v − 2 … v, which fall in pooling cells (v − 2) // 3 … v // 3,
    and cell c feeds conv2 outputs c − 2 … c.
    """
    last = early_shape(shape) - 1
    first = np.clip((np.asarray(low) - 2) // 3 - 2, 0, last)
    return np.stack([first, np.minimum(np.asarray(high) // 3, last)])


def early_windows(
    low: np.ndarray, high: np.ndarray, shape: Sequence[int]
) -> tuple[np.ndarray, int, np.ndarray, int]:
    """Where to recompute :meth:`FastSixtyFourNet.early_layers` after input voxels ``low`` to
    ``high`` (inclusive, per axis, one row per box) of a volume of ``shape`` changed.

    Returns the first output of each box's cube of outputs, whose one ``size`` holds every
    box's :func:`early_reach` (moved back from the far edges to stay inside), and the first
    voxel and the edge of the input window that gives exactly those outputs. A ``size`` larger
    than the output (:func:`early_shape`) leaves no such cube.
    """
    first, last = early_reach(low, high, shape)
    size = int((last - first).max()) + 1
    starts = np.minimum(first, early_shape(shape) - size)
    return starts, size, 3 * starts, 3 * (size + 2) + 2


NETWORKS: dict[str, type[nn.Module]] = {"literal": SixtyFourNet, "fast": FastSixtyFourNet}
"""Implementations of the architecture by name; all load the same state dict."""


def l2_penalty(model: nn.Module, weight: float = L2_LAMBDA) -> torch.Tensor:
    """Keras-style kernel regulariser of the paper: λ·Σw² over the conv3 and conv4 kernels only.

    Add the result to the mean binary cross-entropy of a batch. Works for both implementations.

    Parameters
    ----------
    model : nn.Module
        A :class:`SixtyFourNet` or :class:`FastSixtyFourNet`.
    weight : float
        λ, 0.01 in the paper.

    Returns
    -------
    torch.Tensor
        A scalar that carries gradients to the two kernels.
    """
    return weight * sum(model.get_parameter(name).square().sum() for name in L2_KERNELS)
