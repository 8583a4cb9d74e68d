"""Model files: weights in safetensors plus a JSON model card, loaded without unpickling.

On disk a model is a pair of files sharing a stem::

    <stem>.safetensors   the state dict (float32 tensors named conv1.weight … fc.bias)
    <stem>.json          the model card: architecture, input grid, labels, training summary,
                         metrics, msxai version and the SHA-256 of the weights file

Users may name either file, the stem, a directory holding ``model.safetensors`` and
``model.json``, or a model shipped with msxai by its name (:data:`msxai_bids.data.SHIPPED_MODELS`).
Loading refuses, with :class:`ModelFileError` naming the file, a card that is not a card, a
model for another architecture or input grid, and weights whose hash differs from the card (a
tampered or swapped file). Nothing is ever unpickled: the card is JSON and the
weights are read by safetensors from the very bytes that were hashed.

torch is imported only by the functions that build or fill a network: :func:`check_file`
checks a file without it (importing torch takes 1.4 s), before any work starts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from msxai_bids import __version__
from msxai_bids.files import atomic_write
from msxai_bids.grid import CNN_GRID
from msxai_bids.model.architecture import ARCHITECTURE, ARCHITECTURE_VERSION, N_PARAMETERS

if TYPE_CHECKING:
    from torch import nn

CARD_FORMAT = "msxai-model-card"
CARD_FORMAT_VERSION = 1
WEIGHTS_SUFFIX = ".safetensors"
CARD_SUFFIX = ".json"
DEFAULT_STEM = "model"


class ModelFileError(ValueError):
    """A model file that cannot be used: unreadable, for another grid or architecture, tampered."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path


@dataclass(frozen=True)
class ModelCard:
    """What a model is for and where it came from; stored as ``<stem>.json`` next to the weights.

    The caller fills the labels and the free-form training and metrics summaries;
    :func:`save_model` stamps the remaining fields for the file it writes.

    Attributes
    ----------
    positive_label, negative_label : str
        Values of the label column; the network's logit is evidence for ``positive_label``.
    training : dict
        JSON-ready summary of the training data and procedure (free form).
    metrics : dict
        JSON-ready evaluation results (free form).
    description : str
        One line for humans.
    architecture, architecture_version : str, int
        Network the weights belong to.
    n_parameters : int
        Number of trainable parameters of that network.
    grid : dict
        Input grid (:meth:`msxai_bids.grid.Grid.as_dict`); inputs must be resampled to it.
    msxai_version : str
        Version of msxai that wrote the file.
    weights_sha256 : str
        SHA-256 of the ``.safetensors`` file, checked on every load.
    """

    positive_label: str
    negative_label: str
    training: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    description: str = ""
    architecture: str = ARCHITECTURE
    architecture_version: int = ARCHITECTURE_VERSION
    n_parameters: int = N_PARAMETERS
    grid: dict = field(default_factory=CNN_GRID.as_dict)
    msxai_version: str = __version__
    weights_sha256: str = ""

    @property
    def model_id(self) -> str:
        """Short identifier for sidecars and reports: architecture and the start of the hash."""
        return f"{self.architecture}-{self.weights_sha256[:12]}"

    def to_dict(self) -> dict:
        """JSON-ready mapping, led by the card format and version."""
        return {"format": CARD_FORMAT, "format_version": CARD_FORMAT_VERSION} | dataclasses.asdict(
            self
        )

    @classmethod
    def from_dict(cls, mapping: dict) -> ModelCard:
        """Inverse of :meth:`to_dict`; raises ``ValueError`` for another format or unknown keys."""
        fields = dict(mapping)
        found = (fields.pop("format", None), fields.pop("format_version", None))
        if found != (CARD_FORMAT, CARD_FORMAT_VERSION):
            raise ValueError(f"card format {found}, expected {(CARD_FORMAT, CARD_FORMAT_VERSION)}")
        unknown = set(fields) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown card fields {sorted(unknown)}")
        return cls(**fields)


def model_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """Weights and card paths for a stem, either file of the pair, or a directory.

    Returns
    -------
    tuple of Path
        ``(<stem>.safetensors, <stem>.json)``; a directory ``d`` gives ``d/model.*``.
    """
    path = Path(path)
    if path.is_dir():
        path = path / DEFAULT_STEM
    elif path.suffix in (WEIGHTS_SUFFIX, CARD_SUFFIX):
        path = path.with_suffix("")
    return path.with_name(path.name + WEIGHTS_SUFFIX), path.with_name(path.name + CARD_SUFFIX)


def _json_value(value: object) -> object:
    """JSON form of NumPy scalars and arrays (``tolist``) and paths in free-form summaries."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _check_architecture(path: Path, model: nn.Module) -> None:
    """Refuse a state dict whose names or shapes differ from :class:`SixtyFourNet`."""
    import torch

    from msxai_bids.model.network import SixtyFourNet

    with torch.device("meta"):  # shapes only: no memory, no draw from the random generator
        reference = SixtyFourNet()
    expected = {name: tuple(t.shape) for name, t in reference.state_dict().items()}
    found = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    if found != expected:
        raise ModelFileError(path, f"model is not a {ARCHITECTURE} (state dict {sorted(found)})")


def save_model(path: str | os.PathLike, model: nn.Module, card: ModelCard) -> Path:
    """Write ``model``'s weights and its card; return the card's path.

    Parameters
    ----------
    path : str or os.PathLike
        Stem, either file name of the pair, or an existing directory (see :func:`model_paths`).
    model : nn.Module
        A :class:`~msxai_bids.model.network.SixtyFourNet` or its fast twin; stored as float32.
    card : ModelCard
        Labels and summaries; architecture, grid, version and hash are stamped here.
    """
    from safetensors.torch import save as save_safetensors

    weights_path, card_path = model_paths(path)
    _check_architecture(weights_path, model)
    tensors = {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}
    data = save_safetensors(tensors, metadata={"architecture": ARCHITECTURE})
    atomic_write(weights_path, lambda tmp: tmp.write_bytes(data))
    stamped = dataclasses.replace(
        card,
        architecture=ARCHITECTURE,
        architecture_version=ARCHITECTURE_VERSION,
        n_parameters=N_PARAMETERS,
        grid=CNN_GRID.as_dict(),
        msxai_version=__version__,
        weights_sha256=hashlib.sha256(data).hexdigest(),
    )
    text = json.dumps(stamped.to_dict(), indent=2, default=_json_value) + "\n"
    atomic_write(card_path, lambda tmp: tmp.write_bytes(text.encode()))
    return card_path


def read_card(path: str | os.PathLike) -> ModelCard:
    """Read and validate the card of a model (any path form of :func:`model_paths`)."""
    card_path = model_paths(path)[1]
    try:
        card = ModelCard.from_dict(json.loads(card_path.read_text()))
    except (OSError, ValueError, TypeError) as error:
        raise ModelFileError(card_path, f"not a readable msxai model card ({error})") from error
    if (card.architecture, card.architecture_version) != (ARCHITECTURE, ARCHITECTURE_VERSION):
        found = f"{card.architecture} v{card.architecture_version}"
        raise ModelFileError(card_path, f"architecture {found}, this msxai runs {ARCHITECTURE}")
    if card.grid != CNN_GRID.as_dict():
        raise ModelFileError(
            card_path, f"model expects input grid {card.grid}, this msxai uses {CNN_GRID.as_dict()}"
        )
    return card


def _weights_bytes(weights_path: Path, card: ModelCard) -> bytes:
    """The weights file's bytes, refused when unreadable or when their SHA-256 is not the card's."""
    try:
        data = weights_path.read_bytes()
    except OSError as error:
        raise ModelFileError(weights_path, f"cannot read model weights ({error})") from error
    if hashlib.sha256(data).hexdigest() != card.weights_sha256:
        raise ModelFileError(weights_path, "SHA-256 differs from the model card: file altered")
    return data


def _parsed(weights_path: Path, data: bytes, load: Callable[[bytes], dict]) -> dict:
    """``load(data)`` (safetensors' loader of one framework), refused when it cannot parse."""
    from safetensors import SafetensorError

    try:
        return load(data)
    except SafetensorError as error:
        raise ModelFileError(weights_path, f"not a readable safetensors file ({error})") from error


def check_file(path: str | os.PathLike) -> ModelCard:
    """The card of a model file, after every check that needs no torch: the card, the SHA-256
    of the weights, and that they are safetensors holding as many values as the architecture.

    :func:`load_model` repeats these and checks every tensor's name and shape as it fills
    the network.
    """
    from safetensors.numpy import load as load_arrays

    card = read_card(path)
    weights_path = model_paths(path)[0]
    arrays = _parsed(weights_path, _weights_bytes(weights_path, card), load_arrays)
    n_values = sum(array.size for array in arrays.values())
    if n_values != N_PARAMETERS:
        reason = f"{n_values} weights where {ARCHITECTURE} has {N_PARAMETERS}"
        raise ModelFileError(weights_path, reason)
    return card


def load_model(
    path: str | os.PathLike, *, implementation: str = "fast", device: str = "cpu"
) -> tuple[nn.Module, ModelCard]:
    """Load a model file after checking its card and the SHA-256 of its weights.

    Parameters
    ----------
    path : str or os.PathLike
        Stem, either file of the pair, or a directory (see :func:`model_paths`).
    implementation : {"fast", "literal"}
        Which network class receives the weights; both compute the same function.
    device : str
        Torch device for the parameters.

    Returns
    -------
    model : nn.Module
        In evaluation mode.
    card : ModelCard
    """
    from safetensors.torch import load as load_tensors

    from msxai_bids.model.network import NETWORKS

    card = read_card(path)
    weights_path = model_paths(path)[0]
    weights = _parsed(weights_path, _weights_bytes(weights_path, card), load_tensors)
    model = NETWORKS[implementation]()
    try:
        model.load_state_dict(weights)
    except (RuntimeError, ValueError) as error:
        reason = f"weights do not fit {ARCHITECTURE} ({error})"
        raise ModelFileError(weights_path, reason) from error
    return model.to(device).eval(), card
