"""Relevance heatmaps of the CNN's logit, computed with zennit and selected by name.

Every method starts from the network's output logit (the sigmoid is not part of the network), so
positive relevance is evidence for the positive label and negative relevance evidence against
it. LRP methods are zennit composites used through zennit's ``Gradient`` attributor as a
context manager; max pooling has no rule and passes relevance to its winner, the gradient.

``lrp-epsilon`` (the default) is the paper's explanation: ε-rule with ε = 0.001 on every
convolution and on the output layer, bias included in the denominator z + ε·sign(z) with
sign(0) = +1, relevance passed unchanged through ELU. ``gradient-input`` is the paper's
comparison. ``lrp-epsilon-plus-flat`` and ``lrp-alpha1beta0`` are common alternatives.
``smoothgrad`` (Smilkov et al. 2017) averages the logit's gradient over noisy copies of the
input (zennit's ``SmoothGrad`` attributor): a sensitivity map, not a decomposition of the logit,
which a ground-truth study of brain MRI found the most accurate (Siegel et al. 2025). Its noise
comes from torch's generator, so ``torch.manual_seed`` makes it reproducible.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version

from torch import nn
from zennit.attribution import Attributor, Gradient, SmoothGrad
from zennit.composites import EpsilonPlusFlat, LayerMapComposite
from zennit.core import Composite
from zennit.rules import AlphaBeta, Pass
from zennit.types import Convolution

from msxai_bids.explain.rules import epsilon_module_map

EPSILON = 1e-3
DEFAULT_METHOD = "lrp-epsilon"
#: SmoothGrad's noise: standard deviation as a share of each volume's intensity range, and the
#: number of noisy copies (zennit's defaults; the last copy is the noise-free input).
SMOOTHGRAD_NOISE = 0.1
SMOOTHGRAD_SAMPLES = 20


def lrp_epsilon_composite(epsilon: float = EPSILON) -> Composite:
    """The paper's LRP-ε: the ε-rule on convolutions and the linear layer, Pass on ELU.

    The rule is zennit's ``Epsilon`` computed from the forward pass's own outputs, at the cost
    of one backward pass (:mod:`msxai_bids.explain.rules`).
    """
    return Composite(epsilon_module_map(epsilon))


def lrp_alpha1beta0_composite() -> Composite:
    """LRP-α1β0 on every convolution and the linear layer (positive contributions only)."""
    rule = AlphaBeta(alpha=1.0, beta=0.0)
    return LayerMapComposite([(nn.ELU, Pass()), (Convolution, rule), (nn.Linear, rule)])


def lrp_epsilon_plus_flat_composite(epsilon: float = EPSILON) -> Composite:
    """zennit's EpsilonPlusFlat: Flat on conv1, z⁺ on other convolutions, ε on the linear layer."""
    return EpsilonPlusFlat(epsilon=epsilon)


@dataclass(frozen=True)
class Method:
    """One way of explaining the logit.

    Attributes
    ----------
    name : str
        Name used on the command line and in the ``desc-`` entity of outputs.
    composite : callable or None
        Builds a fresh zennit composite; ``None`` means the plain gradient.
    rule : str
        Short name of the rule, for sidecars.
    layer_rules : dict
        Rule per layer type, for sidecars.
    parameters : dict
        Rule parameters, for sidecars.
    times_input : bool
        Multiply the attribution by the input voxel-wise (gradient×input).
    attributor : type
        zennit attributor class that runs the backward passes.
    attributor_options : dict
        Keyword arguments of ``attributor`` (also written to sidecars).
    """

    name: str
    composite: Callable[[], Composite] | None
    rule: str
    layer_rules: dict = field(default_factory=dict)
    parameters: dict = field(default_factory=dict)
    times_input: bool = False
    attributor: type[Attributor] = Gradient
    attributor_options: dict = field(default_factory=dict)

    @property
    def description(self) -> dict:
        """JSON-ready account of the method for derivative sidecars."""
        return {
            "method": self.name,
            "rule": self.rule,
            **self.parameters,
            **self.attributor_options,
            "layer_rules": self.layer_rules | {"MaxPool": "winner takes all (gradient)"},
            "initial_relevance": "the logit" if self.composite else "1 (gradient of the logit)",
            "output": "logit of the positive label",
            "library": f"zennit {version('zennit')}",
        }


METHODS: dict[str, Method] = {
    method.name: method
    for method in [
        Method(
            "lrp-epsilon",
            lrp_epsilon_composite,
            "epsilon",
            {"Conv3d": "Epsilon", "Linear": "Epsilon", "ELU": "Pass"},
            {
                "epsilon": EPSILON,
                "stabiliser": "z + epsilon * sign(z), sign(0) = +1, z including the bias",
            },
        ),
        Method("gradient-input", None, "gradient times input", times_input=True),
        Method(
            "lrp-epsilon-plus-flat",
            lrp_epsilon_plus_flat_composite,
            "epsilon-plus-flat",
            {"conv1": "Flat", "Conv3d": "ZPlus", "Linear": "Epsilon", "ELU": "Pass"},
            {"epsilon": EPSILON},
        ),
        Method(
            "lrp-alpha1beta0",
            lrp_alpha1beta0_composite,
            "alpha-beta",
            {"Conv3d": "AlphaBeta", "Linear": "AlphaBeta", "ELU": "Pass"},
            {"alpha": 1.0, "beta": 0.0},
        ),
        Method(
            "smoothgrad",
            None,
            "smoothgrad",
            attributor=SmoothGrad,
            attributor_options={"noise_level": SMOOTHGRAD_NOISE, "n_iter": SMOOTHGRAD_SAMPLES},
        ),
    ]
}
"""Explanation methods by name; :data:`DEFAULT_METHOD` is the paper's."""
