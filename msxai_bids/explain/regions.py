"""Relevance per atlas region: signed, positive and negative sums, means and shares.

A table has one row per atlas label plus row 0, "outside atlas", for the voxels no label
covers, so every voxel is counted exactly once and the column sums equal the heatmap's totals.
The paper reports regions with left and right merged; :func:`bilateral_table` does that.
Given the network's field of view (:mod:`msxai_bids.explain.fieldofview`), a table also says
which share of each region the network can see: relevance is zero in the rest.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import pandas as pd

OUTSIDE = "outside atlas"
TABLE_COLUMNS = [
    "index",
    "name",
    "n_voxels",
    "relevance_sum",
    "relevance_mean",
    "positive_sum",
    "negative_sum",
    "share_of_positive",
    "seen_share",
]
_SIDE_PREFIX = re.compile(r"^(?:left|right)[ _]+", re.IGNORECASE)
_SIDE_SUFFIX = re.compile(r"[ _]+(?:l|r|left|right)$", re.IGNORECASE)


def _with_derived_columns(table: pd.DataFrame) -> pd.DataFrame:
    """Add the mean per voxel, the share of the heatmap's positive relevance and of voxels seen.

    ``table`` holds ``n_seen``, the region's voxels inside the field of view (NaN if unknown).
    """
    total_positive = table["positive_sum"].sum()
    n_voxels = table["n_voxels"].where(table["n_voxels"] > 0)
    return table.assign(
        relevance_mean=table["relevance_sum"] / n_voxels,
        share_of_positive=table["positive_sum"] / total_positive if total_positive > 0 else np.nan,
        seen_share=table["n_seen"] / n_voxels,
    )


def region_table(
    relevance: np.ndarray,
    labels: np.ndarray,
    names: Mapping[int, str],
    *,
    seen: np.ndarray | None = None,
) -> pd.DataFrame:
    """Relevance summed over each labelled region of a heatmap.

    Parameters
    ----------
    relevance : np.ndarray of shape (X, Y, Z)
        Heatmap, positive values speaking for the positive label.
    labels : np.ndarray of shape (X, Y, Z), integer
        Atlas label per voxel on the same grid; 0 (or any value not in ``names``) is outside.
    names : mapping of int to str
        Region names by label index; regions without voxels get a row of zeros.
    seen : np.ndarray of shape (X, Y, Z), bool, optional
        The network's field of view on the same grid
        (:func:`~msxai_bids.explain.fieldofview.field_of_view_mask`).

    Returns
    -------
    pd.DataFrame
        Columns :data:`TABLE_COLUMNS`: sums and counts per region, ``relevance_mean`` (NaN for
        an empty region), ``share_of_positive`` = region's positive sum / heatmap's positive
        sum (NaN when the heatmap has no positive relevance) and ``seen_share`` = share of the
        region's voxels inside ``seen`` (NaN for an empty region or without ``seen``). Row 0
        is :data:`OUTSIDE`.
    """
    if relevance.shape != labels.shape:
        raise ValueError(f"heatmap {relevance.shape} and atlas {labels.shape} differ in shape")
    if seen is not None and seen.shape != labels.shape:
        raise ValueError(f"field of view {seen.shape} and atlas {labels.shape} differ in shape")
    indices = np.array([0, *sorted(i for i in names if i != 0)])
    row = np.zeros(int(max(labels.max(), indices.max())) + 1, dtype=np.intp)
    row[indices] = np.arange(len(indices))
    rows = row[labels.ravel()]  # labels missing from ``names`` fall into row 0
    values = relevance.ravel().astype(np.float64)

    def per_row(weights: np.ndarray | None = None) -> np.ndarray:
        return np.bincount(rows, weights=weights, minlength=len(indices))

    table = pd.DataFrame(
        {
            "index": indices,
            "name": [OUTSIDE, *(names[i] for i in indices[1:])],
            "n_voxels": per_row(),
            "relevance_sum": per_row(values),
            "positive_sum": per_row(np.clip(values, 0.0, None)),
            "negative_sum": per_row(np.clip(values, None, 0.0)),
            "n_seen": np.nan if seen is None else per_row(seen.ravel().astype(np.float64)),
        }
    )
    return _with_derived_columns(table)[TABLE_COLUMNS]


def bilateral_name(name: str) -> str:
    """A name without its side: ``Left Caudate`` → ``Caudate``, ``Fornix R`` → ``Fornix``."""
    return _SIDE_SUFFIX.sub("", _SIDE_PREFIX.sub("", name))


def bilateral_table(table: pd.DataFrame) -> pd.DataFrame:
    """Merge left and right regions of a :func:`region_table`, as the paper's figures do.

    Rows whose names differ only by a side prefix (``Left``/``Right``) or suffix (``L``/``R``)
    become one row; ``index`` becomes ``indices``, the merged label indices as text
    (``"36 37"``). Sums and counts add up; mean and shares are recomputed from them.
    """
    seen = np.rint(table["seen_share"] * table["n_voxels"]).where(table["n_voxels"] > 0, 0.0)
    merged = table.assign(name=table["name"].map(bilateral_name), n_seen=seen)
    grouped = merged.groupby("name", sort=False).agg(
        indices=("index", lambda index: " ".join(map(str, sorted(index)))),
        n_voxels=("n_voxels", "sum"),
        relevance_sum=("relevance_sum", "sum"),
        positive_sum=("positive_sum", "sum"),
        negative_sum=("negative_sum", "sum"),
        n_seen=("n_seen", lambda n_seen: n_seen.to_numpy().sum()),  # NaN if unknown
    )
    columns = ["indices", *TABLE_COLUMNS[1:]]
    return _with_derived_columns(grouped.reset_index())[columns]
