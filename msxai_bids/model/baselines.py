"""The paper's SVM baselines (§2.4.5): lesion load and FLAIR voxels.

Both are scikit-learn pipelines (scaling, optional PCA, SVC) whose hyperparameters are chosen by
a grid search over kernel (linear, RBF), C and γ ∈ {0.001, 0.1, 1, 10}, with 5-fold
cross-validation grouped by subject. The search is itself run inside an outer 5-fold
cross-validation of the training data (nested CV, an estimate free of selection bias), then
refitted on all training data and scored on the holdout, like the CNN.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nb
import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.utils.validation import check_array, check_is_fitted
from torch.nn.functional import avg_pool3d

from msxai_bids.model.evaluation import binary_metrics

#: The paper's grid for both C and γ.
PARAMETER_VALUES = (0.001, 0.1, 1.0, 10.0)
#: Folds of the inner (grid search) and outer (estimate) cross-validation.
FOLDS = 5
#: Share of variance the optional PCA keeps.
PCA_VARIANCE = 0.95


def lesion_loads_ml(mask_paths: Sequence[Path]) -> np.ndarray:
    """Lesion volume in millilitres of each binary mask, shape (n_images,).

    Voxels above 0.5 count as lesion; their number times the voxel volume (from the header,
    mm³) divided by 1000 gives ml.
    """
    loads = []
    for path in mask_paths:
        image = nb.load(path)
        voxel_ml = float(np.prod(image.header.get_zooms()[:3])) / 1000.0
        loads.append(np.count_nonzero(np.asarray(image.dataobj) > 0.5) * voxel_ml)
    return np.asarray(loads)


def common_mask(mask_paths: Sequence[Path], min_fraction: float = 0.5) -> np.ndarray:
    """Voxels inside at least ``min_fraction`` of the given brain masks, shape of one mask, bool.

    Built from training images only, so the holdout does not shape the features.
    """
    total = None
    for path in mask_paths:
        inside = np.asarray(nb.load(path).dataobj) > 0.5
        total = inside.astype(np.int32) if total is None else total + inside
    return total >= min_fraction * len(mask_paths)


def voxel_features(volumes: torch.Tensor, mask: np.ndarray, factor: int = 2) -> np.ndarray:
    """FLAIR intensities inside ``mask`` after averaging ``factor``³ blocks.

    Parameters
    ----------
    volumes : Tensor of shape (n, 1, x, y, z)
        Preprocessed images.
    mask : ndarray of shape (x, y, z), bool
        Brain voxels.
    factor : int
        Block size of the downsampling (1: none; 2: 4 mm voxels, ~8× fewer features).

    Returns
    -------
    ndarray of shape (n, n_features), float32
        One row per image; a block is kept when at least half of it lies in the mask.
    """
    pooled = avg_pool3d(volumes, factor) if factor > 1 else volumes
    mask_t = torch.from_numpy(mask.astype(np.float32))[None, None]
    kept = (avg_pool3d(mask_t, factor) if factor > 1 else mask_t)[0, 0] >= 0.5
    return pooled[:, 0][:, kept].numpy()


def n_folds(targets: np.ndarray, groups: np.ndarray, wanted: int = FOLDS) -> int:
    """``wanted`` folds, fewer when a class has fewer subjects (every fold needs each class)."""
    subjects_per_class = [len(np.unique(groups[targets == c])) for c in np.unique(targets)]
    folds = min(wanted, *subjects_per_class)
    if folds < 2:
        raise ValueError(f"too few subjects per class for cross-validation: {subjects_per_class}")
    return folds


class GramPCA(TransformerMixin, BaseEstimator):
    """PCA computed from the n × n Gram matrix, for far fewer samples than features.

    Equals :class:`sklearn.decomposition.PCA` (up to the sign of each component) but costs
    O(n² d) instead of a LAPACK SVD of an n × d matrix that, for n ≈ 100 and d ≈ 30,000 on
    OpenBLAS, is ~200× slower, and a grid search fits hundreds of them.

    Parameters
    ----------
    variance : float or None
        Keep the leading components explaining this share of the variance. None makes the
        transform lossless for an SVM: every component is kept and one more column holds the
        norm of the part of a sample outside the span of the training samples (zero for
        those), so inner products with and distances to training samples — all an SVM with
        a linear or RBF kernel uses — equal those of the original features.
    """

    def __init__(self, variance: float | None = None) -> None:
        self.variance = variance

    def fit(self, X: np.ndarray, y: object = None) -> GramPCA:
        """Learn the mean (n_features,) and components (n_features, n_components) of ``X``."""
        X = check_array(X, dtype=np.float64)
        self.mean_ = X.mean(axis=0)
        centred = X - self.mean_
        eigenvalues, eigenvectors = np.linalg.eigh(centred @ centred.T)
        order = np.argsort(eigenvalues)[::-1]
        eigenvalues, eigenvectors = eigenvalues[order], eigenvectors[:, order]
        keep = eigenvalues > eigenvalues[0] * 1e-10
        if self.variance is not None:
            share = np.cumsum(eigenvalues) / eigenvalues.sum()
            keep &= np.arange(len(share)) <= np.searchsorted(share, self.variance)
        self.components_ = centred.T @ (eigenvectors[:, keep] / np.sqrt(eigenvalues[keep]))
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Scores of shape (n_samples, n_components), plus the residual norm when lossless."""
        check_is_fitted(self, "components_")
        centred = check_array(X, dtype=np.float64) - self.mean_
        scores = centred @ self.components_
        if self.variance is not None:
            return scores
        residual = np.linalg.norm(centred - scores @ self.components_.T, axis=1)
        return np.column_stack([scores, residual])


def make_search(*, pca: bool, folds: int, seed: int) -> GridSearchCV:
    """Grid search of a scaled (optionally PCA-reduced) SVC, scored by balanced accuracy.

    With ``pca`` (many features: FLAIR voxels) the search chooses between PCA keeping
    :data:`PCA_VARIANCE` of the variance and no reduction. The latter runs as the lossless
    :class:`GramPCA`: the same classifier, but libsvm works on n_samples + 1 instead of ~10⁴
    features.
    """
    kernels = [
        {"svm__kernel": ["linear"], "svm__C": list(PARAMETER_VALUES)},
        {
            "svm__kernel": ["rbf"],
            "svm__C": list(PARAMETER_VALUES),
            "svm__gamma": list(PARAMETER_VALUES),
        },
    ]
    reducers = [GramPCA(), GramPCA(PCA_VARIANCE)] if pca else ["passthrough"]
    grid = [{**k, "reduce": reducers} for k in kernels]
    pipeline = Pipeline([("scale", StandardScaler()), ("reduce", "passthrough"), ("svm", SVC())])
    cv = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return GridSearchCV(pipeline, grid, scoring="balanced_accuracy", cv=cv, n_jobs=1)


def fit_search(
    features: np.ndarray, targets: np.ndarray, groups: np.ndarray, *, pca: bool, seed: int
) -> GridSearchCV:
    """Run the grid search on one training set, folds grouped by subject."""
    search = make_search(pca=pca, folds=n_folds(targets, groups), seed=seed)
    return search.fit(features, targets, groups=groups)


def nested_cv_scores(
    features: np.ndarray, targets: np.ndarray, groups: np.ndarray, *, pca: bool, seed: int
) -> np.ndarray:
    """Balanced accuracy of the whole grid search on each outer fold, shape (n_folds,)."""
    outer = StratifiedGroupKFold(n_splits=n_folds(targets, groups), shuffle=True, random_state=seed)
    scores = []
    for fit_rows, test_rows in outer.split(features, targets, groups):
        search = fit_search(
            features[fit_rows], targets[fit_rows], groups[fit_rows], pca=pca, seed=seed
        )
        predicted = search.predict(features[test_rows])
        scores.append(balanced_accuracy_score(targets[test_rows], predicted))
    return np.asarray(scores)


@dataclass(frozen=True)
class BaselineResult:
    """A baseline scored on the holdout.

    Attributes
    ----------
    metrics : dict
        Holdout metrics (:func:`~msxai_bids.model.evaluation.binary_metrics`).
    scores : ndarray of shape (n_holdout,)
        SVM decision values of the holdout images (> 0: patient).
    cv_balanced_accuracy : float
        Mean balanced accuracy of the nested cross-validation on the training data.
    parameters : dict
        Hyperparameters the grid search chose on all training data.
    """

    metrics: dict[str, float]
    scores: np.ndarray
    cv_balanced_accuracy: float
    parameters: dict[str, object]


def evaluate_baseline(
    train: tuple[np.ndarray, np.ndarray, np.ndarray],
    holdout: tuple[np.ndarray, np.ndarray],
    *,
    pca: bool,
    seed: int,
) -> BaselineResult:
    """Nested CV on ``train`` = (features, targets, groups), refit, score ``holdout``.

    Parameters
    ----------
    train : tuple
        Features (n, n_features), targets (n,) in {0, 1} and subject ids (n,) of the training
        images (the CNN's train and validation splits: an SVM needs no early stopping).
    holdout : tuple
        Features and targets of the holdout images.
    pca : bool
        Let the grid search choose between no reduction and PCA.
    seed : int
        Seed of the fold assignment.
    """
    features, targets, groups = train
    cv_scores = nested_cv_scores(features, targets, groups, pca=pca, seed=seed)
    search = fit_search(features, targets, groups, pca=pca, seed=seed)
    scores = search.decision_function(holdout[0])
    parameters = {
        k: v if isinstance(v, int | float | str) else str(v) for k, v in search.best_params_.items()
    }
    return BaselineResult(
        binary_metrics(holdout[1], scores), scores, float(cv_scores.mean()), parameters
    )
