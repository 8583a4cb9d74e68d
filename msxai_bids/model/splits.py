"""Subject-disjoint, stratified, seeded train/validation/holdout splits.

The unit that is split is the *subject*: every image of a subject (sessions, runs) lands in the
subject's split, so no split can learn or be judged on a subject another split has seen. Labels
come from ``participants.tsv``, one per subject, so stratifying the subject list by label and
handing each image its subject's split is a stratified group split (what sklearn's
``StratifiedGroupKFold`` approximates when groups carry mixed labels, done exactly here).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

#: Split names, in the order they are drawn.
SPLITS = ("train", "validation", "holdout")


def _take_stratified(labels: pd.Series, fraction: float, seed: int) -> pd.Index:
    """Draw ``fraction`` of the subjects in ``labels`` (index: subject), keeping class ratios.

    At least one subject per class is drawn and at least one per class is left, so every split
    holds both classes; a cohort too small for that raises ``ValueError``.
    """
    n_classes = labels.nunique()
    n_take = max(n_classes, round(fraction * len(labels)))
    if labels.value_counts().min() < 2 or n_take > len(labels) - n_classes:
        raise ValueError(
            f"{len(labels)} subjects ({labels.value_counts().to_dict()}) are too few to draw "
            f"{fraction:.0%} of them with every class on both sides"
        )
    _, taken = train_test_split(
        labels.index, test_size=n_take, stratify=labels.to_numpy(), random_state=seed
    )
    return pd.Index(taken)


def make_splits(
    images: pd.DataFrame, *, holdout: float = 0.15, validation: float = 0.15, seed: int = 0
) -> pd.DataFrame:
    """Assign every image to ``train``, ``validation`` or ``holdout``, subject-disjointly.

    Parameters
    ----------
    images : DataFrame
        One row per image with columns ``participant_id`` and ``target`` (0/1, constant within
        a participant).
    holdout : float
        Fraction of subjects kept for the final evaluation (paper: 15 %).
    validation : float
        Fraction of the remaining subjects used for early stopping and checkpointing
        (paper: 15 %).
    seed : int
        Seed of the draw; the same seed and cohort give the same split.

    Returns
    -------
    DataFrame
        ``images`` with a ``split`` column added.
    """
    subjects = subject_labels(images)
    held_out = _take_stratified(subjects, holdout, seed)
    rest = subjects.drop(held_out)
    validating = _take_stratified(rest, validation, seed + 1)
    split_of = pd.Series("train", index=subjects.index)
    split_of[held_out] = "holdout"
    split_of[validating] = "validation"
    out = images.copy()
    out["split"] = out["participant_id"].map(split_of)
    check_disjoint(out)
    return out


def subject_labels(images: pd.DataFrame) -> pd.Series:
    """The label of each subject (index: ``participant_id``, sorted); refuses mixed labels."""
    per_subject = images.groupby("participant_id", sort=True)["target"]
    mixed = per_subject.nunique()
    if (mixed > 1).any():
        raise ValueError(
            f"participants with images of both labels: {mixed.index[mixed > 1].tolist()}"
        )
    return per_subject.first().astype(int)


def check_disjoint(splits: pd.DataFrame) -> None:
    """Raise ``ValueError`` when a subject has images in two splits or a split name is unknown.

    Run on every split table read back from disk, since such files can be edited by hand.
    """
    unknown = sorted(set(splits["split"]) - set(SPLITS))
    if unknown:
        raise ValueError(f"unknown split name(s) {unknown}; expected {list(SPLITS)}")
    per_subject = splits.groupby("participant_id")["split"].nunique()
    leaking = per_subject.index[per_subject > 1].tolist()
    if leaking:
        raise ValueError(f"participants in more than one split (leakage): {leaking}")


def split_masks(splits: pd.DataFrame) -> dict[str, np.ndarray]:
    """Boolean row masks of each split, shape (n_images,), for indexing cached volumes."""
    return {name: (splits["split"] == name).to_numpy() for name in SPLITS}
