"""The paper's CNN, its fast twin, initialisation and the L2 penalty."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from cnn_fixtures import SMALL_SHAPE, brain_like_volume, seeded_network, twin
from torch import nn

from msxai_bids.explain.attribution import attribute
from msxai_bids.model.architecture import N_PARAMETERS
from msxai_bids.model.network import (
    NETWORKS,
    FastSixtyFourNet,
    SixtyFourNet,
    UniformDropout,
    early_reach,
    early_shape,
    early_windows,
    l2_penalty,
)


@pytest.mark.parametrize("cls", [SixtyFourNet, FastSixtyFourNet])
def test_parameter_count_is_the_papers(cls):
    assert sum(p.numel() for p in cls().parameters()) == N_PARAMETERS == 333_889


def test_implementations_share_one_state_dict_layout():
    layouts = [
        [(name, tuple(t.shape)) for name, t in cls().state_dict().items()]
        for cls in NETWORKS.values()
    ]
    assert layouts[0] == layouts[1]
    assert [name for name, _ in layouts[0]] == [
        f"{layer}.{kind}" for layer in ("conv1", "conv2", "conv3", "conv4", "fc")
        for kind in ("weight", "bias")
    ]  # fmt: skip


def test_literal_network_has_the_papers_layer_sequence():
    kinds = [type(m).__name__ for m in SixtyFourNet().children()]
    block = ["Conv3d", "ELU", "MaxPool3d", "UniformDropout"]
    assert kinds == [*block, *block, "Conv3d", "ELU", *block, "Flatten", "Linear"]
    assert all(m.p == 0.3 for m in SixtyFourNet().modules() if isinstance(m, nn.Dropout))


def test_glorot_uniform_weights_and_zero_biases():
    torch.manual_seed(0)
    network = SixtyFourNet()
    for name, conv in [("conv2", network.conv2), ("fc", network.fc)]:
        fan_in = conv.weight[0].numel()
        fan_out = conv.weight.shape[0] * conv.weight[0, 0].numel()
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        weight = conv.weight.detach()
        assert weight.abs().max() <= bound, name
        assert not conv.bias.detach().any(), name
    # 110,592 draws of conv2: the standard deviation of U(-b, b) is b/√3
    conv2_bound = math.sqrt(6.0 / (2 * 64 * 27))
    assert network.conv2.weight.std().item() == pytest.approx(conv2_bound / math.sqrt(3), rel=0.01)


def test_l2_penalty_is_lambda_sum_of_squares_of_conv3_and_conv4_kernels():
    network = seeded_network(FastSixtyFourNet)
    penalty = l2_penalty(network)
    expected = 0.01 * (network.conv3.weight.square().sum() + network.conv4.weight.square().sum())
    assert penalty.item() == pytest.approx(expected.item(), rel=1e-6)
    penalty.backward()
    with_gradient = {n for n, p in network.named_parameters() if p.grad is not None}
    assert with_gradient == {"conv3.weight", "conv4.weight"}
    assert torch.allclose(network.conv3.weight.grad, 0.02 * network.conv3.weight)


def test_dropout_acts_in_training_mode_only():
    network = seeded_network(FastSixtyFourNet)
    volume = brain_like_volume(shape=SMALL_SHAPE)
    with torch.no_grad():
        assert torch.equal(network(volume), network(volume))
        network.train()
        assert not torch.equal(network(volume), network(volume))


def test_uniform_dropout_drops_p_and_keeps_the_expectation():
    dropout = UniformDropout(0.3)
    hidden = torch.full((1_000_000,), 2.0)
    torch.manual_seed(0)
    dropped = dropout(hidden)
    assert (dropped == 0).float().mean().item() == pytest.approx(0.3, abs=0.002)
    assert torch.allclose(dropped[dropped != 0], torch.tensor(2.0 / 0.7))
    assert dropped.mean().item() == pytest.approx(2.0, rel=0.005)
    assert dropout.eval()(hidden) is hidden


def _gradients(network: nn.Module, volume: torch.Tensor) -> tuple[torch.Tensor, ...]:
    inputs = volume.clone().requires_grad_(True)
    logits = network(inputs)
    grads = torch.autograd.grad(logits.sum(), [inputs, *network.parameters()])
    return logits.detach(), *grads


def _close(found: torch.Tensor, expected: torch.Tensor, rtol: float) -> bool:
    """Equal to rounding relative to the largest value; a handful of pool near-ties allowed."""
    scale = expected.abs().max()
    outliers = int(((found - expected).abs() > rtol * scale).sum())
    return outliers <= 10 and bool((found - expected).norm() <= rtol * expected.norm())


def test_fast_network_equals_literal_network_in_float32():
    """Outputs, input and parameter gradients, and zennit LRP-ε heatmaps agree."""
    literal = seeded_network(SixtyFourNet, seed=3)
    fast = twin(literal, FastSixtyFourNet)
    volume = brain_like_volume(seed=1)
    expected, found = _gradients(literal, volume), _gradients(fast, volume)
    torch.testing.assert_close(found[0], expected[0], rtol=1e-5, atol=1e-6)
    names = ["input", *dict(literal.named_parameters())]
    for name, got, want in zip(names, found[1:], expected[1:], strict=True):
        assert _close(got, want, rtol=1e-5), name
    relevance_fast, logits_fast = attribute(fast, volume)
    relevance_literal, logits_literal = attribute(literal, volume)
    torch.testing.assert_close(logits_fast, logits_literal, rtol=1e-5, atol=1e-6)
    assert _close(relevance_fast, relevance_literal, rtol=1e-4)
    assert relevance_fast.abs().sum() > 0


def test_early_layers_and_late_layers_make_the_forward_pass():
    network = seeded_network(FastSixtyFourNet, seed=2, dtype=torch.float64)
    volume = brain_like_volume(seed=2, shape=SMALL_SHAPE, dtype=torch.float64)
    with torch.no_grad():
        early = network.early_layers(volume)
        assert tuple(early.shape[2:]) == tuple(early_shape(SMALL_SHAPE)) == (21, 30, 21)
        assert tuple(early_shape((96, 114, 96))) == (29, 35, 29)
        torch.testing.assert_close(network.late_layers(early), network(volume), rtol=0, atol=0)


@pytest.mark.parametrize(
    "voxel",
    [(0, 0, 0), (1, 5, 2), (30, 47, 33), (31, 46, 35), (32, 45, 34), (69, 96, 69), (71, 98, 71)],
)
def test_an_edited_voxel_changes_early_outputs_only_within_its_reach(voxel):
    """The outputs that change when one voxel changes lie in :func:`early_reach`, touch its
    bounds, and the window of :func:`early_windows` gives exactly those outputs, unchanged."""
    network = seeded_network(FastSixtyFourNet, seed=4, dtype=torch.float64)
    volume = brain_like_volume(seed=4, shape=SMALL_SHAPE, dtype=torch.float64) + 0.1
    edited = volume.clone()
    edited[(0, 0, *voxel)] += 5.0
    with torch.no_grad():
        before, after = network.early_layers(volume), network.early_layers(edited)
    changed = np.argwhere((before != after).any(dim=1)[0].numpy())
    first, last = early_reach(np.array(voxel), np.array(voxel), SMALL_SHAPE)
    if voxel == (71, 98, 71):  # only the pooling remainders, which are dropped, see it
        assert changed.size == 0
    else:
        assert (changed >= first).all() and (changed <= last).all()
        assert (changed.min(axis=0) == first).all() and (changed.max(axis=0) == last).all()
    start, size, corner, edge = early_windows(np.array(voxel), np.array(voxel), SMALL_SHAPE)
    window = edited[(0, 0, *(slice(c, c + edge) for c in corner))]
    with torch.no_grad():
        outputs = network.early_layers(window[None, None])
    expected = after[(0, slice(None), *(slice(s, s + size) for s in start))]
    torch.testing.assert_close(outputs[0], expected, rtol=1e-12, atol=1e-12)
