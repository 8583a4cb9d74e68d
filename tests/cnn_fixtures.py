"""Seeded networks and brain-like volumes shared by the network and explanation tests."""

from __future__ import annotations

import torch
from torch import nn

from msxai_bids.grid import CNN_GRID

SMALL_SHAPE = (72, 99, 72)
"""Near the smallest input for which the network still flattens 64 x 1 x 2 x 1 = 128 features;
like 96 x 114 x 96, every pooling layer drops a remainder, so all code paths run at half the cost.
"""


def seeded_network(cls: type[nn.Module], seed: int = 0, dtype=torch.float32) -> nn.Module:
    """Glorot weights and small random biases (so that a forgotten bias term shows), eval mode."""
    torch.manual_seed(seed)
    network = cls()
    for module in network.modules():
        if isinstance(module, nn.Conv3d | nn.Linear):
            nn.init.normal_(module.bias, std=0.05)
    return network.to(dtype).eval()


def twin(network: nn.Module, cls: type[nn.Module]) -> nn.Module:
    """The same weights in another implementation of the architecture."""
    other = cls().to(next(network.parameters()).dtype)
    other.load_state_dict(network.state_dict())
    return other.eval()


def brain_like_volume(
    seed: int = 0, shape: tuple[int, int, int] = CNN_GRID.shape, dtype=torch.float32
) -> torch.Tensor:
    """A (1, 1, X, Y, Z) volume: zero background (exact pooling ties) around a noisy ellipsoid."""
    generator = torch.Generator().manual_seed(seed)
    axes = [torch.linspace(-1.0, 1.0, n, dtype=dtype) for n in shape]
    x, y, z = torch.meshgrid(*axes, indexing="ij")
    inside = (x / 0.8) ** 2 + (y / 0.85) ** 2 + (z / 0.75) ** 2 < 1.0
    values = 1.0 + 0.5 * torch.randn(shape, generator=generator, dtype=dtype)
    return torch.where(inside, values, torch.zeros((), dtype=dtype))[None, None]
