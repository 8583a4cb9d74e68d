"""Atlases on the CNN grid and relevance tables per region."""

from __future__ import annotations

import nibabel as nb
import numpy as np
import pandas as pd
import pytest

from msxai_bids.explain.atlases import (
    MRICRON_TEMPLATES,
    atlas_name,
    default_atlases,
    load_atlas,
)
from msxai_bids.explain.fieldofview import field_of_view_mask, network_windows, seen_block
from msxai_bids.explain.regions import (
    OUTSIDE,
    TABLE_COLUMNS,
    bilateral_name,
    bilateral_table,
    region_table,
)
from msxai_bids.grid import CNN_GRID

NAMES = {1: "Left Caudate", 2: "Right Caudate", 3: "Fornix", 5: "Empty L", 6: "Empty R"}


@pytest.fixture
def labelled_heatmap():
    """Labels 1–3 in three slabs (5 and 6 unused, 9 unnamed) and a signed heatmap."""
    labels = np.zeros((6, 4, 2), dtype=np.int32)
    labels[0], labels[1], labels[2], labels[3, 0] = 1, 2, 3, 9
    relevance = np.random.default_rng(0).normal(size=labels.shape).astype(np.float32)
    return relevance, labels


def test_rows_partition_the_heatmap(labelled_heatmap):
    relevance, labels = labelled_heatmap
    table = region_table(relevance, labels, NAMES)
    assert list(table.columns) == TABLE_COLUMNS
    assert table["index"].tolist() == [0, 1, 2, 3, 5, 6]
    assert table.loc[0, "name"] == OUTSIDE
    assert table["n_voxels"].sum() == relevance.size
    assert table["relevance_sum"].sum() == pytest.approx(relevance.sum(dtype=np.float64))
    assert table["positive_sum"].sum() == pytest.approx(relevance[relevance > 0].sum())
    assert table["negative_sum"].sum() == pytest.approx(relevance[relevance < 0].sum())
    assert table["share_of_positive"].sum() == pytest.approx(1.0)


def test_region_values_match_the_voxels(labelled_heatmap):
    relevance, labels = labelled_heatmap
    table = region_table(relevance, labels, NAMES).set_index("index")
    fornix = relevance[2].astype(np.float64)
    assert table.loc[3, "n_voxels"] == 8
    assert table.loc[3, "relevance_mean"] == pytest.approx(fornix.mean())
    assert table.loc[3, "positive_sum"] == pytest.approx(fornix[fornix > 0].sum())
    outside = relevance[3:].astype(np.float64)  # unnamed label 9 counts as outside
    assert table.loc[0, "relevance_sum"] == pytest.approx(outside.sum())
    assert table.loc[5, "n_voxels"] == 0 and np.isnan(table.loc[5, "relevance_mean"])


def test_shares_are_nan_without_positive_relevance(labelled_heatmap):
    _, labels = labelled_heatmap
    table = region_table(-np.ones(labels.shape), labels, NAMES)
    assert table["share_of_positive"].isna().all()


def test_bilateral_table_merges_sides_and_keeps_totals(labelled_heatmap):
    relevance, labels = labelled_heatmap
    table = region_table(relevance, labels, NAMES)
    merged = bilateral_table(table).set_index("name")
    assert merged.index.tolist() == [OUTSIDE, "Caudate", "Fornix", "Empty"]
    assert merged.loc["Caudate", "indices"] == "1 2"
    assert merged.loc["Caudate", "n_voxels"] == 16
    caudate = relevance[:2].astype(np.float64)
    assert merged.loc["Caudate", "relevance_mean"] == pytest.approx(caudate.mean())
    for column in ["n_voxels", "relevance_sum", "positive_sum", "share_of_positive"]:
        assert merged[column].sum() == pytest.approx(table[column].sum())


def test_seen_share_of_a_region_astride_the_field_of_view():
    """A region half inside the seen block, its twin wholly inside; NaN without a mask."""
    seen = field_of_view_mask()
    nx, _, nz = seen_block(CNN_GRID.shape, network_windows())
    labels = np.zeros(CNN_GRID.shape, dtype=np.int32)
    labels[nx - 3 : nx + 3, 10:14, 10:14] = 1  # Left Caudate: 3 slices in, 3 out
    labels[10:16, 10:14, nz - 4 : nz] = 2  # Right Caudate: all inside, up to the last slice
    relevance = np.random.default_rng(1).normal(size=CNN_GRID.shape)
    table = region_table(relevance, labels, NAMES, seen=seen).set_index("index")
    assert table.loc[1, "seen_share"] == 0.5 and table.loc[2, "seen_share"] == 1.0
    assert table.loc[0, "seen_share"] == pytest.approx((seen.sum() - 96 - 48) / (seen.size - 192))
    assert np.isnan(table.loc[5, "seen_share"])  # no voxels
    merged = bilateral_table(table.reset_index()).set_index("name")
    assert merged.loc["Caudate", "seen_share"] == 0.75
    assert np.isnan(merged.loc["Empty", "seen_share"])
    unknown = region_table(relevance, labels, NAMES)
    assert unknown["seen_share"].isna().all()
    assert bilateral_table(unknown)["seen_share"].isna().all()
    with pytest.raises(ValueError, match="field of view"):
        region_table(relevance, labels, NAMES, seen=seen[:-1])


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Left Cerebral White Matter", "Cerebral White Matter"),
        ("Right_Thalamus_Proper", "Thalamus_Proper"),
        ("Tapetum L", "Tapetum"),
        ("Cingulum (hippocampus) R", "Cingulum (hippocampus)"),
        ("WM_Optic_radiation_L", "WM_Optic_radiation"),
        ("Leftover Region", "Leftover Region"),
        ("Fornix (column and body of fornix)", "Fornix (column and body of fornix)"),
    ],
)
def test_bilateral_names(name, expected):
    assert bilateral_name(name) == expected


def test_heatmap_and_atlas_must_share_the_grid():
    with pytest.raises(ValueError, match="differ in shape"):
        region_table(np.zeros((2, 2, 2)), np.zeros((2, 2, 3), dtype=int), {})


def _centre_x_mm(atlas, name: str) -> float:
    index = next(i for i, n in atlas.labels.items() if n == name)
    return (
        float(np.argwhere(atlas.data == index)[:, 0].mean() * CNN_GRID.voxel_mm)
        + (CNN_GRID.origin_mm[0])
    )


def test_neuromorphometrics_is_on_the_cnn_grid_with_sides_right():
    atlas = load_atlas("Neuromorphometrics")
    assert atlas.data.shape == CNN_GRID.shape and not atlas.data.flags.writeable
    assert len(atlas.labels) == 136 and set(np.unique(atlas.data)) <= {0, *atlas.labels}
    assert _centre_x_mm(atlas, "Left Caudate") < -5 < 5 < _centre_x_mm(atlas, "Right Caudate")
    assert load_atlas("Neuromorphometrics") is atlas  # cached


@pytest.mark.skipif(
    not (MRICRON_TEMPLATES / "JHU-WhiteMatter-labels-1mm.nii.gz").exists(),
    reason="Debian's mricron-data is not installed",
)
def test_jhu_tracts_lie_in_white_matter_on_their_own_side():
    """The installed file's header mirrors the sides; the atlas must not."""
    jhu, grey = load_atlas("JHU"), load_atlas("Neuromorphometrics")
    assert len(jhu.labels) == 48 and default_atlases() == ["Neuromorphometrics", "JHU"]
    left_wm = next(i for i, n in grey.labels.items() if n == "Left Cerebral White Matter")
    left_tracts = np.isin(jhu.data, [i for i, n in jhu.labels.items() if n.endswith(" L")])
    assert (grey.data[left_tracts] == left_wm).mean() > 0.7
    assert _centre_x_mm(jhu, "Anterior limb of internal capsule L") < -10


def test_juelich_white_matter_tracts_fallback():
    atlas = load_atlas("JuelichWM")
    assert len(atlas.labels) == 18 and set(np.unique(atlas.data)) <= {0, *atlas.labels}
    assert (
        _centre_x_mm(atlas, "Corticospinal tract L")
        < -5
        < 5
        < _centre_x_mm(atlas, "Corticospinal tract R")
    )


def test_own_atlas_in_bids_layout(tmp_path):
    data = np.zeros((20, 20, 20), dtype=np.int16)
    data[:10], data[10:] = 1, 2
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    affine[:3, 3] = -40.0
    path = tmp_path / "atlas-Halves_dseg.nii.gz"
    nb.save(nb.Nifti1Image(data, affine), path)
    pd.DataFrame({"index": [1, 2], "name": ["Left half", "Right half"]}).to_csv(
        path.with_name("atlas-Halves_dseg.tsv"), sep="\t", index=False
    )
    atlas = load_atlas(path)
    assert atlas.name == "Halves" == atlas_name(path)
    x_mm = CNN_GRID.origin_mm[0] + CNN_GRID.voxel_mm * np.arange(CNN_GRID.shape[0])
    # the line of voxels along x nearest to y = z = 0 mm, inside the atlas
    inverse = np.linalg.inv(CNN_GRID.affine)
    centre = tuple(np.rint(nb.affines.apply_affine(inverse, [0.0, 0.0, 0.0])[1:]).astype(int))
    # nearest voxel centre (at -40, -36, …, 36 mm); beyond the outer centres lies background
    expected = np.select([(x_mm >= -40) & (x_mm < -2), (x_mm >= -2) & (x_mm <= 36)], [1, 2], 0)
    assert np.array_equal(atlas.data[:, centre[0], centre[1]], expected)


def test_own_atlas_with_unnamed_labels_is_refused(tmp_path):
    path = tmp_path / "atlas-Bad_dseg.nii.gz"
    nb.save(nb.Nifti1Image(np.full((8, 8, 8), 7, dtype=np.int16), CNN_GRID.affine), path)
    path.with_name("atlas-Bad_dseg.tsv").write_text("index\tname\n1\tone\n")
    with pytest.raises(ValueError, match=r"labels \[7\]"):
        load_atlas(path)


def test_own_atlas_with_fractional_values_is_refused(tmp_path):
    path = tmp_path / "atlas-Soft_dseg.nii.gz"
    nb.save(nb.Nifti1Image(np.full((8, 8, 8), 0.5, dtype=np.float32), CNN_GRID.affine), path)
    path.with_name("atlas-Soft_dseg.tsv").write_text("index\tname\n1\tone\n")
    with pytest.raises(ValueError, match="integers"):
        load_atlas(path)
