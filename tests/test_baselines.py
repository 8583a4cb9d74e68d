"""The paper's SVM baselines (msxai_bids.model.baselines)."""

from __future__ import annotations

import nibabel as nb
import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.svm import SVC

from msxai_bids.model.baselines import (
    GramPCA,
    common_mask,
    evaluate_baseline,
    lesion_loads_ml,
    make_search,
    n_folds,
    voxel_features,
)


def save(path, data, voxel_mm):
    nb.save(nb.Nifti1Image(data.astype(np.uint8), np.diag([voxel_mm] * 3 + [1.0])), path)
    return path


def test_lesion_load_is_voxel_count_times_voxel_volume_in_ml(tmp_path):
    mask = np.zeros((6, 6, 6))
    mask.flat[:10] = 1
    two = save(tmp_path / "two.nii.gz", mask, 2.0)
    one = save(tmp_path / "one.nii.gz", mask, 1.0)
    np.testing.assert_allclose(lesion_loads_ml([two, one]), [10 * 8 / 1000, 10 / 1000])


def test_common_mask_keeps_voxels_inside_half_the_masks(tmp_path):
    masks = np.zeros((3, 2, 2, 2))
    masks[:, 0, 0, 0] = 1  # in all three
    masks[:2, 1, 0, 0] = 1  # in two of three
    masks[0, 0, 1, 0] = 1  # in one
    paths = [save(tmp_path / f"m{i}.nii.gz", m, 2.0) for i, m in enumerate(masks)]
    assert common_mask(paths).sum() == 2 and common_mask(paths)[1, 0, 0]


def test_voxel_features_are_block_means_inside_the_mask():
    volumes = torch.arange(2 * 64, dtype=torch.float32).reshape(2, 1, 4, 4, 4)
    mask = np.zeros((4, 4, 4), dtype=bool)
    mask[:2, :2, :2] = True  # exactly the first 2×2×2 block
    features = voxel_features(volumes, mask, factor=2)
    assert features.shape == (2, 1)
    np.testing.assert_allclose(features[:, 0], volumes[:, 0, :2, :2, :2].mean(dim=(1, 2, 3)))
    assert voxel_features(volumes, np.ones((4, 4, 4), bool), factor=1).shape == (2, 64)


@pytest.mark.parametrize("variance", [None, 0.9])
def test_gram_pca_equals_sklearn_pca_up_to_sign(variance):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((15, 300)) * np.linspace(3, 0.1, 300)
    new = rng.standard_normal((4, 300))
    ours = GramPCA(variance).fit(x).transform(new)
    if variance is None:  # 14 non-zero components of 15 centred samples, then the residual
        assert ours.shape[1] == 15
        ours = ours[:, :14]
    reference = PCA(variance, svd_solver="full").fit(x).transform(new)[:, : ours.shape[1]]
    assert ours.shape[1] == (14 if variance is None else PCA(variance).fit(x).n_components_)
    np.testing.assert_allclose(np.abs(ours), np.abs(reference), atol=1e-10)


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
def test_full_rank_gram_pca_leaves_the_svm_unchanged(kernel):
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((20, 200)), np.arange(20) % 2
    x[y == 1, :5] += 1.5
    new = rng.standard_normal((6, 200))
    rotation = GramPCA().fit(x)
    direct = SVC(kernel=kernel, C=1.0, gamma=0.001).fit(x, y).decision_function(new)
    rotated = SVC(kernel=kernel, C=1.0, gamma=0.001).fit(rotation.transform(x), y)
    np.testing.assert_allclose(
        rotated.decision_function(rotation.transform(new)), direct, atol=1e-6
    )


def test_folds_shrink_to_the_smallest_class_and_group_by_subject():
    targets, groups = np.array([0, 0, 0, 1, 1, 1, 1]), np.array(list("aabcdef"))
    assert n_folds(targets, groups) == 2  # class 0 has two subjects (a, b)
    with pytest.raises(ValueError, match="too few"):
        n_folds(np.array([0, 0, 1]), np.array(list("aab")))
    search = make_search(pca=True, folds=3, seed=0)
    assert isinstance(search.cv, StratifiedGroupKFold) and search.scoring == "balanced_accuracy"
    assert len(search.param_grid) == 2  # linear and RBF, C and gamma from the paper


def test_lesion_load_svm_separates_patients_with_lesions():
    rng = np.random.default_rng(2)
    targets = np.arange(30) % 2
    loads = np.where(targets == 1, rng.uniform(5, 20, 30), rng.uniform(0, 1, 30))[:, None]
    groups = np.array([f"sub-{i // 2 if i < 10 else i}" for i in range(30)])  # some pairs
    groups[:10] = [f"sub-{i}" for i in range(10)]
    train, test = slice(0, 22), slice(22, 30)
    result = evaluate_baseline(
        (loads[train], targets[train], groups[train]),
        (loads[test], targets[test]),
        pca=False,
        seed=0,
    )
    assert result.metrics["balanced_accuracy"] == 1.0 and result.metrics["auc"] == 1.0
    assert result.cv_balanced_accuracy > 0.9
    assert result.scores.shape == (8,) and result.parameters["svm__kernel"] in ("linear", "rbf")


def test_flair_voxel_svm_with_pca_runs_and_finds_a_strong_signal():
    rng = np.random.default_rng(3)
    targets = np.arange(24) % 2
    features = rng.standard_normal((24, 2000))
    features[targets == 1, :50] += 2.0
    groups = np.array([f"sub-{i}" for i in range(24)])
    result = evaluate_baseline(
        (features[:18], targets[:18], groups[:18]), (features[18:], targets[18:]), pca=True, seed=0
    )
    assert result.metrics["auc"] == 1.0
    assert result.parameters["reduce"].startswith("GramPCA")
