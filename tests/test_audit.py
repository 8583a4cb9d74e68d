"""The explanation audit on planted cases whose answers are known by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from cnn_fixtures import SMALL_SHAPE, brain_like_volume, seeded_network
from torch import nn

from msxai_bids.audit import faithfulness, localisation, randomisation, verdicts
from msxai_bids.explain.attribution import attribute
from msxai_bids.model.network import FastSixtyFourNet
from msxai_bids.stages.audit import Subject, localisation_test, sample

SHAPE = (24, 24, 24)


def planted_subject(seed: int) -> Subject:
    """A cubic brain of noisy intensity 0.4 with bright lesions, and bright non-lesion spots."""
    rng = np.random.default_rng(seed)
    within = np.zeros(SHAPE, bool)
    within[2:22, 2:22, 2:22] = True
    volume = np.where(within, 0.4 + 0.05 * rng.standard_normal(SHAPE), 0.0).astype(np.float32)
    lesions = np.zeros(SHAPE, bool)
    lesions[5:8, 5:8, 5:8] = lesions[14:17, 10:13, 15:18] = True
    volume[lesions] = 0.9 + 0.1 * rng.random(int(lesions.sum()))
    volume[18:20, 4:7, 4:7] = 1.0  # bright, but not lesion (a vessel, an artefact)
    return Subject(f"sub-{seed:02d}", 1, volume, within, lesions, {})


def localisation_results(make_map) -> pd.DataFrame:
    rows = []
    for seed in range(5):
        subject = planted_subject(seed)
        noise = np.random.default_rng(100 + seed).standard_normal(SHAPE).astype(np.float32)
        scores = localisation_test(subject, make_map(subject), noise)
        rows.append({"method": "planted", "target": 1, **scores})
    return pd.DataFrame(rows)


def test_a_map_equal_to_the_truth_passes_localisation():
    rows = verdicts.localisation_rows(localisation_results(lambda s: s.lesions.astype(float)))
    assert [row["passed"] for row in rows] == [True, True]
    assert all(row["value"] == 1.0 for row in rows)
    coverage = 2 * 27 / 20**3
    assert rows[0]["uniform_map"] == pytest.approx(coverage)
    assert 0.5 < rows[1]["input_intensity"] < 1.0  # bright lesions, but also the bright spot


def test_the_input_intensity_used_as_a_map_is_caught_by_the_intensity_baseline():
    results = localisation_results(lambda s: localisation.intensity_map(s.volume, s.within))
    rows = verdicts.localisation_rows(results)
    assert [row["passed"] for row in rows] == [False, False]
    for row in rows:  # it beats the uniform and the random map, which alone would mislead
        assert row["value"] == row["input_intensity"]
        assert row["value"] > row["uniform_map"] and row["value"] > row["randomised_model"]


def test_rank_accuracy_counts_the_top_k_voxels_inside_the_truth():
    relevance = np.array([5.0, 4.0, 3.0, 2.0, 1.0, 9.0]).reshape(1, 1, 6)
    truth = np.array([1, 1, 0, 0, 1, 0], bool).reshape(1, 1, 6)
    within = np.array([1, 1, 1, 1, 1, 0], bool).reshape(1, 1, 6)  # the 9 is outside
    assert localisation.rank_accuracy(relevance, truth, within) == pytest.approx(2 / 3)
    assert localisation.uniform_map_accuracy(truth, within) == pytest.approx(3 / 5)
    assert np.isnan(localisation.rank_accuracy(relevance, np.zeros_like(truth), within))


def randomisation_results(trained, randomised) -> pd.DataFrame:
    rows = []
    for seed in range(4):
        subject = planted_subject(seed)
        a, b = trained(subject, seed), randomised(subject, seed)
        rows.append(
            {
                "method": "planted",
                "randomised_rank_correlation": randomisation.rank_correlation(a, b, subject.within),
                "randomised_ssim": randomisation.structural_similarity_of(a, b),
            }
        )
    return pd.DataFrame(rows)


def test_a_map_that_ignores_the_weights_fails_randomisation():
    def intensity(subject, _seed):
        return subject.volume

    rows = verdicts.randomisation_rows(randomisation_results(intensity, intensity))
    assert [row["value"] for row in rows] == [pytest.approx(1.0), pytest.approx(1.0)]
    assert [row["passed"] for row in rows] == [False, False]


def test_a_map_that_changes_with_the_weights_passes_randomisation():
    def noise(_subject, seed):
        return np.random.default_rng(seed).standard_normal(SHAPE)

    def other_noise(_subject, seed):
        return np.random.default_rng(50 + seed).standard_normal(SHAPE)

    rows = verdicts.randomisation_rows(randomisation_results(noise, other_noise))
    assert all(abs(row["value"]) < 0.1 for row in rows)
    assert [row["passed"] for row in rows] == [True, True]


def test_the_cascade_redraws_layers_from_the_output_down_and_repeats_with_its_seed():
    network = seeded_network(FastSixtyFourNet, seed=1)
    before = {k: v.clone() for k, v in network.state_dict().items()}
    copies = randomisation.cascade(network, seed=3)
    assert [name for name, _ in copies] == ["fc", "conv4", "conv3", "conv2", "conv1"]
    for step, (_, copy) in enumerate(copies, start=1):
        redrawn = {name for name, _ in copies[:step]}
        for key, value in copy.state_dict().items():
            assert torch.equal(value, before[key]) != (key.split(".")[0] in redrawn), key
    again = randomisation.cascade(network, seed=3)
    assert torch.equal(again[-1][1].conv1.weight, copies[-1][1].conv1.weight)
    assert all(torch.equal(v, before[k]) for k, v in network.state_dict().items())


def test_the_gradient_of_a_real_network_changes_when_its_weights_are_destroyed():
    """On the CNN itself: the gradient passes, the image that gradient×input multiplies shows."""
    network = seeded_network(FastSixtyFourNet, seed=2)
    volume = brain_like_volume(seed=2, shape=SMALL_SHAPE)
    within = volume[0, 0].numpy() > 0
    random_network = randomisation.cascade(network, seed=0)[-1][1].eval()
    similarity = {}
    for method in ("smoothgrad", "gradient-input"):
        torch.manual_seed(0)
        trained, _ = attribute(network, volume, method)
        torch.manual_seed(0)
        randomised, _ = attribute(random_network, volume, method)
        similarity[method] = randomisation.rank_correlation(
            trained[0, 0].numpy(), randomised[0, 0].numpy(), within
        )
    assert similarity["smoothgrad"] < verdicts.MAX_RANDOMISED_SIMILARITY
    assert similarity["gradient-input"] > similarity["smoothgrad"]


class RegionSum(nn.Module):
    """A 'network' whose logit is the summed intensity of the voxels in ``weights``."""

    def __init__(self, weights: np.ndarray) -> None:
        super().__init__()
        self.weights = nn.Parameter(torch.as_tensor(weights, dtype=torch.float32))

    def forward(self, volumes: torch.Tensor) -> torch.Tensor:
        return (volumes[:, 0] * self.weights).sum(dim=(1, 2, 3))[:, None]


def test_perturbation_logits_and_area_on_a_case_known_by_hand():
    volume = np.ones((8, 8, 8), np.float32)
    regions = faithfulness.cube_regions(np.ones((8, 8, 8), bool), size=4)
    assert np.bincount(regions.ravel()).tolist() == [64] * 8
    model = RegionSum(np.ones((8, 8, 8)))
    logits = faithfulness.perturbation_logits(
        model, volume, regions, np.arange(8), [0, 1, 2], fill=0.0, batch_size=2
    )
    np.testing.assert_allclose(logits, [512, 448, 384])
    assert faithfulness.area_over_curve(logits) == pytest.approx(64.0)


def test_most_relevant_first_curve_of_the_cnn_equals_full_forward_passes():
    """The CNN's curve, computed by editing one volume step by step, is the curve of the
    perturbed volumes each passed through the whole network."""
    network = seeded_network(FastSixtyFourNet, seed=6)
    volume = brain_like_volume(seed=6, shape=SMALL_SHAPE)[0, 0].numpy()
    regions = faithfulness.cube_regions(volume > 0)
    order = np.random.default_rng(6).permutation(int(regions.max()) + 1)
    counts = faithfulness.steps_of(len(order), steps=6, share=0.002)
    found = faithfulness.perturbation_logits(network, volume, regions, order, counts, fill=0.7)
    expected = []
    for n in counts:
        perturbed = np.where(np.isin(regions, order[:n]), 0.7, volume)
        with torch.no_grad():
            expected.append(float(network(torch.as_tensor(perturbed)[None, None])[0, 0]))
    scale = np.abs(expected).max()
    np.testing.assert_allclose(found, expected, rtol=0, atol=1e-5 * scale)
    assert np.ptp(expected) > 0.01 * scale


def test_cube_regions_label_only_the_brain_and_steps_grow_by_a_share():
    within = np.zeros((8, 8, 8), bool)
    within[:4, :4, :4] = within[7, 7, 7] = True
    regions = faithfulness.cube_regions(within, size=4)
    assert set(np.unique(regions)) == {-1, 0, 1} and (regions[~within] == -1).all()
    assert faithfulness.steps_of(1000, steps=3, share=0.005) == [0, 5, 10, 15]
    assert faithfulness.steps_of(3, steps=4, share=0.5) == [0, 2, 3, 3, 3]


def test_random_perturbation_draws_its_regions_anew_at_each_step():
    """One cube of eight carries the logit: with a new draw at every step, k perturbed cubes hit
    it in k/8 of the steps, and a step may hit it after the one before missed (nested orders
    never could)."""
    volume = np.ones((8, 8, 8), np.float32)
    regions = faithfulness.cube_regions(np.ones((8, 8, 8), bool), size=4)
    weights = np.zeros((8, 8, 8))
    weights[:4, :4, :4] = 1.0  # cube 0
    model = RegionSum(weights)
    rng = np.random.default_rng(0)
    for k in (1, 2, 6):
        logits = faithfulness.random_perturbation_logits(
            model, volume, regions, [k] * 400, rng, fill=0.0
        )
        assert set(np.unique(logits)) == {0.0, 64.0}
        assert np.mean(logits == 0.0) == pytest.approx(k / 8, abs=0.06)
        assert (np.diff(logits) > 0).any()
    assert faithfulness.random_perturbation_logits(
        model, volume, regions, [0, 8], rng, fill=0.0
    ).tolist() == [64.0, 0.0]


def test_a_map_whose_top_regions_matter_has_a_larger_area_than_random_order():
    """The logit rests on two cubes; a map that ranks them first passes, noise does not."""
    rows = []
    within = np.ones((16, 16, 16), bool)
    regions = faithfulness.cube_regions(within, size=4)
    weights = np.zeros((16, 16, 16))
    weights[0:4, 0:4, 0:4] = weights[8:12, 4:8, 12:16] = 1.0
    model = RegionSum(weights)
    counts = faithfulness.steps_of(int(regions.max()) + 1, steps=8, share=1 / 64)
    for seed in range(8):
        rng = np.random.default_rng(seed)
        volume = (0.5 + 0.1 * rng.random(within.shape)).astype(np.float32)
        for name, heatmap in (("knows", weights), ("noise", rng.standard_normal(within.shape))):

            def aopc(order, volume=volume):
                logits = faithfulness.perturbation_logits(
                    model, volume, regions, order, counts, fill=0.0
                )
                return faithfulness.area_over_curve(logits)

            at_random = faithfulness.random_perturbation_logits(
                model, volume, regions, counts, rng, fill=0.0
            )
            rows.append(
                {
                    "method": name,
                    "aopc_most_relevant_first": aopc(
                        faithfulness.most_relevant_first(heatmap, regions)
                    ),
                    "aopc_random_order": faithfulness.area_over_curve(at_random),
                }
            )
    results = pd.DataFrame(rows)
    verdict = {
        method: verdicts.faithfulness_rows(part)[0] for method, part in results.groupby("method")
    }
    assert verdict["knows"]["passed"] and verdict["knows"]["p_value"] < 0.01
    assert verdict["knows"]["value"] > 2 * verdict["knows"]["random_order"]
    assert not verdict["noise"]["passed"]


def test_the_audit_table_writes_every_threshold_and_verdict():
    results = localisation_results(lambda s: s.lesions.astype(float)).assign(
        randomised_rank_correlation=0.2,
        randomised_ssim=0.7,
        aopc_most_relevant_first=[1.0, 2.0, 3.0, 4.0, 5.0],
        aopc_random_order=0.5,
    )
    table = verdicts.audit_table(results)
    assert list(table.columns) == list(verdicts.AUDIT_COLUMNS)
    assert table["test"].tolist() == ["randomisation"] * 2 + ["localisation"] * 2 + ["faithfulness"]
    assert table["passed"].tolist() == [True, False, True, True, True]
    assert table["threshold"].iloc[1] == "value < 0.5"
    assert table["threshold"].iloc[2].startswith("value > ") and table["n"].iloc[2] == 5


def test_the_sample_is_balanced_seeded_and_filled_from_the_larger_class():
    images = pd.DataFrame({"source": [f"s{i:02d}" for i in range(12)], "target": [1] * 9 + [0] * 3})
    chosen = sample(images, 8, seed=1)
    assert chosen == sample(images, 8, seed=1) and len(chosen) == 8
    assert sum(int(s[1:]) >= 9 for s in chosen) == 3  # every control, five patients
    assert len(sample(images, 20, seed=1)) == 12
    assert sample(images, 4, seed=1) != sample(images, 4, seed=2)
