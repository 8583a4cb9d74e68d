"""The ε-rule of LRP as a zennit hook that reuses the forward pass, for the paper's LRP-ε.

zennit's ``Epsilon`` is a ``BasicHook``: in the backward pass it runs each layer forward once
more on a copy of its input, differentiates that copy, and throws away the gradient the
layer's own backward computed: three passes over every layer where one suffices. For the
network's first convolution (a 250 MB output) that made LRP-ε cost 2.3 plain backward passes.

With the parameters unmodified the rule needs nothing the forward pass does not already hold.
For a layer z = Wa + b and the relevance R of its output,

    R_a = a ⊙ Wᵀ (R / (z + ε·sign(z))),

and Wᵀ(·) is exactly the gradient the layer's own backward computes with respect to its input.
So :class:`OutputEpsilon` divides the relevance arriving at the output by the stabilised
output of the forward pass, lets the layer's backward run once, and multiplies what reaches the
input by the input: the numbers of zennit's rule (the tests compare both) at the cost of a
gradient.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from zennit.core import Hook, RemovableHandle, RemovableHandleList
from zennit.rules import Pass
from zennit.types import Convolution


def epsilon_stabiliser(epsilon: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """zennit's default denominator z + ε·sign(z), sign(0) = +1, in one temporary tensor.

    Bit for bit what ``zennit.core.stabilize`` returns, but for conv1's 250 MB output it
    allocates one tensor instead of five and records no graph (the denominator is never
    differentiated).
    """

    def stabilise(z: torch.Tensor) -> torch.Tensor:
        z = z.detach()
        sign = z.sign()
        sign[sign == 0] = 1.0
        return sign.mul_(epsilon).add_(z)

    return stabilise


class InputTimesRelevance(Hook):
    """The last step of the ε-rule at a layer: its input times what its backward passed back.

    Alone it serves a layer whose output relevance was already divided downstream
    (:class:`PooledDenominator`).
    """

    def copy(self) -> InputTimesRelevance:
        """A fresh hook, for another layer."""
        return type(self)()

    def forward(self, module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor):
        """Keep the layer's input."""
        self.stored_tensors["input"] = inputs[0]

    def backward(self, module: nn.Module, grad_input: tuple, grad_output: tuple) -> tuple:
        """The input's relevance: the input times what the layer's backward passed to it."""
        return (self.stored_tensors["input"] * grad_input[0], *grad_input[1:])


class OutputEpsilon(InputTimesRelevance):
    """LRP-ε for one convolution or linear layer, from the output its forward pass made.

    Parameters
    ----------
    epsilon : float
        ε of the denominator z + ε·sign(z) (sign(0) = +1), z including the bias.
    """

    def __init__(self, epsilon: float) -> None:
        super().__init__()
        self.epsilon = epsilon

    def copy(self) -> OutputEpsilon:
        """A fresh hook with the same ε, for another layer."""
        return type(self)(self.epsilon)

    def forward(self, module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor):
        """Keep the layer's input; divide the relevance reaching ``output`` by it, stabilised."""
        super().forward(module, inputs, output)
        divide_at(output, self.epsilon, self.tensor_handles)


class PooledDenominator(Hook):
    """The ε-rule's division for a layer whose output goes straight into this max pool.

    Max pooling passes each window's relevance to its winner, whose value is the window's
    output, so dividing at the pooled output by the stabilised pooled value gives the winners
    the numbers the division at the layer's own output gives them, and the others zero as
    before, on 27 times fewer elements (conv1: 2.3 M instead of 63 M). The layer itself then
    takes :class:`InputTimesRelevance`. Nothing wraps the pool's 250 MB input.

    Parameters
    ----------
    epsilon : float
        ε of the layer's rule.
    """

    def __init__(self, epsilon: float) -> None:
        super().__init__()
        self.epsilon = epsilon

    def copy(self) -> PooledDenominator:
        """A fresh hook with the same ε, for another pool."""
        return type(self)(self.epsilon)

    def register(self, module: nn.Module) -> RemovableHandleList:
        """Only a forward hook: the pool's own backward routes relevance to the winners."""
        return RemovableHandleList(
            [RemovableHandle(self), module.register_forward_hook(self.forward)]
        )

    def forward(self, module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor):
        """Divide the relevance reaching the pooled ``output`` by it, stabilised."""
        divide_at(output, self.epsilon, self.tensor_handles)


def divide_at(output: torch.Tensor, epsilon: float, handles: RemovableHandleList) -> None:
    """Make the relevance reaching ``output`` in the backward pass R / (output + ε·sign(output))."""
    if not output.requires_grad:
        return
    stabilise = epsilon_stabiliser(epsilon)

    def divide(relevance: torch.Tensor) -> torch.Tensor:
        denominator = stabilise(output)
        return torch.div(relevance, denominator, out=denominator)

    handles.append(output.register_hook(divide))


def epsilon_module_map(epsilon: float) -> Callable[[dict, str, nn.Module], Hook | None]:
    """zennit module map of LRP-ε: ε on convolutions and linear layers, Pass on ELU.

    A network may name the layers whose output goes straight into a max pool in a
    ``pooled_layers`` attribute (layer name → pool name); those get their division at the
    pool (:class:`PooledDenominator`).
    """
    layer_rule, pooled_layer, pass_rule = OutputEpsilon(epsilon), InputTimesRelevance(), Pass()
    pool_rule = PooledDenominator(epsilon)

    def module_map(ctx: dict, name: str, module: nn.Module) -> Hook | None:
        if not name:  # the root comes first
            ctx["pooled"] = getattr(module, "pooled_layers", {})
        if name in ctx["pooled"]:
            return pooled_layer
        if name in ctx["pooled"].values():
            return pool_rule
        if isinstance(module, nn.ELU):
            return pass_rule
        return layer_rule if isinstance(module, Convolution | nn.Linear) else None

    return module_map
