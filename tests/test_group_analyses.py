"""Group analyses of the heatmaps (msxai_bids.group.summaries, msxai_bids.stages.analysis).

Each analysis runs on planted data whose answer is known: heatmaps that are +1 in a box for
patients and −1 in another box for controls, a two-region atlas, relevance sums made to follow
lesion loads.
"""

from __future__ import annotations

import json

import nibabel as nb
import numpy as np
import pandas as pd
import pytest
from group_cohort import plant_heatmaps, write_group_cohort

from msxai_bids import bids, derivatives
from msxai_bids.cli.run import main
from msxai_bids.grid import CNN_GRID
from msxai_bids.group import summaries, tables
from msxai_bids.stages import analysis

pytestmark = pytest.mark.usefixtures("restore_logging")


def test_cohort_means_average_the_right_participants():
    maps = np.arange(4, dtype=np.float32)[:, None, None, None] * np.ones((4, 2, 2, 2), np.float32)
    targets, predicted = np.array([1, 1, 0, 0]), np.array([1, 0, 0, 1])
    means = summaries.mean_maps(maps, summaries.cohort_members(targets, predicted))
    assert {k: float(v[0, 0, 0]) for k, v in means.items()} == {
        "patients": 0.5,
        "controls": 2.5,
        "truepatients": 0.0,
        "truecontrols": 2.0,
    }
    nobody = summaries.cohort_members(np.array([1, 1]), np.array([1, 1]))
    assert set(summaries.mean_maps(maps[:2], nobody)) == {"patients", "truepatients"}


def test_region_summary_gives_class_means_and_ranks_by_size():
    def table(a: float, b: float) -> pd.DataFrame:
        return pd.DataFrame(
            {"name": ["small", "large"], "relevance_sum": [a, b], "seen_share": [1.0, 0.5]}
        )

    tables = [table(1, 10), table(3, 14), table(0, -2), table(0, -4)]
    summary = summaries.region_summary(tables, np.array([1, 1, 0, 0])).set_index("name")
    assert list(summary.index) == ["large", "small"]
    assert (
        summary.loc["large", "patients_mean"] == 12 and summary.loc["large", "controls_mean"] == -3
    )
    assert summary.loc["large", "difference"] == 15 and summary.loc["large", "abs_mean_sum"] == 15
    assert summary.loc["small", "patients_sd"] == pytest.approx(np.std([1, 3], ddof=1))
    assert summary.loc["large", "seen_share"] == 0.5
    top = summaries.top_regions(summary.reset_index(), 1, leave_out=("large",))
    assert top["name"].tolist() == ["small"]


def test_correlation_finds_a_planted_relation_and_not_noise():
    rng = np.random.default_rng(2)
    load = rng.gamma(2.0, 5.0, size=30)
    related = 0.3 * load + rng.normal(size=30)
    r, p = summaries.correlation(load, related, n_resamples=1999, seed=0)
    assert r == pytest.approx(np.corrcoef(load, related)[0, 1])
    assert r > 0.5 and p <= 0.002
    r_noise, p_noise = summaries.correlation(load, rng.normal(size=30), n_resamples=1999, seed=0)
    assert abs(r_noise) < 0.5 and p_noise > 0.05
    assert summaries.correlation(load, related, n_resamples=1999, seed=0)[1] == p
    assert np.isnan(summaries.correlation(load[:2], related[:2], n_resamples=99, seed=0)[0])


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    """Six subjects (sub-01 twice), heatmaps of two models, then ``msxai BIDS OUT group``."""
    root = tmp_path_factory.mktemp("analyses")
    bids_dir, out = write_group_cohort(root, 6)
    plant_heatmaps(out, bids_dir, "first", 1.0)
    plant_heatmaps(out, bids_dir, "second", 2.0)
    atlas = root / "atlas-boxes_dseg.nii.gz"
    boxes = np.zeros(CNN_GRID.shape, np.int16)
    boxes[10:20, 10:20, 10:20], boxes[72:82, 84:94, 72:82] = 1, 2
    nb.save(nb.Nifti1Image(boxes, CNN_GRID.affine), atlas)
    names = pd.DataFrame({"index": [1, 2], "name": ["box A", "box B"]})
    names.to_csv(root / "atlas-boxes_dseg.tsv", sep="\t", index=False)
    args = [str(bids_dir), str(out), "group", "--skip-bids-validation", "--atlas", str(atlas)]
    return main(args), bids_dir, out


def test_group_level_without_training_analyses_every_model(analysed):
    code, _, out = analysed
    assert code == 0
    table = bids.read_tsv(derivatives.path(out, "participants_table"))
    assert len(table) == 2 * 7 and set(table["model"]) == {"first", "second"}
    assert table.groupby("model")["source"].nunique().to_dict() == {"first": 7, "second": 7}
    assert (table["registration_plausible"].isna()).all()  # the cohort has no QC files
    patients = table[(table["target"] == 1) & (table["model"] == "first")]
    lesion_voxels = patients["lesion_load_ml"] / (CNN_GRID.voxel_mm**3 / 1000)
    np.testing.assert_allclose(patients["relevance_sum"], 1000 + lesion_voxels)
    figure = derivatives.path(out, "model_comparison", cohort="patients", method="lrpepsilon")
    assert figure.stat().st_size > 10_000


def test_mean_heatmaps_hold_the_planted_values_and_who_entered(analysed):
    _, _, out = analysed
    names = {"model": "second", "method": "lrpepsilon"}
    controls = derivatives.path(out, "mean_heatmap", cohort="controls", **names)
    data = np.asanyarray(nb.load(controls).dataobj)
    assert data[75, 90, 75] == -2.0 and data[15, 15, 15] == 0.0
    sidecar = json.loads(bids.sidecar_path(controls).read_text())
    assert len(sidecar["Participants"]) == 4 and sidecar["Resolution"] == CNN_GRID.description
    wrong = derivatives.path(out, "mean_heatmap", cohort="truepatients", **names)
    members = json.loads(bids.sidecar_path(wrong).read_text())["Participants"]
    assert "sub-02/anat/sub-02_FLAIR.nii.gz" not in members and len(members) == 2


def test_region_summary_separates_the_classes(analysed):
    _, _, out = analysed
    path = derivatives.path(
        out, "region_summary", model="first", atlas="boxes", method="lrpepsilon"
    )
    summary = bids.read_tsv(path).set_index("name")
    assert (
        summary.loc["box B", "controls_mean"] == -1000
        and summary.loc["box B", "patients_mean"] == 0
    )
    assert summary.loc["box A", "patients_mean"] >= 1000 and summary.loc["box A", "difference"] > 0
    assert summary.loc["box A", "seen_share"] == 1 and summary.loc["box B", "seen_share"] == 0
    top = bids.read_tsv(
        derivatives.path(out, "top_regions", model="first", atlas="boxes", method="lrpepsilon")
    )
    assert "outside atlas" not in set(top["name"])


def test_lesion_analysis_relates_load_to_relevance(analysed):
    _, _, out = analysed
    path = derivatives.path(out, "lesion_analysis", model="first", method="lrpepsilon")
    lesions = bids.read_tsv(path).set_index(["subset", "cohort"])
    patients = lesions.loc[("all", "patients")]
    assert patients["n"] == 3 and patients["lesion_relevance_mean"] == 0.5
    assert patients["lesion_enrichment_mean"] == pytest.approx(10.0)
    assert patients["r_lesion_load_relevance_sum"] == pytest.approx(1.0)
    assert np.isnan(lesions.loc[("all", "controls"), "lesion_relevance_mean"])


def test_classification_table_scores_each_model_once_per_image(analysed):
    """Three patients (sub-02 called a control) and four control images, all others right."""
    _, _, out = analysed
    table = bids.read_tsv(derivatives.path(out, "classification", model="first"))
    row = table.set_index("subset").loc["all"]
    assert (row["n"], row["n_patients"], row["n_controls"]) == (7, 3, 4)
    assert row["sensitivity"] == pytest.approx(2 / 3) and row["specificity"] == 1.0
    assert row["balanced_accuracy"] == pytest.approx(5 / 6)
    assert row["auc"] == pytest.approx(10 / 12)  # sub-02 ties with every control


def test_splits_belong_only_to_the_model_trained_on_them(tmp_path):
    splits = pd.DataFrame(
        {
            "source": ["sub-01/anat/sub-01_FLAIR.nii.gz", "sub-02/anat/sub-02_FLAIR.nii.gz"],
            "participant_id": ["sub-01", "sub-02"],
            "session_id": ["n/a", "n/a"],
            "target": [0, 1],
            "split": ["train", "holdout"],
        }
    )
    bids.write_tsv(derivatives.path(tmp_path, "splits"), splits)
    here = tables.split_id(splits)
    images = pd.DataFrame(
        {
            "source": list(splits["source"]) * 2,
            "model": ["trainedhere"] * 2 + ["shipped"] * 2,
            "split_id": [here] * 2 + ["0123456789ab"] * 2,
        }
    )
    split = analysis.with_splits(tmp_path, images).set_index(["model", "source"])["split"]
    assert split["trainedhere"].tolist() == ["train", "holdout"]
    assert split["shipped"].tolist() == ["n/a", "n/a"]


def test_an_audit_without_the_model_files_stops_before_any_analysis(tmp_path, capsys):
    bids_dir, out = write_group_cohort(tmp_path, 3)
    plant_heatmaps(out, bids_dir, "first", 1.0)
    args = [str(bids_dir), str(out), "group", "--skip-bids-validation", "--audit"]
    assert main(args) == 66
    assert "no model file found" in capsys.readouterr().err
    assert not (out / "group").exists()
