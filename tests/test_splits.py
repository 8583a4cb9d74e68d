"""Subject-disjoint, stratified, seeded splits (msxai_bids.model.splits)."""

from __future__ import annotations

import pandas as pd
import pytest

from msxai_bids.model.splits import SPLITS, check_disjoint, make_splits, split_masks


def cohort(n_patients: int = 20, n_controls: int = 20) -> pd.DataFrame:
    """Images of subjects with 1–3 sessions each; labels per subject."""
    rows = []
    for i in range(n_patients + n_controls):
        for session in range(1 + i % 3):
            rows.append(
                {
                    "participant_id": f"sub-{i:02d}",
                    "session_id": f"ses-{session}",
                    "target": int(i < n_patients),
                }
            )
    return pd.DataFrame(rows)


@pytest.mark.parametrize("seed", range(8))
def test_sessions_of_one_subject_never_in_two_splits(seed):
    splits = make_splits(cohort(), seed=seed)
    assert (splits.groupby("participant_id")["split"].nunique() == 1).all()
    multi = splits[splits["participant_id"] == "sub-02"]
    assert len(multi) == 3 and multi["split"].nunique() == 1


def test_splits_are_stratified_with_paper_fractions():
    splits = make_splits(cohort(40, 40), holdout=0.15, validation=0.15, seed=3)
    subjects = splits.drop_duplicates("participant_id")
    counts = subjects.groupby(["split", "target"]).size().unstack()
    assert counts.loc["holdout"].sum() == 12  # 15 % of 80 subjects
    assert counts.loc["validation"].sum() == 10  # 15 % of the remaining 68
    for split in SPLITS:  # equal classes in, (nearly) equal classes out
        assert abs(counts.loc[split, 0] - counts.loc[split, 1]) <= 1


def test_same_seed_same_split_other_seed_other_split():
    images = cohort()
    first, again = make_splits(images, seed=7), make_splits(images, seed=7)
    pd.testing.assert_frame_equal(first, again)
    assert not first["split"].equals(make_splits(images, seed=8)["split"])


def test_every_split_holds_both_classes_even_when_tiny():
    splits = make_splits(cohort(8, 8), seed=0)
    assert (splits.groupby("split")["target"].nunique() == 2).all()


def test_too_few_subjects_is_refused():
    with pytest.raises(ValueError, match="too few"):
        make_splits(cohort(2, 2), seed=0)


def test_subject_with_two_labels_is_refused():
    images = cohort(4, 4)
    images.loc[images["participant_id"] == "sub-02", "target"] = [0, 1, 1]
    with pytest.raises(ValueError, match="sub-02"):
        make_splits(images, seed=0)


def test_edited_split_table_that_leaks_is_refused():
    splits = make_splits(cohort(), seed=0)
    row = splits.index[splits["participant_id"] == "sub-02"][0]
    other = "holdout" if splits.loc[row, "split"] != "holdout" else "train"
    splits.loc[row, "split"] = other
    with pytest.raises(ValueError, match="sub-02"):
        check_disjoint(splits)
    splits.loc[row, "split"] = "testing"
    with pytest.raises(ValueError, match="unknown split"):
        check_disjoint(splits)


def test_split_masks_partition_the_images():
    splits = make_splits(cohort(), seed=1)
    masks = split_masks(splits)
    assert sum(m.astype(int) for m in masks.values()).tolist() == [1] * len(splits)
