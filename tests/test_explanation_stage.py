"""Participant-level prediction and explanation outputs (names, sidecars, tables)."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import replace
from pathlib import Path

import ants
import nibabel as nb
import numpy as np
import pandas as pd
import pytest
from cnn_fixtures import brain_like_volume, seeded_network

from msxai_bids import bids, derivatives
from msxai_bids.errors import NoInputError
from msxai_bids.grid import CNN_GRID
from msxai_bids.model.modelfile import ModelCard, check_file, save_model
from msxai_bids.model.network import SixtyFourNet
from msxai_bids.stages import explanation
from msxai_bids.stages.explanation import (
    ExplanationPlan,
    explain_scans,
    find_scan,
    write_field_of_view,
)

SPACE = "space-MNI152NLin2009cAsym_res-cnn2mm"
MODEL = "model-model"  # the model file is tmp_path/model


def _write_on_grid(out: Path, flair, kind: str, data: np.ndarray) -> Path:
    path = derivatives.path(out, kind, flair.entities)
    path.parent.mkdir(parents=True, exist_ok=True)
    nb.save(nb.Nifti1Image(data.astype(np.float32), CNN_GRID.affine), path)
    return path


@pytest.fixture
def preprocessed(tiny_bids, tmp_path):
    """OUT holding sub-01's preprocessed FLAIR, masks and an identity transform; a model file."""
    layout = bids.load_layout(tiny_bids, tmp_path / "out")
    flair = bids.collect_images(layout, participant_label=["01"])[0]
    out = tmp_path / "out"
    volume = brain_like_volume(seed=3)[0, 0].numpy()
    volume = (volume - volume.min()) / (volume.max() - volume.min())
    lesion = np.zeros(CNN_GRID.shape, np.float32)
    lesion[40:46, 50:56, 50:54] = 1
    _write_on_grid(out, flair, "preproc", volume)
    _write_on_grid(out, flair, "brain_mask", (volume > 0).astype(np.float32))
    _write_on_grid(out, flair, "lesion_mask", lesion)
    xfm = derivatives.path(out, "xfm", flair.entities)
    ants.write_transform(ants.create_ants_transform(dimension=3), str(xfm))
    model = save_model(
        tmp_path / "model",
        seeded_network(SixtyFourNet),
        ModelCard(positive_label="MS", negative_label="HC"),
    )
    atlas = tmp_path / "atlas-halves_dseg.nii.gz"
    halves = np.zeros(CNN_GRID.shape, np.int16)
    halves[:48], halves[48:] = 1, 2
    nb.save(nb.Nifti1Image(halves, CNN_GRID.affine), atlas)
    pd.DataFrame({"index": [1, 2], "name": ["Right half", "Left half"]}).to_csv(
        tmp_path / "atlas-halves_dseg.tsv", sep="\t", index=False
    )
    return out, flair, model, atlas


def test_explain_scans_writes_named_outputs(preprocessed):
    out, flair, model, atlas = preprocessed
    scan = find_scan(out, flair)
    assert scan is not None and scan.lesion_mask is not None
    failed = explain_scans(
        [scan],
        model_path=model,
        output_dir=out,
        methods=["lrp-epsilon", "gradient-input"],
        atlases=[str(atlas)],
    )
    assert failed == []
    anat = out / "sub-01" / "anat"
    fov = out / "models" / f"{SPACE}_desc-fieldofview_mask.nii.gz"
    assert nb.load(fov).get_data_dtype() == np.uint8
    np.testing.assert_array_equal(nb.load(fov).affine, CNN_GRID.affine)
    seen = np.asanyarray(nb.load(fov).dataobj) == 1
    fov_meta = json.loads(fov.with_name(f"{SPACE}_desc-fieldofview_mask.json").read_text())
    assert fov_meta["Resolution"] == CNN_GRID.description and seen.sum() < seen.size
    prediction = pd.read_csv(anat / f"sub-01_{MODEL}_predictions.tsv", sep="\t").iloc[0]
    assert prediction["probability"] == pytest.approx(1 / (1 + np.exp(-prediction["logit"])))
    assert prediction["predicted_label"] == ("MS" if prediction["probability"] >= 0.5 else "HC")
    for desc in ("lrpepsilon", "gradientinput"):
        grid_map = anat / f"sub-01_{SPACE}_{MODEL}_stat-relevance_desc-{desc}_statmap.nii.gz"
        native_map = anat / f"sub-01_{MODEL}_stat-relevance_desc-{desc}_statmap.nii.gz"
        assert nb.load(grid_map).shape == CNN_GRID.shape
        assert nb.load(native_map).shape == nb.load(flair.path).shape
        meta = json.loads(grid_map.with_name(grid_map.name.replace(".nii.gz", ".json")).read_text())
        assert (
            meta["ModelSHA256"]
            == json.loads(Path(f"{model.parent}/model.json").read_text())["weights_sha256"]
        )
        assert meta["Logit"] == pytest.approx(prediction["logit"])
        assert meta["Resolution"] == CNN_GRID.description
        assert 0 <= meta["LesionRelevanceShare"] <= 1
        relevance = nb.load(grid_map).get_fdata()
        assert relevance[seen].any() and not relevance[~seen].any()
        table = pd.read_csv(
            anat / f"sub-01_{SPACE}_{MODEL}_atlas-halves_stat-relevance_desc-{desc}_statmap.tsv",
            sep="\t",
        )
        assert list(table["name"]) == ["outside atlas", "Right half", "Left half"]
        np.testing.assert_allclose(table["seen_share"][1:], [seen[:48].mean(), seen[48:].mean()])
        assert table["relevance_sum"].sum() == pytest.approx(relevance.sum(), rel=1e-4)
        both = pd.read_csv(
            anat / f"sub-01_{SPACE}_{MODEL}_atlas-halves_stat-relevance_desc-{desc}bilateral"
            "_statmap.tsv",
            sep="\t",
        )
        assert "half" in set(both["name"])
    epsilon_meta = json.loads(
        (anat / f"sub-01_{SPACE}_{MODEL}_stat-relevance_desc-lrpepsilon_statmap.json").read_text()
    )
    assert epsilon_meta["Epsilon"] == 1e-3 and epsilon_meta["Method"] == "lrp-epsilon"


def test_field_of_view_is_written_once(tmp_path):
    path = write_field_of_view(tmp_path)
    assert path.name == f"{SPACE}_desc-fieldofview_mask.nii.gz"
    stamp = path.stat().st_mtime_ns
    assert write_field_of_view(tmp_path) == path and path.stat().st_mtime_ns == stamp


def test_find_scan_is_none_without_preprocessing(tiny_bids, tmp_path):
    layout = bids.load_layout(tiny_bids, tmp_path / "out")
    assert find_scan(tmp_path / "out", bids.collect_images(layout)[0]) is None


def test_a_rerun_skips_explained_images_and_redoes_them_when_the_options_change(
    preprocessed, caplog
):
    out, flair, model, atlas = preprocessed
    model = model.with_suffix("")  # the stem, as users name a model
    plan = ExplanationPlan(output_dir=out, methods=("lrp-epsilon",), atlases=(str(atlas),))
    assert explanation.run([flair], model, plan) == 0
    record = out / "logs" / "completed" / "sub-01_FLAIR_model-model.json"
    listed = json.loads(record.read_text())["outputs"]
    heatmap = derivatives.path(out, "heatmap", flair.entities, model="model", method="lrpepsilon")
    assert str(heatmap.relative_to(out)) in listed and len(listed) == 7
    written = heatmap.stat().st_mtime_ns

    with caplog.at_level(logging.INFO, logger="msxai.completion"):
        assert explanation.run([flair], model, plan) == 0
    assert "1 image(s) already explained by model-model with these inputs" in caplog.text
    assert heatmap.stat().st_mtime_ns == written

    other = replace(plan, methods=("gradient-input",))
    assert explanation.run([flair], model, other) == 0  # another method: explained again
    assert heatmap.is_file()  # the first method's map stays
    assert derivatives.path(
        out, "heatmap", flair.entities, model="model", method="gradientinput"
    ).is_file()
    assert explanation.run([flair], model, replace(plan, force=True)) == 0
    assert heatmap.stat().st_mtime_ns != written


def test_weights_that_do_not_fit_the_network_stop_the_stage_as_a_missing_input(tmp_path):
    # The check before the run reads them without torch and sees their number, not their
    # names: a renamed tensor is found when the stage fills the network.
    from safetensors.torch import load, save

    card_path = save_model(tmp_path / "model", seeded_network(SixtyFourNet), ModelCard("MS", "HC"))
    weights = card_path.with_suffix(".safetensors")
    tensors = load(weights.read_bytes())
    tensors["renamed.weight"] = tensors.pop("fc.weight")
    weights.write_bytes(save(tensors))
    card = json.loads(card_path.read_text())
    card["weights_sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
    card_path.write_text(json.dumps(card))
    assert check_file(card_path).weights_sha256 == card["weights_sha256"]
    with pytest.raises(NoInputError, match=r"model\.safetensors: weights do not fit"):
        explain_scans(
            [], model_path=card_path, output_dir=tmp_path / "out", methods=["lrp-epsilon"],
            atlases=[], device="cpu",
        )  # fmt: skip
