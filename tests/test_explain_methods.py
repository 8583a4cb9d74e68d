"""zennit explanations checked against an independent LRP-ε written here in plain PyTorch."""

from __future__ import annotations

import json
from functools import partial

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from cnn_fixtures import SMALL_SHAPE, brain_like_volume, seeded_network, twin
from torch import nn
from zennit.composites import LayerMapComposite
from zennit.core import stabilize
from zennit.rules import Epsilon, Pass
from zennit.types import Convolution

from msxai_bids.explain.attribution import attribute, explain
from msxai_bids.explain.methods import METHODS, Method, lrp_epsilon_composite
from msxai_bids.explain.names import METHOD_NAMES
from msxai_bids.explain.rules import epsilon_stabiliser
from msxai_bids.model.network import FastSixtyFourNet, SixtyFourNet


def _stabilised(z: torch.Tensor, epsilon: float) -> torch.Tensor:
    return z + epsilon * torch.where(z >= 0, 1.0, -1.0).to(z)  # sign(0) = +1


def _redistribute(layer: nn.Module, a: torch.Tensor, relevance: torch.Tensor, epsilon: float):
    """Relevance of a layer's input ``a`` given the relevance of its output (ε-rule, Bach 2015)."""
    if isinstance(layer, nn.Conv3d):
        s = relevance / _stabilised(F.conv3d(a, layer.weight, layer.bias), epsilon)
        return a * F.conv_transpose3d(s, layer.weight)
    if isinstance(layer, nn.Linear):
        s = relevance / _stabilised(a @ layer.weight.T + layer.bias, epsilon)
        return a * (s @ layer.weight)
    if isinstance(layer, nn.MaxPool3d):  # the winner of each window takes all
        _, winners = F.max_pool3d(a, 3, return_indices=True)
        return F.max_unpool3d(relevance, winners, 3, output_size=a.shape[2:])
    if isinstance(layer, nn.Flatten):
        return relevance.reshape(a.shape)
    assert isinstance(layer, nn.ELU | nn.Dropout)  # ELU passes relevance; dropout is off
    return relevance


def lrp_epsilon_oracle(network: SixtyFourNet, volume: torch.Tensor, epsilon: float):
    """Layer-by-layer LRP-ε from the logit down to the input voxels, without zennit."""
    activations = [volume]
    with torch.no_grad():
        for layer in network:
            activations.append(layer(activations[-1]))
        relevance = activations[-1]
        for layer, a in zip(reversed(network), reversed(activations[:-1]), strict=True):
            relevance = _redistribute(layer, a, relevance, epsilon)
    return relevance, activations[-1][:, 0]


@pytest.fixture(scope="module")
def float64_case():
    """A float64 literal network with random biases, an input, and the oracle's heatmap."""
    network = seeded_network(SixtyFourNet, seed=5, dtype=torch.float64)
    volume = brain_like_volume(seed=7, shape=SMALL_SHAPE, dtype=torch.float64)
    return network, volume, lrp_epsilon_oracle(network, volume, epsilon=1e-3)


def _relative_error(found: torch.Tensor, expected: torch.Tensor) -> float:
    return float((found - expected).abs().max() / expected.abs().max())


@pytest.mark.parametrize("cls", [SixtyFourNet, FastSixtyFourNet])
def test_zennit_lrp_epsilon_equals_the_independent_oracle(float64_case, cls):
    network, volume, (expected, expected_logit) = float64_case
    model = twin(network, cls)
    relevance, logit = attribute(model, volume, "lrp-epsilon")
    assert _relative_error(relevance, expected) <= 1e-5
    torch.testing.assert_close(logit, expected_logit)
    # the oracle is not trivially close to the plain gradient times input
    gradient_input, _ = attribute(model, volume, "gradient-input")
    assert _relative_error(gradient_input, expected) > 1e-2


@pytest.mark.parametrize("cls", [SixtyFourNet, FastSixtyFourNet])
def test_the_epsilon_rule_from_the_forward_outputs_equals_zennits_epsilon(float64_case, cls):
    network, volume, _ = float64_case
    model = twin(network, cls)
    rule = Epsilon(epsilon_stabiliser(1e-3))
    zennit_rule = Method(
        "zennit-epsilon",
        partial(LayerMapComposite, [(nn.ELU, Pass()), (Convolution, rule), (nn.Linear, rule)]),
        "epsilon",
    )
    expected, expected_logit = attribute(model, volume, zennit_rule)
    relevance, logit = attribute(model, volume, "lrp-epsilon")
    assert _relative_error(relevance, expected) <= 1e-12
    assert torch.equal(logit, expected_logit)


def test_stabiliser_is_bit_identical_to_zennits():
    z = torch.tensor([-2.0, -1e-9, -0.0, 0.0, 1e-9, 3.0, -1e-3, 1e-3], dtype=torch.float64)
    z = torch.cat([z, torch.randn(1000, dtype=torch.float64)]).float().requires_grad_(True)
    expected = stabilize(z, 1e-3)
    assert torch.equal(epsilon_stabiliser(1e-3)(z), expected)
    assert expected[2].item() == expected[3].item() == pytest.approx(1e-3)  # sign(±0) = +1


def test_lrp_epsilon_conserves_the_logit_without_bias_and_epsilon():
    network = seeded_network(FastSixtyFourNet, seed=2, dtype=torch.float64)
    for module in network.modules():
        if isinstance(module, nn.Conv3d | nn.Linear):
            nn.init.zeros_(module.bias)
    volume = brain_like_volume(seed=3, shape=SMALL_SHAPE, dtype=torch.float64)
    vanishing = Method("lrp-epsilon-0", partial(lrp_epsilon_composite, 1e-12), "epsilon")
    relevance, logit = attribute(network, volume, vanishing)
    assert relevance.sum().item() == pytest.approx(logit.item(), rel=1e-3)
    assert (relevance > 0).any() and (relevance < 0).any()


def test_gradient_input_is_input_times_gradient_of_the_logit():
    network = seeded_network(FastSixtyFourNet, seed=4)
    volume = brain_like_volume(seed=4, shape=SMALL_SHAPE)
    inputs = volume.clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(network(inputs).sum(), inputs)
    relevance, _ = attribute(network, volume, "gradient-input")
    torch.testing.assert_close(relevance, volume * gradient)


def test_smoothgrad_is_the_mean_gradient_over_seeded_noisy_copies():
    """Noise of 0.1 × the volume's range, 20 copies, the last noise-free; the plain gradient."""
    network = seeded_network(FastSixtyFourNet, seed=4)
    volume = brain_like_volume(seed=4, shape=SMALL_SHAPE)
    std = 0.1 * (volume.max() - volume.min())
    torch.manual_seed(3)
    noises = [torch.randn_like(volume) * std for _ in range(19)] + [torch.zeros_like(volume)]
    gradients = []
    for noise in noises:
        inputs = (volume + noise).requires_grad_(True)
        gradients.append(torch.autograd.grad(network(inputs).sum(), inputs)[0])
    torch.manual_seed(3)
    relevance, logits = attribute(network, volume, "smoothgrad")
    torch.testing.assert_close(relevance, torch.stack(gradients).mean(0), rtol=1e-4, atol=1e-7)
    with torch.no_grad():
        torch.testing.assert_close(logits, network(volume)[:, 0])  # the noise-free input's logit
    assert _relative_error(relevance, gradients[-1]) > 1e-2  # the noise changed the map


def test_explain_returns_float32_heatmaps_and_logits_per_method():
    network = seeded_network(FastSixtyFourNet, seed=6).requires_grad_(True).train()
    volumes = torch.cat([brain_like_volume(seed=s, shape=SMALL_SHAPE) for s in (1, 2)])
    methods = ("lrp-epsilon", "gradient-input")
    result = explain(network, volumes[:, 0].numpy(), methods, batch_size=2)
    assert network.training and all(p.requires_grad for p in network.parameters())
    with torch.no_grad():
        expected_logits = network.eval()(volumes)[:, 0].numpy()
    np.testing.assert_allclose(result.logits, expected_logits, rtol=1e-5)
    np.testing.assert_allclose(result.probabilities, 1 / (1 + np.exp(-expected_logits)), rtol=1e-5)
    assert set(result.relevance) == set(methods)
    for heatmaps in result.relevance.values():
        assert heatmaps.shape == (2, *SMALL_SHAPE) and heatmaps.dtype == np.float32
        assert not np.array_equal(heatmaps[0], heatmaps[1])
    one_by_one = explain(network, volumes[1:], ["lrp-epsilon"], batch_size=1)
    np.testing.assert_allclose(
        one_by_one.relevance["lrp-epsilon"][0], result.relevance["lrp-epsilon"][1], atol=1e-6
    )


@pytest.mark.parametrize("method", ["lrp-epsilon-plus-flat", "lrp-alpha1beta0"])
def test_other_lrp_rules_agree_between_implementations(method):
    """Flat on the first layer and clamped weights reach the depth-folded conv1 too."""
    literal = seeded_network(SixtyFourNet, seed=8)
    volume = brain_like_volume(seed=8, shape=SMALL_SHAPE)
    expected, _ = attribute(literal, volume, method)
    found, _ = attribute(twin(literal, FastSixtyFourNet), volume, method)
    assert _relative_error(found, expected) <= 1e-4
    epsilon, _ = attribute(literal, volume, "lrp-epsilon")
    assert _relative_error(found, epsilon) > 1e-2  # a different rule really ran


def test_the_names_known_without_zennit_are_those_of_the_methods():
    assert tuple(METHODS) == METHOD_NAMES


def test_unknown_or_no_method_is_refused_before_work():
    network = FastSixtyFourNet()
    with pytest.raises(KeyError, match="lrp-epsilon"):
        explain(network, torch.zeros(1, 1, 2, 2, 2), ["lrp-magic"])
    with pytest.raises(KeyError):
        explain(network, torch.zeros(1, 1, 2, 2, 2), [])


def test_method_descriptions_are_json_ready_for_sidecars():
    described = json.loads(json.dumps({name: m.description for name, m in METHODS.items()}))
    assert described["lrp-epsilon"]["rule"] == "epsilon"
    assert described["lrp-epsilon"]["epsilon"] == 0.001
    assert described["lrp-epsilon"]["library"].startswith("zennit 0.5")
    assert all(d["method"] == name for name, d in described.items())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_explanations_equal_cpu_explanations():
    network = seeded_network(FastSixtyFourNet, seed=9)
    volumes = torch.cat([brain_like_volume(seed=1), brain_like_volume(seed=2)])
    on_cpu = explain(network, volumes, ["lrp-epsilon"])
    on_gpu = explain(network.cuda(), volumes, ["lrp-epsilon"], batch_size=2)
    np.testing.assert_allclose(on_gpu.logits, on_cpu.logits, rtol=1e-4, atol=1e-5)
    scale = np.abs(on_cpu.relevance["lrp-epsilon"]).max()
    difference = np.abs(on_gpu.relevance["lrp-epsilon"] - on_cpu.relevance["lrp-epsilon"])
    assert difference.max() <= 1e-3 * scale
