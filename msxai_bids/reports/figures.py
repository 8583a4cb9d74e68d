"""Brain figures of the reports, drawn with nilearn: heatmaps over anatomy, mosaics, viewers.

Every function writes one file and returns its path; the reports decide what to draw and
survive a figure that fails (:mod:`msxai_bids.reports.html`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import nibabel as nb
import numpy as np

from msxai_bids.files import atomic_write
from msxai_bids.grid import CNN_GRID
from msxai_bids.preprocessing.qc import brain_cuts, display_limit

#: Heatmaps are drawn blue (against the positive label) to red (for it), as in the paper.
RELEVANCE_CMAP = "RdBu_r"


def shared_scale(maps: Iterable[np.ndarray], percentile: float = 99.9) -> float:
    """One colour limit for several heatmaps: a high percentile of all their absolute values.

    The maximum would let a few voxels set the scale and leave the rest of every map white;
    relevance above the limit saturates instead. Voxels below a tenth of it are not drawn, so
    the anatomy shows through.
    """
    values = np.concatenate([np.abs(m[m != 0]).ravel() for m in maps])
    return float(np.percentile(values, percentile)) if values.size else 1.0


def maps_on_one_scale(
    means: Mapping[str, np.ndarray], background: nb.Nifti1Image, out_file: Path, title: str
) -> Path:
    """One row per map (a model, a cohort) over ``background``, one colour scale, the same cuts.

    The scale is :func:`shared_scale` of all the maps shown.

    Parameters
    ----------
    means : mapping of str to np.ndarray of shape ``CNN_GRID.shape``
        Row name (a model, paper Fig. 6, or a cohort, Fig. 3) → mean heatmap on the grid.
    background : nibabel.Nifti1Image
        Template brain on the CNN grid.
    out_file : Path
        PNG to write.
    title : str
        What is compared (cohort and method), shown above the first row.
    """
    from nilearn import plotting

    plt = pyplot()
    vmax = shared_scale(means.values())
    cuts = brain_cuts(background, axis=2)
    figure = plt.figure(figsize=(10, 2.4 * len(means)))
    for row, (name, mean) in enumerate(means.items()):
        axes = figure.add_axes((0, 1 - (row + 1) / len(means), 1, 1 / len(means)))
        plotting.plot_stat_map(
            nb.Nifti1Image(mean, CNN_GRID.affine), bg_img=background, display_mode="z",
            cut_coords=cuts, axes=axes, figure=figure, vmax=vmax, symmetric_cbar=True,
            threshold=vmax / 10, cmap=RELEVANCE_CMAP, colorbar=row == 0,
            title=f"{name}: {title}" if row == 0 else name,
        )  # fmt: skip
    return save(figure, out_file)


def pyplot():
    """matplotlib's pyplot on the file-only backend (no display on a cluster node)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    return plt


def save(figure, out_file: Path, dpi: int = 80) -> Path:
    """Write ``figure`` atomically (a report never links half a PNG) and close it."""
    plt = pyplot()
    try:
        atomic_write(out_file, lambda tmp: figure.savefig(tmp, dpi=dpi, format="png"))
    finally:
        plt.close(figure)
    return out_file


def anatomy_mosaic(image: nb.Nifti1Image, out_file: Path, title: str) -> Path:
    """Slices of ``image`` in all three orientations, grey values clipped at a high percentile."""
    from nilearn import plotting

    plt = pyplot()
    figure = plt.figure(figsize=(10, 7))
    vmax = display_limit(np.asanyarray(image.dataobj))
    plotting.plot_anat(
        image, display_mode="mosaic", cut_coords=5, figure=figure, dim=0, vmin=0, vmax=vmax,
        colorbar=False, title=title,
    )  # fmt: skip
    return save(figure, out_file)


def relevance_views(
    heatmap: nb.Nifti1Image,
    background: nb.Nifti1Image,
    out_file: Path,
    *,
    vmax: float,
    title: str,
    lesion_mask: nb.Nifti1Image | None = None,
) -> Path:
    """A heatmap over the participant's image: three orientations through its peak, then a
    mosaic of axial and coronal slices spread over the brain.

    Parameters
    ----------
    heatmap, background : nibabel.Nifti1Image
        Relevance map and the registered FLAIR on the same grid.
    vmax : float
        Symmetric colour limit, fixed across participants so that their maps compare; relevance
        beyond it saturates, below a tenth of it is not drawn.
    title : str
        Shown above the first row.
    lesion_mask : nibabel.Nifti1Image, optional
        Drawn as a green outline.
    """
    from nilearn import plotting

    plt = pyplot()
    figure = plt.figure(figsize=(10, 8))
    data = np.asanyarray(heatmap.dataobj)
    peak = np.unravel_index(np.abs(data).argmax(), data.shape)
    rows = [
        ("ortho", nb.affines.apply_affine(heatmap.affine, peak), (0, 0.56, 1, 0.44)),
        ("z", brain_cuts(background, axis=2, count=7), (0, 0.28, 1, 0.27)),
        ("y", brain_cuts(background, axis=1, count=7), (0, 0, 1, 0.27)),
    ]
    for mode, cuts, box in rows:
        display = plotting.plot_stat_map(
            heatmap, bg_img=background, display_mode=mode, cut_coords=cuts,
            axes=figure.add_axes(box), figure=figure, vmax=vmax, symmetric_cbar=True,
            threshold=vmax / 10, cmap=RELEVANCE_CMAP, dim=0, colorbar=mode == "ortho",
            title=title if mode == "ortho" else None,
        )  # fmt: skip
        if lesion_mask is not None:
            display.add_contours(lesion_mask, levels=[0.5], colors="lime", linewidths=0.8)
    return save(figure, out_file)


def slice_viewer(
    heatmap: nb.Nifti1Image, background: nb.Nifti1Image, out_file: Path, *, vmax: float
) -> Path:
    """nilearn's interactive slice viewer as one self-contained HTML file.

    nilearn's page links its favicon on the web; the link is removed so that opening the
    viewer makes no network request. Its random element ids are replaced by a fixed one, so
    that the same map gives the same file. Its canvases are read back at every slice change,
    so they are created for frequent reads: browsers then keep them in memory rather than on
    the GPU, and Chromium stops logging a warning about slow readbacks.
    """
    from nilearn import plotting

    view = plotting.view_img(
        heatmap, bg_img=background, vmax=vmax, symmetric_cmap=True, threshold=vmax / 10,
        cmap=RELEVANCE_CMAP, black_bg=False, dim=0, title=None,
    )  # fmt: skip
    page = re.sub(r'<link rel="icon"[^>]*>', "", view.get_standalone())
    page = page.replace('getContext("2d")', 'getContext("2d",{willReadFrequently:true})')
    viewer_id = re.search(r"div_viewer-([0-9a-f]+)", page)
    if viewer_id:  # a random uuid per call; the page alone needs no unique one
        page = page.replace(viewer_id.group(1), "msxai")
    return atomic_write(out_file, lambda tmp: tmp.write_text(page))
