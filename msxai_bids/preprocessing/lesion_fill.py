"""Lesion filling after Valverde et al. (2014), as Eitel et al. (2019) used it.

The lesion mask is dilated by one voxel (6-neighbourhood, 2 mm on the CNN grid) to cover the
lesions' bright rims. In every axial slice that holds lesion voxels, those voxels are replaced
by draws from a normal distribution with the mean and half the standard deviation of the
slice's normal-appearing white matter (NAWM): white matter outside the dilated lesions.

White matter is found without a second image: the brain's intensities are split into three
classes by k-means (CSF, grey and white matter in some order, which depends on the contrast),
and the white-matter class is the one where the T1-weighted template, registered to the same
grid, is brightest on average (white matter is the brightest tissue in T1w, whatever the
FLAIR's own ordering).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

N_CLASSES = 3
MIN_SLICE_VOXELS = 20
"""A slice with fewer NAWM voxels than this uses the whole volume's NAWM statistics."""


def kmeans_1d(values: np.ndarray, n_classes: int, *, iterations: int = 100) -> np.ndarray:
    """Class labels (N,) of 1-D ``values`` by Lloyd's k-means, centres started at quantiles.

    Written out in NumPy (a few lines in one dimension) rather than with scikit-learn, whose
    OpenMP threads can deadlock in worker processes forked by Nipype's MultiProc.
    """
    centres = np.quantile(values, (np.arange(n_classes) + 0.5) / n_classes)
    for _ in range(iterations):
        labels = np.argmin(np.abs(values[:, None] - centres[None, :]), axis=1)
        updated = np.array([values[labels == k].mean() if np.any(labels == k) else centres[k]
                            for k in range(n_classes)])  # fmt: skip
        if np.allclose(updated, centres):
            break
        centres = updated
    return labels


def white_matter(image: np.ndarray, brain: np.ndarray, template_t1: np.ndarray) -> np.ndarray:
    """Boolean white-matter mask of a FLAIR on the CNN grid.

    Parameters
    ----------
    image : numpy.ndarray of shape (X, Y, Z)
        FLAIR on the grid.
    brain : numpy.ndarray of shape (X, Y, Z)
        Brain mask (non-zero inside).
    template_t1 : numpy.ndarray of shape (X, Y, Z)
        The T1-weighted template on the same grid, used only to name the classes.
    """
    inside = brain > 0
    labels = kmeans_1d(image[inside].astype(np.float64), N_CLASSES)
    t1_means = [template_t1[inside][labels == k].mean() for k in range(N_CLASSES)]
    mask = np.zeros(image.shape, dtype=bool)
    mask[inside] = labels == int(np.argmax(t1_means))
    return mask


def fill_lesions(
    image: np.ndarray,
    lesion: np.ndarray,
    wm: np.ndarray,
    brain: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Replace (dilated) lesion voxels by normal-appearing white-matter intensities, per slice.

    Parameters
    ----------
    image : numpy.ndarray of shape (X, Y, Z)
        FLAIR on an RAS grid; axis 2 is the axial (inferior → superior) axis.
    lesion, wm, brain : numpy.ndarray of shape (X, Y, Z)
        Lesion, white-matter and brain masks (non-zero inside).
    rng : numpy.random.Generator
        Source of the drawn intensities (seed it for reproducible output).

    Returns
    -------
    numpy.ndarray of shape (X, Y, Z), float32
        A copy of ``image`` with every dilated-lesion voxel inside the brain replaced.
    """
    region = ndimage.binary_dilation(lesion > 0) & (brain > 0)
    nawm = (wm > 0) & ~region
    if not nawm.any():
        raise ValueError("no normal-appearing white matter to draw fill intensities from")
    filled = image.astype(np.float32, copy=True)
    fallback = image[nawm]
    for k in np.flatnonzero(region.any(axis=(0, 1))):
        reference = image[..., k][nawm[..., k]]
        if reference.size < MIN_SLICE_VOXELS:
            reference = fallback
        target = region[..., k]
        draws = rng.normal(reference.mean(), reference.std() / 2, int(target.sum()))
        filled[..., k][target] = draws
    return filled
