"""Figures of the group level, drawn with nilearn over the template brain."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import nibabel as nb
import numpy as np

from msxai_bids.grid import CNN_GRID
from msxai_bids.preprocessing.qc import brain_cuts


def model_comparison(
    means: Mapping[str, np.ndarray], background: nb.Nifti1Image, out_file: Path, title: str
) -> Path:
    """One row per model: its mean heatmap over ``background``, one colour scale, the same cuts.

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

    vmax = max(float(np.abs(mean).max()) for mean in means.values()) or 1.0
    cuts = brain_cuts(background, axis=2)
    figure = plt.figure(figsize=(10, 2.4 * len(means)))
    for row, (name, mean) in enumerate(means.items()):
        axes = figure.add_axes((0, 1 - (row + 1) / len(means), 1, 1 / len(means)))
        plotting.plot_stat_map(
            nb.Nifti1Image(mean, CNN_GRID.affine), bg_img=background, display_mode="z",
            cut_coords=cuts, axes=axes, figure=figure, vmax=vmax, symmetric_cbar=True,
            cmap="RdBu_r", colorbar=row == 0, title=f"{name}: {title}" if row == 0 else name,
        )  # fmt: skip
    out_file.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_file, dpi=80)
    plt.close(figure)
    return out_file
