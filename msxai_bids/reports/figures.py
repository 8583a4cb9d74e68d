"""Figures of the group level, drawn with nilearn over the template brain."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import nibabel as nb
import numpy as np

from msxai_bids.grid import CNN_GRID
from msxai_bids.preprocessing.qc import brain_cuts


def shared_scale(maps: Iterable[np.ndarray], percentile: float = 99.9) -> float:
    """One colour limit for several heatmaps: a high percentile of all their absolute values.

    The maximum would let a few voxels set the scale and leave the rest of every map white;
    relevance above the limit saturates instead. Voxels below a tenth of it are not drawn, so
    the anatomy shows through.
    """
    values = np.concatenate([np.abs(m[m != 0]).ravel() for m in maps])
    return float(np.percentile(values, percentile)) if values.size else 1.0


def model_comparison(
    means: Mapping[str, np.ndarray], background: nb.Nifti1Image, out_file: Path, title: str
) -> Path:
    """One row per model: its mean heatmap over ``background``, one colour scale, the same cuts.

    The scale is :func:`shared_scale` of all the maps shown.

    Parameters
    ----------
    means : mapping of str to np.ndarray of shape ``CNN_GRID.shape``
        Model name → mean heatmap of the same cohort and method (paper Fig. 6).
    background : nibabel.Nifti1Image
        Template brain on the CNN grid.
    out_file : Path
        PNG to write.
    title : str
        What is compared (cohort and method), shown above the first row.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from nilearn import plotting

    vmax = shared_scale(means.values())
    cuts = brain_cuts(background, axis=2)
    figure = plt.figure(figsize=(10, 2.4 * len(means)))
    for row, (name, mean) in enumerate(means.items()):
        axes = figure.add_axes((0, 1 - (row + 1) / len(means), 1, 1 / len(means)))
        plotting.plot_stat_map(
            nb.Nifti1Image(mean, CNN_GRID.affine), bg_img=background, display_mode="z",
            cut_coords=cuts, axes=axes, figure=figure, vmax=vmax, symmetric_cbar=True,
            threshold=vmax / 10, cmap="RdBu_r", colorbar=row == 0,
            title=f"{name}: {title}" if row == 0 else name,
        )  # fmt: skip
    out_file.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_file, dpi=80)
    plt.close(figure)
    return out_file
