"""Run explanation methods on a batch of volumes: relevance heatmaps plus the logits they explain.

The computation happens on the device of the model's parameters (put the model on CUDA to
explain on a GPU) in batches of ``batch_size`` volumes; results come back as float32 NumPy
arrays on the host. Parameters are frozen during attribution: nothing but the input needs a
gradient, which saves the weight-gradient work in every backward pass.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import expit
from torch import nn

from msxai_bids.explain.methods import DEFAULT_METHOD, METHODS, Method


@dataclass(frozen=True)
class Explanation:
    """Logits of a batch of volumes and their relevance heatmaps.

    Attributes
    ----------
    logits : np.ndarray of shape (N,)
        Network output; positive values favour the positive label.
    relevance : dict of str to np.ndarray of shape (N, X, Y, Z), float32
        Heatmap per method name, in the voxel grid of the input.
    """

    logits: np.ndarray
    relevance: dict[str, np.ndarray]

    @property
    def probabilities(self) -> np.ndarray:
        """Sigmoid of the logits, shape (N,): the probability of the positive label."""
        return expit(self.logits)


@contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """Evaluation mode and no parameter gradients inside the block; restores both afterwards."""
    training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval().requires_grad_(False)
    try:
        yield model
    finally:
        model.train(training)
        for parameter, flag in flags:
            parameter.requires_grad_(flag)


def attribute(
    model: nn.Module, volumes: torch.Tensor, method: str | Method = DEFAULT_METHOD
) -> tuple[torch.Tensor, torch.Tensor]:
    """Relevance of each input voxel for the logit, with the rule of ``method``.

    Parameters
    ----------
    model : nn.Module
        Network returning logits (N, 1), on the device and in the dtype of ``volumes``.
    volumes : torch.Tensor of shape (N, 1, X, Y, Z)
    method : str or Method
        A key of :data:`~msxai_bids.explain.methods.METHODS`, or a method of one's own.

    Returns
    -------
    relevance : torch.Tensor of shape (N, 1, X, Y, Z)
        Same dtype and device as ``volumes``.
    logits : torch.Tensor of shape (N,)
    """
    spec = METHODS[method] if isinstance(method, str) else method
    composite = spec.composite() if spec.composite else None
    initial = None if composite else torch.ones_like  # LRP starts from the logit itself
    inputs = volumes.detach().requires_grad_(True)
    options = {"attr_output": initial, **spec.attributor_options}
    with frozen(model), spec.attributor(model, composite, **options) as attributor:
        logits, gradient = attributor(inputs)
    relevance = gradient * volumes if spec.times_input else gradient
    return relevance.detach(), logits.detach()[:, 0]


def explain(
    model: nn.Module,
    volumes: torch.Tensor | np.ndarray,
    methods: Sequence[str] = (DEFAULT_METHOD,),
    *,
    batch_size: int = 1,
) -> Explanation:
    """Heatmaps of several methods for a batch of volumes, computed ``batch_size`` at a time.

    Parameters
    ----------
    model : nn.Module
        :class:`~msxai_bids.model.network.SixtyFourNet` or its fast twin; the device of its
        parameters is where the work happens.
    volumes : torch.Tensor or np.ndarray of shape (N, 1, X, Y, Z) or (N, X, Y, Z)
        Preprocessed volumes on the model's input grid.
    methods : sequence of str
        Keys of :data:`~msxai_bids.explain.methods.METHODS`; unknown names raise ``KeyError``
        before any work.
    batch_size : int
        Volumes per forward/backward pass; 1 keeps CPU memory low, a GPU takes more.

    Returns
    -------
    Explanation
        Logits (N,) and float32 heatmaps (N, X, Y, Z) per method, on the host.
    """
    unknown = [name for name in methods if name not in METHODS]
    if unknown or not methods:
        raise KeyError(f"explanation methods {list(methods)}; choose from {sorted(METHODS)}")
    parameter = next(model.parameters())
    volumes = torch.as_tensor(volumes, dtype=parameter.dtype)
    volumes = volumes if volumes.ndim == 5 else volumes[:, None]
    logits, relevance = [], {name: [] for name in methods}
    for batch in volumes.split(batch_size):
        batch = batch.to(parameter.device)
        for name in methods:
            heatmaps, batch_logits = attribute(model, batch, name)
            relevance[name].append(heatmaps[:, 0].float().cpu().numpy())
        logits.append(batch_logits.double().cpu().numpy())
    return Explanation(
        logits=np.concatenate(logits),
        relevance={name: np.concatenate(maps) for name, maps in relevance.items()},
    )
