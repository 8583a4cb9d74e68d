"""Group level with --train (msxai_bids.stages.training and msxai_bids.group)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from group_cohort import write_group_cohort

from msxai_bids import bids, derivatives
from msxai_bids.cli.levels import selected_images
from msxai_bids.cli.plans import training_plan
from msxai_bids.cli.run import main, make_config
from msxai_bids.errors import UsageError
from msxai_bids.group import tables
from msxai_bids.model.datasets import load_volumes
from msxai_bids.model.modelfile import ModelCard, load_model, read_card, save_model
from msxai_bids.model.network import SixtyFourNet
from msxai_bids.model.training import predict_logits
from msxai_bids.stages.training import labelled_images, prepare_splits

pytestmark = pytest.mark.usefixtures("restore_logging")


@pytest.fixture(scope="module")
def small_cohort(tmp_path_factory):
    """6 subjects (sub-01 with two sessions), preprocessed derivatives in OUT."""
    return write_group_cohort(tmp_path_factory.mktemp("group"), 6)


def group_args(bids_dir, out, *extra):
    return [str(bids_dir), str(out), "group", "--train", "--skip-bids-validation", *extra]


def images_of(config):
    """The labelled images a group run with ``config`` trains on."""
    layout = bids.load_layout(config.bids_dir, config.output_dir)
    return labelled_images(training_plan(config), selected_images(config, layout))


def test_options_pick_the_paper_settings_and_overrides(tmp_path, small_cohort):
    bids_dir, out = small_cohort
    scratch = training_plan(make_config(group_args(bids_dir, out))).cnn.settings
    assert (scratch.lr, scratch.batch_size, scratch.max_epochs, scratch.patience) == (
        1e-3,
        8,
        45,
        10,
    )
    model = save_model(
        tmp_path / "pretrained", SixtyFourNet(), ModelCard(positive_label="AD", negative_label="CN")
    )
    tuned = training_plan(
        make_config(group_args(bids_dir, out, "--init-model", str(model), "--epochs", "3"))
    ).cnn.settings
    assert (tuned.lr, tuned.decay, tuned.batch_size, tuned.max_epochs) == (5e-4, 2e-3, 4, 3)
    assert tuned.augment and not scratch.augment


def test_labelled_images_come_with_their_derivatives(small_cohort):
    bids_dir, out = small_cohort
    images = images_of(make_config(group_args(bids_dir, out)))
    assert len(images) == 7 and images["participant_id"].nunique() == 6
    assert images["image"].map(lambda p: p.is_file()).all()
    assert images.groupby("target").size().to_dict() == {0: 4, 1: 3}  # sub-01 (HC) twice
    assert set(images.loc[images["participant_id"] == "sub-01", "session_id"]) == {
        "ses-a",
        "ses-b",
    }


def test_a_t1w_cohort_is_read_and_described_by_its_contrast(tmp_path):
    bids_dir, out = write_group_cohort(tmp_path, 4, contrast="T1w")
    filters = tmp_path / "filters.json"
    filters.write_text(json.dumps({"flair": {"suffix": "T1w"}}))
    config = make_config(group_args(bids_dir, out, "--bids-filter-file", str(filters)))
    images = images_of(config)
    assert len(images) == 5
    assert images["image"].map(lambda p: p.name.endswith("desc-preproc_T1w.nii.gz")).all()
    assert training_plan(config).cnn.description["data"] == "T1w"


def test_missing_preprocessed_images_are_listed_with_exit_66(tmp_path, capsys):
    bids_dir, out = write_group_cohort(tmp_path, 4)
    derivatives.path(out, "preproc", {"subject": "03", "suffix": "FLAIR"}).unlink()
    assert main(group_args(bids_dir, out)) == 66
    assert "sub-03/anat/sub-03_FLAIR.nii.gz" in capsys.readouterr().err
    assert main(group_args(bids_dir, out, "--lesion-filled")) == 66  # none was written


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--label-column", "group"], "not a column"),
        (["--positive-label", "AD"], "no participant has diagnosis = 'AD'"),
    ],
)
def test_unusable_labels_exit_64(small_cohort, capsys, options, message):
    bids_dir, out = small_cohort
    assert main(group_args(bids_dir, out, *options)) == 64
    assert message in capsys.readouterr().err


def test_unreadable_init_model_exits_66(small_cohort, tmp_path):
    bids_dir, out = small_cohort
    assert main(group_args(bids_dir, out, "--init-model", str(tmp_path / "nope"))) == 66


def test_split_is_written_reused_and_refused_for_other_images(small_cohort, tmp_path):
    bids_dir, _ = small_cohort
    out = tmp_path / "out"
    images = pd.DataFrame(
        {
            "source": [f"sub-{i:02d}/anat/sub-{i:02d}_FLAIR.nii.gz" for i in range(20)],
            "participant_id": [f"sub-{i:02d}" for i in range(20)],
            "session_id": "n/a",
            "target": [i % 2 for i in range(20)],
        }
    )
    first = prepare_splits(
        training_plan(make_config(group_args(bids_dir, out))), images, write=True
    )
    path = derivatives.path(out, "splits")
    assert path.is_file() and json.loads(path.with_suffix(".json").read_text())["split"]
    other_seed = training_plan(make_config(group_args(bids_dir, out, "--seed", "9")))
    pd.testing.assert_frame_equal(prepare_splits(other_seed, images, write=True), first)
    new = training_plan(make_config(group_args(bids_dir, out, "--seed", "9", "--new-split")))
    redrawn = prepare_splits(new, images, write=True)
    assert dict(zip(redrawn["source"], redrawn["split"], strict=True)) != dict(
        zip(first["source"], first["split"], strict=True)
    )
    with pytest.raises(UsageError, match="--new-split"):
        prepare_splits(replace(new, new_split=False), images[1:], write=False)


def test_results_replace_a_model_and_drop_other_splits(tmp_path):
    path = tmp_path / "trials.tsv"
    rows = pd.DataFrame({"model": ["a", "b"], "trial": [1, 1], "split_id": ["s1", "s1"]})
    tables.merge_results(path, rows)
    merged = tables.merge_results(path, rows.iloc[[0]].assign(trial=2))
    assert sorted(zip(merged["model"], merged["trial"], strict=True)) == [("a", 2), ("b", 1)]
    other = tables.merge_results(path, rows.iloc[[1]].assign(split_id="s2"))
    assert other["model"].tolist() == ["b"] and other["split_id"].tolist() == ["s2"]


@pytest.mark.slow
def test_training_from_scratch_then_fine_tuning_writes_table_3(tmp_path):
    bids_dir, out = write_group_cohort(tmp_path, 14)
    common = ["--epochs", "1", "--holdout-fraction", "0.3", "--validation-fraction", "0.2"]
    assert main(group_args(bids_dir, out, "--trials", "2", *common)) == 0
    splits = bids.read_tsv(derivatives.path(out, "splits"))
    assert splits.groupby("participant_id")["split"].nunique().max() == 1
    performance = bids.read_tsv(derivatives.path(out, "performance")).set_index("model")
    assert list(performance.index) == ["cnn-scratch", "svm-lesionload", "svm-flair"]
    assert performance.loc["cnn-scratch", "n_trials"] == 2
    assert performance.loc["svm-lesionload", "balanced_accuracy"] == 1.0  # lesions ⇔ patients
    predictions = bids.read_tsv(derivatives.path(out, "group_predictions"))
    holdout = set(splits.loc[splits["split"] == "holdout", "source"])
    assert set(predictions["source"]) == holdout and len(predictions) == 4 * len(holdout)
    for trial in (1, 2):
        log = bids.read_tsv(derivatives.path(out, "epochs", model="cnn-scratch", trial=f"0{trial}"))
        assert len(log) == 1 and log["loss"].gt(log["bce"]).all()
    model, card = load_model(derivatives.path(out, "model", model="cnn-scratch"))
    assert (card.positive_label, card.training["subjects"]) == ("MS", 14)
    best = predictions[predictions["trial"] == card.metrics["best_trial"]["trial"]]
    best = best[best["model"] == "cnn-scratch"].merge(
        images_of(make_config(group_args(bids_dir, out))), on="source"
    )
    logits = predict_logits(model, load_volumes(best["image"].tolist()), batch_size=2, device="cpu")
    np.testing.assert_allclose(logits.numpy(), best["score"], rtol=1e-4, atol=1e-5)
    for source in holdout:  # the holdout is explained with the saved model
        stem = Path(source).name.replace("_FLAIR.nii.gz", "")
        explained = out / Path(source).parent / f"{stem}_model-cnnscratch_predictions.tsv"
        assert bids.read_tsv(explained)["model_sha256"].item() == card.weights_sha256

    tuned = [
        "--init-model",
        str(derivatives.path(out, "model", model="cnn-scratch")),
        "--skip-baselines",
    ]
    assert main(group_args(bids_dir, out, "--trials", "1", *common, *tuned)) == 0
    assert bids.read_tsv(derivatives.path(out, "splits")).equals(splits)  # reused
    performance = bids.read_tsv(derivatives.path(out, "performance"))
    assert set(performance["model"]) == {
        "cnn-scratch",
        "svm-lesionload",
        "svm-flair",
        "cnn-pretrained",
    }
    fine_tuned = read_card(derivatives.path(out, "model", model="cnn-pretrained"))
    assert fine_tuned.training["init_model"] == card.model_id
    assert fine_tuned.training["settings"]["lr"] == 5e-4


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--method", "lrp-epsilom"], "unknown --method lrp-epsilom"),
        (["--atlas", "Neuromorphometric"], "unknown --atlas Neuromorphometric"),
    ],
)
def test_explanation_options_are_checked_before_training(tmp_path, capsys, option, message):
    bids_dir, out = write_group_cohort(tmp_path, 4)
    assert main(group_args(bids_dir, out, *option)) == 64
    assert message in capsys.readouterr().err
    assert not derivatives.path(out, "splits").exists()  # nothing was trained


def test_an_unreadable_init_model_is_refused_before_training(tmp_path, capsys):
    bids_dir, out = write_group_cohort(tmp_path, 4)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a model")
    assert main(group_args(bids_dir, out, "--init-model", str(broken))) == 66
    assert "--init-model" in capsys.readouterr().err
    assert not derivatives.path(out, "splits").exists()


def test_a_flagged_registration_is_left_out_of_training_unless_included(tmp_path):
    bids_dir, out = write_group_cohort(tmp_path, 4)
    entities = {"subject": "02", "suffix": "FLAIR"}
    qc = {"plausible": False, "reason": "the transform scales by 0.41–0.52"}
    derivatives.path(out, "qc", entities).write_text(json.dumps(qc))
    default = images_of(make_config(group_args(bids_dir, out)))
    assert "sub-02" not in set(default["participant_id"])
    included = images_of(make_config(group_args(bids_dir, out, "--include-flagged")))
    assert "sub-02" in set(included["participant_id"])
    assert len(included) == len(default) + 1
