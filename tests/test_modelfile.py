"""Model files: safetensors weights plus a JSON card, refused when altered or mismatched."""

from __future__ import annotations

import hashlib
import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from cnn_fixtures import seeded_network
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save
from torch import nn

from msxai_bids import __version__
from msxai_bids.data import SHIPPED_MODELS
from msxai_bids.grid import CNN_GRID
from msxai_bids.model.modelfile import (
    ModelCard,
    ModelFileError,
    check_file,
    load_model,
    model_paths,
    read_card,
    save_model,
)
from msxai_bids.model.network import FastSixtyFourNet, SixtyFourNet

CARD = ModelCard(
    positive_label="MS",
    negative_label="HC",
    training={"n_train": np.int64(124), "epochs": 40},
    metrics={"auc": np.float32(0.96)},
)


@pytest.fixture
def saved(tmp_path):
    network = seeded_network(SixtyFourNet)
    return network, save_model(tmp_path / "ms-vs-hc", network, CARD)


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    b_state = b.state_dict()
    return all(torch.equal(tensor, b_state[name]) for name, tensor in a.state_dict().items())


def test_round_trip_keeps_weights_and_stamps_the_card(saved):
    network, card_path = saved
    loaded, card = load_model(card_path, implementation="literal")
    assert isinstance(loaded, SixtyFourNet) and not loaded.training
    assert _same_weights(loaded, network)
    assert (card.positive_label, card.negative_label) == ("MS", "HC")
    assert card.training == {"n_train": 124, "epochs": 40}
    assert card.metrics["auc"] == pytest.approx(0.96)
    assert card.grid == CNN_GRID.as_dict() and card.msxai_version == __version__
    assert card.n_parameters == 333_889 and card.architecture == "SixtyFourNet"
    assert card.model_id == f"SixtyFourNet-{card.weights_sha256[:12]}"


@pytest.mark.parametrize("form", ["stem", "weights", "card"])
def test_any_path_of_the_pair_loads_into_the_fast_network(saved, form):
    network, card_path = saved
    stem = card_path.with_suffix("")
    path = {"stem": stem, "weights": stem.with_suffix(".safetensors"), "card": card_path}[form]
    loaded, _ = load_model(path)
    assert isinstance(loaded, FastSixtyFourNet) and _same_weights(loaded, network)


def test_a_directory_holds_model_files(tmp_path):
    card_path = save_model(tmp_path, FastSixtyFourNet(), CARD)
    assert card_path == tmp_path / "model.json"
    assert model_paths(tmp_path) == (tmp_path / "model.safetensors", tmp_path / "model.json")
    assert read_card(tmp_path).weights_sha256


def test_tampered_weights_are_refused_naming_the_file(saved):
    _, card_path = saved
    weights = card_path.with_suffix(".safetensors")
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=r"ms-vs-hc\.safetensors.*SHA-256"):
        load_model(card_path)


def _edit_card(card_path, **changes):
    card = json.loads(card_path.read_text())
    card.update(changes)
    card_path.write_text(json.dumps(card))


def test_a_model_for_another_grid_is_refused(saved):
    _, card_path = saved
    _edit_card(card_path, grid=CNN_GRID.as_dict() | {"shape": [97, 115, 97]})
    with pytest.raises(ModelFileError, match=r"ms-vs-hc\.json.*grid"):
        load_model(card_path)


def test_another_architecture_or_format_is_refused(saved):
    _, card_path = saved
    _edit_card(card_path, architecture_version=2)
    with pytest.raises(ModelFileError, match="architecture SixtyFourNet v2"):
        read_card(card_path)
    _edit_card(card_path, format="something-else")
    with pytest.raises(ModelFileError, match="not a readable msxai model card"):
        read_card(card_path)


CHECK_WITHOUT_TORCH = """
import sys
from msxai_bids.data import SHIPPED_MODELS
from msxai_bids.model.modelfile import check_file
print(check_file(SHIPPED_MODELS["demo"]).model_id, "torch" in sys.modules)
"""


def test_a_file_is_checked_without_importing_torch():
    result = subprocess.run(
        [sys.executable, "-c", CHECK_WITHOUT_TORCH], capture_output=True, text=True, check=True
    )
    model_id, torch_imported = result.stdout.split()
    assert model_id == load_model(SHIPPED_MODELS["demo"])[1].model_id
    assert torch_imported == "False"


def test_the_check_without_torch_refuses_what_load_model_refuses(saved):
    _, card_path = saved
    weights = card_path.with_suffix(".safetensors")
    assert check_file(card_path) == read_card(card_path)

    def rehash():
        _edit_card(card_path, weights_sha256=hashlib.sha256(weights.read_bytes()).hexdigest())

    original = weights.read_bytes()
    weights.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    with pytest.raises(ModelFileError, match="SHA-256"):
        check_file(card_path)
    weights.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}")
    rehash()
    with pytest.raises(ModelFileError, match="not a readable safetensors file"):
        check_file(card_path)
    tensors = safetensors_load(original)
    tensors["extra"] = torch.zeros(3)
    weights.write_bytes(safetensors_save(tensors))
    rehash()
    with pytest.raises(ModelFileError, match="333892 weights where SixtyFourNet has 333889"):
        check_file(card_path)


def test_missing_files_are_refused(saved, tmp_path):
    _, card_path = saved
    with pytest.raises(ModelFileError, match="nothing"):
        read_card(tmp_path / "nothing")
    card_path.with_suffix(".safetensors").unlink()
    with pytest.raises(ModelFileError, match="cannot read model weights"):
        load_model(card_path)


def test_weights_of_another_network_are_refused(tmp_path):
    with pytest.raises(ModelFileError, match="not a SixtyFourNet"):
        save_model(tmp_path / "other", nn.Sequential(nn.Linear(3, 1)), CARD)


def test_loading_never_unpickles(saved, monkeypatch):
    _, card_path = saved

    def refuse(*args, **kwargs):
        raise AssertionError("unpickling attempted")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    assert load_model(card_path)[1].positive_label == "MS"


def test_unreadable_weights_under_a_valid_card_are_refused_naming_the_file(saved):
    _, card_path = saved
    weights = card_path.with_suffix(".safetensors")
    weights.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}")
    _edit_card(card_path, weights_sha256=hashlib.sha256(weights.read_bytes()).hexdigest())
    with pytest.raises(ModelFileError, match=r"\.safetensors.*not a readable safetensors file"):
        load_model(card_path)
