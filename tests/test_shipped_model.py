"""The demo model shipped inside the package: its files, its card, and that it works."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from msxai_bids.cli.parser import build_parser
from msxai_bids.cli.run import main
from msxai_bids.data import SHIPPED_MODELS
from msxai_bids.grid import CNN_GRID
from msxai_bids.model.architecture import N_PARAMETERS
from msxai_bids.model.baselines import lesion_loads_ml
from msxai_bids.model.modelfile import load_model, model_paths, read_card
from msxai_bids.synth import make_cohort

DEMO = SHIPPED_MODELS["demo"]

pytestmark = pytest.mark.usefixtures("restore_logging")


def test_the_card_matches_the_weights_and_says_what_the_model_is():
    weights, card_file = model_paths(DEMO)
    card = read_card(DEMO)
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == card.weights_sha256
    assert weights.stat().st_size < 1.5e6  # float32: 4 bytes per parameter and a small header
    assert (card.architecture, card.n_parameters, card.grid) == (
        "SixtyFourNet",
        N_PARAMETERS,
        CNN_GRID.as_dict(),
    )
    assert (card.positive_label, card.negative_label) == ("MS", "HC")
    assert "synthetic" in card.description and "not for clinical use" in card.description
    assert card.training["data_kind"] == "synthetic (msxai-synth)"
    assert "scripts/train_demo_model.py" in card.training["made_by"]
    holdout = card.metrics["best_trial"]  # 18 held-out images of the training cohort
    assert holdout["balanced_accuracy"] >= 0.8 and holdout["auc"] >= 0.9
    network, _ = load_model(DEMO)  # checks the hash again, and the architecture
    assert sum(p.numel() for p in network.parameters()) == N_PARAMETERS
    assert card_file.is_file()


def test_model_demo_names_the_shipped_model_and_a_path_stays_a_path(tmp_path):
    command = [str(tmp_path), str(tmp_path / "out"), "participant", "--model"]
    assert build_parser().parse_args([*command, "demo"]).model == DEMO
    assert str(build_parser().parse_args([*command, "./demo"]).model) == "demo"


def lesion_load_ml(bids_dir: Path, subject: str) -> float:
    """Volume of the synthetic truth lesion mask of ``subject`` in ml."""
    (mask,) = (bids_dir / "derivatives").rglob(f"{subject}_*label-lesion_mask.nii.gz")
    return float(lesion_loads_ml([mask])[0])


@pytest.mark.slow
def test_the_shipped_model_tells_unseen_patients_from_controls(tmp_path):
    """A fresh cohort (another seed, another resolution than the training cohort).

    In the training cohort the controls' lesion loads reach 1.5 ml and every patient the model
    missed had less than that; so controls must be called controls, and patients with more than
    2 ml of lesions patients.
    """
    bids_dir = make_cohort(
        tmp_path / "bids", n_patients=3, n_controls=3, seed=2024, native_resolution=2.0
    )
    out = tmp_path / "out"
    args = [str(bids_dir), str(out), "participant", "--model", "demo", "-w", str(tmp_path / "w")]
    assert main([*args, "--nprocs", "2", "--omp-nthreads", "1", "--skip-bids-validation"]) == 0
    rows = pd.concat(
        pd.read_csv(path, sep="\t") for path in out.rglob("*_model-demomodel_predictions.tsv")
    )
    truth = pd.read_csv(bids_dir / "participants.tsv", sep="\t").set_index("participant_id")
    assert len(rows) == 6
    judged = 0
    for row in rows.itertuples():
        label = truth.loc[row.participant_id, "diagnosis"]
        if label == "HC" or lesion_load_ml(bids_dir, row.participant_id) > 2.0:
            assert row.predicted_label == label, row
            judged += 1
    assert judged >= 5  # this cohort: three controls, two patients of 3.0 and 13.6 ml
