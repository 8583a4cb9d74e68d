"""``msxai BIDS OUT group --audit`` with the shipped model, on images msxai-synth did not write."""

from __future__ import annotations

import json

import numpy as np
import pytest
from group_cohort import write_group_cohort

from msxai_bids import bids, derivatives
from msxai_bids.audit import verdicts
from msxai_bids.cli.run import main
from msxai_bids.data import SHIPPED_MODELS
from msxai_bids.stages import explanation

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("restore_logging")]

METHODS = ("lrp-epsilon", "smoothgrad")


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    """Seven drawn images explained by the shipped model, then an audit of four of them."""
    root = tmp_path_factory.mktemp("audit")
    bids_dir, out = write_group_cohort(root, 6)
    layout = bids.load_layout(bids_dir, out)
    flairs = bids.collect_images(layout, (), (), {})
    plan = explanation.ExplanationPlan(out, METHODS, ("Neuromorphometrics",), device="cpu")
    assert explanation.run(flairs, SHIPPED_MODELS["demo"], plan) == 0
    args = [str(bids_dir), str(out), "group", "--skip-bids-validation", "--audit"]
    return main([*args, "--audit-size", "4", "--device", "cpu"]), out


def test_the_audit_writes_a_verdict_per_test_and_method(audited):
    code, out = audited
    assert code == 0
    table = bids.read_tsv(derivatives.path(out, "audit", model="demomodel"))
    assert sorted(set(table["method"])) == sorted(METHODS)
    assert (
        table.groupby("method")["test"].apply(list).tolist()
        == [["randomisation"] * 2 + ["localisation"] * 2 + ["faithfulness"]] * 2
    )
    assert table["passed"].isin([True, False]).all() and table["threshold"].notna().all()
    localised = table[table["test"] == "localisation"]
    assert (localised["n"] == 2).all()  # two of the four audited are patients with lesions
    assert localised[["uniform_map", "randomised_model", "input_intensity"]].notna().all().all()


def test_the_audit_numbers_join_the_participants_table(audited):
    _, out = audited
    table = bids.read_tsv(derivatives.path(out, "participants_table"))
    audited_rows = table[table["randomised_rank_correlation"].notna()]
    assert len(audited_rows) == 4 * len(METHODS) and len(table) == 7 * len(METHODS)
    assert audited_rows["aopc_most_relevant_first"].notna().all()
    patients = audited_rows[audited_rows["target"] == 1]
    assert (patients["intensity_rank_accuracy"] > patients["uniform_map_accuracy"]).all()
    sidecar = bids.sidecar_path(derivatives.path(out, "participants_table"))
    described = json.loads(sidecar.read_text())
    assert set(verdicts.PARTICIPANT_COLUMNS) <= set(described)


def test_the_curves_cover_every_step_and_order(audited):
    _, out = audited
    for method in METHODS:
        names = {"model": "demomodel", "method": derivatives.method_label(method)}
        cascade = bids.read_tsv(derivatives.path(out, "randomisation_curves", **names))
        assert (
            cascade.groupby("source")["randomised_down_to"].apply(list).tolist()
            == [["fc", "conv4", "conv3", "conv2", "conv1"]] * 4
        )
        curves = bids.read_tsv(derivatives.path(out, "perturbation_curves", **names))
        assert set(curves["order"]) == {"most-relevant-first", "random"}
        first = curves[curves["step"] == 0]
        np.testing.assert_allclose(first["logit_drop"], 0.0, atol=1e-9)
        assert curves["perturbed_share"].max() == pytest.approx(0.1, abs=0.01)
